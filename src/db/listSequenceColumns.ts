import type { Queryable } from './Queryable.js';
import { targetOf, type PeerColumn, type SequenceTarget, type TargetRow } from './resolveIndex.js';
import { FED_COLUMNS_CTE, leadsAnIndex, type RefusedColumn } from './trustRule.js';

/** A sequence-fed column found by listing the whole database, with what `check` shows about it. */
export interface SequenceColumn extends SequenceTarget {
  /** serial (OWNED BY, incl. bigserial/smallserial), identity, or default (DEFAULT nextval, not owned). */
  kind: 'serial' | 'identity' | 'default';
  columnType: string;
}

/*
 * Every column of every table (partitioned roots, not their partitions) in every user schema whose
 * DEFAULT or identity names a sequence, with the trust rule's verdict (trustRule.ts): one pass over
 * the catalog instead of a function call per column, which matters at thousands of tables. A
 * sequence shared by several tables appears once per table.
 */
const LIST_SQL = `
WITH ${FED_COLUMNS_CTE}
SELECT c.oid::int8 AS table_oid,
       format('%I.%I', n.nspname, c.relname) AS table_q,
       n.nspname AS schema_name,
       c.relname AS table_name,
       a.attname AS column_name,
       quote_ident(a.attname) AS column_q,
       format_type(a.atttypid, a.atttypmod) AS column_type,
       s.oid::int8 AS sequence_oid,
       format('%I.%I', sn.nspname, s.relname) AS sequence_q,
       sn.nspname AS sequence_schema,
       ps.seqincrement > 0 AS ascending,
       f.kind,
       f.refusal,
       ${leadsAnIndex('c.oid', 'a.attnum')} AS indexed
FROM fed_columns f
JOIN pg_catalog.pg_class c ON c.oid = f.tbl
JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum = f.att AND NOT a.attisdropped
JOIN pg_catalog.pg_class s ON s.oid = f.seq
JOIN pg_catalog.pg_namespace sn ON sn.oid = s.relnamespace
JOIN pg_catalog.pg_sequence ps ON ps.seqrelid = s.oid
WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition
  AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
ORDER BY n.nspname, c.relname, a.attnum, s.oid`;

interface Row extends TargetRow {
  column_type: string;
  kind: SequenceColumn['kind'];
  refusal: RefusedColumn['why'] | null;
}

async function listRows(db: Queryable): Promise<Row[]> {
  return (await db.query<Row>(LIST_SQL)).rows;
}

/**
 * Every column the trust rule admits as fed by a sequence. Each carries, as `peers`, the other
 * admitted columns its sequence feeds, so a fix moves a shared sequence past MAX over all of them.
 */
export async function listSequenceColumns(db: Queryable): Promise<SequenceColumn[]> {
  // Built in place, not spread or copied per row: `check` runs this once per process over thousands
  // of rows, before V8 has optimised anything (the spread and the per-row array copies were ~20 ms
  // of 2,000 rows on the benchmark's machine).
  const columns: SequenceColumn[] = [];
  const bySequence = new Map<number, SequenceColumn[]>();
  for (const row of await listRows(db)) {
    if (row.refusal !== null) continue;
    const column = targetOf(row) as SequenceColumn;
    column.kind = row.kind;
    column.columnType = row.column_type;
    columns.push(column);
    const feeds = bySequence.get(column.sequenceOid);
    if (feeds) feeds.push(column);
    else bySequence.set(column.sequenceOid, [column]);
  }
  for (const feeds of bySequence.values()) {
    if (feeds.length === 1) continue;
    for (const column of feeds) {
      column.peers = feeds
        .filter((other) => other !== column)
        .map((p): PeerColumn => ({ tableOid: p.tableOid, table: p.table, columnQuoted: p.columnQuoted, indexed: p.indexed !== false }));
    }
  }
  return columns;
}

/** The columns whose DEFAULT names a sequence that the trust rule refuses (for check, doctor and the docs). */
export async function listRefusedColumns(db: Queryable): Promise<RefusedColumn[]> {
  return (await listRows(db))
    .filter((row) => row.refusal !== null)
    .map((row) => ({ table: row.table_q, column: row.column_name, sequence: row.sequence_q, why: row.refusal! }));
}

/**
 * Sequence-fed columns whose MAX is a full scan: no valid btree index leads with the column (a key
 * like `(tenant, id)`). For `seqwatch doctor`: each check of such a column reads the whole table.
 */
export async function listFullScanColumns(db: Queryable): Promise<SequenceColumn[]> {
  return (await listSequenceColumns(db)).filter((column) => column.indexed === false);
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
