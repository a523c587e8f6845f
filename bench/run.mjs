// npm run bench: every benchmark, each against its peer in the same run; results in bench/results/.
import { benchFix } from './fix.mjs';
import { benchHeal } from './heal.mjs';
import { benchLive } from './live.mjs';
import { benchReplay } from './replay.mjs';
import { benchReplayGzip } from './replayGzip.mjs';
import { benchStartup } from './startup.mjs';
import { benchWatch } from './watch.mjs';

const only = process.argv.slice(2);
const all = { heal: benchHeal, live: benchLive, fix: benchFix, startup: benchStartup, replay: benchReplay, 'replay-gzip': benchReplayGzip, watch: benchWatch };
for (const [name, bench] of Object.entries(all)) {
  if (only.length > 0 && !only.includes(name)) continue;
  const { result, file } = await bench();
  process.stdout.write(`\n== ${name}: ${result.benchmark}\n${JSON.stringify(result.median_seconds)} (medians of ${result.runs}, seconds)\n`);
  for (const [key, value] of Object.entries(result)) if (key.startsWith('ratio')) process.stdout.write(`${key}: ${value.toFixed(2)}\n`);
  process.stdout.write(`written to ${file}\n`);
}
