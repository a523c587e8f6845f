import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './daemon.js';

/**
 * A stand-in for systemd's end of NOTIFY_SOCKET: a Unix datagram socket that records every message.
 * Node cannot open one, so a few lines of python3 (on every machine of this project) do.
 */
export interface NotifyListener {
  socket: string;
  messages: () => string[];
  close(): void;
}

const LISTENER = `
import socket, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
print("listening", flush=True)
while True:
    data, ancillary, flags, address = s.recvmsg(4096, socket.CMSG_SPACE(64))
    # systemd-notify's BARRIER=1 passes a pipe; closing our copy of it releases the sender.
    for level, kind, payload in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
            import array, os
            fds = array.array("i"); fds.frombytes(payload[: len(payload) - (len(payload) % fds.itemsize)])
            for fd in fds: os.close(fd)
    print(data.decode().replace("\\n", "|"), flush=True)
`;

export async function startNotifyListener(): Promise<NotifyListener> {
  const socket = join(mkdtempSync(join(tmpdir(), 'seqwatch-notify-')), 'notify.sock');
  const child: ChildProcess = spawn('python3', ['-c', LISTENER, socket], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  child.stdout!.on('data', (chunk: Buffer) => (out += chunk.toString()));
  await waitFor('the notify listener', () => out.includes('listening'), 10_000);
  return {
    socket,
    messages: () => out.split('\n').filter((line) => line && line !== 'listening'),
    close: () => child.kill(),
  };
}
