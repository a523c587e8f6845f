import type { AuditEvent, AuditFields, AuditWriter } from '../audit/AuditLog.js';
import type { Statement } from '../db/Database.js';
import type { Resolution, SequenceTarget } from '../db/resolveIndex.js';
import { decidedByFirstLine, detectIncident, UNIQUE_VIOLATION } from '../detect/detectIncident.js';
import { SameErrorFilter } from '../detect/SameErrorFilter.js';
import type { LogRecord } from '../formats/LogRecord.js';
import { Remediator, type RemediationDatabase, type RemediationSettings } from './Remediator.js';

/** The name the made-up record gives: no real index (the warm-up's resolver answers for it). */
export const WARM_UP_CONSTRAINT = 'seqwatch_warm_up';

/** What the warm-up did, for the daemon's log and the tests. */
export interface WarmUpResult {
  /** The event its check's outcome would have been audited as (`in_sync`, or `planned` when the sequence is behind). */
  verdict: string | undefined;
  /** Audit records it built and dropped (none reach the audit log). */
  dropped: number;
}

/**
 * The path from a log record to its audited outcome, run once ahead of the first real error. V8
 * compiles each function on its first call: the first heal after a start paid for compiling the
 * detection, the routing, the check and its outcome's record (incident -> resolved 5-30 ms on the
 * first incident against 0.3 ms later, bench/heal.mjs). Here a record made up for `target` goes
 * through the same functions, and does no harm:
 * - nothing moves: the Remediator here is one of its own in dry run (act is false), and every
 *   transaction it opens is READ ONLY on the server: a setval there would fail, not move anything;
 * - nothing waits for it: its locks are bounded as the rehearsal's are (100 ms);
 * - nothing is audited: its records are built as the audit log builds them, then dropped;
 * - the daemon's own state is not touched: its Remediator (counters, cooldowns, single flights),
 *   the catalog cache (the made-up name is answered here, never looked up), its checkpoints.
 * Errors are the caller's to ignore: a warm-up that fails leaves the first heal as slow as before.
 */
export async function warmHealPath(db: RemediationDatabase, target: SequenceTarget, settings: RemediationSettings): Promise<WarmUpResult> {
  let dropped = 0;
  let verdict: string | undefined;
  const audit: AuditWriter = {
    write(event: AuditEvent, fields: AuditFields, msg: string) {
      // Built as AuditLog.write builds a record (the serialisation is part of the path), then dropped.
      JSON.stringify({ time: new Date().toISOString(), event, ...fields, msg });
      dropped++;
      if (fields.sequence === target.sequence && event !== 'detected') verdict = event;
    },
  };
  const answer: Resolution = { targets: [target], nonSequence: [] };
  const remediator = new Remediator({
    ...settings,
    dryRun: true,
    debounceMs: 0,
    cooldownMs: 0,
    staleAfterMs: undefined,
    db: readOnlyDatabase(db),
    resolver: { resolve: () => Promise.resolve(answer), known: () => answer, forget: () => {} },
    audit,
  });
  const record: LogRecord = {
    source: 'seqwatch warm-up',
    offset: 0,
    line: 1,
    logTime: new Date().toISOString().replace('T', ' ').replace('Z', ' UTC'),
    pid: process.pid,
    user: 'seqwatch',
    database: settings.database,
    sqlstate: UNIQUE_VIOLATION,
    severity: 'ERROR',
    message: `duplicate key value violates unique constraint "${WARM_UP_CONSTRAINT}"`,
    detail: 'Key (id)=(1) already exists.',
  };
  const incident = decidedByFirstLine(record) ?? detectIncident(record);
  if (!incident) throw new Error('the warm-up record was not taken for an incident');
  detectIncident(record);
  const sameErrors = new SameErrorFilter();
  sameErrors.isRepeat(incident, 'postgres-stderr');
  sameErrors.isRepeat(incident, 'postgres-csv');
  await remediator.handle(incident);
  await remediator.stop(1_000);
  return { verdict, dropped };
}

/**
 * What every transaction of the warm-up starts with: READ ONLY, so that the server refuses a setval
 * (SQLSTATE 25006, which the daemon's Database takes for a server turned read-only: it reconnects,
 * and says so in its log) and a fix asked of it by mistake moves nothing; and the rehearsal's bounds
 * (rehearseGuardedSetval), so that it never waits long behind a real fix's lock.
 */
const WARM_UP_SETTINGS: Statement[] = [
  { text: 'SET TRANSACTION READ ONLY' },
  { text: `SELECT pg_catalog.set_config('lock_timeout', '100', true), pg_catalog.set_config('statement_timeout', '1000', true)` },
];

/** `db` with every transaction begun as WARM_UP_SETTINGS say; an outage met through it is not waited out (see whenAvailable). */
export function readOnlyDatabase(db: Pick<RemediationDatabase, 'transaction' | 'pipeline'>): RemediationDatabase {
  return {
    transaction: (fn) =>
      db.transaction(async (client) => {
        for (const setting of WARM_UP_SETTINGS) await client.query(setting.text);
        return fn(client);
      }),
    // The caller reads its own statements' results by position: those put before them are left out.
    ...(db.pipeline
      ? { pipeline: async (statements: Statement[]) => (await db.pipeline!([...WARM_UP_SETTINGS, ...statements])).slice(WARM_UP_SETTINGS.length) }
      : {}),
    waitUntilAvailable: () => Promise.reject(new Error('the warm-up does not wait for the database')),
  };
}
