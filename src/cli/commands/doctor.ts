import { accessSync, constants, existsSync, statfsSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Command } from 'commander';
import { loadConfig, type Config } from '../../config/config.js';
import type { Database } from '../../db/Database.js';
import { listSequenceColumns } from '../../db/listSequenceColumns.js';
import { compileLogLinePrefix } from '../../formats/logLinePrefix.js';
import { isGlob } from '../../sources/glob.js';
import { tailLines } from '../../sources/tailLines.js';
import { databaseFor, EXIT } from '../context.js';
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
    .action(async (options: { config: string; database?: string }) => {
      const config = await loadConfig(options.config);
      const findings = await diagnose(config, await databaseFor(config, options.database));
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

export async function diagnose(config: Config, db: Database): Promise<Finding[]> {
  const findings: Finding[] = [];
  try {
    let who: { user: string; superuser: boolean; version: string; database: string };
    try {
      const { rows } = await db.query<{ user: string; superuser: boolean; version: string; database: string }>(
        `SELECT current_user AS user, r.rolsuper AS superuser, current_setting('server_version') AS version, current_database() AS database
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
      return [...findings, ...sourceFindings(config, undefined), ...storageFindings(config)];
    }
    if (who.superuser) {
      findings.push({
        level: 'warn',
        what: `${who.user} is a superuser: seqwatch needs far less, and a daemon that writes to production should have no more than it needs`,
        fix: 'psql -d ' + who.database + ' -f config/seqwatch-role.sql, then connect as seqwatch',
      });
    } else {
      findings.push({ level: 'ok', what: `${who.user} is not a superuser` });
    }
    findings.push(...(await privilegeFindings(db, who.user)));
    const settings = await serverSettings(db);
    findings.push(...settingFindings(config, settings));
    findings.push(...sourceFindings(config, settings.log_line_prefix), ...storageFindings(config));
  } finally {
    await db.close();
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
      fix: [...missingTables].map((t) => `GRANT SELECT ON ${t} TO ${role};`).slice(0, 20).join('\n') + (missingTables.size > 20 ? '\n-- or: GRANT SELECT ON ALL TABLES IN SCHEMA <schema> TO ' + role + ';' : ''),
    });
  }
  if (missingSequences.size > 0) {
    findings.push({
      level: 'problem',
      what: `${role} cannot read and set ${missingSequences.size} sequence(s) (SELECT and UPDATE, for setval): ${[...missingSequences].slice(0, 5).join(', ')}${missingSequences.size > 5 ? ', ...' : ''}`,
      fix:
        [...missingSequences].map((s) => `GRANT SELECT, UPDATE ON SEQUENCE ${s} TO ${role};`).slice(0, 20).join('\n') +
        (missingSequences.size > 20 ? '\n-- or: GRANT SELECT, UPDATE ON ALL SEQUENCES IN SCHEMA <schema> TO ' + role + ';' : ''),
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

function settingFindings(config: Config, settings: Record<string, string>): Finding[] {
  const findings: Finding[] = [];
  const destinations = (settings.log_destination ?? '').split(',').map((d) => d.trim());
  if (!destinations.includes('stderr')) {
    findings.push({
      level: 'problem',
      what: `log_destination is '${settings.log_destination}': the postgres-stderr sources need stderr`,
      fix: `ALTER SYSTEM SET log_destination = '${[...new Set(['stderr', ...destinations.filter(Boolean)])].join(',')}'; SELECT pg_reload_conf();`,
    });
  } else {
    findings.push({ level: 'ok', what: `log_destination includes stderr (logging_collector ${settings.logging_collector ?? 'unknown'})` });
  }
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
      ? { level: 'warn', what: `log_min_error_statement is '${minStatement}': failed statements are not logged with their error (not needed for healing, useful for review)` }
      : { level: 'ok', what: `log_min_error_statement '${minStatement}'` },
  );
  const lc = settings.lc_messages ?? '';
  const english = lc === '' || lc === 'C' || lc === 'POSIX' || /^en[_.]/i.test(lc);
  for (const source of config.sources) {
    if (settings.log_line_prefix !== undefined && source.log_line_prefix !== settings.log_line_prefix) {
      findings.push({
        level: 'problem',
        what: `${source.path}: the config's log_line_prefix ${JSON.stringify(source.log_line_prefix)} is not the server's ${JSON.stringify(settings.log_line_prefix)}`,
        fix: `in the config: log_line_prefix: '${settings.log_line_prefix.replace(/'/g, "''")}'`,
      });
    } else if (settings.log_line_prefix !== undefined) {
      findings.push({ level: 'ok', what: `${source.path}: log_line_prefix matches the server's` });
    }
    if (!english && !source.log_line_prefix.includes('%e')) {
      findings.push({
        level: 'problem',
        what: `lc_messages is '${lc}': messages are translated, and ${source.path}'s prefix has no %e (SQLSTATE), so duplicate key errors cannot be recognised`,
        fix: `ALTER SYSTEM SET lc_messages = 'C'; SELECT pg_reload_conf();   -- or add %e to log_line_prefix (server and config)`,
      });
    }
  }
  if (english) findings.push({ level: 'ok', what: `lc_messages '${lc || 'C'}': messages in English` });
  return findings;
}

/** Below this much free space under the audit log or the state directory, doctor warns. */
const LOW_SPACE_BYTES = 256 * 2 ** 20;

/**
 * Where seqwatch writes: the audit log and the state directory (checkpoints, health file). Each must
 * be writable (or creatable) and have room: on a full disk the daemon keeps healing but holds its
 * audit records in memory (see the README), which is no way to run.
 */
function storageFindings(config: Config): Finding[] {
  const findings: Finding[] = [];
  for (const [what, path, dir] of [
    ['audit log', config.audit.path, dirname(config.audit.path)],
    ['state directory', config.state_dir, config.state_dir],
  ] as const) {
    const existing = nearestExisting(dir);
    try {
      accessSync(existsSync(path) ? path : existing, constants.W_OK);
    } catch {
      findings.push({ level: 'problem', what: `${what} ${path} is not writable by this user`, fix: `give the daemon's user write access to ${existsSync(path) ? path : existing} (the unit's LogsDirectory/StateDirectory do it under systemd)` });
      continue;
    }
    const { bavail, bsize } = statfsSync(existing);
    const free = bavail * bsize;
    const mib = Math.round(free / 2 ** 20);
    if (free < LOW_SPACE_BYTES) {
      findings.push({ level: 'warn', what: `${what} ${path}: only ${mib} MiB free on its file system`, fix: 'free space there or move it (audit.path, state_dir): on a full disk decisions wait in memory and go to the journal' });
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

function sourceFindings(config: Config, serverPrefix: string | undefined): Finding[] {
  const findings: Finding[] = [];
  for (const source of config.sources) {
    if (source.path === '-') {
      findings.push({ level: 'ok', what: 'a source reads standard input: start seqwatch at the end of the pipeline (docker logs -f gotrs-postgres 2>&1 | seqwatch run ...)' });
      continue;
    }
    if (isGlob(source.path)) {
      findings.push({ level: 'ok', what: `${source.path} is a glob: every matching file is followed, new ones from their start` });
      continue;
    }
    if (!existsSync(source.path)) {
      findings.push({ level: 'warn', what: `${source.path} does not exist yet: it will be followed from its start once it appears` });
      continue;
    }
    try {
      accessSync(source.path, constants.R_OK);
    } catch {
      findings.push({
        level: 'problem',
        what: `${source.path} is not readable by this user`,
        fix: `add the user running seqwatch to the file's group (Debian: usermod -aG adm seqwatch), or give the file group read access`,
      });
      continue;
    }
    const lines = tailLines(source.path, 64 * 1024).filter((l) => l && !l.startsWith('\t'));
    if (lines.length === 0) {
      findings.push({ level: 'ok', what: `${source.path} is readable (empty so far)` });
      continue;
    }
    const matcher = compileLogLinePrefix(source.log_line_prefix);
    const matching = lines.filter((l) => matcher.test(l)).length;
    const share = Math.round((matching / lines.length) * 100);
    if (share >= 50) {
      findings.push({ level: 'ok', what: `${source.path} is readable and ${share}% of its last ${lines.length} lines match its log_line_prefix` });
    } else {
      findings.push({
        level: 'problem',
        what: `${source.path}: only ${share}% of its last ${lines.length} lines match the log_line_prefix ${JSON.stringify(source.log_line_prefix)}: records will be missed`,
        fix: serverPrefix !== undefined ? `in the config: log_line_prefix: '${serverPrefix}' (the server's), or check that this is a PostgreSQL stderr log` : 'set log_line_prefix in the config to the server\'s (SHOW log_line_prefix;)',
      });
    }
  }
  return findings;
}
