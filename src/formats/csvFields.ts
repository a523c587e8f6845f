/**
 * The fields of one complete CSV record (RFC 4180, as PostgreSQL's csvlog writes it: fields split
 * by commas, a quoted field's quotes doubled, newlines only inside quotes), or undefined when the
 * text is not one well-formed record: a quote inside an unquoted field, text after a closing quote,
 * an unclosed quote, a newline outside quotes. What csv-parse (relax_column_count) gives for a
 * record's first row, at a twentieth of its cost per record (test/formats/csvFields.unit.test.ts
 * holds it to csv-parse's answers); one pass over the text, indexOf between the structural bytes.
 */
export function csvFields(text: string): string[] | undefined {
  const fields: string[] = [];
  const end = text.length;
  for (let at = 0; ;) {
    if (text.charCodeAt(at) === QUOTE) {
      let value = '';
      let from = at + 1;
      for (;;) {
        const close = text.indexOf('"', from);
        if (close === -1) return undefined;
        if (text.charCodeAt(close + 1) === QUOTE) {
          value += text.slice(from, close + 1);
          from = close + 2;
          continue;
        }
        value += text.slice(from, close);
        at = close + 1;
        break;
      }
      fields.push(value);
    } else {
      let comma = text.indexOf(',', at);
      if (comma === -1) comma = end;
      const value = text.slice(at, comma);
      if (value.includes('"') || value.includes('\n')) return undefined;
      fields.push(value);
      at = comma;
    }
    if (at >= end) return fields;
    if (text.charCodeAt(at) !== COMMA) return undefined;
    at++;
  }
}

const QUOTE = 0x22;
const COMMA = 0x2c;
