// Loaded into the daemon by the heal benchmark (`node --import ./bench/healTrace.mjs`): keeps every
// stage seqwatch publishes on the `seqwatch:heal` diagnostics channel (src/metrics/healTrace.ts) in
// memory and writes them, one JSON object a line, to $SEQWATCH_HEAL_TRACE when the process exits.
import { subscribe } from 'node:diagnostics_channel';
import { writeFileSync } from 'node:fs';

const file = process.env.SEQWATCH_HEAL_TRACE;
if (file) {
  const events = [];
  subscribe('seqwatch:heal', (event) => events.push(event));
  process.on('exit', () => writeFileSync(file, events.map((e) => JSON.stringify(e)).join('\n') + '\n'));
}
