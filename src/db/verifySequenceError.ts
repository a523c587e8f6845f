import type { Queryable } from './Queryable.js';
import { RateLimiter } from './RateLimiter.js';
import { TtlCache } from './TtlCache.js';

/** The runbook's sequence errors other than a unique violation (see detect/detectIncident.ts). */
export type SequenceErrorKind = 'sequence_exhausted' | 'sequence_missing' | 'sequence_permission_denied' | 'setval_out_of_bounds';

/** What the catalog confirms about a sequence error a log reported: names from the catalog only. */
export interface VerifiedSequenceError {
  /** Schema-qualified and quoted by the server (for sequence_missing: the name a serial column's sequence would have). */
  sequence: string;
  /** The table (and column) the sequence feeds, or would feed, when the catalog says. */
  table?: string;
  columnQuoted?: string;
  /** The sequence's type, limit and increment (not for sequence_missing). */
  sequenceType?: string;
  limit?: string;
  increment?: string;
}

/*
 * One statement per batch: the names as one text[] bind parameter, each answered per kind.
 *  - sequence_exhausted: a sequence of that name (relname, or schema.relname) that does not cycle and
 *    whose next nextval() would indeed pass its limit now;
 *  - sequence_missing: no relation of that name, and a table whose column would, by the serial
 *    naming rule, be fed by it (`<table>_<column>_seq`);
 *  - sequence_permission_denied, setval_out_of_bounds: a sequence of that name exists.
 * Anything else is unverified: a forged, garbled or outdated record.
 */
const VERIFY_SQL = `
WITH wanted AS (
  SELECT w.kind, w.name FROM unnest($1::text[], $2::text[]) AS w(kind, name)
), seqs AS (
  SELECT w.kind, w.name, c.oid, format('%I.%I', n.nspname, c.relname) AS sequence_q, p.*
  FROM wanted w
  JOIN pg_catalog.pg_class c ON c.relkind = 'S'
  JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace AND (c.relname = w.name OR n.nspname || '.' || c.relname = w.name)
  JOIN pg_catalog.pg_sequence p ON p.seqrelid = c.oid
  WHERE w.kind <> 'sequence_missing'
)
SELECT s.kind, s.name, s.sequence_q AS sequence,
       pg_catalog.format_type(s.seqtypid, NULL) AS sequence_type,
       (CASE WHEN s.seqincrement > 0 THEN s.seqmax ELSE s.seqmin END)::text AS "limit",
       s.seqincrement::text AS increment,
       (SELECT format('%I.%I', tn.nspname, t.relname) FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_class t ON t.oid = d.refobjid JOIN pg_catalog.pg_namespace tn ON tn.oid = t.relnamespace
         WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = s.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass
           AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0 LIMIT 1) AS table_q,
       (SELECT quote_ident(a.attname) FROM pg_catalog.pg_depend d
          JOIN pg_catalog.pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
         WHERE d.classid = 'pg_catalog.pg_class'::regclass AND d.objid = s.oid AND d.refclassid = 'pg_catalog.pg_class'::regclass
           AND d.deptype IN ('a', 'i') AND d.refobjsubid > 0 LIMIT 1) AS column_q
FROM seqs s
WHERE s.kind <> 'sequence_exhausted'
   OR (NOT s.seqcycle AND pg_catalog.has_sequence_privilege(s.oid, 'SELECT, USAGE')
       AND (SELECT CASE WHEN s.seqincrement > 0 THEN v::numeric + s.seqincrement > s.seqmax ELSE v::numeric + s.seqincrement < s.seqmin END
              FROM pg_catalog.pg_sequence_last_value(s.oid) AS v))`;

/** sequence_missing, asked separately (the same columns). */
const VERIFY_MISSING_SQL = `
WITH wanted AS (
  SELECT w.kind, w.name FROM unnest($1::text[], $2::text[]) AS w(kind, name)
)
SELECT w.kind, w.name, format('%I.%I', n.nspname, t.relname || '_' || a.attname || '_seq') AS sequence,
       NULL AS sequence_type, NULL AS "limit", NULL AS increment,
       format('%I.%I', n.nspname, t.relname) AS table_q, quote_ident(a.attname) AS column_q
FROM wanted w
JOIN pg_catalog.pg_class t ON t.relkind IN ('r', 'p') AND NOT t.relispartition
JOIN pg_catalog.pg_namespace n ON n.oid = t.relnamespace
JOIN pg_catalog.pg_attribute a ON a.attrelid = t.oid AND a.attnum > 0 AND NOT a.attisdropped
WHERE w.kind = 'sequence_missing'
  AND (t.relname || '_' || a.attname || '_seq' = w.name OR n.nspname || '.' || t.relname || '_' || a.attname || '_seq' = w.name)
  AND NOT EXISTS (SELECT 1 FROM pg_catalog.pg_class x JOIN pg_catalog.pg_namespace xn ON xn.oid = x.relnamespace
                   WHERE x.relname = t.relname || '_' || a.attname || '_seq' AND xn.oid = n.oid)`;

interface Row {
  kind: SequenceErrorKind;
  name: string;
  sequence: string;
  sequence_type: string | null;
  limit: string | null;
  increment: string | null;
  table_q: string | null;
  column_q: string | null;
}

/** A name from a log the catalog is asked about: not empty, at most 200 characters (more than any schema-qualified name), no NUL (which a text parameter cannot carry). */
const askableName = (name: string): boolean => name.length > 0 && name.length <= 200 && !name.includes('\u0000');

const RELATIONS_NAMED_SQL = `
SELECT w.name FROM unnest($1::text[]) AS w(name)
WHERE EXISTS (SELECT 1 FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
              WHERE c.relname = w.name OR n.nspname || '.' || c.relname = w.name)`;

/**
 * Which of `names` (as a missing sequence's record gives them: a name, or schema.name) name a
 * relation now: of a sequence_missing the catalog does not confirm, whether that is why (the
 * sequence is back) or no table has a column it would feed.
 */
export async function relationsNamed(db: Queryable, names: string[]): Promise<Set<string>> {
  const askable = names.filter(askableName);
  if (askable.length === 0) return new Set();
  const { rows } = await db.query<{ name: string }>(RELATIONS_NAMED_SQL, [askable]);
  return new Set(rows.map((row) => row.name));
}

/** How verifySequenceErrors' answers are keyed: the kind and the name asked about. */
export const sequenceErrorKey = (kind: SequenceErrorKind, name: string) => `${kind}\u0000${name}`;
const key = sequenceErrorKey;

/** Asks the catalog about many (kind, name) pairs in one statement. */
export async function verifySequenceErrors(
  db: Queryable,
  asked: Array<{ kind: SequenceErrorKind; name: string }>,
): Promise<Map<string, VerifiedSequenceError[]>> {
  const answers = new Map<string, VerifiedSequenceError[]>();
  for (const { kind, name } of asked) answers.set(key(kind, name), []);
  const askable = asked.filter(({ name }) => askableName(name));
  if (askable.length === 0) return answers;
  const params = [askable.map((a) => a.kind), askable.map((a) => a.name)];
  const { rows } = await db.query<Row>(VERIFY_SQL, params);
  if (askable.some((a) => a.kind === 'sequence_missing')) rows.push(...(await db.query<Row>(VERIFY_MISSING_SQL, params)).rows);
  for (const row of rows) {
    const verified: VerifiedSequenceError = { sequence: row.sequence };
    if (row.table_q) verified.table = row.table_q;
    if (row.column_q) verified.columnQuoted = row.column_q;
    if (row.sequence_type) verified.sequenceType = row.sequence_type;
    if (row.limit) verified.limit = row.limit;
    if (row.increment) verified.increment = row.increment;
    answers.get(key(row.kind, row.name))?.push(verified);
  }
  return answers;
}

/**
 * verifySequenceErrors with a short cache and batching, as IndexResolver does for index names: a
 * flood of forged sequence errors with distinct names costs a few catalog queries a second, and a
 * real one caught in it waits one query, not its turn behind hundreds.
 */
export class SequenceErrorVerifier {
  private readonly cache = new TtlCache<Promise<VerifiedSequenceError[]>>(10_000);
  private readonly limiter = new RateLimiter(10, 10);
  private readonly waiting = new Map<
    string,
    { kind: SequenceErrorKind; name: string; resolve: (v: VerifiedSequenceError[]) => void; reject: (e: Error) => void }
  >();
  private flushing = false;

  constructor(
    private readonly db: Queryable,
    private readonly ttlMs = 10_000,
  ) {}

  verify(kind: SequenceErrorKind, name: string): Promise<VerifiedSequenceError[]> {
    const k = key(kind, name);
    const cached = this.cache.get(k);
    if (cached) return cached;
    const answer = new Promise<VerifiedSequenceError[]>((resolve, reject) => this.waiting.set(k, { kind, name, resolve, reject }));
    this.cache.set(k, answer, this.ttlMs);
    answer.catch(() => {
      if (this.cache.get(k) === answer) this.cache.delete(k);
    });
    if (!this.flushing) void this.flush();
    return answer;
  }

  private async flush(): Promise<void> {
    this.flushing = true;
    try {
      while (this.waiting.size > 0) {
        await this.limiter.take();
        const batch = [...this.waiting.values()].slice(0, 1_000);
        for (const w of batch) this.waiting.delete(key(w.kind, w.name));
        try {
          const answers = await verifySequenceErrors(this.db, batch);
          for (const w of batch) w.resolve(answers.get(key(w.kind, w.name)) ?? []);
        } catch (error) {
          for (const w of batch) w.reject(error as Error);
        }
      }
    } finally {
      this.flushing = false;
    }
  }
}
