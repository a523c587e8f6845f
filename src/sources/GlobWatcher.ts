import { readdirSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { globToRegExp } from '../util/glob.js';

const GLOB_SCAN_MS = 1_000;

/** One look at a glob's directory: the matching files, and the most recently written of them. */
export interface GlobScan {
  files: string[];
  newest: string | undefined;
  /** The first scan, at start: files found later are new files (read from their start). */
  initial: boolean;
}

/**
 * Which files a glob source (`/var/log/postgresql/*.json`) names, looked at now and every second.
 * It only reports; what to follow, and what to close, is the caller's to decide.
 */
export class GlobWatcher {
  private timer: NodeJS.Timeout | undefined;
  private readonly pattern: RegExp;
  private readonly dir: string;

  constructor(
    readonly path: string,
    private readonly onScan: (scan: GlobScan) => Promise<void>,
    private readonly onError: (error: Error) => void,
  ) {
    this.dir = dirname(path);
    this.pattern = globToRegExp(basename(path));
  }

  /** Resolves after the first scan was handled. */
  async start(): Promise<void> {
    await this.onScan(this.scan(true));
    this.timer = setInterval(() => void this.onScan(this.scan(false)).catch(this.onError), GLOB_SCAN_MS);
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private scan(initial: boolean): GlobScan {
    let names: string[] = [];
    try {
      names = readdirSync(this.dir).filter((name) => this.pattern.test(name));
    } catch {
      // The directory does not exist yet: files will be found once it does.
    }
    const files = names.map((name) => join(this.dir, name));
    const newest = files.map((f) => ({ f, m: mtimeOf(f) })).sort((a, b) => b.m - a.m)[0]?.f;
    return { files, newest, initial };
  }
}

function mtimeOf(file: string): number {
  try {
    return statSync(file).mtimeMs;
  } catch {
    return 0;
  }
}
