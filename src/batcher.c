/*
 * batcher.c -- group concurrent statements of a partition. See batcher.h.
 */
#include "batcher.h"

#include <stdlib.h>
#include <string.h>

#include "config.h"

struct batch_job {
    struct record *rec;   /* ref: the caller's (read: key in, row out) */
    enum lkv_status st;
    int done;             /* answered (by whoever ran the statement) */
    int fault;            /* the partition failed: back off as its runner did */
    pthread_cond_t wake;  /* signalled when done, or to take the lead */
    struct batch_job *next;
};

/* Runs one statement on c for jobs[0..n), filling each job's st. */
typedef void (*batch_run_fn)(struct pconn *c, struct batch_job **jobs, int n);

_Static_assert(CONFIG_MAX_BATCH <= STORE_MANY_MAX, "[server] batches fit a statement");

int batcher_init(struct batcher *b, int max, size_t max_bytes)
{
    memset(b, 0, sizeof(*b));
    b->max_bytes = max_bytes;
    b->max = max < 1 ? 1 : max > STORE_MANY_MAX ? STORE_MANY_MAX : max;
    return pthread_mutex_init(&b->lock, NULL) == 0 ? 0 : -1;
}

void batcher_destroy(struct batcher *b)
{
    pthread_mutex_destroy(&b->lock);
}

/* Queues job (on its caller's stack: it leaves the queue before the caller
 * returns, taken by whoever runs its statement). Under b->lock. */
static void enqueue(struct batcher *b, struct batch_job *job)
{
    if (b->tail)
        b->tail->next = job;
    else
        b->head = job;
    b->tail = job;
}

/* Moves up to b->max queued jobs (and b->max_bytes) into jobs. Under
 * b->lock. */
static int take_batch(struct batcher *b, struct batch_job **jobs)
{
    int n = 0;
    size_t bytes = 0;
    while (b->head && n < b->max) {
        size_t len = b->head->rec->value_len;
        if (b->max_bytes && n > 0 && bytes + len > b->max_bytes)
            break;
        bytes += len;
        jobs[n++] = b->head;
        b->head = b->head->next;
    }
    if (b->head == NULL)
        b->tail = NULL;
    return n;
}

/* Marks job answered and wakes its thread (unless it is self, the caller).
 * Under b->lock. */
static void answer(struct batch_job *job, enum lkv_status st, int fault, struct batch_job *self)
{
    job->st = st;
    job->fault = fault;
    job->done = 1;
    if (job != self)
        pthread_cond_signal(&job->wake);
}

/* Runs the statement for jobs, taken by this thread, then answers them:
 * entered and left with b->lock held, released meanwhile. */
static void run_and_answer(struct batcher *b, struct pconn *c, batch_run_fn run,
                           struct batch_job **jobs, int n, struct batch_job *self)
{
    b->running = 1;
    pthread_mutex_unlock(&b->lock);
    run(c, jobs, n);
    int fault = n > 0 && jobs[0]->st == LKV_EUNAVAIL && pconn_backing_off(c);
    pthread_mutex_lock(&b->lock);
    b->running = 0;
    for (int i = 0; i < n; i++)
        answer(jobs[i], jobs[i]->st, fault, self);
    if (fault) {
        /* The partition is down or hung: the requests queued meanwhile
         * would wait a timeout each for the same answer. */
        while (b->head) {
            struct batch_job *job = b->head;
            b->head = job->next;
            answer(job, LKV_EUNAVAIL, 1, self);
        }
        b->tail = NULL;
    } else if (b->head) {
        /* Requests queued meanwhile: the first of them runs the next one. */
        pthread_cond_signal(&b->head->wake);
    }
}

/* Queues a job for rec and returns its answer once some thread, perhaps
 * this one, has run a statement for it. */
static enum lkv_status submit(struct batcher *b, struct pconn *c, batch_run_fn run,
                              struct record *rec, int *statements)
{
    struct batch_job self = {.rec = rec, .st = LKV_EINTERNAL};
    *statements = 1;
    if (pthread_cond_init(&self.wake, NULL) != 0) {
        struct batch_job *alone = &self;
        run(c, &alone, 1);
        return self.st;
    }
    *statements = 0;

    pthread_mutex_lock(&b->lock);
    enqueue(b, &self);
    while (!self.done) {
        if (b->running) {
            pthread_cond_wait(&self.wake, &b->lock);
            continue;
        }
        /* No statement in flight: this thread runs one for the first
         * requests queued, its own among them unless more than b->max were
         * queued before it (then it goes round again). */
        struct batch_job *jobs[STORE_MANY_MAX];
        int n = take_batch(b, jobs);
        run_and_answer(b, c, run, jobs, n, &self);
        ++*statements;
    }
    pthread_mutex_unlock(&b->lock);
    pthread_cond_destroy(&self.wake);
    if (self.fault && *statements == 0)
        pconn_share_fault(c);
    return self.st;
}

/* ---- the two kinds -------------------------------------------------------- */

static void run_get(struct pconn *c, struct batch_job **jobs, int n)
{
    size_t largest = 0;
    if (n == 1) {
        struct record *r = jobs[0]->rec;
        jobs[0]->st = store_get(c, r->key, r->key_len, 1, r);
        largest = r->value_len;
    } else {
        struct record rec[STORE_MANY_MAX];
        enum lkv_status st[STORE_MANY_MAX];
        for (int i = 0; i < n; i++)
            rec[i] = *jobs[i]->rec;
        store_get_many(c, rec, st, n);
        for (int i = 0; i < n; i++) {
            *jobs[i]->rec = rec[i];
            jobs[i]->st = st[i];
            if (st[i] == LKV_OK && rec[i].value_len > largest)
                largest = rec[i].value_len;
        }
    }
    pconn_after_transfer(c, largest);
}

static int by_key(const void *a, const void *b)
{
    const struct record *x = *(const struct record *const *)a;
    const struct record *y = *(const struct record *const *)b;
    int d = memcmp(x->key, y->key, x->key_len < y->key_len ? x->key_len : y->key_len);
    return d ? d : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

static void run_apply(struct pconn *c, struct batch_job **jobs, int n)
{
    const struct record *rec[STORE_MANY_MAX] = {0};
    size_t bytes = 0;
    for (int i = 0; i < n; i++) {
        rec[i] = jobs[i]->rec;
        bytes += rec[i]->value_len;
    }
    /* Rows locked in key order, and a retry when InnoDB still picks this
     * statement as a deadlock victim (a sync transaction locks in its own
     * order): a copy lost here would only wait for the next sync pass, but
     * the client was promised every reachable partition. */
    qsort(rec, (size_t)n, sizeof(const struct record *), by_key);
    enum lkv_status st;
    int attempt = 0;
    do
        st = store_apply_many(c, rec, n);
    while (st == LKV_EUNAVAIL && pconn_retry_deadlock(c, attempt++));
    for (int i = 0; i < n; i++)
        jobs[i]->st = st;
    pconn_after_transfer(c, bytes);
}

enum lkv_status batcher_get(struct batcher *b, struct pconn *c, struct record *rec,
                            int *statements)
{
    return submit(b, c, run_get, rec, statements);
}

enum lkv_status batcher_apply(struct batcher *b, struct pconn *c, const struct record *rec,
                              int *statements)
{
    /* The job's record is only read by run_apply. */
    return submit(b, c, run_apply, (struct record *)rec, statements);
}
