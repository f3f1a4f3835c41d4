/*
 * prober.c -- per-partition helper threads. See prober.h.
 */
#include "prober.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "partition.h"
#include "clock.h"
#include "version.h"

/* A non-blocking connection (nonblock) or the prober's own, blocking one. */
static MYSQL *connect_partition(const struct prober *p, int nonblock, char *err, size_t errlen)
{
    const struct lkv_partition_conf *pc = &p->cfg->part[p->index];
    enum lkv_status st;
    unsigned err_no;
    return partition_connect(pc, p->cfg->test_mode, pc->name, nonblock, &st, &err_no, err,
                             errlen);
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
    if (p->probe && mysql_ping(p->probe) != 0) {
        /* The probe's connection is gone: perhaps the partition restarted
         * and is back. A fault only if a new connection fails too, or every
         * restart would cost a back-off of requests that could succeed. */
        snprintf(err, sizeof(err), "%s", mysql_error(p->probe));
        mysql_close(p->probe);
        p->probe = NULL;
        if (prober_reachable(p))
            log_warn("partition %d (%s): %s", p->index, p->cfg->part[p->index].name, err);
    }
    if (p->probe == NULL) {
        p->probe = connect_partition(p, 0, err, sizeof(err));
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
    MYSQL *m = connect_partition(p, 1, err, sizeof(err));
    if (m) {
        note_ok(p);
        atomic_fetch_add_explicit(&p->connects, 1, memory_order_relaxed);
    } else {
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

void prober_stop(struct prober *p)
{
    if (!p->started || p->joined)
        return;
    pthread_mutex_lock(&p->lock);
    p->stopping = 1;
    struct prober_req *r = p->head;
    p->head = p->tail = NULL;
    pthread_cond_signal(&p->wake);
    pthread_mutex_unlock(&p->lock);
    pthread_join(p->thread, NULL);
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
