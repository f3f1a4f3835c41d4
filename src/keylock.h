/*
 * keylock.h -- one lazykvd writes a key from one thread at a time.
 *
 * Two writes of the same key sent at once to its master partition can meet
 * in InnoDB's locks and end with one of them chosen as a deadlock victim
 * (store_write retries it, but each meeting costs a rollback and a pause).
 * Writes of one key through one lazykvd therefore take the key's lock
 * first, so they reach the database one after the other, in the order the
 * lock hands them out. The locks are striped: a fixed table of mutexes per
 * partition, a key's stripe chosen by its hash, so two keys rarely share
 * one and a hung partition never holds up writes to the others. Only the
 * master write is ordered; copies (versioned, order-free) are not.
 */
#ifndef LKV_KEYLOCK_H
#define LKV_KEYLOCK_H

#include <pthread.h>
#include <stddef.h>

/* Stripes per partition: enough that unrelated keys rarely wait for each
 * other with hundreds of writes in flight, small enough to stay in cache. */
#define KEYLOCK_STRIPES 1024

struct keylocks {
    pthread_mutex_t *stripe; /* owned: partitions * KEYLOCK_STRIPES */
    int partitions;
};

/* Creates the locks for n partitions. 0, or -1 when out of memory. */
int keylocks_init(struct keylocks *kl, int partitions);
void keylocks_destroy(struct keylocks *kl);

/* The lock ordering writes of key (len bytes) at its master partition.
 * Held only around the master write: never while taking another. */
pthread_mutex_t *keylock_of(struct keylocks *kl, int master, const char *key, size_t len);

#endif
