import { randomBytes } from 'node:crypto';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import pg from 'pg';
import { inject } from 'vitest';

export const repoRoot = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export interface TestDatabase {
  name: string;
  url: string;
  pool: pg.Pool;
  drop(): Promise<void>;
}

function withDatabase(url: string, database: string): string {
  const parsed = new URL(url);
  parsed.pathname = `/${database}`;
  return parsed.toString();
}

/** A fresh database on the test server, so test files never see each other's tables. */
export async function createTestDatabase(prefix = 't'): Promise<TestDatabase> {
  const { url } = inject('pg');
  const name = `${prefix}_${randomBytes(4).toString('hex')}`;
  const admin = new pg.Client({ connectionString: url });
  await admin.connect();
  await admin.query(`CREATE DATABASE ${name}`);
  await admin.end();
  const dbUrl = withDatabase(url, name);
  const pool = new pg.Pool({ connectionString: dbUrl, max: 6 });
  pool.on('error', () => {});
  return {
    name,
    url: dbUrl,
    pool,
    drop: async () => {
      await pool.end();
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      await client.query(`DROP DATABASE IF EXISTS ${name} WITH (FORCE)`);
      await client.end();
    },
  };
}

/** GOTRS's schema: one resolver, shared with the demo. */
export { gotrsSchema, gotrsSchemaPath } from '../../src/devtools/gotrs.js';

/** One statement on its own connection (a server that is not the suite's, a standby, a subscriber). */
export async function sqlOn(url: string, text: string): Promise<pg.QueryResult> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await client.query(text);
  } finally {
    await client.end();
  }
}
