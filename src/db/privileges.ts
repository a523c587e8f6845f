import type { Queryable } from './Queryable.js';
import type { SequenceTarget } from './resolveIndex.js';

/** What seqwatch's own role lacks to check or fix a target, with the GRANTs that give it (catalog names only). */
export interface MissingPrivileges {
  role: string;
  grants: string[];
}

const SQL = `
WITH rels AS (
  SELECT c.oid, format('%I.%I', n.nspname, c.relname) AS name, format('%I', n.nspname) AS schema_q,
         pg_catalog.has_schema_privilege(n.oid, 'USAGE') AS schema_ok, c.relkind
  FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE c.oid = ANY($1::oid[]) OR c.oid = $2::oid
)
SELECT quote_ident(current_user) AS role,
       (SELECT array_agg(DISTINCT schema_q) FROM rels WHERE NOT schema_ok) AS schemas,
       (SELECT array_agg(name) FROM rels WHERE relkind <> 'S' AND NOT pg_catalog.has_table_privilege(oid, 'SELECT')) AS tables,
       (SELECT name FROM rels WHERE oid = $2::oid
          AND NOT (pg_catalog.has_sequence_privilege(oid, 'SELECT') AND pg_catalog.has_sequence_privilege(oid, 'UPDATE'))) AS sequence`;

/** Asks the catalog which privileges seqwatch's role lacks for this target (its table, its peers, its sequence). */
export async function missingPrivileges(db: Queryable, target: SequenceTarget): Promise<MissingPrivileges> {
  const tables = [target.tableOid, ...(target.peers ?? []).map((p) => p.tableOid)];
  const { rows } = await db.query<{ role: string; schemas: string[] | null; tables: string[] | null; sequence: string | null }>(SQL, [
    tables,
    target.sequenceOid,
  ]);
  const row = rows[0]!;
  const grants = [
    ...(row.schemas ?? []).map((schema) => `GRANT USAGE ON SCHEMA ${schema} TO ${row.role};`),
    ...(row.tables ?? []).map((table) => `GRANT SELECT ON ${table} TO ${row.role};`),
    ...(row.sequence ? [`GRANT SELECT, UPDATE ON SEQUENCE ${row.sequence} TO ${row.role};`] : []),
  ];
  return { role: row.role, grants };
}
