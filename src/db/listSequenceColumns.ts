import type { Queryable } from './Queryable.js';
import { feedingSequence, type SequenceTarget } from './resolveIndex.js';

/** A sequence-fed column found by listing the whole database, with what `check` shows about it. */
export interface SequenceColumn extends SequenceTarget {
  /** serial (OWNED BY, incl. bigserial/smallserial), identity, or default (DEFAULT nextval, not owned). */
  kind: 'serial' | 'identity' | 'default';
  columnType: string;
}

/*
 * Every column of every table (partitioned roots, not their partitions) in every user schema that
 * a sequence feeds. A sequence shared by several tables appears once per table.
 */
const LIST_SQL = `
SELECT c.oid::int8 AS table_oid,
       format('%I.%I', n.nspname, c.relname) AS table_q,
       n.nspname AS schema_name,
       c.relname AS table_name,
       a.attname AS column_name,
       quote_ident(a.attname) AS column_q,
       format_type(a.atttypid, a.atttypmod) AS column_type,
       s.oid::int8 AS sequence_oid,
       format('%I.%I', sn.nspname, s.relname) AS sequence_q,
       CASE WHEN a.attidentity <> '' THEN 'identity'
            WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_depend o
                          WHERE o.classid = 'pg_catalog.pg_class'::regclass AND o.objid = s.oid
                            AND o.refobjid = c.oid AND o.refobjsubid = a.attnum AND o.deptype = 'a') THEN 'serial'
            ELSE 'default' END AS kind
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
JOIN LATERAL (${feedingSequence('c', 'n', 'a')}) fed ON fed.oid IS NOT NULL
JOIN pg_catalog.pg_class s ON s.oid = fed.oid
JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
ORDER BY n.nspname, c.relname, a.attnum`;

interface Row {
  table_oid: string;
  table_q: string;
  schema_name: string;
  table_name: string;
  column_name: string;
  column_q: string;
  column_type: string;
  sequence_oid: string;
  sequence_q: string;
  kind: SequenceColumn['kind'];
}

export async function listSequenceColumns(db: Queryable): Promise<SequenceColumn[]> {
  const { rows } = await db.query<Row>(LIST_SQL);
  return rows.map((row) => ({
    tableOid: Number(row.table_oid),
    table: row.table_q,
    schema: row.schema_name,
    tableName: row.table_name,
    column: row.column_name,
    columnQuoted: row.column_q,
    columnType: row.column_type,
    sequenceOid: Number(row.sequence_oid),
    sequence: row.sequence_q,
    kind: row.kind,
  }));
}

/**
 * Whether `name` (as an operator types it: `ticket`, `public.ticket`, `"Billing"."Invoice Lines"`,
 * `Billing.Invoice Lines`) names this column's table. An unqualified name matches in every schema.
 */
export function namesTable(column: SequenceColumn, name: string): boolean {
  const unquote = (part: string) => (part.startsWith('"') && part.endsWith('"') ? part.slice(1, -1).replace(/""/g, '"') : part);
  const parts = name.match(/"(?:[^"]|"")*"|[^.]+/g)?.map(unquote) ?? [];
  if (parts.length === 1) return parts[0] === column.tableName;
  if (parts.length === 2) return parts[0] === column.schema && parts[1] === column.tableName;
  return false;
}
