import type { TestProject } from 'vitest/node';
import { dockerEngineAnswers, startThrowawayPostgres, type ThrowawayPostgres } from '../src/devtools/throwawayPostgres.js';

/**
 * One real PostgreSQL server for the whole run: $TEST_DATABASE_URL when set (its log at
 * $TEST_DATABASE_LOG, if the tests may read it), else a container when a Docker engine answers,
 * else a throwaway cluster from the local binaries. Each test file makes its own databases on it.
 */
let server: ThrowawayPostgres | undefined;

export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  if (process.env.TEST_DATABASE_URL) {
    project.provide('pg', {
      url: process.env.TEST_DATABASE_URL,
      logPath: process.env.TEST_DATABASE_LOG ?? '',
      logLinePrefix: process.env.TEST_DATABASE_LOG_LINE_PREFIX ?? '%m [%p] ',
      kind: 'external',
    });
    return async () => {};
  }
  const order: Array<'local' | 'docker'> = (await dockerEngineAnswers()) ? ['docker', 'local'] : ['local'];
  server = await startThrowawayPostgres({}, order);
  project.provide('pg', { url: server.url, logPath: server.logPath ?? '', logLinePrefix: server.logLinePrefix, kind: server.kind });
  return async () => {
    await server?.destroy();
  };
}

declare module 'vitest' {
  export interface ProvidedContext {
    pg: { url: string; logPath: string; logLinePrefix: string; kind: 'local' | 'docker' | 'external' };
  }
}
