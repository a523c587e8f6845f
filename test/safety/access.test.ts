import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parse, stringify } from 'yaml';
import { describe, expect, it } from 'vitest';
import { runCli, repoRootPath } from '../helpers/daemon.js';

/*
 * Issue 16 item 11: least privilege as documented, on real files with a real second user.
 */
const asRoot = process.getuid?.() === 0;
const hasAcl = existsSync('/usr/bin/setfacl') || existsSync('/bin/setfacl');

describe('least privilege', () => {
  it('the unit asks for adm only (systemd-journal only in a drop-in, for journal sources); compose drops every capability', () => {
    const unit = readFileSync(repoRootPath('systemd/seqwatch.service'), 'utf8');
    expect(unit).toMatch(/\nSupplementaryGroups=adm\n/);
    expect(unit).not.toMatch(/\nSupplementaryGroups=.*systemd-journal/);
    const compose = parse(readFileSync(repoRootPath('deploy/compose.yaml'), 'utf8')) as {
      services: Record<string, { cap_drop?: string[]; security_opt?: string[] }>;
    };
    for (const service of Object.values(compose.services)) {
      expect(service.cap_drop).toEqual(['ALL']);
      expect(service.security_opt).toContain('no-new-privileges:true');
    }
  });

  // The narrower ACL of SECURITY.md, run as written on a directory like /var/log/postgresql.
  it.runIf(asRoot && hasAcl)('the ACL of SECURITY.md lets a second user read PostgreSQL logs, old and new, and nothing else', () => {
    const block = /<!-- acl-begin -->\n```sh\n([\s\S]*?)```\n<!-- acl-end -->/.exec(readFileSync(repoRootPath('SECURITY.md'), 'utf8'))![1]!;
    const root = mkdtempSync(join(tmpdir(), 'seqwatch-acl-'));
    chmodSync(root, 0o755);
    const logs = join(root, 'postgresql');
    mkdirSync(logs, { mode: 0o750 });
    const log = join(logs, 'postgresql-15-main.log');
    writeFileSync(log, 'old line\n', { mode: 0o640 });
    const other = join(root, 'auth.log');
    writeFileSync(other, 'secret\n', { mode: 0o640 });
    const group = `swl${process.pid % 100000}`;
    const readAs = (file: string) => {
      try {
        return execFileSync('runuser', ['-u', 'nobody', '-G', group, '--', 'cat', file], { stdio: ['ignore', 'pipe', 'pipe'] }).toString();
      } catch {
        return undefined;
      }
    };
    try {
      execFileSync('bash', ['-euc', block.replaceAll('/var/log/postgresql', logs).replaceAll('seqwatch-logs', group)]);
      expect(readAs(log)).toBe('old line\n');
      // A file created later (logrotate's `create 0640 postgres adm`, a new cluster's log) gets it too.
      const rotated = join(logs, 'postgresql-15-main.log.new');
      writeFileSync(rotated, 'new line\n', { mode: 0o640 });
      expect(readAs(rotated)).toBe('new line\n');
      expect(readAs(other)).toBeUndefined();
    } finally {
      execFileSync('groupdel', [group], { stdio: 'ignore' });
    }
  });

  it.runIf(asRoot)(
    'database.password_file: refused when every user can read it, a warning when its group can although seqwatch owns it, none when root owns it (the group is how seqwatch reads it)',
    async () => {
      const dir = mkdtempSync(join(tmpdir(), 'seqwatch-pwfile-'));
      const file = join(dir, 'password');
      writeFileSync(file, 'secret\n', { mode: 0o644 });
      const config = join(dir, 'seqwatch.yaml');
      writeFileSync(
        config,
        stringify({
          database: { url: 'postgresql://seqwatch@127.0.0.1:1/gotrs', password_file: file },
          sources: [{ path: join(dir, 'x.log') }],
          audit: { path: join(dir, 'audit.jsonl') },
          state_dir: join(dir, 'state'),
        }),
      );
      const open = await runCli('run', '-c', config);
      expect(open.code).toBe(1);
      expect(open.stderr).toContain(`${file}: database.password_file is readable by every user (mode 0644): chmod o-rwx ${file}`);
      expect(open.stderr).not.toContain('secret');
      chmodSync(file, 0o640);
      // Root owns it, and a service user of its group reads it (a Kubernetes secret with fsGroup, a
      // unit without LoadCredential=): root checking the config must not be told to take the group's
      // read away (it was, and chmod g-r would have locked the service out).
      expect((await runCli('config', 'check', '-c', config)).stderr).not.toContain('password_file');
      // Owned by the user seqwatch runs as, readable by its group too: that the owner does not need.
      for (const path of [dir, config, file]) chownSync(path, 65534, 65534);
      const asOwner = spawnSync(process.execPath, [repoRootPath('dist/cli/main.js'), 'config', 'check', '-c', config], {
        uid: 65534,
        gid: 65534,
        encoding: 'utf8',
        env: { ...process.env, NO_COLOR: '1' },
      });
      expect(asOwner.status).toBe(0);
      expect(asOwner.stderr).toContain(
        `database.password_file is readable by its group (mode 0640), which seqwatch, its owner, does not need: chmod g-r ${file}`,
      );
      // Owned by another user and read through the group: that is what the group is for.
      chownSync(file, 0, 0);
      expect((await runCli('config', 'check', '-c', config)).stderr).not.toContain('password_file');
    },
  );
});
