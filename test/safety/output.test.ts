import { join } from 'node:path';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { findLocalBinaries, startLocalPostgres, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';
import { runCli, startDaemon, type RunningDaemon } from '../helpers/daemon.js';

/*
 * Issue 16 item 8, as the attacker does it: any database user RAISEs an error whose "constraint
 * name" holds terminal escape sequences (clear the screen, print a green all-clear, an 8-bit CSI,
 * a right-to-left override). The operator then reviews with `seqwatch audit` and `seqwatch replay`:
 * what reaches the terminal must be escaped text, never a control.
 */
const EVIL = 'evil\x1b[2J\x1b[1;32mALL CLEAR\x1b[0m\u009b31m\u202eeulav';
// eslint-disable-next-line no-control-regex
const CONTROL = /[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]/;

describe.runIf(findLocalBinaries())('log text shown to people', () => {
  let server: ThrowawayPostgres;
  let daemon: RunningDaemon;
  beforeAll(async () => {
    server = await startLocalPostgres();
    daemon = await startDaemon({
      database: { url: server.url },
      sources: [{ path: server.logPath, format: 'postgres-stderr', log_line_prefix: server.logLinePrefix }],
      remediation: { debounce_ms: 20 },
    });
    const client = new pg.Client({ connectionString: server.url });
    await client.connect();
    await expect(client.query(`DO $$ BEGIN RAISE EXCEPTION 'duplicate key value violates unique constraint "%"', $n$${EVIL}$n$; END $$`)).rejects.toThrow();
    await client.end();
    await daemon.waitForAudit('the forged name audited', (r) => JSON.stringify(r).includes('ALL CLEAR'), 15_000);
    await daemon.stop();
  });
  afterAll(async () => {
    await daemon?.stop();
    await server?.destroy();
  });

  it('seqwatch audit escapes control characters', async () => {
    const out = await runCli('audit', '-f', daemon.auditPath);
    expect(out.code).toBe(0);
    expect(out.stdout).toContain('ALL CLEAR');
    expect(out.stdout).not.toMatch(CONTROL);
    // The C0 escapes were already JSON escapes in the message; the 8-bit CSI and the override were raw.
    expect(out.stdout).toContain('\\x9b31m');
    expect(out.stdout).toContain('\\u{202e}eulav');
    const json = await runCli('audit', '-f', daemon.auditPath, '--json');
    expect(json.stdout).not.toMatch(CONTROL);
    expect(
      json.stdout
        .trim()
        .split('\n')
        .map((l) => JSON.parse(l) as { msg?: string })
        .some((r) => r.msg?.includes('\u202eeulav')),
    ).toBe(true);
  });

  it('seqwatch replay escapes them, in its table and in --json', async () => {
    const table = await runCli('replay', '-c', daemon.configPath, '--log-line-prefix', server.logLinePrefix, server.logPath!);
    expect(table.stdout).toContain('ALL CLEAR');
    expect(table.stdout).not.toMatch(CONTROL);
    const json = await runCli('replay', '-c', daemon.configPath, '--log-line-prefix', server.logLinePrefix, '--json', server.logPath!);
    expect(json.stdout).toContain('ALL CLEAR');
    expect(json.stdout).not.toMatch(CONTROL);
    expect(JSON.stringify(JSON.parse(json.stdout))).toContain(EVIL.slice(0, 4));
  });

  it("the daemon's own log (the journal) carries no raw control either", () => {
    expect(daemon.stderr()).not.toMatch(CONTROL);
    expect(join(daemon.dir)).toBeTruthy();
  });
});
