/*
 * kv.h -- cluster policy: which partitions a read, a write or a list goes
 * to, failover, copies of canonical writes, merging canonical lists. Knows
 * no HTTP and no JSON: handlers.c fills a struct kv_op from a request and
 * renders its result.
 *
 *   read   lazy: a random reachable partition, the next ones on failure;
 *          canonical: the key's master
 *   write  at the key's master (group-committed, lane.h); canonical: then
 *          copied to every other reachable partition, all at once
 *   list   lazy: one reachable partition's keys; canonical: from every
 *          partition in parallel, the keys it is master of, merged
 *
 * An operation runs on the worker its key routes to; done is called there,
 * once, when every statement it started has answered.
 */
#ifndef LKV_KV_H
#define LKV_KV_H

#include <stddef.h>

#include "buf.h"
#include "lane.h"
#include "lkv.h"
#include "store.h"

enum kv_kind { KV_OP_READ, KV_OP_WRITE, KV_OP_LIST };

struct kv_key {
    char *key;   /* owned (NUL-terminated for convenience) */
    size_t len;
};

struct kv_keys {
    struct kv_key *item; /* owned */
    size_t n, cap;
};

struct kv_list_part;

struct kv_op {
    struct kv_op *next;         /* in a worker's inbox */
    enum kv_kind kind;
    int canonical;
    /* read, write */
    struct record rec;          /* key: ref; value: a read's is owned (freed by
                                   kv_op_free), a write's is a ref */
    int need_created;           /* write: a PUT */
    const char *if_match;       /* write: ref, or NULL */
    const char *if_none_match;  /* write: ref, or NULL */
    /* list: keys >= lower and < upper (when has_upper), want of them */
    struct buf lower;           /* owned */
    struct buf upper;           /* owned */
    int has_upper;
    int want;
    /* results */
    enum lkv_status st;
    int served;                 /* read: the partition that answered, or -1 */
    int master;                 /* write: the key's master */
    int written;                /* write: partitions holding it now */
    int created;                /* write: no live row existed before */
    int cached;                 /* read: answered from the read cache */
    struct kv_keys keys;        /* list: sorted */
    void (*done)(struct kv_op *op);
    void *arg;                  /* ref: the caller's */
    /* internals */
    struct worker *worker;      /* ref: where it runs */
    struct job job;
    int tries;                  /* lazy read/list: partitions tried */
    int first;                  /* lazy read/list: the first one tried */
    struct job *copies;         /* owned: one per other partition */
    struct kv_list_part *parts; /* owned: canonical list, one per partition */
    int pending;                /* copies or list parts still running */
    uint64_t stamp;             /* lazy read: rcache_stamp() when it began */
    uint64_t started_us;        /* lazy read: when it began (monotonic) */
};

/* Runs op on w (called by the worker, on its thread). */
void kv_run(struct worker *w, struct kv_op *op);

/* Answers op with LKV_EUNAVAIL without running it (w has stopped). */
void kv_refuse(struct worker *w, struct kv_op *op);

/* The worker an operation on key should run on, among n. */
int kv_route(const char *key, size_t len, int n);

/* Frees what op owns (not op). */
void kv_op_free(struct kv_op *op);

#endif
