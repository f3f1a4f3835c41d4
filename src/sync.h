/*
 * sync.h -- one lazykv-sync pass: copies every partition's changes to every
 * other partition, purges tombstones that every partition has, and reports.
 *
 * How a pass stays correct (README.md "Replication" has the long form):
 *  - Writers mark a changed row seq = NULL. A pass first stamps pending rows
 *    with a fresh epoch (per source, monotonic, kept in the source's _meta
 *    table), so each source's changes have a stable (seq, k) order.
 *  - Each target records, per source node id, the (seq, k) position up to
 *    which it has applied the source's changes; rows and position commit in
 *    one transaction, so a crash at any moment loses nothing and replays are
 *    no-ops.
 *  - A copy is applied only over a lower version (store_apply), so order of
 *    passes, canonical writes and crashes cannot put an older value back.
 *  - A row rewritten during a pass goes back to seq = NULL and is stamped
 *    again by a later pass: it is never recorded as propagated at a version
 *    that was not copied.
 *  - Before stamping, every partition turns the expired rows it wrote
 *    itself (its own, not copies) into tombstones (store_expire), so they
 *    are stamped, copied and purged like deletes. A copy waits for its
 *    origin's tombstone: expiring a stale copy could make a tombstone
 *    newer than a rewrite the origin made before the expiry, and delete it.
 *  - A tombstone is purged only when every partition is reachable, has
 *    applied it, and it is older than tombstone_grace.
 *  - A MariaDB named lock on every reachable partition makes passes from any
 *    host exclusive.
 *
 * How a pass is fast (issue 15): a pipeline of one reader thread per
 * source and one applier thread per target, each with its own connection.
 *  - A source's reader turns its expired rows into tombstones, stamps its
 *    pending rows (set-based UPDATEs of batch_size rows over the NULL range
 *    of by_seq, one epoch each), then reads its changes once for all
 *    targets: from the lowest of their positions, in batches of batch_size
 *    rows / batch_bytes, each one statement that range-scans by_seq in its
 *    own (seq, k) order (checked row by row, no sort).
 *  - The batches go through a queue of two slots (syncq.h) that every
 *    target consumes: the reader reads batch i + 1 while batch i is being
 *    applied, and stays at most two batches ahead of the slowest target.
 *  - A target's applier takes whichever source has a batch ready, skips
 *    the rows its position for that source already covers, and applies
 *    the rest as multi-row upserts sized by bytes (STORE_MANY_MAX rows,
 *    STORE_MANY_BYTES) with its position, in one transaction per batch.
 *    One applier per target: a target's transactions never run at once.
 *  - Threads that stop early (a partition fails, a signal) end or leave
 *    their queues, so nobody waits for them. A kill -9 at any point leaves
 *    committed batches with their positions and nothing else: the next pass
 *    reads again from the positions.
 *  - Memory: two batches per source, each of batch_bytes at most plus the
 *    row that crossed the limit. A read cut by batch_bytes asks for about
 *    as many rows the next time (the rows past a LIMIT are sent anyway).
 */
#ifndef LKV_SYNC_H
#define LKV_SYNC_H

#include <signal.h>
#include <stdio.h>

#include "config.h"
#include "store.h"

/* Exit codes of a pass (and of lazykv-sync). */
#define SYNC_OK 0           /* everything propagated */
#define SYNC_PARTIAL 1      /* done, but a partition was unreachable */
#define SYNC_USAGE 2        /* usage or configuration error, or a table of an
                               earlier schema (nothing done) */
#define SYNC_LOCKED 75      /* EX_TEMPFAIL: another pass holds the lock */

struct sync_options {
    int dry_run;                      /* count what would be copied, change nothing */
    int verbose;                      /* a line per batch */
    volatile sig_atomic_t *stop;      /* ref: set by a signal; checked between batches */
    FILE *out;                        /* ref: summary lines */
};

/* What a pass did, for --loop. */
struct sync_stats {
    uint64_t rows, bytes;             /* copies made */
    uint64_t ms;                      /* the pass's duration */
    uint64_t lag_ms;                  /* age of the oldest change still pending at the end */
    uint64_t backlog;                 /* changes still pending at the end (reachable
                                         partitions): written during the pass, or left
                                         by a stop */
};

/* Runs one pass over cfg's partitions; fills *stats (may be NULL).
 * Returns one of the exit codes. */
int sync_pass(const struct lkv_config *cfg, const struct store_sql *sql,
              const struct sync_options *opt, struct sync_stats *stats);

#endif
