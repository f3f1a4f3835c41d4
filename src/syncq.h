/*
 * syncq.h -- the batches one lazykv-sync reader has read from its source,
 * shared by the targets that apply them: a bounded queue between one
 * producer (the source's reader thread) and its consumers (one applier
 * thread per target, at most 64: a bit each).
 *
 * A batch is read once and applied by every target; it stays in its slot
 * until the last consumer has released it, and the reader waits for a free
 * slot before it reads the next one. With SYNCQ_DEPTH = 2 the reader reads
 * batch i + 1 while batch i is being applied, and is never more than two
 * batches ahead of the slowest target: memory stays at two batches per
 * source.
 *
 * Consumers take batches in stream order; one that leaves (its target
 * failed) is dropped from every slot, so it never holds the reader up.
 * Locking: every function here must be called with the mutex given to
 * syncq_init held (one mutex and condition variable for all the queues of
 * a pass, so that an applier can wait for whichever of its sources has a
 * batch first); the ones that wait release it while waiting.
 */
#ifndef LKV_SYNCQ_H
#define LKV_SYNCQ_H

#include <pthread.h>
#include <stdint.h>

#include "store.h"

#define SYNCQ_DEPTH 2
#define SYNCQ_MAX_CONSUMERS 64

struct syncq_slot {
    struct batch b;                   /* owned */
    uint64_t waiting;                 /* consumers that have not released it */
};

struct syncq {
    pthread_mutex_t *mu;              /* ref: the pass's */
    pthread_cond_t *cv;               /* ref: broadcast on every change */
    struct syncq_slot slot[SYNCQ_DEPTH]; /* batch number i is in slot i % DEPTH */
    uint64_t produced;                /* batches published so far */
    uint64_t consumers;               /* consumers still taking batches */
    uint64_t next[SYNCQ_MAX_CONSUMERS]; /* per consumer: the batch number it takes next */
    int ended;                        /* the reader publishes no more */
};

/* Sets q up empty, for the consumers in mask (bit c: consumer c). */
void syncq_init(struct syncq *q, pthread_mutex_t *mu, pthread_cond_t *cv, uint64_t consumers);

/* Frees the batches. No thread may use q any more. */
void syncq_free(struct syncq *q);

/* The reader's next batch to fill (empty), once a slot is free: waits
 * while every slot is held. NULL when no consumer is left (stop reading). */
struct batch *syncq_reserve(struct syncq *q);

/* Publishes the batch syncq_reserve returned to every consumer. */
void syncq_publish(struct syncq *q);

/* The reader publishes no more (done, stopped, or failed). */
void syncq_end(struct syncq *q);

/* Consumer c's next batch if it has been published, else NULL, with *over
 * set when none will come (the stream ended, or c left). Does not wait. */
const struct batch *syncq_peek(struct syncq *q, int c, int *over);

/* Consumer c is done with the batch syncq_peek gave it. */
void syncq_release(struct syncq *q, int c);

/* Consumer c takes no more batches (its target failed): it is dropped
 * from every slot it held. */
void syncq_leave(struct syncq *q, int c);

#endif
