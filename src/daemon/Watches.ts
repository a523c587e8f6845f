import type { Logger } from 'pino';
import type { AuditLog } from '../audit/AuditLog.js';
import type { Config } from '../config/config.js';
import { TableWatch, type WatchStats } from '../watch/TableWatch.js';
import type { DatabaseContext } from './Databases.js';

type WatchConfig = Config['watch'];

/**
 * The proactive watch (src/watch), one per database: tables that received rows are checked, every
 * sequence now and then. Started once the databases answer; a reload turns it on or off or changes
 * its intervals.
 */
export class Watches {
  private watches: TableWatch[] = [];

  constructor(
    private readonly contexts: readonly DatabaseContext[],
    private config: WatchConfig,
    private readonly audit: AuditLog,
    private readonly logger: Logger,
  ) {}

  start(): void {
    if (!this.config.enabled) return;
    this.watches = this.contexts.map((c) => this.watchOf(c));
    for (const watch of this.watches) watch.start();
  }

  /** `mayStart`: false while the daemon stops (no watch is started then). */
  async reconfigure(next: WatchConfig, mayStart: boolean): Promise<void> {
    const previous = this.config;
    this.config = next;
    if (next.enabled !== previous.enabled) {
      await this.stop();
      this.watches = [];
      if (mayStart) this.start();
    } else {
      for (const w of this.watches) w.updateSettings({ intervalMs: next.interval, fullSweepMs: next.full_sweep });
    }
  }

  /** No new round starts; the one under way ends with the remediation's grace period. */
  async stop(): Promise<void> {
    await Promise.all(this.watches.map((w) => w.stop()));
  }

  stats(): Array<{ database: string; stats: WatchStats }> {
    return this.watches.map((w, i) => ({ database: this.contexts[i]!.db.name, stats: w.stats }));
  }

  private watchOf(c: DatabaseContext): TableWatch {
    return new TableWatch({
      db: c.db,
      remediation: c.remediator,
      intervalMs: this.config.interval,
      fullSweepMs: this.config.full_sweep,
      onWarning: (message, detail) => this.logger.warn({ database: c.db.name, ...detail }, message),
      onStandby: (standby) => {
        if (!standby) return void this.logger.info({ database: c.db.name, host: c.db.host }, 'the server is a primary again: the watch checks its tables');
        this.logger.warn({ database: c.db.name, host: c.db.host }, 'the server is a standby (pg_is_in_recovery): the watch checks nothing there');
        this.audit.write(
          'alert',
          { database: c.db.name, reason: 'standby', trigger: { source: 'watch' } },
          `the server ${c.db.host ?? ''} of database ${c.db.name} is a standby: nothing is checked or healed there; point database.url at the primary (several hosts with target_session_attrs=read-write)`,
        );
      },
    });
  }
}
