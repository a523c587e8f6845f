import { describe, expect, it } from 'vitest';
import { detectIncident } from '../../src/detect/detectIncident.js';

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
      message: 'la valeur d\'une clé dupliquée rompt la contrainte unique « ticket_pkey »',
    });
    expect(incident?.constraint.trim()).toBe('ticket_pkey');
  });

  it('recognises the other sequence errors of the runbook, by message or by SQLSTATE with a *_seq name', () => {
    const kind = (message: string, sqlstate?: string) => detectIncident({ ...base, message, ...(sqlstate ? { sqlstate } : {}) });
    expect(kind('nextval: reached maximum value of sequence "valid_id_seq" (32767)')).toMatchObject({ kind: 'sequence_exhausted', constraint: 'valid_id_seq' });
    expect(kind('relation "ticket_id_seq" does not exist')).toMatchObject({ kind: 'sequence_missing', constraint: 'ticket_id_seq' });
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
