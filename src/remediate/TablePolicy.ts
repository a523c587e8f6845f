import { globToRegExp } from '../sources/glob.js';

/**
 * Which tables the daemon may act on: `schema.table` globs (`*` any run of characters, `?` one),
 * unquoted, case-sensitive as PostgreSQL stores names. A pattern without a dot names a table in
 * any schema. No include list means every table; exclude wins over include.
 */
export class TablePolicy {
  private readonly include: RegExp[];
  private readonly exclude: RegExp[];

  constructor(include: string[] = [], exclude: string[] = []) {
    this.include = include.map(tableGlob);
    this.exclude = exclude.map(tableGlob);
  }

  allows(schema: string, table: string): boolean {
    const name = `${schema}.${table}`;
    if (this.exclude.some((re) => re.test(name))) return false;
    return this.include.length === 0 || this.include.some((re) => re.test(name));
  }
}

/** A pattern without a dot names a table in any schema. */
function tableGlob(glob: string): RegExp {
  return globToRegExp(glob.includes('.') ? glob : `*.${glob}`);
}
