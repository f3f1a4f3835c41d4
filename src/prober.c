/*
 * prober.c -- per-partition helper threads. See prober.h.
 */
#include "prober.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "log.h"
#include "partition.h"
#include "clock.h"
#include "version.h"

/* Cuts short a blocking call on m that the prober's thread is making:
 * shutting its socket down makes the call fail at once. Under p->lock,
 * which keeps m (p->busy) open meanwhile. A connect that has no socket yet
 * (the TCP handshake itself) is not cut: it ends within connect_timeout. */
static void interrupt_busy(struct prober *p)
{
    if (p->busy == NULL)
        return;
    int fd = (int)mysql_get_socket(p->busy); /* -1 when it has none */
    if (fd >= 0)
        shutdown(fd, SHUT_RDWR);
}

/* Marks m as the handle a blocking call is about to use (NULL: done), so
 * that prober_quiet/prober_stop can cut it short. Returns 1 when the call
 * should not be made at all (the prober is stopping, or quiet and probing). */
static int set_busy(struct prober *p, MYSQL *m, int probing)
{
    pthread_mutex_lock(&p->lock);
    int skip = m != NULL && (p->stopping || (probing && p->quiet));
    p->busy = skip ? NULL : m;
    p->busy_probing = probing;
    pthread_mutex_unlock(&p->lock);
    return skip;
}

/* 1 once a call may have been cut short on purpose: its failure says
 * nothing about the partition. */
static int winding_down(struct prober *p, int probing)
{
    pthread_mutex_lock(&p->lock);
    int down = p->stopping || (probing && p->quiet);
    pthread_mutex_unlock(&p->lock);
    return down;
}

/* A non-blocking connection (nonblock) or the prober's own, blocking one;
 * NULL with why in err, and *cut set when it was not made or was cut short
 * because the prober is winding down (probing: for the probe). */
static MYSQL *connect_partition(struct prober *p, int nonblock, int probing, int *cut, char *err,
                                size_t errlen)
{
    const struct lkv_partition_conf *pc = &p->cfg->part[p->index];
    enum lkv_status st;
    unsigned err_no;
    *cut = 0;
    MYSQL *m = partition_handle(pc, nonblock, &st, err, errlen);
    if (m == NULL)
        return NULL;
    if (set_busy(p, m, probing)) {
        mysql_close(m);
        snprintf(err, errlen, "lazykvd is stopping");
        *cut = 1;
        return NULL;
    }
    int rc = partition_connect_handle(m, pc, p->cfg->test_mode, pc->name, &st, &err_no, err,
                                      errlen);
    set_busy(p, NULL, probing);
    if (rc != 0) {
        mysql_close(m);
        *cut = winding_down(p, probing);
        return NULL;
    }
    return m;
}

static void note_ok(struct prober *p)
{
    atomic_store_explicit(&p->last_ok_us, clock_mono_us(), memory_order_relaxed);
}

void prober_note_fault(struct prober *p)
{
    atomic_store_explicit(&p->last_fault_us, clock_mono_us(), memory_order_relaxed);
}

int prober_backing_off(const struct prober *p)
{
    uint64_t fault = atomic_load_explicit(&p->last_fault_us, memory_order_relaxed);
    uint64_t ok = atomic_load_explicit(&p->last_ok_us, memory_order_relaxed);
    return fault > ok && clock_mono_us() < fault + PROBER_BACKOFF_US;
}

int prober_reachable(const struct prober *p)
{
    return atomic_load_explicit(&p->last_ok_us, memory_order_relaxed) >
           atomic_load_explicit(&p->last_fault_us, memory_order_relaxed);
}

/* Every SYNCSTATUS_INTERVAL_US, on the probe's connection: the sync's last
 * pass and the backlog. A failure is not a fault of the partition (the ping
 * decides that): the last values stay until the next read. */
static void read_status(struct prober *p)
{
    uint64_t now = clock_mono_us(), pending;
    struct sync_status st;
    if (now < p->next_status_us)
        return;
    p->next_status_us = now + SYNCSTATUS_INTERVAL_US;
    if (syncstatus_read(p->probe, p->cfg->table_name, &st, &pending) != 0) {
        log_debug("partition %d (%s): cannot read the sync's status: %s", p->index,
                  p->cfg->part[p->index].name, mysql_error(p->probe));
        return;
    }
    pthread_mutex_lock(&p->lock);
    p->sync = st;
    p->pending = pending;
    p->status_read = 1;
    pthread_mutex_unlock(&p->lock);
}

int prober_sync_status(struct prober *p, struct sync_status *st, uint64_t *pending)
{
    pthread_mutex_lock(&p->lock);
    int known = p->status_read;
    *st = p->sync;
    *pending = p->pending;
    pthread_mutex_unlock(&p->lock);
    return known ? 0 : -1;
}

/* Pings the prober's own (blocking) connection, opening it if needed. */
static void probe(struct prober *p)
{
    char err[256];
    int cut = 0;
    if (p->probe) {
        int failed = !set_busy(p, p->probe, 1) && mysql_ping(p->probe) != 0;
        set_busy(p, NULL, 1);
        if (winding_down(p, 1))
            return; /* stopping: whatever the ping said, nothing to record */
        if (failed) {
            /* The probe's connection is gone: perhaps the partition
             * restarted and is back. A fault only if a new connection fails
             * too, or every restart would cost a back-off of requests that
             * could succeed. */
            snprintf(err, sizeof(err), "%s", mysql_error(p->probe));
            mysql_close(p->probe);
            p->probe = NULL;
            if (prober_reachable(p))
                log_warn("partition %d (%s): %s", p->index, p->cfg->part[p->index].name, err);
        }
    }
    if (p->probe == NULL) {
        p->probe = connect_partition(p, 0, 1, &cut, err, sizeof(err));
        if (cut)
            return;
        if (p->probe == NULL) {
            if (prober_reachable(p) ||
                atomic_load_explicit(&p->last_fault_us, memory_order_relaxed) == 0)
                log_warn("partition %d (%s): cannot connect: %s", p->index,
                         p->cfg->part[p->index].name, err);
            prober_note_fault(p);
            return;
        }
    }
    note_ok(p);
    read_status(p);
}

static void serve(struct prober *p, struct prober_req *r)
{
    char err[256];
    if (prober_backing_off(p)) {
        /* A connect that just failed, or a statement that just timed out:
         * the requests queued behind it fail at once, not one
         * connect_timeout each. */
        r->deliver(r, NULL, "the partition is in back-off");
        return;
    }
    int cut;
    MYSQL *m = connect_partition(p, 1, 0, &cut, err, sizeof(err));
    if (m) {
        note_ok(p);
        atomic_fetch_add_explicit(&p->connects, 1, memory_order_relaxed);
    } else if (!cut) {
        log_warn("partition %d (%s): cannot connect: %s", p->index,
                 p->cfg->part[p->index].name, err);
        prober_note_fault(p);
    }
    r->deliver(r, m, m ? NULL : err);
}

static void *run(void *arg)
{
    struct prober *p = arg;
    uint64_t next_probe = 0;
    pthread_mutex_lock(&p->lock);
    while (!p->stopping) {
        if (p->head) {
            struct prober_req *r = p->head;
            p->head = r->next;
            if (p->head == NULL)
                p->tail = NULL;
            pthread_mutex_unlock(&p->lock);
            serve(p, r);
            pthread_mutex_lock(&p->lock);
            continue;
        }
        uint64_t now = clock_mono_us();
        if (p->quiet) {
            pthread_cond_wait(&p->wake, &p->lock); /* connect requests only */
            continue;
        }
        if (now >= next_probe) {
            pthread_mutex_unlock(&p->lock);
            probe(p);
            next_probe = clock_mono_us() + PROBER_INTERVAL_US;
            pthread_mutex_lock(&p->lock);
            continue;
        }
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        uint64_t wait_ns = (next_probe - now) * 1000u + (uint64_t)until.tv_nsec;
        until.tv_sec += (time_t)(wait_ns / 1000000000u);
        until.tv_nsec = (long)(wait_ns % 1000000000u);
        pthread_cond_timedwait(&p->wake, &p->lock, &until);
    }
    pthread_mutex_unlock(&p->lock);
    if (p->probe) {
        mysql_close(p->probe);
        p->probe = NULL;
    }
    mysql_thread_end();
    return NULL;
}

int prober_start(struct prober *p, const struct lkv_config *cfg, int index)
{
    memset(p, 0, sizeof(*p));
    p->cfg = cfg;
    p->index = index;
    if (pthread_mutex_init(&p->lock, NULL) != 0)
        return -1;
    if (pthread_cond_init(&p->wake, NULL) != 0) {
        pthread_mutex_destroy(&p->lock);
        return -1;
    }
    int rc = pthread_create(&p->thread, NULL, run, p);
    if (rc != 0) {
        log_error("cannot start a thread: %s", strerror(rc));
        pthread_cond_destroy(&p->wake);
        pthread_mutex_destroy(&p->lock);
        return -1;
    }
    p->started = 1;
    return 0;
}

void prober_quiet(struct prober *p)
{
    if (!p->started || p->joined)
        return;
    pthread_mutex_lock(&p->lock);
    p->quiet = 1;
    if (p->busy_probing)
        interrupt_busy(p); /* a probe, not a connection a request waits for */
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
}

void prober_stop(struct prober *p)
{
    if (!p->started || p->joined)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    struct prober_req *r = p->head;
    p->head = p->tail = NULL;
    interrupt_busy(p);
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    /* A connect may create its socket after the interruption above: cut it
     * again until the thread ends. */
    for (;;) {
        struct timespec until;
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 20 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        int rc = pthread_timedjoin_np(p->thread, NULL, &until);
        if (rc != ETIMEDOUT)
            break;
        pthread_mutex_lock(&p->lock);
        interrupt_busy(p);
        pthread_mutex_unlock(&p->lock);
    }
    p->joined = 1;
    while (r) {
        struct prober_req *next = r->next;
        r->deliver(r, NULL, "lazykvd is stopping");
        r = next;
    }
}

void prober_free(struct prober *p)
{
    if (!p->started)
        return;
    prober_stop(p);
    pthread_cond_destroy(&p->wake);
    pthread_mutex_destroy(&p->lock);
    p->started = 0;
}

void prober_request(struct prober *p, struct prober_req *r)
{
    r->next = NULL;
    pthread_mutex_lock(&p->lock);
    if (p->stopping) {
        pthread_mutex_unlock(&p->lock);
        r->deliver(r, NULL, "lazykvd is stopping");
        return;
    }
    if (p->tail)
        p->tail->next = r;
    else
        p->head = r;
    p->tail = r;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
}
