import { needsFullScan } from './guardedSetval.js';
import type { Queryable } from './Queryable.js';
import { RateLimiter } from './RateLimiter.js';
import { TtlCache } from './TtlCache.js';
import { fedColumnsCte, leadsAnIndex, peersOf, type RefusedColumn, type Refusal } from './trustRule.js';

/** Another column a shared sequence feeds (trusted too): its MAX counts as well. */
export interface PeerColumn {
  tableOid: number;
  /** Schema-qualified and quoted by the server. */
  table: string;
  columnQuoted: string;
  /** The column leads a btree index (MAX is an index read, not a full scan). */
  indexed: boolean;
}

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
  /** The sequence's schema, unquoted (the policy applies to it as well). */
  sequenceSchema?: string;
  /** The sequence counts up (the usual case); false for a descending one, whose collisions are at MIN. */
  ascending?: boolean;
  /** The index the log named, schema-qualified and quoted (absent when found by listing every column). */
  index?: string;
  /**
   * The other trusted columns this sequence feeds (a sequence shared by several tables): the fix
   * moves it past MAX over all of them, so that one error heals every table it feeds.
   */
  peers?: PeerColumn[];
  /** False when no btree index leads with the column: MAX over it is a full scan of the table. */
  indexed?: boolean;
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
  /** Key columns whose DEFAULT names a sequence that the trust rule refuses (present when there are any). */
  refused?: RefusedColumn[];
}

/** Whether a name resolved to any unique index at all (a target, a key no sequence feeds, or a refused one). */
export function namesAnIndex(resolution: Resolution): boolean {
  return resolution.targets.length + resolution.nonSequence.length + (resolution.refused?.length ?? 0) > 0;
}

/** Columns warm() keeps for a rehearsal, so that one the policy allows is likely among them. */
const REHEARSAL_CANDIDATES = 20;

/** PostgreSQL truncates identifiers to NAMEDATALEN - 1 bytes: a longer "name" cannot be in the catalog. */
const MAX_IDENTIFIER_BYTES = 63;

/*
 * One round trip, the index names as the only bind parameter (a text array). For every unique index
 * of those names, in any schema: its key columns, mapped to the root table of a partition tree, and
 * for each the sequence the trust rule says feeds it (or refuses, and why), whether the column
 * leads an index, and the other trusted columns the same sequence feeds.
 */
const RESOLVE_SQL = `
WITH matched_roots AS (
  SELECT DISTINCT COALESCE(pg_catalog.pg_partition_root(mx.indrelid), mx.indrelid) AS root
  FROM pg_catalog.pg_class mi JOIN pg_catalog.pg_index mx ON mx.indexrelid = mi.oid AND mx.indisunique
  WHERE mi.relname = ANY($1::pg_catalog.text[]) AND mi.relkind IN ('i', 'I')
), ${fedColumnsCte('SELECT root FROM matched_roots')}
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
       sn.nspname AS sequence_schema,
       (SELECT ps.seqincrement > 0 FROM pg_catalog.pg_sequence ps WHERE ps.seqrelid = seq.oid) AS ascending,
       f.kind,
       f.refusal,
       ${leadsAnIndex('r.oid', 'ra.attnum')} AS indexed,
       CASE WHEN f.refusal IS NULL AND seq.oid IS NOT NULL THEN ${peersOf('f.seq', 'r.oid', 'ra.attnum')} END AS peers
FROM pg_catalog.pg_class ix
JOIN pg_catalog.pg_namespace ixn ON ixn.oid = ix.relnamespace
JOIN pg_catalog.pg_index x ON x.indexrelid = ix.oid AND x.indisunique
JOIN pg_catalog.pg_class t ON t.oid = x.indrelid
JOIN pg_catalog.pg_class r ON r.oid = COALESCE(pg_catalog.pg_partition_root(t.oid), t.oid)
JOIN pg_catalog.pg_namespace rn ON rn.oid = r.relnamespace
CROSS JOIN LATERAL unnest(x.indkey::int2[]) WITH ORDINALITY AS k(attnum, n)
JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum
JOIN pg_catalog.pg_attribute ra ON ra.attrelid = r.oid AND ra.attname = a.attname AND NOT ra.attisdropped
LEFT JOIN fed_columns f ON f.tbl = r.oid AND f.att = ra.attnum
LEFT JOIN pg_catalog.pg_class seq ON seq.oid = f.seq
LEFT JOIN pg_catalog.pg_namespace sn ON sn.oid = seq.relnamespace
WHERE ix.relname = ANY($1::pg_catalog.text[]) AND ix.relkind IN ('i', 'I') AND k.n <= x.indnkeyatts
ORDER BY ix.relname, ixn.nspname, k.n, f.seq`;

/** Every unique index name in the user's schemas: what warm() looks up ahead of any error. */
const UNIQUE_INDEX_NAMES_SQL = `
SELECT DISTINCT i.relname
FROM pg_catalog.pg_index x
JOIN pg_catalog.pg_class i ON i.oid = x.indexrelid
JOIN pg_catalog.pg_namespace n ON n.oid = i.relnamespace
WHERE x.indisunique AND n.nspname <> 'information_schema' AND n.nspname !~ '^pg_'
ORDER BY 1`;

const EXISTING_INDEXES_SQL = `
SELECT DISTINCT relname FROM pg_catalog.pg_class WHERE relname = ANY($1::pg_catalog.text[]) AND relkind IN ('i', 'I')`;

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
  sequence_schema?: string;
  ascending: boolean | null;
  indexed?: boolean;
  peers?: Array<{ table_oid: string | number; table_q: string; column_q: string; indexed: boolean }> | null;
}

export function targetOf(row: TargetRow): SequenceTarget {
  const target: SequenceTarget = {
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
  if (row.sequence_schema !== undefined) target.sequenceSchema = row.sequence_schema;
  if (row.indexed !== undefined) target.indexed = row.indexed;
  if (row.peers) target.peers = row.peers.map((p) => ({ tableOid: Number(p.table_oid), table: p.table_q, columnQuoted: p.column_q, indexed: p.indexed }));
  return target;
}

interface Row extends Omit<TargetRow, 'sequence_oid' | 'sequence_q'> {
  index_name: string;
  index_oid: string;
  index_q: string;
  sequence_oid: string | null;
  sequence_q: string | null;
  kind: 'identity' | 'serial' | 'default' | null;
  refusal: Refusal | null;
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
export async function resolveIndexes(db: Queryable, indexNames: string[], options: { fromCatalog?: boolean } = {}): Promise<Map<string, Resolution>> {
  const resolutions = new Map<string, Resolution>();
  for (const name of indexNames) resolutions.set(name, { targets: [], nonSequence: [] });
  let askable = indexNames.filter((name) => !impossibleName(name));
  // Names the catalog itself just listed (warm()) need no asking whether they exist.
  if (askable.length > 1 && !options.fromCatalog) {
    // A batch (a flood of names, most of them forged or garbled): first the cheap question which of
    // them are indexes at all; the full statement, costly to plan, only for those.
    const { rows: found } = await db.query<{ relname: string }>(EXISTING_INDEXES_SQL, [askable]);
    askable = found.map((row) => row.relname);
  }
  if (askable.length === 0) return resolutions;
  const { rows } = await db.query<Row>(RESOLVE_SQL, [askable]);
  const byIndex = new Map<string, Row[]>();
  for (const row of rows) byIndex.set(row.index_oid, [...(byIndex.get(row.index_oid) ?? []), row]);
  for (const columns of byIndex.values()) {
    const first = columns[0]!;
    const resolution = resolutions.get(first.index_name)!;
    const fed = columns.filter((row) => row.sequence_oid !== null && row.refusal === null);
    const refused = columns.filter((row) => row.sequence_oid !== null && row.refusal !== null);
    for (const row of refused) {
      (resolution.refused ??= []).push({ table: row.table_q, column: row.column_name, sequence: row.sequence_q!, why: row.refusal!, index: row.index_q });
    }
    if (fed.length === 0 && refused.length === 0) {
      resolution.nonSequence.push({ table: first.table_q, index: first.index_q, columns: [...new Set(columns.map((c) => c.column_name))] });
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

/** A name's lookup in the cache: its promise, and its answer once it came. */
interface Lookup {
  answer: Promise<Resolution>;
  resolution?: Resolution;
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
  /**
   * Sequence-fed columns whose MAX is an index read, found by the last warm() (a few): what a
   * rehearsal of the fix path reads (Database.rehearsal). Empty before a warm() or when there are none.
   */
  rehearsalTargets: SequenceTarget[] = [];
  private readonly cache: TtlCache<Lookup>;
  private readonly limiter: RateLimiter;
  private readonly waiting = new Map<string, { resolve: (r: Resolution) => void; reject: (e: Error) => void }>();
  private flushing = false;
  /** The database, counting each statement sent (a batch may take two: which names exist, then those). */
  private readonly counted: Queryable;

  constructor(
    private readonly db: Queryable,
    private readonly options: IndexResolverOptions = {},
  ) {
    this.counted = {
      query: (text, values) => {
        this.queries++;
        return db.query(text, values);
      },
    };
    this.cache = new TtlCache(options.maxEntries ?? 10_000);
    this.limiter = new RateLimiter(options.queriesPerSecond ?? 10, options.queryBurst ?? 10);
  }

  resolve(indexName: string): Promise<Resolution> {
    const cached = this.cache.get(indexName);
    if (cached) return cached.answer;
    const lookup: Lookup = { answer: new Promise<Resolution>((resolve, reject) => this.waiting.set(indexName, { resolve, reject })) };
    this.cache.set(indexName, lookup, this.options.unknownTtlMs ?? 30_000);
    lookup.answer.then(
      (resolution) => {
        lookup.resolution = resolution;
        const found = namesAnIndex(resolution);
        if (found && this.cache.get(indexName) === lookup) this.cache.set(indexName, lookup, this.options.foundTtlMs ?? 10 * 60_000);
      },
      // A failed lookup (database down) must be retried, not remembered.
      () => {
        if (this.cache.get(indexName) === lookup) this.cache.delete(indexName);
      },
    );
    if (!this.flushing) void this.flush();
    return lookup.answer;
  }

  /**
   * The answer for this name when it is at hand (looked up, not expired), without waiting: the
   * errors of a name already known go straight to their checks (Remediator.handle).
   */
  known(indexName: string): Resolution | undefined {
    return this.cache.get(indexName)?.resolution;
  }

  /**
   * Looks up every unique index of the database ahead of its first error: one query for the names,
   * then one per `batchSize` of them, at the same bounded rate as any lookup. The first duplicate
   * key error on a table then finds its answer here instead of waiting for the catalog (10-100 ms,
   * more on a large schema: the trust rule reads all of pg_depend), which is most of the time an
   * application keeps failing before it is healed. Each answer is kept as long as a looked-up name
   * (foundTtlMs), so a table changed underneath is looked up afresh within the same bound; call
   * again before that to keep them warm. Resolves to the number of names looked up.
   */
  async warm(): Promise<number> {
    const rehearsal: SequenceTarget[] = [];
    this.queries++;
    const { rows } = await this.db.query<{ relname: string }>(UNIQUE_INDEX_NAMES_SQL);
    // Never more than half the cache: names read from logs (a storm) keep room of their own.
    const names = rows.map((row) => row.relname).slice(0, Math.floor((this.options.maxEntries ?? 10_000) / 2));
    const batchSize = this.options.batchSize ?? 1_000;
    for (let i = 0; i < names.length; i += batchSize) {
      await this.limiter.take();
      const resolutions = await resolveIndexes(this.counted, names.slice(i, i + batchSize), { fromCatalog: true });
      for (const [name, resolution] of resolutions) {
        // A lookup under way for this name answers for itself.
        if (this.waiting.has(name)) continue;
        if (rehearsal.length < REHEARSAL_CANDIDATES) rehearsal.push(...resolution.targets.filter((t) => !needsFullScan(t)));
        const found = namesAnIndex(resolution);
        this.cache.set(
          name,
          { answer: Promise.resolve(resolution), resolution },
          found ? (this.options.foundTtlMs ?? 10 * 60_000) : (this.options.unknownTtlMs ?? 30_000),
        );
      }
    }
    this.rehearsalTargets = rehearsal;
    return names.length;
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
          const resolutions = await resolveIndexes(
            this.counted,
            batch.map(([name]) => name),
          );
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
