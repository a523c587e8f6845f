import type { Queryable } from '../db/Queryable.js';

/**
 * One look at the server's cumulative statistics: which tables received rows. Read in one
 * statement whatever the schema's size (one short text per table with statistics), so that the
 * watch learns what changed without touching the tables that did not.
 */
export interface ActivitySnapshot {
  /** The server is in recovery (a standby): its statistics do not count the primary's rows. */
  inRecovery: boolean;
  /**
   * What the counters are counted from: the server's start and the database's last statistics
   * reset. When it changes (a restart, a failover to another server, `pg_stat_reset()`), counters
   * cannot be compared with the previous look.
   */
  epoch: string;
  /** Per table with statistics (partitions included): its root table and its write counter. */
  tables: Map<number, TableActivity>;
}

export interface TableActivity {
  /** The table whose sequences matter: the partition tree's root, or the table itself. */
  root: number;
  /** n_tup_ins + n_tup_upd: every inserted row (failed INSERTs and COPY included) and every update. */
  writes: bigint;
  /** n_live_tup, for the record (an estimate: not used to decide). */
  live: bigint;
}

/*
 * The counters pg_stat_user_tables shows (n_tup_ins, n_tup_upd, n_live_tup), read with the
 * functions behind the view over pg_class: the view itself groups by table and joins pg_index for
 * its index counters, which costs several times as much at thousands of tables (measured: 13-14 ms
 * against 3-8 ms of execution at 2,000 tables). Each partition has its own counters (the partitioned
 * root counts nothing): each is mapped to its root, since the sequence feeds the tree. Temporary
 * tables and the system's are left out. The rows come back as one text, `relid:root:writes:live,...`:
 * one value to transfer and parse, not thousands of row objects.
 */
const ACTIVITY_SQL = `
SELECT pg_catalog.pg_is_in_recovery() AS in_recovery,
       pg_catalog.pg_postmaster_start_time()::text
         || '/' || COALESCE((SELECT d.stats_reset::text FROM pg_catalog.pg_stat_database d
                              WHERE d.datname = pg_catalog.current_database()), '') AS epoch,
       (SELECT pg_catalog.string_agg(
                 c.oid::int8
                 || ':' || (CASE WHEN c.relispartition THEN pg_catalog.pg_partition_root(c.oid) ELSE c.oid END)::int8
                 || ':' || (pg_catalog.pg_stat_get_tuples_inserted(c.oid) + pg_catalog.pg_stat_get_tuples_updated(c.oid))
                 || ':' || pg_catalog.pg_stat_get_live_tuples(c.oid), ',')
          FROM pg_catalog.pg_class c
         WHERE c.relkind IN ('r', 'p') AND c.relpersistence <> 't'
           AND c.relnamespace NOT IN ('pg_catalog'::pg_catalog.regnamespace, 'information_schema'::pg_catalog.regnamespace,
                                      'pg_toast'::pg_catalog.regnamespace)) AS tables`;

interface Row {
  in_recovery: boolean;
  epoch: string;
  tables: string | null;
}

export async function readActivity(db: Queryable): Promise<ActivitySnapshot> {
  const { rows } = await db.query<Row>(ACTIVITY_SQL);
  const row = rows[0]!;
  const tables = new Map<number, TableActivity>();
  for (const entry of row.tables ? row.tables.split(',') : []) {
    const [relid, root, writes, live] = entry.split(':');
    tables.set(Number(relid), { root: Number(root), writes: BigInt(writes!), live: BigInt(live!) });
  }
  return { inRecovery: row.in_recovery, epoch: row.epoch, tables };
}

/** What changed between two looks. */
export interface ActivityChange {
  /** Counters cannot be compared (first look, restart, failover, statistics reset): check everything. */
  everything: boolean;
  /** Why `everything`, for the log. */
  reason?: 'first_look' | 'new_epoch' | 'counters_went_down';
  /** Root tables that received rows (or appeared) since the previous look. */
  roots: Set<number>;
}

/**
 * The tables that received rows since `previous`. A table seen for the first time (created,
 * restored, attached as a partition) counts as changed. A counter that went down means the
 * statistics were reset underneath (pg_stat_reset_single_table_counters, or a reset the epoch did
 * not show): rows may have arrived that no counter remembers, so everything is checked.
 */
export function compareActivity(previous: ActivitySnapshot | undefined, next: ActivitySnapshot): ActivityChange {
  const roots = new Set<number>();
  if (!previous) return { everything: true, reason: 'first_look', roots };
  if (previous.epoch !== next.epoch) return { everything: true, reason: 'new_epoch', roots };
  for (const [relid, now] of next.tables) {
    const before = previous.tables.get(relid);
    if (!before) {
      roots.add(now.root);
      continue;
    }
    if (now.writes < before.writes) return { everything: true, reason: 'counters_went_down', roots };
    if (now.writes > before.writes || now.root !== before.root) roots.add(now.root);
  }
  return { everything: false, roots };
}
