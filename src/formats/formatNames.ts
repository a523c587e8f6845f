/** The formats a source may name: in a module of their own, so the config can check them without loading every parser. */
export const FORMATS = ['postgres-stderr', 'postgres-csv', 'postgres-json', 'syslog', 'docker-json', 'cri', 'cnpg-json', 'app-text', 'auto'] as const;
export type Format = (typeof FORMATS)[number];
/** Whether a format's lines begin with the server's log_line_prefix (auto: when it finds them to be stderr), so that a wrong prefix is a reason lines go unread. */
export const readsLogLinePrefix = (format: string): boolean => format === 'postgres-stderr' || format === 'syslog' || format === 'auto';
/** What a container log (Docker's json-file, Kubernetes' CRI) can wrap. */
export const INNER_FORMATS = ['postgres-stderr', 'postgres-csv', 'postgres-json', 'cnpg-json', 'app-text', 'auto'] as const;
export type InnerFormat = (typeof INNER_FORMATS)[number];

/** What auto's choice is called where it is said (the daemon's log, replay's stderr): onDetected's words. */
export const detectedText = (format: Exclude<Format, 'auto'>, inner?: Exclude<Format, 'auto'>): string =>
  `format detected: ${format}${inner ? ` (${inner} inside)` : ''}`;

/** onMisread's words, for the log at `path`; `toBeSure` names where its format is set (the config, --format). */
export const misreadText = (path: string, format: Exclude<Format, 'auto'>, lines: number, toBeSure: string): string =>
  `${path} looked like ${format}, but ${lines} lines holding a duplicate key error gave no record in that format: detecting the format again from those lines (${toBeSure} to be sure)`;
