import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { afterAll, describe, expect, it } from 'vitest';
import { UNTOLD_HEAD_BYTES, untoldErrors } from '../../src/replay/untoldErrors.js';

const PREFIX = '%m [%p] %q%u@%d ';
const line = (pid: number, text: string) => `2026-11-27 10:00:00.000 UTC [${pid}] app@gotrs ${text}\n`;
const GERMAN = 'FEHLER:  doppelter Schlüsselwert verletzt Unique-Constraint »ticket_pkey«';
const ENGLISH = 'ERROR:  duplicate key value violates unique constraint "ticket_pkey"';

describe('untoldErrors: duplicate key errors in another language that a prefix without %e leaves uncounted', () => {
  const dir = mkdtempSync(join(tmpdir(), 'seqwatch-untold-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  const file = (name: string, text: string | Buffer) => {
    const path = join(dir, name);
    writeFileSync(path, text);
    return path;
  };

  it('counts the error lines, and gives the first message (a name, no row data)', async () => {
    const log = file(
      'de.log',
      line(1, 'LOG:  checkpoint starting') +
        line(2, GERMAN) +
        line(2, 'DETAIL:  Schlüssel »(id)=(1)« existiert bereits.') +
        line(3, GERMAN.replace('ticket', 'article')),
    );
    expect(await untoldErrors(log, PREFIX)).toEqual({ noSqlstate: { errors: 2, sample: 'doppelter Schlüsselwert verletzt Unique-Constraint »ticket_pkey«' } });
  });

  it('passes over what detection acts on or is no error: a verbose message (its SQLSTATE before the text), a statement quoting one, English', async () => {
    const log = file(
      'other.log',
      line(1, 'FEHLER:  23505: doppelter Schlüsselwert verletzt Unique-Constraint »ticket_pkey«') +
        line(2, "LOG:  Anweisung: SELECT 'doppelter Schlüsselwert verletzt Unique-Constraint »x«'") +
        line(3, `ANWEISUNG:  ${GERMAN}`) +
        line(4, ENGLISH),
    );
    expect(await untoldErrors(log, PREFIX)).toBeUndefined();
  });

  it("counts the error lines another prefix wrote (the server's changed), with the line up to the message; with the log's prefix, none", async () => {
    const withSqlstate = '%m [%p] %e %q%u@%d ';
    const log = file(
      'changed.log',
      line(1, GERMAN) +
        line(2, "LOG:  Anweisung: SELECT 'doppelter Schlüsselwert verletzt Unique-Constraint »x«'") +
        line(3, `23505 ${GERMAN}`).replace('app@gotrs 23505', '23505 app@gotrs'),
    );
    expect(await untoldErrors(log, withSqlstate)).toEqual({ unmatched: { errors: 1, sample: '2026-11-27 10:00:00.000 UTC [1] app@gotrs FEHLER:  ' } });
    expect(await untoldErrors(file('right.log', line(3, GERMAN).replace('app@gotrs', '23505 app@gotrs')), withSqlstate)).toBeUndefined();
  });

  it('reads a gzip-compressed file decompressed, and only its first MiB; a missing file is none', async () => {
    expect(await untoldErrors(file('de.log.1.gz', gzipSync(line(5, GERMAN))), PREFIX)).toMatchObject({ noSqlstate: { errors: 1 } });
    const late = line(1, 'LOG:  checkpoint starting').repeat(Math.ceil(UNTOLD_HEAD_BYTES / 60)) + line(2, GERMAN);
    expect(await untoldErrors(file('late.log', late), PREFIX)).toBeUndefined();
    expect(await untoldErrors(join(dir, 'gone.log'), PREFIX)).toBeUndefined();
  });

  // The field (stop 32): a German server's log without %e whose errors came after its first MiB
  // (a busy log_statement log), replayed once the server spoke English again: a clean report of 0.
  // Its first lines say the language all the same.
  it("a log in another language without such an error at its head: its first records' words say so (markers, a statement's or duration's LOG)", async () => {
    const statement = (pid: number) => line(pid, "LOG:  Anweisung: SELECT 'padding' AS p;");
    const late = statement(1).repeat(Math.ceil(UNTOLD_HEAD_BYTES / 80)) + line(2, GERMAN);
    expect(await untoldErrors(file('de-late.log', late), PREFIX)).toEqual({ translated: { errors: expect.any(Number), sample: 'LOG:  Anweisung: ' } });
    expect(
      await untoldErrors(file('fr-warn.log', line(3, "ATTENTION:  il n'y a pas de transaction en cours") + line(4, 'LOG:  durée : 0.1 ms')), PREFIX),
    ).toMatchObject({
      translated: { errors: 2, sample: 'ATTENTION:  ' },
    });
    // English, or a prefix with %e (the SQLSTATE recognises any language): nothing to say.
    expect(
      await untoldErrors(file('en.log', line(5, 'LOG:  statement: SELECT 1') + line(6, 'WARNING:  there is no transaction in progress')), PREFIX),
    ).toBeUndefined();
    expect(await untoldErrors(file('de-e.log', late.replaceAll('app@gotrs', '00000 app@gotrs')), '%m [%p] %e %q%u@%d ')).toBeUndefined();
  });
});
