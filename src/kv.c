/*
 * kv.c -- reads, writes and lists across partitions. See kv.h.
 */
#include "kv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "chunks.h"
#include "clock.h"
#include "log.h"
#include "placement.h"
#include "prober.h"
#include "spool.h"
#include "version.h"
#include "watch.h"
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

/* Hands op to the watch hub (on worker 0) to wait for a change. */
static void park(struct kv_op *op)
{
    struct worker *w = op->worker;
    if (w->index == 0) {
        watch_park(w->be->hub, op);
        return;
    }
    op->parking = 1;
    worker_submit(w - w->index, op); /* workers are one array: this is worker 0 */
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
    /* A key watch whose index has not moved waits (watch.h). */
    if (op->watch == WATCH_KEY && !op->watch_final &&
        (j->st == LKV_OK || j->st == LKV_ENOTFOUND) && op->rec.version == op->watch_index) {
        free(op->rec.value);
        op->rec.value = NULL;
        park(op);
        return;
    }
    /* A key with an expiry is not cached: an entry could outlive it. Nor
     * is a chunked value (its chunks are read as they are sent). */
    if (j->st == LKV_OK && !op->canonical && op->rec.expires_at == 0 && op->rec.chunks == 0)
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
    op->unchanged = j->unchanged;
    if (j->st == LKV_OK && !j->unchanged)
        watch_notify(op->worker->be->hub, op->rec.key, op->rec.key_len);
    /* A blocking lock acquisition finding the lock held waits for it to
     * change (released or expired), then tries again. */
    if (op->watch == WATCH_LOCK && j->st == LKV_EPRECOND && !op->watch_final) {
        op->watch_index = j->cur_version;
        park(op);
        return;
    }
    if (j->st != LKV_OK || !op->canonical || op->refresh) {
        finish(op, j->st);
        return;
    }
    replicate(op);
}

static void write_spooled_value(struct worker *w, struct kv_op *op);

static void run_write(struct worker *w, struct kv_op *op)
{
    rcache_invalidate(&w->cache, op->rec.key, op->rec.key_len);
    op->master = placement_master(op->rec.key, op->rec.key_len, w->be->partitions);
    if (op->spool && op->rec.chunks == 0) {
        write_spooled_value(w, op); /* its chunks first, then this write */
        return;
    }
    op->written = 1;
    op->job.rec = &op->rec;
    op->job.need_created = op->need_created;
    op->job.ttl_us = op->ttl_us;
    op->job.refresh = op->refresh;
    op->job.content_addressed = op->content_addressed;
    op->job.if_match = op->if_match;
    op->job.if_none_match = op->if_none_match;
    op->job.done = write_done;
    op->job.arg = op;
    submit(w, worker_lane(w, op->master, LANE_WRITE), &op->job);
}

/* ---- chunks of large values ------------------------------------------------- */

static void chunk_part_done(struct job *j)
{
    struct kv_op *op = j->arg;
    if (j != &op->job && j->st != LKV_OK)
        op->tee_dropped[j - op->copies] = 1;
    if (--op->pending == 0)
        finish(op, op->job.st);
}

/* Tees the chunk in op->job to every other partition still in the upload;
 * returns how many tees it queued. A tee may have ended already when this
 * returns (a statement can complete without waiting): count on the number
 * queued, never on op->pending, to know whether any were sent. */
static int tee_chunk(struct worker *w, struct kv_op *op)
{
    int n = w->be->partitions, queued = 0;
    if (op->copies == NULL) {
        op->copies = calloc((size_t)n, sizeof(*op->copies));
        op->tee_dropped = calloc((size_t)n, 1);
        if (op->copies == NULL || op->tee_dropped == NULL) {
            /* out of memory: the replicas get the value from the sync */
            free(op->copies);
            free(op->tee_dropped);
            op->copies = NULL;
            op->tee_dropped = NULL;
            return 0;
        }
    }
    for (int p = 0; p < n; p++) {
        if (p == op->master || op->tee_dropped[p])
            continue;
        if (prober_backing_off(&w->be->probers[p])) {
            op->tee_dropped[p] = 1;
            continue;
        }
        struct job *c = &op->copies[p];
        *c = op->job;
        c->next = NULL;
        c->chunk_io = CHUNK_TEE;
        op->pending++;
        queued++;
        submit(w, worker_lane(w, p, LANE_CHUNK), c);
    }
    return queued;
}

static void run_chunk(struct worker *w, struct kv_op *op)
{
    struct job *j = &op->job;
    j->rec = &op->rec;
    j->done = chunk_part_done;
    j->arg = op;
    op->pending = 1; /* held until every part is queued */
    int p = op->chunk_partition;
    if (j->chunk_io != CHUNK_GET) {
        p = op->master = placement_master(op->rec.key, op->rec.key_len, w->be->partitions);
        if (op->canonical && w->be->partitions > 1)
            tee_chunk(w, op);
    }
    enum lane_kind lane = j->chunk_io == CHUNK_GET && j->chunk_n % 2 ? LANE_CHUNK_ODD : LANE_CHUNK;
    op->pending++;
    submit(w, worker_lane(w, p, lane), j);
    if (--op->pending == 0)
        finish(op, j->st);
}

/* A value over one chunk spooled to disk (a content-addressed write learns
 * its key only at its last byte, so its body could not stream to the
 * master as it came: spool.h): written as chunks from the spool, one at a
 * time (teed when canonical), then switched to by the write itself. */
static void spooled_chunk_next(struct worker *w, struct kv_op *op);
static void write_spooled_chunks(struct worker *w, struct kv_op *op, uint64_t set);

/* Every chunk is written: the write switches the key to them, or, when the
 * master held them already, the master's row is copied to the replicas. */
static void spooled_chunks_written(struct worker *w, struct kv_op *op)
{
    op->rec.chunks = chunks_count(op->rec.value_len);
    op->rec.chunk_version = op->job.chunk_set;
    free(op->copies); /* the tee's; replicate() has its own */
    op->copies = NULL;
    free(op->tee_dropped);
    op->tee_dropped = NULL;
    if (op->unchanged)
        replicate(op);
    else
        run_write(w, op);
}

static void spooled_chunk_done(struct job *j)
{
    struct kv_op *op = j->arg;
    struct worker *w = op->worker;
    if (j != &op->job && j->st != LKV_OK)
        op->tee_dropped[j - op->copies] = 1;
    if (--op->pending > 0)
        return;
    struct job *m = &op->job;
    if (m->st == LKV_EPRECOND && m->chunk_n == 0) {
        m->chunk_set++; /* the set's name was taken in the same microsecond */
        spooled_chunk_next(w, op);
        return;
    }
    if (m->st != LKV_OK) {
        finish(op, m->st == LKV_EPRECOND ? LKV_EUNAVAIL : m->st);
        return;
    }
    if (++m->chunk_n < chunks_count(op->rec.value_len)) {
        spooled_chunk_next(w, op);
        return;
    }
    spooled_chunks_written(w, op);
}

/* Chunk n of a spooled value, read into op->chunk_buf. NULL on failure
 * (logged). */
static const char *spooled_chunk(struct kv_op *op, uint32_t n, size_t len)
{
    if (op->chunk_buf == NULL && (op->chunk_buf = malloc(CHUNKS_SIZE)) == NULL) {
        log_error("POST %.*s: out of memory for a chunk of the spooled body",
                  (int)op->rec.key_len, op->rec.key);
        return NULL;
    }
    if (spool_read(op->spool, (uint64_t)n * CHUNKS_SIZE, op->chunk_buf, len) != 0) {
        log_error("POST %.*s: chunk %u of the spooled body could not be read: %s",
                  (int)op->rec.key_len, op->rec.key, (unsigned)n, strerror(errno));
        return NULL;
    }
    spool_will_read(op->spool, (uint64_t)(n + 1) * CHUNKS_SIZE, CHUNKS_SIZE); /* the next */
    return op->chunk_buf;
}

static void spooled_chunk_next(struct worker *w, struct kv_op *op)
{
    struct job *j = &op->job;
    j->rec = &op->rec;
    j->chunk_io = CHUNK_PUT;
    j->chunk_len = chunks_len(op->rec.value_len, j->chunk_n);
    j->chunk_data = spooled_chunk(op, j->chunk_n, j->chunk_len);
    if (j->chunk_data == NULL) {
        finish(op, op->chunk_buf ? LKV_EINTERNAL : LKV_ENOMEM);
        return;
    }
    j->done = spooled_chunk_done;
    j->arg = op;
    op->pending = 1; /* the master's chunk; held for the tees when unchanged */
    int teed = op->canonical && w->be->partitions > 1 ? tee_chunk(w, op) : 0;
    if (!op->unchanged) {
        submit(w, worker_lane(w, op->master, LANE_CHUNK), j);
        return;
    }
    /* The master holds the set: only the tees run. None queued (every
     * replica dropped or backing off): the copies say who holds it. */
    if (teed == 0) {
        spooled_chunks_written(w, op);
        return;
    }
    j->st = LKV_OK;
    spooled_chunk_done(j); /* lets go of the hold: the last tee to end goes on */
}

/* The master's row of a content-addressed key, read before its chunks are
 * written: the same content already live under its key (a chunked row of
 * the same digest and length) is left alone (200 "unchanged"), and its
 * chunks not written to the master again. A canonical write still sends
 * them to the replicas, under the master's set (a replica holding them
 * already changes nothing), then copies the master's row, as a canonical
 * write of a small unchanged value copies its row. The write's own check
 * (lane.c) still decides when the row changes in between. */
static void seen_done(struct job *j)
{
    struct kv_op *op = j->arg;
    struct worker *w = op->worker;
    const struct record *seen = op->seen;
    stats_add(worker_stats(w), db_reads_total, 1);
    stats_add(worker_stats(w), db_read_statements_total, j->statements);
    if (j->st != LKV_OK && j->st != LKV_ENOTFOUND) {
        finish(op, j->st);
        return;
    }
    if (j->st == LKV_ENOTFOUND || !seen->has_digest || !op->rec.has_digest ||
        memcmp(seen->digest, op->rec.digest, sizeof(seen->digest)) != 0 ||
        seen->chunks == 0 || seen->value_len != op->rec.value_len) {
        write_spooled_chunks(w, op, version_now_us());
        return;
    }
    op->unchanged = 1;
    op->written = 1;
    op->rec.version = seen->version;
    op->rec.expires_at = seen->expires_at;
    memcpy(op->rec.ctype, seen->ctype, sizeof(op->rec.ctype));
    if (op->canonical && w->be->partitions > 1)
        write_spooled_chunks(w, op, seen->chunk_version); /* to the replicas */
    else
        finish(op, LKV_OK);
}

/* Writes the spooled value as chunk set `set`: to the master, and teed to
 * the replicas when canonical; to the replicas only when the master holds
 * it (op->unchanged). */
static void write_spooled_chunks(struct worker *w, struct kv_op *op, uint64_t set)
{
    op->job.chunk_set = set;
    op->job.chunk_n = 0;
    spooled_chunk_next(w, op);
}

static void write_spooled_value(struct worker *w, struct kv_op *op)
{
    op->seen = calloc(1, sizeof(*op->seen));
    if (op->seen == NULL) {
        finish(op, LKV_ENOMEM);
        return;
    }
    op->seen->key = op->rec.key;
    op->seen->key_len = op->rec.key_len;
    op->job.rec = op->seen;
    op->job.want_value = 0;
    op->job.done = seen_done;
    op->job.arg = op;
    submit(w, worker_lane(w, op->master, LANE_READ), &op->job);
}

/* ---- lists ---------------------------------------------------------------- */

static int keys_add(struct kv_keys *k, const char *key, size_t len, uint64_t value_len)
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
    k->item[k->n].value_len = value_len;
    k->item[k->n].rec = NULL;
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

static int lazy_key(const char *key, size_t len, uint64_t value_len, void *arg)
{
    struct kv_op *op = arg;
    return keys_add(&op->keys, key, len, value_len);
}

/* ---- a list's values: the page's keys read where they were listed ----------- */

struct kv_value_read {
    struct kv_op *op;           /* ref: the owner */
    struct record rec;          /* key: ref into op->keys; value owned */
    struct job job;
};

static void values_done(struct kv_op *op)
{
    size_t kept = 0;
    for (size_t i = 0; i < op->keys.n; i++) {
        struct kv_key *k = &op->keys.item[i];
        if (op->st == LKV_OK && k->rec == NULL) {
            free(k->key); /* deleted or expired since it was listed */
            continue;
        }
        op->keys.item[kept++] = *k;
    }
    op->keys.n = kept;
    finish(op, op->st);
}

static void value_read_done(struct job *j)
{
    struct kv_value_read *r = j->arg;
    struct kv_op *op = r->op;
    stats_add(worker_stats(op->worker), db_reads_total, 1);
    stats_add(worker_stats(op->worker), db_read_statements_total, j->statements);
    if (j->st == LKV_OK)
        op->keys.item[r - op->reads].rec = &r->rec;
    else if (j->st != LKV_ENOTFOUND && op->st == LKV_OK)
        op->st = j->st;
    if (--op->pending == 0)
        values_done(op);
}

/* The page's keys up to its limit and byte budget, each read (canonical:
 * at its master; lazy: where it was listed); the read lanes batch them. */
static void read_values(struct kv_op *op)
{
    struct worker *w = op->worker;
    size_t limit = (size_t)op->want - 1, take = 0;
    uint64_t bytes = 0;
    while (take < op->keys.n && take < limit) {
        uint64_t len = op->keys.item[take].value_len;
        if (take > 0 && bytes + len > KV_LIST_VALUE_BYTES)
            break;
        bytes += len;
        take++;
    }
    op->values_cut = take < op->keys.n; /* the page ends early: truncated */
    if (op->values_cut) {
        /* The next page starts after the last key taken, even if it is
         * deleted before its value is read. */
        op->cut_after = op->keys.item[take - 1];
        op->keys.item[take - 1].key = strdup(op->cut_after.key);
        if (op->keys.item[take - 1].key == NULL) {
            op->keys.item[take - 1].key = op->cut_after.key;
            op->cut_after.key = NULL;
            for (size_t i = take; i < op->keys.n; i++)
                free(op->keys.item[i].key);
            op->keys.n = take;
            finish(op, LKV_ENOMEM);
            return;
        }
    }
    for (size_t i = take; i < op->keys.n; i++)
        free(op->keys.item[i].key);
    op->keys.n = take;
    op->reads = calloc(take ? take : 1, sizeof(*op->reads));
    if (op->reads == NULL) {
        finish(op, LKV_ENOMEM);
        return;
    }
    op->nreads = take;
    op->st = LKV_OK;
    op->pending = take + 1; /* held until every read is queued */
    for (size_t i = 0; i < take; i++) {
        struct kv_value_read *r = &op->reads[i];
        r->op = op;
        r->rec.key = op->keys.item[i].key;
        r->rec.key_len = op->keys.item[i].len;
        r->job.rec = &r->rec;
        r->job.want_value = 1;
        r->job.done = value_read_done;
        r->job.arg = r;
        int p = op->canonical ? placement_master(r->rec.key, r->rec.key_len, w->be->partitions)
                              : op->list_partition;
        submit(w, worker_lane(w, p, LANE_READ), &r->job);
    }
    if (--op->pending == 0)
        values_done(op);
}

/* A list's keys are known: done, or now their values. */
static void list_finished(struct kv_op *op, enum lkv_status st)
{
    if (st != LKV_OK || !op->values) {
        finish(op, st);
        return;
    }
    read_values(op);
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
    list_finished(op, j->st);
}

static void set_list_job(struct job *j, const struct kv_op *op, const struct buf *lower,
                         job_key_fn on_key, void *arg, job_done_fn done)
{
    j->lower = lower->data ? lower->data : "";
    j->lower_len = lower->len;
    j->upper = op->has_upper ? op->upper.data : NULL;
    j->upper_len = op->upper.len;
    j->limit = op->want;
    j->with_lengths = op->values;
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
        op->list_partition = p;
        set_list_job(&op->job, op, &op->lower, lazy_key, op, lazy_list_done);
        submit(op->worker, worker_lane(op->worker, p, LANE_LIST), &op->job);
        return;
    }
    finish(op, LKV_EUNAVAIL);
}

/* Canonical lists: each partition's pages, keeping the keys it masters. */
static int part_key(const char *key, size_t len, uint64_t value_len, void *arg)
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
    if (keys_add(&op->keys, key, len, value_len) != 0)
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
    list_finished(op, op->st);
}

static void list_keys(struct worker *w, struct kv_op *op)
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

/* ---- a list's token (watch.h) -------------------------------------------------- */

struct kv_token_part {
    struct kv_op *op;           /* ref: the owner */
    int partition;
    struct job job;
    struct scan_args args;
    uint64_t seen;              /* digest of the rows above the client's T */
    uint64_t fresh;             /* digest of the rows above the new T */
};

static int token_row(const struct record *row, void *arg)
{
    struct kv_token_part *tp = arg;
    struct kv_op *op = tp->op;
    if (placement_master(row->key, row->key_len, op->worker->be->partitions) != tp->partition)
        return 0; /* a copy: the token is the masters' state */
    uint64_t now = tp->args.param[tp->args.nparams - 1].u64;
    tp->seen += watch_row_digest(row, op->watch_token.t, now);
    tp->fresh += watch_row_digest(row, op->list_token.t, now);
    return 0;
}

/* Every partition has answered: the client's token is still the state (a
 * watch parks), or the list is read, answering with the new token. */
static void token_done(struct kv_op *op)
{
    struct worker *w = op->worker;
    uint64_t seen = 0, fresh = 0;
    int ok = op->st == LKV_OK;
    for (int p = 0; p < w->be->partitions; p++) {
        seen += op->tokens[p].seen;
        fresh += op->tokens[p].fresh;
    }
    free(op->tokens);
    op->tokens = NULL;
    op->st = LKV_OK;
    if (op->watch == WATCH_PREFIX) {
        if (!ok) {
            finish(op, LKV_EUNAVAIL);
            return;
        }
        if (!op->watch_final && op->watch_token.valid && seen == op->watch_token.digest) {
            park(op);
            return;
        }
    }
    if (op->watch == WATCH_PREFIX && op->watch_final) {
        op->list_token = op->watch_token; /* the wait passed: the same token */
    } else {
        op->list_token.digest = fresh;
        op->list_token.valid = ok; /* a partition down: "0", which no state matches */
    }
    list_keys(w, op);
}

static void token_part_done(struct job *j)
{
    struct kv_token_part *tp = j->arg;
    struct kv_op *op = tp->op;
    if (j->st != LKV_OK)
        op->st = j->st;
    if (--op->pending == 0)
        token_done(op);
}

/* Binds the scan of partition tp's rows under the prefix whose index
 * passed the older of the two instants. */
static void token_args(struct kv_token_part *tp, uint64_t t, uint64_t now)
{
    struct kv_op *op = tp->op;
    struct scan_args *a = &tp->args;
    int ranged = op->has_upper;
    int n = 0;
    memset(a, 0, sizeof(*a));
    a->stmt = ranged ? KV_PREFIX_RANGE : KV_PREFIX_FROM;
    for (int half = 0; half < 2; half++) {
        a->param[n].blob = op->watch_key ? op->watch_key : "";
        a->param[n++].len = op->watch_key_len;
        if (ranged) {
            a->param[n].blob = op->upper.data;
            a->param[n++].len = op->upper.len;
        }
        a->param[n++].u64 = t;
    }
    a->param[n++].u64 = t;
    a->param[n++].u64 = now;
    a->nparams = n;
    a->on_row = token_row;
}

/* The token is read before the list: a change between the two is then
 * seen by the next watch, never lost. */
static void run_list(struct worker *w, struct kv_op *op)
{
    int n = w->be->partitions;
    uint64_t now = version_now_us();
    op->list_token.t = now - (uint64_t)WATCH_SLACK_MS * 1000u;
    op->list_token.valid = 1;
    if (op->watch != WATCH_PREFIX || !op->watch_token.valid)
        op->watch_token.t = op->list_token.t;
    uint64_t t = op->watch_token.t < op->list_token.t ? op->watch_token.t : op->list_token.t;
    struct kv_token_part *tokens = calloc((size_t)n, sizeof(*tokens));
    if (tokens == NULL) {
        finish(op, LKV_ENOMEM);
        return;
    }
    op->tokens = tokens; /* freed by token_done, after the last scan */
    op->st = LKV_OK;
    op->pending = n + 1; /* held until every scan is queued */
    for (int p = 0; p < n; p++) {
        struct kv_token_part *tp = &tokens[p];
        tp->op = op;
        tp->partition = p;
        token_args(tp, t, now);
        tp->job.scan = &tp->args;
        tp->job.done = token_part_done;
        tp->job.arg = tp;
        if (prober_backing_off(&w->be->probers[p])) {
            tp->job.st = LKV_EUNAVAIL;
            token_part_done(&tp->job);
            continue;
        }
        submit(w, worker_lane(w, p, LANE_SCAN), &tp->job);
    }
    if (--op->pending == 0)
        token_done(op);
}

/* ---- delete a tree ------------------------------------------------------------ */

/* Keys listed per page: bounds the memory and the work of one step, whatever
 * the size of the tree. */
#define TREE_PAGE 1000

struct tree_item {
    struct kv_tree_part *part;  /* ref: the owner */
    struct record rec;          /* key: ref into part->keys */
    struct job del;             /* at the master */
    struct job *copies;         /* canonical: one per partition (the master's unused) */
    int pending;
};

struct kv_tree_part {
    struct kv_op *op;           /* ref: the owner */
    int partition;
    struct job list;
    struct buf lower;           /* owned: where the next page starts */
    struct buf last;            /* owned: the page's last key */
    size_t rows;                /* keys of the page, mastered here or not */
    struct kv_keys keys;        /* owned: the page's keys mastered here */
    struct tree_item *items;    /* owned: one per key of keys */
    size_t pending;             /* items not done */
    enum lkv_status st;
};

static void tree_part_done(struct kv_tree_part *part, enum lkv_status st);
static void tree_page(struct kv_tree_part *part);

static void free_keys(struct kv_keys *k)
{
    for (size_t i = 0; i < k->n; i++)
        free(k->item[i].key);
    k->n = 0;
}

static void tree_item_done(struct tree_item *it)
{
    struct kv_tree_part *part = it->part;
    if (--it->pending > 0 || --part->pending > 0)
        return;
    for (size_t i = 0; i < part->keys.n; i++)
        free(part->items[i].copies);
    free(part->items);
    part->items = NULL;
    free_keys(&part->keys);
    if (part->st != LKV_OK || part->rows < TREE_PAGE) {
        tree_part_done(part, part->st);
        return;
    }
    part->lower.len = 0;
    if (buf_append(&part->lower, part->last.data, part->last.len) != 0 ||
        buf_append(&part->lower, "", 1) != 0) {
        tree_part_done(part, LKV_ENOMEM);
        return;
    }
    tree_page(part);
}

static void tree_copy_done(struct job *j)
{
    tree_item_done(j->arg);
}

static void tree_delete_done(struct job *j)
{
    struct tree_item *it = j->arg;
    struct kv_tree_part *part = it->part;
    struct kv_op *op = part->op;
    struct worker *w = op->worker;
    stats_add(worker_stats(w), db_writes_total, 1);
    stats_add(worker_stats(w), db_write_batches_total, j->statements);
    rcache_invalidate(&w->cache, it->rec.key, it->rec.key_len);
    if (j->st == LKV_OK) {
        op->deleted++;
        watch_notify(w->be->hub, it->rec.key, it->rec.key_len);
    }
    else if (j->st != LKV_ENOTFOUND && part->st == LKV_OK)
        part->st = j->st; /* ENOTFOUND: deleted meanwhile, not counted */
    if (j->st == LKV_OK && op->canonical && it->copies) {
        for (int p = 0; p < w->be->partitions; p++) {
            if (p == part->partition || prober_backing_off(&w->be->probers[p]))
                continue;
            struct job *c = &it->copies[p];
            c->rec = &it->rec;
            c->done = tree_copy_done;
            c->arg = it;
            it->pending++;
            submit(w, worker_lane(w, p, LANE_COPY), c);
        }
    }
    tree_item_done(it);
}

/* A page of live keys under the prefix: those mastered here are deleted. */
static void tree_page_done(struct job *j)
{
    struct kv_tree_part *part = j->arg;
    struct kv_op *op = part->op;
    struct worker *w = op->worker;
    size_t n = part->keys.n;
    if (j->st != LKV_OK || n == 0) {
        enum lkv_status st = j->st != LKV_OK ? j->st : part->st;
        if (st != LKV_OK || part->rows < TREE_PAGE) {
            tree_part_done(part, st);
            return;
        }
    }
    part->items = calloc(n ? n : 1, sizeof(*part->items));
    if (part->items == NULL) {
        tree_part_done(part, LKV_ENOMEM);
        return;
    }
    part->pending = n + 1; /* held until every delete is queued */
    for (size_t i = 0; i < n; i++) {
        struct tree_item *it = &part->items[i];
        it->part = part;
        it->rec.key = part->keys.item[i].key;
        it->rec.key_len = part->keys.item[i].len;
        it->rec.deleted = 1;
        if (op->canonical)
            it->copies = calloc((size_t)w->be->partitions, sizeof(*it->copies));
        it->pending = 1;
        it->del.rec = &it->rec;
        it->del.done = tree_delete_done;
        it->del.arg = it;
        submit(w, worker_lane(w, part->partition, LANE_WRITE), &it->del);
    }
    struct tree_item held = {.part = part, .pending = 1};
    tree_item_done(&held);
}

static int tree_key(const char *key, size_t len, uint64_t value_len, void *arg)
{
    (void)value_len;
    struct kv_tree_part *part = arg;
    part->rows++;
    part->last.len = 0;
    if (buf_append(&part->last, key, len) != 0)
        return -1;
    if (placement_master(key, len, part->op->worker->be->partitions) != part->partition)
        return 0;
    return keys_add(&part->keys, key, len, 0);
}

static void tree_page(struct kv_tree_part *part)
{
    struct kv_op *op = part->op;
    part->rows = 0;
    set_list_job(&part->list, op, &part->lower, tree_key, part, tree_page_done);
    part->list.limit = TREE_PAGE;
    submit(op->worker, worker_lane(op->worker, part->partition, LANE_LIST), &part->list);
}

static void tree_part_done(struct kv_tree_part *part, enum lkv_status st)
{
    struct kv_op *op = part->op;
    if (st != LKV_OK && op->st == LKV_OK)
        op->st = st;
    if (--op->pending == 0)
        finish(op, op->st);
}

static void run_delete_tree(struct worker *w, struct kv_op *op)
{
    int n = w->be->partitions;
    op->tree = calloc((size_t)n, sizeof(*op->tree));
    if (op->tree == NULL) {
        finish(op, LKV_ENOMEM);
        return;
    }
    op->st = LKV_OK;
    op->pending = n;
    for (int p = 0; p < n; p++) {
        struct kv_tree_part *part = &op->tree[p];
        part->op = op;
        part->partition = p;
        if (buf_append(&part->lower, op->lower.data, op->lower.len) != 0) {
            tree_part_done(part, LKV_ENOMEM);
            continue;
        }
        tree_page(part);
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
    if (op->parking) {
        op->parking = 0;
        watch_park(w->be->hub, op);
        return;
    }
    if (op->watch != WATCH_NONE)
        op->watch_seq = watch_seq(w->be->hub);
    switch (op->kind) {
    case KV_OP_READ: run_read(w, op); return;
    case KV_OP_WRITE: run_write(w, op); return;
    case KV_OP_LIST: run_list(w, op); return;
    case KV_OP_DELETE_TREE: run_delete_tree(w, op); return;
    case KV_OP_CHUNK: run_chunk(w, op); return;
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
    free(op->cut_after.key);
    op->cut_after.key = NULL;
    for (size_t i = 0; i < op->nreads; i++)
        free(op->reads[i].rec.value);
    free(op->reads);
    op->reads = NULL;
    op->nreads = 0;
    for (size_t i = 0; i < op->keys.n; i++)
        free(op->keys.item[i].key);
    free(op->keys.item);
    op->keys.item = NULL;
    op->keys.n = op->keys.cap = 0;
    free(op->copies);
    op->copies = NULL;
    free(op->tee_dropped);
    op->tee_dropped = NULL;
    free(op->chunk_buf);
    op->chunk_buf = NULL;
    free(op->seen);
    op->seen = NULL;
    free(op->tokens);
    op->tokens = NULL;
    if (op->tree) {
        for (int p = 0; op->worker && p < op->worker->be->partitions; p++) {
            buf_free(&op->tree[p].lower);
            buf_free(&op->tree[p].last);
            free_keys(&op->tree[p].keys);
            free(op->tree[p].keys.item);
        }
        free(op->tree);
        op->tree = NULL;
    }
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
