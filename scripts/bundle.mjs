// The program as run (`dist/cli/main.js`, the replay worker `dist/cli/scanWorker.js`), bundled from
// tsc's output in dist/ after `tsc` (npm run build). Why: a short command is mostly start-up, and
// start-up was mostly Node.js resolving and linking module files one by one (zod alone is 95 ES
// modules; pg, yaml and commander dozens more). `seqwatch check` over 2,000 sequences reached its
// first connection after ~0.40 s with tsc's files and ~0.21 s bundled (median of 9, same machine).
//
// Each command stays a chunk of its own, loaded when it runs (main.ts's lazy imports), so `check`
// still loads only check's code. Everything lands in dist/cli itself, beside main.js: main.ts and
// Metrics.ts read `../../package.json` and replay/parallel.ts starts `./scanWorker.js` relative to
// their own module (import.meta.url), which these paths keep true for every chunk. tsc's files stay
// where they were (dist/devtools, the tests and the sources' fallbacks use them).
import { existsSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'rolldown';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const out = join(root, 'dist/cli');
const entry = join(out, 'main.js');
const MARK = '// seqwatch: bundled by scripts/bundle.mjs';

// The bundle replaces tsc's main.js: bundling it again would bundle a bundle whose chunks are
// about to be removed. tsc writes main.js afresh on every build.
if (!existsSync(entry) || readFileSync(entry, 'utf8').includes(MARK)) {
  throw new Error(`${entry} is not tsc's output: run \`npm run build\` (tsc, then this script)`);
}
// The chunks of the previous bundle (their names carry a content hash).
for (const name of readdirSync(out)) if (name.startsWith('chunk-')) rmSync(join(out, name));

await build({
  input: { main: entry, scanWorker: join(root, 'dist/replay/scanWorker.js') },
  platform: 'node',
  // Left to node_modules: the daemon's logger and metrics (pino starts its transports from files
  // of its own, and `run` is started once, not every minute), and pg's optional native and
  // Cloudflare back ends, which seqwatch never uses.
  external: ['pino', 'prom-client', 'pg-native', 'pg-cloudflare', /^cloudflare:/],
  logLevel: 'warn',
  // yaml as its ES module build (the package calls it its browser one: the same code, which tests at
  // run time for what Node has): bundled as modules, only what config.ts uses is kept; Node's
  // condition picks its CommonJS build, which is kept whole (~9 ms more at the start of a command).
  resolve: { alias: { yaml: join(root, 'node_modules/yaml/browser/dist/index.js') } },
  output: {
    dir: out,
    format: 'esm',
    entryFileNames: '[name].js',
    chunkFileNames: 'chunk-[name]-[hash].js',
    banner: (chunk) => (chunk.isEntry ? MARK : ''),
  },
});
rmSync(`${entry}.map`, { force: true });
