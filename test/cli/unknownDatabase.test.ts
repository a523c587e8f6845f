import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pg from 'pg';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createDatabase, findLocalBinaries, startLocalPostgres, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';
import { runCli, startDaemon, type RunningDaemon } from '../helpers/daemon.js';

/*
 * Several databases of one cluster followed through a server log whose log_line_prefix has no %d:
 * an error's database cannot be known. config check and the start say so, and the audit says so
 * instead of letting the checks' records pass for the error's database.
 */
describe.runIf(findLocalBinaries())('several databases, a prefix without %d', () => {
  let server: ThrowawayPostgres;
  let urls: string[];
  let daemon: RunningDaemon;
  const config = () => ({
    databases: urls.map((url) => ({ url })),
    sources: [{ path: server.logPath!, log_line_prefix: '%m [%p] ' }],
    remediation: { debounce_ms: 20, cooldown: 0 },
  });

  beforeAll(async () => {
    server = await startLocalPostgres({ logLinePrefix: '%m [%p] ' });
    urls = [await createDatabase(server, 'one'), await createDatabase(server, 'two')];
    for (const [i, url] of urls.entries()) {
      const client = new pg.Client({ connectionString: url });
      await client.connect();
      await client.query(`CREATE TABLE ticket (id bigserial PRIMARY KEY); INSERT INTO ticket (id) SELECT generate_series(1, ${10 * (i + 1)})`);
      await client.end();
    }
  });
  afterAll(async () => {
    await daemon?.stop();
    await server?.destroy();
  });

  it("config check warns that an error's database cannot be known", async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'seqwatch-nod-')), 'seqwatch.yaml');
    writeFileSync(path, stringify(config()));
    const result = await runCli('config', 'check', '-c', path);
    expect(result.code).toBe(0);
    expect(result.stderr).toMatch(
      /warning: .*postgresql\.log: its log_line_prefix has no %d, and this config watches 2 databases: the database an error came from cannot be known/,
    );
    expect(result.stderr).toContain('add %d to log_line_prefix');
  });

  it('the daemon warns at start, and the audit says the database is unknown instead of naming one', async () => {
    daemon = await startDaemon(config());
    expect(daemon.stderr()).toMatch(/its log_line_prefix has no %d.*cannot be known/);
    const client = new pg.Client({ connectionString: urls[1] });
    await client.connect();
    await expect(client.query('INSERT INTO ticket DEFAULT VALUES')).rejects.toMatchObject({ code: '23505' });
    await client.end();
    const alert = await daemon.waitForAudit('the unknown-database alert', (r) => r.event === 'alert' && r.reason === 'database_unknown');
    expect(alert.database).toBeNull();
    expect(alert.databases).toEqual(['one', 'two']);
    expect(alert.msg).toMatch(/names no database .* cannot be known: checked in each of one, two/);
    // Checked in each database: verified drift is healed wherever it is (here in both).
    await daemon.waitForAudit('two healed', (r) => r.event === 'remediated' && r.database === 'two');
    // Said once per source, not once per error.
    const client2 = new pg.Client({ connectionString: urls[1] });
    await client2.connect();
    await client2.query('INSERT INTO ticket DEFAULT VALUES').catch(() => {});
    await client2.end();
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(daemon.audit().filter((r) => r.reason === 'database_unknown')).toHaveLength(1);
  });
});
