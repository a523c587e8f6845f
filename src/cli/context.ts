import { ConfigError, loadConfig, readPasswordFile, type Config } from '../config/config.js';
import { Database } from '../db/Database.js';

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

/** The config and a connected Database, or a CommandFailure (exit `unavailableExit`) naming the problem. */
export async function openDatabase(configPath: string, unavailableExit: number = EXIT.failure): Promise<{ config: Config; db: Database }> {
  let config: Config;
  try {
    config = await loadConfig(configPath);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new CommandFailure(`${error.message}\nseqwatch: invalid configuration`, unavailableExit);
  }
  const db = new Database({ url: config.database.url, password: await readPasswordFile(config) });
  try {
    await db.query('SELECT 1');
  } catch (error) {
    await db.close();
    throw new CommandFailure(`cannot connect to the database: ${(error as Error).message}`, unavailableExit);
  }
  return { config, db };
}
