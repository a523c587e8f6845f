import type { Incident } from '../detect/detectIncident.js';

/**
 * A piece's incidents as they cross from a worker to the main thread. Cloning tens of thousands of
 * small objects (each of their strings copied again) costs about as much CPU as finding them; most
 * incidents have one shape (a stderr or csvlog record's unique violation: the same seven keys), so
 * those go as columns: numbers in one Float64Array, the few distinct names once each, the times as
 * one string. Every other incident goes whole, in its place. Unpacked, each is as it was: the same
 * keys in the same order with the same values.
 */
export interface PackedIncidents {
  count: number;
  /** Per incident of the common shape: kind, constraint, source, database (indexes into `names`), offset, pid. */
  columns: Float64Array;
  names: string[];
  /** The common shape's logTimes, joined by newlines (a time holds none). */
  times: string;
  /** The others, with their place in the piece. */
  whole: Array<[number, Incident]>;
}

/** The common shape's keys, in their order. */
const KEYS = ['kind', 'constraint', 'source', 'offset', 'logTime', 'pid', 'database'];

function ofCommonShape(incident: Incident): boolean {
  let i = 0;
  for (const key in incident) if (KEYS[i++] !== key) return false;
  return (
    i === KEYS.length &&
    typeof incident.constraint === 'string' &&
    typeof incident.source === 'string' &&
    typeof incident.offset === 'number' &&
    typeof incident.logTime === 'string' &&
    !incident.logTime.includes('\n') &&
    typeof incident.pid === 'number' &&
    typeof incident.database === 'string'
  );
}

export function packIncidents(incidents: Incident[]): PackedIncidents {
  const columns = new Float64Array(incidents.length * 6);
  const names: string[] = [];
  const ids = new Map<string, number>();
  const nameId = (name: string) => {
    let id = ids.get(name);
    if (id === undefined) {
      id = names.push(name) - 1;
      ids.set(name, id);
    }
    return id;
  };
  const times: string[] = [];
  const whole: Array<[number, Incident]> = [];
  let at = 0;
  incidents.forEach((incident, index) => {
    if (!ofCommonShape(incident)) {
      whole.push([index, incident]);
      return;
    }
    columns[at++] = nameId(incident.kind);
    columns[at++] = nameId(incident.constraint);
    columns[at++] = nameId(incident.source);
    columns[at++] = nameId(incident.database!);
    columns[at++] = incident.offset!;
    columns[at++] = incident.pid!;
    times.push(incident.logTime!);
  });
  return { count: incidents.length, columns: columns.slice(0, at), names, times: times.join('\n'), whole };
}

export function unpackIncidents(packed: PackedIncidents): Incident[] {
  const { count, columns, names, whole } = packed;
  const times = packed.times === '' && whole.length === count ? [] : packed.times.split('\n');
  const incidents: Incident[] = [];
  let at = 0;
  let time = 0;
  let next = 0;
  for (let index = 0; index < count; index++) {
    if (next < whole.length && whole[next]![0] === index) {
      incidents.push(whole[next++]![1]);
      continue;
    }
    incidents.push({
      kind: names[columns[at]!] as Incident['kind'],
      constraint: names[columns[at + 1]!]!,
      source: names[columns[at + 2]!]!,
      offset: columns[at + 4]!,
      logTime: times[time++]!,
      pid: columns[at + 5]!,
      database: names[columns[at + 3]!]!,
    });
    at += 6;
  }
  return incidents;
}
