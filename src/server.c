/*
 * server.c -- the libmicrohttpd daemon and the request lifecycle.
 *
 * Lifecycle of one request (libmicrohttpd calls, in order):
 *   1. uri_log_cb: allocates struct request with the raw request target; it
 *      becomes *req_cls. The raw target is decoded by uri.c, not by MHD.
 *   2. on_access, first call: parses the target, reads the headers, and
 *      refuses a Content-Length over max_value_size at once (413, body not
 *      read). Otherwise nothing is queued yet: a response queued on the first
 *      call makes MHD 0.9.75 close the connection, which costs keep-alive.
 *   3. on_access with upload data: appends to the body. A chunked body that
 *      passes max_value_size is freed and the rest discarded as it arrives
 *      (MHD 0.9.75 cannot queue a response in the middle of an upload), then
 *      answered 413; one that goes on past twice the limit is cut off by
 *      closing the connection.
 *   4. on_access, last call: handlers.c builds the reply; it is queued and
 *      the MHD response destroyed at once (MHD holds its own reference).
 *   5. on_completed: frees the request, whatever happened before.
 */
#include "server.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>

#include "handlers.h"
#include "log.h"
#include "version.h"

/* MHD's per-connection memory pool holds the request line, the headers and
 * the response headers; requests that do not fit get 431 (414 for the URI).
 * MHD 0.9.75 zeroes the whole pool between keep-alive requests, so each idle
 * connection costs its full size in RSS: the pool is sized from key_length
 * (a key can be 3x longer percent-encoded, in the URI and in Location). */
static size_t connection_memory_limit(const struct lkv_config *cfg)
{
    size_t want = 2 * (3 * (size_t)cfg->key_length + 1024);
    if (want < 8 * 1024)
        want = 8 * 1024;
    return want < 32 * 1024 ? want : 32 * 1024;
}

static void worker_free(void *p)
{
    struct worker *w = p;
    struct lkv_server *srv = w->srv;
    pthread_mutex_lock(&srv->workers_lock);
    if (w->prev)
        w->prev->next = w->next;
    else
        srv->workers = w->next;
    if (w->next)
        w->next->prev = w->prev;
    pthread_mutex_unlock(&srv->workers_lock);
    for (int i = 0; i < w->n; i++)
        pconn_close(&w->conn[i]);
    free(w);
    mysql_thread_end();
}

struct worker *server_worker(struct lkv_server *srv)
{
    struct worker *w = pthread_getspecific(srv->worker_key);
    if (w)
        return w;
    int n = srv->cfg->partitions;
    w = calloc(1, sizeof(*w) + (size_t)n * sizeof(w->conn[0]));
    if (w == NULL)
        return NULL;
    mysql_thread_init();
    w->srv = srv;
    w->n = n;
    w->rng = version_now_us() ^ (uint64_t)(uintptr_t)w ^ 0x9e3779b97f4a7c15ULL;
    for (int i = 0; i < n; i++) {
        pconn_init(&w->conn[i], srv->cfg, i, (const char *const *)srv->sql.text, srv->sql.count);
        pconn_share_health(&w->conn[i], &srv->health[i]);
        pconn_count_deadlocks(&w->conn[i], &w->stats.db_deadlock_retries_total);
    }
    pthread_mutex_lock(&srv->workers_lock);
    w->next = srv->workers;
    if (w->next)
        w->next->prev = w;
    srv->workers = w;
    pthread_mutex_unlock(&srv->workers_lock);
    if (pthread_setspecific(srv->worker_key, w) != 0) {
        worker_free(w);
        return NULL;
    }
    return w;
}

void server_stats(struct lkv_server *srv, struct stats *totals)
{
    pthread_mutex_lock(&srv->workers_lock);
    for (struct worker *w = srv->workers; w; w = w->next)
        stats_sum(totals, &w->stats);
    pthread_mutex_unlock(&srv->workers_lock);
}

/* Counts a response in this thread's worker (created if need be). */
static void count_response(struct lkv_server *srv, unsigned status)
{
    struct worker *w = server_worker(srv);
    if (w == NULL)
        return;
    stats_add(&w->stats, http_requests_total, 1);
    if (status >= 500)
        stats_add(&w->stats, http_responses_5xx_total, 1);
    else if (status >= 400)
        stats_add(&w->stats, http_responses_4xx_total, 1);
    else if (status >= 300)
        stats_add(&w->stats, http_responses_3xx_total, 1);
    else
        stats_add(&w->stats, http_responses_2xx_total, 1);
}

uint64_t worker_random(struct worker *w)
{
    uint64_t x = w->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return w->rng = x;
}

static enum method method_of(const char *m)
{
    static const struct { const char *name; enum method m; } table[] = {
        {"GET", M_GET}, {"HEAD", M_HEAD}, {"POST", M_POST}, {"PUT", M_PUT}, {"DELETE", M_DELETE},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (strcmp(m, table[i].name) == 0)
            return table[i].m;
    return M_OTHER;
}

static void *uri_log_cb(void *cls, const char *uri, struct MHD_Connection *conn)
{
    (void)cls;
    (void)conn;
    struct request *req = calloc(1, sizeof(*req));
    if (req == NULL)
        return NULL;
    req->raw_uri = strdup(uri);
    if (req->raw_uri == NULL) {
        free(req);
        return NULL;
    }
    return req;
}

/* Never called for HEAD: MHD sends no body. Ends the response if it were. */
static ssize_t no_body_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)cls;
    (void)pos;
    (void)buf;
    (void)max;
    return MHD_CONTENT_READER_END_WITH_ERROR;
}

static enum MHD_Result send_reply(struct lkv_server *srv, struct MHD_Connection *conn,
                                  struct reply *rep)
{
    struct MHD_Response *r;
    count_response(srv, rep->status);
    if (rep->head_only) {
        /* HEAD of a raw value: MHD sends Content-Length = head_size and no
         * body, so the reader callback is never called. */
        r = MHD_create_response_from_callback(rep->head_size, 4096, no_body_reader, NULL,
                                              NULL);
    } else {
        r = MHD_create_response_from_buffer(rep->body_len, rep->body ? rep->body : "",
                                            rep->body ? MHD_RESPMEM_MUST_FREE
                                                      : MHD_RESPMEM_PERSISTENT);
        if (r)
            rep->body = NULL; /* MHD owns it now */
    }
    if (r == NULL) {
        reply_free(rep);
        return MHD_NO;
    }
    if (rep->content_type && rep->status != 304)
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONTENT_TYPE, rep->content_type);
    for (int i = 0; i < rep->nheaders; i++)
        MHD_add_response_header(r, rep->header[i].name, rep->header[i].value);
    enum MHD_Result ret = MHD_queue_response(conn, rep->status, r);
    MHD_destroy_response(r);
    reply_free(rep);
    return ret;
}

static enum MHD_Result send_error(struct lkv_server *srv, struct MHD_Connection *conn,
                                  struct request *req, unsigned status, const char *detail)
{
    struct reply rep;
    memset(&rep, 0, sizeof(rep));
    handle_error(req, &rep, status, detail);
    return send_reply(srv, conn, &rep);
}

/* Strict Content-Length: digits only. -1 when absent or malformed. */
static long long content_length(struct MHD_Connection *conn)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_HEADER_KIND,
                                                MHD_HTTP_HEADER_CONTENT_LENGTH);
    long long n;
    if (v == NULL || config_parse_ll(v, &n) != 0 || n < 0)
        return -1;
    return n;
}

static void read_headers(struct MHD_Connection *conn, struct request *req)
{
    req->accept = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_ACCEPT);
    req->if_match = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_MATCH);
    req->if_none_match =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_NONE_MATCH);
    req->content_type =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_size, void **req_cls)
{
    (void)url;
    (void)version;
    struct lkv_server *srv = cls;
    struct request *req = *req_cls;
    long long max = srv->cfg->max_value_size;
    if (req == NULL) {
        static struct request oom; /* read-only: no URI, no body */
        return send_error(srv, conn, &oom, 503, "out of memory");
    }
    if (!req->begun) {
        req->begun = 1;
        req->method = method_of(method);
        req->uri_status = uri_parse(req->raw_uri, &req->uri);
        read_headers(conn, req);
        long long len = content_length(conn);
        if (len > max)
            return send_error(srv, conn, req, 413, "the value is larger than max_value_size");
        if (len > 0 && buf_reserve(&req->body, (size_t)len) != 0)
            return send_error(srv, conn, req, 503, "out of memory");
        return MHD_YES;
    }
    if (*upload_size > 0) {
        size_t n = *upload_size;
        *upload_size = 0;
        if (req->too_large || req->body.len + n > (size_t)max) {
            req->too_large = 1;
            req->discarded += req->body.len + n;
            buf_free(&req->body);
            return req->discarded > 2ULL * (unsigned long long)max ? MHD_NO : MHD_YES;
        }
        if (buf_append(&req->body, upload_data, n) != 0) {
            buf_free(&req->body);
            return send_error(srv, conn, req, 503, "out of memory");
        }
        return MHD_YES;
    }
    if (req->too_large)
        return send_error(srv, conn, req, 413, "the value is larger than max_value_size");
    struct worker *w = server_worker(srv);
    if (w == NULL)
        return send_error(srv, conn, req, 503, "out of memory");
    struct reply rep;
    handle_request(w, req, &rep);
    return send_reply(srv, conn, &rep);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)cls;
    (void)conn;
    (void)toe;
    struct request *req = *req_cls;
    if (req) {
        request_free(req);
        free(req);
        *req_cls = NULL;
    }
}

/* Refuses a connection past [server] max_connections: MHD closes it at
 * once, instead of leaving it unanswered in the listen backlog. The slot is
 * taken here, atomically, so a burst of accepts on several pool threads
 * cannot overshoot; on_connection() gives it back when the connection ends. */
static enum MHD_Result accept_policy(void *cls, const struct sockaddr *addr, socklen_t len)
{
    (void)addr;
    (void)len;
    struct lkv_server *srv = cls;
    if (atomic_fetch_add(&srv->connections, 1) < srv->cfg->max_connections)
        return MHD_YES;
    atomic_fetch_sub(&srv->connections, 1);
    return MHD_NO;
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_ctx,
                          enum MHD_ConnectionNotificationCode code)
{
    (void)conn;
    (void)socket_ctx;
    struct lkv_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_CLOSED)
        atomic_fetch_sub(&srv->connections, 1);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_warn("http: %s", msg);
}

int server_start(struct lkv_server *srv, const struct lkv_config *cfg)
{
    srv->cfg = cfg;
    if (store_sql_build(&srv->sql, cfg->table_name) != 0) {
        log_error("out of memory");
        return -1;
    }
    srv->health = calloc((size_t)cfg->partitions, sizeof(*srv->health));
    if (srv->health == NULL) {
        log_error("out of memory");
        return -1;
    }
    srv->readers = calloc((size_t)cfg->partitions, sizeof(*srv->readers));
    srv->appliers = calloc((size_t)cfg->partitions, sizeof(*srv->appliers));
    if (srv->readers == NULL || srv->appliers == NULL) {
        log_error("out of memory");
        return -1;
    }
    for (; srv->nbatchers < cfg->partitions; srv->nbatchers++) {
        int i = srv->nbatchers;
        /* A read's size is unknown before it runs; each row of a result is
         * its own packet, so reads are not counted. Copies are. */
        if (batcher_init(&srv->readers[i], cfg->batch, 0) != 0) {
            log_error("pthread_mutex_init failed");
            return -1;
        }
        if (batcher_init(&srv->appliers[i], cfg->batch, STORE_MANY_BYTES) != 0) {
            batcher_destroy(&srv->readers[i]);
            log_error("pthread_mutex_init failed");
            return -1;
        }
    }
    if (keylocks_init(&srv->keylocks, cfg->partitions) != 0) {
        log_error("out of memory");
        return -1;
    }
    if (pthread_key_create(&srv->worker_key, worker_free) != 0) {
        log_error("pthread_key_create failed");
        return -1;
    }
    if (pthread_mutex_init(&srv->workers_lock, NULL) != 0) {
        pthread_key_delete(srv->worker_key);
        log_error("pthread_mutex_init failed");
        return -1;
    }
    srv->workers = NULL;
    srv->worker_key_set = 1;

    struct addrinfo hints, *ai = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    char port[16];
    snprintf(port, sizeof(port), "%d", cfg->listen_port);
    int rc = getaddrinfo(cfg->listen_host, port, &hints, &ai);
    if (rc != 0) {
        log_error("%s: [server] listen: cannot resolve '%s': %s", cfg->path, cfg->listen_host,
                  gai_strerror(rc));
        return -1;
    }
    /* poll(), not epoll: libmicrohttpd 0.9.75 registers connections for
     * edge-triggered epoll without EPOLLRDHUP and takes a short recv() to
     * mean the socket is drained (connection.c, recv_param_adapter). When a
     * client's last bytes and its FIN arrive together, the one EPOLLIN edge
     * is spent on the data, no edge ever comes for the FIN, and the
     * connection (with its buffers) waits for connection_timeout: any client
     * could pin descriptors and memory by starting uploads and hanging up.
     * poll() is level-triggered: the next pass sees the FIN and MHD closes
     * the connection at once, in every state. Its cost is a pass over the
     * thread's connections per wake-up. */
    unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    srv->daemon = MHD_start_daemon(
        flags, 0, accept_policy, srv, on_access, srv,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv, /* first, to catch option errors */
        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(cfg->threads > 1 ? cfg->threads : 0),
        /* A hard stop a little above max_connections: accept_policy() is
         * what refuses, cleanly, past max_connections. */
        MHD_OPTION_CONNECTION_LIMIT, (unsigned)cfg->max_connections + 64u,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, connection_memory_limit(cfg),
        MHD_OPTION_URI_LOG_CALLBACK, uri_log_cb, srv,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        MHD_OPTION_END);
    freeaddrinfo(ai);
    if (srv->daemon == NULL) {
        log_error("cannot listen on %s:%d (address in use?)", cfg->listen_host, cfg->listen_port);
        return -1;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(srv->daemon, MHD_DAEMON_INFO_BIND_PORT);
    srv->port = info ? info->port : cfg->listen_port;
    return 0;
}

void server_stop(struct lkv_server *srv)
{
    if (srv->daemon) {
        MHD_stop_daemon(srv->daemon);
        srv->daemon = NULL;
    }
    if (srv->worker_key_set) {
        pthread_key_delete(srv->worker_key);
        pthread_mutex_destroy(&srv->workers_lock);
        srv->worker_key_set = 0;
    }
    store_sql_free(&srv->sql);
    keylocks_destroy(&srv->keylocks);
    free(srv->health);
    srv->health = NULL;
    for (int i = 0; i < srv->nbatchers; i++) {
        batcher_destroy(&srv->readers[i]);
        batcher_destroy(&srv->appliers[i]);
    }
    free(srv->readers);
    free(srv->appliers);
    srv->readers = srv->appliers = NULL;
    srv->nbatchers = 0;
}
