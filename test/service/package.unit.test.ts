import { execFile } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { repoRoot } from '../helpers/db.js';

const run = promisify(execFile);

/*
 * src/devtools (throwaway servers, the demo) imports devDependencies and serves the tests and
 * `npm run demo` only: the package and the image leave it out, and nothing they carry imports it.
 */
describe('what ships', () => {
  it('the npm package: the program without dist/devtools', async () => {
    // --ignore-scripts: the files list only (dist is built by `npm run test:unit` / `npm test`).
    const { stdout } = await run('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: repoRoot });
    const files = (JSON.parse(stdout) as Array<{ files: Array<{ path: string }> }>)[0]!.files.map((f) => f.path);
    expect(files).toContain('dist/cli/main.js');
    expect(files).toContain('LICENSE');
    expect(files.filter((path) => path.includes('devtools'))).toEqual([]);
  });

  it('the program is the bundle (scripts/bundle.mjs), with the replay worker beside it', async () => {
    // Start-up: tsc's hundreds of module files cost `check` ~0.2 s of resolving and linking.
    expect(readFileSync(join(repoRoot, 'dist/cli/main.js'), 'utf8').split('\n', 2)[1]).toBe('// seqwatch: bundled by scripts/bundle.mjs');
    // replay/parallel.ts starts `./scanWorker.js` beside its own module, a chunk in dist/cli.
    expect(readFileSync(join(repoRoot, 'dist/cli/scanWorker.js'), 'utf8')).toContain('bundled by scripts/bundle.mjs');
    const { stdout } = await run(process.execPath, [join(repoRoot, 'dist/cli/main.js'), '--version']);
    expect(stdout.trim()).toBe((JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string }).version);
  });

  it('no shipped module imports devtools', () => {
    const src = join(repoRoot, 'src');
    const shipped = readdirSync(src, { recursive: true, encoding: 'utf8' }).filter((path) => path.endsWith('.ts') && !path.startsWith('devtools/'));
    expect(shipped).toContain('cli/main.ts');
    expect(shipped.filter((path) => /['"](\.\.?\/)+devtools\//.test(readFileSync(join(src, path), 'utf8')))).toEqual([]);
  });

  it('the image: the build stage removes dist/devtools before the runtime stage copies dist', () => {
    const dockerfile = readFileSync(join(repoRoot, 'Dockerfile'), 'utf8');
    const removed = dockerfile.search(/^RUN .*rm -rf dist\/devtools/m);
    const copied = dockerfile.search(/^COPY --from=build \/src\/dist /m);
    expect(removed).toBeGreaterThan(-1);
    expect(copied).toBeGreaterThan(removed);
  });
});
