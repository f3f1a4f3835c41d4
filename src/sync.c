/*
 * sync.c -- one replication pass. See sync.h for the invariants.
 */
#include "sync.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "partition.h"
#include "syncq.h"
#include "version.h"

/* At most this many stamp (and as many expiry) transactions per source per
 * pass, so a pass under a constant stream of writes still ends; what is
 * left goes to the next. */
#define MAX_STAMP_ROUNDS 10000
#define PURGE_LIMIT 1000

struct node {
    struct pconn conn;                    /* used by one thread at a time */
    atomic_int up;                        /* reachable for this pass */
    int locked;                           /* holds the pass lock */
    char id[STORE_NODE_ID_MAX + 1];       /* node id (sync source identity) */
};

struct pass {
    const struct lkv_config *cfg;
    const struct sync_options *opt;
    const struct store_sql *sql;          /* ref: statement texts */
    struct node *node;                    /* owned: one per partition */
    int n;
    char lock_name[160];
    struct position *wm;                  /* owned: wm[t * n + s], how far t has applied s;
                                             row t is applier t's own once it runs */
    struct position *start;               /* owned: per source, where its reader starts */
    struct syncq *q;                      /* owned: per source */
    pthread_mutex_t mu;                   /* guards every queue */
    pthread_cond_t cv;
    atomic_int broken;                    /* a thread could not start or ran out of memory */
    uint64_t rows, bytes, purged;
};

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static int stopping(const struct pass *p)
{
    return p->opt->stop && *p->opt->stop;
}

/* Marks partition i down (once), naming the failure seen on conn. */
static void mark_down_on(struct pass *p, int i, const struct pconn *conn, const char *doing)
{
    if (atomic_exchange(&p->node[i].up, 0) == 0)
        return;
    fprintf(stderr, "lazykv-sync: partition %d (%s) unreachable while %s: %s\n", i,
            p->cfg->part[i].name, doing, conn->last_error);
}

static void mark_down(struct pass *p, int i, const char *doing)
{
    mark_down_on(p, i, &p->node[i].conn, doing);
}

/* Connects to every partition (marking the unreachable ones down). -1,
 * said in one line on stderr, when a reachable partition's table has an
 * earlier schema: the statements of a pass need the current one. */
static int connect_all(struct pass *p, const struct store_sql *sql)
{
    for (int i = 0; i < p->n; i++) {
        struct node *nd = &p->node[i];
        pconn_init(&nd->conn, p->cfg, i, (const char *const *)sql->text, sql->count);
        nd->up = 1;
        int old = 0;
        if (store_node_id(&nd->conn, nd->id) != LKV_OK) {
            if (nd->conn.last_error[0] == '\0')
                snprintf(nd->conn.last_error, sizeof(nd->conn.last_error),
                         "no node id (run lazykv-admin init)");
            mark_down(p, i, "connecting");
        } else if (store_check_schema(&nd->conn, p->cfg->table_name, &old) != LKV_OK) {
            mark_down(p, i, "checking its schema");
        } else if (old) {
            fprintf(stderr,
                    "lazykv-sync: partition %d (%s): table %s is of an earlier schema"
                    " (no chunk_version column):"
                    " run lazykv-admin init to upgrade\n",
                    i, p->cfg->part[i].name, p->cfg->table_name);
            return -1;
        }
    }
    return 0;
}

/* Takes the pass lock on every reachable partition. 0, or -1 when another
 * pass holds it somewhere. */
static int lock_all(struct pass *p)
{
    for (int i = 0; i < p->n; i++) {
        struct node *nd = &p->node[i];
        int got = 0;
        if (!nd->up)
            continue;
        if (store_named_lock(&nd->conn, p->lock_name, &got) != LKV_OK) {
            mark_down(p, i, "locking");
            continue;
        }
        if (!got)
            return -1;
        nd->locked = 1;
    }
    return 0;
}

static void unlock_and_close(struct pass *p)
{
    for (int i = 0; i < p->n; i++) {
        struct node *nd = &p->node[i];
        if (nd->locked && nd->up)
            store_named_unlock(&nd->conn, p->lock_name);
        pconn_close(&nd->conn);
    }
}


/* ---- the sources' readers ------------------------------------------------ */

struct thread {
    struct pass *p;
    int index;                            /* the source (reader) or target (applier) */
    uint64_t rows, bytes;                 /* applier: copied to this target */
    pthread_t id;
    int started;
};

/* Turns the rows of partition i that have expired into tombstones, in
 * statements of batch_size rows, through c. Every partition does it to its
 * own rows: one that holds the same row makes the same tombstone, so
 * nothing waits for the row's origin to be reachable. Marks i down on
 * failure. */
static void expire_partition(struct pass *p, int i, struct pconn *c)
{
    uint64_t now = version_now_us(), total = 0;
    for (int round = 0; round < MAX_STAMP_ROUNDS && !stopping(p); round++) {
        uint64_t expired = 0;
        if (store_expire(c, now, p->cfg->sync_batch_size, &expired) != LKV_OK) {
            mark_down_on(p, i, c, "expiring rows");
            return;
        }
        total += expired;
        if (expired < (uint64_t)p->cfg->sync_batch_size)
            break;
    }
    if (p->opt->verbose && total > 0)
        fprintf(p->opt->out, "sync: %d: expired rows=%" PRIu64 "\n", i, total);
}

/* Turns partition i's expired rows into tombstones, then gives every
 * pending row an epoch, batch_size rows per epoch (the reads skip at most
 * one epoch's rows before their position): the new tombstones go out in
 * this pass. Marks i down on failure. */
static void stamp_partition(struct pass *p, int i, struct pconn *c)
{
    uint64_t t0 = now_ms(), total = 0;
    expire_partition(p, i, c);
    for (int round = 0; atomic_load(&p->node[i].up) && round < MAX_STAMP_ROUNDS && !stopping(p);
         round++) {
        uint64_t stamped = 0;
        if (store_stamp(c, p->cfg->sync_batch_size, &stamped) != LKV_OK) {
            mark_down_on(p, i, c, "stamping changes");
            break;
        }
        total += stamped;
        if (stamped < (uint64_t)p->cfg->sync_batch_size)
            break;
    }
    if (p->opt->verbose && total > 0)
        fprintf(p->opt->out, "sync: %d: stamped rows=%" PRIu64 " ms=%" PRIu64 "\n", i, total,
                now_ms() - t0);
}

/* The row limit of the next read: batch_size, unless the last read was cut
 * by batch_bytes after n rows: then a little more than n. The server sends
 * every row up to the limit, and the client reads what it does not keep to
 * reach the next statement: with large values a full batch_size would
 * carry far more than batch_bytes for nothing. */
static int next_limit(const struct pass *p, const struct batch *b, int limit)
{
    int most = p->cfg->sync_batch_size;
    if ((long long)b->bytes >= p->cfg->sync_batch_bytes)
        limit = (int)b->n + 1 + (int)b->n / 4;
    else if (b->n >= (size_t)limit)
        limit *= 2;
    return limit < most ? limit : most;
}

/* Reads source s's changes from p->start[s] into its queue until there are
 * none left, the source fails, every target has left, or the pass stops. */
static void read_source(struct pass *p, int s, struct pconn *c)
{
    struct syncq *q = &p->q[s];
    struct position pos = p->start[s];
    int limit = p->cfg->sync_batch_size;
    for (;;) {
        pthread_mutex_lock(&p->mu);
        struct batch *b = syncq_reserve(q);
        pthread_mutex_unlock(&p->mu);
        if (b == NULL || stopping(p) || !atomic_load(&p->node[s].up))
            return;
        int more = 0;
        enum lkv_status st = store_read_changes(c, &pos, limit, p->cfg->sync_batch_bytes, b,
                                                &more);
        if (st != LKV_OK) {
            if (st == LKV_ENOMEM)
                snprintf(c->last_error, sizeof(c->last_error), "out of memory");
            mark_down_on(p, s, c, "reading changes");
            return;
        }
        if (b->n == 0)
            return;
        position_set(&pos, b, b->n - 1);
        limit = next_limit(p, b, limit);
        if (p->opt->verbose)
            fprintf(p->opt->out, "sync: %d: read rows=%zu bytes=%zu up to seq=%" PRIu64 "\n",
                    s, b->n, b->bytes, pos.seq);
        pthread_mutex_lock(&p->mu);
        syncq_publish(q);
        pthread_mutex_unlock(&p->mu);
        if (!more)
            return; /* the source has nothing more */
    }
}

/* A source's reader: stamps the source, then feeds its queue, with a
 * connection of its own (the partition's main one applies copies to it
 * meanwhile). Ends the queue whatever happens. */
static void *reader_main(void *arg)
{
    struct thread *th = arg;
    struct pass *p = th->p;
    int s = th->index;
    struct pconn c;
    mysql_thread_init();
    pconn_init(&c, p->cfg, s, (const char *const *)p->sql->text, p->sql->count);
    if (!p->opt->dry_run)
        stamp_partition(p, s, &c); /* on failure, marks s down: nothing is read */
    if (atomic_load(&p->node[s].up))
        read_source(p, s, &c);
    pthread_mutex_lock(&p->mu);
    syncq_end(&p->q[s]);
    pthread_mutex_unlock(&p->mu);
    pconn_close(&c);
    mysql_thread_end();
    return NULL;
}

/* ---- the targets' appliers ----------------------------------------------- */

/* What an applier did for one source. */
struct pair {
    enum { PAIR_NONE, PAIR_ACTIVE, PAIR_OVER, PAIR_SHOWN } state;
    uint64_t rows, bytes;
    struct pconn source;        /* the applier's own connection to the source,
                                   for large values' chunks (opened on need) */
    int source_open;
};

/* Copies to t the chunks of b's chunked rows after from (chunks.h), before
 * the batch's transaction applies them: each is applied only with its set
 * whole there. 0, or -1 when t failed (marked down). */
static int copy_chunks(struct pass *p, int s, int t, const struct batch *b, size_t from,
                       struct pair *pr)
{
    for (size_t i = from; i < b->n; i++) {
        if (!record_chunked(&b->rec[i]))
            continue;
        if (!pr->source_open) {
            pconn_init(&pr->source, p->cfg, s, (const char *const *)p->sql->text,
                       p->sql->count);
            pr->source_open = 1;
        }
        int skipped;
        pr->source.last_error[0] = '\0';
        enum lkv_status st = store_copy_chunks(&pr->source, &p->node[t].conn, &b->rec[i],
                                               &skipped);
        if (st != LKV_OK) {
            /* the source's fault is named when it has one */
            const struct pconn *c = pr->source.last_error[0] ? &pr->source : &p->node[t].conn;
            mark_down_on(p, t, c, "copying the chunks of a large value");
            return -1;
        }
    }
    return 0;
}

/* Under p->mu: the batch of the next source that has one ready for target
 * t, starting after *last (round robin), or NULL when none has yet; *src is
 * its source. Sources whose stream is over for t become PAIR_OVER. */
static const struct batch *pick_batch(struct pass *p, int t, struct pair *pr, int *last, int *src)
{
    for (int k = 1; k <= p->n; k++) {
        int s = (*last + k) % p->n, over = 0;
        if (pr[s].state != PAIR_ACTIVE)
            continue;
        const struct batch *b = syncq_peek(&p->q[s], t, &over);
        if (b != NULL) {
            *last = *src = s;
            return b;
        }
        if (over)
            pr[s].state = PAIR_OVER;
    }
    return NULL;
}

/* Waits until target t has a batch (returned, with its source in *src), a
 * stream ended for t (NULL: the caller reports it and asks again), every
 * stream is over for t or the pass stops (NULL, *src = -1). */
static const struct batch *next_batch(struct pass *p, int t, struct pair *pr, int *last, int *src)
{
    const struct batch *b = NULL;
    *src = -1;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        int active = 0, over = 0;
        if (!stopping(p))
            b = pick_batch(p, t, pr, last, src);
        for (int s = 0; s < p->n; s++) {
            active += pr[s].state == PAIR_ACTIVE;
            over += pr[s].state == PAIR_OVER;
        }
        if (b != NULL || stopping(p) || active == 0)
            break;
        if (over > 0) {
            *src = -2; /* the caller reports, then asks again */
            break;
        }
        pthread_cond_wait(&p->cv, &p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return b;
}

/* Prints the line of each pair into target t that is over (all of them
 * that are not yet shown, with all). */
static void show_pairs(struct pass *p, int t, struct pair *pr, uint64_t t0, int all)
{
    for (int s = 0; s < p->n; s++) {
        if (pr[s].state == PAIR_OVER || (all && pr[s].state == PAIR_ACTIVE)) {
            fprintf(p->opt->out,
                    "sync: %d -> %d: rows=%" PRIu64 " bytes=%" PRIu64 " ms=%" PRIu64 "%s\n", s, t,
                    pr[s].rows, pr[s].bytes, now_ms() - t0,
                    p->opt->dry_run ? " (dry run: would copy)" : "");
            pr[s].state = PAIR_SHOWN;
        }
    }
}

/* Applies batch b of source s at target t: the rows after t's position
 * for s. 0, or -1 when t failed (marked down). */
static int apply_one(struct pass *p, int s, int t, const struct batch *b, struct pair *pr)
{
    struct position *wm = &p->wm[t * p->n + s];
    size_t from = 0;
    while (from < b->n && position_covers(wm, b->seq[from], b->rec[from].key,
                                          b->rec[from].key_len))
        from++;
    if (from == b->n)
        return 0; /* t had these already */
    if (!p->opt->dry_run && copy_chunks(p, s, t, b, from, pr) != 0)
        return -1;
    if (!p->opt->dry_run) {
        enum lkv_status st = store_apply_batch(&p->node[t].conn, b, from, p->node[s].id);
        if (st != LKV_OK) {
            if (st == LKV_ENOMEM)
                snprintf(p->node[t].conn.last_error, sizeof(p->node[t].conn.last_error),
                         "out of memory");
            mark_down(p, t, "applying changes");
            return -1;
        }
    }
    uint64_t bytes = 0;
    for (size_t i = from; i < b->n; i++)
        bytes += b->rec[i].key_len + b->rec[i].value_len;
    pr->rows += b->n - from;
    pr->bytes += bytes;
    position_set(wm, b, b->n - 1);
    if (p->opt->verbose)
        fprintf(p->opt->out, "sync: %d -> %d: batch rows=%zu bytes=%" PRIu64 " up to seq=%" PRIu64
                             "\n", s, t, b->n - from, bytes, wm->seq);
    return 0;
}

/* Applies, at target t, the batches of every source as they come, until
 * every stream is over for t, t fails or the pass stops. */
static void apply_target(struct pass *p, int t, struct pair *pr, uint64_t t0)
{
    int last = t;
    for (;;) {
        int s;
        const struct batch *b = next_batch(p, t, pr, &last, &s);
        show_pairs(p, t, pr, t0, 0);
        if (b == NULL && s == -2)
            continue;
        if (b == NULL)
            return;
        /* t's own reader marks it down when t fails under it */
        int failed = !atomic_load(&p->node[t].up) || apply_one(p, s, t, b, &pr[s]) != 0;
        pthread_mutex_lock(&p->mu);
        syncq_release(&p->q[s], t);
        pthread_mutex_unlock(&p->mu);
        if (failed)
            return;
    }
}

/* A target's applier, on the partition's main connection. Leaves every
 * queue when it ends, whatever happens, and prints a line per source. */
static void *applier_main(void *arg)
{
    struct thread *th = arg;
    struct pass *p = th->p;
    int t = th->index;
    uint64_t t0 = now_ms();
    struct pair *pr = calloc((size_t)p->n, sizeof(*pr));
    mysql_thread_init();
    if (pr == NULL) {
        atomic_store(&p->broken, 1);
        log_error("out of memory: nothing copied to partition %d", t);
    } else {
        pthread_mutex_lock(&p->mu);
        for (int s = 0; s < p->n; s++)
            if (s != t && (p->q[s].consumers >> t & 1))
                pr[s].state = PAIR_ACTIVE;
        pthread_mutex_unlock(&p->mu);
        apply_target(p, t, pr, t0);
    }
    pthread_mutex_lock(&p->mu);
    for (int s = 0; s < p->n; s++)
        if (s != t)
            syncq_leave(&p->q[s], t);
    pthread_mutex_unlock(&p->mu);
    if (pr) {
        show_pairs(p, t, pr, t0, 1);
        for (int s = 0; s < p->n; s++) {
            th->rows += pr[s].rows;
            th->bytes += pr[s].bytes;
            if (pr[s].source_open)
                pconn_close(&pr[s].source);
        }
    }
    free(pr);
    mysql_thread_end();
    return NULL;
}

/* ---- the pass --------------------------------------------------------------- */

/* Reads how far every reachable target has applied every other partition
 * (a target that fails is marked down), and where each source's reader
 * starts: the lowest position among its targets. */
static void read_positions(struct pass *p)
{
    int n = p->n;
    for (int t = 0; t < n; t++) {
        for (int s = 0; s < n && atomic_load(&p->node[t].up); s++) {
            if (s != t && store_watermark(&p->node[t].conn, p->node[s].id, &p->wm[t * n + s]) !=
                              LKV_OK)
                mark_down(p, t, "reading its sync position");
        }
    }
    for (int s = 0; s < n; s++) {
        int first = 1;
        for (int t = 0; t < n; t++) {
            const struct position *w = &p->wm[t * n + s];
            if (t == s || !atomic_load(&p->node[t].up))
                continue;
            if (first || position_covers(&p->start[s], w->seq, w->key, w->key_len))
                p->start[s] = *w;
            first = 0;
        }
    }
}

/* Sets up source s's queue: every other reachable partition takes it. */
static void init_queue(struct pass *p, int s)
{
    uint64_t consumers = 0;
    for (int t = 0; t < p->n; t++)
        if (t != s && atomic_load(&p->node[t].up) && atomic_load(&p->node[s].up))
            consumers |= (uint64_t)1 << t;
    syncq_init(&p->q[s], &p->mu, &p->cv, consumers);
}

/* Starts fn on th; a thread that cannot start is said and counted, and
 * undo() makes sure nobody waits for it. */
static void start_thread(struct pass *p, struct thread *th, void *(*fn)(void *),
                         void (*undo)(struct pass *, int))
{
    th->started = pthread_create(&th->id, NULL, fn, th) == 0;
    if (th->started)
        return;
    log_error("cannot start a thread for partition %d", th->index);
    atomic_store(&p->broken, 1);
    pthread_mutex_lock(&p->mu);
    undo(p, th->index);
    pthread_mutex_unlock(&p->mu);
}

static void end_queue(struct pass *p, int s)
{
    syncq_end(&p->q[s]);
}

static void leave_queues(struct pass *p, int t)
{
    for (int s = 0; s < p->n; s++)
        if (s != t)
            syncq_leave(&p->q[s], t);
}

/* Runs the readers and appliers of every reachable partition and waits
 * for them; adds up what they copied. */
static void run_pipeline(struct pass *p)
{
    struct thread *th = calloc((size_t)p->n * 2, sizeof(*th));
    if (th == NULL) {
        atomic_store(&p->broken, 1);
        log_error("out of memory: nothing copied");
        return;
    }
    for (int i = 0; i < p->n; i++)
        init_queue(p, i);
    for (int i = 0; i < p->n; i++) {
        struct thread *r = &th[i], *a = &th[p->n + i];
        *r = (struct thread){.p = p, .index = i};
        *a = (struct thread){.p = p, .index = i};
        if (atomic_load(&p->node[i].up)) {
            start_thread(p, a, applier_main, leave_queues);
            start_thread(p, r, reader_main, end_queue);
        } else {
            end_queue(p, i);
        }
    }
    for (int i = 0; i < p->n * 2; i++) {
        if (th[i].started)
            pthread_join(th[i].id, NULL);
        p->rows += th[i].rows;
        p->bytes += th[i].bytes;
    }
    for (int i = 0; i < p->n; i++)
        syncq_free(&p->q[i]);
    free(th);
}

/* Purges source s's old tombstones that every other partition has applied. */
static void purge_source(struct pass *p, int s, uint64_t before)
{
    struct position *wm = calloc((size_t)p->n, sizeof(*wm));
    struct batch b;
    memset(&b, 0, sizeof(b));
    if (wm == NULL)
        return;
    for (int t = 0; t < p->n; t++) {
        if (t != s && store_watermark(&p->node[t].conn, p->node[s].id, &wm[t]) != LKV_OK)
            goto out; /* purging waits for a pass where all is well */
    }
    if (store_tombstones(&p->node[s].conn, before, PURGE_LIMIT, &b) != LKV_OK)
        goto out;
    for (size_t i = 0; i < b.n; i++) {
        const struct record *r = &b.rec[i];
        int everywhere = 1;
        for (int t = 0; t < p->n && everywhere; t++)
            everywhere = t == s || position_covers(&wm[t], b.seq[i], r->key, r->key_len);
        if (!everywhere)
            continue;
        /* The origin last: if this stops half-way, the origin's tombstone
         * is still there and the next pass purges the rest. */
        for (int t = 0; t <= p->n; t++) {
            int target = t < p->n ? (t == s ? -1 : t) : s;
            if (target >= 0 && store_purge(&p->node[target].conn, r->key, r->key_len, r->version) != LKV_OK)
                goto out;
        }
        p->purged++;
    }
out:
    batch_free(&b);
    free(wm);
}

static void purge_all(struct pass *p)
{
    for (int i = 0; i < p->n; i++)
        if (!p->node[i].up)
            return;
    uint64_t now = version_now_us(), grace = (uint64_t)p->cfg->tombstone_grace * 1000000u;
    uint64_t before = now > grace ? now - grace : 0;
    for (int s = 0; s < p->n && !stopping(p); s++)
        purge_source(p, s, before);
}

/* The collector of large values' chunk sets (chunks.h), at each reachable
 * partition: the last step of a pass, so that it never meets the pass's
 * own copies (passes are exclusive: the named lock). */
static void collect_all(struct pass *p)
{
    for (int i = 0; i < p->n && !stopping(p); i++) {
        uint64_t sets = 0;
        if (!p->node[i].up)
            continue;
        if (store_collect_chunks(&p->node[i].conn, p->cfg->chunk_grace, &sets) != LKV_OK) {
            mark_down(p, i, "collecting unused chunks");
            continue;
        }
        if (sets > 0 || p->opt->verbose)
            fprintf(p->opt->out, "sync: partition %d: collected %" PRIu64 " unused chunk sets\n",
                    i, sets);
    }
}

/* The changes still waiting for a pass on the reachable partitions, and
 * the age of the oldest, in ms. */
static void pending(struct pass *p, uint64_t *backlog, uint64_t *lag)
{
    uint64_t oldest = 0;
    *backlog = 0;
    for (int i = 0; i < p->n; i++) {
        uint64_t rows = 0, v = 0;
        if (!p->node[i].up || store_pending(&p->node[i].conn, &rows, &v) != LKV_OK)
            continue;
        *backlog += rows;
        if (v && (oldest == 0 || v < oldest))
            oldest = v;
    }
    uint64_t now = version_now_us();
    *lag = oldest && oldest < now ? (now - oldest) / 1000u : 0;
}

/* Allocates what a pass of n partitions needs. 0 or -1. */
static int pass_alloc(struct pass *p, int n)
{
    p->n = n;
    p->node = calloc((size_t)n, sizeof(*p->node));
    p->wm = calloc((size_t)n * (size_t)n, sizeof(*p->wm));
    p->start = calloc((size_t)n, sizeof(*p->start));
    p->q = calloc((size_t)n, sizeof(*p->q));
    if (p->node == NULL || p->wm == NULL || p->start == NULL || p->q == NULL)
        return -1;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    return 0;
}

static void pass_free(struct pass *p)
{
    if (p->node && p->wm && p->start && p->q) {
        pthread_mutex_destroy(&p->mu);
        pthread_cond_destroy(&p->cv);
    }
    free(p->node);
    free(p->wm);
    free(p->start);
    free(p->q);
}

/* Prints the total line and fills *stats. */
static void report(struct pass *p, uint64_t t0, int down, struct sync_stats *stats)
{
    struct sync_stats st = {p->rows, p->bytes, 0, 0, 0};
    pending(p, &st.backlog, &st.lag_ms);
    st.ms = now_ms() - t0;
    fprintf(p->opt->out,
            "sync: total rows=%" PRIu64 " bytes=%" PRIu64 " purged=%" PRIu64 " ms=%" PRIu64
            " lag_ms=%" PRIu64 " backlog=%" PRIu64 " unreachable=%d%s\n",
            st.rows, st.bytes, p->purged, st.ms, st.lag_ms, st.backlog, down,
            stopping(p) ? " (stopped early)" : "");
    if (stats)
        *stats = st;
}

int sync_pass(const struct lkv_config *cfg, const struct store_sql *sql,
              const struct sync_options *opt, struct sync_stats *stats)
{
    struct pass p;
    memset(&p, 0, sizeof(p));
    if (stats)
        memset(stats, 0, sizeof(*stats));
    p.cfg = cfg;
    p.opt = opt;
    p.sql = sql;
    if (pass_alloc(&p, cfg->partitions) != 0) {
        pass_free(&p);
        fprintf(stderr, "lazykv-sync: out of memory\n");
        return SYNC_PARTIAL;
    }
    snprintf(p.lock_name, sizeof(p.lock_name), STORE_SYNC_LOCK_FMT, cfg->table_name);
    uint64_t t0 = now_ms();
    int rc = SYNC_OK;
    if (connect_all(&p, sql) != 0) {
        rc = SYNC_USAGE;
        goto out;
    }
    if (lock_all(&p) != 0) {
        fprintf(stderr, "lazykv-sync: another pass holds the lock; nothing done\n");
        rc = SYNC_LOCKED;
        goto out;
    }
    read_positions(&p);
    run_pipeline(&p);
    if (!opt->dry_run && !stopping(&p))
        purge_all(&p);
    if (!opt->dry_run && !stopping(&p))
        collect_all(&p);
    int down = 0;
    for (int i = 0; i < p.n; i++)
        down += !p.node[i].up;
    report(&p, t0, down, stats);
    if (down || atomic_load(&p.broken))
        rc = SYNC_PARTIAL;
out:
    unlock_and_close(&p);
    pass_free(&p);
    return rc;
}
