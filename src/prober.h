/*
 * prober.h -- one helper thread per partition: it opens the connections the
 * workers' event loops use, and probes the partition once a second.
 *
 * Connecting blocks (name lookup, TCP and TLS handshakes, authentication),
 * and an event loop must never block, so a worker asks the partition's
 * prober for a connection and gets the handle back through its inbox. The
 * prober also keeps what the process knows of the partition's health, which
 * /health reads without any database work, and the back-off that makes
 * requests to a partition fail fast for a second after a fault.
 */
#ifndef LKV_PROBER_H
#define LKV_PROBER_H

#include <mysql.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"

/* After a connection fault, requests fail fast for this long, unless a
 * connection succeeds meanwhile. */
#define PROBER_BACKOFF_US 1000000u
/* How often an idle partition is probed. */
#define PROBER_INTERVAL_US 1000000u

struct prober_req;
/* Called on the prober's thread with a connected non-blocking handle (the
 * callee owns it), or NULL with why it failed. */
typedef void (*prober_deliver_fn)(struct prober_req *r, MYSQL *m, const char *error);

struct prober_req {
    struct prober_req *next;   /* in the prober's queue */
    prober_deliver_fn deliver;
    void *arg;                 /* ref: the requester's */
};

struct prober {
    const struct lkv_config *cfg;        /* ref */
    int index;
    pthread_t thread;
    int started;
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct prober_req *head, *tail;      /* connect requests, under lock */
    int stopping;                        /* under lock */
    int quiet;                           /* under lock: no more probes (prober_quiet) */
    MYSQL *busy;                         /* under lock: the handle a blocking call of the
                                            thread uses now, kept open while set */
    int busy_probing;                    /* under lock: that call is a probe's */
    int joined;                          /* the thread has ended */
    MYSQL *probe;                        /* owned by the thread: its own connection */
    atomic_uint_fast64_t last_ok_us;     /* last successful probe or connect */
    atomic_uint_fast64_t last_fault_us;  /* last failed probe, connect or statement */
    atomic_uint_fast64_t connects;       /* connections opened for the workers */
};

/* Starts the thread for partition index of cfg. 0, or -1 (logged). */
int prober_start(struct prober *p, const struct lkv_config *cfg, int index);

/* lazykvd is stopping: no more probes, and a probe under way (blocked on a
 * hung partition for up to read_timeout) is cut short by shutting its
 * socket down. Connections asked for are still opened, for the requests
 * finishing meanwhile. Safe on a prober that never started. */
void prober_quiet(struct prober *p);

/* Stops and joins the thread, cutting short the connect it may be blocked
 * in (except a TCP handshake with no answer, which ends within
 * connect_timeout); requests still queued, and any made afterwards, are
 * delivered NULL at once. Safe on a prober that never started. */
void prober_stop(struct prober *p);

/* Stops p if need be and frees it; no prober_request may follow. */
void prober_free(struct prober *p);

/* Queues a request for a connection (r is the caller's, untouched until
 * delivered or the prober stops). */
void prober_request(struct prober *p, struct prober_req *r);

/* Records a fault seen by a worker: back-off starts now. */
void prober_note_fault(struct prober *p);

/* 1 while requests should fail fast: a fault less than PROBER_BACKOFF_US
 * ago and no success since. */
int prober_backing_off(const struct prober *p);

/* 1 when the last thing known of the partition is a success. */
int prober_reachable(const struct prober *p);

#endif
