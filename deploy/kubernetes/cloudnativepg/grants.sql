-- What the role seqwatch may do in the application's database: read the tables (for MAX(id)),
-- read and set the sequences. Run once on the primary, as postgres, naming the owner of the
-- application's tables (the Cluster's bootstrap.initdb.owner; CloudNativePG's default is `app`):
--   kubectl exec -i gotrs-db-1 -c postgres -- psql -v ON_ERROR_STOP=1 -d gotrs -v owner=gotrs -f - < grants.sql
-- (the primary: kubectl get pods -l cnpg.io/cluster=gotrs-db,cnpg.io/instanceRole=primary)
SELECT format('GRANT CONNECT ON DATABASE %I TO seqwatch', current_database()) \gexec
GRANT USAGE ON SCHEMA public TO seqwatch;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO seqwatch;
GRANT SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO seqwatch;
-- What the owner's migrations create later:
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT ON TABLES TO seqwatch;
ALTER DEFAULT PRIVILEGES FOR ROLE :"owner" IN SCHEMA public GRANT SELECT, UPDATE ON SEQUENCES TO seqwatch;
