import type { Command } from 'commander';
import { AuditLog } from '../../audit/AuditLog.js';
import { writeSequenceOutcome } from '../../audit/writeSequenceOutcome.js';
import { checkSequenceBatches } from '../../db/checkSequences.js';
import type { SequenceState } from '../../db/guardedSetval.js';
import { namesTable, type SequenceColumn } from '../../db/listSequenceColumns.js';
import { CommandFailure, EXIT, listColumnsOpeningLanes, openDatabase, type Lanes } from '../context.js';
import { green, Progress, red, table, yellow } from '../output.js';

interface Fixed {
  column: SequenceColumn;
  state?: SequenceState;
  error?: string;
}

export function registerFix(program: Command): void {
  program
    .command('fix')
    .description('move every sequence that is behind MAX forward, never backwards (the correct "make db-fix-sequences")')
    .requiredOption('-c, --config <file>', 'YAML config file', '/etc/seqwatch/seqwatch.yaml')
    .option('--database <name>', 'which database, when the config watches several')
    .option('--all', 'every sequence-fed column of the database')
    .option('--table <name...>', 'only these tables (schema.table or table)')
    .option('--dry-run', 'say what would be done, change nothing (audited as "planned")')
    .addHelpText(
      'after',
      `
Uses the daemon's guarded statement: it reads the sequence and MAX in the same
statement as the setval, acts only when the next value would collide, never
moves a sequence backwards, never past its limit (an exhausted sequence is
reported as an alert), and holds the same advisory lock as the daemon. Running
it twice changes nothing the second time. One audit record per sequence.

Exit codes: 0 done, 1 a sequence could not be checked or fixed, 2 a sequence
needs a person (exhausted), 64 usage error (--all and --table together, or
neither).
Examples:
  seqwatch fix --all --dry-run -c /etc/seqwatch/seqwatch.yaml
  seqwatch fix --table ticket --table article -c /etc/seqwatch/seqwatch.yaml`,
    )
    .action(async (options: { config: string; database?: string; all?: boolean; table?: string[]; dryRun?: boolean }) => {
      if (!options.all && !options.table) throw new CommandFailure('say which sequences: --all, or --table NAME (repeatable)', EXIT.usage);
      if (options.all && options.table) throw new CommandFailure('say which sequences: --all or --table, not both', EXIT.usage);
      const { config, db } = await openDatabase(options.config, EXIT.failure, options.database);
      const audit = new AuditLog(config.audit.path);
      const act = !options.dryRun;
      let lanes: Lanes | undefined;
      try {
        let columns: SequenceColumn[];
        ({ columns, lanes } = await listColumnsOpeningLanes(db));
        if (options.table) {
          const unknown = options.table.filter((name) => !columns.some((c) => namesTable(c, name)));
          if (unknown.length > 0) throw new CommandFailure(`no sequence-fed column in table(s): ${unknown.join(', ')}`, EXIT.failure);
          columns = columns.filter((c) => options.table!.some((name) => namesTable(c, name)));
        }
        const progress = new Progress(act ? 'fixing' : 'checking');
        const results: Fixed[] = [];
        const trigger = { source: `seqwatch fix${options.dryRun ? ' --dry-run' : ''}` };
        for await (const batch of checkSequenceBatches(lanes, columns, { fix: act, exclusive: true, parallel: lanes.size })) {
          for (const { target: column, state, error } of batch) {
            if (state) writeSequenceOutcome(audit, column, state, { trigger });
            else
              audit.write(
                'failed',
                { table: column.table, sequence: column.sequence, column: column.column, error, trigger },
                `fixing ${column.sequence} failed: ${error}`,
              );
            results.push({ column, ...(state ? { state } : {}), ...(error ? { error } : {}) });
          }
          progress.update(results.length, columns.length, `${results.length}/${columns.length} sequences`);
        }
        progress.done();
        process.stdout.write(render(results, db.name, act));
        const failed = results.some((r) => r.error);
        const exhausted = results.some((r) => r.state?.verdict === 'exhausted');
        process.exitCode = exhausted ? EXIT.critical : failed ? EXIT.failure : EXIT.ok;
      } finally {
        audit.close();
        await lanes?.close();
        await db.close();
      }
    });
}

function render(results: Fixed[], database: string, act: boolean): string {
  const count = (verdict: string) => results.filter((r) => r.state?.verdict === verdict).length;
  const changed = results.filter((r) => r.error || (r.state && r.state.verdict !== 'in_sync'));
  const rows = changed.map((r) => [
    r.column.table,
    r.column.sequence,
    r.state?.before ?? '',
    r.state?.after ?? '',
    r.state?.maxId ?? '',
    r.error
      ? red(`failed: ${r.error}`)
      : r.state!.verdict === 'remediated'
        ? green('moved forward')
        : r.state!.verdict === 'planned'
          ? yellow('would move forward')
          : red(`EXHAUSTED: MAX reaches the limit ${r.state!.limit}`),
  ]);
  const moved = act ? `${count('remediated')} moved forward` : `${count('planned')} would be moved forward (dry run: nothing changed)`;
  const summary =
    `${results.length} sequence-fed column${results.length === 1 ? '' : 's'} in ${database}: ${moved}, ${count('in_sync')} already in sync, ` +
    `${count('exhausted')} need a person, ${results.filter((r) => r.error).length} failed\n`;
  return (rows.length > 0 ? table(['TABLE', 'SEQUENCE', 'BEFORE', 'AFTER', 'MAX', 'RESULT'], rows, [2, 3, 4]) + '\n' : '') + summary;
}
