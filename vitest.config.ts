import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { configDefaults, defineConfig } from 'vitest/config';

/*
 * Every temporary file and directory of the run (the tests' own, their servers', the daemons they
 * start) goes into one directory, removed when the run ends: ~280 of them were left in /tmp by
 * each full run. Set here, before the test processes start, so that they inherit it (os.tmpdir()
 * reads TMPDIR). Like /tmp, anyone may create in it (sticky): tests hand directories to postgres and
 * to unprivileged users, who must reach them.
 */
if (!process.env.SEQWATCH_TEST_TMPDIR) {
  const runDir = mkdtempSync(join(tmpdir(), 'seqwatch-test-run-'));
  chmodSync(runDir, 0o1777);
  process.env.SEQWATCH_TEST_TMPDIR = process.env.TMPDIR = runDir;
  process.once('exit', () => rmSync(runDir, { recursive: true, force: true }));
}

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

/**
 * The unit tests: no PostgreSQL server (the project has no globalSetup) and no program but Node: the
 * code in-process, real files in a temporary directory, at most the built CLI. `npm run test:unit`
 * runs them on a machine without PostgreSQL. A new server-free test is named `*.unit.test.ts`; the
 * files below are the ones that were server-free before that convention.
 */
export const UNIT = [
  'test/**/*.unit.test.ts',
  'test/detect/*.test.ts',
  'test/formats/*.test.ts',
  'test/sources/LineSplitter.test.ts',
  'test/sources/FileFollower.test.ts',
  'test/config/config.test.ts',
  'test/watch/config.test.ts',
  'test/audit/audit.test.ts',
];

export default defineConfig({
  test: {
    testTimeout: 60_000,
    hookTimeout: 180_000,
    pool: 'forks',
    reporters: ['default', './test/summaryReporter.ts'],
    projects: [
      // The version matrix runs only integration tests: the unit tests do not depend on the version.
      ...(process.env.SEQWATCH_PG_VERSION ? [] : [{ extends: true as const, test: { name: 'unit', include: UNIT } }]),
      {
        extends: true as const,
        test: {
          name: 'integration',
          include: process.env.SEQWATCH_PG_VERSION ? VERSION_MATRIX : ['test/**/*.test.ts'],
          exclude: [...configDefaults.exclude, ...UNIT],
          // One real PostgreSQL server for the run (test/globalSetup.ts says where it comes from).
          globalSetup: ['test/globalSetup.ts'],
        },
      },
    ],
  },
});
