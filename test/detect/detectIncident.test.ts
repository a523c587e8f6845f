import { describe, expect, it } from 'vitest';
import { detectIncident } from '../../src/detect/detectIncident.js';

const base = { source: 's', severity: 'ERROR' };

describe('detectIncident', () => {
  it('finds the index named by the English message', () => {
    expect(detectIncident({ ...base, message: 'duplicate key value violates unique constraint "ticket_pkey"', line: 3, database: 'gotrs' })).toEqual({
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

  it('ignores everything else', () => {
    expect(detectIncident({ ...base, severity: 'LOG', message: 'duplicate key value violates unique constraint "t_pkey"' })).toBeUndefined();
    expect(detectIncident({ ...base, message: 'relation "x" does not exist' })).toBeUndefined();
    expect(detectIncident({ ...base, message: 'duplicate key value violates unique constraint' })).toBeUndefined();
  });
});
