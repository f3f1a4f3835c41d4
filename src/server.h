/*
 * server.h -- the lazykvd process state and the libmicrohttpd daemon.
 *
 * struct lkv_server is the only process-wide state of lazykvd. It is filled
 * before the daemon starts and read-only while it runs, but for counters,
 * the tokens in force (auth.h: swapped on SIGHUP under their own lock) and
 * the access log's descriptor (reopened on SIGHUP with dup2).
 * Threads: libmicrohttpd's thread pool ([server] http_threads) does all the
 * HTTP (TLS, parsing, sending); [server] threads workers (worker.h) do all
 * the database work,
 * each from its own event loop; one prober per partition (prober.h) opens
 * connections and probes. A request that needs the database is suspended
 * while a worker runs it, so no thread ever waits for a round trip and the
 * number of threads never grows with the number of requests in flight.
 */
#ifndef LKV_SERVER_H
#define LKV_SERVER_H

#include <stdatomic.h>
#include <stdint.h>

#include "accesslog.h"
#include "auth.h"
#include "config.h"
#include "histo.h"
#include "kvsql.h"
#include "prober.h"
#include "stats.h"
#include "stream.h"
#include "tls.h"
#include "worker.h"

enum server_route { SERVER_LAZY, SERVER_CANONICAL, SERVER_LIST, SERVER_ADMIN, SERVER_ROUTES };
#define SERVER_METHODS 6 /* handlers.h: enum method */

struct lkv_server {
    const struct lkv_config *cfg; /* ref: owned by main */
    struct kvsql sql;             /* owned: statement texts */
    int sql_built;
    struct MHD_Daemon *daemon;    /* owned */
    int port;                     /* the port actually bound */
    atomic_int connections;       /* client connections open now */
    atomic_int active;            /* requests begun (request line read), until completed */
    atomic_int dispatched;        /* requests handed to a worker, until completed */
    atomic_int stopping;          /* server_stop has begun: answers close */
    struct stats http;            /* written by libmicrohttpd's threads (atomic adds) */
    atomic_uint next_worker;      /* for lists: the worker of the next one */
    struct prober *probers;       /* owned: one per partition */
    int nprobers;                 /* started */
    struct worker *workers;       /* owned */
    int nworkers;                 /* started */
    struct backend backend;       /* what the workers share */
    struct tls_server tls;        /* owned: HTTPS credentials; cert_pem NULL: plain HTTP */
    struct auth auth;             /* owned: bearer tokens; auth.path NULL: no [auth] */
    struct access_log access;     /* owned: fd -1 when off */
    const struct stream_hooks *stream_hooks; /* ref: suspend and resume (stream.h) */
    /* request latency by route (lazy, canonical, list, admin) and method
     * (handlers.h enum method), observed by libmicrohttpd's threads */
    struct histo http_duration[SERVER_ROUTES][SERVER_METHODS];
};

/* Reads what a bad file must stop lazykvd for, before anything starts: the
 * HTTPS credentials, the tokens file, the access log. 0, or -1 with one
 * line in err (lazykvd exits 2). server_stop releases them. */
int server_prepare(struct lkv_server *srv, const struct lkv_config *cfg, char *err,
                   size_t errlen);

/* SIGHUP: reopens the access log and reads the tokens file again; each
 * failure is logged and leaves the old one in use. */
void server_reload(struct lkv_server *srv);

/* Starts the probers, the workers and the HTTP daemon on cfg's listen
 * address (listen_port 0 picks a free port, see srv->port). 0, or -1 after
 * logging why. */
int server_start(struct lkv_server *srv, const struct lkv_config *cfg);

/* Stops accepting, answers the waiting watches 503, lets the requests in
 * flight finish (uploads, database work and answers being sent: up to 2 s),
 * answers 503 to what still waits on a worker (giving those answers 1 s to
 * be sent), stops everything and frees srv's state. Bounded so that
 * lazykvd exits within 5 s of SIGTERM (tests/integration/test_install.py);
 * a request still uploading or downloading after 2 s is cut off. */
void server_stop(struct lkv_server *srv);

/* Sums every thread's counters into totals (zeroed by the caller). */
void server_stats(struct lkv_server *srv, struct stats *totals);

#endif
