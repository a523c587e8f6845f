/**
 * Which tables the daemon may act on: `schema.table` globs (`*` any run of characters, `?` one),
 * unquoted, case-sensitive as PostgreSQL stores names. A pattern without a dot names a table in
 * any schema. No include list means every table; exclude wins over include.
 */
export class TablePolicy {
  private readonly include: RegExp[];
  private readonly exclude: RegExp[];

  constructor(include: string[] = [], exclude: string[] = []) {
    this.include = include.map(globToRegExp);
    this.exclude = exclude.map(globToRegExp);
  }

  allows(schema: string, table: string): boolean {
    const name = `${schema}.${table}`;
    if (this.exclude.some((re) => re.test(name))) return false;
    return this.include.length === 0 || this.include.some((re) => re.test(name));
  }
}

function globToRegExp(glob: string): RegExp {
  const qualified = glob.includes('.') ? glob : `*.${glob}`;
  const body = qualified.replace(/[.+^${}()|[\]\\]/g, '\\$&').replace(/\*/g, '.*').replace(/\?/g, '.');
  return new RegExp(`^${body}$`);
}
