import type pg from 'pg';

/**
 * What an OTRS migration does to every table at once: rows with explicit ids 1..rows, every NOT NULL
 * column given a value derived from the id (so UNIQUE columns stay unique), sequences untouched.
 * Works on any schema without knowing its tables, through the catalog.
 */
export async function importIntoEveryTable(pool: pg.Pool, rows: number): Promise<string[]> {
  const { rows: columns } = await pool.query<{ table_q: string; column_q: string; type: string; is_id: boolean }>(`
    SELECT format('%I.%I', n.nspname, c.relname) AS table_q, quote_ident(a.attname) AS column_q,
           format_type(a.atttypid, a.atttypmod) AS type,
           pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname) IS NOT NULL AS is_id
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE c.relkind = 'r' AND n.nspname = 'public'
      AND (a.attnotnull OR pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname) IS NOT NULL)
    ORDER BY 1, a.attnum`);
  const byTable = new Map<string, typeof columns>();
  for (const column of columns) byTable.set(column.table_q, [...(byTable.get(column.table_q) ?? []), column]);
  const imported: string[] = [];
  for (const [table, cols] of byTable) {
    if (!cols.some((c) => c.is_id)) continue;
    const values = cols.map((c) => valueFor(c.type));
    await pool.query(`INSERT INTO ${table} (${cols.map((c) => c.column_q).join(', ')}) SELECT ${values.join(', ')} FROM generate_series(1, $1::int) g`, [rows]);
    imported.push(table);
  }
  return imported;
}

function valueFor(type: string): string {
  if (/^(smallint|integer|bigint|numeric|real|double)/.test(type)) return 'g';
  if (/^(timestamp|date)/.test(type)) return 'now()';
  if (type === 'bytea') return `convert_to(g::text, 'UTF8')`;
  if (type === 'boolean') return 'false';
  return `left(g::text, 5)`;
}
