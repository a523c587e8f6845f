import type { Queryable } from './Queryable.js';
import { targetOf, type SequenceTarget, type TargetRow } from './resolveIndex.js';

/** A sequence-fed column found by listing the whole database, with what `check` shows about it. */
export interface SequenceColumn extends SequenceTarget {
  /** serial (OWNED BY, incl. bigserial/smallserial), identity, or default (DEFAULT nextval, not owned). */
  kind: 'serial' | 'identity' | 'default';
  columnType: string;
}

/*
 * Every column of every table (partitioned roots, not their partitions) in every user schema that
 * a sequence feeds. A sequence shared by several tables appears once per table. The same rule as
 * feedingSequence (a sequence OWNED BY the column, as pg_get_serial_sequence finds it, else the
 * one its DEFAULT depends on), written as joins over pg_depend: one pass over the catalog instead
 * of a function call per column, which matters at thousands of tables.
 */
const LIST_SQL = `
WITH owned AS (
  SELECT d.refobjid AS tbl, d.refobjsubid AS att, min(d.objid) AS seq
  FROM pg_catalog.pg_depend d
  JOIN pg_catalog.pg_class s ON s.oid = d.objid AND s.relkind = 'S'
  WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.refclassid = 'pg_catalog.pg_class'::regclass
    AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0
  GROUP BY 1, 2
), defaults AS (
  SELECT ad.adrelid AS tbl, ad.adnum AS att, min(d.refobjid) AS seq
  FROM pg_catalog.pg_attrdef ad
  JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_attrdef'::regclass AND d.objid = ad.oid
                             AND d.refclassid = 'pg_catalog.pg_class'::regclass
  JOIN pg_catalog.pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
  GROUP BY 1, 2
)
SELECT c.oid::int8 AS table_oid,
       format('%I.%I', n.nspname, c.relname) AS table_q,
       n.nspname AS schema_name,
       c.relname AS table_name,
       a.attname AS column_name,
       quote_ident(a.attname) AS column_q,
       format_type(a.atttypid, a.atttypmod) AS column_type,
       s.oid::int8 AS sequence_oid,
       format('%I.%I', sn.nspname, s.relname) AS sequence_q,
       ps.seqincrement > 0 AS ascending,
       CASE WHEN a.attidentity <> '' THEN 'identity' WHEN o.seq IS NOT NULL THEN 'serial' ELSE 'default' END AS kind
FROM pg_catalog.pg_class c
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN owned o ON o.tbl = c.oid AND o.att = a.attnum
LEFT JOIN defaults df ON df.tbl = c.oid AND df.att = a.attnum
JOIN pg_catalog.pg_class s ON s.oid = COALESCE(o.seq, df.seq)
JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_catalog.pg_sequence ps ON ps.seqrelid = s.oid
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
ORDER BY n.nspname, c.relname, a.attnum`;

interface Row extends TargetRow {
  column_type: string;
  kind: SequenceColumn['kind'];
}

export async function listSequenceColumns(db: Queryable): Promise<SequenceColumn[]> {
  const { rows } = await db.query<Row>(LIST_SQL);
  return rows.map((row) => ({ ...targetOf(row), kind: row.kind, columnType: row.column_type }));
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
