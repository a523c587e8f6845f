import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';

/** Where Debian's PostgreSQL packages put their message catalogs. */
const LOCALE_DIR = '/usr/share/locale';

export interface MessageCatalog {
  language: string;
  /** The catalog file (postgres-15.mo, ...). */
  file: string;
  /** msgid -> msgstr (the first plural form), translated entries only. */
  messages: Map<string, string>;
}

/** Reads a GNU gettext .mo file (the format is small: a header and two tables of strings). */
export function readMo(file: string): Map<string, string> {
  const data = readFileSync(file);
  const magic = data.readUInt32LE(0);
  const read = magic === 0x950412de ? (at: number) => data.readUInt32LE(at) : (at: number) => data.readUInt32BE(at);
  const count = read(8);
  const originals = read(12);
  const translations = read(16);
  const text = (table: number, i: number) => data.toString('utf8', read(table + i * 8 + 4), read(table + i * 8 + 4) + read(table + i * 8));
  const messages = new Map<string, string>();
  for (let i = 0; i < count; i++) {
    const id = text(originals, i).split('\0')[0]!;
    const str = text(translations, i).split('\0')[0]!;
    if (id !== '' && str !== '') messages.set(id, str);
  }
  return messages;
}

/** Every PostgreSQL server message catalog installed on this machine (all versions' postgres-N.mo), in the order of their paths. */
export function postgresCatalogs(): MessageCatalog[] {
  if (!existsSync(LOCALE_DIR)) return [];
  const catalogs: MessageCatalog[] = [];
  for (const language of readdirSync(LOCALE_DIR).sort()) {
    const dir = join(LOCALE_DIR, language, 'LC_MESSAGES');
    if (!existsSync(dir)) continue;
    for (const name of readdirSync(dir).sort()) {
      if (/^postgres-\d+\.mo$/.test(name)) catalogs.push({ language, file: join(dir, name), messages: readMo(join(dir, name)) });
    }
  }
  return catalogs;
}
