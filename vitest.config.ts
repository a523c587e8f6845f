import { defineConfig } from 'vitest/config';

/**
 * The tests whose outcome depends on the PostgreSQL version: the log formats end to end (csvlog has
 * 24 columns on 13, 26 from 14; jsonlog exists from 15), rotation, the catalog lookups and the fix
 * over every kind of sequence-fed column, the heal on GOTRS's schema, hostile input (it reads the
 * log's bind parameters: "parameters:" up to 16, "Parameters:" from 17), the logical-replication
 * conflict (from 15), and the server itself.
 * With SEQWATCH_PG_VERSION=N only these run, every server of the run on PostgreSQL N;
 * `npm run test:matrix` runs them on each supported version (docs/postgres-versions.md).
 */
export const VERSION_MATRIX = [
  'test/e2e/formats.test.ts',
  'test/e2e/rotation.test.ts',
  'test/e2e/heal.test.ts',
  'test/db/resolveAndFix.test.ts',
  'test/cli/checkFix.test.ts',
  'test/devtools/throwawayPostgres.test.ts',
  'test/safety/hostile.test.ts',
  'test/e2e/replication.test.ts',
];

export default defineConfig({
  test: {
    include: process.env.SEQWATCH_PG_VERSION ? VERSION_MATRIX : ['test/**/*.test.ts'],
    globalSetup: ['test/globalSetup.ts'],
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: 'forks',
    reporters: ['default', './test/summaryReporter.ts'],
  },
});
