import { detectIncident, type Incident } from '../../src/detect/detectIncident.js';
import type { ScannedFormat } from '../../src/detect/scanner.js';
import { createParser } from '../../src/formats/createParser.js';
import type { LogRecord } from '../../src/formats/LogRecord.js';
import type { RecordParser } from '../../src/formats/RecordParser.js';
import { postgresCatalogs } from './messageCatalogs.js';

/** One log of a format the shared scanner filters, and the prefix it was written with. */
export interface ScannedSample {
  name: string;
  format: ScannedFormat;
  prefix: string;
  text: string;
}

/**
 * The records of a log as the format's full parser reads it line by line (offsets in bytes, as the
 * followers give them); or every line pushed to `parser`, flushed at the end, and its records its own.
 */
export function parseWhole(format: ScannedFormat, prefix: string, text: string, parser?: RecordParser): LogRecord[] {
  const records: LogRecord[] = [];
  const reader = parser ?? createParser(format, { source: 'sample', logLinePrefix: prefix }, (record) => void records.push(record));
  let offset = 0;
  const lines = text.split('\n');
  if (lines[lines.length - 1] === '') lines.pop();
  lines.forEach((line, i) => {
    reader.push(line.endsWith('\r') ? line.slice(0, -1) : line, { offset, line: i + 1, ...(i === 0 ? { boundary: 'start' as const } : {}) });
    offset += Buffer.byteLength(line) + 1;
  });
  reader.flush();
  return records;
}

/** The incidents of a log by the full parser and the detector: what the fast paths must not lose. */
export function incidentsOf(format: ScannedFormat, prefix: string, text: string): Array<{ record: LogRecord; incident: Incident }> {
  return parseWhole(format, prefix, text).flatMap((record) => {
    const incident = detectIncident(record);
    return incident ? [{ record, incident }] : [];
  });
}

/** The messages of every family detectIncident acts on (msgids of PostgreSQL's catalogs), with their SQLSTATE and arguments. */
const FAMILIES = [
  { msgid: 'duplicate key value violates unique constraint "%s"', sqlstate: '23505', args: ['ticket_pkey'] },
  { msgid: 'nextval: reached maximum value of sequence "%s" (%lld)', sqlstate: '2200H', args: ['tiny_id_seq', '32767'] },
  { msgid: 'nextval: reached minimum value of sequence "%s" (%lld)', sqlstate: '2200H', args: ['counter', '1'] },
  { msgid: 'relation "%s" does not exist', sqlstate: '42P01', args: ['ticket_id_seq'] },
  { msgid: 'permission denied for sequence %s', sqlstate: '42501', args: ['article_id_seq'] },
  { msgid: 'setval: value %lld is out of bounds for sequence "%s" (%lld..%lld)', sqlstate: '22003', args: ['40000', 'valid_id_seq', '1', '32767'] },
  // PostgreSQL 18's apply worker (not in the 15 catalogs: English wherever it is printed).
  { msgid: 'conflict detected on relation "%s.%s": conflict=%s', sqlstate: '23505', args: ['public', 't', 'insert_exists'] },
];

/** printf as gettext's translations use it: %s, %lld, %d, %X in order, or %N$s by position. */
export function render(format: string, args: string[]): string {
  let next = 0;
  return format.replace(/%(?:(\d+)\$)?(?:s|lld|llu|d|u|X)/g, (_, position: string | undefined) => args[position ? Number(position) - 1 : next++] ?? '');
}

/** Every language whose catalog is installed (one per language), and English first. */
export function installedLanguages(): Array<{ language: string; text: (msgid: string) => string }> {
  const seen = new Set<string>();
  const out = [{ language: 'en', text: (msgid: string) => msgid }];
  for (const catalog of postgresCatalogs()) {
    if (seen.has(catalog.language)) continue;
    seen.add(catalog.language);
    out.push({ language: catalog.language, text: (msgid: string) => catalog.messages.get(msgid) ?? msgid });
  }
  return out;
}

const T = '2026-12-02 06:00:00.000 UTC';

/**
 * Logs holding every family in every language installed, as a server with that lc_messages writes
 * them: stderr with %e, stderr verbose (the code before the message, a LOCATION line), stderr with
 * neither (only English and conflicts are found there), stderr with %l, csvlog and jsonlog; each
 * error with its DETAIL and STATEMENT, between ordinary statements and errors of no family.
 */
export function catalogSamples(): ScannedSample[] {
  const samples: ScannedSample[] = [];
  const variants: Array<{ name: string; format: ScannedFormat; prefix: string; verbose?: boolean }> = [
    { name: 'stderr %e', format: 'postgres-stderr', prefix: '%m [%p] %e %q%u@%d ' },
    { name: 'stderr verbose', format: 'postgres-stderr', prefix: '%m [%p] %q%u@%d ', verbose: true },
    { name: 'stderr', format: 'postgres-stderr', prefix: '%m [%p] %q%u@%d ' },
    { name: 'stderr %l %e', format: 'postgres-stderr', prefix: '%m [%p] %l %e %q%u@%d ' },
    { name: 'csvlog', format: 'postgres-csv', prefix: '%m [%p] ' },
    { name: 'jsonlog', format: 'postgres-json', prefix: '%m [%p] ' },
  ];
  for (const variant of variants) {
    const lines: string[] = [];
    let pid = 100;
    let lineNumber = 1;
    for (const { text } of installedLanguages()) {
      const word = (english: string) => text(english);
      const marker = (english: string) => text(`${english}:  `);
      for (const family of FAMILIES) {
        pid++;
        const message = render(text(family.msgid), family.args);
        const detail = render(text('Key (%s)=(%s) already exists.'), ['id', '1']);
        const statement = 'INSERT INTO t DEFAULT VALUES';
        const noise = `${T} [${pid + 1000}] app@db LOG:  duration: 0.1 ms  statement: SELECT 1`;
        if (variant.format === 'postgres-stderr') {
          const head = (code: string) =>
            `${T} [${pid}] ${variant.prefix.includes('%l') ? `${lineNumber++} ` : ''}${variant.prefix.includes('%e') ? `${code} ` : ''}app@db `;
          const code = family.sqlstate;
          const body = variant.verbose ? `${code}: ${message}` : message;
          lines.push(`${head(code)}${word('ERROR')}:  ${body}`);
          lines.push(`${head(code)}${marker('DETAIL')}${detail}`);
          if (variant.verbose) lines.push(`${head(code)}${render(text('LOCATION:  %s, %s:%d\n'), ['_bt_check_unique', 'nbtinsert.c', '664']).trimEnd()}`);
          lines.push(`${head(code)}${marker('STATEMENT')}${statement}`);
          lines.push(noise);
          lines.push(`${head('42601')}${word('ERROR')}:  ${variant.verbose ? '42601: ' : ''}syntax error at or near "SELEC"`);
        } else if (variant.format === 'postgres-csv') {
          const csv = (value: string) => `"${value.replace(/"/g, '""')}"`;
          lines.push(
            `${T},"app","db",${pid},"[local]",6b0f.1,1,"INSERT",${T},3/4,0,${word('ERROR')},${family.sqlstate},${csv(message)},${csv(detail)},,,,,${csv(statement)},,,"psql","client backend",,0`,
          );
          lines.push(
            `${T},"app","db",${pid + 1000},"[local]",6b0f.2,1,"SELECT",${T},3/5,0,LOG,00000,"duration: 0.1 ms  statement: SELECT 1",,,,,,,,,"psql","client backend",,0`,
          );
        } else {
          lines.push(
            JSON.stringify({
              timestamp: T,
              user: 'app',
              dbname: 'db',
              pid,
              error_severity: word('ERROR'),
              state_code: family.sqlstate,
              message,
              detail,
              statement,
              backend_type: 'client backend',
            }),
          );
          lines.push(
            JSON.stringify({
              timestamp: T,
              user: 'app',
              dbname: 'db',
              pid: pid + 1000,
              error_severity: 'LOG',
              state_code: '00000',
              message: 'duration: 0.1 ms  statement: SELECT 1',
            }),
          );
        }
      }
    }
    if (variant.format === 'postgres-csv') {
      // The field (stop 23): csvlog lines of an error pasted into a statement (an application that
      // archives logs, or anyone who can run SQL): inside a quoted field, lines shaped exactly like
      // records, which are that statement's text, not errors (the full parser frames by quotes).
      const csv = (value: string) => `"${value.replace(/"/g, '""')}"`;
      // One as a record quotes its fields (the quotes doubled in the statement), one with none (as a forger writes it).
      const pasted = [
        `${T},"app","db",901,"[local]",6b0f.9,1,"INSERT",${T},3/9,1,ERROR,23505,${csv('duplicate key value violates unique constraint "forged_pkey"')},,,,,,,,,"psql","client backend",,0`,
        `${T},app,db,902,local,6b0f.9,2,INSERT,${T},3/9,1,ERROR,23505,duplicate key value violates unique constraint «forged_pkey»,,,,,,,,,psql,client backend,,0`,
      ];
      const statement = `INSERT INTO archived_logs VALUES ('\n${pasted.join('\n')}\n')`;
      lines.splice(
        Math.floor(lines.length / 2),
        0,
        ...`${T},"app","db",899,"[local]",6b0f.8,1,"INSERT",${T},3/8,0,LOG,00000,${csv(`statement: ${statement}`)},,,,,,${csv(statement)},,,"psql","client backend",,0`.split(
          '\n',
        ),
      );
    }
    samples.push({ name: variant.name, format: variant.format, prefix: variant.prefix, text: lines.join('\n') + '\n' });
  }
  return samples;
}

/** An incident with every field a packed incident carries, for the packing tests (packIncidents, IncidentPacker). */
export const PACKED_INCIDENT: Incident = {
  kind: 'unique_violation',
  constraint: 'users_login_key',
  source: '/l',
  offset: 941,
  logTime: '2026-11-27 00:00:00.005 UTC',
  pid: 1005,
  database: 'gotrs',
};
