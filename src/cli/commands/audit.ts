import type { Command } from 'commander';
import { auditFiles, readAuditLines } from '../../audit/readAuditFiles.js';
import { verifyChain } from '../../audit/verifyChain.js';
import { loadConfig } from '../../config/config.js';
import { CommandFailure, EXIT } from '../context.js';
import { bold, green, red, table, yellow } from '../output.js';

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
Reads the configured audit file and its rotated predecessors (audit.jsonl.1, audit.jsonl.2.gz, ...),
oldest first. Examples:
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
        for (const record of records) process.stdout.write(JSON.stringify(record) + '\n');
        process.stdout.write(JSON.stringify({ summary }) + '\n');
      } else {
        const rows = records.map((r) => [r.time.replace('T', ' ').slice(0, 19), (COLOUR[r.event] ?? ((s: string) => s))(r.event), r.table ?? '', change(r), r.msg ?? '']);
        process.stdout.write(table(['TIME (UTC)', 'EVENT', 'TABLE', 'CHANGE', 'WHAT AND WHY'], rows));
        const perTable = Object.entries(summary.tables);
        if (perTable.length > 0) {
          process.stdout.write(`\n${bold('Per table')}\n`);
          process.stdout.write(
            table(
              ['TABLE', 'REMEDIATED', 'PLANNED', 'ALERTS', 'FAILED', 'LAST CHANGE'],
              perTable.map(([name, t]) => [name, String(t.remediated), String(t.planned), String(t.alert), String(t.failed), t.last_change ?? '']),
              [1, 2, 3, 4],
            ),
          );
        }
        process.stdout.write(`\n${records.length} records from ${files.length} file(s)${unreadable ? `, ${unreadable} unreadable lines skipped` : ''}\n`);
      }
    });

  audit
    .command('verify')
    .description('check the audit log\'s hash chain; names the first record that was altered, removed or inserted')
    .option('-c, --config <file>', 'YAML config file (for the audit path)', '/etc/seqwatch/seqwatch.yaml')
    .option('-f, --file <path...>', 'audit files to verify, oldest first (default: the configured one and its rotations)')
    .addHelpText('after', '\nExit codes: 0 the chain is intact, 1 it is broken (the first bad record is named), 64 usage error.')
    .action(async (options: { config: string; file?: string[] }) => {
      const files = options.file ?? auditFiles((await loadConfig(options.config)).audit.path);
      if (files.length === 0) throw new CommandFailure('no audit file found', EXIT.failure);
      const report = verifyChain(readAuditLines(files));
      if (!report.problem) {
        process.stdout.write(`ok: ${report.records} records in ${files.length} file(s), hash chain intact\n`);
        return;
      }
      const { at, kind, detail } = report.problem;
      let what = '';
      try {
        const r = JSON.parse(at.text) as Record;
        what = ` (${r.time} ${r.event}${r.table ? ` ${r.table}` : ''})`;
      } catch {
        // An unreadable line has nothing more to say.
      }
      process.stdout.write(`${at.file}:${at.line}: ${kind}${what}: ${detail}\n${report.records} records before it verified\n`);
      process.exitCode = EXIT.failure;
    });
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
