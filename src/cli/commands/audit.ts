import { statSync } from 'node:fs';
import type { Command } from 'commander';
import { auditFiles, readAuditLines } from '../../audit/readAuditFiles.js';
import { initSealing, parseVerificationKey, sealKeyFileFor } from '../../audit/seal.js';
import { verifyChain, type ChainReport } from '../../audit/verifyChain.js';
import { loadConfig } from '../../config/config.js';
import { CommandFailure, EXIT } from '../context.js';
import { bold, green, printable, printableJson, red, table, yellow } from '../output.js';

interface Record {
  time: string;
  event: string;
  table?: string;
  sequence?: string;
  before?: string;
  after?: string;
  max_id?: string | null;
  reason?: string;
  msg?: string;
  host?: string;
  pid?: number;
}

/** `2h`, `30m`, `7d`, `90s` ago, or any date Date.parse understands (`2026-11-27`, ISO 8601). */
export function parseWhen(text: string, now = Date.now()): number {
  const relative = /^(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$/.exec(text.trim());
  if (relative) {
    const unit = { s: 1e3, m: 60e3, h: 3600e3, d: 86400e3, w: 7 * 86400e3 }[relative[2] as 's' | 'm' | 'h' | 'd' | 'w'];
    return now - Number(relative[1]) * unit;
  }
  const absolute = Date.parse(text);
  if (Number.isNaN(absolute)) throw new CommandFailure(`not a time: ${JSON.stringify(text)} (say 2h, 30m, 7d, or a date like 2026-11-27T10:00)`, EXIT.usage);
  return absolute;
}

/** `ticket`, `public.ticket`, `"Billing"."Invoice Lines"` or `Billing.Invoice Lines` against an audited table name. */
function tableMatches(audited: string | undefined, wanted: string): boolean {
  if (!audited) return false;
  const plain = (name: string) => name.replace(/"/g, '');
  const a = plain(audited);
  const w = plain(wanted);
  return a === w || a.endsWith(`.${w}`);
}

const COLOUR: { [event: string]: (s: string) => string } = {
  remediated: green,
  alert: red,
  failed: red,
  planned: yellow,
};

function change(r: Record): string {
  if (r.event === 'remediated' || r.event === 'planned') return `${r.before} -> ${r.after}`;
  if (r.event === 'alert' || r.event === 'skipped') return r.reason ?? '';
  return '';
}

/** A field of a record as a person sees it: whatever the file holds, never a terminal control. */
const shown = (value: unknown): string => printable(typeof value === 'string' ? value : value === undefined || value === null ? '' : String(value));

export function registerAudit(program: Command): void {
  const audit = program
    .command('audit')
    .description('review the audit log: what seqwatch did, when, why, before -> after')
    .option('-c, --config <file>', 'YAML config file (for the audit path)', '/etc/seqwatch/seqwatch.yaml')
    .option('-f, --file <path...>', 'audit files to read instead (rotated and .gz ones too)')
    .option('--since <when>', 'from this time on: 2h, 30m, 7d, or a date')
    .option('--until <when>', 'up to this time')
    .option('--table <name...>', 'only records about these tables')
    .option('--event <event...>', 'only these events (remediated, alert, failed, in_sync, planned, skipped, detected, started, stopped)')
    .option('--json', 'the matching records as JSON lines, then a summary line')
    .enablePositionalOptions()
    .addHelpText(
      'after',
      `
Reads the configured audit file and its rotated predecessors
(audit.jsonl.1, audit.jsonl.2.gz, ...), oldest first. Examples:
  seqwatch audit --since 24h
  seqwatch audit --table ticket --event remediated alert
  seqwatch audit verify`,
    )
    .action(async (options: { config: string; file?: string[]; since?: string; until?: string; table?: string[]; event?: string[]; json?: boolean }) => {
      const files = options.file ?? auditFiles((await loadConfig(options.config)).audit.path);
      if (files.length === 0) throw new CommandFailure('no audit file found', EXIT.failure);
      const since = options.since ? parseWhen(options.since) : -Infinity;
      const until = options.until ? parseWhen(options.until) : Infinity;
      let unreadable = 0;
      const records: Record[] = [];
      for (const line of readAuditLines(files)) {
        let record: Record;
        try {
          record = JSON.parse(line.text) as Record;
        } catch {
          unreadable++;
          continue;
        }
        const time = Date.parse(record.time);
        if (time < since || time > until) continue;
        if (options.event && !options.event.includes(record.event)) continue;
        if (options.table && !options.table.some((name) => tableMatches(record.table, name))) continue;
        records.push(record);
      }
      const summary = summarise(records);
      if (options.json) {
        for (const record of records) process.stdout.write(printableJson(JSON.stringify(record)) + '\n');
        process.stdout.write(printableJson(JSON.stringify({ summary })) + '\n');
      } else {
        const rows = records.map((r) => [
          shown(r.time).replace('T', ' ').slice(0, 19),
          (COLOUR[r.event] ?? ((s: string) => s))(shown(r.event)),
          shown(r.table),
          shown(change(r)),
          shown(r.msg),
        ]);
        process.stdout.write(table(['TIME (UTC)', 'EVENT', 'TABLE', 'CHANGE', 'WHAT AND WHY'], rows));
        const perTable = Object.entries(summary.tables);
        if (perTable.length > 0) {
          process.stdout.write(`\n${bold('Per table')}\n`);
          process.stdout.write(
            table(
              ['TABLE', 'REMEDIATED', 'PLANNED', 'ALERTS', 'FAILED', 'LAST CHANGE'],
              perTable.map(([name, t]) => [shown(name), String(t.remediated), String(t.planned), String(t.alert), String(t.failed), shown(t.last_change)]),
              [1, 2, 3, 4],
            ),
          );
        }
        process.stdout.write(`\n${records.length} records from ${files.length} file(s)${unreadable ? `, ${unreadable} unreadable lines skipped` : ''}\n`);
      }
    });

  audit
    .command('verify')
    .description("check the audit log's chain; names the first record altered, removed or inserted")
    .option('-c, --config <file>', 'YAML config file (for the audit path)', '/etc/seqwatch/seqwatch.yaml')
    .option('-f, --file <path...>', 'audit files to verify, oldest first (default: the configured one and its rotations)')
    .option('--anchor <seq:hash...>', "points of the chain kept elsewhere (the daemon's log: audit chain anchor)")
    .option('--verification-key <key>', 'the key seal-init printed: every record from the first sealed one must be sealed')
    .option('--allow-missing-start', 'the oldest files were rotated away on purpose: the chain may start after #1')
    .addHelpText(
      'after',
      `
What an "ok" proves: the records read were not altered, removed, inserted
or reordered after they were written, unless someone rewrote every hash
from there to the end; the chain starts at record #1 (with
--allow-missing-start: where the kept files start).
With --anchor SEQ:HASH (from the daemon's own log, the journal): the chain
reaches that record unchanged, so neither a rewrite before it nor a cut of
the newest records up to it goes unnoticed.
With --verification-key: every sealed record was sealed by the holder of
the key of its time; who takes the host later cannot reseal earlier ones.
No "ok" proves that no record was written after the last anchor you hold.

Exit codes: 0 the chain is intact, 1 it is not (the first bad record is
named), 64 usage error.
Examples:
  seqwatch audit verify
  seqwatch audit verify --anchor 1200:3f1c...e9 \\
    --verification-key "$(cat /root/seqwatch-verification-key)"`,
    )
    .action(async (options: { config: string; file?: string[]; anchor?: string[]; verificationKey?: string; allowMissingStart?: boolean }) => {
      const files = options.file ?? auditFiles((await loadConfig(options.config)).audit.path);
      if (files.length === 0) throw new CommandFailure('no audit file found', EXIT.failure);
      const anchors = (options.anchor ?? []).map((text) => {
        const match = /^(\d+):([0-9a-f]{64})$/.exec(text.trim());
        if (!match) throw new CommandFailure(`not an anchor: ${JSON.stringify(text)} (say SEQ:HASH, as the daemon logs it)`, EXIT.usage);
        return { seq: Number(match[1]), hash: match[2]! };
      });
      let verificationKey: ReturnType<typeof parseVerificationKey>;
      if (options.verificationKey !== undefined) {
        verificationKey = parseVerificationKey(options.verificationKey);
        if (!verificationKey) throw new CommandFailure('not a verification key: say the KEY/START/SECONDS that seqwatch audit seal-init printed', EXIT.usage);
      }
      const report = verifyChain(readAuditLines(files), {
        anchors,
        ...(verificationKey ? { verificationKey } : {}),
        ...(options.allowMissingStart ? { allowMissingStart: true } : {}),
      });
      if (!report.problem) {
        process.stdout.write(
          `ok: ${describe(report)} in ${files.length} file(s), hash chain intact${anchors.length ? `; ${anchors.length} anchor(s) found unchanged` : ''}${report.sealed ? `; ${report.sealed.records} sealed record(s), seals good up to epoch ${report.sealed.lastEpoch}` : ''}\n`,
        );
        if (report.last?.seq !== undefined)
          process.stdout.write(
            `last record: #${report.last.seq} ${report.last.hash} (keep it to check against later: --anchor ${report.last.seq}:${report.last.hash})\n`,
          );
        for (const run of report.lateSeals ?? []) {
          process.stdout.write(
            `note: records #${run.from}..#${run.to} were sealed epochs after their time, then an audit_unwritable alert: held while the audit log could not be written (or rewritten by whoever held that later key)\n`,
          );
        }
        return;
      }
      const { at, kind, detail } = report.problem;
      let what = '';
      if (at) {
        try {
          const r = JSON.parse(at.text) as Record & { seq?: number };
          what = ` (${r.seq !== undefined ? `#${r.seq} ` : ''}${r.time} ${r.event}${r.table ? ` ${r.table}` : ''})`;
        } catch {
          // An unreadable line has nothing more to say.
        }
      }
      process.stdout.write(printable(`${at ? `${at.file}:${at.line}: ` : ''}${kind}${what}: ${detail}`) + `\n${report.records} records before it verified\n`);
      process.exitCode = EXIT.failure;
    });

  audit
    .command('seal-init')
    .description('start sealing the audit log with a forward-secure key; prints the verification key')
    .option('-c, --config <file>', 'YAML config file (for the audit path)', '/etc/seqwatch/seqwatch.yaml')
    .option('--epoch <minutes>', 'how long each key lives before it is replaced by the next', '15')
    .option('--force', 'replace an existing sealing key (records sealed so far need the old verification key)')
    .addHelpText(
      'after',
      `
Run it as the user the daemon runs as (or chown the key file to it), then
restart the daemon. Keep the printed verification key off this host:
whoever has it can check seals, not make them.
Example:
  seqwatch audit seal-init > /root/seqwatch-verification-key`,
    )
    .action(async (options: { config: string; epoch: string; force?: boolean }) => {
      const path = (await loadConfig(options.config)).audit.path;
      const minutes = Number(options.epoch);
      if (!Number.isInteger(minutes) || minutes < 1) throw new CommandFailure('--epoch: a whole number of minutes, 1 or more', EXIT.usage);
      const keyFile = sealKeyFileFor(path);
      let exists = false;
      try {
        statSync(keyFile);
        exists = true;
      } catch {
        // None yet.
      }
      if (exists && !options.force)
        throw new CommandFailure(`${keyFile} exists already: the log is being sealed (say --force to start over with a new key)`, EXIT.failure);
      const key = initSealing(path, minutes * 60);
      process.stderr.write(
        `sealing key written to ${keyFile} (mode 0600); restart the daemon to use it. The verification key follows: keep it off this host.\n`,
      );
      process.stdout.write(`${key}\n`);
    });
}

/** `12 records (#1..#12)`. */
function describe(report: ChainReport): string {
  const range = report.first !== undefined && report.last?.seq !== undefined ? ` (#${report.first}..#${report.last.seq})` : '';
  return `${report.records} records${range}`;
}

interface TableSummary {
  remediated: number;
  planned: number;
  alert: number;
  failed: number;
  last_change?: string;
}

function summarise(records: Record[]): { events: { [event: string]: number }; tables: { [table: string]: TableSummary } } {
  const events: { [event: string]: number } = {};
  const tables: { [table: string]: TableSummary } = {};
  for (const r of records) {
    events[r.event] = (events[r.event] ?? 0) + 1;
    if (!r.table || !['remediated', 'planned', 'alert', 'failed'].includes(r.event)) continue;
    const t = (tables[r.table] ??= { remediated: 0, planned: 0, alert: 0, failed: 0 });
    t[r.event as 'remediated' | 'planned' | 'alert' | 'failed']++;
    if (r.event === 'remediated') t.last_change = `${r.time.replace('T', ' ').slice(0, 19)} ${r.before} -> ${r.after}`;
  }
  return { events, tables };
}
