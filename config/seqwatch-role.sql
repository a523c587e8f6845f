-- The least-privileged role seqwatch needs: read the tables (for MAX(id)), read and set the
-- sequences. Not a superuser, not the tables' owner, no INSERT/UPDATE/DELETE on any table.
-- Run as a superuser or the schema owner, once per database (repeat the GRANTs per schema).
CREATE ROLE seqwatch LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
-- \password seqwatch     (or use peer/cert authentication in pg_hba.conf)
GRANT CONNECT ON DATABASE gotrs TO seqwatch;
GRANT USAGE ON SCHEMA public TO seqwatch;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO seqwatch;
GRANT SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO seqwatch;
-- Tables and sequences created later (by migrations run as the app's role):
--   ALTER DEFAULT PRIVILEGES FOR ROLE gotrs IN SCHEMA public GRANT SELECT ON TABLES TO seqwatch;
--   ALTER DEFAULT PRIVILEGES FOR ROLE gotrs IN SCHEMA public GRANT SELECT, UPDATE ON SEQUENCES TO seqwatch;
