import type { Logger } from 'pino';
import type { SourceConfig } from '../config/config.js';
import type { Incident } from '../detect/detectIncident.js';
import { SameErrorFilter } from '../detect/SameErrorFilter.js';
import { sourceReadProblem, type HealthProblem } from '../service/health.js';
import type { CheckpointStore } from '../sources/CheckpointStore.js';
import { isGlob } from '../util/glob.js';
import { GlobWatcher, type GlobScan } from '../sources/GlobWatcher.js';
import { destinationOf, SourcePipeline, sourceKey, type SourceMetrics } from './SourcePipeline.js';

/** A glob source's file that has not grown for this long, and is not the newest, is closed. */
const GLOB_IDLE_CLOSE_MS = 60_000;

export interface PipelinesContext {
  logger: Logger;
  checkpoints: CheckpointStore;
  route(incident: Incident): Promise<void>;
  /** Too many names wait for the catalog: files are not read on (see backpressure). */
  catalogFull(): boolean;
  stopping(): boolean;
  /** Standard input ended. */
  onEnd(): void;
}

/**
 * Every source the config names, each a SourcePipeline; a glob source is a GlobWatcher whose files
 * are pipelines of their own (their own parser and checkpoint). reconcile() starts what the config
 * wants and is not running, and closes what it no longer wants: at start and on each reload.
 */
export class SourcePipelines {
  private readonly running = new Map<string, SourcePipeline>();
  private readonly globs = new Map<string, GlobWatcher>();
  /** One server followed through several destinations: each error counted once (only then: see reconcile). */
  private sameErrors: SameErrorFilter | undefined;
  /** Followers waiting in backpressure() right now. */
  private waitingForCatalog = 0;

  constructor(private readonly context: PipelinesContext) {}

  get size(): number {
    return this.running.size;
  }

  get paths(): string[] {
    return [...this.running.values()].map((p) => p.config.path);
  }

  async reconcile(sources: SourceConfig[]): Promise<void> {
    // Only sources of several destinations can hold copies of one error; made before the first
    // record of any source, and kept (the running pipelines ask for it at each record).
    if (new Set(sources.map(destinationOf)).size > 1) this.sameErrors ??= new SameErrorFilter();
    const wanted = new Map(sources.map((s) => [sourceKey(s), s]));
    for (const [key, glob] of this.globs) {
      if (!wanted.has(key)) {
        glob.stop();
        this.globs.delete(key);
      }
    }
    for (const [key, pipeline] of this.running) {
      if (!wanted.has(pipeline.parent ?? key)) await this.close(pipeline);
    }
    for (const [key, source] of wanted) {
      if (isGlob(source.path)) {
        if (!this.globs.has(key)) await this.watchGlob(key, source);
      } else if (!this.running.has(key)) {
        await this.start(source);
      }
    }
  }

  private async start(source: SourceConfig, parent?: string): Promise<void> {
    const pipeline = new SourcePipeline(
      source,
      {
        logger: this.context.logger,
        checkpoints: this.context.checkpoints,
        route: this.context.route,
        isRepeat: (incident, destination) => this.sameErrors?.isRepeat(incident, destination) ?? false,
        backpressure: () => this.backpressure(),
        onEnd: this.context.onEnd,
      },
      parent,
    );
    await pipeline.start();
    this.running.set(pipeline.key, pipeline);
  }

  private async close(pipeline: SourcePipeline): Promise<void> {
    await pipeline.close();
    this.running.delete(pipeline.key);
  }

  /**
   * A glob source (`/var/log/postgresql/*.json`): files that appear later are read from their
   * start, so the logging collector's rotation to a new file loses nothing; files read to the end
   * and unchanged for a while, and not the newest, are closed (their checkpoint kept).
   */
  private async watchGlob(key: string, source: SourceConfig): Promise<void> {
    const onScan = async ({ files, newest, initial }: GlobScan) => {
      for (const file of files) {
        const child: SourceConfig = { ...source, path: file, start_at: initial ? source.start_at : 'beginning' };
        if (!this.running.has(sourceKey(child))) await this.start(child, key);
      }
      const now = Date.now();
      for (const pipeline of [...this.running.values()]) {
        if (pipeline.parent !== key) continue;
        const gone = !files.includes(pipeline.config.path);
        const idle = pipeline.idleFor(now) > GLOB_IDLE_CLOSE_MS && pipeline.config.path !== newest && pipeline.unfinishedIncidents === 0;
        if (gone || idle) await this.close(pipeline);
      }
    };
    const glob = new GlobWatcher(source.path, onScan, (error) => this.context.logger.warn({ source: source.path, err: error.message }, 'glob scan failed'));
    await glob.start();
    this.globs.set(key, glob);
  }

  /**
   * Past the catalog's high-water mark (a flood of forged or garbled names), files are not read on
   * until the lookups catch up: the lines wait on disk instead of in memory, and none is dropped.
   */
  private backpressure(): Promise<void> | undefined {
    if (!this.context.catalogFull()) return undefined;
    return (async () => {
      this.waitingForCatalog++;
      try {
        while (this.context.catalogFull() && !this.context.stopping()) await new Promise((resolve) => setTimeout(resolve, 20));
      } finally {
        this.waitingForCatalog--;
      }
    })();
  }

  problems(now: number): HealthProblem[] {
    // A follower held back by the backpressure is waiting on purpose, not stuck.
    const problems = [...this.running.values()].flatMap((p) => p.problems(now, this.waitingForCatalog > 0));
    for (const glob of this.globs.values()) {
      const unreadable = sourceReadProblem(glob.path, true);
      if (unreadable) problems.push(unreadable);
    }
    return problems;
  }

  metrics(): SourceMetrics[] {
    return [...this.running.values()].map((p) => p.metrics());
  }

  /** At stop, first: no more lines are read, and the globs look for no more files. */
  async stopReading(): Promise<void> {
    for (const glob of this.globs.values()) glob.stop();
    await Promise.all([...this.running.values()].map((p) => p.stopReading()));
  }

  /** Records still being assembled are handled now, within the stop's grace period, not re-read later. */
  flush(): void {
    for (const pipeline of this.running.values()) pipeline.flush();
  }

  /** At stop, last (after the checks under way, or before those still waiting are given up): where each source resumes; then no more. */
  saveCheckpoints(): void {
    for (const pipeline of this.running.values()) pipeline.saveCheckpoint();
  }
}
