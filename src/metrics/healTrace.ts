import { channel } from 'node:diagnostics_channel';

/**
 * The stages of one heal, published on the diagnostics channel `seqwatch:heal` so that a benchmark
 * (bench/healTrace.mjs, loaded with `node --import`) can say where the time between an error and
 * its fix goes. Nobody subscribes in production: then each stage costs one boolean test.
 *
 * - `woken`: the follower woke up (`via`: the directory watch or the poll timer);
 * - `read`: a line reached the parser (`offset` of its first byte);
 * - `incident`: a record became an incident (its `offset`, `constraint` and `logTime`);
 * - `resolved`: the catalog named what the constraint's sequences are (`constraint`);
 * - `check`: the guarded check of a sequence starts (`sequence`);
 * - `sent`: a pipelined transaction is written to the server (`backend`: the server process's pid,
 *   whose CPU time the benchmark reads);
 * - `begun`, `locked`, `stated`: inside its transaction, BEGIN, the advisory lock and the guarded
 *   statement returned (`sequence`, for a check of one sequence);
 * - `fixed`: it returned, committed (`sequence`, `verdict`);
 * - `audited`: its outcome is in the audit log (`sequence`).
 */
export type HealStage = 'woken' | 'read' | 'incident' | 'resolved' | 'check' | 'sent' | 'begun' | 'locked' | 'stated' | 'fixed' | 'audited';

const heal = channel('seqwatch:heal');

/** True when someone listens (test this before building the fields of a hot path's stage). */
export const tracingHeal = (): boolean => heal.hasSubscribers;

/** Publishes a stage with the time it happened (ms since the epoch, sub-millisecond). */
export function traceHeal(stage: HealStage, fields: Record<string, unknown> = {}): void {
  if (heal.hasSubscribers) heal.publish({ stage, at: performance.timeOrigin + performance.now(), ...fields });
}
