import { ConfigError, databasesOf, loadConfig, readPasswordFile, type Config } from '../config/config.js';
import { Database } from '../db/Database.js';
import { listSequenceColumns, type SequenceColumn } from '../db/listSequenceColumns.js';
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

/**
 * Batches `check` and `fix` send at once, each on a connection of its own (of the Database pool's
 * three): most of a check over thousands of tables is the server planning and reading each batch,
 * one core's work per connection; with two in flight it takes about half as long (checkSequences'
 * `parallel`), and monitoring that runs `check` every minute still holds no more than two.
 */
export const CONNECTIONS = 2;

/**
 * Every sequence-fed column, as listSequenceColumns gives it. The listing keeps the server busy for
 * a while (~150 ms over 2,000 tables): the other connection is opened meanwhile, so that the
 * batches that follow start on both at once instead of the second waiting for its login.
 */
export async function listColumnsOpeningConnections(db: Database): Promise<SequenceColumn[]> {
  const [columns] = await Promise.all([listSequenceColumns(db), ...Array.from({ length: CONNECTIONS - 1 }, () => db.query('SELECT 1').catch(() => undefined))]);
  return columns;
}
