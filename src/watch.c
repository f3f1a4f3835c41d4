/*
 * watch.c -- the hub of waiting requests. See watch.h.
 *
 * Parked operations are found three ways: a hash table of chains, keyed by
 * a watched key (key watches, lock waits) or a watched prefix (prefix
 * watches), for the changes; a min-heap by deadline, for waits that pass;
 * and one list of them all, walked only when a partition goes down. A
 * changed key is looked up once as a key and once per distinct length of
 * the prefixes watched, so a change, a tick or a wait that passes costs the
 * same with 10 or 10,000 requests waiting (10,000 requests walked every
 * 100 ms would be a millisecond of stall on worker 0 each time).
 */
#include "watch.h"

#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "kv.h"
#include "log.h"
#include "placement.h"
#include "prober.h"
#include "version.h"
#include "worker.h"

#define MAX_PREFIX_LENS 64 /* distinct watched prefix lengths indexed; more: swept */
#define RECENT_MAX 4096    /* changes remembered for requests about to park */

/* A change looked up by the hub, kept for a request that read the database
 * before it and parks after it (watch_park): without it, that request
 * would wait for a change it never saw. */
struct recent {
    uint64_t seq;               /* 0: an empty slot */
    int has_index;
    uint64_t index;
    size_t len;
    char *key;                  /* owned */
};

/* The rows one poll of a partition found. */
struct change {
    size_t off, len;            /* the key, in poll->keys */
    uint64_t index;
};

struct hub_poll {
    struct watch_hub *hub;      /* ref */
    int partition;
    int busy;
    struct job job;
    struct scan_args args;
    uint64_t last_to;           /* realtime µs the previous poll looked up to */
    uint64_t *seen;             /* owned, sorted: digests of the previous poll's rows */
    size_t nseen, capseen;
    uint64_t *cur;              /* owned: this poll's */
    size_t ncur, capcur;
    struct change *changes;     /* owned: this poll's rows not seen before */
    size_t nchanges, capchanges;
    struct buf keys;            /* owned: their keys */
    size_t rows;
    int failed;
};

struct watch_hub {
    struct worker *home;        /* ref: workers[0] */
    struct worker *workers;     /* ref */
    int nworkers;
    int partitions;
    atomic_int parked;          /* read by any thread (watch_notify) */
    int closed;
    struct kv_op *all;          /* every parked op (w_all_next/prev) */
    struct kv_op **heap;        /* owned: parked ops, earliest deadline first */
    size_t heap_n, heap_cap;
    int *down;                  /* owned: per partition, seen backing off */
    struct kv_op **bucket;      /* owned: chains (w_next/prev) */
    size_t nbuckets;
    struct {
        size_t len;
        int count;
    } prefix_len[MAX_PREFIX_LENS];
    int nprefix_lens;
    int prefix_overflow;        /* prefix watches whose length is not indexed */
    struct watch_note *notes;   /* owned: waiting to be looked up */
    atomic_uint_fast64_t seq;   /* batches of changes looked up so far */
    atomic_int active;          /* waiting requests alive, parked or running */
    struct recent *recent;      /* owned: ring of the last RECENT_MAX changes */
    size_t recent_next;         /* where the next one goes */
    uint64_t lost_seq;          /* the last batch with a change not remembered */
    uint64_t overflow_logged_us;
    uint64_t notes_due_us;
    uint64_t next_poll_us;
    struct hub_poll *poll;      /* owned: one per partition */
};

/* ---- the tables ------------------------------------------------------------- */

static size_t slot_of(const struct watch_hub *h, int prefix, const char *key, size_t len)
{
    return (size_t)(placement_hash64(key, len) + (uint64_t)prefix) & (h->nbuckets - 1);
}

static int is_prefix_watch(const struct kv_op *op)
{
    return op->watch == WATCH_PREFIX;
}

static void count_prefix_len(struct watch_hub *h, size_t len, int delta)
{
    for (int i = 0; i < h->nprefix_lens; i++) {
        if (h->prefix_len[i].len != len)
            continue;
        h->prefix_len[i].count += delta;
        if (h->prefix_len[i].count == 0)
            h->prefix_len[i] = h->prefix_len[--h->nprefix_lens];
        return;
    }
    if (delta > 0 && h->nprefix_lens < MAX_PREFIX_LENS) {
        h->prefix_len[h->nprefix_lens].len = len;
        h->prefix_len[h->nprefix_lens++].count = 1;
        return;
    }
    h->prefix_overflow += delta;
}

/* ---- the deadline heap ---------------------------------------------------------- */

static int earlier(const struct watch_hub *h, size_t a, size_t b)
{
    return h->heap[a]->watch_deadline_us < h->heap[b]->watch_deadline_us;
}

static void heap_swap(struct watch_hub *h, size_t a, size_t b)
{
    struct kv_op *t = h->heap[a];
    h->heap[a] = h->heap[b];
    h->heap[b] = t;
    h->heap[a]->w_heap = a;
    h->heap[b]->w_heap = b;
}

static void heap_up(struct watch_hub *h, size_t i)
{
    while (i > 0 && earlier(h, i, (i - 1) / 2)) {
        heap_swap(h, i, (i - 1) / 2);
        i = (i - 1) / 2;
    }
}

static void heap_down(struct watch_hub *h, size_t i)
{
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;
        if (l < h->heap_n && earlier(h, l, m))
            m = l;
        if (r < h->heap_n && earlier(h, r, m))
            m = r;
        if (m == i)
            return;
        heap_swap(h, i, m);
        i = m;
    }
}

static int heap_push(struct watch_hub *h, struct kv_op *op)
{
    if (h->heap_n == h->heap_cap) {
        size_t cap = h->heap_cap ? h->heap_cap * 2 : 256;
        struct kv_op **p = realloc(h->heap, cap * sizeof(struct kv_op *));
        if (p == NULL)
            return -1;
        h->heap = p;
        h->heap_cap = cap;
    }
    op->w_heap = h->heap_n;
    h->heap[h->heap_n++] = op;
    heap_up(h, op->w_heap);
    return 0;
}

static void heap_remove(struct watch_hub *h, struct kv_op *op)
{
    size_t i = op->w_heap, last = --h->heap_n;
    if (i != last) {
        heap_swap(h, i, last);
        heap_down(h, i);
        heap_up(h, i);
    }
}

/* ---- the tables, continued --------------------------------------------------------- */

/* Puts op at the head of its chain. */
static void chain_insert(struct watch_hub *h, struct kv_op *op)
{
    size_t s = slot_of(h, is_prefix_watch(op), op->watch_key, op->watch_key_len);
    op->w_prev = NULL;
    op->w_next = h->bucket[s];
    if (op->w_next)
        op->w_next->w_prev = op;
    h->bucket[s] = op;
}

static void link_op(struct watch_hub *h, struct kv_op *op)
{
    chain_insert(h, op);
    op->w_all_prev = NULL;
    op->w_all_next = h->all;
    if (h->all)
        h->all->w_all_prev = op;
    h->all = op;
    if (is_prefix_watch(op))
        count_prefix_len(h, op->watch_key_len, 1);
    atomic_fetch_add_explicit(&h->parked, 1, memory_order_relaxed);
}

static void unlink_op(struct watch_hub *h, struct kv_op *op)
{
    size_t s = slot_of(h, is_prefix_watch(op), op->watch_key, op->watch_key_len);
    if (op->w_prev)
        op->w_prev->w_next = op->w_next;
    else
        h->bucket[s] = op->w_next;
    if (op->w_next)
        op->w_next->w_prev = op->w_prev;
    if (op->w_all_prev)
        op->w_all_prev->w_all_next = op->w_all_next;
    else
        h->all = op->w_all_next;
    if (op->w_all_next)
        op->w_all_next->w_all_prev = op->w_all_prev;
    op->w_next = op->w_prev = op->w_all_next = op->w_all_prev = NULL;
    if (is_prefix_watch(op))
        count_prefix_len(h, op->watch_key_len, -1);
    heap_remove(h, op);
    atomic_fetch_sub_explicit(&h->parked, 1, memory_order_relaxed);
}

/* Doubles the table when it is fuller than one op per chain. */
static void maybe_grow(struct watch_hub *h)
{
    size_t n = (size_t)atomic_load_explicit(&h->parked, memory_order_relaxed);
    if (n < h->nbuckets)
        return;
    struct kv_op **b = calloc(h->nbuckets * 2, sizeof(struct kv_op *));
    if (b == NULL)
        return; /* longer chains, still correct */
    free(h->bucket);
    h->bucket = b;
    h->nbuckets *= 2;
    for (struct kv_op *op = h->all; op; op = op->w_all_next)
        chain_insert(h, op);
}

/* ---- waking ------------------------------------------------------------------ */

static void answer(struct kv_op *op, enum lkv_status st)
{
    op->st = st;
    op->done(op);
}

/* Runs op again: it answers, or parks again. A lock's create goes to its
 * key's worker, where every write of the key goes. */
static void rerun(struct watch_hub *h, struct kv_op *op)
{
    stats_add(worker_stats(h->home), watch_wakeups_total, 1);
    if (op->watch == WATCH_LOCK) {
        /* When the wait has passed this is the last attempt: 412 if the
         * lock is still held (kv.c parks only before the deadline). */
        int w = kv_route(op->rec.key, op->rec.key_len, h->nworkers);
        worker_submit(&h->workers[w], op);
        return;
    }
    kv_run(h->home, op);
}

/* Collects op to run again after the tables are walked (a run may park). */
static void wake(struct watch_hub *h, struct kv_op *op, struct kv_op **woken)
{
    unlink_op(h, op);
    op->w_next = *woken;
    *woken = op;
}

static void rerun_all(struct watch_hub *h, struct kv_op *woken)
{
    while (woken) {
        struct kv_op *next = woken->w_next;
        woken->w_next = NULL;
        rerun(h, woken);
        woken = next;
    }
}

static int op_watches(const struct kv_op *op, int prefix, const char *key, size_t len)
{
    return is_prefix_watch(op) == prefix && op->watch_key_len == len &&
           memcmp(op->watch_key, key, len) == 0;
}

/* key changed (to index, when known): wakes its watchers and those of every
 * watched prefix of it. */
static void on_change(struct watch_hub *h, const char *key, size_t len, int has_index,
                      uint64_t index, struct kv_op **woken)
{
    struct kv_op *op = h->bucket[slot_of(h, 0, key, len)];
    while (op) {
        struct kv_op *next = op->w_next;
        if (op_watches(op, 0, key, len) && (!has_index || index != op->watch_index))
            wake(h, op, woken);
        op = next;
    }
    for (int i = 0; i < h->nprefix_lens; i++) {
        size_t plen = h->prefix_len[i].len;
        if (plen > len)
            continue;
        op = h->bucket[slot_of(h, 1, key, plen)];
        while (op) {
            struct kv_op *next = op->w_next;
            /* A row whose index is not above the token's T was the same
             * when the token was made (any change gives an index above T):
             * the scans' look-back window must not wake such watchers. */
            if (op_watches(op, 1, key, plen) && (!has_index || index > op->watch_token.t))
                wake(h, op, woken);
            op = next;
        }
    }
    if (h->prefix_overflow > 0) {
        struct kv_op *next;
        for (op = h->all; op; op = next) {
            next = op->w_all_next;
            if (is_prefix_watch(op) && op->watch_key_len <= len &&
                memcmp(op->watch_key, key, op->watch_key_len) == 0 &&
                (!has_index || index > op->watch_token.t))
                wake(h, op, woken);
        }
    }
}

/* Remembers a change of the batch being looked up (numbered h->seq). */
static void remember(struct watch_hub *h, const char *key, size_t len, int has_index,
                     uint64_t index)
{
    struct recent *r = &h->recent[h->recent_next];
    char *copy = malloc(len ? len : 1);
    if (copy == NULL) {
        h->lost_seq = atomic_load_explicit(&h->seq, memory_order_relaxed);
        return;
    }
    memcpy(copy, key, len);
    free(r->key);
    r->key = copy;
    r->len = len;
    r->has_index = has_index;
    r->index = index;
    r->seq = atomic_load_explicit(&h->seq, memory_order_relaxed);
    h->recent_next = (h->recent_next + 1) % RECENT_MAX;
}

/* Whether a change op may not have seen was looked up since op began its
 * last run (op->watch_seq): then it must run again rather than park. The
 * ring is in batch order: walk back from the newest to the first batch op
 * saw. */
static int missed(const struct watch_hub *h, const struct kv_op *op)
{
    if (h->lost_seq > op->watch_seq)
        return 1; /* a change could not be remembered */
    for (size_t n = 0; n < RECENT_MAX; n++) {
        const struct recent *r = &h->recent[(h->recent_next + RECENT_MAX - 1 - n) % RECENT_MAX];
        if (r->seq <= op->watch_seq)
            return 0; /* op began after this one: it saw the rest */
        if (is_prefix_watch(op)) {
            if (r->len >= op->watch_key_len &&
                memcmp(r->key, op->watch_key, op->watch_key_len) == 0 &&
                (!r->has_index || r->index > op->watch_token.t))
                return 1;
        } else if (r->len == op->watch_key_len && memcmp(r->key, op->watch_key, r->len) == 0 &&
                   (!r->has_index || r->index != op->watch_index)) {
            return 1;
        }
    }
    return 1; /* more changes than the ring holds since op began */
}

/* Whether op can still be answered by its partitions. */
static int reachable(const struct watch_hub *h, const struct kv_op *op)
{
    const struct backend *be = h->home->be;
    if (is_prefix_watch(op)) {
        for (int p = 0; p < be->partitions; p++)
            if (prober_backing_off(&be->probers[p]))
                return 0;
        return 1;
    }
    return !prober_backing_off(&be->probers[op->w_master]);
}

/* Ops whose partition went down since the last tick get 503 (new ones are
 * refused while it is down, so only a change needs a walk). */
static void answer_unreachable(struct watch_hub *h)
{
    int newly_down = 0;
    for (int p = 0; p < h->partitions; p++) {
        int down = prober_backing_off(&h->home->be->probers[p]);
        newly_down |= down && !h->down[p];
        h->down[p] = down;
    }
    if (!newly_down)
        return;
    for (struct kv_op *op = h->all, *next; op; op = next) {
        next = op->w_all_next;
        if (!reachable(h, op)) {
            unlink_op(h, op);
            answer(op, LKV_EUNAVAIL);
        }
    }
}

/* Waits that passed run a last time (answered as things stand). */
static void sweep(struct watch_hub *h, uint64_t now_us)
{
    struct kv_op *woken = NULL;
    while (h->heap_n > 0 && h->heap[0]->watch_deadline_us <= now_us) {
        struct kv_op *op = h->heap[0];
        op->watch_final = 1;
        wake(h, op, &woken);
    }
    rerun_all(h, woken);
    answer_unreachable(h);
}

/* ---- polls ------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return (x > y) - (x < y);
}

static int poll_row(const struct record *row, void *arg)
{
    struct hub_poll *pl = arg;
    struct watch_hub *h = pl->hub;
    pl->rows++;
    if (placement_master(row->key, row->key_len, h->partitions) != pl->partition)
        return 0; /* a copy: its master reports it */
    uint64_t index = token_row_index(row, pl->args.param[3].u64);
    uint64_t m = token_row_mix(row, index);
    if (pl->ncur == pl->capcur) {
        size_t cap = pl->capcur ? pl->capcur * 2 : 256;
        uint64_t *p = realloc(pl->cur, cap * sizeof(*p));
        if (p == NULL)
            return -1;
        pl->cur = p;
        pl->capcur = cap;
    }
    pl->cur[pl->ncur++] = m;
    if (pl->nseen && bsearch(&m, pl->seen, pl->nseen, sizeof(m), cmp_u64))
        return 0; /* reported by the previous poll */
    if (pl->nchanges == pl->capchanges) {
        size_t cap = pl->capchanges ? pl->capchanges * 2 : 64;
        struct change *p = realloc(pl->changes, cap * sizeof(*p));
        if (p == NULL)
            return -1;
        pl->changes = p;
        pl->capchanges = cap;
    }
    struct change *c = &pl->changes[pl->nchanges];
    c->off = pl->keys.len;
    c->len = row->key_len;
    c->index = index;
    if (buf_append(&pl->keys, row->key, row->key_len) != 0)
        return -1;
    pl->nchanges++;
    return 0;
}

static void poll_done(struct job *j)
{
    struct hub_poll *pl = j->arg;
    struct watch_hub *h = pl->hub;
    pl->busy = 0;
    if (j->st != LKV_OK) {
        /* Unreachable: the sweep answers what waits on it; the next poll
         * looks back from the last good one. */
        pl->ncur = pl->nchanges = 0;
        pl->keys.len = 0;
        return;
    }
    pl->last_to = pl->args.param[3].u64;
    struct kv_op *woken = NULL;
    if (pl->rows >= KVSQL_CHANGES_MAX) {
        /* More changes than one poll reads: wake everything this partition
         * may concern; each judges on the database's state. */
        uint64_t now = clock_mono_us();
        if (now - h->overflow_logged_us > 60000000u) {
            h->overflow_logged_us = now;
            log_warn("partition %d: over %d changes in %d ms; every watch on it runs again "
                     "(logged once a minute)",
                     pl->partition, KVSQL_CHANGES_MAX, WATCH_POLL_MS + WATCH_SLACK_MS);
        }
        h->lost_seq = atomic_fetch_add_explicit(&h->seq, 1, memory_order_relaxed) + 1;
        for (struct kv_op *op = h->all, *next; op; op = next) {
            next = op->w_all_next;
            if (is_prefix_watch(op) ||
                placement_master(op->rec.key, op->rec.key_len, h->partitions) == pl->partition)
                wake(h, op, &woken);
        }
    } else {
        atomic_fetch_add_explicit(&h->seq, 1, memory_order_relaxed);
        for (size_t i = 0; i < pl->nchanges; i++) {
            const char *key = pl->keys.data + pl->changes[i].off;
            remember(h, key, pl->changes[i].len, 1, pl->changes[i].index);
            on_change(h, key, pl->changes[i].len, 1, pl->changes[i].index, &woken);
        }
    }
    /* This poll's rows are what the next one must not report again. */
    if (pl->ncur > 1)
        qsort(pl->cur, pl->ncur, sizeof(*pl->cur), cmp_u64);
    uint64_t *old = pl->seen;
    size_t old_cap = pl->capseen;
    pl->seen = pl->cur;
    pl->nseen = pl->ncur;
    pl->capseen = pl->capcur;
    pl->cur = old;
    pl->capcur = old_cap;
    pl->ncur = pl->nchanges = 0;
    pl->keys.len = 0;
    rerun_all(h, woken);
}

/* Scans partition p for rows changed since the previous poll (less the
 * slack: a version is taken before its commit) or expired since then. */
static void start_poll(struct hub_poll *pl, uint64_t now_real)
{
    struct watch_hub *h = pl->hub;
    uint64_t slack = (uint64_t)WATCH_SLACK_MS * 1000u;
    /* From the last poll, or (after a quiet spell with nothing waiting)
     * far enough back for the requests that just parked: they read the
     * database moments ago. */
    uint64_t from = pl->last_to > now_real - 10 * slack ? pl->last_to : now_real - slack;
    struct scan_args *a = &pl->args;
    memset(a, 0, sizeof(*a));
    a->stmt = KV_CHANGES;
    a->nparams = 4;
    a->param[0].u64 = from - slack;
    a->param[1].u64 = from - slack;
    a->param[2].u64 = from;
    a->param[3].u64 = now_real;
    a->on_row = poll_row;
    memset(&pl->job, 0, sizeof(pl->job));
    pl->job.scan = a;
    pl->job.done = poll_done;
    pl->job.arg = pl;
    pl->rows = 0;
    pl->busy = 1;
    stats_add(worker_stats(h->home), watch_scans_total, 1);
    lane_submit(worker_lane(h->home, pl->partition, LANE_POLL), &pl->job);
}

static void poll_all(struct watch_hub *h)
{
    uint64_t now_real = version_now_us();
    for (int p = 0; p < h->partitions; p++) {
        struct hub_poll *pl = &h->poll[p];
        if (!pl->busy && !prober_backing_off(&h->home->be->probers[p]))
            start_poll(pl, now_real);
    }
}

/* ---- entry points --------------------------------------------------------------- */

struct watch_hub *watch_hub_new(struct worker *workers, int nworkers)
{
    struct watch_hub *h = calloc(1, sizeof(*h));
    if (h == NULL)
        return NULL;
    h->home = &workers[0];
    h->workers = workers;
    h->nworkers = nworkers;
    h->nbuckets = 1024;
    h->bucket = calloc(h->nbuckets, sizeof(struct kv_op *));
    h->recent = calloc(RECENT_MAX, sizeof(*h->recent));
    if (h->bucket == NULL || h->recent == NULL) {
        free(h->bucket);
        free(h->recent);
        free(h);
        return NULL;
    }
    atomic_init(&h->parked, 0);
    atomic_init(&h->active, 0);
    atomic_init(&h->seq, 1);
    return h;
}

/* The home worker's backend is known once it has started. */
static int ensure_polls(struct watch_hub *h)
{
    if (h->poll)
        return 0;
    h->partitions = h->home->be->partitions;
    h->poll = calloc((size_t)h->partitions, sizeof(*h->poll));
    h->down = calloc((size_t)h->partitions, sizeof(*h->down));
    if (h->poll == NULL || h->down == NULL) {
        free(h->poll);
        free(h->down);
        h->poll = NULL;
        h->down = NULL;
        return -1;
    }
    for (int p = 0; p < h->partitions; p++) {
        h->poll[p].hub = h;
        h->poll[p].partition = p;
    }
    return 0;
}

void watch_hub_free(struct watch_hub *h)
{
    if (h == NULL)
        return;
    for (int p = 0; h->poll && p < h->partitions; p++) {
        free(h->poll[p].seen);
        free(h->poll[p].cur);
        free(h->poll[p].changes);
        buf_free(&h->poll[p].keys);
    }
    free(h->poll);
    free(h->down);
    free(h->heap);
    while (h->notes) {
        struct watch_note *next = h->notes->next;
        free(h->notes);
        h->notes = next;
    }
    for (size_t i = 0; i < RECENT_MAX; i++)
        free(h->recent[i].key);
    free(h->recent);
    free(h->bucket);
    free(h);
}

void watch_notify(struct watch_hub *h, const char *key, size_t len)
{
    if (h == NULL || atomic_load_explicit(&h->active, memory_order_relaxed) == 0)
        return;
    struct watch_note *n = malloc(sizeof(*n) + len);
    if (n == NULL)
        return; /* the next poll sees the change */
    n->next = NULL;
    n->len = len;
    memcpy(n->key, key, len);
    worker_post_note(h->home, n);
}

void watch_on_notes(struct watch_hub *h, struct watch_note *notes)
{
    if (h->notes == NULL && notes)
        h->notes_due_us = clock_mono_us() + WATCH_NOTE_DELAY_MS * 1000u;
    while (notes) {
        struct watch_note *next = notes->next;
        notes->next = h->notes;
        h->notes = notes;
        notes = next;
    }
}

static void run_notes(struct watch_hub *h)
{
    struct kv_op *woken = NULL;
    struct watch_note *n = h->notes;
    h->notes = NULL;
    atomic_fetch_add_explicit(&h->seq, 1, memory_order_relaxed);
    while (n) {
        struct watch_note *next = n->next;
        remember(h, n->key, n->len, 0, 0);
        on_change(h, n->key, n->len, 0, 0, &woken);
        free(n);
        n = next;
    }
    rerun_all(h, woken);
}

void watch_park(struct watch_hub *h, struct kv_op *op)
{
    if (h->closed || ensure_polls(h) != 0) {
        answer(op, LKV_EUNAVAIL);
        return;
    }
    op->w_master = is_prefix_watch(op)
                       ? -1
                       : placement_master(op->rec.key, op->rec.key_len, h->partitions);
    if (!reachable(h, op)) {
        answer(op, LKV_EUNAVAIL);
        return;
    }
    if (missed(h, op)) {
        rerun(h, op); /* something changed since it read the database */
        return;
    }
    op->worker = h->home;
    if (heap_push(h, op) != 0) {
        answer(op, LKV_ENOMEM);
        return;
    }
    if (atomic_load_explicit(&h->parked, memory_order_relaxed) == 0) {
        h->next_poll_us = clock_mono_us(); /* start looking now */
        for (int p = 0; p < h->partitions; p++)  /* not looked at while idle */
            h->down[p] = prober_backing_off(&h->home->be->probers[p]);
    }
    link_op(h, op);
    maybe_grow(h);
}

uint64_t watch_seq(const struct watch_hub *h)
{
    return h ? atomic_load_explicit(&h->seq, memory_order_relaxed) : 0;
}

void watch_begin(struct watch_hub *h)
{
    atomic_fetch_add_explicit(&h->active, 1, memory_order_relaxed);
}

void watch_end(struct watch_hub *h)
{
    atomic_fetch_sub_explicit(&h->active, 1, memory_order_relaxed);
}

int watch_waiting(const struct watch_hub *h)
{
    return h ? atomic_load_explicit(&h->parked, memory_order_relaxed) : 0;
}

void watch_close(struct watch_hub *h)
{
    h->closed = 1;
    while (h->all) {
        struct kv_op *op = h->all;
        unlink_op(h, op);
        answer(op, LKV_EUNAVAIL);
    }
}

uint64_t watch_deadline(const struct watch_hub *h)
{
    if (h->notes)
        return h->notes_due_us;
    if (atomic_load_explicit(&h->parked, memory_order_relaxed) == 0)
        return 0;
    return h->next_poll_us;
}

void watch_on_time(struct watch_hub *h, uint64_t now_us)
{
    if (h->notes && now_us >= h->notes_due_us)
        run_notes(h);
    if (h->all == NULL || now_us < h->next_poll_us)
        return;
    h->next_poll_us = now_us + WATCH_POLL_MS * 1000u;
    sweep(h, now_us);
    if (h->all)
        poll_all(h);
}
