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
 *   chunk  one chunk of a large value (chunks.h), described in op->job
 *          (chunk_io, chunk_set, chunk_n, ...): read from chunk_partition,
 *          or written to the key's master and, canonical, teed to every
 *          other reachable partition (one that fails once is left out of
 *          the rest of the upload: its switch then finds the set short)
 *   delete-tree  every partition in parallel pages through the live keys
 *          under a prefix that it is master of and deletes them there, a
 *          page at a time (canonical: each tombstone then copied to every
 *          other reachable partition)
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
#include "watch.h"

struct spool;

enum kv_kind { KV_OP_READ, KV_OP_WRITE, KV_OP_LIST, KV_OP_DELETE_TREE, KV_OP_CHUNK };

struct kv_key {
    char *key;   /* owned (NUL-terminated for convenience) */
    size_t len;
    uint64_t value_len;   /* a list with values: the length listed */
    struct record *rec;   /* a list with values: the key as read (ref into
                             the op's reads), else NULL */
};

struct kv_keys {
    struct kv_key *item; /* owned */
    size_t n, cap;
};

struct kv_list_part;
struct kv_tree_part;
struct kv_value_read;
struct kv_token_part;

/* A list with values holds this many value bytes at most (and at least one
 * entry, whatever its size). */
#define KV_LIST_VALUE_BYTES (16u << 20)

struct kv_op {
    struct kv_op *next;         /* in a worker's inbox */
    enum kv_kind kind;
    int canonical;
    /* read, write */
    struct record rec;          /* key: ref; value: a read's is owned (freed by
                                   kv_op_free), a write's is a ref */
    int need_created;           /* write: a PUT */
    uint64_t ttl_us;            /* write: time to live, or 0 (none) */
    int refresh;                /* write: only a new expiry (the value kept;
                                   not copied at once: the sync carries it) */
    int content_addressed;      /* write: a live row whose stored digest is
                                   rec.digest is left alone (unchanged = 1) */
    const struct spool *spool;  /* write: ref, the value on disk (rec.value
                                   NULL), or NULL */
    const char *if_match;       /* write: ref, or NULL */
    const char *if_none_match;  /* write: ref, or NULL */
    /* list: keys >= lower and < upper (when has_upper), want of them */
    struct buf lower;           /* owned */
    struct buf upper;           /* owned */
    int has_upper;
    int want;
    int values;                 /* list: with each key's value */
    /* results */
    enum lkv_status st;
    int served;                 /* read: the partition that answered, or -1 */
    int master;                 /* write: the key's master */
    int written;                /* write: partitions holding it now */
    int created;                /* write: no live row existed before */
    int unchanged;              /* write, content_addressed: the live row
                                   already held this content; nothing written
                                   (rec.version is the row's) */
    int cached;                 /* read: answered from the read cache */
    struct kv_keys keys;        /* list: sorted */
    int values_cut;             /* list with values: keys listed were left
                                   for the next page (limit, byte budget) */
    struct kv_key cut_after;    /* ... and the last key of this page as
                                   listed (owned key; the page's own last
                                   one may have gone since) */
    long long deleted;          /* delete-tree: keys deleted */
    void (*done)(struct kv_op *op);
    void *arg;                  /* ref: the caller's */
    /* waiting (watch.h) */
    enum watch_kind watch;      /* WATCH_NONE: answer at once */
    uint64_t watch_index;       /* key, lock: the index it waits to change */
    struct watch_token watch_token; /* prefix: the client's token */
    const char *watch_key;      /* ref: the key or prefix waited on */
    size_t watch_key_len;
    uint64_t watch_deadline_us; /* monotonic: when the wait passes */
    int watch_final;            /* the wait passed: answer as things stand */
    uint64_t watch_seq;         /* watch_seq() when its last run began */
    int parking;                /* handed to the hub's worker to park */
    struct watch_token list_token; /* list: the token it answers with */
    struct kv_op *w_next, *w_prev, *w_all_next, *w_all_prev; /* the hub's */
    size_t w_heap;              /* the hub's: index in its deadline heap */
    int w_master;               /* the hub's: key, lock: the key's master */
    /* internals */
    struct worker *worker;      /* ref: where it runs */
    struct job job;
    int tries;                  /* lazy read/list: partitions tried */
    int first;                  /* lazy read/list: the first one tried */
    struct job *copies;         /* owned: one per other partition */
    struct kv_list_part *parts; /* owned: canonical list, one per partition */
    struct kv_tree_part *tree;  /* owned: delete-tree, one per partition */
    struct kv_value_read *reads; /* owned: a list's values, one per key */
    struct kv_token_part *tokens; /* owned: a list's token, one per partition */
    size_t nreads;
    int list_partition;         /* lazy list: the partition that answered */
    int chunk_partition;        /* chunk read: the partition to read from */
    char *chunk_buf;            /* owned: a spooled value's chunk being written */
    struct record *seen;        /* owned: a spooled content-addressed value's
                                   key as its master holds it */
    unsigned char *tee_dropped; /* owned: canonical chunk writes, one flag per
                                   partition left out of the upload */
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
