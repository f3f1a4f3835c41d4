/*
 * syncstatus.h -- what the last lazykv-sync pass did, kept where lazykvd can
 * read it without talking to the sync: each pass writes its start, end,
 * exit status, rows copied and lag into every reachable partition's _meta
 * table (names "sync_pass_*"); lazykvd's probers read them back with the
 * partition's count of changed rows not yet stamped by a pass (its backlog)
 * every SYNCSTATUS_INTERVAL_US, for /metrics and /health.
 *
 * Blocking calls on a connection the caller owns (the prober's, the
 * sync's); prepared statements with no values spliced in.
 */
#ifndef LKV_SYNCSTATUS_H
#define LKV_SYNCSTATUS_H

#include <mysql.h>
#include <stdint.h>

#define SYNCSTATUS_INTERVAL_US 5000000u
/* The backlog is counted up to this many rows (its cost grows with it). */
#define SYNCSTATUS_PENDING_MAX 1000000u

struct sync_status {
    int known;            /* a pass has recorded itself here */
    uint64_t start_us;    /* wall clock, µs since the epoch */
    uint64_t end_us;
    int exit_code;        /* lazykv-sync's (sync.h SYNC_*) */
    uint64_t rows;        /* rows it copied */
    uint64_t lag_ms;      /* age of the oldest change it found, as it reported */
};

/* Reads the last pass recorded in table's _meta and the partition's
 * backlog (changed rows with seq NULL, at most SYNCSTATUS_PENDING_MAX).
 * 0, or -1 (the connection's error stands). */
int syncstatus_read(MYSQL *m, const char *table, struct sync_status *st, uint64_t *pending);

/* Records a pass in table's _meta. 0, or -1. */
int syncstatus_write(MYSQL *m, const char *table, const struct sync_status *st);

#endif
