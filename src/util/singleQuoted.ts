/**
 * A text as a single-quoted literal, its quotes doubled: the form of a setting in SQL
 * (ALTER SYSTEM SET log_line_prefix = '...'), postgresql.conf and YAML's single-quoted strings,
 * wherever a fix or a file names one.
 */
export const singleQuoted = (text: string): string => `'${text.replace(/'/g, "''")}'`;
