/*
 * lazykv.h -- liblazykv: a client of lazykv's HTTP API with libkv's
 * operations (Put with a TTL, Get, Exists, Delete, List, DeleteTree,
 * AtomicPut, AtomicDelete, Watch, WatchTree, NewLock).
 *
 * Build with `cc prog.c $(pkg-config --cflags --libs lazykv)`.
 *
 * Threads: one lkv client is used by one thread at a time (it owns one
 * libcurl handle, reused for keep-alive). Use one client per thread; they
 * share nothing. A lock (lkv_lock) renews itself on a thread of its own,
 * with a client of its own.
 *
 * Endpoints: "http://h1:8080,http://h2:8080". A request that cannot
 * connect to an endpoint tries the next; a 503 is retried on the next
 * after a short back-off, until timeout_ms; every other answer is returned
 * as is. Keys may hold any byte but NUL, '/' included: they are
 * percent-encoded on the way.
 *
 * Errors: lkv_err; lkv_last_error() has the server's problem detail (or
 * what failed locally) of a client's last failed call.
 */
#ifndef LAZYKV_H
#define LAZYKV_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct lkv lkv;

typedef enum {
    LKV_OK = 0,
    LKV_ERR_NOT_FOUND,      /* 404: no such key */
    LKV_ERR_KEY_EXISTS,     /* a create-only write found the key */
    LKV_ERR_KEY_MODIFIED,   /* the key's index is no longer the one given */
    LKV_ERR_CANNOT_LOCK,    /* the lock stayed held for the whole wait */
    LKV_ERR_TIMEOUT,        /* no answer within timeout_ms */
    LKV_ERR_UNAVAILABLE,    /* no endpoint reachable, or 503 from all */
    LKV_ERR_UNAUTHORIZED,   /* 401 */
    LKV_ERR_FORBIDDEN,      /* 403 */
    LKV_ERR_INVALID,        /* 400 (or a bad argument) */
    LKV_ERR_IO,             /* anything else the server or the network did */
    LKV_ERR_NOMEM
} lkv_err;

typedef struct lkv_pair {
    char *key;                 /* NUL-terminated */
    unsigned char *value;      /* value_len bytes, NUL-terminated as a convenience */
    size_t value_len;
    uint64_t index;            /* the key's X-Lazykv-Index (its version) */
    char *content_type;
    int64_t expires_at_ms;     /* 0: no expiry */
} lkv_pair;

struct lkv_options {
    const char *token;         /* bearer token, or NULL */
    const char *ca_file, *cert_file, *key_file;   /* TLS, or NULL */
    int lazy;                  /* 1: reads may come from any partition (/bucket/), possibly stale;
                                  0 (default): reads from masters (/canonicalbucket/), read-your-writes */
    long timeout_ms;           /* per request; 0: 10 s */
};

/* "http://h1:8080,http://h2:8080"; NULL opt = defaults; NULL on a
 * malformed endpoint list (or out of memory). */
lkv *lkv_open(const char *endpoints, const struct lkv_options *opt);
void lkv_close(lkv *c);
const char *lkv_strerror(lkv_err e);
/* The server's problem detail of the last failed call, or "". */
const char *lkv_last_error(lkv *c);

/* A plain write (ttl_s 0: no expiry). */
lkv_err lkv_put(lkv *c, const char *key, const void *value, size_t len, unsigned ttl_s);
/* *out: the pair (free with lkv_pair_free). */
lkv_err lkv_get(lkv *c, const char *key, lkv_pair **out);
lkv_err lkv_exists(lkv *c, const char *key, int *exists);
/* LKV_ERR_NOT_FOUND when absent. */
lkv_err lkv_delete(lkv *c, const char *key);
/* Every key under prefix with its value, all pages, sorted (free with
 * lkv_pairs_free). */
lkv_err lkv_list(lkv *c, const char *prefix, lkv_pair ***out, size_t *n);
lkv_err lkv_delete_tree(lkv *c, const char *prefix);
/* With previous: only if the key's index is still previous->index
 * (LKV_ERR_KEY_MODIFIED, or LKV_ERR_NOT_FOUND when it is gone); without:
 * create only (LKV_ERR_KEY_EXISTS). *out, when out is not NULL: the new
 * pair. */
lkv_err lkv_atomic_put(lkv *c, const char *key, const void *value, size_t len,
                       const lkv_pair *previous /* NULL: create only */, unsigned ttl_s,
                       lkv_pair **out /* the new pair, or NULL */);
/* Only if the key's index is still previous->index. */
lkv_err lkv_atomic_delete(lkv *c, const char *key, const lkv_pair *previous);
void lkv_pair_free(lkv_pair *p);
void lkv_pairs_free(lkv_pair **v, size_t n);

/* Watches call fn first with the current state, then with each new state (p == NULL: the key is
 * absent) until fn returns non-zero or *stop becomes non-zero; LKV_OK then. Failures in between
 * (a lazykvd restarting, a 503) are retried from the last index; LKV_ERR_UNAVAILABLE after timeout_ms
 * without any endpoint answering. */
typedef int (*lkv_watch_fn)(const lkv_pair *p, void *arg);
typedef int (*lkv_watch_tree_fn)(lkv_pair *const *pairs, size_t n, void *arg);
lkv_err lkv_watch(lkv *c, const char *key, lkv_watch_fn fn, void *arg, const volatile int *stop);
lkv_err lkv_watch_tree(lkv *c, const char *prefix, lkv_watch_tree_fn fn, void *arg,
                       const volatile int *stop);

/* A lock is a key with a TTL (see README, "Locks"). */
typedef struct lkv_lock lkv_lock;
lkv_lock *lkv_lock_new(lkv *c, const char *key, const void *value, size_t len, unsigned ttl_s);
/* LKV_ERR_CANNOT_LOCK when wait_ms passes; renews in the background while held. */
lkv_err lkv_lock_acquire(lkv_lock *l, long wait_ms);
/* Fencing token: the lock key's index. */
uint64_t lkv_lock_token(const lkv_lock *l);
/* 0 once a renewal failed (the lock may be lost). */
int lkv_lock_held(const lkv_lock *l);
lkv_err lkv_lock_release(lkv_lock *l);
/* Frees l (release it first: a lock freed while held stays held on the
 * server until its TTL runs out). */
void lkv_lock_free(lkv_lock *l);

/* ---- beyond libkv's interface ---------------------------------------------------- */

/* lkv_put with a Content-Type (NULL: application/octet-stream). */
lkv_err lkv_put_ctype(lkv *c, const char *key, const void *value, size_t len,
                      const char *content_type, unsigned ttl_s);

/* The /health document of the first endpoint that answers it (a malloc'd,
 * NUL-terminated JSON text: free() it). LKV_OK also when it says some
 * partitions are down; LKV_ERR_UNAVAILABLE when none is reachable. */
lkv_err lkv_health(lkv *c, char **json_out);

#ifdef __cplusplus
}
#endif

#endif
