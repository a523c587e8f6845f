import { spawn, type ChildProcess } from 'node:child_process';
import { waitFor } from './daemon.js';

/*
 * A stand-in for rsyslog: receives what PostgreSQL sends to /dev/log and writes it to a file as
 * rsyslog's traditional file format does (`Nov 27 10:00:00 host postgres[3360]: [5-1] ...`, a TAB
 * escaped as #011). Node cannot open a Unix datagram socket, so a few lines of python3 do.
 */
const RECEIVER = `
import socket, sys, re
path, out = sys.argv[1], sys.argv[2]
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(path)
import os
os.chmod(path, 0o666)  # PostgreSQL runs as another user
print("listening", flush=True)
with open(out, "a", buffering=1) as f:
    while True:
        data = s.recv(65536).decode("utf-8", "replace").rstrip("\\n")
        m = re.match(r"^<\\d+>(\\w{3} [ \\d]\\d \\d\\d:\\d\\d:\\d\\d) (.*)$", data, re.S)
        if m:
            f.write(m.group(1) + " testhost " + m.group(2).replace("\\t", "#011").replace("\\n", "#012") + "\\n")
`;

export async function startSyslogReceiver(socketPath: string, outFile: string): Promise<ChildProcess> {
  const child = spawn('python3', ['-c', RECEIVER, socketPath, outFile], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  await waitFor('the syslog receiver', () => out.includes('listening'), 10_000);
  return child;
}
