import type { LogRecord } from '../formats/LogRecord.js';

/** A log record that says an INSERT collided on a unique index: a candidate for a lagging sequence. */
export interface Incident {
  /** The index named in the message (PostgreSQL reports the index, never schema-qualified). */
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
  const incident: Incident = { constraint, source: record.source };
  if (record.offset !== undefined) incident.offset = record.offset;
  if (record.line !== undefined) incident.line = record.line;
  if (record.logTime !== undefined) incident.logTime = record.logTime;
  if (record.database !== undefined) incident.database = record.database;
  if (record.sqlstate !== undefined) incident.sqlstate = record.sqlstate;
  return incident;
}
