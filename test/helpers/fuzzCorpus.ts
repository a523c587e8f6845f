/** The fuzz corpus of the parsers (test/formats/fuzz.test.ts), shared with the scanner's tests (test/detect/scanner.unit.test.ts). */

export const SEEDS = [
  '2026-11-27 10:00:00.123 UTC [42] gotrs@gotrs ERROR:  duplicate key value violates unique constraint "ticket_pkey"',
  '2026-11-27 10:00:00.123 UTC [42] gotrs@gotrs DETAIL:  Key (id)=(1) already exists.',
  '\tSELECT 1',
  '2026-11-27 10:00:00.123 UTC,"gotrs","gotrs",4242,"h",s,3,"INSERT",2026-11-27 09:59:58 UTC,3/12,0,ERROR,23505,"duplicate key value violates unique constraint ""t_pkey""",,,,,,"INSERT\n(1)",,,"psql"',
  JSON.stringify({ error_severity: 'ERROR', state_code: '23505', message: 'duplicate key value violates unique constraint "a_pkey"', pid: 1 }),
  JSON.stringify({ log: '2026-11-27 10:00:00.123 UTC [1] ERROR:  duplicate key value violates unique constraint "b_pkey"\n', stream: 'stderr' }),
  'Nov 27 10:00:00 db1 postgres[3360]: [5-1] gotrs@gotrs ERROR:  duplicate key value violates unique constraint "c_pkey"',
  'Nov 27 10:00:00 db1 postgres[3360]: [5-2] #011more',
  'pq: duplicate key value violates unique constraint "d_pkey" (SQLSTATE 23505)',
  'nextval: reached maximum value of sequence "valid_id_seq" (32767)',
];

export function mutate(line: string, next: () => number): string {
  const chars = [...line];
  const edits = 1 + Math.floor(next() * 6);
  for (let i = 0; i < edits; i++) {
    const at = Math.floor(next() * (chars.length + 1));
    const choice = next();
    if (choice < 0.25) chars.splice(at, 1);
    else if (choice < 0.5) chars.splice(at, 0, String.fromCharCode(Math.floor(next() * 0x3000)));
    else if (choice < 0.7) chars.splice(at, 0, ['"', '\\', '{', '}', ',', '\n', '\t', '\u0000', '\uFFFD', '%'][Math.floor(next() * 10)]!);
    else if (choice < 0.85) chars.splice(at, 0, ...chars.slice(0, Math.floor(next() * 40)));
    else chars.splice(at, Math.floor(next() * 10));
  }
  return chars.join('');
}

/**
 * `count` fuzz lines drawn with `next`: half mutated seeds, a third seeds as they are, the rest
 * random bytes read as UTF-8 (the corpus the scanner and its WebAssembly search are held to).
 */
export function fuzzLines(seeds: readonly string[], next: () => number, count: number): string[] {
  const lines: string[] = [];
  for (let i = 0; i < count; i++) {
    const r = next();
    if (r < 0.5) lines.push(mutate(seeds[Math.floor(next() * seeds.length)]!, next));
    else if (r < 0.85) lines.push(seeds[Math.floor(next() * seeds.length)]!);
    else lines.push(Buffer.from(Array.from({ length: Math.floor(next() * 300) }, () => Math.floor(next() * 256))).toString('utf8'));
  }
  return lines;
}
