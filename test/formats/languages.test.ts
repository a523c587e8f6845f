import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { detectIncident, type Incident } from '../../src/detect/detectIncident.js';
import { createParser, type Format } from '../../src/formats/createParser.js';
import type { LogRecord } from '../../src/formats/LogRecord.js';
import { markerOf } from '../../src/formats/logLinePrefix.js';
import {
  ENGLISH_SEVERITIES,
  SECONDARY_SEVERITIES,
  TRANSLATED_LOG_STARTS,
  TRANSLATED_SECONDARY_MARKERS,
  TRANSLATED_SEVERITIES,
} from '../../src/formats/severity.js';
import { postgresCatalogs } from '../helpers/messageCatalogs.js';

function records(format: Format, prefix: string, lines: string[]): LogRecord[] {
  const out: LogRecord[] = [];
  const parser = createParser(format, { source: 'test', logLinePrefix: prefix }, (r) => out.push(r));
  lines.forEach((line, i) => parser.push(line, { line: i + 1 }));
  parser.flush();
  return out;
}
const incidents = (format: Format, prefix: string, lines: string[]): Incident[] =>
  records(format, prefix, lines)
    .map(detectIncident)
    .filter((i): i is Incident => i !== undefined);

/* Lines as real servers wrote them: PostgreSQL 15 (Debian) with lc_messages de_DE.UTF-8 / fr_FR.UTF-8, log_error_verbosity verbose. */
const GERMAN_STDERR = [
  '2026-12-02 05:53:48.011 UTC [18737] 23505 postgres@postgres FEHLER:  23505: doppelter Schlüsselwert verletzt Unique-Constraint »t_pkey«',
  '2026-12-02 05:53:48.011 UTC [18737] 23505 postgres@postgres DETAIL:  Schlüssel »(id)=(1)« existiert bereits.',
  '2026-12-02 05:53:48.011 UTC [18737] 23505 postgres@postgres ORT:  _bt_check_unique, nbtinsert.c:664',
  '2026-12-02 05:53:48.011 UTC [18737] 23505 postgres@postgres ANWEISUNG:  INSERT INTO t DEFAULT VALUES',
  '2026-12-02 05:53:48.017 UTC [18737] 2200H postgres@postgres FEHLER:  2200H: nextval: Maximalwert von Sequenz »tiny_id_seq« erreicht (2)',
  '2026-12-02 05:53:48.017 UTC [18737] 2200H postgres@postgres ORT:  nextval_internal, sequence.c:760',
];
const FRENCH_STDERR = [
  "2026-12-02 05:53:50.748 UTC [18816] 23505 postgres@postgres ERREUR:  23505: la valeur d'une clé dupliquée rompt la contrainte unique « t_pkey »",
  '2026-12-02 05:53:50.748 UTC [18816] 23505 postgres@postgres DÉTAIL:  La clé « (id)=(1) » existe déjà.',
  '2026-12-02 05:53:50.748 UTC [18816] 23505 postgres@postgres EMPLACEMENT :  _bt_check_unique, nbtinsert.c:664',
  '2026-12-02 05:53:50.748 UTC [18816] 23505 postgres@postgres INSTRUCTION :  INSERT INTO t DEFAULT VALUES',
];
const PREFIX = '%m [%p] %e %q%u@%d ';

describe('translated servers', () => {
  it('stderr with %e: a German server (FEHLER, ORT, ANWEISUNG) is read and detected', () => {
    const [unique, sequence] = records('postgres-stderr', PREFIX, GERMAN_STDERR);
    expect(unique).toMatchObject({
      severity: 'ERROR',
      sqlstate: '23505',
      message: 'doppelter Schlüsselwert verletzt Unique-Constraint »t_pkey«',
      location: '_bt_check_unique, nbtinsert.c:664',
      statement: 'INSERT INTO t DEFAULT VALUES',
    });
    expect(detectIncident(unique!)).toMatchObject({ kind: 'unique_violation', constraint: 't_pkey', pid: 18737 });
    expect(detectIncident(sequence!)).toMatchObject({ kind: 'sequence_exhausted', constraint: 'tiny_id_seq' });
  });

  it('stderr with %e: a French server (ERREUR, a space before the colon: EMPLACEMENT :) is read and detected', () => {
    const [unique] = records('postgres-stderr', PREFIX, FRENCH_STDERR);
    expect(unique).toMatchObject({
      severity: 'ERROR',
      detail: 'La clé « (id)=(1) » existe déjà.',
      location: '_bt_check_unique, nbtinsert.c:664',
      statement: 'INSERT INTO t DEFAULT VALUES',
    });
    expect(detectIncident(unique!)).toMatchObject({ kind: 'unique_violation', constraint: 't_pkey' });
  });

  it('csvlog and jsonlog: the translated severity word becomes ERROR', () => {
    const csv = `2026-12-02 06:00:00.000 UTC,"postgres","postgres",7,"[local]",6b0f,1,"INSERT",2026-12-02 06:00:00 UTC,3/4,0,FEHLER,23505,"doppelter Schlüsselwert verletzt Unique-Constraint »t_pkey«","Schlüssel »(id)=(1)« existiert bereits.",,,,,"INSERT INTO t DEFAULT VALUES",,,"psql","client backend",,0`;
    expect(incidents('postgres-csv', PREFIX, [csv])).toMatchObject([{ kind: 'unique_violation', constraint: 't_pkey', database: 'postgres', pid: 7 }]);
    const json = JSON.stringify({
      timestamp: '2026-12-02 06:00:00.000 UTC',
      pid: 8,
      dbname: 'postgres',
      error_severity: 'ERREUR',
      state_code: '23505',
      message: "la valeur d'une clé dupliquée rompt la contrainte unique « t_pkey »",
    });
    expect(incidents('postgres-json', PREFIX, [json])).toMatchObject([{ kind: 'unique_violation', constraint: 't_pkey', pid: 8 }]);
  });

  it('syslog with %e: a German server through rsyslog (the chunks [N-2] keep the translated markers)', () => {
    const lines = [
      'Dec  2 05:53:48 db1 postgres[18737]: [7-1] 23505 postgres@postgres FEHLER:  doppelter Schlüsselwert verletzt Unique-Constraint »t_pkey«',
      'Dec  2 05:53:48 db1 postgres[18737]: [7-2] 23505 postgres@postgres DETAIL:  Schlüssel »(id)=(1)« existiert bereits.',
      'Dec  2 05:53:48 db1 postgres[18737]: [7-3] 23505 postgres@postgres ANWEISUNG:  INSERT INTO t DEFAULT VALUES',
    ];
    expect(incidents('syslog', '%e %q%u@%d ', lines)).toMatchObject([{ kind: 'unique_violation', constraint: 't_pkey', pid: 18737, database: 'postgres' }]);
  });

  it('without %e a translated message is not recognised (the config warns about it), and nothing is made up', () => {
    expect(incidents('postgres-stderr', '%m [%p] %q%u@%d ', [GERMAN_STDERR[0]!.replace(' 23505 postgres', ' postgres').replace('23505: ', '')])).toEqual([]);
  });

  it('the severity tables hold every word of the installed catalogs', () => {
    const catalogs = postgresCatalogs();
    for (const catalog of catalogs) {
      for (const word of ENGLISH_SEVERITIES) {
        const translated = catalog.messages.get(word);
        if (translated && translated !== word) expect(TRANSLATED_SEVERITIES[translated], `${catalog.language}: ${word}`).toBeDefined();
      }
      for (const word of SECONDARY_SEVERITIES.filter((w) => w !== 'LOCATION')) {
        const translated = catalog.messages.get(`${word}:  `);
        if (translated && translated !== `${word}:  `) expect(TRANSLATED_SECONDARY_MARKERS[translated], `${catalog.language}: ${word}`).toBe(word);
      }
      const location = catalog.messages.get('LOCATION:  %s, %s:%d\n');
      if (location) expect(TRANSLATED_SECONDARY_MARKERS[location.split('%s')[0]!], `${catalog.language}: LOCATION`).toBe('LOCATION');
      // log_statement's and log_min_duration_statement's LOG messages, up to what they print.
      for (const msgid of ['statement: %s', 'duration: %s ms']) {
        const translated = catalog.messages.get(msgid);
        if (translated) expect(TRANSLATED_LOG_STARTS, `${catalog.language}: ${msgid}`).toContain(translated.split('%s')[0]);
      }
    }
  });

  it('markers are exact: a separator no catalog prints is no marker, extra spaces belong to the message', () => {
    expect(markerOf({ severity: 'ERROR', separator: ':', message: 'x' })).toBeUndefined();
    expect(markerOf({ severity: 'ERROR', separator: ':   ', message: 'x' })).toEqual({ severity: 'ERROR', message: ' x' });
    expect(markerOf({ severity: 'ASTUCE', separator: ' :  ', message: 'x' })).toEqual({ severity: 'HINT', message: 'x' });
  });
});

describe('verbose SQLSTATE', () => {
  const T = '2026-11-27 10:00:00.000 UTC';
  it('a message that starts with `23505: ` on a server without verbose messages (no LOCATION line) is text, not an SQLSTATE', () => {
    const [record] = records('postgres-stderr', '%m [%p] ', [
      `${T} [5] ERROR:  23505: duplicate key value violates unique constraint "t_pkey"`,
      `${T} [5] STATEMENT:  SELECT raise_it()`,
    ]);
    expect(record?.sqlstate).toBeUndefined();
    expect(record?.message).toBe('23505: duplicate key value violates unique constraint "t_pkey"');
    expect(detectIncident(record!)).toBeUndefined();
  });
  it('with %e the prefix says the SQLSTATE: a `23505: ` message of another code stays text', () => {
    const [record] = records('postgres-stderr', '%m [%p] %e ', [`${T} [5] P0001 ERROR:  23505: duplicate key value violates unique constraint "t_pkey"`]);
    expect(record).toMatchObject({ sqlstate: 'P0001', message: '23505: duplicate key value violates unique constraint "t_pkey"' });
    expect(detectIncident(record!)).toBeUndefined();
  });
});

describe("PostgreSQL 18's apply-worker conflict, as a real 18.4 server logged it (test/detect/fixtures)", () => {
  const fixture = (ext: string) =>
    readFileSync(join(import.meta.dirname, '../detect/fixtures', `pg18-apply-conflict.${ext}`), 'utf8')
      .split('\n')
      .filter((l) => l !== '');
  const expected = {
    kind: 'replication_conflict',
    constraint: 't_pkey',
    replication: { origin: 'pg_16394', subscriptionOid: '16394', relation: 'public.t', finishLsn: '0/177C240', conflict: 'insert_exists' },
  };
  it.each([
    ['postgres-stderr', 'log'],
    ['postgres-csv', 'csv'],
    ['postgres-json', 'json'],
  ] as const)('%s', (format, ext) => {
    const found = incidents(format, '%m [%p] %q%u@%d ', fixture(ext));
    expect(found).toHaveLength(2);
    // stderr without %e has no SQLSTATE: the worker's CONTEXT and PG 18's message say it all the same.
    for (const incident of found) expect(incident).toMatchObject(format === 'postgres-stderr' ? expected : { ...expected, sqlstate: '23505' });
  });
});
