import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Health } from './health.js';
import { writeFileAtomically } from './safeFiles.js';

/**
 * The health file, `state_dir/health.json`: written by the running daemon at each heartbeat, read
 * by `seqwatch health` (a container's HEALTHCHECK has no systemd to ask). Its one format lives here,
 * for both sides.
 */

/** How often health is assessed (and the health file written) when systemd asks for nothing faster. */
export const HEARTBEAT_MS = 5_000;

/** A heartbeat older than this is itself a failure: the daemon is stuck (or stopped). */
export const HEARTBEAT_STALE_MS = 3 * HEARTBEAT_MS;

/** What the file holds: the health, the daemon's pid and its counters (incidents, checks, fixes...). */
export interface HealthFile extends Health {
  pid: number;
  counters: Record<string, number>;
}

export function healthFilePath(stateDir: string): string {
  return join(stateDir, 'health.json');
}

/** Replaced atomically, never through a symbolic link (safeFiles). Throws when it cannot be written. */
export function writeHealthFile(stateDir: string, health: Health, counters: object): void {
  const content = { ...health, pid: process.pid, counters } as HealthFile;
  writeFileAtomically(healthFilePath(stateDir), JSON.stringify(content) + '\n', 'health file');
}

/** Whether a heartbeat taken at `time` (ISO) is too old to trust at `now`, and its age. */
export function heartbeatAge(time: string, now = Date.now()): { ageMs: number; stale: boolean } {
  const ageMs = now - Date.parse(time);
  return { ageMs, stale: !(ageMs <= HEARTBEAT_STALE_MS) };
}

export type HealthFileReading = { file: string; health: HealthFile; ageMs: number; stale: boolean } | { file: string; error: string };

/**
 * The health file as `seqwatch health` needs it: the last heartbeat and whether it is stale, or why
 * there is none (no daemon runs with this config, or it cannot write its state directory).
 */
export function readHealthFile(stateDir: string, now = Date.now()): HealthFileReading {
  const file = healthFilePath(stateDir);
  let health: HealthFile;
  try {
    health = JSON.parse(readFileSync(file, 'utf8')) as HealthFile;
  } catch (error) {
    return { file, error: (error as Error).message };
  }
  return { file, health, ...heartbeatAge(health.time, now) };
}
