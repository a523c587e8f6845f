import { ConfigError, databasesOf, loadConfig, readPasswordFile, type Config } from '../config/config.js';
import { Database } from '../db/Database.js';
import { CommandFailure, EXIT } from './exit.js';

// In a module of their own so that main.ts can use them without loading the config and pg.
export { CommandFailure, EXIT };

/**
 * The database a command works on: the config's only one, or, when it watches several, the one
 * `--database NAME` names.
 */
export async function databaseFor(config: Config, name: string | undefined, exitCode: number = EXIT.failure): Promise<Database> {
  const candidates = await Promise.all(databasesOf(config).map(async (d) => new Database({ url: d.url, password: await readPasswordFile(d) })));
  const names = candidates.map((db) => db.name);
  const chosen = name === undefined ? (candidates.length === 1 ? candidates[0] : undefined) : candidates.find((db) => db.name === name);
  if (!chosen) {
    throw new CommandFailure(
      name === undefined
        ? `this config watches several databases (${names.join(', ')}): say which with --database NAME`
        : `no database ${name} in this config (${names.join(', ')})`,
      exitCode === EXIT.unknown ? EXIT.unknown : EXIT.usage,
    );
  }
  return chosen;
}

/** The config and a connected Database, or a CommandFailure (exit `unavailableExit`) naming the problem. */
export async function openDatabase(configPath: string, unavailableExit: number = EXIT.failure, name?: string): Promise<{ config: Config; db: Database }> {
  let config: Config;
  try {
    config = await loadConfig(configPath);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    throw new CommandFailure(`${error.message}\nseqwatch: invalid configuration`, unavailableExit);
  }
  let db: Database;
  try {
    db = await databaseFor(config, name, unavailableExit);
  } catch (error) {
    // An unreadable password file or credential: the command cannot run, with its own exit code.
    if (!(error instanceof ConfigError)) throw error;
    throw new CommandFailure(`${error.message}\nseqwatch: invalid configuration`, unavailableExit);
  }
  try {
    await db.query('SELECT 1');
  } catch (error) {
    await db.close();
    throw new CommandFailure(`cannot connect to the database: ${(error as Error).message}`, unavailableExit);
  }
  return { config, db };
}
