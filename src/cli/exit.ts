/** Exit codes scripts can rely on. `check` uses the monitoring-plugin convention (0 OK .. 3 UNKNOWN). */
export const EXIT = { ok: 0, failure: 1, drift: 1, critical: 2, unknown: 3, usage: 64 } as const;

/** Thrown by a command to end with this exit code after printing `message` on stderr. */
export class CommandFailure extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}
