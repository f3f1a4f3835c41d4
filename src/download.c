/*
 * download.c -- a chunked value sent as its chunks are read. See
 * download.h. Positions are relative to the first byte sent.
 *
 * Two reads may be in flight at once, on the partition's two chunk lanes
 * (kv.h: even chunks on one, odd on the other), so the database reads the
 * next chunks while the client takes this one, and the two chunks a range
 * usually spans are read side by side. A download holds at most three
 * chunks: the one being sent and two read or being read.
 *
 * The lock guards everything both threads touch. A read is handed to the
 * worker outside the lock: worker_submit answers at once, on the caller's
 * thread, when the worker has stopped.
 */
#include "download.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "chunks.h"
#include "kv.h"
#include "worker.h"

#define AHEAD_MAX 2 /* chunks read or being read ahead of the one being sent */

struct piece {
    char *data;                 /* owned, or NULL */
    size_t len;
    uint64_t pos;               /* of data[0] */
};

/* One read: its operation and the room it reads into. */
struct flight {
    struct kv_op op;            /* KV_OP_CHUNK */
    struct piece room;
    int busy;
    struct download *d;
};

struct download {
    pthread_mutex_t lock;
    int refs;                   /* the response's, and each read in flight's */
    int released;
    struct worker *worker;      /* ref: the key's */
    const struct stream_hooks *hooks; /* ref */
    struct flight flight[AHEAD_MAX];
    char *key;                  /* owned */
    uint64_t set;
    int partition;
    struct chunks_span span;
    uint32_t next_n;            /* the next chunk to read */
    uint64_t next_pos;          /* ... and where its bytes go */
    struct piece sending;       /* the chunk being sent */
    uint64_t send_pos;          /* where the chunk to send after it starts */
    struct piece ahead[AHEAD_MAX]; /* chunks read, in no particular order */
    enum lkv_status st;
    void *conn;                 /* ref */
    void *parked;               /* conn, while it waits for a read */
};

static void landed(struct kv_op *op);

static void download_free(struct download *d)
{
    pthread_mutex_destroy(&d->lock);
    for (int i = 0; i < AHEAD_MAX; i++) {
        kv_op_free(&d->flight[i].op);
        free(d->flight[i].room.data);
        free(d->ahead[i].data);
    }
    free(d->sending.data);
    free(d->key);
    free(d);
}

/* Chunks read or being read ahead. */
static int ahead_count(const struct download *d)
{
    int n = 0;
    for (int i = 0; i < AHEAD_MAX; i++)
        n += (d->ahead[i].data != NULL) + d->flight[i].busy;
    return n;
}

/* Under the lock: prepares the read of the next chunk when there is room;
 * returns the flight the caller is to submit, or NULL. */
static struct flight *read_next(struct download *d)
{
    if (d->st != LKV_OK || d->released || d->next_n > d->span.last ||
        ahead_count(d) >= AHEAD_MAX)
        return NULL;
    struct flight *f = d->flight[0].busy ? &d->flight[1] : &d->flight[0];
    if (f->busy)
        return NULL;
    uint32_t n = d->next_n;
    uint32_t from = n == d->span.first ? d->span.skip : 0;
    uint32_t to = n == d->span.last ? d->span.keep : CHUNKS_SIZE; /* exclusive */
    size_t len = to - from;
    f->room.data = malloc(len > 0 ? len : 1);
    if (f->room.data == NULL) {
        d->st = LKV_ENOMEM;
        return NULL;
    }
    f->room.len = len;
    f->room.pos = d->next_pos;
    struct kv_op *op = &f->op;
    op->kind = KV_OP_CHUNK;
    op->rec.key = d->key; /* rec.key_len: set by download_start */
    op->chunk_partition = d->partition;
    op->done = landed;
    op->arg = f;
    struct job *j = &op->job;
    j->chunk_io = CHUNK_GET;
    j->chunk_set = d->set;
    j->chunk_n = n;
    j->chunk_from = from;
    j->chunk_len = len;
    j->chunk_buf = f->room.data;
    f->busy = 1;
    d->next_n++;
    d->next_pos += len;
    d->refs++;
    return f;
}

static void submit(struct download *d, struct flight *f)
{
    if (f)
        worker_submit(d->worker, &f->op);
}

struct download *download_start(struct worker *w, const struct record *rec, int partition,
                                uint64_t first, uint64_t last, const struct stream_hooks *hooks)
{
    struct download *d = calloc(1, sizeof(*d));
    char *key = malloc(rec->key_len + 1);
    if (d == NULL || key == NULL || pthread_mutex_init(&d->lock, NULL) != 0) {
        free(d);
        free(key);
        return NULL;
    }
    memcpy(key, rec->key, rec->key_len);
    key[rec->key_len] = '\0';
    d->key = key;
    d->worker = w;
    d->hooks = hooks;
    d->refs = 1;
    d->st = LKV_OK;
    d->set = rec->chunk_version;
    d->partition = partition;
    struct byte_range r = {.first = first, .last = last};
    chunks_span(&r, &d->span);
    d->next_n = d->span.first;
    for (int i = 0; i < AHEAD_MAX; i++) {
        d->flight[i].d = d;
        d->flight[i].op.rec.key_len = rec->key_len;
    }
    struct flight *f1 = read_next(d), *f2 = read_next(d);
    submit(d, f1);
    submit(d, f2);
    return d;
}

void download_attach(struct download *d, void *conn)
{
    pthread_mutex_lock(&d->lock);
    d->conn = conn;
    pthread_mutex_unlock(&d->lock);
}

/* A read has landed (the worker's thread, or the caller's when the worker
 * has stopped). */
static void landed(struct kv_op *op)
{
    struct flight *f = op->arg;
    struct download *d = f->d;
    pthread_mutex_lock(&d->lock);
    f->busy = 0;
    if (op->st == LKV_OK && op->job.chunk_len == f->room.len) {
        struct piece *slot = d->ahead[0].data ? &d->ahead[1] : &d->ahead[0];
        *slot = f->room;
    } else {
        /* LKV_ENOTFOUND: the set was collected; a short chunk: damaged */
        free(f->room.data);
        if (d->st == LKV_OK)
            d->st = op->st == LKV_OK || op->st == LKV_ENOTFOUND ? LKV_EINTERNAL : op->st;
    }
    f->room.data = NULL;
    struct flight *next = read_next(d);
    void *conn = d->parked;
    d->parked = NULL;
    int last = --d->refs == 0;
    pthread_mutex_unlock(&d->lock);
    if (conn)
        d->hooks->resume(conn);
    if (next)
        submit(d, next);
    else if (last)
        download_free(d);
}

/* Under the lock: moves the chunk that starts at send_pos from ahead to
 * sending; 1 when there was one. */
static int promote(struct download *d)
{
    for (int i = 0; i < AHEAD_MAX; i++)
        if (d->ahead[i].data && d->ahead[i].pos == d->send_pos) {
            d->sending = d->ahead[i];
            d->ahead[i].data = NULL;
            d->send_pos += d->sending.len;
            return 1;
        }
    return 0;
}

ssize_t download_read(struct download *d, uint64_t pos, char *buf, size_t max)
{
    pthread_mutex_lock(&d->lock);
    for (;;) {
        struct piece *s = &d->sending;
        if (s->data && pos >= s->pos && pos < s->pos + s->len) {
            size_t n = (size_t)(s->pos + s->len - pos);
            if (n > max)
                n = max;
            memcpy(buf, s->data + (pos - s->pos), n);
            if (pos + n == s->pos + s->len) {
                /* libmicrohttpd holds what it was given: never asked again */
                free(s->data);
                s->data = NULL;
            }
            struct flight *f = read_next(d);
            pthread_mutex_unlock(&d->lock);
            submit(d, f);
            return (ssize_t)n;
        }
        if (s->data == NULL && promote(d))
            continue;
        if (s->data) /* a position outside the chunk being sent: a bug */
            d->st = LKV_EINTERNAL;
        if (d->st != LKV_OK || (ahead_count(d) == 0 && d->next_n > d->span.last)) {
            pthread_mutex_unlock(&d->lock); /* failed, or nothing left to read (a bug) */
            return -1;
        }
        struct flight *f = read_next(d);
        d->hooks->suspend(d->conn);
        d->parked = d->conn;
        pthread_mutex_unlock(&d->lock);
        submit(d, f);
        return 0;
    }
}

void download_release(struct download *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->lock);
    d->released = 1;
    d->parked = NULL;
    int last = --d->refs == 0;
    pthread_mutex_unlock(&d->lock);
    if (last)
        download_free(d);
}
