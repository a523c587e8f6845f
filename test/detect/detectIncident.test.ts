import { describe, expect, it } from 'vitest';
import { decidedByFirstLine, detectIncident, TRANSLATED_UNIQUE_VIOLATIONS } from '../../src/detect/detectIncident.js';
import { englishSeverity } from '../../src/formats/severity.js';
import { postgresCatalogs } from '../helpers/messageCatalogs.js';

const base = { source: 's', severity: 'ERROR' };

describe('detectIncident', () => {
  it('finds the index named by the English message', () => {
    expect(detectIncident({ ...base, message: 'duplicate key value violates unique constraint "ticket_pkey"', line: 3, database: 'gotrs' })).toEqual({
      kind: 'unique_violation',
      constraint: 'ticket_pkey',
      source: 's',
      line: 3,
      database: 'gotrs',
    });
  });

  it('keeps quotes inside a name whole (the message does not escape them)', () => {
    expect(detectIncident({ ...base, message: 'duplicate key value violates unique constraint "we"ird"' })?.constraint).toBe('we"ird');
  });

  it('trusts the SQLSTATE when the message is translated', () => {
    const incident = detectIncident({
      ...base,
      sqlstate: '23505',
      message: "la valeur d'une clé dupliquée rompt la contrainte unique « ticket_pkey »",
    });
    expect(incident?.constraint.trim()).toBe('ticket_pkey');
  });

  it('recognises the other sequence errors of the runbook, by message or by SQLSTATE with a *_seq name', () => {
    const kind = (message: string, sqlstate?: string) => detectIncident({ ...base, message, ...(sqlstate ? { sqlstate } : {}) });
    expect(kind('nextval: reached maximum value of sequence "valid_id_seq" (32767)')).toMatchObject({ kind: 'sequence_exhausted', constraint: 'valid_id_seq' });
    expect(kind('relation "ticket_id_seq" does not exist')).toMatchObject({ kind: 'sequence_missing', constraint: 'ticket_id_seq' });
    // As stderr and syslog write an error raised while the statement is parsed (SELECT nextval('ticket_id_seq')).
    expect(kind('relation "ticket_id_seq" does not exist at character 16')).toMatchObject({ kind: 'sequence_missing', constraint: 'ticket_id_seq' });
    expect(kind('relation "ticket_id_seq" does not exist at character x')).toBeUndefined();
    expect(kind('relation "ticket_id_seq" does not exist at character ')).toBeUndefined();
    expect(kind('permission denied for sequence ticket_id_seq')).toMatchObject({ kind: 'sequence_permission_denied', constraint: 'ticket_id_seq' });
    expect(kind('setval: value 40000 is out of bounds for sequence "valid_id_seq" (1..32767)')).toMatchObject({ kind: 'setval_out_of_bounds' });
    expect(kind('Zugriff verweigert für Sequenz ticket_id_seq', '42501')).toMatchObject({ kind: 'sequence_permission_denied', constraint: 'ticket_id_seq' });
    expect(kind('relation "ticket" does not exist', '42P01')).toBeUndefined();
    expect(kind('permission denied for table ticket', '42501')).toBeUndefined();
    expect(kind('integer out of range', '22003')).toBeUndefined();
  });

  it('ignores everything else', () => {
    expect(detectIncident({ ...base, severity: 'LOG', message: 'duplicate key value violates unique constraint "t_pkey"' })).toBeUndefined();
    expect(detectIncident({ ...base, message: 'relation "x" does not exist' })).toBeUndefined();
    expect(detectIncident({ ...base, message: 'duplicate key value violates unique constraint' })).toBeUndefined();
  });
});

/*
 * Every translation PostgreSQL ships, as the server would print it: the message catalogs installed
 * with Debian's packages (/usr/share/locale/<lang>/LC_MESSAGES/postgres-15.mo), each message
 * formatted with a name and numbers, must be found by its SQLSTATE with the right name.
 */
describe('detectIncident in every language of the installed message catalogs', () => {
  const catalogs = postgresCatalogs();
  const format = (template: string, values: string[]) => {
    let next = 0;
    // %s, %lld, %u and positional %1$s as printf would fill them.
    return template.replace(/%(?:(\d+)\$)?(?:ll|l)?[sduX]/g, (_all, position: string | undefined) => values[position ? Number(position) - 1 : next++] ?? '0');
  };
  const cases = [
    { msgid: 'duplicate key value violates unique constraint "%s"', sqlstate: '23505', values: ['ticket_pkey'], kind: 'unique_violation', name: 'ticket_pkey' },
    {
      msgid: 'nextval: reached maximum value of sequence "%s" (%lld)',
      sqlstate: '2200H',
      values: ['tiny_id_seq', '32767'],
      kind: 'sequence_exhausted',
      name: 'tiny_id_seq',
    },
    {
      msgid: 'nextval: reached minimum value of sequence "%s" (%lld)',
      sqlstate: '2200H',
      values: ['tiny_id_seq', '-32768'],
      kind: 'sequence_exhausted',
      name: 'tiny_id_seq',
    },
    { msgid: 'relation "%s" does not exist', sqlstate: '42P01', values: ['ticket_id_seq'], kind: 'sequence_missing', name: 'ticket_id_seq' },
    { msgid: 'permission denied for sequence %s', sqlstate: '42501', values: ['ticket_id_seq'], kind: 'sequence_permission_denied', name: 'ticket_id_seq' },
    {
      msgid: 'setval: value %lld is out of bounds for sequence "%s" (%lld..%lld)',
      sqlstate: '22003',
      values: ['40000', 'tiny_id_seq', '1', '32767'],
      kind: 'setval_out_of_bounds',
      name: 'tiny_id_seq',
    },
  ];

  it.runIf(catalogs.length > 0)(`finds the name in ${catalogs.length} catalog(s) by SQLSTATE, with the severity word as the catalog translates it`, () => {
    let checked = 0;
    for (const catalog of catalogs) {
      const severity = englishSeverity(catalog.messages.get('ERROR') ?? 'ERROR');
      for (const c of cases) {
        const template = catalog.messages.get(c.msgid);
        if (!template) continue;
        const message = format(template, c.values);
        const found = detectIncident({ source: 's', severity, sqlstate: c.sqlstate, message });
        expect(found, `${catalog.language} (${catalog.file}): ${message}`).toMatchObject({ kind: c.kind, constraint: c.name });
        checked++;
      }
    }
    expect(checked).toBeGreaterThan(40);
  });

  it.runIf(catalogs.length > 0)(
    "without a SQLSTATE a translated unique violation is not acted on; TRANSLATED_UNIQUE_VIOLATIONS holds each catalog's, up to the name (replay looks for them)",
    () => {
      let checked = 0;
      for (const catalog of catalogs) {
        const template = catalog.messages.get('duplicate key value violates unique constraint "%s"');
        if (!template) continue;
        const severity = englishSeverity(catalog.messages.get('ERROR') ?? 'ERROR');
        expect(detectIncident({ source: 's', severity, message: format(template, ['ticket_pkey']) }), catalog.language).toBeUndefined();
        expect(TRANSLATED_UNIQUE_VIOLATIONS, `${catalog.language} (${catalog.file})`).toContain(template.slice(0, template.indexOf('%s')));
        checked++;
      }
      expect(checked).toBeGreaterThan(5);
    },
  );

  it('real lines of a German and a French server (PostgreSQL 15, csvlog fields)', () => {
    const de = detectIncident({
      source: 's',
      severity: englishSeverity('FEHLER'),
      sqlstate: '23505',
      message: 'doppelter Schlüsselwert verletzt Unique-Constraint »t_pkey«',
    });
    expect(de).toMatchObject({ kind: 'unique_violation', constraint: 't_pkey' });
    const fr = detectIncident({
      source: 's',
      severity: englishSeverity('ERREUR'),
      sqlstate: '23505',
      message: "la valeur d'une clé dupliquée rompt la contrainte unique « t_pkey »",
    });
    expect(fr).toMatchObject({ kind: 'unique_violation', constraint: 't_pkey' });
    const seq = detectIncident({ source: 's', severity: 'ERROR', sqlstate: '2200H', message: 'nextval: Maximalwert von Sequenz »tiny_id_seq« erreicht (2)' });
    expect(seq).toMatchObject({ kind: 'sequence_exhausted', constraint: 'tiny_id_seq' });
  });

  it('a severity word no catalog has still counts when the SQLSTATE says error; a known non-error word does not', () => {
    expect(detectIncident({ source: 's', severity: 'ERRO', sqlstate: '23505', message: 'chave duplicada "t_pkey"' })).toMatchObject({ constraint: 't_pkey' });
    expect(detectIncident({ source: 's', severity: 'WARNING', sqlstate: '23505', message: 'x "t_pkey"' })).toBeUndefined();
    expect(detectIncident({ source: 's', severity: 'ERRO', sqlstate: '00000', message: 'x "t_pkey"' })).toBeUndefined();
  });
});

describe('detectIncident: replication conflicts are not drift', () => {
  it('an apply worker (csvlog/jsonlog backend type) hitting a unique violation is a replication conflict, PG 13-17', () => {
    const incident = detectIncident({
      source: 's',
      severity: 'ERROR',
      sqlstate: '23505',
      backendType: 'logical replication worker',
      message: 'duplicate key value violates unique constraint "t_pkey"',
      detail: 'Key (id)=(1) already exists.',
      context:
        'processing remote data for replication origin "pg_16395" during message type "INSERT" for replication target relation "public.t" in transaction 740, finished at 0/1549D18',
    });
    expect(incident).toMatchObject({
      kind: 'replication_conflict',
      constraint: 't_pkey',
      replication: { origin: 'pg_16395', subscriptionOid: '16395', relation: 'public.t', finishLsn: '0/1549D18' },
    });
  });

  it('by the CONTEXT alone (stderr without %b), in German too', () => {
    const incident = detectIncident({
      source: 's',
      severity: 'ERROR',
      sqlstate: '23505',
      message: 'doppelter Schlüsselwert verletzt Unique-Constraint »t_pkey«',
      context:
        'Verarbeiten empfangener Daten für Replication-Origin »pg_16395« bei Nachrichtentyp »INSERT« für Replikationsziel-Relation »public.t« in Transaktion 740, beendet bei 0/1549D18',
    });
    expect(incident).toMatchObject({ kind: 'replication_conflict', constraint: 't_pkey', replication: { origin: 'pg_16395', finishLsn: '0/1549D18' } });
  });

  it("PostgreSQL 18's conflict message: the index from DETAIL, never the table taken for an index", () => {
    const incident = detectIncident({
      source: 's',
      severity: 'ERROR',
      sqlstate: '23505',
      message: 'conflict detected on relation "public.t": conflict=insert_exists',
      detail: 'Key already exists in unique index "t_pkey", modified in transaction 752.\nKey (id)=(1); existing local row (1, local); remote row (1, remote).',
      context:
        'processing remote data for replication origin "pg_16394" during message type "INSERT" for replication target relation "public.t" in transaction 753, finished at 0/177C240',
      backendType: 'logical replication apply worker',
    });
    expect(incident).toMatchObject({
      kind: 'replication_conflict',
      constraint: 't_pkey',
      replication: { origin: 'pg_16394', relation: 'public.t', finishLsn: '0/177C240', conflict: 'insert_exists' },
    });
  });

  it("a session's record (client backend, or %u/%d printed) is never a worker's: a CONTEXT quoting the worker's words is SQL text", () => {
    const context = `SQL statement "INSERT INTO t VALUES (1, 'processing remote data for replication origin "pg_1"')"\nPL/pgSQL function f() line 3 at SQL statement`;
    const message = 'duplicate key value violates unique constraint "t_pkey"';
    for (const who of [{ user: 'app' }, { database: 'app' }, { backendType: 'client backend', user: 'app' }]) {
      const record = { source: 's', severity: 'ERROR', message, context, ...who };
      expect(detectIncident(record)).toMatchObject({ kind: 'unique_violation', constraint: 't_pkey' });
      // What its ERROR line decided is what the whole record says.
      expect(decidedByFirstLine({ source: 's', severity: 'ERROR', message, ...who })).toMatchObject({ kind: 'unique_violation', constraint: 't_pkey' });
    }
    // Without them (a worker's stderr line, %q stops the prefix) the CONTEXT still says worker.
    expect(detectIncident({ source: 's', severity: 'ERROR', message, context })).toMatchObject({ kind: 'replication_conflict' });
    expect(detectIncident({ source: 's', severity: 'ERROR', message, context, backendType: 'background worker' })).toMatchObject({
      kind: 'replication_conflict',
    });
  });

  it('other errors of an apply worker, and the same unique violation from a client, are not replication conflicts', () => {
    expect(
      detectIncident({
        source: 's',
        severity: 'ERROR',
        sqlstate: '42P01',
        backendType: 'logical replication worker',
        message: 'logical replication target relation "public.x" does not exist',
      }),
    ).toBeUndefined();
    expect(
      detectIncident({
        source: 's',
        severity: 'ERROR',
        sqlstate: '23505',
        backendType: 'client backend',
        message: 'duplicate key value violates unique constraint "t_pkey"',
      }),
    ).toMatchObject({ kind: 'unique_violation' });
  });
});

describe('decidedByFirstLine: what an ERROR line already says', () => {
  const line = { source: 's', severity: 'ERROR', message: 'duplicate key value violates unique constraint "ticket_pkey"', offset: 7 };

  it("a session's unique violation: the incident at once, with the database from the prefix", () => {
    expect(decidedByFirstLine({ ...line, user: 'gotrs', database: 'helpdesk', pid: 17 })).toEqual({
      kind: 'unique_violation',
      constraint: 'ticket_pkey',
      source: 's',
      offset: 7,
      pid: 17,
      database: 'helpdesk',
    });
    expect(decidedByFirstLine({ ...line, backendType: 'client backend' })?.constraint).toBe('ticket_pkey');
  });

  it('not when the later lines could make it something else: no user or database printed (a logical-replication worker, whose CONTEXT decides), or such a worker by its backend type', () => {
    expect(decidedByFirstLine(line)).toBeUndefined();
    expect(decidedByFirstLine({ ...line, user: '', database: '' })).toBeUndefined();
    expect(decidedByFirstLine({ ...line, database: 'helpdesk', backendType: 'logical replication worker' })).toBeUndefined();
    expect(decidedByFirstLine({ ...line, database: 'helpdesk', backendType: 'logical replication apply worker' })).toBeUndefined();
  });

  it('not for the other kinds of incident, nor for other errors', () => {
    const session = { source: 's', severity: 'ERROR', database: 'helpdesk' };
    expect(decidedByFirstLine({ ...session, message: 'nextval: reached maximum value of sequence "t_id_seq" (2147483647)' })).toBeUndefined();
    expect(decidedByFirstLine({ ...session, message: 'conflict detected on relation "public.t": conflict=insert_exists' })).toBeUndefined();
    // The same message with its SQLSTATE (%e, csvlog, jsonlog): whatever writes it, the whole record
    // is a replication conflict (detectIncident), so the first line decides nothing (found by
    // test/replay/differential.unit.test.ts: the live path took a unique violation on "public.t" too).
    const conflict = { ...session, sqlstate: '23505', message: 'conflict detected on relation "public.t": conflict=insert_exists' };
    expect(detectIncident(conflict)?.kind).toBe('replication_conflict');
    expect(decidedByFirstLine(conflict)).toBeUndefined();
    expect(decidedByFirstLine({ ...session, message: 'syntax error at or near "x"' })).toBeUndefined();
    expect(decidedByFirstLine({ ...session, severity: 'LOG', message: 'duplicate key value violates unique constraint "t_pkey"' })).toBeUndefined();
  });
});
