import type { QueryResultRow } from 'pg';

/** What the db stage needs of a connection: a pg Pool or Client both fit. */
export interface Queryable {
  query<R extends QueryResultRow = QueryResultRow>(text: string, values?: unknown[]): Promise<{ rows: R[] }>;
}
