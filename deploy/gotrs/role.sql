-- The role seqwatch uses in GOTRS's database: read the tables (for MAX(id)), read and set the
-- sequences; nothing else. Run once as GOTRS's database owner (DB_USER in GOTRS's .env), with the
-- password in a psql variable (never in a file that is kept):
--
--   docker compose exec -T postgres psql -v ON_ERROR_STOP=1 -U "$DB_USER" -d "$DB_NAME" \
--     -v pw="$(cat seqwatch/secrets/seqwatch_db_password)" -f - < seqwatch/role.sql
--
-- The owner may create roles only if it has CREATEROLE; the image's POSTGRES_USER is a superuser.
CREATE ROLE seqwatch LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE PASSWORD :'pw';
SELECT format('GRANT CONNECT ON DATABASE %I TO seqwatch', current_database()) \gexec
GRANT USAGE ON SCHEMA public TO seqwatch;
GRANT SELECT ON ALL TABLES IN SCHEMA public TO seqwatch;
GRANT SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA public TO seqwatch;
-- Tables and sequences GOTRS's migrations create later (they run as this same owner):
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT ON TABLES TO seqwatch;
ALTER DEFAULT PRIVILEGES IN SCHEMA public GRANT SELECT, UPDATE ON SEQUENCES TO seqwatch;
