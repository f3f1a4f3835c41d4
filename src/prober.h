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
#include "histo.h"
#include "syncstatus.h"

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

/* What the partition's lanes (lane.h) record for /metrics, from every
 * worker (relaxed atomics). */
#define PART_STMT_KINDS 8 /* lane.h: enum lane_kind */
enum part_error {
    PART_ERR_CONNECT,    /* no connection could be had (refused, back-off, connect timeout) */
    PART_ERR_TIMEOUT,    /* a statement got no answer within read/write_timeout */
    PART_ERR_CONNECTION, /* a connection broke during a statement */
    PART_ERR_DEADLOCK,   /* InnoDB chose the transaction as a deadlock victim */
    PART_ERR_OTHER,      /* any other error of a statement */
    PART_ERR_KINDS
};

struct part_stats {
    atomic_int in_flight;                              /* statements (or transactions) running */
    atomic_uint_fast64_t statements[PART_STMT_KINDS];  /* run, by lane kind */
    atomic_uint_fast64_t requests[PART_STMT_KINDS];    /* requests they carried (batching) */
    atomic_uint_fast64_t errors[PART_ERR_KINDS];
    atomic_uint_fast64_t reconnects;                   /* a lane's connection opened again */
    struct histo duration[PART_STMT_KINDS];            /* statement (transaction) latency */
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
    struct part_stats stats;             /* written by the lanes */
    /* read every SYNCSTATUS_INTERVAL_US on the probe's connection, under lock */
    struct sync_status sync;             /* the last sync pass recorded here */
    uint64_t pending;                    /* rows changed here, not yet stamped by a pass */
    int status_read;                     /* sync and pending have been read */
    uint64_t next_status_us;             /* the thread's: when to read them again */
};

/* What the prober last read of the sync's status and the backlog (see
 * syncstatus.h). 0 when it has read them, else -1. */
int prober_sync_status(struct prober *p, struct sync_status *st, uint64_t *pending);

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
