import { execFileSync, spawnSync } from 'node:child_process';
import { accessSync, constants, existsSync, readdirSync, readFileSync, statfsSync, statSync } from 'node:fs';
import { createServer } from 'node:net';
import { basename, dirname, join } from 'node:path';
import type { Command } from 'commander';
import { databasesOf, loadConfig, recordFormatOf, type Config, type SourceConfig } from '../../config/config.js';
import { serverRoles, type Database } from '../../db/Database.js';
import { listFullScanColumns, listRefusedColumns, listSequenceColumns } from '../../db/listSequenceColumns.js';
import { recognise, type Format } from '../../formats/createParser.js';
import { compileLogLinePrefix, printsSqlstate, withSqlstate } from '../../formats/logLinePrefix.js';
import { isEnglish } from '../../formats/severity.js';
import { globToRegExp, isGlob } from '../../util/glob.js';
import { singleQuoted } from '../../util/singleQuoted.js';
import { tailLines } from '../../util/tailLines.js';
import { CommandFailure, databaseFor, EXIT } from '../context.js';
import { bold, green, red, yellow } from '../output.js';

type Level = 'ok' | 'warn' | 'problem';

interface Finding {
  level: Level;
  what: string;
  /** The exact thing to run or change. */
  fix?: string;
}

const LEVELS = ['debug5', 'debug4', 'debug3', 'debug2', 'debug1', 'info', 'notice', 'warning', 'error', 'log', 'fatal', 'panic'];

export function registerDoctor(program: Command): void {
  program
    .command('doctor')
    .description('check that seqwatch can do its job here, with the exact fix for each problem')
    .requiredOption('-c, --config <file>', 'YAML config file', '/etc/seqwatch/seqwatch.yaml')
    .option('--database <name>', 'which database, when the config watches several')
    .option('--as-user <name>', 'check files as this user (the service user), as root')
    .addHelpText(
      'after',
      `
Connects as the configured role and checks: that it is not a superuser and
has the privileges it needs (SELECT on tables, SELECT and UPDATE on sequences);
that the server is a primary, not a standby; the server settings each source's
format relies on (log_destination and logging_collector for csvlog and jsonlog,
log_line_prefix against the config, lc_messages, log_min_messages); that each
source is readable (as the service user with --as-user) and looks like its
format; that the audit log and the state directory are writable and have room;
that the metrics port is free.
Exit codes: 0 nothing to fix (warnings may remain), 1 at least one problem.
Examples:
  seqwatch doctor -c /etc/seqwatch/seqwatch.yaml
  seqwatch doctor -c /etc/seqwatch/seqwatch.yaml --as-user seqwatch`,
    )
    .action(async (options: { config: string; database?: string; asUser?: string }) => {
      const as = options.asUser === undefined ? undefined : serviceUser(options.asUser);
      const config = await loadConfig(options.config);
      const findings = await diagnose(config, await databaseFor(config, options.database), { as, configPath: options.config });
      const mark = { ok: green('ok  '), warn: yellow('warn'), problem: red('FIX ') };
      for (const f of findings) {
        process.stdout.write(`${mark[f.level]}  ${f.what}\n`);
        if (f.fix) process.stdout.write(`      ${f.fix.split('\n').join('\n      ')}\n`);
      }
      const problems = findings.filter((f) => f.level === 'problem').length;
      const warnings = findings.filter((f) => f.level === 'warn').length;
      process.stdout.write(`\n${bold(problems ? `${problems} problem(s) to fix` : 'nothing to fix')}${warnings ? `, ${warnings} warning(s)` : ''}\n`);
      process.exitCode = problems ? EXIT.failure : EXIT.ok;
    });
}

/** Who the files are checked as: the service user (--as-user), or whoever runs doctor. */
export interface CheckedAs {
  name: string;
  uid: number;
  gid: number;
  groups: string[];
}

export interface DiagnoseOptions {
  as?: CheckedAs;
  configPath?: string;
}

/** The user --as-user names, with its groups; the checks then run as that user. */
function serviceUser(name: string): CheckedAs {
  let uid: number;
  let gid: number;
  let groups: string[];
  try {
    uid = Number(
      execFileSync('id', ['-u', name], { stdio: ['ignore', 'pipe', 'ignore'] })
        .toString()
        .trim(),
    );
    gid = Number(
      execFileSync('id', ['-g', name], { stdio: ['ignore', 'pipe', 'ignore'] })
        .toString()
        .trim(),
    );
    groups = execFileSync('id', ['-Gn', name], { stdio: ['ignore', 'pipe', 'ignore'] })
      .toString()
      .trim()
      .split(/\s+/);
  } catch {
    throw new CommandFailure(
      `--as-user: no user ${name} on this host (for the unit's DynamicUser, check as a user in the unit's SupplementaryGroups: useradd --system --groups adm NAME)`,
      EXIT.usage,
    );
  }
  if (process.getuid?.() !== 0 && process.getuid?.() !== uid) {
    throw new CommandFailure(`--as-user ${name}: only root can check as another user (sudo seqwatch doctor --as-user ${name} ...)`, EXIT.usage);
  }
  return { name, uid, gid, groups };
}

type Access = 'read' | 'write' | 'list';

/**
 * Whether the user may read (or write, or list) `path`: asked of the kernel as that user, by a child
 * process with its uid, gid and groups (setpriv --init-groups), so ACLs, groups and every directory
 * on the way count, as they will for the daemon.
 */
function mayAccess(as: CheckedAs | undefined, path: string, access: Access): boolean {
  if (as === undefined || as.uid === process.getuid?.()) {
    try {
      accessSync(path, access === 'read' ? constants.R_OK : access === 'write' ? constants.W_OK : constants.R_OK | constants.X_OK);
      return true;
    } catch {
      return false;
    }
  }
  const test = access === 'read' ? ['-r', path] : access === 'write' ? ['-w', path] : ['-r', path, '-a', '-x', path];
  const result = spawnSync('setpriv', ['--reuid', String(as.uid), '--regid', String(as.gid), '--init-groups', '--', 'test', ...test], { stdio: 'ignore' });
  if (result.error) throw new CommandFailure(`--as-user needs setpriv (util-linux): ${result.error.message}`, EXIT.failure);
  return result.status === 0;
}

const whom = (as: CheckedAs | undefined) => (as ? `${as.name} (groups ${as.groups.join(', ')})` : 'this user');

export async function diagnose(config: Config, db: Database, options: DiagnoseOptions = {}): Promise<Finding[]> {
  const { as } = options;
  const findings: Finding[] = [];
  if (as) findings.push({ level: 'ok', what: `files checked as ${whom(as)}` });
  else if (process.getuid?.() === 0) {
    findings.push({
      level: 'warn',
      what: 'doctor runs as root and root reads every file: the daemon runs as an unprivileged user',
      fix: 'check as the service user: seqwatch doctor --as-user NAME -c ...',
    });
  }
  const local = [...fileFindings(config, options), ...storageFindings(config, as), ...(await metricsFindings(config))];
  try {
    // A standby (in recovery) is never checked nor fixed: say so, and whether a primary is listed too.
    const roles = await serverRoles(db);
    for (const s of roles.filter((r) => r.role === 'standby')) {
      const primary = roles.some((r) => r.role === 'primary');
      findings.push({
        level: primary ? 'ok' : 'problem',
        what: `${s.host} is a standby (in recovery): seqwatch checks and fixes only on the primary${primary ? ', and passes over it' : ', and none of the configured hosts is one'}`,
        ...(primary ? {} : { fix: 'point database.url at the primary, or list every host with ?target_session_attrs=read-write' }),
      });
    }
    // Only standbys answer: that is the finding (the database layer connects to no server in recovery).
    if (roles.some((r) => r.role === 'standby') && !roles.some((r) => r.role === 'primary')) {
      return [...findings, ...sourceFindings(config, undefined, as), ...local];
    }
    for (const p of roles.filter((r) => r.role === 'primary')) findings.push({ level: 'ok', what: `${p.host} is a primary (not in recovery)` });
    let who: { user: string; superuser: boolean; version: string; version_num: string; database: string };
    try {
      const { rows } = await db.query<typeof who>(
        `SELECT current_user AS user, r.rolsuper AS superuser, current_setting('server_version') AS version,
                current_setting('server_version_num') AS version_num, current_database() AS database
         FROM pg_roles r WHERE r.rolname = current_user`,
      );
      who = rows[0]!;
      findings.push({ level: 'ok', what: `connected to ${who.database} on ${db.host} (PostgreSQL ${who.version}) as ${who.user}` });
    } catch (error) {
      findings.push({
        level: 'problem',
        what: `cannot connect: ${(error as Error).message}`,
        fix: 'check database.url (host, port, database, user), the password (password_file, PGPASSWORD, ~/.pgpass) and pg_hba.conf',
      });
      return [...findings, ...sourceFindings(config, undefined, as), ...local];
    }
    if (who.superuser) {
      findings.push({
        level: 'warn',
        what: `${who.user} is a superuser: seqwatch needs far less, and a daemon that writes to production should have no more than it needs`,
        fix: `SEQWATCH_DB_PASSWORD="$(cat /etc/seqwatch/db_password)" runuser -u postgres -- psql -d ${who.database} -f config/seqwatch-role.sql\nthen connect as seqwatch (README: "As a systemd service on the database host")`,
      });
    } else {
      findings.push({ level: 'ok', what: `${who.user} is not a superuser` });
    }
    findings.push(...(await privilegeFindings(db, who.user)));
    findings.push(...(await columnFindings(db)));
    const settings = await serverSettings(db);
    findings.push(...settingFindings(config, settings, Number(who.version_num)));
    findings.push(...sourceFindings(config, settings.log_line_prefix, as), ...local);
  } finally {
    await db.close();
  }
  return findings;
}

/**
 * Columns the checks treat specially (docs/safety-trust.md): a DEFAULT the trust rule refuses is
 * never acted on, and a sequence column that leads no index makes each check read the whole table.
 * Names come from the catalog (format('%I.%I')), never from a log.
 */
async function columnFindings(db: Database): Promise<Finding[]> {
  const findings: Finding[] = [];
  for (const c of await listRefusedColumns(db)) {
    findings.push({
      level: 'warn',
      what: `${c.table}.${c.column} is never healed: its DEFAULT uses ${c.sequence}, ${
        c.why === 'expression' ? 'in an expression, not as a plain nextval()' : "but the table's owner may not use that sequence (trust rule)"
      }`,
      fix:
        c.why === 'expression'
          ? 'nothing to do if intended; seqwatch cannot tell what the expression makes of the sequence'
          : `if the column is genuine: GRANT USAGE ON SEQUENCE ${c.sequence} TO the owner of ${c.table}`,
    });
  }
  for (const c of await listFullScanColumns(db)) {
    findings.push({
      level: 'warn',
      what: `${c.table}.${c.columnQuoted}: no index leads with it, so each check reads the whole table (bounded by a 5 s statement_timeout)`,
      fix: `CREATE INDEX CONCURRENTLY ON ${c.table} (${c.columnQuoted});`,
    });
  }
  return findings;
}

async function privilegeFindings(db: Database, user: string): Promise<Finding[]> {
  const columns = await listSequenceColumns(db);
  const missingTables = new Set<string>();
  const missingSequences = new Set<string>();
  for (let i = 0; i < columns.length; i += 500) {
    const batch = columns.slice(i, i + 500);
    const { rows } = await db.query<{ t: boolean; s: boolean; u: boolean }>(
      `SELECT has_table_privilege(t, 'SELECT') AS t, has_sequence_privilege(s, 'SELECT') AS s, has_sequence_privilege(s, 'UPDATE') AS u
       FROM unnest($1::oid[], $2::oid[]) WITH ORDINALITY AS x(t, s, n) ORDER BY n`,
      [batch.map((c) => c.tableOid), batch.map((c) => c.sequenceOid)],
    );
    rows.forEach((row, j) => {
      if (!row.t) missingTables.add(batch[j]!.table);
      if (!row.s || !row.u) missingSequences.add(batch[j]!.sequence);
    });
  }
  const role = /^[a-z_][a-z0-9_]*$/.test(user) ? user : `"${user.replace(/"/g, '""')}"`;
  const findings: Finding[] = [];
  if (missingTables.size === 0 && missingSequences.size === 0) {
    findings.push({ level: 'ok', what: `${role} may read all ${columns.length} sequence-fed tables and read and set their sequences` });
    return findings;
  }
  if (missingTables.size > 0) {
    findings.push({
      level: 'problem',
      what: `${role} cannot SELECT ${missingTables.size} table(s) (needed for MAX(id)): ${[...missingTables].slice(0, 5).join(', ')}${missingTables.size > 5 ? ', ...' : ''}`,
      fix:
        [...missingTables]
          .map((t) => `GRANT SELECT ON ${t} TO ${role};`)
          .slice(0, 20)
          .join('\n') + (missingTables.size > 20 ? '\n-- or: GRANT SELECT ON ALL TABLES IN SCHEMA <schema> TO ' + role + ';' : ''),
    });
  }
  if (missingSequences.size > 0) {
    findings.push({
      level: 'problem',
      what: `${role} cannot read and set ${missingSequences.size} sequence(s) (SELECT and UPDATE, for setval): ${[...missingSequences].slice(0, 5).join(', ')}${missingSequences.size > 5 ? ', ...' : ''}`,
      fix:
        [...missingSequences]
          .map((s) => `GRANT SELECT, UPDATE ON SEQUENCE ${s} TO ${role};`)
          .slice(0, 20)
          .join('\n') + (missingSequences.size > 20 ? '\n-- or: GRANT SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA <schema> TO ' + role + ';' : ''),
    });
  }
  return findings;
}

async function serverSettings(db: Database): Promise<Record<string, string>> {
  const { rows } = await db.query<{ name: string; setting: string }>(
    `SELECT name, setting FROM pg_settings
     WHERE name = ANY ('{log_destination,logging_collector,log_line_prefix,lc_messages,log_min_messages,log_min_error_statement}'::text[])`,
  );
  return Object.fromEntries(rows.map((r) => [r.name, r.setting]));
}

/** What of the server's logging a source reads: a log_destination, or none (an application's log). */
type ServerLog = 'stderr' | 'csvlog' | 'jsonlog' | 'syslog' | 'journald';

function serverLogOf(source: SourceConfig): ServerLog | undefined {
  if (source.journal_unit !== undefined) return 'journald';
  return ({ 'postgres-stderr': 'stderr', 'postgres-csv': 'csvlog', 'postgres-json': 'jsonlog', syslog: 'syslog' } as Partial<Record<Format, ServerLog>>)[
    recordFormatOf(source)
  ];
}

/** Whether a source's records carry the SQLSTATE (then the message language does not matter). */
const givesSqlstate = (source: SourceConfig, log: ServerLog | undefined) => log === 'csvlog' || log === 'jsonlog' || printsSqlstate(source.log_line_prefix);

function settingFindings(config: Config, settings: Record<string, string>, versionNum: number): Finding[] {
  const findings: Finding[] = [];
  const destinations = (settings.log_destination ?? '')
    .split(',')
    .map((d) => d.trim())
    .filter(Boolean);
  const collector = settings.logging_collector === 'on';
  const withDestination = (d: string) => [...new Set([...destinations, d])].join(',');
  const minMessages = settings.log_min_messages ?? 'warning';
  if (LEVELS.indexOf(minMessages) > LEVELS.indexOf('error')) {
    findings.push({
      level: 'problem',
      what: `log_min_messages is '${minMessages}': ERROR messages, duplicate key errors among them, are not logged`,
      fix: `ALTER SYSTEM SET log_min_messages = 'warning'; SELECT pg_reload_conf();`,
    });
  } else {
    findings.push({ level: 'ok', what: `log_min_messages '${minMessages}' logs ERROR messages` });
  }
  const minStatement = settings.log_min_error_statement ?? 'error';
  findings.push(
    LEVELS.indexOf(minStatement) > LEVELS.indexOf('error')
      ? {
          level: 'warn',
          what: `log_min_error_statement is '${minStatement}': failed statements are not logged with their error (not needed for healing, useful for review)`,
        }
      : { level: 'ok', what: `log_min_error_statement '${minStatement}'` },
  );
  const lc = settings.lc_messages ?? '';
  const english = isEnglish(lc);
  findings.push(
    english
      ? { level: 'ok', what: `lc_messages '${lc || 'C'}': messages in English` }
      : { level: 'ok', what: `lc_messages '${lc}': messages are translated; sources that give the SQLSTATE (csvlog, jsonlog, %e) do not depend on it` },
  );
  for (const source of config.sources) {
    const log = serverLogOf(source);
    if (log === undefined) continue;
    // Each format needs its own destination; csvlog and jsonlog are written by the collector only.
    if (log === 'journald') {
      if (!destinations.includes('stderr') || collector) {
        findings.push({
          level: 'problem',
          what: `${source.path}: the journal gets the server's stderr only with log_destination stderr and logging_collector off (now '${settings.log_destination}', collector ${settings.logging_collector})`,
          fix: `ALTER SYSTEM SET log_destination = '${withDestination('stderr')}'; ALTER SYSTEM SET logging_collector = off;   -- then restart the server`,
        });
      } else findings.push({ level: 'ok', what: `${source.path}: the server writes stderr to the journal (logging_collector off)` });
    } else if (!destinations.includes(log)) {
      findings.push({
        level: 'problem',
        what: `log_destination is '${settings.log_destination}': ${source.path} (${source.format}) needs ${log}`,
        fix: `ALTER SYSTEM SET log_destination = '${withDestination(log)}'; SELECT pg_reload_conf();${(log === 'csvlog' || log === 'jsonlog') && !collector ? '\nALTER SYSTEM SET logging_collector = on;   -- then restart the server' : ''}`,
      });
    } else if ((log === 'csvlog' || log === 'jsonlog') && !collector) {
      findings.push({
        level: 'problem',
        what: `${source.path}: ${log} is written only by the logging collector, and logging_collector is off`,
        fix: 'ALTER SYSTEM SET logging_collector = on;   -- then restart the server',
      });
    } else if (log === 'jsonlog' && versionNum > 0 && versionNum < 150000) {
      findings.push({
        level: 'problem',
        what: `${source.path}: jsonlog needs PostgreSQL 15 or newer`,
        fix: 'use csvlog (format: postgres-csv) or stderr with %e in log_line_prefix',
      });
    } else {
      findings.push({
        level: 'ok',
        what: `${source.path}: log_destination includes ${log}${log === 'csvlog' || log === 'jsonlog' ? ' and the logging collector is on' : ` (logging_collector ${settings.logging_collector ?? 'unknown'})`}`,
      });
    }
    // Only stderr-like lines carry the prefix; csvlog and jsonlog have fixed fields.
    if (log === 'stderr' || log === 'syslog' || log === 'journald') {
      if (settings.log_line_prefix !== undefined && source.log_line_prefix !== settings.log_line_prefix) {
        // The config has %e and the server not: the server's is the one to change (a translated
        // server needs the SQLSTATE; an English one loses nothing by it), not the config's.
        const serverLacksSqlstate = printsSqlstate(source.log_line_prefix) && !printsSqlstate(settings.log_line_prefix);
        findings.push({
          level: 'problem',
          what: `${source.path}: the config's log_line_prefix ${JSON.stringify(source.log_line_prefix)} is not the server's ${JSON.stringify(settings.log_line_prefix)}`,
          fix: serverLacksSqlstate
            ? `on the server (the config's has %e${english ? '' : ', which its translated messages need'}): ALTER SYSTEM SET log_line_prefix = ${singleQuoted(source.log_line_prefix)}; SELECT pg_reload_conf();`
            : `in the config: log_line_prefix: ${singleQuoted(settings.log_line_prefix)}`,
        });
      } else if (settings.log_line_prefix !== undefined) {
        findings.push({ level: 'ok', what: `${source.path}: log_line_prefix matches the server's` });
      }
    }
    if (!english && !givesSqlstate(source, log)) {
      const wanted = singleQuoted(withSqlstate(settings.log_line_prefix ?? source.log_line_prefix));
      findings.push({
        level: 'problem',
        what: `lc_messages is '${lc}': messages are translated, and ${source.path}'s prefix has no %e (SQLSTATE), so duplicate key errors cannot be recognised`,
        fix: `ALTER SYSTEM SET log_line_prefix = ${wanted}; SELECT pg_reload_conf();   -- and in the config: log_line_prefix: ${wanted} (or ALTER SYSTEM SET lc_messages = 'C')`,
      });
    }
  }
  return findings;
}

/** Below this much free space under the audit log or the state directory, doctor warns. */
const LOW_SPACE_BYTES = 256 * 2 ** 20;

/** The directories the unit's LogsDirectory= and StateDirectory= create, owned by its user, at start. */
const UNIT_DIRECTORIES = ['/var/log/seqwatch', '/var/lib/seqwatch'];

/**
 * Where seqwatch writes: the audit log and the state directory (checkpoints, health file). Each must
 * be writable (or creatable) by the service user and have room: on a full disk the daemon keeps
 * healing but holds its audit records in memory (see the README), which is no way to run.
 */
function storageFindings(config: Config, as: CheckedAs | undefined): Finding[] {
  const findings: Finding[] = [];
  for (const [what, path, dir] of [
    ['audit log', config.audit.path, dirname(config.audit.path)],
    ['state directory', config.state_dir, config.state_dir],
  ] as const) {
    const existing = nearestExisting(dir);
    if (existing !== dir && UNIT_DIRECTORIES.includes(dir)) {
      findings.push({
        level: 'ok',
        what: `${what} ${path}: ${dir} does not exist yet; the unit's ${dir.startsWith('/var/log') ? 'LogsDirectory' : 'StateDirectory'}= creates it for its user at start`,
      });
      continue;
    }
    if (!mayAccess(as, existsSync(path) ? path : existing, 'write')) {
      const target = existsSync(path) ? path : existing;
      findings.push({
        level: 'problem',
        what: `${what} ${path} is not writable by ${whom(as)}`,
        fix: `give the daemon's user write access to ${target}${as ? ` (chown ${as.name} ${target})` : ''} (the unit's LogsDirectory/StateDirectory do it under systemd)`,
      });
      continue;
    }
    const { bavail, bsize } = statfsSync(existing);
    const free = bavail * bsize;
    const mib = Math.round(free / 2 ** 20);
    if (free < LOW_SPACE_BYTES) {
      findings.push({
        level: 'warn',
        what: `${what} ${path}: only ${mib} MiB free on its file system`,
        fix: 'free space there or move it (audit.path, state_dir): on a full disk decisions wait in memory and go to the journal',
      });
    } else {
      findings.push({ level: 'ok', what: `${what} ${path} is writable, ${mib >= 10_240 ? `${Math.round(mib / 1024)} GiB` : `${mib} MiB`} free` });
    }
  }
  return findings;
}

/** The path itself or its closest existing ancestor (what a mkdir -p would create under). */
function nearestExisting(path: string): string {
  let at = path;
  while (!existsSync(at) && dirname(at) !== at) at = dirname(at);
  return at;
}

/** The config file and a password file: the service user must read the first, and should not need the second. */
function fileFindings(config: Config, { as, configPath }: DiagnoseOptions): Finding[] {
  const findings: Finding[] = [];
  if (configPath !== undefined && !mayAccess(as, configPath, 'read')) {
    findings.push({
      level: 'problem',
      what: `the config ${configPath} is not readable by ${whom(as)}: the daemon cannot start`,
      fix: `chmod 0644 ${configPath}   (keep the password out of it: database.password_file with LoadCredential=, see the README)`,
    });
  }
  for (const database of databasesOf(config)) {
    if (database.password_file && !database.password_credential && !mayAccess(as, database.password_file, 'read')) {
      findings.push({
        level: 'problem',
        what: `database.password_file ${database.password_file} is not readable by ${whom(as)}`,
        fix:
          'hand it to the unit as a credential: LoadCredential=db_password:' +
          database.password_file +
          ' in the unit, password_credential: db_password in the config',
      });
    }
  }
  return findings;
}

/** Whether metrics.listen is free (or taken by the daemon that this config runs). */
async function metricsFindings(config: Config): Promise<Finding[]> {
  if (!config.metrics) return [];
  const listen = config.metrics.listen;
  const at = listen.lastIndexOf(':');
  const host = listen.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  const port = Number(listen.slice(at + 1));
  const problem = await new Promise<string | undefined>((resolve) => {
    const server = createServer();
    server.once('error', (error: NodeJS.ErrnoException) => resolve(error.code ?? error.message));
    server.listen(port, host, () => server.close(() => resolve(undefined)));
  });
  if (problem === undefined) return [{ level: 'ok', what: `metrics.listen ${listen} is free` }];
  if (problem === 'EADDRINUSE' && daemonRunning(config)) {
    return [{ level: 'ok', what: `metrics.listen ${listen} is in use by the running seqwatch (its health file is fresh)` }];
  }
  return [
    {
      level: 'problem',
      what: `metrics.listen ${listen}: ${problem === 'EADDRINUSE' ? 'the port is in use by another program' : problem}: the daemon would not start`,
      fix: `choose a free port for metrics.listen (ss -ltnp 'sport = :${port}' shows who has this one)`,
    },
  ];
}

function daemonRunning(config: Config): boolean {
  try {
    const health = JSON.parse(readFileSync(join(config.state_dir, 'health.json'), 'utf8')) as { time: string };
    return Date.now() - Date.parse(health.time) < 15_000;
  } catch {
    return false;
  }
}

/** The newest file a glob source matches now, if any. */
function newestMatch(glob: string): string | undefined {
  const dir = dirname(glob);
  const pattern = globToRegExp(basename(glob));
  let newest: { path: string; mtime: number } | undefined;
  for (const name of readdirSync(dir)) {
    if (!pattern.test(name)) continue;
    const path = join(dir, name);
    const stat = statSync(path, { throwIfNoEntry: false });
    if (stat?.isFile() && (!newest || stat.mtimeMs > newest.mtime)) newest = { path, mtime: stat.mtimeMs };
  }
  return newest?.path;
}

function sourceFindings(config: Config, serverPrefix: string | undefined, as: CheckedAs | undefined): Finding[] {
  const findings: Finding[] = [];
  for (const source of config.sources) {
    if (source.path === '-') {
      findings.push({
        level: 'ok',
        what: 'a source reads standard input: start seqwatch at the end of the pipeline (docker logs -f gotrs-postgres 2>&1 | seqwatch run ...)',
      });
      continue;
    }
    if (source.journal_unit !== undefined) {
      findings.push(journalFinding(source.journal_unit, as));
      continue;
    }
    let path = source.path;
    if (isGlob(source.path)) {
      const dir = dirname(source.path);
      if (!existsSync(dir)) {
        findings.push({ level: 'warn', what: `${dir} (of ${source.path}) does not exist yet: its files will be followed once it appears` });
        continue;
      }
      if (!mayAccess(as, dir, 'list')) {
        findings.push({
          level: 'problem',
          what: `${dir} (of ${source.path}) cannot be listed by ${whom(as)}: new files would not be seen`,
          fix: `give the user read and execute on ${dir} (log_directory), e.g. its group`,
        });
        continue;
      }
      const newest = newestMatch(source.path);
      if (newest === undefined) {
        findings.push({ level: 'warn', what: `${source.path} matches no file yet: every file that appears is followed from its start` });
        continue;
      }
      findings.push({
        level: 'ok',
        what: `${source.path} is a glob: every matching file is followed, new ones from their start; checking the newest, ${basename(newest)}`,
      });
      path = newest;
    }
    if (!existsSync(path)) {
      findings.push({ level: 'warn', what: `${path} does not exist yet: it will be followed from its start once it appears` });
      continue;
    }
    if (!mayAccess(as, path, 'read')) {
      findings.push({
        level: 'problem',
        what: `${path} is not readable by ${whom(as)}`,
        fix:
          "add the user running seqwatch to the file's group (Debian: usermod -aG adm seqwatch; the unit: SupplementaryGroups=adm), or give the file group read access" +
          (isGlob(source.path) ? ' (log_file_mode = 0640 and the group of log_directory)' : ''),
      });
      continue;
    }
    findings.push(contentFinding(source, path, serverPrefix));
  }
  return findings;
}

/** The journal: journalctl must exist, and the user must be allowed to read the system journal. */
function journalFinding(unit: string, as: CheckedAs | undefined): Finding {
  if (spawnSync('journalctl', ['--version'], { stdio: 'ignore' }).error) {
    return { level: 'problem', what: `journald:${unit}: journalctl is not installed here`, fix: 'apt-get install systemd, or follow the log file instead' };
  }
  const groups = as ? as.groups : execFileSync('id', ['-Gn']).toString().trim().split(/\s+/);
  const uid = as ? as.uid : process.getuid?.();
  if (uid !== 0 && !groups.some((g) => g === 'systemd-journal' || g === 'adm' || g === 'wheel')) {
    return {
      level: 'problem',
      what: `journald:${unit}: ${whom(as)} may not read the system journal`,
      fix: 'add it to the group systemd-journal (the unit: SupplementaryGroups=systemd-journal)',
    };
  }
  return { level: 'ok', what: `journald:${unit}: ${whom(as)} may read the system journal` };
}

/** Whether the end of a readable file looks like the source's format. */
function contentFinding(source: SourceConfig, path: string, serverPrefix: string | undefined): Finding {
  const lines = tailLines(path, 64 * 1024).filter((l) => l && !l.startsWith('\t'));
  if (lines.length === 0) return { level: 'ok', what: `${path} is readable (empty so far)` };
  const matcher = compileLogLinePrefix(source.log_line_prefix);
  const format: Format = source.format === 'docker-json' ? 'docker-json' : source.format;
  if (format === 'postgres-stderr') {
    const matching = lines.filter((l) => matcher.test(l)).length;
    const share = Math.round((matching / lines.length) * 100);
    if (share >= 50) return { level: 'ok', what: `${path} is readable and ${share}% of its last ${lines.length} lines match its log_line_prefix` };
    return {
      level: 'problem',
      what: `${path}: only ${share}% of its last ${lines.length} lines match the log_line_prefix ${JSON.stringify(source.log_line_prefix)}: records will be missed`,
      fix:
        serverPrefix === source.log_line_prefix
          ? // The config already has the server's: the lines before a change of the server's prefix stay in the file.
            `none in the config (its log_line_prefix is the server's): if the server's was changed lately, the lines before the change stay in ${path} until the log rotates; else check that this is a PostgreSQL stderr log`
          : serverPrefix !== undefined
            ? `in the config: log_line_prefix: '${serverPrefix}' (the server's), or check that this is a PostgreSQL stderr log`
            : "set log_line_prefix in the config to the server's (SHOW log_line_prefix;)",
    };
  }
  if (format === 'app-text' || format === 'auto') return { level: 'ok', what: `${path} is readable (${format}: any line may hold an error)` };
  // csvlog records may span lines (quoted newlines): judge the lines that are recognisably something.
  const seen = lines.map((l) => recognise(l, matcher)).filter((f) => f !== undefined);
  const matching = seen.filter((f) => f === format).length;
  if (matching > 0 && matching * 2 >= seen.length)
    return { level: 'ok', what: `${path} is readable and ${matching} of its last ${lines.length} lines are ${format} records` };
  const others = [...new Set(seen.filter((f) => f !== format))];
  return {
    level: 'problem',
    what: `${path}: ${matching} of its last ${lines.length} lines look like ${format}${others.length ? ` (they look like ${others.join(', ')})` : ''}: records will be missed`,
    fix: `set the source's format to what the file holds${others.length ? ` (format: ${others[0]})` : ''}, or point it at the server's ${format} file`,
  };
}
