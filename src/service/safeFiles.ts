import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchownSync, fstatSync, mkdirSync, openSync, readSync, renameSync, statSync, unlinkSync, writeSync, type Stats } from 'node:fs';
import { dirname } from 'node:path';
import { userInfo } from 'node:os';

/**
 * The files seqwatch writes (audit log, checkpoints, health file) live in directories that an
 * operator, a packaging script or, at worst, another user may control. Every one of them is opened
 * the same way: never through a symbolic link (O_NOFOLLOW), a temporary file only if it is new
 * (O_EXCL, under a random name), created 0640, and only if it turns out to be a regular file with
 * one link that belongs to the user seqwatch runs as (or, for root, to the owner of its directory).
 * A file created by root in a directory someone else owns is given to that owner, so that a
 * `seqwatch fix` run as root does not lock the service user out of its own audit log.
 */

/** Mode of every file seqwatch creates: the group (adm, the service's) may read, nobody else. */
export const FILE_MODE = 0o640;
const DIRECTORY_MODE = 0o750;

/** A file seqwatch may not use as it is: one sentence that names the file and what to run. */
export class FileAccessError extends Error {}

const euid = (): number => process.geteuid?.() ?? -1;

function userName(uid: number): string {
  if (uid === euid()) {
    try {
      return `${userInfo().username} (uid ${uid})`;
    } catch {
      // A dynamic user without a passwd entry visible here.
    }
  }
  return `uid ${uid}`;
}

const modeOf = (stats: Stats) => (stats.mode & 0o7777).toString(8).padStart(4, '0');

/** Why a path cannot be opened, in one sentence with the fix. */
export function explainFileError(path: string, what: string, error: NodeJS.ErrnoException): FileAccessError {
  const me = userName(euid());
  let owner = '';
  try {
    const stats = statSync(path);
    owner = `: it belongs to uid ${stats.uid}, gid ${stats.gid}, mode ${modeOf(stats)}`;
  } catch {
    try {
      const stats = statSync(dirname(path));
      owner = `: its directory belongs to uid ${stats.uid}, gid ${stats.gid}, mode ${modeOf(stats)}`;
    } catch {
      // Nothing more to say about it.
    }
  }
  switch (error.code) {
    case 'EACCES':
    case 'EPERM':
      return new FileAccessError(
        `cannot open the ${what} ${path}: permission denied for ${me}${owner}; give it to the user seqwatch runs as, e.g. \`chown ${euid()}:${process.getegid?.() ?? ''} ${path}\` (as root), or point the config elsewhere`,
      );
    case 'ELOOP':
      return new FileAccessError(
        `refusing the ${what} ${path}: it is a symbolic link, which seqwatch never follows for a file it writes; remove the link (\`rm ${path}\`)`,
      );
    case 'EROFS':
      return new FileAccessError(
        `cannot write the ${what} ${path}: the file system is read-only; point the config at a writable directory (a volume in a container)`,
      );
    case 'ENOSPC':
      return new FileAccessError(`cannot write the ${what} ${path}: no space left on the device; free space there`);
    case 'ENOTDIR':
    case 'EISDIR':
      return new FileAccessError(
        `cannot use ${path} as the ${what}: ${error.code === 'EISDIR' ? 'it is a directory' : 'a part of the path is not a directory'}; point the config at a file`,
      );
    default:
      return new FileAccessError(`cannot open the ${what} ${path}: ${error.message}`);
  }
}

/** Refuses what an opened descriptor turned out to be, unless it is a plain file of ours. */
function checkOpened(fd: number, path: string, what: string, created: boolean): void {
  const stats = fstatSync(fd);
  const refuse = (why: string) => {
    closeSync(fd);
    throw new FileAccessError(`refusing the ${what} ${path}: ${why}`);
  };
  if (!stats.isFile()) refuse('it is not a regular file (a device, a pipe or a socket put there?); remove it');
  if (stats.nlink > 1)
    refuse(`it has ${stats.nlink} hard links, so writing it would change another file too; remove it (\`rm ${path}\`) and let seqwatch create it`);
  if (created || stats.uid === euid()) return;
  const directory = statSync(dirname(path));
  // root may write the file of the directory's owner (a `seqwatch fix` next to the service's log).
  if (euid() === 0 && stats.uid === directory.uid) return;
  refuse(
    `it belongs to uid ${stats.uid}, not to ${userName(euid())} who runs seqwatch${euid() === 0 ? ' nor to the owner of its directory' : ''}, so another user can rewrite it; check it, then \`chown ${euid() === 0 ? directory.uid : euid()} ${path}\` (as root)`,
  );
}

/** Creates the file's directory (0750) when missing. */
function ensureDirectory(path: string): void {
  mkdirSync(dirname(path), { recursive: true, mode: DIRECTORY_MODE });
}

/** As root in a directory someone else owns: the new file is theirs, as if they had made it. */
function giveToDirectoryOwner(fd: number, path: string): void {
  if (euid() !== 0) return;
  const directory = statSync(dirname(path));
  if (directory.uid === 0) return;
  fchownSync(fd, directory.uid, directory.gid);
}

/** Opens `path` for appending (the audit log): created 0640 if missing; see checkOpened. */
export function openAppendSafely(path: string, what: string): number {
  // Read as well: a writer reads the last record of the file to continue the chain.
  const flags = constants.O_RDWR | constants.O_APPEND | constants.O_NOFOLLOW;
  try {
    ensureDirectory(path);
    let fd: number;
    let created = false;
    try {
      fd = openSync(path, flags | constants.O_CREAT | constants.O_EXCL, FILE_MODE);
      created = true;
      giveToDirectoryOwner(fd, path);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      fd = openSync(path, flags);
    }
    checkOpened(fd, path, what, created);
    return fd;
  } catch (error) {
    if (error instanceof FileAccessError) throw error;
    throw explainFileError(path, what, error as NodeJS.ErrnoException);
  }
}

/**
 * Replaces `path` with `text` atomically: a new temporary file under a random name (O_EXCL, so a
 * name planted in advance is never written through), then a rename over the old one.
 */
export function writeFileAtomically(path: string, text: string, what: string, mode = FILE_MODE): void {
  const temp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
  let fd: number;
  try {
    ensureDirectory(path);
    fd = openSync(temp, constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW, mode);
  } catch (error) {
    throw explainFileError(temp, what, error as NodeJS.ErrnoException);
  }
  try {
    giveToDirectoryOwner(fd, path);
    const bytes = Buffer.from(text);
    for (let written = 0; written < bytes.length;) written += writeSync(fd, bytes, written);
    closeSync(fd);
    renameSync(temp, path);
  } catch (error) {
    try {
      closeSync(fd);
    } catch {
      // Already closed.
    }
    try {
      unlinkSync(temp);
    } catch {
      // Not there.
    }
    throw error instanceof FileAccessError ? error : explainFileError(path, what, error as NodeJS.ErrnoException);
  }
}

/** Reads a small file seqwatch wrote, never through a symbolic link and only if it is a regular file. */
export function readFileSafely(path: string, limit = 1024 * 1024): string {
  const fd = openSync(path, constants.O_RDONLY | constants.O_NOFOLLOW);
  try {
    const stats = fstatSync(fd);
    if (!stats.isFile()) throw new FileAccessError(`${path} is not a regular file`);
    const buffer = Buffer.alloc(Math.min(stats.size, limit));
    let read = 0;
    while (read < buffer.length) {
      const n = readSync(fd, buffer, read, buffer.length - read, read);
      if (n === 0) break;
      read += n;
    }
    return buffer.toString('utf8', 0, read);
  } finally {
    closeSync(fd);
  }
}

/**
 * What an operator should know about where seqwatch writes: running as root (it needs no privilege
 * beyond reading the logs), and directories that other users may write to (who can write the
 * directory can replace the files in it).
 */
export function fileSafetyWarnings(directories: Array<{ path: string; what: string }>): string[] {
  const warnings: string[] = [];
  if (euid() === 0) {
    warnings.push(
      'seqwatch runs as root: it needs only to read the logs and write its own files; run it as an unprivileged user (the systemd unit does: DynamicUser=yes, group adm)',
    );
  }
  for (const { path, what } of directories) {
    let stats: Stats;
    try {
      stats = statSync(path);
    } catch {
      continue;
    }
    const sticky = (stats.mode & 0o1000) !== 0;
    if ((stats.mode & 0o002) !== 0 && !sticky) {
      warnings.push(
        `the ${what} directory ${path} is writable by every user (mode ${modeOf(stats)}): anyone can replace seqwatch's files there; \`chmod o-w ${path}\``,
      );
    } else if (stats.uid !== euid() && stats.uid !== 0) {
      warnings.push(
        `the ${what} directory ${path} belongs to uid ${stats.uid}, another user than the one seqwatch runs as, who can replace seqwatch's files there; give it to the service user`,
      );
    } else if (sticky && (stats.mode & 0o002) !== 0) {
      warnings.push(
        `the ${what} directory ${path} is a shared directory (mode ${modeOf(stats)}, like /tmp): other users can plant names there before seqwatch creates them; use a directory of its own`,
      );
    }
  }
  return warnings;
}
