#!/usr/bin/env node
// A stand-in for journalctl (no journald runs in a container): serves the entries of the JSON-lines
// file in $FAKE_JOURNAL as `journalctl --follow --output=json --unit=U [--cursor=C | --lines=0]`
// does. Like systemd's, --cursor includes the entry at the cursor.
import { appendFileSync, existsSync, readFileSync } from 'node:fs';

const file = process.env.FAKE_JOURNAL;
const args = process.argv.slice(2);
const cursor = args.find((a) => a.startsWith('--cursor='))?.slice('--cursor='.length);
const read = () => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);
let lines = read();
let sent;
if (cursor) {
  const at = lines.findIndex((l) => JSON.parse(l).__CURSOR === cursor);
  sent = at === -1 ? 0 : at;
} else {
  sent = lines.length; // --lines=0: only what comes next
}
const flush = () => {
  lines = read();
  for (; sent < lines.length; sent++) process.stdout.write(lines[sent] + '\n');
};
flush();
setInterval(flush, 50);
// Tests wait for this before they write entries that --lines=0 would otherwise pass over.
appendFileSync(`${file}.started`, `${process.pid}\n`);
// The real one dies of SIGPIPE at its next write once the daemon is gone; this one may have nothing to
// write, so it leaves when its parent has (a daemon killed -9 by a test).
const parent = process.ppid;
setInterval(() => {
  if (process.ppid !== parent) process.exit(0);
}, 500).unref();
process.stdout.on('error', () => process.exit(0));
