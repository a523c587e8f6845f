import { execFile } from 'node:child_process';

/**
 * Talks to systemd through `systemd-notify`: Node has no Unix datagram sockets, so it cannot write
 * to NOTIFY_SOCKET itself. systemd-notify (systemd >= 246) waits until systemd has taken the
 * message (BARRIER=1), so with NotifyAccess=all the message is attributed to this service even
 * though the sender is a child process. Outside systemd (no NOTIFY_SOCKET) it does nothing.
 */
export class SystemdNotifier {
  readonly enabled: boolean;
  /** How often to feed the watchdog, or undefined when systemd set no watchdog. */
  readonly watchdogIntervalMs: number | undefined;
  private queue: Promise<void> = Promise.resolve();

  constructor(
    private readonly env: NodeJS.ProcessEnv = process.env,
    private readonly onError: (message: string) => void = () => {},
  ) {
    this.enabled = Boolean(env.NOTIFY_SOCKET);
    const usec = Number(env.WATCHDOG_USEC);
    const forUs = !env.WATCHDOG_PID || Number(env.WATCHDOG_PID) === process.pid;
    // Feed at half the timeout, as sd_watchdog_enabled(3) recommends.
    this.watchdogIntervalMs = this.enabled && forUs && usec > 0 ? Math.max(usec / 2000, 50) : undefined;
  }

  ready(status: string): Promise<void> {
    return this.send({ READY: '1', STATUS: status, MAINPID: String(process.pid) });
  }

  status(status: string): Promise<void> {
    return this.send({ STATUS: status });
  }

  watchdog(): Promise<void> {
    return this.send({ WATCHDOG: '1' });
  }

  reloading(): Promise<void> {
    return this.send({ RELOADING: '1' });
  }

  stopping(): Promise<void> {
    return this.send({ STOPPING: '1' });
  }

  /** Messages go out one at a time, in order. */
  private send(fields: Record<string, string>): Promise<void> {
    if (!this.enabled) return Promise.resolve();
    const args = Object.entries(fields).map(([key, value]) => `${key}=${value}`);
    this.queue = this.queue.then(
      () =>
        new Promise<void>((resolve) => {
          execFile('systemd-notify', args, { env: this.env, timeout: 5_000 }, (error) => {
            if (error) this.onError(`systemd-notify ${args.join(' ')}: ${error.message}`);
            resolve();
          });
        }),
    );
    return this.queue;
  }
}
