import { newCounters, type LinePosition, type ParserCounters, type RecordParser, type RecordSink } from './RecordParser.js';
import { StderrPrefixParser } from './StderrPrefixParser.js';

const CHUNK = /\[(\d+)-(\d+)\] /y;

/**
 * `... postgres[3360]: [5-1] rest`: the pid from the syslog header, PostgreSQL's line number and
 * chunk, and the rest. Found with indexOf, not one regular expression: a pattern that has to guess
 * where the header ends backtracks without bound on a long line of garbage.
 */
export function splitSyslogLine(line: string): { pid: string; chunk: string; rest: string } | undefined {
  const header = line.indexOf(']: [');
  if (header === -1 || header > 1024) return undefined;
  const open = line.lastIndexOf('[', header);
  const pid = line.slice(open + 1, header);
  if (open <= 0 || !/^\d+$/.test(pid)) return undefined;
  CHUNK.lastIndex = header + 3;
  const chunk = CHUNK.exec(line);
  if (!chunk) return undefined;
  return { pid, chunk: chunk[2]!, rest: line.slice(CHUNK.lastIndex) };
}

/**
 * PostgreSQL through syslog/rsyslog (log_destination = 'syslog'), as the syslog daemon writes it to
 * a file: `... postgres[pid]: [N-1] <log_line_prefix>ERROR:  text`, then the message's further
 * lines as `[N-2]`, `[N-3]` (`<prefix>DETAIL:  ...`, `<prefix>STATEMENT:  ...`, or a continuation
 * whose TAB rsyslog escapes as `#011`). The pid comes from the syslog header, so backends are kept
 * apart whatever the prefix holds.
 */
export class SyslogParser implements RecordParser {
  private readonly own: ParserCounters = newCounters();
  private readonly inner: StderrPrefixParser;

  constructor(logLinePrefix: string, source: string, onRecord: RecordSink) {
    this.inner = new StderrPrefixParser(`[%p] ${logLinePrefix}`, source, (record) => {
      this.own.records++;
      onRecord(record);
    });
  }

  /**
   * The lines that were no syslog line, and those the format inside left out (read afresh, as each
   * line is read: auto tells by them whether a line holding an error was read).
   */
  get counters(): ParserCounters {
    const inner = this.inner.counters;
    return { ...this.own, unrecognisedLines: this.own.unrecognisedLines + inner.unrecognisedLines, orphanLines: this.own.orphanLines + inner.orphanLines };
  }

  push(line: string, position?: LinePosition): void {
    const parts = splitSyslogLine(line);
    if (!parts) {
      this.own.unrecognisedLines++;
      return;
    }
    const { pid, chunk, rest } = parts;
    // PostgreSQL splits a message into chunks [N-1], [N-2], ...: at its newlines (the DETAIL and
    // STATEMENT lines with their prefix, the TAB-started continuation lines, the TAB escaped), and
    // within a line every 900 bytes. A cut piece begins with whatever text was there, attacker's
    // text included, so only a message's first chunk may start a record.
    if (rest.startsWith('#011')) this.inner.continueRecord(rest.slice(4), pid);
    else if (chunk !== '1') this.inner.addToRecord(`[${pid}] ${rest}`, pid, rest);
    else this.inner.push(`[${pid}] ${rest}`, position);
  }

  flush(): void {
    this.inner.flush();
  }
}
