import type pg from 'pg';
import { gotrsSchema } from './db.js';

const TICKET_COLUMNS =
  'tn, queue_id, ticket_lock_id, user_id, responsible_user_id, ticket_priority_id, ticket_state_id, timeout, until_time, ' +
  'escalation_time, escalation_update_time, escalation_response_time, escalation_solution_time, create_time, create_by, change_time, change_by';
const TICKET_VALUES = '1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, now(), 1, now(), 1';

export async function loadGotrsSchema(pool: pg.Pool): Promise<void> {
  await pool.query(gotrsSchema());
}

/** What an OTRS import does: rows with explicit ids, sequences left where they were. */
export async function importTickets(pool: pg.Pool, count: number): Promise<void> {
  await pool.query(
    `INSERT INTO ticket (id, ${TICKET_COLUMNS}) SELECT g, 'imported-' || g, ${TICKET_VALUES} FROM generate_series(1, $1::int) g`,
    [count],
  );
}

/** What the help desk does next: a ticket without an id, numbered by the sequence. */
export async function insertTicket(pool: pg.Pool, tn: string): Promise<string> {
  const { rows } = await pool.query<{ id: string }>(`INSERT INTO ticket (${TICKET_COLUMNS}) VALUES ($1, ${TICKET_VALUES}) RETURNING id`, [tn]);
  return rows[0]!.id;
}

/** A sequence's state as psql shows it (`sequence` is a trusted, test-written name). */
export async function sequenceValue(pool: pg.Pool, sequence: string): Promise<{ last_value: string; is_called: boolean }> {
  const { rows } = await pool.query<{ last_value: string; is_called: boolean }>(`SELECT last_value::text AS last_value, is_called FROM ${sequence}`);
  return rows[0]!;
}
