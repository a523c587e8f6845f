import { statSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, resolve } from 'node:path';
import { LineCounter, parseDocument, isMap, isScalar, type Node } from 'yaml';
import { en } from 'zod/locales';
import * as z from 'zod/mini';
import { AUDIT_EVENTS } from '../audit/events.js';
import { FORMATS, INNER_FORMATS, readsLogLinePrefix, type Format } from '../formats/formatNames.js';
import { compileLogLinePrefix, LogLinePrefixError, printsSqlstate } from '../formats/logLinePrefix.js';

export const DEFAULT_LOG_LINE_PREFIX = '%m [%p] ';

/** The jump guard's defaults (remediation.max_jump, remediation.near_limit_percent; docs/safety-trust.md). */
export const DEFAULT_MAX_JUMP = 100_000_000;
export const DEFAULT_NEAR_LIMIT_PERCENT = 90;

// zod/mini rather than zod's classic API: the same checks and messages (its English locale, loaded
// here), but a fraction of the module to load at the start of every command (~10 ms less).
z.config(en());

const NonEmpty = () => z.string().check(z.minLength(1));

const SourceSchema = z
  .strictObject({
    /** A file, a glob of files, or "-" for standard input. */
    path: z.optional(NonEmpty()),
    /** Instead of a path: the systemd unit whose journal to follow (journalctl). */
    journal_unit: z.optional(NonEmpty()),
    format: z._default(z.enum(FORMATS), 'postgres-stderr'),
    /** docker-json and cri only: what the container wrote (default postgres-stderr). */
    inner_format: z.optional(z.enum(INNER_FORMATS)),
    log_line_prefix: z._default(
      z.string().check(
        z.superRefine((prefix, ctx) => {
          try {
            compileLogLinePrefix(prefix);
          } catch (error) {
            if (!(error instanceof LogLinePrefixError)) throw error;
            ctx.addIssue({ code: 'custom', message: error.message });
          }
        }),
      ),
      DEFAULT_LOG_LINE_PREFIX,
    ),
    start_at: z._default(z.enum(['end', 'beginning']), 'end'),
  })
  .check(
    z.refine((source) => (source.path === undefined) !== (source.journal_unit === undefined), {
      message: 'a source has either a path (a file, a glob, or "-" for standard input) or a journal_unit',
    }),
  );

/** A duration: milliseconds as a number, or text like `500ms`, `30s`, `5m`, `1h`. */
const Duration = z.union([
  z.int().check(z.gte(0)),
  z.pipe(
    z.string().check(z.regex(/^\d+(\.\d+)?\s*(ms|s|m|h)$/, 'a duration like 500ms, 30s, 5m or 1h')),
    z.transform((text: string) => {
      const [, amount, unit] = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/.exec(text)!;
      return Math.round(Number(amount) * { ms: 1, s: 1e3, m: 60e3, h: 3600e3 }[unit as 'ms' | 's' | 'm' | 'h']);
    }),
  ),
]);

/** `schema.table` globs (`*`, `?`); a pattern without a dot means that table in any schema. */
const Globs = z._default(z.array(NonEmpty()), []);

const LOOPBACK = /^(127\.\d{1,3}\.\d{1,3}\.\d{1,3}|localhost|\[::1\])$/;

const DatabaseSchema = z.strictObject({
  url: z.optional(NonEmpty()),
  /** A file holding the password (first line), e.g. a Docker or Kubernetes secret. */
  password_file: z.optional(NonEmpty()),
  /**
   * Under systemd: the credential the unit hands over (LoadCredential=NAME:FILE), read from
   * $CREDENTIALS_DIRECTORY/NAME. Outside the unit (no $CREDENTIALS_DIRECTORY), password_file is used.
   */
  password_credential: z.optional(z.string().check(z.regex(/^[A-Za-z0-9_.@-]+$/, 'a credential name (LoadCredential=NAME:...), no slashes'))),
});
export type DatabaseConfig = z.infer<typeof DatabaseSchema>;

const ConfigSchema = z.strictObject({
  database: z._default(DatabaseSchema, {}),
  /** Several databases of one cluster: records are routed to them by their database name (%d, dbname). */
  databases: z.optional(z.array(DatabaseSchema).check(z.minLength(1))),
  /** The logs to follow; `[]` for none (a managed database: the watch alone). */
  sources: z.array(SourceSchema, {
    error: (issue) => (issue.input === undefined ? 'required: the logs to follow (the PostgreSQL server log), or [] to rely on the watch alone' : undefined),
  }),
  /** The proactive watch (src/watch): tables that received rows are checked every `interval`. */
  watch: z._default(
    z.strictObject({
      enabled: z._default(z.boolean(), true),
      /** How often the statistics are read (one query); the changed tables' sequences are then checked. */
      interval: z._default(Duration.check(z.refine((ms) => ms >= 100, 'at least 100ms')), 2_000),
      /** How often every sequence is checked whatever the statistics say (their net). */
      full_sweep: z._default(Duration.check(z.refine((ms) => ms >= 1_000, 'at least 1s')), 600_000),
    }),
    { enabled: true, interval: 2_000, full_sweep: 600_000 },
  ),
  remediation: z._default(
    z.strictObject({
      debounce_ms: z._default(z.int().check(z.gte(0), z.lte(60_000)), 200),
      dry_run: z._default(z.boolean(), false),
      /** Check every sequence this often and heal drift before the first INSERT fails; off when absent. */
      sweep_interval: z.optional(Duration),
      /** After a fix, the next fix of the same sequence waits at least this long. */
      cooldown: z._default(Duration, 5_000),
      /** More fixes of one sequence within an hour mean something keeps writing explicit ids: alert, stop. */
      max_fixes_per_hour: z._default(z.int().check(z.gte(1)), 10),
      /**
       * A record logged longer ago than this (read after a restart, or from a backlog) is not acted
       * on blindly: the table is checked, read-only, and the record audited as skipped.
       */
      stale_after: z._default(Duration, 3_600_000),
      /** The jump guard: a fix that would move a sequence's next value further than this is an alert, not a fix (default DEFAULT_MAX_JUMP). */
      max_jump: z.optional(z.int().check(z.gte(1))),
      /** The jump guard: a fix that would move a sequence into the last (100 - this) % of its range is an alert (default DEFAULT_NEAR_LIMIT_PERCENT). */
      near_limit_percent: z.optional(z.number().check(z.gte(1), z.lte(100))),
    }),
    { debounce_ms: 200, dry_run: false, cooldown: 5_000, max_fixes_per_hour: 10, stale_after: 3_600_000 },
  ),
  policy: z._default(
    z.strictObject({
      include: Globs,
      exclude: Globs,
    }),
    { include: [], exclude: [] },
  ),
  metrics: z.optional(
    z.strictObject({
      /** host:port for /metrics (Prometheus) and /healthz; loopback only. */
      listen: z.string().check(
        z.regex(/^(.+):(\d{1,5})$/, 'host:port, e.g. 127.0.0.1:10187'),
        z.refine(
          (value) => LOOPBACK.test(value.slice(0, value.lastIndexOf(':'))),
          'a loopback address (127.0.0.1, [::1], localhost): metrics are not for the network',
        ),
      ),
    }),
  ),
  notify: z.optional(
    z.strictObject({
      /** Which audit events are sent. */
      events: z._default(z.array(z.enum(AUDIT_EVENTS)), ['remediated', 'alert']),
      webhook: z.optional(
        z.strictObject({
          url: z.url(),
          timeout_ms: z._default(z.int().check(z.gte(100)), 5_000),
          retries: z._default(z.int().check(z.gte(0), z.lte(10)), 3),
        }),
      ),
      /** A command (argv) run for each event, the record as JSON on its stdin; as fail2ban runs its actions. */
      command: z.optional(z.array(NonEmpty()).check(z.minLength(1))),
    }),
  ),
  audit: z._default(
    z.strictObject({
      path: z._default(NonEmpty(), '/var/log/seqwatch/audit.jsonl'),
    }),
    { path: '/var/log/seqwatch/audit.jsonl' },
  ),
  state_dir: z._default(NonEmpty(), '/var/lib/seqwatch'),
});

type ParsedConfig = z.infer<typeof ConfigSchema>;
/** A source as the pipeline sees it: its path is its name (`journald:<unit>` for a journal). */
export type SourceConfig = ParsedConfig['sources'][number] & { path: string };
export type Config = Omit<ParsedConfig, 'sources'> & { sources: SourceConfig[] };

/** A configuration problem, already worded for the operator: `FILE:LINE:COL: where: what`. */
export class ConfigError extends Error {
  constructor(
    readonly problems: string[],
    /** The file could not be read at all (then it is not "invalid"). */
    readonly unread = false,
  ) {
    super(problems.join('\n'));
    this.name = 'ConfigError';
  }
}

/**
 * Reads and validates a YAML config file. Every problem names the file, line and column, and
 * unknown keys are errors: a misspelt `dry_run` must not silently mean "act for real".
 * Relative paths are taken relative to the config file's directory.
 */
export async function loadConfig(file: string): Promise<Config> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const { code, message } = error as NodeJS.ErrnoException;
    throw new ConfigError(
      [
        code === 'ENOENT'
          ? `${file}: no such config file: give one with -c FILE (an install copies config/seqwatch.example.yaml to /etc/seqwatch/seqwatch.yaml)`
          : `${file}: cannot read the config file: ${message}`,
      ],
      true,
    );
  }
  return parseConfig(text, file);
}

export function parseConfig(text: string, file: string): Config {
  const lineCounter = new LineCounter();
  const doc = parseDocument(text, { lineCounter, prettyErrors: false, uniqueKeys: true });
  const where = (offset: number | undefined): string => {
    if (offset === undefined) return file;
    const { line, col } = lineCounter.linePos(offset);
    return `${file}:${line}:${col}`;
  };
  if (doc.errors.length > 0) {
    throw new ConfigError(doc.errors.map((error) => `${where(error.pos[0])}: YAML: ${error.message.split('\n')[0]}`));
  }
  const result = ConfigSchema.safeParse(doc.toJS() ?? {});
  if (!result.success) {
    throw new ConfigError(
      result.error.issues.map((issue) => {
        const path = issue.path.map(String);
        let offset = nodeAt(doc.contents, path)?.range?.[0];
        let label = path.join('.') || '(top level)';
        if (issue.code === 'unrecognized_keys') {
          const key = issue.keys[0]!;
          offset = keyAt(doc.contents, path, key) ?? offset;
          label = [...path, key].join('.');
          const known = knownKeys(path);
          return `${where(offset)}: ${label}: unknown key${known ? ` (known here: ${known})` : ''}`;
        }
        return `${where(offset)}: ${label}: ${issue.message}`;
      }),
    );
  }
  const config = result.data;
  const base = dirname(resolve(file));
  config.audit.path = resolve(base, config.audit.path);
  config.state_dir = resolve(base, config.state_dir);
  if (config.databases && (config.database.url || config.database.password_file || config.database.password_credential)) {
    throw new ConfigError([`${file}: say either database (one) or databases (several), not both`]);
  }
  for (const database of [config.database, ...(config.databases ?? [])]) {
    if (database.password_file) database.password_file = resolve(base, database.password_file);
  }
  if (config.sources.length === 0 && !config.watch.enabled) {
    throw new ConfigError([`${file}: sources: [] and watch.enabled: false leave nothing to do: list the server log under sources, or turn the watch on`]);
  }
  for (const source of config.sources) {
    if (source.journal_unit !== undefined) source.path = `journald:${source.journal_unit}`;
    else if (source.path !== '-') source.path = resolve(base, source.path!);
  }
  return config as Config;
}

/** The databases a config names: `databases`, or the single `database`. */
export function databasesOf(config: Config): DatabaseConfig[] {
  return config.databases ?? [config.database];
}

/**
 * The password from a database's `password_credential` (under systemd) or `password_file` (the
 * single `database` when given a Config).
 */
export async function readPasswordFile(config: Config | DatabaseConfig): Promise<string | undefined> {
  const database = 'sources' in config ? config.database : config;
  const credentials = process.env.CREDENTIALS_DIRECTORY;
  if (database.password_credential && credentials) {
    const file = resolve(credentials, database.password_credential);
    try {
      return (await readFile(file, 'utf8')).split('\n')[0]!.replace(/\r$/, '');
    } catch (error) {
      throw new ConfigError([
        `${file}: cannot read the credential database.password_credential (LoadCredential=${database.password_credential}:... in the unit): ${(error as Error).message}`,
      ]);
    }
  }
  if (database.password_credential && !database.password_file) {
    throw new ConfigError([
      `database.password_credential ${database.password_credential}: $CREDENTIALS_DIRECTORY is not set (not run by the unit): give database.password_file too, for the commands run by hand`,
    ]);
  }
  const file = database.password_file;
  if (!file) return undefined;
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    throw new ConfigError([`${file}: cannot read database.password_file: ${(error as Error).message}`]);
  }
  // A password every user can read is refused (it would be no secret); see passwordFileWarning.
  const mode = statSync(file).mode & 0o777;
  if ((mode & 0o004) !== 0) {
    throw new ConfigError([`${file}: database.password_file is readable by every user (mode ${mode.toString(8).padStart(4, '0')}): chmod o-rwx ${file}`]);
  }
  return text.split('\n')[0]!.replace(/\r$/, '');
}

/**
 * A password file of seqwatch's own user that its group may read too: more than seqwatch needs
 * (when the file belongs to another user, the group is how seqwatch reads it, and that is fine).
 */
function passwordFileWarning(file: string): string | undefined {
  const euid = process.geteuid?.();
  // Root reading its own file is an operator running a command (config check, fix), not the
  // service: a root-owned file readable by its group is how a service user of that group reads it
  // (a Kubernetes secret with fsGroup), and chmod g-r would lock the service out.
  if (euid === 0) return undefined;
  try {
    const stats = statSync(file);
    if ((stats.mode & 0o040) !== 0 && (stats.mode & 0o004) === 0 && stats.uid === euid) {
      return `${file}: database.password_file is readable by its group (mode ${(stats.mode & 0o777).toString(8).padStart(4, '0')}), which seqwatch, its owner, does not need: chmod g-r ${file}`;
    }
  } catch {
    // Unreadable: readPasswordFile says so.
  }
  return undefined;
}

/** The format of a source's records: a container log's (docker-json, cri) is the one it wraps. */
export function recordFormatOf(source: Pick<SourceConfig, 'format' | 'inner_format'>): Exclude<Format, 'docker-json' | 'cri'> {
  return source.format === 'docker-json' || source.format === 'cri' ? (source.inner_format ?? 'postgres-stderr') : source.format;
}

/** A source's format as a person reads it: a container log's with the format it wraps (`docker-json of postgres-stderr`). */
export function formatNameOf(source: Pick<SourceConfig, 'format' | 'inner_format'>): string {
  const records = recordFormatOf(source);
  return records === source.format ? source.format : `${source.format} of ${records}`;
}

/**
 * Whether a source's records carry the SQLSTATE, by which a translated message is recognised
 * (csvlog, jsonlog, CloudNativePG's JSON, a prefix with %e; a container's log by what it wraps);
 * undefined where it is not the server's own log (app-text) or its format is found at run time (auto).
 */
export function sourceGivesSqlstate(source: SourceConfig): boolean | undefined {
  const inside = recordFormatOf(source);
  if (inside === 'app-text' || inside === 'auto') return undefined;
  return ['postgres-csv', 'postgres-json', 'cnpg-json'].includes(inside) || printsSqlstate(source.log_line_prefix);
}

/** Things that are allowed but unwise: said at startup and by `config check`. */
export function configWarnings(file: string, config: Config): string[] {
  const warnings: string[] = [];
  // A password in a URL: user:password@ (several hosts included) or ?password=.
  const hasPassword = databasesOf(config).some((d) => /:\/\/[^/@?]*:[^/@?]+@|[?&]password=/.test(d.url ?? ''));
  for (const source of config.sources) {
    // A container log is judged by what it wraps; an application's log by what applications write.
    const inside = recordFormatOf(source);
    if (inside === 'app-text') {
      warnings.push(
        `${source.path}: an application log: duplicate key errors are found by their English message, a "(SQLSTATE 23505)" after the message (pgx) or the error's code and constraint fields (structured loggers); a translated message with neither is missed (see docs/app-logs.md)`,
      );
      continue;
    }
    if (sourceGivesSqlstate(source) === false) {
      warnings.push(
        `${source.path}: ${formatNameOf(source)} gives no SQLSTATE${readsLogLinePrefix(inside) ? ' (no %e in log_line_prefix)' : ''}, so duplicate key errors are recognised by their English message only (or with log_error_verbosity = verbose, which writes the SQLSTATE before the message): keep lc_messages = 'C' (or English) on the server, or add %e to log_line_prefix`,
      );
    }
  }
  for (const database of databasesOf(config)) {
    const warning = database.password_file ? passwordFileWarning(database.password_file) : undefined;
    if (warning) warnings.push(warning);
  }
  const databases = databasesOf(config).length;
  if (databases > 1) {
    for (const source of config.sources) {
      // csvlog and jsonlog always carry the database; a prefix carries it only with %d (auto reads
      // one when the log turns out to be the server's stderr log).
      if (readsLogLinePrefix(recordFormatOf(source)) && !source.log_line_prefix.includes('%d')) {
        warnings.push(
          `${source.path}: its log_line_prefix has no %d, and this config watches ${databases} databases: the database an error came from cannot be known, so each error is checked in every one and the audit says the database is unknown; add %d to log_line_prefix (server and config)`,
        );
      }
    }
  }
  if (hasPassword) {
    try {
      if ((statSync(file).mode & 0o004) !== 0) {
        warnings.push(`${file} holds a database password and is readable by every user: chmod o-r ${file} (or use database.password_file, PGPASSFILE)`);
      }
    } catch {
      // Unreadable now: loadConfig already said so, or it was just moved.
    }
  }
  return warnings;
}

/** The deepest node on the path that exists: a missing key is reported where its parent is. */
function nodeAt(contents: unknown, path: string[]): Node | undefined {
  for (let i = path.length; i >= 0; i--) {
    const node = getIn(contents, path.slice(0, i));
    if (node) return node;
  }
  return undefined;
}

function getIn(contents: unknown, path: string[]): Node | undefined {
  const node = contents as { getIn?: (p: unknown[], keepScalar: boolean) => unknown } | undefined;
  if (path.length === 0) return node as Node | undefined;
  if (!node || typeof node.getIn !== 'function') return undefined;
  const keys = path.map((part) => (/^\d+$/.test(part) ? Number(part) : part));
  const found = node.getIn(keys, true);
  return found && typeof found === 'object' ? (found as Node) : undefined;
}

function keyAt(contents: unknown, path: string[], key: string): number | undefined {
  const map = getIn(contents, path);
  if (!isMap(map)) return undefined;
  const pair = map.items.find((item) => isScalar(item.key) && item.key.value === key);
  return isScalar(pair?.key) ? pair.key.range?.[0] : undefined;
}

function knownKeys(path: string[]): string | undefined {
  let schema: z.ZodMiniType = ConfigSchema;
  for (const part of path) {
    schema = unwrap(schema);
    if (schema instanceof z.ZodMiniObject) schema = (schema.shape as Record<string, z.ZodMiniType>)[part]!;
    else if (schema instanceof z.ZodMiniArray) schema = schema.def.element as z.ZodMiniType;
    if (!schema) return undefined;
  }
  schema = unwrap(schema);
  return schema instanceof z.ZodMiniObject ? Object.keys(schema.shape).join(', ') : undefined;
}

function unwrap(schema: z.ZodMiniType): z.ZodMiniType {
  while (schema instanceof z.ZodMiniDefault || schema instanceof z.ZodMiniOptional) schema = schema.def.innerType as z.ZodMiniType;
  return schema;
}

/** The database URL with any password replaced, for messages and `config check` output. */
export function redactUrl(url: string | undefined): string {
  if (!url) return '(from libpq environment: PGHOST, PGPORT, PGDATABASE, PGUSER, PGPASSWORD)';
  // Not `new URL`: a multi-host URL (h1:5432,h2:5432) is valid for libpq but not for WHATWG.
  return url.replace(/^([a-z]+:\/\/[^:/@?]*:)[^@]*@/i, '$1***@').replace(/([?&]password=)[^&]*/i, '$1***');
}
