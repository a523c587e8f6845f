import { readdirSync, readFileSync, statSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { isGzip } from '../util/gzip.js';

/** One line of an audit file, as written, with where it is. */
export interface AuditLine {
  file: string;
  /** 1-based line number within its file. */
  line: number;
  text: string;
}

/**
 * The audit file and its rotated predecessors (`audit.jsonl.1`, `audit.jsonl.2.gz`,
 * `audit.jsonl-20261127.gz`, ...), oldest first: logrotate's numbering or dates, compressed or not.
 */
export function auditFiles(path: string): string[] {
  const dir = dirname(path);
  const name = basename(path);
  let entries: string[];
  try {
    entries = readdirSync(dir);
  } catch {
    return [];
  }
  const rotated = entries
    .filter((entry) => entry.startsWith(name) && entry !== name && /^[.-]/.test(entry.slice(name.length)))
    .map((entry) => join(dir, entry));
  const number = (file: string) => /^\.(\d+)(\.gz)?$/.exec(file.slice(join(dir, name).length))?.[1];
  // logrotate's numbers count backwards (.1 is the newest); dated names and the rest go by mtime.
  const ordered = rotated.sort((a, b) => {
    const [na, nb] = [number(a), number(b)];
    if (na !== undefined && nb !== undefined) return Number(nb) - Number(na);
    return statSync(a).mtimeMs - statSync(b).mtimeMs;
  });
  try {
    statSync(path);
    ordered.push(path);
  } catch {
    // No current file (just rotated, nothing written yet).
  }
  return ordered;
}

/** Every line of the given files, gzip ones decompressed (by their magic bytes, whatever their name). */
export function readAuditLines(files: string[]): AuditLine[] {
  const lines: AuditLine[] = [];
  for (const file of files) {
    let bytes = readFileSync(file);
    if (isGzip(bytes)) bytes = gunzipSync(bytes);
    const text = bytes.toString('utf8');
    const parts = text.split('\n');
    if (parts.at(-1) === '') parts.pop();
    parts.forEach((part, i) => lines.push({ file, line: i + 1, text: part }));
  }
  return lines;
}

/** The last complete record's `seq` and `hash` in one audit file (gzip or not), if it has one. */
export function lastRecordIn(file: string): { seq?: number; hash: string } | undefined {
  try {
    const lines = readAuditLines([file]);
    for (let i = lines.length - 1; i >= 0; i--) {
      const fields = parseChainFields(lines[i]!.text);
      if (fields) return fields;
    }
  } catch {
    // Unreadable: the chain starts afresh, and verify will show where.
  }
  return undefined;
}

/** `seq` and `hash` of one audit line (undefined when it is not a complete record). */
export function parseChainFields(line: string | undefined): { seq?: number; hash: string } | undefined {
  if (!line) return undefined;
  try {
    const record = JSON.parse(line) as { seq?: unknown; hash?: unknown };
    if (typeof record.hash !== 'string' || !/^[0-9a-f]{64}$/.test(record.hash)) return undefined;
    return typeof record.seq === 'number' ? { seq: record.seq, hash: record.hash } : { hash: record.hash };
  } catch {
    return undefined;
  }
}
