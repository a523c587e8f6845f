import type { Command } from 'commander';
import type { Database } from '../../db/Database.js';
import { assess, checkSequences, type CheckedSequence, type CheckStatus } from '../../db/checkSequences.js';
import { namesTable, type SequenceColumn } from '../../db/listSequenceColumns.js';
import { CommandFailure, EXIT, exitLeavingConnections, listColumnsOpeningLanes, openDatabase, type Lanes } from '../context.js';
import { dim, green, red, table, yellow } from '../output.js';

export function exitCodeOf(results: CheckedSequence[]): number {
  if (results.some((r) => r.status === 'exhausted' || r.status === 'near_limit')) return EXIT.critical;
  if (results.some((r) => r.status === 'error')) return EXIT.unknown;
  if (results.some((r) => r.status === 'behind')) return EXIT.drift;
  return EXIT.ok;
}

const LABEL: Record<CheckStatus, (r: CheckedSequence) => string> = {
  ok: () => green('in sync'),
  behind: (r) => yellow(`BEHIND by ${r.behindBy}`),
  near_limit: (r) => red(`NEAR LIMIT (${r.usedPercent}% used)`),
  exhausted: () => red('EXHAUSTED'),
  error: (r) => red(`cannot check: ${r.error}`),
};

export function renderCheck(results: CheckedSequence[], database: string): string {
  const rows = results.map((r) => [
    r.column.table,
    r.column.column,
    r.column.sequence,
    r.column.kind,
    r.state?.nextBefore ?? '',
    r.state?.maxId ?? dim('empty'),
    LABEL[r.status](r),
  ]);
  const count = (status: CheckStatus) => results.filter((r) => r.status === status).length;
  const summary =
    `${results.length} sequence-fed column${results.length === 1 ? '' : 's'} in ${database}: ${count('ok')} in sync, ${count('behind')} behind, ` +
    `${count('near_limit')} near their limit, ${count('exhausted')} exhausted, ${count('error')} could not be checked`;
  const hint = count('behind') > 0 ? `\nfix them: seqwatch fix --all   (preview: seqwatch fix --all --dry-run)\n` : '\n';
  return table(['TABLE', 'COLUMN', 'SEQUENCE', 'KIND', 'NEXT', 'MAX', 'STATUS'], rows, [4, 5]) + '\n' + summary + hint;
}

export function checkJson(results: CheckedSequence[], database: string): object {
  return {
    database,
    checked_at: new Date().toISOString(),
    exit_code: exitCodeOf(results),
    sequences: results.map((r) => ({
      table: r.column.table,
      column: r.column.column,
      column_type: r.column.columnType,
      sequence: r.column.sequence,
      kind: r.column.kind,
      status: r.status,
      next_value: r.state?.nextBefore ?? null,
      max_id: r.state?.maxId ?? null,
      limit: r.state?.limit ?? null,
      behind_by: r.behindBy ?? null,
      used_percent: r.usedPercent ?? null,
      error: r.error ?? null,
    })),
  };
}

export function registerCheck(program: Command): void {
  program
    .command('check')
    .description("compare every sequence-fed column's next value with its MAX; read-only")
    .requiredOption('-c, --config <file>', 'YAML config file', '/etc/seqwatch/seqwatch.yaml')
    .option('--database <name>', 'which database, when the config watches several')
    .option('--json', 'machine-readable output')
    .option('--table <name...>', 'only these tables (schema.table or table)')
    .option('--near-limit <percent>', 'call a sequence critical once it uses this much of its range', '90')
    .addHelpText(
      'after',
      `
Exit codes follow the monitoring-plugin convention (Nagios, Icinga, CI):
  0  every sequence is in sync
  1  drift: a sequence is behind MAX (its next INSERT fails): run seqwatch fix
  2  critical: a sequence is exhausted or near its type's limit (setval
     cannot help)
  3  unknown: the database or a table could not be checked, or a --table names
     no table with a sequence-fed column

Covers serial, bigserial, smallserial, identity and DEFAULT nextval() columns,
sequences shared by several tables, partitioned tables (checked at their root),
every schema, quoted names and descending sequences. Examples, after an import:
  seqwatch check -c /etc/seqwatch/seqwatch.yaml --table ticket article
  seqwatch check -c /etc/seqwatch/seqwatch.yaml ||
    seqwatch fix --all -c /etc/seqwatch/seqwatch.yaml`,
    )
    .action(async (options: { config: string; database?: string; json?: boolean; table?: string[]; nearLimit: string }) => {
      const { db } = await openDatabase(options.config, EXIT.unknown, options.database);
      let lanes: Lanes | undefined;
      try {
        let columns: SequenceColumn[];
        ({ columns, lanes } = await listColumnsOpeningLanes(db));
        if (options.table) {
          // A typo must not read as "all in sync" forever: a name that matches nothing is UNKNOWN.
          const unmatched = options.table.filter((name) => !columns.some((c) => namesTable(c, name)));
          if (unmatched.length > 0) throw new CommandFailure(await explainUnmatched(db, unmatched), EXIT.unknown);
          columns = columns.filter((c) => options.table!.some((name) => namesTable(c, name)));
        }
        const nearLimit = Number(options.nearLimit);
        const results = (await checkSequences(lanes, columns, { fix: false, parallel: lanes.size })).map(({ target, state, error }): CheckedSequence =>
          state ? assess(target, state, nearLimit) : { column: target, status: 'error', error: error! },
        );
        process.stdout.write(options.json ? JSON.stringify(checkJson(results, db.name), null, 2) + '\n' : renderCheck(results, db.name));
        process.exitCode = exitCodeOf(results);
        // Answered: monitoring waits for nothing more (the server ending its backends included).
        await exitLeavingConnections(lanes, db);
      } finally {
        await lanes?.close();
        await db.close();
      }
    });
}

/**
 * Why each --table name matched no sequence-fed column: no such table (to_regclass, the name as a
 * bind parameter), or a table that no sequence feeds.
 */
async function explainUnmatched(db: Database, names: string[]): Promise<string> {
  const found = new Set<string>();
  for (const name of names) {
    // One at a time: a name that is not even an identifier (a.b.c.d) makes to_regclass throw.
    const { rows } = await db.query<{ found: boolean }>(`SELECT to_regclass($1) IS NOT NULL AS found`, [name]).catch(() => ({ rows: [{ found: false }] }));
    if (rows[0]?.found) found.add(name);
  }
  const reasons = names.map((name) => (found.has(name) ? `${name}: no sequence-fed column (nothing to check)` : `no table ${name} in database ${db.name}`));
  return `${reasons.join('; ')}: check the spelling (schema.table or table; seqwatch check lists every sequence-fed table)`;
}
