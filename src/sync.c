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
    struct node *node;                    /* owned: one per partition */
    int n;
    char lock_name[160];
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
            fprintf(stderr, "lazykv-sync: partition %d (%s): table %s has no expires_at column:"
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

struct worker {
    struct pass *p;
    const struct store_sql *sql;
    int index;            /* the source (stamping) or target (copying) */
    uint64_t rows, bytes; /* copied by this worker */
    pthread_t thread;
};

/* Turns the rows of partition i that have expired into tombstones, in
 * statements of batch_size rows. Every partition does it to its own rows:
 * one that holds the same row makes the same tombstone, so nothing waits
 * for the row's origin to be reachable. Marks i down on failure. */
static void expire_partition(struct pass *p, int i)
{
    uint64_t now = version_now_us(), total = 0;
    for (int round = 0; round < MAX_STAMP_ROUNDS && !stopping(p); round++) {
        uint64_t expired = 0;
        if (store_expire(&p->node[i].conn, now, p->cfg->sync_batch_size, &expired) != LKV_OK) {
            mark_down(p, i, "expiring rows");
            return;
        }
        total += expired;
        if (expired < (uint64_t)p->cfg->sync_batch_size)
            break;
    }
    if (p->opt->verbose && total > 0)
        fprintf(p->opt->out, "sync: %d: expired rows=%" PRIu64 "\n", i, total);
}

/* Turns partition w->index's expired rows into tombstones, then gives
 * every pending row an epoch: the new tombstones go out in this pass. */
static void *stamp_partition(void *arg)
{
    struct worker *w = arg;
    struct pass *p = w->p;
    int i = w->index;
    mysql_thread_init();
    expire_partition(p, i); /* on failure, marks i down: nothing is stamped */
    for (int round = 0; atomic_load(&p->node[i].up) && round < MAX_STAMP_ROUNDS && !stopping(p);
         round++) {
        uint64_t stamped = 0;
        if (store_stamp(&p->node[i].conn, p->cfg->sync_batch_size, &stamped) != LKV_OK) {
            mark_down(p, i, "stamping changes");
            break;
        }
        if (stamped < (uint64_t)p->cfg->sync_batch_size)
            break;
    }
    mysql_thread_end();
    return NULL;
}

/* Runs fn for every reachable partition, one thread each, and waits. A
 * partition whose thread cannot start is done in this thread. */
static void for_each_partition(struct pass *p, const struct store_sql *sql,
                               void *(*fn)(void *), struct worker *w)
{
    for (int i = 0; i < p->n; i++) {
        w[i] = (struct worker){p, sql, i, 0, 0, 0};
        if (!atomic_load(&p->node[i].up))
            continue;
        if (pthread_create(&w[i].thread, NULL, fn, &w[i]) != 0) {
            w[i].thread = 0;
            fn(&w[i]);
        }
    }
    for (int i = 0; i < p->n; i++)
        if (w[i].thread)
            pthread_join(w[i].thread, NULL);
}

static void position_set(struct position *pos, const struct batch *b)
{
    const struct record *last = &b->rec[b->n - 1];
    pos->seq = b->seq[b->n - 1];
    memcpy(pos->key, last->key, last->key_len);
    pos->key_len = last->key_len;
}

/* Copies source s's changes to target t, batch by batch, reading through
 * src_conn (the copying thread's own connection to s). */
static void copy_pair(struct pass *p, int s, int t, struct pconn *src_conn, struct worker *w)
{
    struct node *src = &p->node[s], *dst = &p->node[t];
    struct position pos;
    struct batch b;
    memset(&b, 0, sizeof(b));
    uint64_t rows = 0, bytes = 0, t0 = now_ms();
    if (store_watermark(&dst->conn, src->id, &pos) != LKV_OK) {
        mark_down(p, t, "reading its sync position");
        return;
    }
    while (atomic_load(&src->up) && atomic_load(&dst->up) && !stopping(p)) {
        batch_clear(&b);
        enum lkv_status st = store_read_changes(src_conn, &pos, p->cfg->sync_batch_size,
                                                p->cfg->sync_batch_bytes, &b);
        if (st != LKV_OK) {
            if (st == LKV_ENOMEM)
                log_error("out of memory reading a batch from partition %d", s);
            mark_down_on(p, s, src_conn, "reading changes");
            break;
        }
        if (b.n == 0)
            break;
        if (!p->opt->dry_run && store_apply_batch(&dst->conn, &b, src->id) != LKV_OK) {
            mark_down(p, t, "applying changes");
            break;
        }
        rows += b.n;
        bytes += b.bytes;
        position_set(&pos, &b);
        if (p->opt->verbose)
            fprintf(p->opt->out, "sync: %d -> %d: batch rows=%zu bytes=%zu up to seq=%" PRIu64
                                 "\n", s, t, b.n, b.bytes, pos.seq);
        if (b.n < (size_t)p->cfg->sync_batch_size && (long long)b.bytes < p->cfg->sync_batch_bytes)
            break; /* the source has nothing more */
    }
    batch_free(&b);
    fprintf(p->opt->out, "sync: %d -> %d: rows=%" PRIu64 " bytes=%" PRIu64 " ms=%" PRIu64 "%s\n",
            s, t, rows, bytes, now_ms() - t0, p->opt->dry_run ? " (dry run: would copy)" : "");
    w->rows += rows;
    w->bytes += bytes;
}

/* Copies every source's changes to one target (w->index), with its own
 * connections to the sources: targets are filled in parallel. */
static void *copy_to_target(void *arg)
{
    struct worker *w = arg;
    struct pass *p = w->p;
    int t = w->index;
    mysql_thread_init();
    struct pconn *src = calloc((size_t)p->n, sizeof(*src));
    for (int s = 0; src && s < p->n; s++) {
        if (s == t)
            continue;
        pconn_init(&src[s], p->cfg, s, (const char *const *)w->sql->text, w->sql->count);
        if (atomic_load(&p->node[s].up) && atomic_load(&p->node[t].up) && !stopping(p))
            copy_pair(p, s, t, &src[s], w);
        pconn_close(&src[s]);
    }
    if (src == NULL)
        log_error("out of memory: nothing copied to partition %d", t);
    free(src);
    mysql_thread_end();
    return NULL;
}

static int position_covers(const struct position *wm, uint64_t seq, const char *k, size_t len)
{
    if (wm->seq != seq)
        return wm->seq > seq;
    size_t n = wm->key_len < len ? wm->key_len : len;
    int c = memcmp(wm->key, k, n);
    return c > 0 || (c == 0 && wm->key_len >= len);
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

/* The age of the oldest change still waiting for a pass, in ms. */
static uint64_t lag_ms(struct pass *p)
{
    uint64_t oldest = 0;
    for (int i = 0; i < p->n; i++) {
        uint64_t v = 0;
        if (p->node[i].up && store_oldest_unstamped(&p->node[i].conn, &v) == LKV_OK && v &&
            (oldest == 0 || v < oldest))
            oldest = v;
    }
    uint64_t now = version_now_us();
    return oldest && oldest < now ? (now - oldest) / 1000u : 0;
}

int sync_pass(const struct lkv_config *cfg, const struct store_sql *sql,
              const struct sync_options *opt)
{
    struct pass p;
    memset(&p, 0, sizeof(p));
    p.cfg = cfg;
    p.opt = opt;
    p.n = cfg->partitions;
    p.node = calloc((size_t)p.n, sizeof(*p.node));
    if (p.node == NULL) {
        fprintf(stderr, "lazykv-sync: out of memory\n");
        return SYNC_PARTIAL;
    }
    snprintf(p.lock_name, sizeof(p.lock_name), "lazykv-sync:%s", cfg->table_name);
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
    struct worker *w = calloc((size_t)p.n, sizeof(*w));
    if (w == NULL) {
        fprintf(stderr, "lazykv-sync: out of memory\n");
        rc = SYNC_PARTIAL;
        goto out;
    }
    if (!opt->dry_run)
        for_each_partition(&p, sql, stamp_partition, w);
    for_each_partition(&p, sql, copy_to_target, w);
    for (int i = 0; i < p.n; i++) {
        p.rows += w[i].rows;
        p.bytes += w[i].bytes;
    }
    free(w);
    if (!opt->dry_run && !stopping(&p))
        purge_all(&p);
    int down = 0;
    for (int i = 0; i < p.n; i++)
        down += !p.node[i].up;
    fprintf(opt->out,
            "sync: total rows=%" PRIu64 " bytes=%" PRIu64 " purged=%" PRIu64 " ms=%" PRIu64
            " lag_ms=%" PRIu64 " unreachable=%d%s\n",
            p.rows, p.bytes, p.purged, now_ms() - t0, lag_ms(&p), down,
            stopping(&p) ? " (stopped early)" : "");
    if (down)
        rc = SYNC_PARTIAL;
out:
    unlock_and_close(&p);
    free(p.node);
    return rc;
}
