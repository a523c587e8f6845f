// npm run bench:doc: docs/benchmarks.md and the README's benchmark table, generated from
// bench/results/*.json (as pino's update-bench-doc), so the published numbers are the measured ones.
// `node bench/doc.mjs --check` writes nothing and exits 1 when either is out of date.
//
// The result files belong to the benchmarks and grow new keys; this renders what it finds rather
// than a fixed list: every median and ratio at any depth, every other scalar figure, the machine and
// the date. Arrays (each run's numbers) stay in the JSON, which the page links to.
import { readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/** The order of the page: the product's face first; files not named here follow alphabetically. */
const ORDER = ['heal', 'live', 'replay', 'fix', 'startup', 'watch'];

/** The peer each benchmark measures in the same run, when its result file does not say (`peer`). */
const PEERS = {
  heal: "a cron sweep every minute running the runbook's DO block (run for real), and a hand-run `setval` after a person is paged (15 minutes assumed)",
  live: '`tail -F | grep -F` following the same file',
  replay:
    "`grep -c -F -e 'duplicate key' -e '_id_seq'` over the same log; the search floor (`bench/searchFloor.mjs`: reading and searching only, in Node.js); `fail2ban-regex` with the equivalent filter on its first 64 MiB (when installed)",
  fix: 'a correct single DO block run by `psql` (`bench/do-block.sql`; its read-only half `bench/do-block-check.sql` for `check`)',
  startup: '`node -e 0` as a whole process',
  watch: "a full sweep of every sequence, alternating with the watch's rounds",
};

/**
 * Issue 14's targets. Each check applies to every figure whose path matches (`when` too, when given;
 * `unless` not), so a figure added per format or per mode is judged too (one figure per value: a file
 * may repeat one under two names); a file with no matching figure says so.
 */
const TARGETS = {
  heal: {
    text: 'time to heal p99 ≤ 20 ms and ≤ 3 failed INSERTs at p99, at ~260 INSERT/s',
    checks: [
      { path: /(^|\.)seqwatch\.heal_seconds\.p99$/, max: 0.02 },
      { path: /(^|\.)seqwatch\.failed_inserts\.p99$/, max: 3 },
    ],
  },
  live: {
    text: "≤ 1.0x `tail -F | grep -F`'s CPU per MiB at 20 MiB/s, for stderr, csvlog and jsonlog, every incident still found",
    // The steady state (after the bench's warm-up) is judged: a daemon runs for weeks. The figure from
    // 'ready' (V8 compiling the hot code included) is shown beside it, not judged.
    checks: [{ path: /(^|\.)ratio_[^.]*tail_grep[^.]*$/, unless: /from_ready/, max: 1.0 }],
  },
  replay: {
    text: '≤ 1.0x the two-pattern grep on a 1 GiB log with ~150,000 non-sequence violations; < 0.6x with both cores (worker threads)',
    checks: [
      // The search floor (bench/searchFloor.mjs) is a peer shown beside them, not seqwatch: not judged.
      { path: /(^|\.)ratio_[^.]*grep[^.]*$/, unless: /worker|thread|parallel|floor/, max: 1.0 },
      { path: /(^|\.)ratio_[^.]*grep[^.]*$/, when: /worker|thread|parallel/, unless: /floor/, max: 0.6, strict: true },
    ],
    /** The target is for a busy log: say how busy the measured one was, when the file says. */
    context: (data) => {
      const violations = data.log_contents?.login_key;
      return typeof violations === 'number'
        ? `on a log with ${violations.toLocaleString('en-US')} non-sequence violations (the target's: ~150,000)`
        : undefined;
    },
  },
  fix: {
    text: "`check` over 2,000 sequences ≤ 1.5x the DO block's read-only half, both as whole processes",
    checks: [{ path: /(^|\.)(ratio_check_seqwatch_to_do_block|check\.ratio_seqwatch_to_do_block)$/, max: 1.5 }],
  },
  startup: {
    text: '`seqwatch --version` ≤ 2x `node -e 0`',
    checks: [{ path: /(^|\.)ratio_[^.]*node[^.]*$/, max: 2.0 }],
  },
};

const SKIP = new Set(['benchmark', 'peer', 'target', 'target_met', 'machine', 'date', 'runs', 'note', 'notes']);

/** The result files, in the page's order: [{ name, data }]. */
export function loadResults(dir) {
  const names = readdirSync(dir)
    .filter((file) => file.endsWith('.json'))
    .map((file) => file.slice(0, -'.json'.length));
  const rank = (name) => {
    const at = ORDER.findIndex((first) => name === first || name.startsWith(`${first}-`));
    return at < 0 ? ORDER.length : at;
  };
  names.sort((a, b) => rank(a) - rank(b) || (a < b ? -1 : a > b ? 1 : 0));
  return names.map((name) => ({ name, data: JSON.parse(readFileSync(`${dir}/${name}.json`, 'utf8')) }));
}

/** bench/notes.md: the text before the first `## ` is the page's introduction; `## NAME` sections go under that benchmark. */
export function readNotes(path) {
  const text = readFileSync(path, 'utf8').replace(/\r\n/g, '\n');
  const parts = text.split(/^## /m);
  const sections = new Map();
  for (const part of parts.slice(1)) {
    const newline = part.indexOf('\n');
    sections.set(part.slice(0, newline).trim(), part.slice(newline + 1).trim());
  }
  return { intro: parts[0].trim(), sections };
}

/** Every scalar leaf outside arrays, as [path, value], in the file's order. */
function leaves(value, path = [], out = []) {
  if (Array.isArray(value)) return out;
  if (value !== null && typeof value === 'object') {
    for (const [key, inner] of Object.entries(value)) if (!(path.length === 0 && SKIP.has(key))) leaves(inner, [...path, key], out);
    return out;
  }
  out.push([path, value]);
  return out;
}

const significant = (n, digits = 3) => {
  if (!Number.isFinite(n)) return String(n);
  if (Number.isInteger(n) && Math.abs(n) >= 10 ** digits) return n.toLocaleString('en-US');
  const rounded = Number(n.toPrecision(digits));
  return Math.abs(rounded) >= 10 ** digits ? Math.round(rounded).toLocaleString('en-US') : String(rounded);
};

/** A number in the unit its path implies (the nearest segment naming one). */
function formatValue(path, value) {
  if (typeof value === 'boolean') return value ? 'yes' : 'no';
  if (typeof value !== 'number') return String(value).replace(/\n/g, ' ').replace(/\|/g, '\\|');
  let per = ''; // "seqwatch_cpu_per_mib" under "median_seconds": seconds per MiB
  for (const segment of [...path].reverse()) {
    if (/^ratio/.test(segment)) return `${significant(value)}x`;
    if (/ms_per_mib/.test(segment)) return `${significant(value)} ms/MiB`;
    if (/mib_per_s/.test(segment)) return `${significant(value)} MiB/s`;
    if (/(^|_)per_mib$/.test(segment)) {
      per = '/MiB';
      continue;
    }
    if (/(^|_)seconds($|_)/.test(segment)) return value < 1 ? `${significant(value * 1000)} ms${per}` : `${significant(value)} s${per}`;
    if (/(^|_)ms$/.test(segment)) return `${significant(value)} ms${per}`;
    if (/(^|_)mib$/.test(segment)) return `${significant(value)} MiB`;
    if (/(^|_)gib$/.test(segment)) return `${significant(value)} GiB`;
  }
  return `${significant(value)}${per}`;
}

const isRatio = (path) => /^ratio/.test(path[path.length - 1]);
const isMedian = (path) => path.some((segment) => /^median/.test(segment));

/** Ratios, each once (a file may repeat one under two names, as fix.json's check ratio). */
function ratios(data) {
  const seen = new Set();
  return leaves(data).filter(([path, value]) => {
    if (!isRatio(path) || typeof value !== 'number' || seen.has(value)) return false;
    seen.add(value);
    return true;
  });
}

/** "ratio_seqwatch_to_grep_time" -> "seqwatch / grep (time)"; the parent path says where it was measured. */
function ratioLabel(path) {
  const leaf = path[path.length - 1].replace(/^ratio_?/, '');
  const [left, right] = leaf.split('_to_');
  const label = right === undefined ? leaf.replace(/_/g, ' ') : `${left.replace(/_/g, ' ')} / ${right.replace(/_/g, ' ')}`;
  return path.length > 1 ? `${path.slice(0, -1).join('.')}: ${label}` : label;
}

/** Each target check against the figures it matches: [{ path, value, met }]. */
function verdicts(name, data) {
  const target = TARGETS[name.split('-')[0]];
  if (!target) return undefined;
  const found = [];
  for (const check of target.checks) {
    const seen = new Set();
    for (const [path, value] of leaves(data)) {
      const dotted = path.join('.');
      if (typeof value !== 'number' || !check.path.test(dotted) || (check.when && !check.when.test(dotted)) || check.unless?.test(dotted) || seen.has(value))
        continue;
      seen.add(value);
      found.push({ path, value, met: check.strict ? value < check.max : value <= check.max, limit: check.max });
    }
  }
  return { text: target.text, found, context: target.context?.(data) };
}

const machineLine = (data) => {
  const m = data.machine;
  if (!m) return 'machine: not recorded';
  const parts = [m.cpu, m.cores && `${m.cores} cores`, m.memory_gib && `${m.memory_gib} GiB`, m.node && `Node ${m.node}`, m.load && `load ${m.load}`];
  for (const [key, value] of Object.entries(m)) if (!['cpu', 'cores', 'memory_gib', 'node', 'load'].includes(key)) parts.push(`${key} ${value}`);
  return `machine: ${parts.filter(Boolean).join(', ')}`;
};

const dateLine = (data) =>
  data.date
    ? `date: ${String(data.date)
        .replace('T', ' ')
        .replace(/:\d\d(\.\d+)?Z$/, ' UTC')}`
    : 'date: not recorded';

const table = (header, rows) =>
  [`| ${header.join(' | ')} |`, `|${header.map(() => '---').join('|')}|`, ...rows.map((row) => `| ${row.join(' | ')} |`)].join('\n');

function renderOne({ name, data }, notes) {
  const out = [`## ${name}`, ''];
  if (data.benchmark) out.push(String(data.benchmark), '');
  out.push(`- peer in the same run: ${data.peer ?? PEERS[name.split('-')[0]] ?? 'named in the description above'}`);
  out.push(`- ${machineLine(data)}`);
  out.push(`- ${dateLine(data)}${data.runs !== undefined ? `; runs: ${data.runs}` : ''}`);
  out.push(`- every run's numbers: [bench/results/${name}.json](../bench/results/${name}.json)`, '');

  const judged = verdicts(name, data);
  if (judged) {
    out.push(`**Target** (issue 14): ${judged.text}.`, '');
    if (judged.found.length === 0) out.push('No figure in this file is judged by it yet.', '');
    for (const { path, value, met, limit } of judged.found)
      out.push(
        `- \`${path.join('.')}\` = ${formatValue(path, value)} (limit ${formatValue(path, limit)}): ${met ? 'met' : 'not met'}${judged.context ? `, ${judged.context}` : ''}`,
      );
    if (judged.found.length > 0) out.push('');
  }
  if (data.target !== undefined)
    out.push(`The bench's own target: ${data.target}${data.target_met === undefined ? '' : `: ${data.target_met ? 'met' : 'not met'}`}.`, '');

  const ratioRows = ratios(data).map(([path, value]) => [ratioLabel(path), formatValue(path, value)]);
  if (ratioRows.length > 0) out.push(table(['ratio', 'value'], ratioRows), '');

  const all = leaves(data);
  const medianRows = all.filter(([path]) => isMedian(path) && !isRatio(path)).map(([path, value]) => [`\`${path.join('.')}\``, formatValue(path, value)]);
  if (medianRows.length > 0) out.push(table(['median', 'value'], medianRows), '');
  const otherRows = all
    .filter(([path, value]) => !isMedian(path) && !isRatio(path) && !(typeof value === 'string' && value.includes('\n')))
    .map(([path, value]) => [`\`${path.join('.')}\``, formatValue(path, value)]);
  if (otherRows.length > 0) out.push('<details><summary>other figures</summary>', '', table(['figure', 'value'], otherRows), '', '</details>', '');

  const note = notes.sections.get(name);
  if (data.note || data.notes) out.push(`From the result file: ${data.note ?? data.notes}`, '');
  if (note) out.push('### How to read it', '', note, '');
  return out.join('\n');
}

/** docs/benchmarks.md, whole. */
export function renderBenchmarksDoc(results, notes) {
  const out = [
    '# Benchmarks',
    '',
    '<!-- Generated by bench/doc.mjs from bench/results/*.json and bench/notes.md: edit those and run `npm run bench:doc`. -->',
    '',
  ];
  if (notes.intro) out.push(notes.intro, '');
  out.push('| benchmark | seqwatch against its peer | target (issue 14) |', '|---|---|---|');
  for (const row of summaryRows(results)) out.push(`| [${row.name}](#${row.name.replace(/[^a-z0-9-]/g, '')}) | ${row.ratios} | ${row.target} |`);
  out.push('');
  for (const result of results) out.push(renderOne(result, notes));
  return `${out
    .join('\n')
    .replace(/\n{3,}/g, '\n\n')
    .trimEnd()}\n`;
}

/** Where a judged figure sits, briefly: "heal_seconds.p99 ", or "formats.csvlog " for a ratio. */
const verdictLabel = (path) => {
  const where = isRatio(path) ? path.slice(0, -1) : path.slice(-2);
  return where.length > 0 ? `${where.join('.')} ` : '';
};

function summaryRows(results) {
  return results.map(({ name, data }) => {
    const judged = verdicts(name, data);
    const target = !judged
      ? '-'
      : judged.found.length === 0
        ? 'not measured yet'
        : judged.found
            .map(
              ({ path, value, met, limit }) =>
                `${verdictLabel(path)}${formatValue(path, value)} (limit ${formatValue(path, limit)}): ${met ? 'met' : 'not met'}`,
            )
            .join('; ') + (judged.context ? `, ${judged.context}` : '');
    const shown = ratios(data).map(([path, value]) => `${ratioLabel(path)}: **${formatValue(path, value)}**`);
    return { name, ratios: shown.length > 0 ? shown.join('; ') : '-', target };
  });
}

/** The README's short table: one row per result file, its ratios and its target's verdict. */
export function renderReadmeTable(results) {
  const dates = results
    .map(({ data }) => String(data.date ?? '').slice(0, 10))
    .filter(Boolean)
    .sort();
  const rows = summaryRows(results).map(
    (row) => `| [${row.name}](docs/benchmarks.md#${row.name.replace(/[^a-z0-9-]/g, '')}) | ${row.ratios} | ${row.target} |`,
  );
  return [
    '| benchmark | seqwatch against its peer in the same run | target (issue 14) |',
    '|---|---|---|',
    ...rows,
    '',
    `Medians of each result file in \`bench/results/\`${dates.length > 0 ? `, measured ${dates[0]}${dates[0] === dates[dates.length - 1] ? '' : ` to ${dates[dates.length - 1]}`}` : ''}; machines, peers and every figure: [docs/benchmarks.md](docs/benchmarks.md).`,
  ].join('\n');
}

export const README_BEGIN = '<!-- bench:begin (generated by npm run bench:doc) -->';
export const README_END = '<!-- bench:end -->';

/** The README with its table between the markers replaced. */
export function withReadmeTable(readme, tableText) {
  const begin = readme.indexOf(README_BEGIN);
  const end = readme.indexOf(README_END);
  if (begin < 0 || end < begin) throw new Error(`README.md needs the lines ${README_BEGIN} and ${README_END} around the benchmark table`);
  return `${readme.slice(0, begin + README_BEGIN.length)}\n${tableText}\n${readme.slice(end)}`;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const at = (path) => fileURLToPath(new URL(`../${path}`, import.meta.url));
  const results = loadResults(at('bench/results'));
  const doc = renderBenchmarksDoc(results, readNotes(at('bench/notes.md')));
  const readme = readFileSync(at('README.md'), 'utf8');
  const nextReadme = withReadmeTable(readme, renderReadmeTable(results));
  if (process.argv.includes('--check')) {
    const stale = [readFileSync(at('docs/benchmarks.md'), 'utf8') !== doc && 'docs/benchmarks.md', readme !== nextReadme && 'README.md'].filter(Boolean);
    if (stale.length > 0) {
      process.stderr.write(`out of date with bench/results: ${stale.join(', ')}; run npm run bench:doc\n`);
      process.exit(1);
    }
  } else {
    writeFileSync(at('docs/benchmarks.md'), doc);
    writeFileSync(at('README.md'), nextReadme);
    process.stdout.write(`wrote docs/benchmarks.md and README.md's table from ${results.length} result file(s)\n`);
  }
}
