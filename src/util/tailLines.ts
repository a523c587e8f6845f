import { closeSync, openSync, readSync, statSync } from 'node:fs';

/**
 * The last lines of a file, read from at most its last `maxBytes` bytes (a first line cut by that
 * window is left out). `size` may be given when the caller already knows it.
 */
export function tailLines(path: string, maxBytes: number, size = statSync(path).size): string[] {
  const length = Math.min(size, maxBytes);
  const buffer = Buffer.alloc(length);
  const fd = openSync(path, 'r');
  try {
    readSync(fd, buffer, 0, length, size - length);
  } finally {
    closeSync(fd);
  }
  const lines = buffer.toString('utf8').split('\n');
  if (size > length) lines.shift();
  return lines;
}
