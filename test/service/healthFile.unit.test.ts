import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Health } from '../../src/service/health.js';
import { HEARTBEAT_STALE_MS, healthFilePath, readHealthFile, writeHealthFile } from '../../src/service/healthFile.js';

// No server: the health file's one format, as the daemon writes it and `seqwatch health` reads it.

const health = (time: string): Health => ({
  ok: false,
  database: true,
  sources: false,
  audit: true,
  watchdog: true,
  problems: [{ code: 'source_unparsed', subject: '/l', message: 'm', fix: 'f' }],
  time,
});

describe('health file', () => {
  it('reads back what the daemon wrote, with its pid and counters', () => {
    const dir = mkdtempSync(join(tmpdir(), 'seqwatch-health-'));
    const now = Date.parse('2026-12-02T10:00:00.000Z');
    writeHealthFile(dir, health(new Date(now).toISOString()), { incidents: 3, remediated: 1 });
    expect(JSON.parse(readFileSync(healthFilePath(dir), 'utf8'))).toMatchObject({ ok: false, pid: process.pid, counters: { incidents: 3, remediated: 1 } });
    const reading = readHealthFile(dir, now + 1_000);
    expect(reading).toMatchObject({
      file: join(dir, 'health.json'),
      ageMs: 1_000,
      stale: false,
      health: { ok: false, sources: false, problems: [{ fix: 'f' }] },
    });
  });

  it('says a heartbeat older than three intervals is stale', () => {
    const dir = mkdtempSync(join(tmpdir(), 'seqwatch-health-'));
    const now = Date.parse('2026-12-02T10:00:00.000Z');
    writeHealthFile(dir, health(new Date(now - HEARTBEAT_STALE_MS - 1).toISOString()), {});
    expect(readHealthFile(dir, now)).toMatchObject({ stale: true });
    writeHealthFile(dir, health(new Date(now - HEARTBEAT_STALE_MS).toISOString()), {});
    expect(readHealthFile(dir, now)).toMatchObject({ stale: false });
  });

  it('says why there is none, or why it cannot be read', () => {
    const dir = mkdtempSync(join(tmpdir(), 'seqwatch-health-'));
    expect(readHealthFile(dir)).toMatchObject({ file: join(dir, 'health.json'), error: expect.stringContaining('ENOENT') });
    writeFileSync(join(dir, 'health.json'), '{"ok": tru');
    expect(readHealthFile(dir)).toHaveProperty('error');
  });
});
