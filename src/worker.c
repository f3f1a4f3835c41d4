/*
 * worker.c -- the event loops of the partitions' connections. See worker.h.
 */
#include "worker.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "clock.h"
#include "rng.h"
#include "kv.h"
#include "log.h"
#include "version.h"

#define WORKER_EVENTS 64

struct lane *worker_lane(struct worker *w, int p, enum lane_kind k)
{
    return &w->lanes[p * LANE_KINDS + (int)k];
}

uint64_t worker_random(struct worker *w)
{
    return rng_next(&w->rng);
}

struct stats *worker_stats(struct worker *w)
{
    return &w->stats;
}

/* epoll data: the lane's index + 1 and the socket, so that an event left
 * over from a socket closed meanwhile is recognised and dropped (0: the
 * inbox's eventfd). */
static uint64_t tag(const struct worker *w, const struct lane *l, int fd)
{
    return ((uint64_t)(unsigned)fd << 32) | (uint64_t)(l - w->lanes + 1);
}

void worker_watch(struct dbconn *c, int fd, unsigned events, void *owner)
{
    struct lane *l = owner;
    struct worker *w = l->worker;
    int old = c->fd;
    if (old >= 0 && old != fd)
        epoll_ctl(w->epfd, EPOLL_CTL_DEL, old, NULL); /* may be closed already */
    if (fd < 0)
        return;
    struct epoll_event ev = {.events = events, .data.u64 = tag(w, l, fd)};
    if (epoll_ctl(w->epfd, old == fd ? EPOLL_CTL_MOD : EPOLL_CTL_ADD, fd, &ev) != 0 &&
        epoll_ctl(w->epfd, old == fd ? EPOLL_CTL_ADD : EPOLL_CTL_MOD, fd, &ev) != 0)
        log_error("epoll_ctl: %s", strerror(errno));
}

static void wake(struct worker *w)
{
    uint64_t one = 1;
    if (write(w->evfd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        log_error("eventfd write: %s", strerror(errno));
}

void worker_deliver_connection(struct prober_req *r, MYSQL *m, const char *error)
{
    (void)error;
    struct lane *l = r->arg;
    struct worker *w = l->worker;
    pthread_mutex_lock(&w->lock);
    l->delivered = m;
    l->next_delivered = w->delivered;
    w->delivered = l;
    int need_wake = !w->woken;
    w->woken = 1;
    pthread_mutex_unlock(&w->lock);
    if (need_wake)
        wake(w);
}

void worker_submit(struct worker *w, struct kv_op *op)
{
    op->next = NULL;
    pthread_mutex_lock(&w->lock);
    if (w->stop) {
        /* The loop is gone or going: nothing would ever run op. */
        pthread_mutex_unlock(&w->lock);
        kv_refuse(w, op);
        return;
    }
    if (w->ops_tail)
        w->ops_tail->next = op;
    else
        w->ops_head = op;
    w->ops_tail = op;
    int need_wake = !w->woken;
    w->woken = 1;
    pthread_mutex_unlock(&w->lock);
    if (need_wake)
        wake(w);
}

/* Queues under the inbox lock (set), waking the loop if need be. */
static void post(struct worker *w, void (*set)(struct worker *, void *), void *arg)
{
    pthread_mutex_lock(&w->lock);
    set(w, arg);
    int need_wake = !w->woken;
    w->woken = 1;
    pthread_mutex_unlock(&w->lock);
    if (need_wake)
        wake(w);
}

static void add_note(struct worker *w, void *arg)
{
    struct watch_note *n = arg;
    n->next = w->notes;
    w->notes = n;
}

static void set_close_watches(struct worker *w, void *arg)
{
    (void)arg;
    w->close_watches = 1;
}

void worker_post_note(struct worker *w, struct watch_note *note)
{
    post(w, add_note, note);
}

void worker_close_watches(struct worker *w)
{
    if (w->started)
        post(w, set_close_watches, NULL);
}

/* Takes everything from the inbox and acts on it. */
static void drain_inbox(struct worker *w)
{
    uint64_t count;
    if (read(w->evfd, &count, sizeof(count)) < 0 && errno != EAGAIN)
        log_error("eventfd read: %s", strerror(errno));
    pthread_mutex_lock(&w->lock);
    struct kv_op *op = w->ops_head;
    struct lane *l = w->delivered;
    struct watch_note *notes = w->notes;
    int close_watches = w->close_watches;
    w->ops_head = w->ops_tail = NULL;
    w->delivered = NULL;
    w->notes = NULL;
    w->woken = 0;
    w->stopping = w->stop;
    pthread_mutex_unlock(&w->lock);
    if (notes)
        watch_on_notes(w->be->hub, notes);
    if (close_watches)
        watch_close(w->be->hub);
    while (l) {
        struct lane *next = l->next_delivered;
        lane_connected(l);
        l = next;
    }
    while (op) {
        struct kv_op *next = op->next;
        kv_run(w, op);
        op = next;
    }
}

static int nlanes(const struct worker *w)
{
    return w->be->partitions * LANE_KINDS;
}

/* Milliseconds until the earliest lane deadline, or -1 for none. */
static int next_timeout_ms(struct worker *w)
{
    uint64_t first = w->index == 0 && w->be->hub ? watch_deadline(w->be->hub) : 0;
    for (int i = 0; i < nlanes(w); i++) {
        uint64_t d = lane_deadline(&w->lanes[i]);
        if (d && (first == 0 || d < first))
            first = d;
    }
    if (first == 0)
        return -1;
    uint64_t now = clock_mono_us();
    return first <= now ? 0 : (int)((first - now + 999) / 1000);
}

static void on_time(struct worker *w)
{
    uint64_t now = clock_mono_us();
    if (w->index == 0 && w->be->hub)
        watch_on_time(w->be->hub, now);
    for (int i = 0; i < nlanes(w); i++) {
        uint64_t d = lane_deadline(&w->lanes[i]);
        if (d && d <= now)
            lane_on_time(&w->lanes[i], now);
    }
}

static void dispatch(struct worker *w, const struct epoll_event *ev)
{
    uint64_t t = ev->data.u64;
    if (t == 0) {
        drain_inbox(w);
        return;
    }
    struct lane *l = &w->lanes[(t & 0xffffffffu) - 1];
    if (l->conn.fd != (int)(t >> 32))
        return; /* a socket closed since the event was reported */
    dbconn_on_event(&l->conn, ev->events);
}

static void *run(void *arg)
{
    struct worker *w = arg;
    struct epoll_event ev[WORKER_EVENTS];
    while (!w->stopping) {
        int n = epoll_wait(w->epfd, ev, WORKER_EVENTS, next_timeout_ms(w));
        if (n < 0 && errno != EINTR) {
            log_error("epoll_wait: %s; this worker stops", strerror(errno));
            pthread_mutex_lock(&w->lock);
            w->stop = w->stopping = 1; /* later operations are refused at once */
            pthread_mutex_unlock(&w->lock);
            break;
        }
        for (int i = 0; i < n; i++)
            dispatch(w, &ev[i]);
        on_time(w);
    }
    /* Stopping: answer everything pending. */
    if (w->index == 0 && w->be->hub)
        watch_close(w->be->hub);
    for (int i = 0; i < nlanes(w); i++)
        lane_close(&w->lanes[i], LKV_EUNAVAIL);
    drain_inbox(w);
    for (int i = 0; i < nlanes(w); i++)
        lane_close(&w->lanes[i], LKV_EUNAVAIL);
    mysql_thread_end();
    return NULL;
}

int worker_start(struct worker *w, const struct backend *be, int index)
{
    memset(w, 0, sizeof(*w));
    w->be = be;
    w->index = index;
    w->epfd = w->evfd = -1;
    w->rng = version_now_us() ^ ((uint64_t)(index + 1) << 40) ^ 0x9e3779b97f4a7c15ULL;
    w->lanes = calloc((size_t)be->partitions * LANE_KINDS, sizeof(*w->lanes));
    const struct lkv_config *cfg = be->cfg;
    if (w->lanes == NULL || rcache_init(&w->cache, (uint64_t)cfg->read_cache_ms * 1000u,
                                        (size_t)(cfg->read_cache_bytes / cfg->threads)) != 0) {
        log_error("out of memory");
        free(w->lanes);
        return -1;
    }
    for (int p = 0; p < be->partitions; p++)
        for (int k = 0; k < LANE_KINDS; k++)
            lane_init(worker_lane(w, p, (enum lane_kind)k), w, &be->probers[p], p,
                      (enum lane_kind)k, be->cfg->batch, be->sql, be->cfg);
    w->epfd = epoll_create1(EPOLL_CLOEXEC);
    w->evfd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = 0};
    if (w->epfd < 0 || w->evfd < 0 || epoll_ctl(w->epfd, EPOLL_CTL_ADD, w->evfd, &ev) != 0 ||
        pthread_mutex_init(&w->lock, NULL) != 0) {
        log_error("cannot set up a worker's event loop: %s", strerror(errno));
        goto fail;
    }
    int rc = pthread_create(&w->thread, NULL, run, w);
    if (rc != 0) {
        log_error("cannot start a thread: %s", strerror(rc));
        pthread_mutex_destroy(&w->lock);
        goto fail;
    }
    w->started = 1;
    return 0;
fail:
    if (w->epfd >= 0)
        close(w->epfd);
    if (w->evfd >= 0)
        close(w->evfd);
    free(w->lanes);
    w->lanes = NULL;
    rcache_free(&w->cache);
    return -1;
}

void worker_stop(struct worker *w)
{
    if (!w->started || w->joined)
        return;
    pthread_mutex_lock(&w->lock);
    w->stop = 1;
    w->woken = 1;
    pthread_mutex_unlock(&w->lock);
    wake(w);
    pthread_join(w->thread, NULL);
    w->joined = 1;
}

void worker_free(struct worker *w)
{
    if (!w->started)
        return;
    worker_stop(w);
    pthread_mutex_destroy(&w->lock);
    close(w->epfd);
    close(w->evfd);
    free(w->lanes);
    w->lanes = NULL;
    rcache_free(&w->cache);
    w->started = 0;
}
