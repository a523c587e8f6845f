import { readFileSync, statSync } from 'node:fs';
import { userInfo } from 'node:os';

/*
 * A file this process may not read, described for the person who can change that: who the process
 * runs as (user and groups), and the file's mode and owner. A module of its own, without the
 * daemon's health machinery, so that a command (replay) can say it without loading the database's.
 */

/** Who this process runs as, and the mode and owner of `path` (undefined when it cannot be stat'ed). */
export function readDenial(path: string): { user: { name: string; groups: string }; owner: ReturnType<typeof describeOwner> } {
  return { user: serviceUser(), owner: describeOwner(path) };
}

function serviceUser(): { name: string; groups: string } {
  let name: string;
  try {
    name = userInfo().username;
  } catch {
    name = `uid ${process.getuid?.()}`;
  }
  const groups = (process.getgroups?.() ?? []).map(groupName).join(',');
  return { name, groups: groups || 'none' };
}

function describeOwner(path: string): { toString(): string; group: string | undefined } | undefined {
  try {
    const info = statSync(path);
    const group = groupName(info.gid);
    const text = `mode ${(info.mode & 0o7777).toString(8).padStart(4, '0')}, owner ${userName(info.uid)}:${group}`;
    // A group that may not read it (mode 0600) is no way in: not named as one.
    return { toString: () => text, group: /^\d+$/.test(group) || (info.mode & 0o040) === 0 ? undefined : group };
  } catch {
    return undefined;
  }
}

function groupName(gid: number): string {
  return lookup('/etc/group', gid) ?? String(gid);
}

function userName(uid: number): string {
  return lookup('/etc/passwd', uid) ?? String(uid);
}

/** A name from /etc/passwd or /etc/group by its number (no NSS from Node; good enough for a message). */
function lookup(file: string, id: number): string | undefined {
  try {
    for (const line of readFileSync(file, 'utf8').split('\n')) {
      const fields = line.split(':');
      if (Number(fields[2]) === id && fields[0]) return fields[0];
    }
  } catch {
    // No such file: the number says it.
  }
  return undefined;
}
