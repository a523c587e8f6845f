/**
 * Kept for src/cli/main.ts only (split by another change), which imports the daemon and
 * HEARTBEAT_MS from here: the daemon lives in src/daemon/, the health file's format in
 * src/service/healthFile.ts. Import from those; this file goes once main.ts does.
 */
export { Daemon } from './daemon/Daemon.js';
export { HEARTBEAT_MS } from './service/healthFile.js';
export type { Health } from './service/health.js';
