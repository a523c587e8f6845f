import { execFile } from 'node:child_process';
import { readFileSync, readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { promisify } from 'node:util';
import pg from 'pg';
import { parse, parseAllDocuments } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/config/config.js';
import { findSystemBinaries, startLocalPostgres, type ThrowawayPostgres } from '../../src/devtools/throwawayPostgres.js';
import { repoRootPath, startDaemon, type RunningDaemon } from '../helpers/daemon.js';

const run = promisify(execFile);
type Doc = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

/** Every YAML file under deploy/gotrs and deploy/kubernetes, each document parsed. */
function manifests(): Map<string, Doc[]> {
  const files = new Map<string, Doc[]>();
  for (const dir of ['deploy/gotrs', 'deploy/kubernetes/gotrs', 'deploy/kubernetes/cloudnativepg']) {
    for (const name of readdirSync(repoRootPath(dir)).filter((n) => /\.ya?ml$/.test(n))) {
      const docs = parseAllDocuments(readFileSync(repoRootPath(join(dir, name)), 'utf8'));
      for (const doc of docs) expect(doc.errors, `${dir}/${name}`).toEqual([]);
      files.set(
        `${dir}/${name}`,
        docs.map((d) => d.toJS() as Doc),
      );
    }
  }
  return files;
}

describe('GOTRS and Kubernetes recipes (deploy/gotrs, deploy/kubernetes)', () => {
  it('parse, and every seqwatch config in them is a valid config', () => {
    const files = manifests();
    const configs = [parse(readFileSync(repoRootPath('deploy/gotrs/seqwatch.yaml'), 'utf8'))];
    for (const docs of files.values()) for (const doc of docs) if (doc.kind === 'ConfigMap') configs.push(parse(doc.data['seqwatch.yaml']));
    expect(configs).toHaveLength(3);
    for (const config of configs) expect(() => parseConfig(JSON.stringify(config), 'embedded.yaml')).not.toThrow();
    // The CloudNativePG recipe is the watch alone, through the read-write service (the primary).
    const cnpg = parseConfig(JSON.stringify(configs[2]), 'cnpg.yaml');
    expect(cnpg.sources).toEqual([]);
    expect(cnpg.database.url).toContain('@gotrs-db-rw:5432/');
  });

  it("the compose override names GOTRS's own service, network and log volume", () => {
    const override = manifests().get('deploy/gotrs/compose.seqwatch.yaml')![0]!;
    expect(Object.keys(override.services)).toEqual(['postgres', 'seqwatch']);
    expect(override.services.seqwatch.networks).toEqual(['gotrs-network']);
    expect(override.services.seqwatch.environment).toMatchObject({ PGHOST: 'postgres', PGDATABASE: '${DB_NAME}', PGUSER: 'seqwatch' });
    expect(override.services.postgres.volumes).toEqual(['postgres_log:/var/log/postgresql']);
    expect(override.services.seqwatch.volumes).toContain('postgres_log:/var/log/postgresql:ro');
    expect(override.services.postgres.command.join(' ')).toContain('log_destination=jsonlog');
  });

  it('the Kubernetes sidecar patch mounts what it names, and the post-renderer is executable', () => {
    const patch = manifests().get('deploy/kubernetes/gotrs/database-sidecar.patch.yaml')![0]!;
    const spec = patch.spec.template.spec;
    expect(spec.containers.map((c: Doc) => c.name)).toEqual(['postgresql', 'seqwatch']);
    const volumes = new Set(spec.volumes.map((v: Doc) => v.name));
    for (const c of spec.containers) for (const m of c.volumeMounts) expect(volumes.has(m.name), `${c.name}: ${m.name}`).toBe(true);
    expect(statSync(repoRootPath('deploy/kubernetes/gotrs/post-render.sh')).mode & 0o111).not.toBe(0);
    const kustomization = manifests().get('deploy/kubernetes/gotrs/kustomization.yaml')![0]!;
    expect(kustomization.patches[0].path).toBe('database-sidecar.patch.yaml');
  });
});

/*
 * The role as the recipes create it, on a server of its own (roles are cluster-wide): role.sql run
 * by psql as GOTRS's owner, then a table a later migration creates, then the daemon as that role
 * with no log at all heals it. grants.sql (CloudNativePG) likewise, with the owner named.
 */
describe.runIf(findSystemBinaries())("the recipes' role is enough for the watch", () => {
  let server: ThrowawayPostgres;
  let daemon: RunningDaemon | undefined;
  const psql = (url: string, file: string, ...vars: string[]) =>
    run(join(findSystemBinaries()!, 'psql'), ['-X', '-q', '-v', 'ON_ERROR_STOP=1', ...vars.flatMap((v) => ['-v', v]), '-d', url, '-f', repoRootPath(file)]);

  beforeAll(async () => {
    server = await startLocalPostgres({ password: 'postgres-pw' });
  });
  afterAll(async () => {
    await daemon?.stop();
    await server?.destroy();
  });

  it('role.sql (compose) and grants.sql (CloudNativePG): the role heals a table created after them', async () => {
    const admin = new pg.Client({ connectionString: server.url.replace('postgres@', 'postgres:postgres-pw@') });
    await admin.connect();
    // GOTRS's image makes DB_USER a superuser that owns the database and runs the migrations.
    admin.on('error', () => {});
    await admin.query(`CREATE ROLE gotrs LOGIN SUPERUSER PASSWORD 'gotrs-pw'`);
    await admin.query(`CREATE DATABASE gotrs OWNER gotrs`);
    await admin.end();
    const owner = server.url.replace('postgres@', 'gotrs:gotrs-pw@').replace(/\/postgres$/, '/gotrs');
    const app = new pg.Client({ connectionString: owner });
    app.on('error', () => {});
    await app.connect();
    try {
      await app.query(`CREATE TABLE ticket (id serial PRIMARY KEY, title text)`);
      await psql(owner, 'deploy/gotrs/role.sql', 'pw=seqwatch-pw');
      await psql(owner, 'deploy/kubernetes/cloudnativepg/grants.sql', 'owner=gotrs');
      // A later migration, as the owner.
      await app.query(`CREATE TABLE article (id bigserial PRIMARY KEY, body text)`);
      daemon = await startDaemon({
        database: { url: owner.replace('gotrs:gotrs-pw@', 'seqwatch:seqwatch-pw@') },
        sources: [],
        watch: {},
      });
      await app.query(`INSERT INTO ticket (id, title) SELECT g, 'imported' FROM generate_series(1, 30) g`);
      await app.query(`INSERT INTO article (id, body) SELECT g, 'imported' FROM generate_series(1, 40) g`);
      for (const table of ['public.ticket', 'public.article']) {
        await daemon.waitForAudit(
          `${table} healed by the role seqwatch`,
          (r) => r.event === 'remediated' && r.table === table && r.trigger?.source === 'watch',
          15_000,
        );
      }
      expect(daemon.audit().filter((r) => r.event === 'failed')).toEqual([]);
    } finally {
      await app.end();
    }
  });
});
