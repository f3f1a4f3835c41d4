/*
 * upload.c -- a large value's body streamed to its master in chunks. See
 * upload.h; the storage side is in chunks.h.
 *
 * The lock guards what both threads touch: the chunk in flight, the
 * status, the parked connection and the references. The chunk being filled
 * is libmicrohttpd's thread's alone. A chunk is handed to the worker
 * outside the lock: worker_submit answers at once, on the caller's thread,
 * when the worker has stopped.
 */
#include "upload.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "chunks.h"
#include "kv.h"
#include "version.h"
#include "worker.h"

struct upload {
    pthread_mutex_t lock;
    int refs;                   /* the request's, and the chunk in flight's */
    int released;               /* the request is done with it */
    struct worker *worker;      /* ref: the key's */
    const struct stream_hooks *hooks; /* ref */
    struct kv_op op;            /* the chunk in flight (KV_OP_CHUNK) */
    char *key;                  /* owned */
    size_t key_len;
    uint64_t set;               /* the chunk set's name (chunks.h) */
    char *flying;               /* owned: the chunk in flight, or NULL */
    uint32_t sent;              /* chunks handed to the worker */
    enum lkv_status st;
    void *parked;               /* the suspended connection to wake */
    /* libmicrohttpd's thread only */
    char *fill;                 /* owned: CHUNKS_SIZE bytes of room, or NULL */
    size_t fill_len;
};

static void landed(struct kv_op *op);

static void upload_free(struct upload *up)
{
    pthread_mutex_destroy(&up->lock);
    kv_op_free(&up->op);
    free(up->flying);
    free(up->fill);
    free(up->key);
    free(up);
}

/* Drops a reference (under the lock); 1 when it was the last. */
static int unref(struct upload *up)
{
    return --up->refs == 0;
}

/* Describes the chunk in up->flying, chunk number n of len bytes, in the
 * op. Under the lock (or before anyone else sees up). */
static void prepare(struct upload *up, uint32_t n, size_t len)
{
    struct job *j = &up->op.job;
    j->chunk_io = CHUNK_PUT;
    j->chunk_set = up->set;
    j->chunk_n = n;
    j->chunk_data = up->flying;
    j->chunk_len = len;
    up->refs++;
}

static void submit(struct upload *up)
{
    worker_submit(up->worker, &up->op);
}

struct upload *upload_start(struct worker *w, const char *key, size_t key_len, int canonical,
                            char *first, const struct stream_hooks *hooks)
{
    struct upload *up = calloc(1, sizeof(*up));
    char *copy = malloc(key_len + 1);
    if (up == NULL || copy == NULL || pthread_mutex_init(&up->lock, NULL) != 0) {
        free(up);
        free(copy);
        free(first);
        return NULL;
    }
    memcpy(copy, key, key_len);
    copy[key_len] = '\0';
    up->key = copy;
    up->key_len = key_len;
    up->worker = w;
    up->hooks = hooks;
    up->refs = 1;
    up->st = LKV_OK;
    up->set = version_now_us();
    up->op.kind = KV_OP_CHUNK;
    up->op.canonical = canonical;
    up->op.rec.key = up->key;
    up->op.rec.key_len = key_len;
    up->op.done = landed;
    up->op.arg = up;
    up->flying = first;
    up->sent = 1;
    prepare(up, 0, CHUNKS_SIZE);
    submit(up);
    return up;
}

/* The chunk in flight has been written or has failed (the worker's thread,
 * or the caller's when the worker has stopped). */
static void landed(struct kv_op *op)
{
    struct upload *up = op->arg;
    pthread_mutex_lock(&up->lock);
    if (op->st == LKV_EPRECOND && op->job.chunk_n == 0 && !up->released) {
        /* Another upload of the key took this set's name in the same
         * microsecond: the set is renamed before it has a second chunk. */
        uint64_t now = version_now_us();
        up->set = now > up->set ? now : up->set + 1;
        up->op.job.chunk_set = up->set;
        pthread_mutex_unlock(&up->lock);
        submit(up);
        return;
    }
    if (op->st != LKV_OK && up->st == LKV_OK)
        up->st = op->st == LKV_EPRECOND ? LKV_EUNAVAIL : op->st;
    free(up->flying);
    up->flying = NULL;
    void *conn = up->parked;
    up->parked = NULL;
    int last = unref(up);
    pthread_mutex_unlock(&up->lock);
    if (conn)
        up->hooks->resume(conn);
    if (last)
        upload_free(up);
}

/* Hands the full chunk being filled to the worker if none is in flight.
 * 1 when it went (or the upload has failed: nothing is kept any more). */
static int send_fill(struct upload *up)
{
    pthread_mutex_lock(&up->lock);
    if (up->st != LKV_OK) {
        pthread_mutex_unlock(&up->lock);
        up->fill_len = 0;
        return 1;
    }
    if (up->flying) {
        pthread_mutex_unlock(&up->lock);
        return 0;
    }
    up->flying = up->fill;
    prepare(up, up->sent++, up->fill_len);
    pthread_mutex_unlock(&up->lock);
    up->fill = NULL;
    up->fill_len = 0;
    submit(up);
    return 1;
}

size_t upload_feed(struct upload *up, const char *data, size_t len)
{
    size_t taken = 0;
    while (taken < len) {
        if (up->fill_len == CHUNKS_SIZE && !send_fill(up))
            return taken; /* both chunks taken: the caller parks */
        if (upload_status(up) != LKV_OK)
            return len; /* discarded: the answer is the failure */
        if (up->fill == NULL && (up->fill = malloc(CHUNKS_SIZE)) == NULL) {
            pthread_mutex_lock(&up->lock);
            if (up->st == LKV_OK)
                up->st = LKV_ENOMEM;
            pthread_mutex_unlock(&up->lock);
            return len;
        }
        size_t n = CHUNKS_SIZE - up->fill_len;
        if (n > len - taken)
            n = len - taken;
        memcpy(up->fill + up->fill_len, data + taken, n);
        up->fill_len += n;
        taken += n;
    }
    return taken;
}

int upload_finish(struct upload *up)
{
    if (up->fill_len > 0 && !send_fill(up))
        return 0;
    pthread_mutex_lock(&up->lock);
    int over = up->flying == NULL || up->st != LKV_OK;
    pthread_mutex_unlock(&up->lock);
    return over && up->fill_len == 0;
}

int upload_park(struct upload *up, void *conn)
{
    pthread_mutex_lock(&up->lock);
    int parked = up->flying != NULL && up->st == LKV_OK;
    if (parked)
        up->parked = conn;
    pthread_mutex_unlock(&up->lock);
    return parked;
}

enum lkv_status upload_status(struct upload *up)
{
    pthread_mutex_lock(&up->lock);
    enum lkv_status st = up->st;
    pthread_mutex_unlock(&up->lock);
    return st;
}

uint64_t upload_set(const struct upload *up)
{
    return up->set;
}

uint32_t upload_chunks(const struct upload *up)
{
    return up->sent;
}

void upload_release(struct upload *up)
{
    if (up == NULL)
        return;
    pthread_mutex_lock(&up->lock);
    up->released = 1;
    up->parked = NULL;
    int last = unref(up);
    pthread_mutex_unlock(&up->lock);
    if (last)
        upload_free(up);
}
