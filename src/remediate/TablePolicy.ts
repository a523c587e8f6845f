import type { SequenceTarget } from '../db/resolveIndex.js';
import { globToRegExp } from '../util/glob.js';

/**
 * Which tables the daemon may act on: `schema.table` globs (`*` any run of characters, `?` one),
 * unquoted, case-sensitive as PostgreSQL stores names. A pattern without a dot names a table in
 * any schema. No include list means every table; exclude wins over include.
 *
 * The sequence's schema is judged too (allowsSchema), by the schema part of the patterns: a table
 * in `public` whose sequence lives in an excluded schema is not acted on either.
 */
export class TablePolicy {
  private readonly include: Array<{ table: RegExp; schema: RegExp; wholeSchema: boolean }>;
  private readonly exclude: Array<{ table: RegExp; schema: RegExp; wholeSchema: boolean }>;

  constructor(include: string[] = [], exclude: string[] = []) {
    this.include = include.map(pattern);
    this.exclude = exclude.map(pattern);
  }

  allows(schema: string, table: string): boolean {
    const name = `${schema}.${table}`;
    if (this.exclude.some((p) => p.table.test(name))) return false;
    return this.include.length === 0 || this.include.some((p) => p.table.test(name));
  }

  /**
   * Whether a sequence in this schema may be moved: no exclude pattern covers the whole schema
   * (`staging.*`), and, with an include list, some include pattern's schema part matches it
   * (`public.*`, `public.ticket`; a pattern without a dot matches every schema).
   */
  allowsSchema(schema: string): boolean {
    if (this.exclude.some((p) => p.wholeSchema && p.schema.test(schema))) return false;
    return this.include.length === 0 || this.include.some((p) => p.schema.test(schema));
  }

  /** Whether a target may be acted on: its table, and the schema of its sequence. */
  allowsTarget(target: Pick<SequenceTarget, 'schema' | 'tableName' | 'sequenceSchema'>): boolean {
    return this.allows(target.schema, target.tableName) && (target.sequenceSchema === undefined || this.allowsSchema(target.sequenceSchema));
  }
}

/** A pattern without a dot names a table in any schema. */
function pattern(glob: string): { table: RegExp; schema: RegExp; wholeSchema: boolean } {
  const full = glob.includes('.') ? glob : `*.${glob}`;
  const dot = full.indexOf('.');
  const tablePart = full.slice(dot + 1);
  return { table: globToRegExp(full), schema: globToRegExp(full.slice(0, dot)), wholeSchema: /^\*+$/.test(tablePart) };
}
