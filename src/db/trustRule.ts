/**
 * The trust rule: which columns count as fed by a sequence, in one place for every catalog query
 * (resolveIndex, listSequenceColumns, the shared-sequence peers).
 *
 * Anyone who may create a table may give it `DEFAULT nextval('public.ticket_id_seq')` without any
 * privilege on that sequence: PostgreSQL checks USAGE only when nextval() runs. If seqwatch took
 * such a column as fed by the sequence, the table's owner could write a huge id into it and have
 * seqwatch (which may setval the sequence) push someone else's sequence to its limit: a confused
 * deputy. So a column is fed by a sequence only when
 *  - it is an identity column (the sequence is its own), or
 *  - its DEFAULT is exactly `nextval('<that sequence>'::regclass)` (no expression around it:
 *    `nextval(...) * 100 + 7` is not a sequence that collides with MAX) and either the sequence is
 *    OWNED BY the column (serial; OWNED BY needs the sequence's owner to own the table too), or the
 *    table's owner may use the sequence itself: it owns it, or has_sequence_privilege(owner, seq,
 *    'USAGE').
 * Every other column whose DEFAULT depends on a sequence is refused: `expression` or `untrusted`.
 *
 * `pg_get_expr` and `regclass::text` print names as the session's search_path makes them visible,
 * and both sides of the comparison are printed in the same statement, so they agree.
 */
export function fedColumnsCte(scopeRoots?: string): string {
  // With a scope (the tables an error named), only the sequences those tables use are judged, and
  // every column those sequences feed (for the shared-sequence peers): a flood of unknown names
  // then costs no pg_get_expr at all.
  const scope = scopeRoots
    ? `, fed_scope AS (
  SELECT DISTINCT fs.seq FROM fed_candidates fs WHERE fs.tbl IN (${scopeRoots})
)`
    : '';
  const scoped = scopeRoots ? 'JOIN fed_scope ON fed_scope.seq = fc.seq' : '';
  return `
fed_candidates AS (
  -- One pass over pg_depend: an identity column's own sequence (pg_class -> pg_class, deptype i),
  -- and every sequence a column DEFAULT depends on (pg_attrdef -> pg_class).
  SELECT CASE WHEN d.classid = 'pg_catalog.pg_class'::regclass THEN d.refobjid ELSE ad.adrelid END AS tbl,
         CASE WHEN d.classid = 'pg_catalog.pg_class'::regclass THEN d.refobjsubid::int2 ELSE ad.adnum END AS att,
         s.oid AS seq,
         d.classid = 'pg_catalog.pg_class'::regclass AS identity,
         CASE WHEN ad.oid IS NOT NULL THEN pg_catalog.pg_get_expr(ad.adbin, ad.adrelid) END AS expr
  FROM pg_catalog.pg_depend d
  LEFT JOIN pg_catalog.pg_attrdef ad ON d.classid = 'pg_catalog.pg_attrdef'::regclass AND ad.oid = d.objid
  JOIN pg_catalog.pg_class s ON s.relkind = 'S'
   AND s.oid = CASE WHEN d.classid = 'pg_catalog.pg_class'::regclass THEN d.objid ELSE d.refobjid END
  WHERE d.refclassid = 'pg_catalog.pg_class'::regclass
    AND ((d.classid = 'pg_catalog.pg_class'::regclass AND d.deptype = 'i' AND d.refobjsubid > 0)
      OR (d.classid = 'pg_catalog.pg_attrdef'::regclass AND ad.oid IS NOT NULL))
)${scope}, fed_columns AS (
  SELECT fc.tbl, fc.att, fc.seq,
         CASE WHEN fc.identity THEN 'identity'
              WHEN EXISTS (SELECT 1 FROM pg_catalog.pg_depend o
                            WHERE o.classid = 'pg_catalog.pg_class'::regclass AND o.objid = fc.seq
                              AND o.refclassid = 'pg_catalog.pg_class'::regclass AND o.refobjid = fc.tbl
                              AND o.refobjsubid = fc.att AND o.deptype = 'a') THEN 'serial'
              ELSE 'default' END AS kind,
         CASE WHEN fc.identity THEN NULL
              WHEN fc.expr IS DISTINCT FROM format('nextval(%L::regclass)', fc.seq::regclass::text) THEN 'expression'
              WHEN t.relowner = s.relowner
                OR pg_catalog.has_sequence_privilege(t.relowner, fc.seq, 'USAGE')
                OR EXISTS (SELECT 1 FROM pg_catalog.pg_depend o
                            WHERE o.classid = 'pg_catalog.pg_class'::regclass AND o.objid = fc.seq
                              AND o.refclassid = 'pg_catalog.pg_class'::regclass AND o.refobjid = fc.tbl
                              AND o.refobjsubid = fc.att AND o.deptype = 'a') THEN NULL
              ELSE 'untrusted' END AS refusal
  FROM fed_candidates fc
  ${scoped}
  JOIN pg_catalog.pg_class t ON t.oid = fc.tbl
  JOIN pg_catalog.pg_class s ON s.oid = fc.seq
)`;
}

/** Every column of the database, judged (listSequenceColumns). */
export const FED_COLUMNS_CTE = fedColumnsCte();

/** Why a column whose DEFAULT names a sequence is not taken as fed by it. */
export type Refusal = 'expression' | 'untrusted';

/** A column whose DEFAULT depends on a sequence, refused by the trust rule: named, never acted on. */
export interface RefusedColumn {
  table: string;
  column: string;
  sequence: string;
  why: Refusal;
  /** The index the log named, when found through it. */
  index?: string;
}

/** What an operator reads about a refused column (catalog names only). */
export function refusalText(refused: RefusedColumn): string {
  return refused.why === 'expression'
    ? `${refused.table}.${refused.column} has a DEFAULT that is an expression over ${refused.sequence}, not exactly nextval(): its values are not the sequence's, so MAX cannot be compared with it; left to the application`
    : `${refused.table}.${refused.column} has a DEFAULT nextval() on ${refused.sequence}, but the table's owner may not use that sequence (not its owner, no USAGE, not OWNED BY the column): seqwatch does not move a sequence for a table that may not use it (the trust rule, docs/safety-trust.md)`;
}

/**
 * Whether column `att` of table `rel` (SQL expressions) leads a valid, non-partial btree index:
 * then MAX/MIN over it reads one end of that index; otherwise it is a full scan of the table.
 */
export function leadsAnIndex(rel: string, att: string): string {
  return `EXISTS (SELECT 1 FROM pg_catalog.pg_index li
                  JOIN pg_catalog.pg_class lic ON lic.oid = li.indexrelid
                  JOIN pg_catalog.pg_am am ON am.oid = lic.relam AND am.amname = 'btree'
                 WHERE li.indrelid = ${rel} AND li.indkey[0] = ${att} AND li.indisvalid AND li.indpred IS NULL)`;
}

/** The other trusted columns a sequence feeds (`p.seq = <seq>`, minus this table's column), as JSON. */
export function peersOf(seq: string, rel: string, att: string): string {
  return `(SELECT json_agg(json_build_object(
             'table_oid', pt.oid::int8, 'table_q', format('%I.%I', pn.nspname, pt.relname),
             'column_q', quote_ident(pa.attname), 'indexed', ${leadsAnIndex('pt.oid', 'pa.attnum')})
             ORDER BY pn.nspname, pt.relname, pa.attnum)
           FROM fed_columns p
           JOIN pg_catalog.pg_class pt ON pt.oid = p.tbl AND pt.relkind IN ('r', 'p') AND NOT pt.relispartition
           JOIN pg_catalog.pg_namespace pn ON pn.oid = pt.relnamespace
           JOIN pg_catalog.pg_attribute pa ON pa.attrelid = p.tbl AND pa.attnum = p.att AND NOT pa.attisdropped
          WHERE p.seq = ${seq} AND p.refusal IS NULL AND NOT (p.tbl = ${rel} AND p.att = ${att}))`;
}
