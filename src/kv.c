/*
 * kv.c -- reads, writes and lists across partitions. See kv.h.
 */
#include "kv.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "placement.h"
#include "prober.h"
#include "worker.h"

struct kv_list_part {
    struct kv_op *op;          /* ref: the owner */
    int partition;
    struct job job;
    struct buf lower;          /* owned: where the next page starts */
    struct buf last;           /* owned: the last key of the page */
    size_t rows;               /* rows of the current page */
    size_t kept;               /* keys kept from this partition */
    int failed;                /* out of memory */
};

int kv_route(const char *key, size_t len, int n)
{
    /* High bits: placement_jump() draws the master from the whole hash. */
    return (int)((placement_hash64(key, len) >> 33) % (uint64_t)n);
}

/* Queues j on lane l, or answers it at once when the worker is stopping
 * (its lanes are closed and nothing would ever run it). */
static void submit(struct worker *w, struct lane *l, struct job *j)
{
    if (w->stopping) {
        j->st = LKV_EUNAVAIL;
        j->done(j);
        return;
    }
    lane_submit(l, j);
}

static void finish(struct kv_op *op, enum lkv_status st)
{
    op->st = st;
    op->done(op);
}

/* ---- reads ---------------------------------------------------------------- */

static void read_next(struct kv_op *op);

static void read_done(struct job *j)
{
    struct kv_op *op = j->arg;
    struct stats *s = worker_stats(op->worker);
    stats_add(s, db_reads_total, 1);
    stats_add(s, db_read_statements_total, j->statements);
    if (j->st == LKV_EUNAVAIL && !op->canonical) {
        read_next(op);
        return;
    }
    if (j->st == LKV_OK && !op->canonical)
        rcache_put(&op->worker->cache, &op->rec, op->served, op->stamp, op->started_us);
    finish(op, j->st);
}

/* Lazy reads: the next partition not in back-off, from a random start. */
static void read_next(struct kv_op *op)
{
    int n = op->worker->be->partitions;
    while (op->tries < n) {
        int p = (op->first + op->tries++) % n;
        if (prober_backing_off(&op->worker->be->probers[p]))
            continue;
        op->served = p;
        submit(op->worker, worker_lane(op->worker, p, LANE_READ), &op->job);
        return;
    }
    finish(op, LKV_EUNAVAIL);
}

static void run_read(struct worker *w, struct kv_op *op)
{
    op->job.rec = &op->rec;
    op->job.done = read_done;
    op->job.arg = op;
    if (op->canonical) {
        op->served = placement_master(op->rec.key, op->rec.key_len, w->be->partitions);
        submit(w, worker_lane(w, op->served, LANE_READ), &op->job);
        return;
    }
    int partition;
    int hit = rcache_get(&w->cache, op->rec.key, op->rec.key_len, clock_mono_us(), &op->rec,
                         &partition);
    if (hit != 0) {
        op->served = partition;
        op->cached = hit == 1;
        if (hit == 1)
            stats_add(worker_stats(w), read_cache_hits_total, 1);
        finish(op, hit == 1 ? LKV_OK : LKV_ENOMEM);
        return;
    }
    op->stamp = rcache_stamp(&w->cache);
    op->started_us = clock_mono_us(); /* the value is no older than this */
    op->first = (int)(worker_random(w) % (uint64_t)w->be->partitions);
    read_next(op);
}

/* ---- writes --------------------------------------------------------------- */

static void copy_done(struct job *j)
{
    struct kv_op *op = j->arg;
    struct stats *s = worker_stats(op->worker);
    stats_add(s, db_copies_total, 1);
    stats_add(s, db_copy_statements_total, j->statements);
    if (j->st == LKV_OK)
        op->written++;
    if (--op->pending == 0)
        finish(op, LKV_OK);
}

/* Sends the write made at the master to every other reachable partition
 * at once; answers when all have answered. */
static void replicate(struct kv_op *op)
{
    struct worker *w = op->worker;
    int n = w->be->partitions;
    op->copies = calloc((size_t)n, sizeof(*op->copies));
    if (op->copies == NULL) {
        /* The write is done; the sync will carry it. */
        finish(op, LKV_OK);
        return;
    }
    op->pending = 1; /* held until every copy is queued */
    for (int p = 0; p < n; p++) {
        if (p == op->master || prober_backing_off(&w->be->probers[p]))
            continue;
        struct job *c = &op->copies[p];
        c->rec = &op->rec;
        c->done = copy_done;
        c->arg = op;
        op->pending++;
        submit(w, worker_lane(w, p, LANE_COPY), c);
    }
    if (--op->pending == 0)
        finish(op, LKV_OK);
}

static void write_done(struct job *j)
{
    struct kv_op *op = j->arg;
    struct stats *s = worker_stats(op->worker);
    stats_add(s, db_writes_total, 1);
    stats_add(s, db_write_batches_total, j->statements);
    /* Again at the end: a read that began while the write ran may have read
     * the old value; the stamp keeps it out of the cache. */
    rcache_invalidate(&op->worker->cache, op->rec.key, op->rec.key_len);
    op->created = j->created;
    if (j->st != LKV_OK || !op->canonical) {
        finish(op, j->st);
        return;
    }
    replicate(op);
}

static void run_write(struct worker *w, struct kv_op *op)
{
    rcache_invalidate(&w->cache, op->rec.key, op->rec.key_len);
    op->master = placement_master(op->rec.key, op->rec.key_len, w->be->partitions);
    op->written = 1;
    op->job.rec = &op->rec;
    op->job.need_created = op->need_created;
    op->job.if_match = op->if_match;
    op->job.if_none_match = op->if_none_match;
    op->job.done = write_done;
    op->job.arg = op;
    submit(w, worker_lane(w, op->master, LANE_WRITE), &op->job);
}

/* ---- lists ---------------------------------------------------------------- */

static int keys_add(struct kv_keys *k, const char *key, size_t len)
{
    if (k->n == k->cap) {
        size_t cap = k->cap ? k->cap * 2 : 64;
        void *p = realloc(k->item, cap * sizeof(*k->item));
        if (p == NULL)
            return -1;
        k->item = p;
        k->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, key, len);
    copy[len] = '\0';
    k->item[k->n].key = copy;
    k->item[k->n].len = len;
    k->n++;
    return 0;
}

static int key_cmp(const void *a, const void *b)
{
    const struct kv_key *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

static int lazy_key(const char *key, size_t len, void *arg)
{
    struct kv_op *op = arg;
    return keys_add(&op->keys, key, len);
}

static void list_next(struct kv_op *op);

static void lazy_list_done(struct job *j)
{
    struct kv_op *op = j->arg;
    if (j->st == LKV_EUNAVAIL) {
        for (size_t i = 0; i < op->keys.n; i++)
            free(op->keys.item[i].key);
        op->keys.n = 0;
        list_next(op);
        return;
    }
    finish(op, j->st);
}

static void set_list_job(struct job *j, const struct kv_op *op, const struct buf *lower,
                         job_key_fn on_key, void *arg, job_done_fn done)
{
    j->lower = lower->data ? lower->data : "";
    j->lower_len = lower->len;
    j->upper = op->has_upper ? op->upper.data : NULL;
    j->upper_len = op->upper.len;
    j->limit = op->want;
    j->on_key = on_key;
    j->arg = arg;
    j->done = done;
}

static void list_next(struct kv_op *op)
{
    int n = op->worker->be->partitions;
    while (op->tries < n) {
        int p = (op->first + op->tries++) % n;
        if (prober_backing_off(&op->worker->be->probers[p]))
            continue;
        set_list_job(&op->job, op, &op->lower, lazy_key, op, lazy_list_done);
        submit(op->worker, worker_lane(op->worker, p, LANE_LIST), &op->job);
        return;
    }
    finish(op, LKV_EUNAVAIL);
}

/* Canonical lists: each partition's pages, keeping the keys it masters. */
static int part_key(const char *key, size_t len, void *arg)
{
    struct kv_list_part *part = arg;
    struct kv_op *op = part->op;
    part->rows++;
    part->last.len = 0;
    if (buf_append(&part->last, key, len) != 0)
        return part->failed = 1;
    if (placement_master(key, len, op->worker->be->partitions) != part->partition)
        return 0;
    part->kept++;
    if (keys_add(&op->keys, key, len) != 0)
        return part->failed = 1;
    return 0;
}

static void part_done(struct job *j);

static void part_page(struct kv_list_part *part)
{
    struct kv_op *op = part->op;
    part->rows = 0;
    set_list_job(&part->job, op, &part->lower, part_key, part, part_done);
    submit(op->worker, worker_lane(op->worker, part->partition, LANE_LIST), &part->job);
}

static void part_done(struct job *j)
{
    struct kv_list_part *part = j->arg;
    struct kv_op *op = part->op;
    enum lkv_status st = part->failed ? LKV_ENOMEM : j->st;
    int more = st == LKV_OK && part->rows >= (size_t)op->want && part->kept < (size_t)op->want;
    if (more) {
        /* "k > last" is "k >= last + NUL" in bytewise order. */
        part->lower.len = 0;
        if (buf_append(&part->lower, part->last.data, part->last.len) == 0 &&
            buf_append(&part->lower, "", 1) == 0) {
            part_page(part);
            return;
        }
        st = LKV_ENOMEM;
    }
    if (st != LKV_OK && op->st == LKV_OK)
        op->st = st;
    if (--op->pending > 0)
        return;
    if (op->st == LKV_OK && op->keys.n > 1)
        qsort(op->keys.item, op->keys.n, sizeof(*op->keys.item), key_cmp);
    finish(op, op->st);
}

static void run_list(struct worker *w, struct kv_op *op)
{
    int n = w->be->partitions;
    if (!op->canonical) {
        op->first = (int)(worker_random(w) % (uint64_t)n);
        list_next(op);
        return;
    }
    op->parts = calloc((size_t)n, sizeof(*op->parts));
    if (op->parts == NULL) {
        finish(op, LKV_ENOMEM);
        return;
    }
    op->st = LKV_OK;
    op->pending = n;
    for (int p = 0; p < n; p++) {
        struct kv_list_part *part = &op->parts[p];
        part->op = op;
        part->partition = p;
        if (buf_append(&part->lower, op->lower.data ? op->lower.data : "", op->lower.len) != 0)
            part->failed = 1;
    }
    for (int p = 0; p < n; p++) {
        struct kv_list_part *part = &op->parts[p];
        if (part->failed) {
            part->job.arg = part;
            part->job.st = LKV_ENOMEM;
            part_done(&part->job);
        } else {
            part_page(part);
        }
    }
}

/* ---- entry points ----------------------------------------------------------- */

void kv_run(struct worker *w, struct kv_op *op)
{
    op->worker = w;
    op->served = -1;
    op->st = LKV_OK;
    if (w->stopping) {
        finish(op, LKV_EUNAVAIL);
        return;
    }
    switch (op->kind) {
    case KV_OP_READ: run_read(w, op); return;
    case KV_OP_WRITE: run_write(w, op); return;
    case KV_OP_LIST: run_list(w, op); return;
    }
    finish(op, LKV_EINTERNAL);
}

void kv_refuse(struct worker *w, struct kv_op *op)
{
    op->worker = w;
    op->served = -1;
    finish(op, LKV_EUNAVAIL);
}

void kv_op_free(struct kv_op *op)
{
    if (op->kind == KV_OP_READ) {
        free(op->rec.value);
        op->rec.value = NULL;
    }
    for (size_t i = 0; i < op->keys.n; i++)
        free(op->keys.item[i].key);
    free(op->keys.item);
    op->keys.item = NULL;
    op->keys.n = op->keys.cap = 0;
    free(op->copies);
    op->copies = NULL;
    if (op->parts) {
        for (int p = 0; op->worker && p < op->worker->be->partitions; p++) {
            buf_free(&op->parts[p].lower);
            buf_free(&op->parts[p].last);
        }
        free(op->parts);
        op->parts = NULL;
    }
    buf_free(&op->lower);
    buf_free(&op->upper);
}
