import type pg from 'pg';
import { gotrsSchema } from './db.js';

export { importTickets, insertTicket } from '../../src/devtools/gotrs.js';

export async function loadGotrsSchema(pool: pg.Pool): Promise<void> {
  await pool.query(gotrsSchema());
}

/** A sequence's state as psql shows it (`sequence` is a trusted, test-written name). */
export async function sequenceValue(pool: pg.Pool, sequence: string): Promise<{ last_value: string; is_called: boolean }> {
  const { rows } = await pool.query<{ last_value: string; is_called: boolean }>(`SELECT last_value::text AS last_value, is_called FROM ${sequence}`);
  return rows[0]!;
}
