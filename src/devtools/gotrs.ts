import { existsSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { createDatabase, type ThrowawayPostgres } from './throwawayPostgres.js';

/** The repository (from src/devtools or dist/devtools alike). */
export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

/**
 * Where GOTRS's real schema is: $SEQWATCH_GOTRS_SCHEMA, else ../shared/fixtures (CI and the team's
 * machines), else the copy in demo/ (a fresh clone on its own), so neither the demo nor a suite goes
 * without it. The one place that decides (the demo and the tests both ask here).
 */
export function gotrsSchemaPath(root: string = repoRoot): string {
  if (process.env.SEQWATCH_GOTRS_SCHEMA) return process.env.SEQWATCH_GOTRS_SCHEMA;
  const shared = resolve(root, '../shared/fixtures/gotrs-schema.postgresql.sql');
  return existsSync(shared) ? shared : join(root, 'demo/gotrs-schema.postgresql.sql');
}

/** GOTRS's real schema (see gotrsSchemaPath). */
export function gotrsSchema(): string {
  const path = gotrsSchemaPath();
  if (!existsSync(path)) {
    throw new Error(`GOTRS schema not found at ${path}: set SEQWATCH_GOTRS_SCHEMA to gotrs-schema.postgresql.sql`);
  }
  return readFileSync(path, 'utf8');
}

/** A database on the throwaway server with GOTRS's schema loaded (empty tables); returns its URL. */
export async function createGotrsDatabase(server: ThrowawayPostgres, name = 'gotrs'): Promise<string> {
  const url = await createDatabase(server, name);
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(gotrsSchema());
  } finally {
    await client.end();
  }
  return url;
}

/** The NOT NULL columns of GOTRS's `ticket` table, and plausible values for them. */
const TICKET_COLUMNS =
  'tn, queue_id, ticket_lock_id, user_id, responsible_user_id, ticket_priority_id, ticket_state_id, timeout, until_time, ' +
  'escalation_time, escalation_update_time, escalation_response_time, escalation_solution_time, create_time, create_by, change_time, change_by';
const TICKET_VALUES = '1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, now(), 1, now(), 1';

/** What the help desk does: a ticket without an id, numbered by the sequence. */
export const INSERT_TICKET_SQL = `INSERT INTO ticket (${TICKET_COLUMNS}) VALUES ($1, ${TICKET_VALUES}) RETURNING id`;

/** What an OTRS import does: rows with explicit ids 1..count, the sequence left where it was. */
export async function importTickets(db: pg.Pool | pg.Client, count: number): Promise<void> {
  await db.query(`INSERT INTO ticket (id, ${TICKET_COLUMNS}) SELECT g, 'imported-' || g, ${TICKET_VALUES} FROM generate_series(1, $1::int) g`, [count]);
}

export async function insertTicket(db: pg.Pool | pg.Client, tn: string): Promise<string> {
  const { rows } = await db.query<{ id: string }>(INSERT_TICKET_SQL, [tn]);
  return rows[0]!.id;
}
