/** Small helpers for what the commands print: aligned tables, colour only on a terminal. */

const useColour = () => process.stdout.isTTY && !process.env.NO_COLOR;
export const bold = (s: string) => (useColour() ? `\x1b[1m${s}\x1b[0m` : s);
export const red = (s: string) => (useColour() ? `\x1b[31m${s}\x1b[0m` : s);
export const yellow = (s: string) => (useColour() ? `\x1b[33m${s}\x1b[0m` : s);
export const green = (s: string) => (useColour() ? `\x1b[32m${s}\x1b[0m` : s);
export const dim = (s: string) => (useColour() ? `\x1b[2m${s}\x1b[0m` : s);

// eslint-disable-next-line no-control-regex
const visibleLength = (s: string) => s.replace(/\x1b\[[0-9;]*m/g, '').length;

/** `n` and its noun, singular for one: "1 constraint", "4 constraints". */
export function counted(n: number, noun: string, plural = `${noun}s`): string {
  return `${n} ${n === 1 ? noun : plural}`;
}

/** Rows under a header, columns padded to their widest cell; numeric columns right-aligned. */
export function table(header: string[], rows: string[][], rightAligned: number[] = []): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => visibleLength(r[i] ?? ''))));
  const line = (cells: string[]) =>
    cells
      .map((cell, i) => {
        const pad = ' '.repeat(widths[i]! - visibleLength(cell));
        return rightAligned.includes(i) ? pad + cell : cell + pad;
      })
      .join('  ')
      .trimEnd();
  return [bold(line(header)), ...rows.map(line)].join('\n') + '\n';
}

/** A progress line on stderr, redrawn in place, only when stderr is a terminal. */
export class Progress {
  private readonly tty = process.stderr.isTTY;
  private last = 0;

  constructor(private readonly label: string) {}

  update(done: number, total: number, unit = ''): void {
    if (!this.tty) return;
    const now = Date.now();
    if (now - this.last < 100 && done < total) return;
    this.last = now;
    const fraction = total > 0 ? Math.min(done / total, 1) : 0;
    const width = 30;
    const filled = Math.round(fraction * width);
    process.stderr.write(`\r${this.label} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ${unit}`);
  }

  done(): void {
    if (this.tty) process.stderr.write('\r\x1b[K');
  }
}

/**
 * Text read from a log or an audit file, made safe to print: control characters (C0 with newline
 * and TAB, DEL, C1 such as the 8-bit CSI), line and paragraph separators, and the invisible
 * direction and zero-width marks are shown as escapes (`\x1b`, `\u{202e}`), so that a value cannot
 * move the cursor, recolour or clear the screen, hide text, or fake a line of its own.
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g, (c) => {
    const code = c.charCodeAt(0);
    if (c === '\n') return '\\n';
    if (c === '\t') return '\\t';
    if (c === '\r') return '\\r';
    return code < 0x100 ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u{${code.toString(16)}}`;
  });
}

/**
 * JSON text made safe to print the same way: JSON.stringify already escapes C0 controls, this
 * escapes what it leaves raw (DEL, C1, separators and invisible marks) as \u escapes; still valid JSON.
 */
export function printableJson(json: string): string {
  return json.replace(/[\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u2069\ufeff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
