/** The formats a source may name: in a module of their own, so the config can check them without loading every parser. */
export const FORMATS = ['postgres-stderr', 'postgres-csv', 'postgres-json', 'syslog', 'docker-json', 'cri', 'cnpg-json', 'app-text', 'auto'] as const;
export type Format = (typeof FORMATS)[number];
/** What a container log (Docker's json-file, Kubernetes' CRI) can wrap. */
export const INNER_FORMATS = ['postgres-stderr', 'postgres-csv', 'postgres-json', 'cnpg-json', 'app-text', 'auto'] as const;
export type InnerFormat = (typeof INNER_FORMATS)[number];
