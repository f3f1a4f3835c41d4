/*
 * readbatch.h -- concurrent point reads of one partition, coalesced.
 *
 * Each lazykvd worker thread blocks on its database round trip, so under
 * load most of a GET's cost is the round trip itself (two context switches
 * and a statement in MariaDB). Reads that wait at the same time for the same
 * partition are instead sent as one statement (WHERE k IN (...)), the way a
 * database groups commits: the first reader to find no statement in flight
 * runs one, on its own connection, for every read queued by then; readers
 * arriving meanwhile queue and are answered by the next one. Nothing waits
 * for a batch to fill, so a read alone costs what it did before; a batch
 * grows only while the partition is busy.
 *
 * One struct read_batcher per partition, shared by the worker threads; each
 * read's state lives on its caller's stack.
 */
#ifndef LKV_READBATCH_H
#define LKV_READBATCH_H

#include <pthread.h>

#include "lkv.h"
#include "partition.h"
#include "store.h"

struct read_job;

struct read_batcher {
    pthread_mutex_t lock;
    struct read_job *head, *tail; /* queued, not yet taken by a leader */
    int running;                  /* statements in flight (at most one) */
    int max;                      /* reads per statement, 1..STORE_GET_MANY_MAX */
};

/* Sets b up for batches of at most max reads. 0, or -1 when the lock
 * cannot be created. */
int read_batcher_init(struct read_batcher *b, int max);
void read_batcher_destroy(struct read_batcher *b);

/* Reads rec->key (rec->key_len) with its value, as store_get(c, ..., 1,
 * rec) would, possibly in one statement with other threads' reads of the
 * same partition. c is the caller's own connection to it, used when the
 * caller is the one to run the statement; *statements is the number it ran
 * (0 when another thread's statement answered, so that the statements of
 * all callers add up to those sent). */
enum lkv_status read_batcher_get(struct read_batcher *b, struct pconn *c, struct record *rec,
                                 int *statements);

#endif
