import type { LogRecord } from '../formats/LogRecord.js';

/**
 * A log record that matters: a unique violation (a candidate for a lagging sequence), or one of the
 * other sequence errors of the runbook, which setval must not "fix" and a person must see.
 */
export interface Incident {
  kind: 'unique_violation' | SequenceErrorKind;
  /** The index named in the message (PostgreSQL reports the index, never schema-qualified); for sequence errors, the sequence. */
  constraint: string;
  source: string;
  offset?: number;
  line?: number;
  logTime?: string;
  /** The database the record came from, when the log format says it. */
  database?: string;
  sqlstate?: string;
}

export const UNIQUE_VIOLATION = '23505';

export type SequenceErrorKind = 'sequence_exhausted' | 'sequence_missing' | 'sequence_permission_denied' | 'setval_out_of_bounds';

/** The `_id_seq` family: SQLSTATE, English message, and what it means. */
const SEQUENCE_ERRORS: Array<{ kind: SequenceErrorKind; sqlstate: string; english: RegExp }> = [
  { kind: 'sequence_exhausted', sqlstate: '2200H', english: /^nextval: reached (?:maximum|minimum) value of sequence "(.+)" \(-?\d+\)$/ },
  { kind: 'sequence_missing', sqlstate: '42P01', english: /^relation "(.+_seq)" does not exist$/ },
  { kind: 'sequence_permission_denied', sqlstate: '42501', english: /^permission denied for sequence (.+)$/ },
  { kind: 'setval_out_of_bounds', sqlstate: '22003', english: /^setval: value -?\d+ is out of bounds for sequence "(.+)" \(-?\d+\.\.-?\d+\)$/ },
];
const ENGLISH_NEEDLES = ['duplicate key value violates unique constraint', 'value of sequence', 'for sequence', '_seq" does not exist'];
const SQLSTATE_NEEDLES = [UNIQUE_VIOLATION, ...SEQUENCE_ERRORS.map((e) => e.sqlstate)];

/**
 * Strings one of which is in the first line of every record detectIncident can act on, for a cheap
 * pre-check of raw log data: the English messages' words, and the SQLSTATEs when the log carries
 * them (a prefix with %e; without it only English messages are recognised anyway).
 */
export function incidentNeedles(withSqlstate: boolean): string[] {
  return withSqlstate ? [...ENGLISH_NEEDLES, ...SQLSTATE_NEEDLES] : [...ENGLISH_NEEDLES];
}

const ENGLISH = /^duplicate key value violates unique constraint "(.*)"$/s;
/**
 * How translations quote the name ("…" ru/ja/…, «…» fr/es, »…« de, „…“, “…”, 「…」). Greedy
 * between a pair, since a name may itself contain the closing quote.
 */
const QUOTED = [/"(.*)"/s, /«\s*(.*)\s*»/s, /»(.*)«/s, /„(.*)“/s, /“(.*)”/s, /「(.*)」/s];

/**
 * Decides whether a record is a unique violation and, if so, which constraint it names.
 * Trusts the SQLSTATE where the format carries one (any message language), the English message
 * otherwise. The name is returned as text only: it is later looked up in the catalog as a bind
 * parameter and never becomes part of a statement.
 */
export function detectIncident(record: LogRecord): Incident | undefined {
  if (record.severity !== 'ERROR') return undefined;
  for (const known of SEQUENCE_ERRORS) {
    const english = known.english.exec(record.message);
    if (!english && record.sqlstate !== known.sqlstate) continue;
    // By SQLSTATE alone (a translated message) these codes also cover tables and numbers: only a
    // message that names a *_seq counts.
    const name = english?.[1] ?? /([\w$.]+_seq)\b/.exec(record.message)?.[1];
    if (!name) continue;
    return withWhere({ kind: known.kind, constraint: name }, record);
  }
  let constraint: string | undefined;
  const english = ENGLISH.exec(record.message);
  if (english) {
    constraint = english[1];
  } else if (record.sqlstate === UNIQUE_VIOLATION) {
    for (const quoted of QUOTED) {
      constraint = quoted.exec(record.message)?.[1]?.trim();
      if (constraint !== undefined) break;
    }
  }
  if (constraint === undefined) return undefined;
  return withWhere({ kind: 'unique_violation', constraint }, record);
}

function withWhere(found: Pick<Incident, 'kind' | 'constraint'>, record: LogRecord): Incident {
  const incident: Incident = { ...found, source: record.source };
  if (record.offset !== undefined) incident.offset = record.offset;
  if (record.line !== undefined) incident.line = record.line;
  if (record.logTime !== undefined) incident.logTime = record.logTime;
  if (record.database !== undefined) incident.database = record.database;
  if (record.sqlstate !== undefined) incident.sqlstate = record.sqlstate;
  return incident;
}
