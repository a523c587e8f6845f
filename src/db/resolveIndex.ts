import type { Queryable } from './Queryable.js';
import { RateLimiter } from './RateLimiter.js';
import { TtlCache } from './TtlCache.js';

/** A column fed by a sequence, found through the catalog: everything a check or a fix needs. */
export interface SequenceTarget {
  /** The table whose MAX matters: a partition's root, since the sequence feeds them all. */
  tableOid: number;
  /** Schema-qualified and quoted as PostgreSQL quotes identifiers: `public.ticket`, `"Billing"."Invoice Lines"`. */
  table: string;
  /** The same, unquoted, for policies and for people typing names. */
  schema: string;
  tableName: string;
  column: string;
  /** `quote_ident(column)`, computed by the server. */
  columnQuoted: string;
  sequenceOid: number;
  sequence: string;
  /** The sequence counts up (the usual case); false for a descending one, whose collisions are at MIN. */
  ascending?: boolean;
  /** The index the log named, schema-qualified and quoted (absent when found by listing every column). */
  index?: string;
}

/** A unique index whose key no sequence feeds (`users_login_key`): a real duplicate, nothing to heal. */
export interface NonSequenceIndex {
  table: string;
  index: string;
  columns: string[];
}

export interface Resolution {
  /** Every index of that name has been considered: one per schema that has it. */
  targets: SequenceTarget[];
  nonSequence: NonSequenceIndex[];
}

/**
 * The sequence that feeds column `att` of table `rel` (schema row `nsp`), as a one-column (`oid`)
 * subquery: pg_get_serial_sequence (serial, identity), else the sequence the column's DEFAULT
 * depends on (DEFAULT nextval(...) on a sequence that is not OWNED BY it, or one shared by tables).
 */
export function feedingSequence(rel: string, nsp: string, att: string): string {
  return `
  SELECT COALESCE(
    pg_catalog.pg_get_serial_sequence(format('%I.%I', ${nsp}.nspname, ${rel}.relname), ${att}.attname)::regclass::oid,
    (SELECT d.refobjid
       FROM pg_catalog.pg_attrdef ad
       JOIN pg_catalog.pg_depend d ON d.classid = 'pg_catalog.pg_attrdef'::regclass AND d.objid = ad.oid
                                  AND d.refclassid = 'pg_catalog.pg_class'::regclass
       JOIN pg_catalog.pg_class s ON s.oid = d.refobjid AND s.relkind = 'S'
      WHERE ad.adrelid = ${rel}.oid AND ad.adnum = ${att}.attnum
      ORDER BY d.refobjid LIMIT 1)) AS oid
`;
}

/** PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes: a longer "name" cannot be in the catalog. */
const MAX_IDENTIFIER_BYTES = 63;

/*
 * One round trip, the index names as the only bind parameter (a text array). For every unique index
 * of those names, in any schema: its key columns, mapped to the root table of a partition tree, and for each the
 * sequence that feeds it (feedingSequence).
 */
const RESOLVE_SQL = `
SELECT ix.relname AS index_name,
       x.indexrelid::int8 AS index_oid,
       format('%I.%I', ixn.nspname, ix.relname) AS index_q,
       r.oid::int8 AS table_oid,
       format('%I.%I', rn.nspname, r.relname) AS table_q,
       rn.nspname AS schema_name,
       r.relname AS table_name,
       ra.attname AS column_name,
       quote_ident(ra.attname) AS column_q,
       seq.oid::int8 AS sequence_oid,
       CASE WHEN seq.oid IS NOT NULL THEN format('%I.%I', sn.nspname, seq.relname) END AS sequence_q,
       (SELECT ps.seqincrement > 0 FROM pg_catalog.pg_sequence ps WHERE ps.seqrelid = seq.oid) AS ascending
FROM pg_catalog.pg_class ix
JOIN pg_catalog.pg_namespace ixn ON ixn.oid = ix.relnamespace
JOIN pg_catalog.pg_index x ON x.indexrelid = ix.oid AND x.indisunique
JOIN pg_catalog.pg_class t ON t.oid = x.indrelid
JOIN pg_catalog.pg_class r ON r.oid = COALESCE(pg_catalog.pg_partition_root(t.oid), t.oid)
JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
JOIN pg_catalog.pg_attribute ra ON ra.attrelid = r.oid AND ra.attname = a.attname AND NOT ra.attisdropped
LEFT JOIN LATERAL (${feedingSequence('r', 'rn', 'ra')}) fed ON true
LEFT JOIN pg_catalog.pg_class seq ON seq.oid = fed.oid
LEFT JOIN pg_catalog.pg_namespace sn ON sn.oid = seq.relnamespace
WHERE ix.relname = ANY($1::pg_catalog.text[]) AND ix.relkind IN ('i', 'I') AND k.n <= x.indnkeyatts
ORDER BY ix.relname, ixn.nspname, k.n`;

/** The catalog columns both catalog queries return for a sequence-fed column. */
export interface TargetRow {
  table_oid: string;
  table_q: string;
  schema_name: string;
  table_name: string;
  column_name: string;
  column_q: string;
  sequence_oid: string;
  sequence_q: string;
  ascending: boolean | null;
}

export function targetOf(row: TargetRow): SequenceTarget {
  return {
    tableOid: Number(row.table_oid),
    table: row.table_q,
    schema: row.schema_name,
    tableName: row.table_name,
    column: row.column_name,
    columnQuoted: row.column_q,
    sequenceOid: Number(row.sequence_oid),
    sequence: row.sequence_q,
    ascending: row.ascending !== false,
  };
}

interface Row extends Omit<TargetRow, 'sequence_oid' | 'sequence_q'> {
  index_name: string;
  index_oid: string;
  index_q: string;
  sequence_oid: string | null;
  sequence_q: string | null;
}

/** Names the catalog cannot hold (empty, a NUL, longer than NAMEDATALEN - 1 bytes): answered without asking it. */
function impossibleName(indexName: string): boolean {
  return indexName.length === 0 || indexName.includes('\u0000') || Buffer.byteLength(indexName) > MAX_IDENTIFIER_BYTES;
}

/** Looks an index name up in the catalog; the name is a bind parameter, never part of the statement. */
export async function resolveIndex(db: Queryable, indexName: string): Promise<Resolution> {
  return (await resolveIndexes(db, [indexName])).get(indexName)!;
}

/** Looks many index names up in one catalog query (one bind parameter, a text array). */
export async function resolveIndexes(db: Queryable, indexNames: string[]): Promise<Map<string, Resolution>> {
  const resolutions = new Map<string, Resolution>();
  for (const name of indexNames) resolutions.set(name, { targets: [], nonSequence: [] });
  const askable = indexNames.filter((name) => !impossibleName(name));
  if (askable.length === 0) return resolutions;
  const { rows } = await db.query<Row>(RESOLVE_SQL, [askable]);
  const byIndex = new Map<string, Row[]>();
  for (const row of rows) byIndex.set(row.index_oid, [...(byIndex.get(row.index_oid) ?? []), row]);
  for (const columns of byIndex.values()) {
    const first = columns[0]!;
    const resolution = resolutions.get(first.index_name)!;
    const fed = columns.filter((row) => row.sequence_oid !== null);
    if (fed.length === 0) {
      resolution.nonSequence.push({ table: first.table_q, index: first.index_q, columns: columns.map((c) => c.column_name) });
      continue;
    }
    for (const row of fed) resolution.targets.push({ ...targetOf(row as TargetRow), index: row.index_q });
  }
  return resolutions;
}

export interface IndexResolverOptions {
  foundTtlMs?: number;
  /** How long a name the catalog does not have is remembered as unknown (the negative cache). */
  unknownTtlMs?: number;
  maxEntries?: number;
  /** Catalog queries per second at most, and at once. */
  queriesPerSecond?: number;
  queryBurst?: number;
  /** Names asked about in one catalog query at most. */
  batchSize?: number;
}

/**
 * resolveIndex with a cache per name. Found names are kept longer than unknown ones, so an index
 * created after its first error is still found soon. New names are looked up together: names that
 * arrive while a query runs wait for the next one, which asks about all of them (up to `batchSize`),
 * and queries go to the catalog at `queriesPerSecond` at most. A storm of distinct (forged, garbled)
 * names therefore costs a few queries a second, and a real name caught in it waits one query, not
 * its turn behind thousands.
 */
export class IndexResolver {
  /** Catalog queries made so far (for /metrics and the storm tests). */
  queries = 0;
  private readonly cache: TtlCache<Promise<Resolution>>;
  private readonly limiter: RateLimiter;
  private readonly waiting = new Map<string, { resolve: (r: Resolution) => void; reject: (e: Error) => void }>();
  private flushing = false;

  constructor(
    private readonly db: Queryable,
    private readonly options: IndexResolverOptions = {},
  ) {
    this.cache = new TtlCache(options.maxEntries ?? 10_000);
    this.limiter = new RateLimiter(options.queriesPerSecond ?? 10, options.queryBurst ?? 10);
  }

  resolve(indexName: string): Promise<Resolution> {
    const cached = this.cache.get(indexName);
    if (cached) return cached;
    const lookup = new Promise<Resolution>((resolve, reject) => this.waiting.set(indexName, { resolve, reject }));
    this.cache.set(indexName, lookup, this.options.unknownTtlMs ?? 30_000);
    lookup.then(
      (resolution) => {
        const found = resolution.targets.length + resolution.nonSequence.length > 0;
        if (found && this.cache.get(indexName) === lookup) this.cache.set(indexName, lookup, this.options.foundTtlMs ?? 10 * 60_000);
      },
      // A failed lookup (database down) must be retried, not remembered.
      () => {
        if (this.cache.get(indexName) === lookup) this.cache.delete(indexName);
      },
    );
    if (!this.flushing) void this.flush();
    return lookup;
  }

  /** Asks the catalog about the waiting names, a batch per query, until none wait. */
  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.waiting.size > 0) {
        await this.limiter.take();
        const batch = [...this.waiting].slice(0, this.options.batchSize ?? 1_000);
        for (const [name] of batch) this.waiting.delete(name);
        try {
          this.queries++;
          const resolutions = await resolveIndexes(this.db, batch.map(([name]) => name));
          for (const [name, waiter] of batch) waiter.resolve(resolutions.get(name)!);
        } catch (error) {
          for (const [, waiter] of batch) waiter.reject(error as Error);
        }
      }
    } finally {
      this.flushing = false;
    }
  }

  /** Forgets a name, e.g. after a fix failed because the table changed underneath. */
  forget(indexName: string): void {
    this.cache.delete(indexName);
  }

  /** Forgets every name (the daemon now talks to another database). */
  clear(): void {
    this.cache.clear();
  }
}
