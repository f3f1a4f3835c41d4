/*
 * rcache.h -- the optional lazy read cache of one worker ([server]
 * read_cache_ms, read_cache_bytes).
 *
 * A lazy GET of a key read less than read_cache_ms ago is answered from
 * memory. Every operation on a key runs on the one worker the key routes to
 * (worker.h), so each worker's cache holds its own keys, needs no lock, and
 * a write through this lazykvd invalidates the key where it is cached. An
 * invalidation also stamps the key, so a read that was already in flight
 * when the key was written never fills the cache with what it read before.
 * Memory is bounded by bytes (keys, values, content types and overhead);
 * the least recently used entries go first. Canonical reads never use it.
 */
#ifndef LKV_RCACHE_H
#define LKV_RCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

struct rcache_entry;

struct rcache {
    struct rcache_entry **bucket;  /* owned: hash chains */
    size_t nbuckets;
    struct rcache_entry *lru_head; /* most recently used */
    struct rcache_entry *lru_tail;
    size_t bytes, max_bytes;
    uint64_t ttl_us;
    uint64_t seq;                  /* stamps of reads and invalidations */
    uint64_t floor;                /* reads stamped before this are not kept: an
                                      invalidation was forgotten (evicted) */
};

/* Sets rc up: entries live ttl_us, in at most max_bytes. ttl_us = 0: off
 * (every call is then a no-op). 0, or -1 when out of memory. */
int rcache_init(struct rcache *rc, uint64_t ttl_us, size_t max_bytes);
void rcache_free(struct rcache *rc);

/* 1 when on. */
int rcache_enabled(const struct rcache *rc);

/* A stamp to take when a read starts: rcache_put refuses what the read
 * returns if the key was invalidated after it. */
uint64_t rcache_stamp(struct rcache *rc);

/* Looks key up at now_us (monotonic): 1 with out filled (value malloc'd,
 * the caller frees) and *partition set; 0 when absent or too old; -1 when
 * out of memory. */
int rcache_get(struct rcache *rc, const char *key, size_t len, uint64_t now_us,
               struct record *out, int *partition);

/* Keeps a copy of rec (a live value read from partition by a read stamped
 * stamp that began at read_us, from which its age is counted), unless the
 * key was invalidated since stamp or it does not fit. Out of memory is not
 * an error: nothing is kept. */
void rcache_put(struct rcache *rc, const struct record *rec, int partition, uint64_t stamp,
                uint64_t read_us);

/* Forgets key and stamps it as written now. */
void rcache_invalidate(struct rcache *rc, const char *key, size_t len);

#endif
