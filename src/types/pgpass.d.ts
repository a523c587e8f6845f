declare module 'pgpass' {
  /** Looks up ~/.pgpass (or $PGPASSFILE) for the connection; calls back with the password or undefined. */
  export default function pgPass(
    connection: { host?: string; port?: number | string; database?: string; user?: string },
    callback: (password: string | undefined) => void,
  ): void;
}
