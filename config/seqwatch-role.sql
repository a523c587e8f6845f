-- The least-privileged role seqwatch needs: read the tables (for MAX(id)), read and set the
-- sequences. Not a superuser, not the tables' owner, no INSERT/UPDATE/DELETE on any table.
-- A psql script: run it as the postgres user (peer authentication), once per database, with the
-- password seqwatch will log in with (TCP with scram-sha-256 needs one) in SEQWATCH_DB_PASSWORD:
--   SEQWATCH_DB_PASSWORD="$(cat /etc/seqwatch/db_password)" \
--     runuser -u postgres -- psql -d gotrs -v ON_ERROR_STOP=1 -f seqwatch-role.sql
-- Running it again (an upgrade, a new password) changes nothing else. Repeat the GRANTs per schema.
\set ON_ERROR_STOP on

SELECT NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'seqwatch') AS create_role \gset
\if :create_role
CREATE ROLE seqwatch LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE;
\endif

-- The password, from the environment (never on a command line, where ps would show it). The server
-- stores only its scram-sha-256 verifier (password_encryption).
\set password `echo "$SEQWATCH_DB_PASSWORD"`
SELECT :'password' <> '' AS has_password \gset
\if :has_password
ALTER ROLE seqwatch PASSWORD :'password';
\else
\echo 'SEQWATCH_DB_PASSWORD is empty: seqwatch has no password (only peer or cert authentication will work)'
\endif
\unset password

GRANT CONNECT ON DATABASE :"DBNAME" TO seqwatch;
GRANT USAGE ON SCHEMA public TO seqwatch;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO seqwatch;
GRANT SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO seqwatch;
-- Tables and sequences created later (by migrations run as the app's role):
--   ALTER DEFAULT PRIVILEGES FOR ROLE gotrs IN SCHEMA public GRANT SELECT ON TABLES TO seqwatch;
--   ALTER DEFAULT PRIVILEGES FOR ROLE gotrs IN SCHEMA public GRANT SELECT, UPDATE ON SEQUENCES TO seqwatch;
