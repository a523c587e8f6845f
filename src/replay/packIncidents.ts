import type { Incident } from '../detect/detectIncident.js';
import type { Found, RepeatRun } from './scanRange.js';

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
  /** The others, and the runs of repeats (RepeatRun, their epochs copied), with their place in the piece. */
  whole: Array<[number, Found]>;
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

/**
 * Packs incidents one by one as they are found (a worker's piece): each goes into the columns at
 * once, so that no array of a piece's incidents lives on in the worker's heap until the piece ends.
 */
export class IncidentPacker {
  private columns = new Float64Array(6 * 1024);
  private at = 0;
  private count = 0;
  private names: string[] = [];
  private readonly ids = new Map<string, number>();
  private times: string[] = [];
  private whole: Array<[number, Found]> = [];

  add(incident: Incident): void {
    const index = this.count++;
    if (!ofCommonShape(incident)) {
      this.whole.push([index, incident]);
      return;
    }
    if (this.at + 6 > this.columns.length) {
      const grown = new Float64Array(this.columns.length * 2);
      grown.set(this.columns);
      this.columns = grown;
    }
    const columns = this.columns;
    columns[this.at++] = this.nameId(incident.kind);
    columns[this.at++] = this.nameId(incident.constraint);
    columns[this.at++] = this.nameId(incident.source);
    columns[this.at++] = this.nameId(incident.database!);
    columns[this.at++] = incident.offset!;
    columns[this.at++] = incident.pid!;
    this.times.push(incident.logTime!);
  }

  /** A run of repeats (a sink's `repeats`), in its place among the incidents: as it is, its epochs copied. */
  addRun(run: RepeatRun): void {
    this.whole.push([this.count++, { ...run, epochs: run.epochs.slice(0, run.count) }]);
  }

  /** The incidents added since the last take(), packed; the packer starts again empty. */
  take(): PackedIncidents {
    const packed: PackedIncidents = {
      count: this.count,
      columns: this.columns.slice(0, this.at),
      names: this.names,
      times: this.times.join('\n'),
      whole: this.whole,
    };
    this.at = 0;
    this.count = 0;
    this.names = [];
    this.ids.clear();
    this.times = [];
    this.whole = [];
    return packed;
  }

  private nameId(name: string): number {
    let id = this.ids.get(name);
    if (id === undefined) {
      id = this.names.push(name) - 1;
      this.ids.set(name, id);
    }
    return id;
  }
}

export function packIncidents(incidents: Incident[]): PackedIncidents {
  const packer = new IncidentPacker();
  for (const incident of incidents) packer.add(incident);
  return packer.take();
}

export function unpackIncidents(packed: PackedIncidents): Found[] {
  const { count, columns, names, whole } = packed;
  const times = packed.times === '' && whole.length === count ? [] : packed.times.split('\n');
  const incidents: Found[] = [];
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
