-- The read-only half of do-block.sql: which sequences are behind their column's MAX, as a notice.
-- The peer of `seqwatch check`.
DO $$
DECLARE r record; m bigint; cur bigint; called boolean; behind int := 0;
BEGIN
  FOR r IN
    SELECT format('%I.%I', n.nspname, c.relname) AS tbl, a.attname AS col,
           pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname) AS seq
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname !~ '^pg_' AND n.nspname <> 'information_schema'
      AND pg_get_serial_sequence(format('%I.%I', n.nspname, c.relname), a.attname) IS NOT NULL
  LOOP
    EXECUTE format('SELECT max(%I) FROM %s', r.col, r.tbl) INTO m;
    EXECUTE format('SELECT last_value, is_called FROM %s', r.seq) INTO cur, called;
    IF m IS NOT NULL AND (m > cur OR (m = cur AND NOT called)) THEN
      behind := behind + 1;
      RAISE NOTICE '% is behind %.% (MAX %)', r.seq, r.tbl, r.col, m;
    END IF;
  END LOOP;
  RAISE NOTICE '% sequence(s) behind', behind;
END $$;
