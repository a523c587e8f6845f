import { ConfigError, databasesOf, loadConfig, readPasswordFile, type Config, type DatabaseConfig } from '../config/config.js';
import type { QueryResultRow } from 'pg';
import { Database, DatabaseUnavailable, type DatabaseOptions, type Statement } from '../db/Database.js';
import type { Transactional } from '../db/guardedSetval.js';
import { listSequenceColumns, type SequenceColumn } from '../db/listSequenceColumns.js';
import type { Queryable } from '../db/Queryable.js';
import { CommandFailure, EXIT } from './exit.js';

// In a module of their own so that main.ts can use them without loading the config and pg.
export { CommandFailure, EXIT };

/** What each Database was made with: a second connection (Lanes) is made with the same. */
const settingsOf = new WeakMap<Database, DatabaseOptions>();

/**
 * The database a command works on: the config's only one, or, when it watches several, the one
 * `--database NAME` names.
 */
export async function databaseFor(
  config: Config,
  name: string | undefined,
  exitCode: number = EXIT.failure,
  /** Given: a password file or credential that cannot be read is handed here, and the database made without it (replay still counts). */
  onUnreadablePassword?: (error: ConfigError) => void,
): Promise<Database> {
  const readPassword = async (d: DatabaseConfig) => {
    try {
      return await readPasswordFile(d);
    } catch (error) {
      if (!onUnreadablePassword || !(error instanceof ConfigError)) throw error;
      onUnreadablePassword(error);
      return undefined;
    }
  };
  const candidates = await Promise.all(
    databasesOf(config).map(async (d) => {
      const options = { url: d.url, password: await readPassword(d) };
      const db = new Database(options);
      settingsOf.set(db, options);
      return db;
    }),
  );
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
 * Statements `check` and `fix` send at once, each on a connection of its own: most of a check over
 * thousands of tables is the server planning and reading each batch, one core's work per
 * connection; with two batches in flight (checkSequences' `parallel`) the server works on two cores.
 */
export const CONNECTIONS = 2;

/**
 * The command's Database and, when the server lets seqwatch open it, a second connection, as one
 * Queryable and Transactional: each statement (or transaction) runs on whichever is free, one at a
 * time on each. The second is a Database of its own: a server or role at its connection limit
 * (SQLSTATE 53300) refuses it without touching the first, and the command then runs on one
 * connection as before (on the shared pool, that refusal would have dropped the first connection too).
 */
export class Lanes implements Queryable, Transactional {
  private readonly free: Database[];
  private readonly waiting: Array<(db: Database) => void> = [];

  private constructor(
    private readonly main: Database,
    private readonly extra: Database[],
  ) {
    this.free = [main, ...extra];
  }

  /** How many statements can run at once (as opened). */
  get size(): number {
    return 1 + this.extra.length;
  }

  /** `db` and the connections opened beside it (up to CONNECTIONS in all; none that the server refuses). */
  static async open(db: Database): Promise<Lanes> {
    const settings = settingsOf.get(db);
    const extra = settings ? Array.from({ length: CONNECTIONS - 1 }, () => new Database(settings)) : [];
    const opened = await Promise.all(
      extra.map((other) =>
        other.query('SELECT 1').then(
          () => other,
          async () => (await other.close(), undefined),
        ),
      ),
    );
    return new Lanes(
      db,
      opened.filter((other): other is Database => other !== undefined),
    );
  }

  query<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<{ rows: R[] }> {
    return this.lease((db) => db.query<R>(text, values));
  }

  transaction<T>(fn: (client: Queryable) => Promise<T>): Promise<T> {
    return this.lease((db) => db.transaction(fn));
  }

  pipeline(statements: Statement[]): Promise<Array<{ rows: QueryResultRow[] }>> {
    return this.lease((db) => db.pipeline(statements));
  }

  /** Closes the connections opened beside the command's Database (the command closes that one). */
  async close(): Promise<void> {
    await Promise.all(this.extra.map((db) => db.close()));
  }

  private async lease<T>(fn: (db: Database) => Promise<T>): Promise<T> {
    const db = this.free.shift() ?? (await new Promise<Database>((resolve) => this.waiting.push(resolve)));
    let keep = true;
    try {
      return await fn(db);
    } catch (error) {
      // A second connection that failed as a connection (killed, the server going away) is given
      // up: what is left runs on the command's own, whose failures stay the command's.
      if (db !== this.main && error instanceof DatabaseUnavailable) keep = false;
      throw error;
    } finally {
      if (keep) {
        const next = this.waiting.shift();
        if (next) next(db);
        else this.free.push(db);
      } else {
        void db.close();
      }
    }
  }
}

/**
 * Ends a command that has written its answer: Terminate goes out on each connection now, and the
 * process exits once its output is flushed, without waiting for the server to close them. A backend
 * that read thousands of tables takes tens of milliseconds to exit (60-77 ms after a check of 2,000
 * sequences, on the benchmark's machine under load), which `check` then spent idle; psql does not
 * wait for it either. The server still sees a clean Terminate, not a lost client.
 */
export async function exitLeavingConnections(...connections: Array<{ close(): Promise<void> } | undefined>): Promise<never> {
  // close() writes Terminate before its first await (pg-pool ends its idle clients at once).
  for (const connection of connections) void connection?.close().catch(() => {});
  await Promise.all([process.stdout, process.stderr].map((stream) => new Promise<void>((resolve) => stream.write('', () => resolve()))));
  process.exit();
}

/**
 * Every sequence-fed column (listSequenceColumns) and the Lanes to check them on: the second
 * connection is opened while the listing keeps the server busy (~150 ms over 2,000 tables), so
 * that the batches that follow start on both at once.
 */
export async function listColumnsOpeningLanes(db: Database): Promise<{ columns: SequenceColumn[]; lanes: Lanes }> {
  const lanes = Lanes.open(db);
  try {
    return { columns: await listSequenceColumns(db), lanes: await lanes };
  } catch (error) {
    await (await lanes).close();
    throw error;
  }
}
