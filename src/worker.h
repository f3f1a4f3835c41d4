/*
 * worker.h -- the threads that talk to the partitions: each runs one event
 * loop (epoll) over its own connections, so no thread ever sleeps on a
 * database round trip.
 *
 * libmicrohttpd's thread parses a request, suspends its connection and
 * hands the work (a struct kv_op, kv.h) to one worker through the worker's
 * inbox; the worker runs it on its lanes (lane.h: one connection and one
 * batched statement in flight per partition and kind), and when the answer
 * is known renders the reply and resumes the connection. Every operation on
 * a key goes to the worker the key hashes to, so its cached statements,
 * batches and write order are that worker's alone.
 *
 * A worker's state is touched only by its own thread, except the inbox
 * (under its lock) and the counters (relaxed atomics, summed by /metrics).
 */
#ifndef LKV_WORKER_H
#define LKV_WORKER_H

#include <pthread.h>
#include <stdint.h>

#include "config.h"
#include "kvsql.h"
#include "lane.h"
#include "prober.h"
#include "rcache.h"
#include "stats.h"

struct kv_op;
struct watch_note;

/* What every worker shares, read-only while they run. */
struct backend {
    const struct lkv_config *cfg;  /* ref */
    const char *const *sql;        /* ref: kvsql texts */
    struct prober *probers;        /* ref: one per partition */
    int partitions;
    struct watch_hub *hub;         /* ref: waiting requests, at home on worker 0 */
};

struct worker {
    const struct backend *be;     /* ref */
    int index;
    pthread_t thread;
    int started;
    int epfd;                     /* owned */
    int evfd;                     /* owned: wakes the loop for the inbox */
    pthread_mutex_t lock;         /* the inbox */
    struct kv_op *ops_head, *ops_tail;  /* under lock */
    struct lane *delivered;       /* under lock: lanes whose connection came */
    struct watch_note *notes;     /* under lock: keys written (worker 0) */
    int close_watches;            /* under lock: answer waiting requests (worker 0) */
    int stop;                     /* under lock */
    int woken;                    /* under lock: evfd already written */
    int stopping;                 /* loop-local copy of stop */
    int joined;                   /* the thread has ended */
    struct lane *lanes;           /* owned: partitions * LANE_KINDS */
    struct stats stats;           /* written by this thread only */
    struct rcache cache;          /* owned: lazy reads of this worker's keys */
    uint64_t rng;                 /* xorshift64 state */
};

/* Starts worker index. 0, or -1 (logged; nothing left to free). */
int worker_start(struct worker *w, const struct backend *be, int index);

/* Stops the loop: everything still queued or in flight is answered with
 * LKV_EUNAVAIL (their done callbacks run), the connections are closed and
 * the thread joined. worker_submit keeps working (it refuses). Safe on a
 * worker that never started. */
void worker_stop(struct worker *w);

/* Stops w if need be and frees it; no worker_submit may follow. */
void worker_free(struct worker *w);

/* Hands op to the worker (any thread). Its done callback runs on the
 * worker's thread, or at once on the caller's when the worker has stopped
 * (then with LKV_EUNAVAIL). */
void worker_submit(struct worker *w, struct kv_op *op);

/* Hands a written key to worker 0's watch hub (any thread). */
void worker_post_note(struct worker *w, struct watch_note *note);

/* Has worker 0 answer every waiting request (503) and refuse new waits:
 * the first step of a shutdown (any thread). */
void worker_close_watches(struct worker *w);

/* The lane of partition p and kind k (worker thread only). */
struct lane *worker_lane(struct worker *w, int p, enum lane_kind k);

/* A pseudo-random number (worker thread only). */
uint64_t worker_random(struct worker *w);

/* This worker's counters. */
struct stats *worker_stats(struct worker *w);

/* dbconn_watch_fn for lanes: owner is the lane. */
void worker_watch(struct dbconn *c, int fd, unsigned events, void *owner);

/* prober_deliver_fn for lanes: r->arg is the lane. Runs on the prober's
 * thread; the lane sees the connection on its worker's thread. */
void worker_deliver_connection(struct prober_req *r, MYSQL *m, const char *error);

#endif
