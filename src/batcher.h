/*
 * batcher.h -- concurrent statements of one kind to one partition, grouped.
 *
 * Each lazykvd worker thread blocks on its database round trip, so under
 * load much of a request's cost is the round trip itself (context switches,
 * and a statement and a commit in MariaDB). Requests that wait at the same
 * time for the same kind of statement on the same partition are instead
 * sent as one multi-row statement, the way a database groups commits: the
 * first caller to find no statement of its batcher in flight runs one, on
 * its own connection, for every request queued by then; callers arriving
 * meanwhile queue and are answered by the next one. Nothing waits for a
 * batch to fill, so a request alone costs what it did before; batches grow
 * only while the partition is busy.
 *
 * Two kinds are grouped: point reads (batcher_get, SELECT ... WHERE k IN)
 * and the copies a canonical write sends to the other partitions
 * (batcher_apply, a multi-row versioned upsert). One struct batcher per
 * partition and kind, shared by the worker threads; each request's state
 * lives on its caller's stack.
 */
#ifndef LKV_BATCHER_H
#define LKV_BATCHER_H

#include <pthread.h>

#include "lkv.h"
#include "partition.h"
#include "store.h"

struct batch_job;

struct batcher {
    pthread_mutex_t lock;
    struct batch_job *head, *tail; /* queued, not yet taken by a runner */
    int running;                   /* a statement is in flight */
    int max;                       /* requests per statement, 1..STORE_MANY_MAX */
    size_t max_bytes;              /* their value bytes, at most; 0: not counted */
};

/* Sets b up for statements of at most max requests, and (unless max_bytes
 * is 0) at most max_bytes of their records' values, a bigger one alone. 0,
 * or -1 when the lock cannot be created. */
int batcher_init(struct batcher *b, int max, size_t max_bytes);
void batcher_destroy(struct batcher *b);

/* Reads rec->key (rec->key_len) with its value, as store_get(c, ..., 1,
 * rec) would. c is the caller's own connection to the partition, used when
 * the caller is the one to run the statement; *statements is the number it
 * ran (0 when another thread's statement answered, so that the statements
 * of all callers add up to those sent). A connection fault answers every
 * queued request at once and puts each caller's connection in back-off, so
 * a hung partition costs one timeout, not one per waiting request. */
enum lkv_status batcher_get(struct batcher *b, struct pconn *c, struct record *rec,
                            int *statements);

/* Applies rec as store_apply(c, rec) would (kept only over a lower
 * version), possibly in one statement with other threads' copies. As
 * batcher_get for c, *statements and faults. */
enum lkv_status batcher_apply(struct batcher *b, struct pconn *c, const struct record *rec,
                              int *statements);

#endif
