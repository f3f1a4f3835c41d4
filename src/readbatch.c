/*
 * readbatch.c -- group reads of a partition into one statement. See
 * readbatch.h.
 */
#include "readbatch.h"

#include <string.h>

#include "config.h"

struct read_job {
    struct record *rec;   /* ref: the caller's; key in, row out */
    enum lkv_status st;
    int done;             /* answered (by whoever ran the statement) */
    int fault;            /* the partition failed: back off as its runner did */
    pthread_cond_t wake;  /* signalled when done, or to take the lead */
    struct read_job *next;
};

_Static_assert(CONFIG_MAX_READ_BATCH <= STORE_GET_MANY_MAX, "[server] read_batch fits a statement");

int read_batcher_init(struct read_batcher *b, int max)
{
    memset(b, 0, sizeof(*b));
    b->max = max < 1 ? 1 : max > STORE_GET_MANY_MAX ? STORE_GET_MANY_MAX : max;
    return pthread_mutex_init(&b->lock, NULL) == 0 ? 0 : -1;
}

void read_batcher_destroy(struct read_batcher *b)
{
    pthread_mutex_destroy(&b->lock);
}

/* Queues job (on its caller's stack: it leaves the queue before the caller
 * returns, taken by whoever runs its statement). Under b->lock. */
static void enqueue(struct read_batcher *b, struct read_job *job)
{
    if (b->tail)
        b->tail->next = job;
    else
        b->head = job;
    b->tail = job;
}

/* Moves up to b->max queued jobs into batch. Under b->lock. */
static int take_batch(struct read_batcher *b, struct read_job **batch)
{
    int n = 0;
    while (b->head && n < b->max) {
        batch[n++] = b->head;
        b->head = b->head->next;
    }
    if (b->head == NULL)
        b->tail = NULL;
    return n;
}

/* Runs the statement for batch on c, without b->lock held. */
static void run_batch(struct pconn *c, struct read_job **batch, int n)
{
    struct record rec[STORE_GET_MANY_MAX];
    enum lkv_status st[STORE_GET_MANY_MAX];
    size_t largest = 0;
    if (n == 1) {
        batch[0]->st = store_get(c, batch[0]->rec->key, batch[0]->rec->key_len, 1, batch[0]->rec);
        largest = batch[0]->rec->value_len;
    } else {
        for (int i = 0; i < n; i++)
            rec[i] = *batch[i]->rec;
        store_get_many(c, rec, st, n);
        for (int i = 0; i < n; i++) {
            *batch[i]->rec = rec[i];
            batch[i]->st = st[i];
            if (st[i] == LKV_OK && rec[i].value_len > largest)
                largest = rec[i].value_len;
        }
    }
    pconn_after_transfer(c, largest);
}

/* Marks job answered and wakes its thread (unless it is self, the caller).
 * Under b->lock. */
static void answer(struct read_job *job, enum lkv_status st, int fault, struct read_job *self)
{
    job->st = st;
    job->fault = fault;
    job->done = 1;
    if (job != self)
        pthread_cond_signal(&job->wake);
}

enum lkv_status read_batcher_get(struct read_batcher *b, struct pconn *c, struct record *rec,
                                 int *statements)
{
    struct read_job self = {.rec = rec, .st = LKV_EINTERNAL};
    *statements = 1;
    if (pthread_cond_init(&self.wake, NULL) != 0)
        return store_get(c, rec->key, rec->key_len, 1, rec);
    *statements = 0;

    pthread_mutex_lock(&b->lock);
    enqueue(b, &self);
    while (!self.done) {
        if (b->running) {
            pthread_cond_wait(&self.wake, &b->lock);
            continue;
        }
        /* No statement in flight: this thread runs one for the first
         * reads queued, its own among them unless more than b->max were
         * queued before it (then it goes round again). */
        struct read_job *batch[STORE_GET_MANY_MAX];
        int n = take_batch(b, batch);
        b->running = 1;
        pthread_mutex_unlock(&b->lock);
        run_batch(c, batch, n);
        ++*statements;
        int fault = n > 0 && batch[0]->st == LKV_EUNAVAIL && pconn_backing_off(c);
        pthread_mutex_lock(&b->lock);
        b->running = 0;
        for (int i = 0; i < n; i++)
            answer(batch[i], batch[i]->st, fault, &self);
        if (fault) {
            /* The partition is down or hung: the reads queued meanwhile
             * would wait a timeout each for the same answer. */
            while (b->head) {
                struct read_job *job = b->head;
                b->head = job->next;
                answer(job, LKV_EUNAVAIL, 1, &self);
            }
            b->tail = NULL;
        } else if (b->head) {
            /* Reads queued meanwhile: the first of them runs the next one. */
            pthread_cond_signal(&b->head->wake);
        }
    }
    pthread_mutex_unlock(&b->lock);
    pthread_cond_destroy(&self.wake);
    if (self.fault && *statements == 0)
        pconn_share_fault(c);
    return self.st;
}
