/*
 * server.h -- the lazykvd process state and the libmicrohttpd daemon.
 *
 * struct lkv_server is the only process-wide state of lazykvd. It is filled
 * before the daemon starts and read-only while it runs; per-thread state
 * (database connections, a random generator) lives in struct worker, one per
 * MHD pool thread, reached through a pthread key. The one lock on the
 * request path is a partition's batchers' (batcher.h), held only to queue
 * and hand over requests, never across a database call.
 */
#ifndef LKV_SERVER_H
#define LKV_SERVER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "partition.h"
#include "batcher.h"
#include "keylock.h"
#include "stats.h"
#include "store.h"

struct lkv_server {
    const struct lkv_config *cfg; /* ref: owned by main */
    struct store_sql sql;         /* owned: statement texts */
    struct MHD_Daemon *daemon;    /* owned */
    pthread_key_t worker_key;     /* this thread's struct worker */
    int worker_key_set;           /* 1 once worker_key is created */
    int port;                     /* the port actually bound */
    atomic_int connections;       /* client connections open now */
    pthread_mutex_t workers_lock; /* guards the workers list (not the request path) */
    struct worker *workers;       /* ref: every live worker, for /metrics */
    struct partition_health *health; /* owned: one per partition, shared by workers */
    struct batcher *readers;      /* owned: one per partition, shared by workers */
    struct batcher *appliers;     /* owned: the same, for canonical writes' copies */
    int nbatchers;                /* partitions whose two batchers are initialised */
    struct keylocks keylocks;     /* owned: orders writes of a key (keylock.h) */
};

/* Per-thread state. Created on a thread's first request, freed when the
 * thread exits (pthread key destructor), so connections have one owner. */
struct worker {
    struct lkv_server *srv; /* ref */
    struct worker *prev, *next; /* in srv->workers */
    struct stats stats;     /* written by this thread only */
    uint64_t rng;           /* xorshift64 state for lazy read placement */
    int n;                  /* partitions */
    struct pconn conn[];    /* owned: one connection per partition */
};

/* Starts the HTTP daemon on cfg's listen address (listen_port 0 picks a free
 * port, see srv->port). 0, or -1 after logging why. */
int server_start(struct lkv_server *srv, const struct lkv_config *cfg);

/* Stops the daemon (waiting for requests in flight) and frees srv's state. */
void server_stop(struct lkv_server *srv);

/* This thread's worker, created now if needed; NULL when out of memory. */
struct worker *server_worker(struct lkv_server *srv);

/* Sums every worker's counters into totals (zeroed by the caller). */
void server_stats(struct lkv_server *srv, struct stats *totals);

/* A pseudo-random number from this worker's generator. */
uint64_t worker_random(struct worker *w);

#endif
