import { existsSync } from 'node:fs';
import { basename } from 'node:path';
import type { Command } from 'commander';
import type { Config } from '../../config/config.js';
import type { CheckedSequence } from '../../db/checkSequences.js';
import type { Database } from '../../db/Database.js';
import type { Resolution, SequenceTarget } from '../../db/resolveIndex.js';
import type { SequenceErrorKind, VerifiedSequenceError } from '../../db/verifySequenceError.js';
import { sqlstateContradicts, type Incident } from '../../detect/detectIncident.js';
import { LogTimes } from '../../replay/logTimes.js';
import type { ScanThreads } from '../../replay/parallel.js';
import { orderFiles } from '../../replay/fileOrder.js';
import { scanLog, threadsFor, type ScanCounters } from '../../replay/scanLog.js';
import type { UntoldErrors } from '../../replay/untoldErrors.js';
import { addScanCounters, newScanCounters, PartlyScanned, type RepeatRun } from '../../replay/scanRange.js';
import { detectedText, FORMATS, misreadText, readsLogLinePrefix, type Format } from '../../formats/formatNames.js';
import { printsSqlstate } from '../../formats/logLinePrefix.js';
import { isEnglish } from '../../formats/severity.js';
import { CommandFailure, EXIT } from '../exit.js';
import { withoutFetchLoading } from '../fetchLoading.js';
import { bold, counted, dim, green, printable, printableJson, Progress, red, table, yellow } from '../output.js';
import { namesOtherDatabase } from '../../detect/otherDatabase.js';
import { readDenial } from '../../util/readDenial.js';

/**
 * Distinct constraint names tallied at most: a log flooded with forged names (any database user can
 * RAISE them) must not take the memory and the minutes of one record and one lookup per name.
 * Errors on further names are counted, not looked up.
 */
const MAX_TALLIED = 10_000;
/** Names looked up in one catalog query. */
const LOOKUP_BATCH = 1_000;

interface ConstraintTally {
  kind: Incident['kind'];
  constraint: string;
  errors: number;
  /** Bursts further apart than the debounce window: each would have been one check. */
  checks: number;
  /**
   * The earliest and latest times of its errors (and where the earliest is), with their epochs: a
   * format read line by line hands a record on once its backend's next line comes, or at the
   * file's end, so not always in the file's order.
   */
  first?: string;
  firstEpoch?: number;
  last?: string;
  latestEpoch?: number;
  /** The time of the error counted last, which bursts are measured from (countError). */
  lastEpoch?: number;
  inBurst: number;
  where: string;
}

export function registerReplay(program: Command): void {
  program
    .command('replay')
    .description('run detection over historical logs (read-only): what the daemon would have done, per table')
    .argument('<logfile...>', 'the logs (in --format), plain or gzip-compressed; - for standard input')
    .option('-c, --config <file>', 'YAML config file (database, log_line_prefix, debounce)', '/etc/seqwatch/seqwatch.yaml')
    .option('--log-line-prefix <prefix>', "the server's log_line_prefix when these logs were written (default: the config's first source)")
    .option('--format <format>', `the logs' format: ${FORMATS.join(', ')} (default: the config's first source's)`)
    .option('--json', 'machine-readable output')
    .option('--database <name>', 'which database, when the config watches several')
    .option(
      '--threads <n>',
      'threads for one plain file of 64 MiB or more (same output; each thread starts and warms up apart: it pays off from a few GiB)',
      '1',
    )
    .addHelpText(
      'after',
      `
Nothing is changed: the catalog is read to resolve each constraint, and
each sequence is checked read-only to show where it stands now. Without a
reachable database the counts are still shown. At most 10,000 distinct
names are looked up (1,000 a query); errors on further names are counted.
Without -c and without the default config (logs copied to another
machine): the defaults, and the database from libpq's PG* variables.
Ends 1 when the report is not whole (a file or lines it could not read,
no database): it says why.
Examples:
  seqwatch replay /var/log/postgresql/postgresql-15-main.log.1 \\
    /var/log/postgresql/*.gz
  seqwatch replay --log-line-prefix '%m [%p] ' old.log --json`,
    )
    .action(
      async (
        files: string[],
        options: { config: string; logLinePrefix?: string; format?: string; json?: boolean; database?: string; threads: string },
        command: Command,
      ) => {
        const threads = Number(options.threads);
        if (!Number.isInteger(threads) || threads < 1) throw new CommandFailure(`--threads ${options.threads}: a whole number from 1`, EXIT.usage);
        // The scanning workers start first: they load their modules (~0.1 s of another core) while
        // this thread loads the config's (yaml and zod, ~0.2 s), and scan as soon as it is read.
        const pool = threads > 1 ? await threadsFor(files, threads, options.format) : undefined;
        try {
          await replay(files, options, threads, pool, command.getOptionValueSource('config') === 'default');
        } finally {
          await pool?.close();
        }
      },
    );
}

async function replay(
  files: string[],
  options: { config: string; logLinePrefix?: string; format?: string; json?: boolean; database?: string },
  threads: number,
  pool: ScanThreads | undefined,
  /** -c was not given: without the default config (logs copied to another machine), the defaults. */
  defaultConfig: boolean,
): Promise<void> {
  const { DEFAULT_LOG_LINE_PREFIX, loadConfig, parseConfig, recordFormatOf } = await import('../../config/config.js');
  let config: Config;
  if (defaultConfig && !existsSync(options.config)) {
    config = parseConfig('sources: []\n', options.config);
    process.stderr.write(
      `seqwatch: no config at ${options.config}: replaying with the defaults (--log-line-prefix and --format, else ${JSON.stringify(DEFAULT_LOG_LINE_PREFIX)} and postgres-stderr; ` +
        `the database from libpq's environment: PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD)\n`,
    );
  } else config = await loadConfig(options.config);
  const prefix = options.logLinePrefix ?? config.sources[0]?.log_line_prefix ?? DEFAULT_LOG_LINE_PREFIX;
  // A watch-only config (sources: []) has no source to take them from: the defaults, or the options.
  const format = (options.format ?? config.sources[0]?.format ?? 'postgres-stderr') as Format;
  if (!(FORMATS as readonly string[]).includes(format)) throw new CommandFailure(`unknown format ${format}: one of ${FORMATS.join(', ')}`, EXIT.usage);
  const tallies = new Map<string, ConstraintTally>();
  const untallied = { errors: 0 };
  // The database's modules (pg; ~0.1 s) load, and its connection opens, while the scan runs:
  // the scan waits for none of it. Its incidents wait for the database's name meanwhile (which
  // records are another database's: the incidents of the scan's first ~0.1 s). A config or
  // --database the database cannot be chosen by stops the scan.
  const stop = new AbortController();
  // (pg loaded as main.ts loads the commands' modules: without Node.js's fetch, see withoutFetchLoading)
  const loading = withoutFetchLoading(() =>
    Promise.all([
      import('../context.js'),
      import('../../db/resolveIndex.js'),
      import('../../db/checkSequences.js'),
      import('../../db/verifySequenceError.js'),
      import('../../remediate/advice.js'),
    ]),
  );
  // A password file it may not read (root's, as the docs advise, and replay run by an operator in
  // group adm): the database is not asked, the counts are shown all the same.
  let unreadablePassword: Error | undefined;
  const opening = loading.then(([{ databaseFor }]) => databaseFor(config, options.database, EXIT.failure, (error) => (unreadablePassword ??= error)));
  opening.catch((error: unknown) => stop.abort(error));
  let db: Database | undefined;
  /** What the scan found before the database was chosen (whose records are another database's?): incidents, and runs of repeats. */
  const early: Array<Incident | RepeatRun> = [];
  let otherDatabase = 0;
  /** Errors whose record's SQLSTATE says they are not that error (a RAISE of its words): passed over, as the daemon skips them. */
  let otherSqlstate = 0;
  const window = config.remediation.debounce_ms;
  const times = new LogTimes();
  // The catalog's work is done while the scan runs, one statement at a time: each name looked up
  // as it is first found (batches of what is waiting), the sequences it resolves to checked
  // read-only, each sequence error verified. The scan's end then waits for none of it (~70 ms
  // for a fresh connection's first lookup, ~15 ms for the checks and verifications, measured on
  // the bench's log).
  const resolutions = new Map<string, Resolution | string>();
  const toLookUp: string[] = [];
  const toCheck: SequenceTarget[] = [];
  const toVerify: Array<{ kind: SequenceErrorKind; name: string }> = [];
  /** Where each sequence stands now, as its read-only check says. */
  const standing = new Map<SequenceTarget, string>();
  const verified = new Map<string, VerifiedSequenceError[]>();
  let lookupFailed: Error | undefined;
  let verifyFailed: Error | undefined;
  /** Of a missing sequence the catalog does not confirm, why (advice.ts's MISSING_UNVERIFIED). */
  const missingWhy = new Map<string, 'exists' | 'unfed'>();
  let working: Promise<void> | undefined;
  const catalogWork = () => {
    working ??= (async () => {
      const unreachable = await reachable;
      const [, { resolveIndexes }, { assess, checkSequences }, { verifySequenceErrors, relationsNamed, sequenceErrorKey }] = await loading;
      if (unreachable) throw unreachable;
      while (!lookupFailed) {
        if (toLookUp.length > 0) {
          for (const [name, resolution] of await resolveIndexes(db!, toLookUp.splice(0, LOOKUP_BATCH))) {
            resolutions.set(name, resolution);
            if (typeof resolution !== 'string') toCheck.push(...resolution.targets);
          }
        } else if (toCheck.length > 0) {
          for (const { target, state, error } of await checkSequences(db!, toCheck.splice(0), { fix: false }))
            standing.set(target, nowOf(state && assess({ ...target, kind: 'serial', columnType: '' }, state, 90), error));
        } else if (toVerify.length > 0) {
          // The runbook's other sequence errors (exhausted, missing, no permission, setval out of
          // bounds): as the daemon does, an alert where the catalog confirms them.
          const asked = toVerify.splice(0);
          try {
            for (const [key, found] of await verifySequenceErrors(db!, asked)) verified.set(key, found);
            // A missing sequence it does not confirm: which of the two reasons (MISSING_UNVERIFIED).
            const unconfirmed = asked.filter(({ kind, name }) => kind === 'sequence_missing' && verified.get(sequenceErrorKey(kind, name))?.length === 0);
            if (unconfirmed.length > 0) {
              const named = await relationsNamed(
                db!,
                unconfirmed.map(({ name }) => name),
              );
              for (const { name } of unconfirmed) missingWhy.set(name, named.has(name) ? 'exists' : 'unfed');
            }
          } catch (error) {
            verifyFailed ??= error as Error;
          }
        } else break;
      }
    })().then(
      () => void (working = undefined),
      (error: unknown) => {
        lookupFailed ??= error as Error;
        working = undefined;
      },
    );
  };
  /** This database's errors by family (the other databases' counted apart). */
  const routed: Partial<Record<Incident['kind'], number>> = {};
  /** Routes an incident, and the repeats of it that follow (`run`, see RepeatRun: its `first` is `incident`). */
  const route = (incident: Incident, run?: RepeatRun) => {
    const errors = 1 + (run?.count ?? 0);
    // The daemon's rule (Databases.route): records that name another database are not this one's.
    if (namesOtherDatabase(incident, db!.name)) {
      otherDatabase += errors;
      return;
    }
    // The daemon's rule (Remediator.handle): a record whose SQLSTATE contradicts its words is skipped.
    if (sqlstateContradicts(incident)) {
      otherSqlstate += errors;
      return;
    }
    routed[incident.kind] = (routed[incident.kind] ?? 0) + errors;
    // A name first tallied: a unique index's (a duplicate key, a replication conflict) looked up, a
    // sequence error verified, while the scan runs.
    if (tally(tallies, incident, window, untallied, times, run)) {
      if (isSequenceError(incident.kind)) toVerify.push({ kind: incident.kind, name: incident.constraint });
      else toLookUp.push(incident.constraint);
      catalogWork();
    }
  };
  // What only checks the found names needs (the catalog lookups, the read-only checks, the
  // connection) is loaded and opened while the scan runs too; awaited after the scan (a scan that
  // fails leaves them behind: not unhandled rejections).
  loading.catch(() => {});
  /** The language the server writes its messages in (lc_messages, as replay's session has it). */
  let serverLanguage: string | undefined;
  // A translated server's duplicate key errors are recognised by their SQLSTATE only: without %e a
  // report of none of them must not look healthy (untoldErrors, and the server's lc_messages below).
  const untranslatable = format === 'postgres-stderr' && !printsSqlstate(prefix);
  const reachable = opening.then(
    (chosen) => {
      db = chosen;
      for (const found of early)
        if ('epochs' in found) route(found.first, found);
        else route(found);
      early.length = 0;
      if (unreadablePassword) return unreadablePassword;
      return chosen.query<{ lc: string }>(`SELECT current_setting('lc_messages') AS lc`).then(
        ({ rows }) => void (serverLanguage = rows[0]?.lc),
        (error: unknown) => error as Error,
      );
    },
    () => undefined,
  );
  const totals = newScanCounters();
  /** Incidents by family (unique violations, each sequence error of the runbook, replication conflicts). */
  const kinds: Partial<Record<Incident['kind'], number>> = {};
  /** Files, or parts of them, that could not be read: said after the report of the rest, and replay ends 1. */
  const unread: Array<{ file: string; error: string; scanned_bytes?: number }> = [];
  const problems: string[] = [];
  const innerFormat = config.sources[0]?.inner_format;
  // Rotated files are named, and globbed, newest first: read oldest first, as they were written.
  const { ordered, copies, untimed } =
    files.length > 1
      ? await orderFiles(files, { format, logLinePrefix: prefix, ...(innerFormat ? { innerFormat } : {}) })
      : { ordered: files, copies: [], untimed: [] };
  for (const [one, other] of copies)
    problems.push(
      `${one} and ${other} begin alike (their first 64 KiB): one is likely a copy of the other (gzip -k keeps the original), its errors counted twice; give only one of them`,
    );
  const reordered = ordered.some((file, i) => file !== files[i]);
  let untoldFound = false;
  const started = Date.now();
  /** What auto chose for each file (the last choice of each): --json's format when it is one for all. */
  const readAs = new Set<Format>();
  for (const file of ordered) {
    const progress = new Progress(basename(file));
    // Looked for in the file's first MiB while the scan runs.
    const untoldModule = format === 'postgres-stderr' ? import('../../replay/untoldErrors.js') : undefined;
    const untold = untoldModule?.then((m) => m.untoldErrors(file, prefix));
    untold?.catch(() => {});
    /** A pipe's first MiB, which its scan hands on (the path cannot be read ahead): looked at after it. */
    let pipeHead: Buffer | undefined;
    // What auto chose for this file, and when it chose again: said on stderr once the file is read
    // (not under its progress bar), as the daemon logs it; not a problem (the report is whole).
    const choices: string[] = [];
    /** The format auto chose last (its lines unread are said as that format's). */
    let chosen: Format | undefined;
    const sayChoices = () => {
      for (const choice of choices.splice(0)) process.stderr.write(`seqwatch: ${choice}\n`);
    };
    let counters: ScanCounters;
    try {
      counters = await scanLog(file, {
        logLinePrefix: prefix,
        format,
        ...(innerFormat ? { innerFormat } : {}),
        onDetected: (detected, inner) => {
          chosen = detected;
          readAs.add(detected);
          choices.push(`${file}: ${detectedText(detected, inner)}`);
        },
        onMisread: (chosen, lines) => choices.push(misreadText(file, chosen, lines, "give --format the log's")),
        ...(untoldModule ? { onPipeHead: (head: Buffer) => (pipeHead = head) } : {}),
        threads,
        ...(pool ? { pool } : {}),
        signal: stop.signal,
        // With workers, this thread loads pg and chooses the database first; they scan meanwhile.
        joinAfter: opening,
        onIncident: Object.assign(
          (incident: Incident) => {
            kinds[incident.kind] = (kinds[incident.kind] ?? 0) + 1;
            if (db) route(incident);
            else early.push(incident);
          },
          {
            repeats: (run: RepeatRun) => {
              kinds[run.first.kind] = (kinds[run.first.kind] ?? 0) + 1 + run.count;
              if (db) route(run.first, run);
              else early.push({ ...run, epochs: run.epochs.slice(0, run.count) });
            },
          },
        ),
        onProgress: (read, total) => progress.update(read, total, `${(read / 1048576).toFixed(0)} MiB`),
      });
    } catch (error) {
      progress.done();
      sayChoices();
      if (stop.signal.aborted) {
        // The database could not be chosen: that, not the scan it stopped.
        await reachable;
        await db?.close();
        throw stop.signal.reason;
      }
      // One file that cannot be read (or a .gz cut short: what it held up to there is counted) does
      // not take the others' report with it.
      const partly = error instanceof PartlyScanned && error.counters.bytes > 0 ? error.counters : undefined;
      unread.push({ file, error: (error as Error).message, ...(partly ? { scanned_bytes: partly.bytes } : {}) });
      if (partly) {
        addScanCounters(totals, partly);
        problems.push(
          `${file}: ${(error as Error).message} after ${(partly.bytes / 1048576).toFixed(1)} MiB${file.endsWith('.gz') ? ' (decompressed)' : ''}: what it held up to there is counted, the rest could not be read`,
        );
      } else problems.push(unreadFileProblem(file, error as NodeJS.ErrnoException));
      continue;
    }
    progress.done();
    sayChoices();
    addScanCounters(totals, counters);
    if (counters.unreadable > 0) problems.push(unreadableLinesProblem(file, counters, chosen ?? format, prefix));
    const told = (await untold) ?? (pipeHead && (await untoldModule)?.untoldErrorsIn(pipeHead, file, prefix));
    if (told) problems.push(...untoldErrorsProblems(file, told, prefix));
    untoldFound ||= told?.noSqlstate !== undefined || told?.translated !== undefined;
  }
  const seconds = (Date.now() - started) / 1000;
  // The database is chosen by now (or why it could not be is thrown), its first incidents routed.
  const unreachable = await reachable;
  db = await opening;
  if (untranslatable && !untoldFound && serverLanguage !== undefined && !isEnglish(serverLanguage)) {
    problems.push(
      `the server's lc_messages is '${serverLanguage}': it writes its errors in another language, and log_line_prefix ${JSON.stringify(prefix)} has no %e, ` +
        `so its duplicate key errors are not recognised (a translated message is, by its SQLSTATE only): this report may miss them; ${ADD_SQLSTATE}`,
    );
  }

  const [{ exitLeavingConnections }, , , { sequenceErrorKey }, { SEQUENCE_ERROR_ADVICE, MISSING_UNVERIFIED }] = await loading;
  // What is still waiting (and the work under way) done.
  while (working || (!lookupFailed && toLookUp.length + toCheck.length + toVerify.length > 0)) {
    if (!working) catalogWork();
    await working;
  }
  const failed = unreachable ?? lookupFailed;
  if (failed) {
    for (const t of tallies.values()) resolutions.set(t.constraint, `${UNREACHABLE}${failed.message}`);
    // Said when it kept an answer from the report: names to look up, or errors it could not tell were this database's.
    if (tallies.size > 0 || otherDatabase > 0) problems.push(`${UNREACHABLE}${failed.message}: the counts are shown, not what the catalog says of them`);
  } else if (verifyFailed) throw verifyFailed;
  const rows: Array<Record<string, string | number | null>> = [];
  for (const t of [...tallies.values()].sort((a, b) => b.errors - a.errors)) {
    const base = { constraint: t.constraint, kind: t.kind, errors: t.errors, first: t.first ?? null, last: t.last ?? null, first_seen_at: t.where };
    if (isSequenceError(t.kind)) {
      if (failed) {
        rows.push({ ...base, table: null, sequence: null, would: 'unknown', now: `${UNREACHABLE}${failed.message}` });
        continue;
      }
      const found = verified.get(sequenceErrorKey(t.kind, t.constraint)) ?? [];
      if (found.length === 0) {
        const why = t.kind === 'sequence_missing' ? missingWhy.get(t.constraint) : undefined;
        rows.push({
          ...base,
          table: null,
          sequence: null,
          would: `skip: not verified: ${why ? MISSING_UNVERIFIED[why] : SEQUENCE_ERROR_ADVICE[t.kind].unverified}`,
          now: null,
        });
      }
      for (const f of found)
        rows.push({
          ...base,
          table: f.table ?? null,
          sequence: f.sequence,
          would: `alert: ${SEQUENCE_ERROR_WORDS[t.kind]} (a person decides: setval cannot fix it)`,
          // The verification is of now: an exhausted sequence is still at its limit, a missing one still missing.
          now: SEQUENCE_ERROR_NOW[t.kind] ?? null,
        });
      continue;
    }
    const resolution = resolutions.get(t.constraint)!;
    if (t.kind === 'replication_conflict') {
      // The daemon's rule (Remediator): an alert for a person, never a setval (a subscriber's row is in the way, not a sequence).
      const table = typeof resolution === 'string' ? null : (resolution.targets[0]?.table ?? resolution.nonSequence[0]?.table ?? null);
      rows.push({
        ...base,
        table,
        sequence: null,
        would: 'alert: logical replication is stuck on a row the subscriber already has (a person decides: setval cannot fix it)',
        now: null,
      });
      continue;
    }
    if (typeof resolution === 'string') {
      rows.push({ ...base, table: null, sequence: null, would: 'unknown', now: resolution });
      continue;
    }
    if (resolution.targets.length === 0 && resolution.nonSequence.length === 0 && !resolution.refused?.length) {
      rows.push({ ...base, table: null, sequence: null, would: 'skip: no such index', now: null });
    }
    for (const index of resolution.nonSequence) rows.push({ ...base, table: index.table, sequence: null, would: 'skip: not fed by a sequence', now: null });
    // The trust rule's refusals (docs/safety-trust.md): an expression default, or another owner's sequence.
    for (const r of resolution.refused ?? [])
      rows.push({
        ...base,
        table: r.table,
        sequence: r.sequence,
        would: r.why === 'expression' ? 'skip: expression default' : 'skip: untrusted sequence',
        now: null,
      });
    for (const target of resolution.targets) {
      rows.push({
        ...base,
        table: target.table,
        sequence: target.sequence,
        would: `heal (${t.checks} check${t.checks === 1 ? '' : 's'})`,
        now: standing.get(target)!,
      });
    }
  }
  if (options.json) {
    // With auto: the format it chose, when it chose one for every file.
    const formatRead = format === 'auto' && readAs.size === 1 ? [...readAs][0]! : format;
    process.stdout.write(
      printableJson(
        JSON.stringify(
          {
            files: ordered,
            database: db.name,
            format: formatRead,
            // Only where the records begin with it (a csvlog or jsonlog has none).
            log_line_prefix: readsLogLinePrefix(recordFormatOf({ format: formatRead, inner_format: innerFormat })) ? prefix : null,
            scanned: { ...totals, seconds, kinds },
            ...(unread.length > 0 ? { unread } : {}),
            other_database: otherDatabase,
            other_sqlstate: otherSqlstate,
            untallied_errors: untallied.errors,
            constraints: rows,
          },
          null,
          2,
        ),
      ) + '\n',
    );
    sayProblems(problems);
    // Answered: as check does, the connection is left to the server to close (see exitLeavingConnections).
    return exitLeavingConnections(db);
  }
  const colour = (now: string | number | null) =>
    typeof now !== 'string' ? dim('-') : now.startsWith('BEHIND') ? yellow(now) : now === 'in sync' ? green(now) : red(now);
  process.stdout.write(
    table(
      ['CONSTRAINT', 'ERRORS', 'FIRST', 'LAST', 'TABLE', 'SEQUENCE', 'THE DAEMON WOULD', 'NOW'],
      // Constraint names and times come from the log: escaped, so that they cannot drive the terminal.
      rows.map((r) => [
        printable(String(r.constraint)),
        String(r.errors),
        printable(String(r.first ?? '')),
        printable(String(r.last ?? '')),
        String(r.table ?? '-'),
        String(r.sequence ?? '-'),
        String(r.would),
        colour(r.now === null || r.now === undefined ? null : typeof r.now === 'string' ? printable(nowShown(r.now)) : r.now),
      ]),
      [1],
    ),
  );
  const mib = totals.bytes / 1048576;
  const notRead = unread.filter((u) => u.scanned_bytes === undefined).length;
  const uniqueNames = [...tallies.values()].filter((t) => t.kind === 'unique_violation').length;
  const others = Object.entries(routed).filter(([kind]) => kind !== 'unique_violation');
  process.stdout.write(
    `\n${bold(counted(routed.unique_violation ?? 0, 'duplicate key error'))} on ${counted(uniqueNames, 'constraint')} in ${counted(files.length - notRead, 'file')}${unreadSaid(notRead, unread.length - notRead)}` +
      `${reordered ? `, read oldest first (${readOrder(ordered, untimed)})` : ''}, ` +
      `${mib.toFixed(1)} MiB scanned in ${seconds.toFixed(1)} s (${(mib / Math.max(seconds, 0.001)).toFixed(0)} MiB/s)` +
      `${otherDatabase ? `; ${counted(otherDatabase, 'error')} of other databases ignored` : ''}` +
      `${otherSqlstate ? `; ${counted(otherSqlstate, 'error')} whose SQLSTATE is not that error (a RAISE of its words) passed over, as the daemon does` : ''}` +
      `${totals.oversized ? `; ${counted(totals.oversized, 'over-long line')} passed over` : ''}` +
      `${
        others.length
          ? `; ${counted(
              others.reduce((sum, [, n]) => sum + n, 0),
              'other error',
            )} (${others.map(([kind, n]) => `${n} ${kind}`).join(', ')})`
          : ''
      }` +
      `${untallied.errors ? `; ${counted(untallied.errors, 'error')} on names past the first ${MAX_TALLIED.toLocaleString('en')} distinct ones counted, not looked up (a flood of forged names?)` : ''}\n`,
  );
  sayProblems(problems);
  return exitLeavingConnections(db);
}

/** The footer's word on the order files were read in: the oldest first, then those whose first time was not known ahead (a pipe). */
function readOrder(ordered: string[], untimed: string[]): string {
  // A pipe's path says what it is (/dev/stdin, /dev/fd/5); a file's name is enough.
  const shown = (file: string) => (/^\/(dev|proc)\//.test(file) ? file : basename(file));
  const timed = ordered.filter((file) => !untimed.includes(file));
  return `${timed.map(shown).join(', ')}${untimed.length > 0 ? `; then ${untimed.map(shown).join(', ')}, whose first time is not known ahead` : ''}`;
}

/** The footer's word on the files not read, or read only in part (said below it). */
function unreadSaid(notRead: number, partly: number): string {
  const parts = [...(notRead ? [`${notRead} not read`] : []), ...(partly ? [`${partly} read in part`] : [])];
  return parts.length > 0 ? ` (${parts.join(', ')}: below)` : '';
}

/** A sequence's NOW cell: where its read-only check found it. */
function nowOf(checked: CheckedSequence | undefined, error: string | undefined): string {
  if (!checked) return `cannot check: ${error}`;
  if (checked.status === 'behind') return `BEHIND by ${checked.behindBy}`;
  return checked.status === 'exhausted' ? 'EXHAUSTED' : 'in sync';
}

/** The runbook's other sequence errors, as a row of replay says them. */
const SEQUENCE_ERROR_WORDS: Record<SequenceErrorKind, string> = {
  sequence_exhausted: 'sequence exhausted',
  sequence_missing: 'sequence missing',
  sequence_permission_denied: 'permission denied for the sequence',
  setval_out_of_bounds: 'setval out of bounds',
};

const isSequenceError = (kind: Incident['kind']): kind is SequenceErrorKind => kind in SEQUENCE_ERROR_WORDS;

/** Where a sequence the catalog confirmed an error of stands now, where the verification says (check's word for an exhausted one). */
const SEQUENCE_ERROR_NOW: Partial<Record<SequenceErrorKind, string>> = { sequence_exhausted: 'EXHAUSTED', sequence_missing: 'MISSING' };

const UNREACHABLE = 'database not reachable: ';
/** A NOW cell in the table: why the database could not answer is said once, below it, not on every row. */
const nowShown = (now: string) => (now.startsWith(UNREACHABLE) ? `${UNREACHABLE.slice(0, -2)} (below)` : now);

/** What kept the report from being whole, on stderr after it; replay then ends 1. */
function sayProblems(problems: string[]): void {
  for (const problem of problems) process.stderr.write(`seqwatch: ${problem}\n`);
  if (problems.length > 0) process.exitCode = EXIT.failure;
}

/** A file replay could not read (or not to its end): why, and for a permission, who may read it. */
function unreadFileProblem(file: string, error: NodeJS.ErrnoException): string {
  if (error.code !== 'EACCES' && error.code !== 'EPERM') return `${file}: ${error.message}`;
  const { user, owner } = readDenial(file);
  return (
    `cannot read ${file} (${error.code}) as user ${user.name} (groups ${user.groups})${owner ? `; it is ${owner}` : ''}: ` +
    `run replay as a user who may${owner?.group ? ` (one in group ${owner.group}: usermod -aG ${owner.group} ${user.name}, then log in again)` : ''}, or with sudo`
  );
}

/** Lines that hold a sequence error's words but are no record of the format: the daemon's source_unparsed, for a replay. */
function unreadableLinesProblem(file: string, counters: ScanCounters, format: Format, prefix: string): string {
  const prefixed = readsLogLinePrefix(format);
  return (
    `${file}: ${counters.unreadable} line(s) hold a sequence error's text but are no ${format} records` +
    `${prefixed ? ` with log_line_prefix ${JSON.stringify(prefix)}` : ''}: those errors are not counted; ` +
    `the first begins ${printable(JSON.stringify(counters.unreadableSample ?? ''))}; ` +
    (prefixed
      ? `give --log-line-prefix the server's exactly (psql -Atc 'SHOW log_line_prefix'), or --format the log's`
      : `give --format the log's (${FORMATS.filter((f) => f !== 'auto').join(', ')})`)
  );
}

/** The fix for a translated server's log without SQLSTATE (both problems that say so). */
const ADD_SQLSTATE = "add %e to log_line_prefix (on the server and in the config), or set lc_messages = 'C' on the server";

/** Duplicate key errors in another language that replay could not count: no SQLSTATE (no %e), or lines of another prefix; or a log in another language without %e. */
function untoldErrorsProblems(file: string, { noSqlstate, unmatched, translated }: UntoldErrors, prefix: string): string[] {
  const problems: string[] = [];
  if (noSqlstate)
    problems.push(
      `${file}: ${noSqlstate.errors} duplicate key error(s) in another language among its first MiB ` +
        `(the first: ${printable(JSON.stringify(noSqlstate.sample))}), not counted, nor its sequence errors in that language: log_line_prefix ${JSON.stringify(prefix)} has no %e, ` +
        `and a translated message is recognised by its SQLSTATE only; ${ADD_SQLSTATE}`,
    );
  if (translated)
    problems.push(
      `${file}: its first records are written in another language (the first begins ${printable(JSON.stringify(translated.sample))}), ` +
        `and log_line_prefix ${JSON.stringify(prefix)} has no %e: its duplicate key and sequence errors in that language are not recognised ` +
        `(a translated message is, by its SQLSTATE only), so this report may miss them; ${ADD_SQLSTATE}`,
    );
  if (unmatched)
    problems.push(
      `${file}: ${unmatched.errors} duplicate key error(s) in another language among its first MiB are no records with log_line_prefix ${JSON.stringify(prefix)} ` +
        `(the first begins ${printable(JSON.stringify(unmatched.sample))}), not counted: written with another prefix (the server's changed while this file was written?); ` +
        `replay them with --log-line-prefix set to the one they were written with`,
    );
  return problems;
}

/**
 * Counts an incident, and the repeats of it that follow (`run`), into its constraint's tally; true
 * when that is a name not tallied before.
 */
function tally(
  tallies: Map<string, ConstraintTally>,
  incident: Incident,
  windowMs: number,
  untallied: { errors: number },
  times: LogTimes,
  run?: RepeatRun,
): boolean {
  // A sequence error's name is a sequence's: tallied apart from a unique index of the same name.
  const key = isSequenceError(incident.kind) ? `${incident.kind}\u0000${incident.constraint}` : incident.constraint;
  let t = tallies.get(key);
  if (!t && tallies.size >= MAX_TALLIED) {
    untallied.errors += 1 + (run?.count ?? 0);
    return false;
  }
  const named = !t;
  const where = `${incident.source}@${incident.offset ?? 0}`;
  if (!t) {
    t = { kind: incident.kind, constraint: incident.constraint, errors: 0, checks: 0, inBurst: 0, where };
    tallies.set(key, t);
  }
  const epoch = incident.logTime ? times.gapEpochOf(incident.logTime) : NaN;
  countError(t, epoch, windowMs);
  noteTime(t, incident.logTime, epoch, where);
  if (run) {
    for (let k = 0; k < run.count; k++) countError(t, run.epochs[k]!, windowMs);
    if (run.count > 0) noteTime(t, run.lastTime, run.epochs[run.count - 1]!);
  }
  return named;
}

/**
 * A tally's FIRST (and where it is) and LAST: the earliest and latest of its times. Without a
 * parsable time (NaN), the first and last handed on, as before.
 */
function noteTime(t: ConstraintTally, time: string | undefined, epoch: number, where?: string): void {
  if (time === undefined) return;
  if (t.first === undefined || epoch < t.firstEpoch!) {
    t.first = time;
    t.firstEpoch = epoch;
    if (where !== undefined) t.where = where;
  }
  if (t.last === undefined || !(epoch < t.latestEpoch!)) {
    t.last = time;
    t.latestEpoch = epoch;
  }
}

/** One more error in a tally, at `epoch` (NaN: no time), into its bursts. */
function countError(t: ConstraintTally, epoch: number, windowMs: number): void {
  t.errors++;
  // The daemon checks at a burst's first error and once more after it if more came; a gap longer
  // than the debounce window starts a new burst. Without parsable times: one burst.
  const newBurst = t.errors === 1 || (!Number.isNaN(epoch) && t.lastEpoch !== undefined && epoch - t.lastEpoch > windowMs);
  if (newBurst) {
    t.checks++;
    t.inBurst = 1;
  } else if (t.inBurst++ === 1) {
    t.checks++;
  }
  if (!Number.isNaN(epoch)) t.lastEpoch = epoch;
}
