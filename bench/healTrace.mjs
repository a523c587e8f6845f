// Loaded into the daemon by the heal benchmark (`node --import ./bench/healTrace.mjs`): keeps every
// stage seqwatch publishes on the `seqwatch:heal` diagnostics channel (src/metrics/healTrace.ts) in
// memory, each with the daemon's CPU time so far, and writes them, one JSON object a line, to $SEQWATCH_HEAL_TRACE when the process exits.
import { subscribe } from 'node:diagnostics_channel';
import { openSync, readSync, writeFileSync } from 'node:fs';

const file = process.env.SEQWATCH_HEAL_TRACE;
if (file) {
  const events = [];
  // With the daemon's CPU time so far (user + system, µs, all its threads): what a heal costs it,
  // whatever the load of the machine (the heal benchmark's daemon_cpu_ms).
  // And, from a pipelined transaction's `sent` to the `fixed` after it, the CPU time of the server
  // process it went to (/proc/<pid>/schedstat: a server on this machine), as `server_ms`. Read at
  // `sent`, before the statements are written: one pread of a file kept open (a few µs), not a
  // readFileSync (which took 2.8 ms there in a profile of the first trial).
  let backend;
  const files = new Map();
  const buffer = Buffer.alloc(128);
  const serverMs = () => {
    try {
      let fd = files.get(backend);
      if (fd === undefined) files.set(backend, (fd = openSync(`/proc/${backend}/schedstat`, 'r')));
      const length = readSync(fd, buffer, 0, buffer.length, 0);
      return Number(buffer.toString('latin1', 0, length).split(' ')[0]) / 1e6;
    } catch {
      return undefined;
    }
  };
  subscribe('seqwatch:heal', (event) => {
    const { user, system } = process.cpuUsage();
    if (event.stage === 'sent') backend = event.backend;
    const server = event.stage === 'sent' || event.stage === 'fixed' ? { server_ms: serverMs() } : {};
    events.push({ ...event, cpu_us: user + system, ...server });
  });
  process.on('exit', () => writeFileSync(file, events.map((e) => JSON.stringify(e)).join('\n') + '\n'));
}
