-- The runbook's fix, as a careful DBA writes it: every serial/identity column, MAX read, the
-- sequence moved only forward. Correct, but one transaction over every sequence, blind to sequences
-- not OWNED BY their column, and silent. The peer of `seqwatch fix --all` and of a cron sweep.
DO $$
DECLARE r record; m bigint; cur bigint; called boolean;
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
      PERFORM setval(r.seq, m, true);
    END IF;
  END LOOP;
END $$;
