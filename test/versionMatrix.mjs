#!/usr/bin/env node
// `npm run test:matrix [-- 13 17 ...]`: the version-sensitive tests (vitest.config.ts's
// VERSION_MATRIX) once per PostgreSQL version, each run with SEQWATCH_PG_VERSION=N, so every server
// of that run is PostgreSQL N (this machine's, else npm's build, installed on demand). One version
// after another: each run starts several servers, and CI has two cores.
import { spawnSync } from 'node:child_process';
import { SUPPORTED_MAJORS } from '../dist/devtools/throwawayPostgres.js';

const versions = process.argv.slice(2).length > 0 ? process.argv.slice(2).map(Number) : [...SUPPORTED_MAJORS];
const results = [];
for (const version of versions) {
  process.stdout.write(`\n==> PostgreSQL ${version}: the version matrix (SEQWATCH_PG_VERSION=${version} vitest run)\n`);
  const started = Date.now();
  const run = spawnSync('npx', ['vitest', 'run'], { stdio: 'inherit', env: { ...process.env, SEQWATCH_PG_VERSION: String(version) } });
  results.push({ version, ok: run.status === 0, seconds: Math.round((Date.now() - started) / 1000) });
}
process.stdout.write('\nversion matrix:\n');
for (const r of results) process.stdout.write(`  PostgreSQL ${r.version}: ${r.ok ? 'passed' : 'FAILED'} in ${r.seconds} s\n`);
process.exit(results.every((r) => r.ok) ? 0 : 1);
