/**
 * The longest line the file follower hands on (a longer one is passed over and counted): a runaway
 * line cannot take the daemon's memory. replay reads a record as far (RECORD_REACH), so that a long
 * line it finds is one the daemon finds too (a jsonlog record holding a bulk INSERT of 400 KiB).
 */
export const MAX_LINE_BYTES = 1024 * 1024;
