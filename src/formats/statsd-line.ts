/**
 * The StatsD TCP line limit: a fact of the format the listener reads (ingest/statsd/server.ts) and
 * that the configuration checks its buffer budget against (config/index.ts), so it lives below both.
 */

/** Bytes of a TCP line at most, without its newline (LF, or CR LF): a longer line is malformed. */
export const MAX_TCP_LINE_BYTES = 64 * 1024;
