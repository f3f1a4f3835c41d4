/*
 * download.c -- a chunked value sent as its chunks are read. See
 * download.h. Positions are relative to the first byte sent.
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

struct piece {
    char *data;                 /* owned, or NULL */
    size_t len;
    uint64_t pos;               /* of data[0] */
};

/* Chunks read ahead of the one being sent, at most: the worker asks for
 * the next as soon as one lands, so its reads follow each other without
 * waiting for libmicrohttpd's thread (one read ahead left the database idle
 * while the client took each chunk). A download then holds at most three
 * chunks: one being sent and two read, or one read and one being read. */
#define AHEAD_MAX 2

struct download {
    pthread_mutex_t lock;
    int refs;                   /* the response's, and the read in flight's */
    int released;
    struct worker *worker;      /* ref: the key's */
    const struct stream_hooks *hooks; /* ref */
    struct kv_op op;            /* the read in flight (KV_OP_CHUNK) */
    char *key;                  /* owned */
    uint64_t first;             /* the value's bytes sent: [first, last] */
    struct chunks_span span;
    uint32_t next_n;            /* the next chunk to read */
    uint64_t next_pos;          /* ... and where its bytes go */
    struct piece sending;       /* the chunk being sent */
    struct piece ahead[AHEAD_MAX]; /* the chunks read ahead, in order */
    int nahead;
    struct piece flying;        /* the room of the read in flight */
    enum lkv_status st;
    void *conn;                 /* ref */
    void *parked;               /* conn, while it waits for the read */
};

static void landed(struct kv_op *op);

static void download_free(struct download *d)
{
    pthread_mutex_destroy(&d->lock);
    kv_op_free(&d->op);
    free(d->sending.data);
    for (int i = 0; i < d->nahead; i++)
        free(d->ahead[i].data);
    free(d->flying.data);
    free(d->key);
    free(d);
}

/* Under the lock: prepares the read of the next chunk if none is in flight
 * or waiting to be sent; 1 when the caller is to submit it. */
static int read_next(struct download *d)
{
    if (d->flying.data || d->nahead == AHEAD_MAX || d->st != LKV_OK || d->next_n > d->span.last ||
        d->released)
        return 0;
    uint32_t n = d->next_n;
    uint32_t from = n == d->span.first ? d->span.skip : 0;
    uint32_t to = n == d->span.last ? d->span.keep : CHUNKS_SIZE; /* exclusive */
    size_t len = to - from;
    d->flying.data = malloc(len > 0 ? len : 1);
    if (d->flying.data == NULL) {
        d->st = LKV_ENOMEM;
        return 0;
    }
    d->flying.len = len;
    d->flying.pos = d->next_pos;
    struct job *j = &d->op.job;
    j->chunk_io = CHUNK_GET;
    j->chunk_n = n;
    j->chunk_from = from;
    j->chunk_len = len;
    j->chunk_buf = d->flying.data;
    d->refs++;
    return 1;
}

static void submit(struct download *d)
{
    worker_submit(d->worker, &d->op);
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
    d->first = first;
    struct byte_range r = {.first = first, .last = last};
    chunks_span(&r, &d->span);
    d->next_n = d->span.first;
    d->op.kind = KV_OP_CHUNK;
    d->op.rec.key = d->key;
    d->op.rec.key_len = rec->key_len;
    d->op.chunk_partition = partition;
    d->op.job.chunk_set = rec->chunk_version;
    d->op.done = landed;
    d->op.arg = d;
    if (read_next(d))
        submit(d);
    return d;
}

void download_attach(struct download *d, void *conn)
{
    pthread_mutex_lock(&d->lock);
    d->conn = conn;
    pthread_mutex_unlock(&d->lock);
}

/* The read in flight has landed (the worker's thread, or the caller's when
 * the worker has stopped). */
static void landed(struct kv_op *op)
{
    struct download *d = op->arg;
    pthread_mutex_lock(&d->lock);
    if (op->st == LKV_OK && op->job.chunk_len == d->flying.len) {
        d->ahead[d->nahead++] = d->flying;
        d->next_pos += d->flying.len;
        d->next_n++;
    } else {
        /* LKV_ENOTFOUND: the set was collected; a short chunk: damaged */
        free(d->flying.data);
        if (d->st == LKV_OK)
            d->st = op->st == LKV_OK || op->st == LKV_ENOTFOUND ? LKV_EINTERNAL : op->st;
    }
    d->flying.data = NULL;
    int go = read_next(d);
    void *conn = d->parked;
    d->parked = NULL;
    int last = --d->refs == 0;
    pthread_mutex_unlock(&d->lock);
    if (conn)
        d->hooks->resume(conn);
    if (go)
        submit(d);
    else if (last)
        download_free(d);
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
            int go = read_next(d);
            pthread_mutex_unlock(&d->lock);
            if (go)
                submit(d);
            return (ssize_t)n;
        }
        if (s->data == NULL && d->nahead > 0) {
            *s = d->ahead[0];
            d->nahead--;
            memmove(&d->ahead[0], &d->ahead[1], (size_t)d->nahead * sizeof(d->ahead[0]));
            continue;
        }
        if (s->data) { /* a position outside the chunk being sent: a bug */
            d->st = LKV_EINTERNAL;
        }
        if (d->st != LKV_OK) {
            pthread_mutex_unlock(&d->lock);
            return -1;
        }
        int go = read_next(d);
        if (!go && d->flying.data == NULL) { /* nothing left to read: a bug */
            pthread_mutex_unlock(&d->lock);
            return -1;
        }
        d->hooks->suspend(d->conn);
        d->parked = d->conn;
        pthread_mutex_unlock(&d->lock);
        if (go)
            submit(d);
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
