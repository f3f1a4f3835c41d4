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
 *      handle_begin() answers what the headers alone decide (a malformed
 *      digest field, ...) and starts hashing a write's body.
 *   3. on_access with upload data: receive_body() takes it and hashes it
 *      (request_body_hash). A write's body that goes on past one chunk
 *      (chunks.h) is streamed to the key's master from then on (upload.h),
 *      the connection suspended whenever the database is slower than the
 *      client. A body that passes max_value_size is freed and the rest
 *      discarded unhashed as it arrives (MHD 0.9.75 cannot queue a response
 *      in the middle of an upload), then answered 413; one that goes on past
 *      twice the limit is cut off by closing the connection.
 *   4. on_access, last call: handlers.c answers at once, or prepares an
 *      operation; then the connection is suspended and the operation handed
 *      to the worker its key routes to (worker.h).
 *   5. op_done, on the worker's thread: the reply is rendered into the
 *      request and the connection resumed; MHD calls on_access again and
 *      the reply is queued (the MHD response destroyed at once: MHD holds
 *      its own reference).
 *   6. on_completed: frees the request, whatever happened before.
 * A suspended connection neither times out nor notices its client leaving;
 * its operation always ends (every statement has a deadline), and server_stop
 * answers whatever is left before it stops the daemon.
 */
#include "server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "chunks.h"
#include "clock.h"
#include "handlers.h"
#include "log.h"
#include "spool.h"
#include "version.h"

/* MHD's per-connection memory pool holds the request line, the headers and
 * the response headers; requests that do not fit get 431 (414 for the URI).
 * MHD 0.9.75 zeroes the whole pool between keep-alive requests, so each idle
 * connection costs its full size in RSS: the pool is sized from key_length
 * (a key can be 3x longer percent-encoded, in the URI and in Location), at
 * least a page: 10,000 idle connections then cost about 40 MiB. */
static size_t connection_memory_limit(const struct lkv_config *cfg)
{
    size_t want = 2 * (3 * (size_t)cfg->key_length + 1024);
    if (want < 4 * 1024)
        want = 4 * 1024;
    return want < 32 * 1024 ? want : 32 * 1024;
}

void server_stats(struct lkv_server *srv, struct stats *totals)
{
    stats_sum(totals, &srv->http);
    for (int i = 0; i < srv->nworkers; i++)
        stats_sum(totals, worker_stats(&srv->workers[i]));
}

/* Counts a response (libmicrohttpd's thread). */
static void count_response(struct lkv_server *srv, unsigned status)
{
    stats_add(&srv->http, http_requests_total, 1);
    if (status >= 500)
        stats_add(&srv->http, http_responses_5xx_total, 1);
    else if (status >= 400)
        stats_add(&srv->http, http_responses_4xx_total, 1);
    else if (status >= 300)
        stats_add(&srv->http, http_responses_3xx_total, 1);
    else
        stats_add(&srv->http, http_responses_2xx_total, 1);
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
    struct lkv_server *srv = cls;
    (void)conn;
    struct request *req = calloc(1, sizeof(*req));
    if (req == NULL)
        return NULL;
    req->raw_uri = strdup(uri);
    if (req->raw_uri == NULL) {
        free(req);
        return NULL;
    }
    req->arrived = (long long)time(NULL);
    req->started_us = clock_mono_us();
    req->partition = -1;
    atomic_fetch_add(&srv->active, 1); /* until on_completed */
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

static void suspend_conn(void *conn)
{
    MHD_suspend_connection(conn);
}

static void resume_conn(void *conn)
{
    MHD_resume_connection(conn);
}

static const struct stream_hooks mhd_hooks = {suspend_conn, resume_conn};

/* The content reader of a chunked value (download.h). */
static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    ssize_t n = download_read(cls, pos, buf, max);
    return n < 0 ? MHD_CONTENT_READER_END_WITH_ERROR : n;
}

static void stream_free(void *cls)
{
    download_release(cls);
}

/* Bytes libmicrohttpd asks a chunked value's reader for at a time. */
#define STREAM_BLOCK (64 * 1024)

/* Queues rep on conn and records what was sent in req (NULL: not
 * recorded). */
static enum MHD_Result send_reply(struct lkv_server *srv, struct MHD_Connection *conn,
                                  struct request *req, struct reply *rep)
{
    struct MHD_Response *r;
    count_response(srv, rep->status);
    if (req) {
        req->status = rep->status;
        req->bytes_sent = rep->head_only || rep->status == 304 ? 0
                          : rep->stream                    ? rep->stream_size
                                                           : rep->body_len;
    }
    if (rep->stream) {
        r = MHD_create_response_from_callback(rep->stream_size, STREAM_BLOCK, stream_reader,
                                              rep->stream, stream_free);
        if (r) {
            download_attach(rep->stream, conn);
            rep->stream = NULL; /* MHD owns it now: stream_free */
        }
    } else if (rep->head_only) {
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
    if (atomic_load(&srv->stopping))
        MHD_add_response_header(r, MHD_HTTP_HEADER_CONNECTION, "close");
    for (int i = 0; i < rep->nheaders; i++)
        MHD_add_response_header(r, rep->header[i].name, rep->header[i].value);
    enum MHD_Result ret = MHD_queue_response(conn, rep->status, r);
    MHD_destroy_response(r);
    reply_free(rep);
    return ret;
}

static enum MHD_Result send_error(struct lkv_server *srv, struct MHD_Connection *conn,
                                  struct request *req, enum lkv_status st, const char *detail)
{
    struct reply rep;
    memset(&rep, 0, sizeof(rep));
    handle_error(req, &rep, http_status_of(st), detail);
    return send_reply(srv, conn, req, &rep);
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
    req->range = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
    req->if_range = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_IF_RANGE);
    req->authorization =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION);
    req->referer = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_REFERER);
    req->user_agent =
        MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_USER_AGENT);
}

/* A header field's lines, joined as one list (RFC 9110 5.3). */
struct field_lines {
    const char *name;
    struct buf joined;
    int lines;
    int failed;                 /* out of memory */
};

static enum MHD_Result join_line(void *cls, enum MHD_ValueKind kind, const char *key,
                                 const char *value)
{
    struct field_lines *f = cls;
    (void)kind;
    if (key == NULL || strcasecmp(key, f->name) != 0)
        return MHD_YES;
    if ((f->lines++ > 0 && buf_puts(&f->joined, ", ") != 0) ||
        buf_puts(&f->joined, value ? value : "") != 0) {
        f->failed = 1;
        return MHD_NO;
    }
    return MHD_YES;
}

/* The digest fields of a write (Content-Digest, Repr-Digest, Content-MD5).
 * A field sent on several lines is read as the one list they make (RFC
 * 9110 5.3): a dictionary member on a second line is a check the client
 * asked for too. Such a value is joined into req->joined; a field sent
 * once is MHD's own string. 0, or -1 when out of memory. */
static int read_digest_fields(struct MHD_Connection *conn, struct request *req)
{
    static const char *const names[3] = {"Content-Digest", "Repr-Digest", "Content-MD5"};
    const char **dst[3] = {&req->content_digest, &req->repr_digest, &req->content_md5};
    for (int i = 0; i < 3; i++) {
        struct field_lines f = {.name = names[i], .joined = BUF_INIT};
        *dst[i] = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, names[i]);
        if (*dst[i] == NULL)
            continue;
        MHD_get_connection_values(conn, MHD_HEADER_KIND, join_line, &f);
        if (f.failed) {
            buf_free(&f.joined);
            return -1;
        }
        if (f.lines > 1) {
            req->joined[i] = buf_steal(&f.joined, NULL);
            if (req->joined[i] == NULL)
                return -1;
            *dst[i] = req->joined[i];
        }
        buf_free(&f.joined);
    }
    return 0;
}

/* The operation of a suspended request has run (worker's thread): render
 * its reply and resume the connection. The request belongs to
 * libmicrohttpd again from the resume on: nothing here touches it after. */
static void op_done(struct kv_op *op)
{
    struct request *req = op->arg;
    struct lkv_server *srv = req->srv;
    struct MHD_Connection *conn = req->conn;
    if (op->watch != WATCH_NONE)
        watch_end(srv->backend.hub);
    handle_op_done(req, &req->reply);
    MHD_resume_connection(conn);
}

/* Suspends the connection and hands req's operation to its worker: a key's
 * operations all go to one worker; lists and tree deletes take turns. */
static void dispatch(struct lkv_server *srv, struct MHD_Connection *conn, struct request *req)
{
    struct kv_op *op = &req->op;
    int w;
    if (op->watch == WATCH_KEY || op->watch == WATCH_PREFIX)
        w = 0; /* home of the hub where watches wait (watch.h) */
    else if (op->rec.key == NULL)
        w = (int)(atomic_fetch_add(&srv->next_worker, 1) % (unsigned)srv->nworkers);
    else
        w = kv_route(op->rec.key, op->rec.key_len, srv->nworkers);
    if (op->watch != WATCH_NONE)
        watch_begin(srv->backend.hub); /* writes are noted from now on */
    req->dispatched = 1;
    req->conn = conn;
    req->srv = srv;
    op->done = op_done;
    op->arg = req;
    atomic_fetch_add(&srv->dispatched, 1);
    MHD_suspend_connection(conn);
    worker_submit(&srv->workers[w], op);
}

/* Mutual TLS: the client's certificate is checked once per connection
 * (the result kept in its socket context, see on_connection), before
 * anything of its first request is looked at. */
static int client_certified(struct lkv_server *srv, struct MHD_Connection *conn)
{
    if (srv->tls.client_ca_pem == NULL)
        return 1;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    int *verified = ci ? ci->socket_context : NULL;
    if (verified && *verified)
        return 1;
    ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
    if (ci == NULL || !tls_client_verified(ci->tls_session))
        return 0;
    if (verified)
        *verified = 1; /* NULL (out of memory at accept): checked every time */
    return 1;
}

/* With [auth]: may this request go on? Decided on the headers alone, so a
 * refused upload is answered before its body is read (a reply queued on the
 * first call also makes libmicrohttpd close the connection afterwards,
 * instead of reading the body to reach the next request). */
static enum auth_verdict authenticate(struct lkv_server *srv, struct request *req)
{
    if (srv->auth.path == NULL)
        return AUTH_GRANTED;
    struct auth_need need;
    unsigned perms = 0;
    handle_auth_need(req, &need);
    if (req->uri_status == LKV_OK && req->uri.route == ROUTE_HEALTH &&
        (req->method == M_GET || req->method == M_HEAD)) {
        /* public, but brief, unless a token with 'a' says who asks */
        req->health_brief = 1;
        if (req->authorization == NULL)
            return AUTH_GRANTED;
    }
    enum auth_verdict v = auth_check(&srv->auth, req->authorization, &need, req->user, &perms);
    if (v == AUTH_GRANTED && (perms & AUTH_ADMIN))
        req->health_brief = 0;
    return v;
}

/* The first call for a request: its headers are in, its body not yet. */
static enum MHD_Result begin_request(struct lkv_server *srv, struct MHD_Connection *conn,
                                     struct request *req, const char *method,
                                     const char *version)
{
    long long max = srv->cfg->max_value_size;
    req->begun = 1;
    if (!client_certified(srv, conn))
        return MHD_NO; /* closed, nothing processed */
    req->method = method_of(method);
    snprintf(req->method_name, sizeof(req->method_name), "%s", method);
    snprintf(req->version, sizeof(req->version), "%s", version);
    req->uri_status = uri_parse(req->raw_uri, &req->uri);
    read_headers(conn, req);
    enum auth_verdict v = authenticate(srv, req);
    if (v != AUTH_GRANTED) {
        struct reply rep;
        handle_auth_refused(req, &rep, v);
        return send_reply(srv, conn, req, &rep);
    }
    long long len = content_length(conn);
    if (len > max)
        return send_error(srv, conn, req, LKV_ETOOLARGE, "the value is larger than max_value_size");
    if (read_digest_fields(conn, req) != 0)
        return send_error(srv, conn, req, LKV_ENOMEM, "out of memory");
    struct reply rep;
    if (!handle_begin(srv, req, &rep))
        return send_reply(srv, conn, req, &rep);
    if (len > CHUNKS_SIZE && handle_spools_body(req) && !spool_room(NULL, (uint64_t)len))
        return send_error(srv, conn, req, LKV_EUNAVAIL,
                          "no room on disk to keep the body until its last byte; "
                          "nothing was written");
    if (len > CHUNKS_SIZE && (handle_streams_body(srv->cfg, req) || handle_spools_body(req)))
        len = CHUNKS_SIZE; /* the rest is streamed, or spooled */
    if (len > 0 && buf_reserve(&req->body, (size_t)len) != 0)
        return send_error(srv, conn, req, LKV_ENOMEM, "out of memory");
    return MHD_YES;
}

/* Suspends conn until req's upload has room again (upload.h). */
static void park_upload(struct MHD_Connection *conn, struct request *req)
{
    MHD_suspend_connection(conn);
    if (!upload_park(req->upload, conn))
        MHD_resume_connection(conn); /* it landed meanwhile */
}

/* Takes body bytes into req's spool (spool.h). A spool that fails (the
 * disk is full) is dropped, and the rest of the body with it: the request
 * is answered 503 at its end, as an upload's failure is. */
static enum MHD_Result spool_body(struct lkv_server *srv, struct MHD_Connection *conn,
                                  struct request *req, const char *data, size_t *size)
{
    size_t n = *size;
    *size = 0;
    req->body_bytes += n;
    if (req->spool_errno)
        return MHD_YES;
    if (spool_append(req->spool, data, n) != 0) {
        req->spool_errno = errno;
        log_error("POST %s: the body could not be spooled: %s", req->raw_uri, strerror(errno));
        spool_free(req->spool);
        req->spool = NULL;
        return MHD_YES;
    }
    if (request_body_hash(req, data, n) != LKV_OK)
        return send_error(srv, conn, req, LKV_EINTERNAL, "the body could not be hashed");
    return MHD_YES;
}

/* The body has passed one chunk and is spooled from now on: the chunk
 * held goes first. */
static enum MHD_Result start_spool(struct lkv_server *srv, struct MHD_Connection *conn,
                                   struct request *req, const char *data, size_t *size)
{
    req->spool = spool_open(NULL);
    if (req->spool == NULL || spool_append(req->spool, req->body.data, req->body.len) != 0) {
        req->spool_errno = errno;
        log_error("POST %s: the body could not be spooled: %s", req->raw_uri, strerror(errno));
        spool_free(req->spool);
        req->spool = NULL;
    }
    buf_free(&req->body);
    return spool_body(srv, conn, req, data, size);
}

/* Takes body bytes: into the body while it fits in one chunk (or whole,
 * for what is neither streamed nor spooled), then into the upload to the
 * key's master, or the spool. *size is left with the bytes not taken yet
 * (the connection is then suspended until there is room). */
static enum MHD_Result receive_body(struct lkv_server *srv, struct MHD_Connection *conn,
                                    struct request *req, const char *data, size_t *size)
{
    size_t n = *size;
    if (req->spool || req->spool_errno)
        return spool_body(srv, conn, req, data, size);
    if (req->upload == NULL) {
        int streams = handle_streams_body(srv->cfg, req);
        int spools = handle_spools_body(req);
        size_t room = streams || spools ? CHUNKS_SIZE - req->body.len : n;
        size_t take = n < room ? n : room;
        if (buf_append(&req->body, data, take) != 0) {
            *size = 0;
            buf_free(&req->body);
            return send_error(srv, conn, req, LKV_ENOMEM, "out of memory");
        }
        req->body_bytes += take;
        if (request_body_hash(req, data, take) != LKV_OK) {
            *size = 0;
            return send_error(srv, conn, req, LKV_EINTERNAL, "the body could not be hashed");
        }
        data += take;
        n -= take;
        *size = n;
        if (n == 0)
            return MHD_YES;
        if (spools)
            return start_spool(srv, conn, req, data, size);
        /* More than a chunk: the first goes to the master now. */
        size_t key_len;
        const char *key = handle_body_key(req, &key_len);
        struct worker *w = &srv->workers[kv_route(key, key_len, srv->nworkers)];
        req->upload = upload_start(w, key, key_len, req->uri.canonical,
                                   buf_steal(&req->body, NULL), srv->stream_hooks);
        if (req->upload == NULL) {
            *size = 0;
            return send_error(srv, conn, req, LKV_ENOMEM, "out of memory");
        }
    }
    size_t took = upload_feed(req->upload, data, n);
    req->body_bytes += took;
    *size = n - took;
    if (request_body_hash(req, data, took) != LKV_OK) {
        *size = 0;
        return send_error(srv, conn, req, LKV_EINTERNAL, "the body could not be hashed");
    }
    if (took < n)
        park_upload(conn, req);
    return MHD_YES;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version,
                                 const char *upload_data, size_t *upload_size, void **req_cls)
{
    (void)url;
    struct lkv_server *srv = cls;
    struct request *req = *req_cls;
    long long max = srv->cfg->max_value_size;
    (void)version;
    if (req == NULL) {
        static const struct request oom; /* read-only: no URI, no body */
        struct reply rep;
        memset(&rep, 0, sizeof(rep));
        handle_error((struct request *)&oom, &rep, 503, "out of memory");
        return send_reply(srv, conn, NULL, &rep);
    }
    if (!req->begun)
        return begin_request(srv, conn, req, method, version);
    if (*upload_size > 0) {
        size_t n = *upload_size;
        if (req->too_large || req->body_bytes + n > (unsigned long long)max) {
            *upload_size = 0;
            req->too_large = 1;
            req->discarded += req->body.len + n;
            buf_free(&req->body);
            spool_free(req->spool); /* answered 413: the spool is of no use */
            req->spool = NULL;
            return req->discarded > 2ULL * (unsigned long long)max ? MHD_NO : MHD_YES;
        }
        return receive_body(srv, conn, req, upload_data, upload_size);
    }
    if (req->too_large)
        return send_error(srv, conn, req, LKV_ETOOLARGE, "the value is larger than max_value_size");
    if (req->spool_errno)
        return send_error(srv, conn, req, LKV_EUNAVAIL,
                          "the body could not be kept on disk until its last byte; "
                          "nothing was written");
    if (req->upload && !req->dispatched) {
        /* The last chunk is written before the write that switches to it. */
        if (!upload_finish(req->upload)) {
            park_upload(conn, req);
            return MHD_YES;
        }
        enum lkv_status st = upload_status(req->upload);
        if (st != LKV_OK)
            return send_error(srv, conn, req, st,
                              st == LKV_EUNAVAIL ? "the key's master partition is unreachable;"
                                                   " nothing was written"
                                                 : "the value could not be stored");
    }
    if (req->dispatched)
        return send_reply(srv, conn, req, &req->reply); /* resumed: the answer is ready */
    struct reply rep;
    if (handle_request(srv, req, &rep) == 0)
        return send_reply(srv, conn, req, &rep);
    dispatch(srv, conn, req);
    return MHD_YES;
}

/* The partition that answered req: a read's, a lazy list's, a write's
 * master; -1 when none did. */
static int answering_partition(const struct request *req)
{
    const struct kv_op *op = &req->op;
    if (!req->dispatched)
        return -1;
    switch (op->kind) {
    case KV_OP_READ: return op->served;
    case KV_OP_WRITE: return op->master;
    case KV_OP_LIST: return op->canonical ? -1 : op->list_partition;
    case KV_OP_DELETE_TREE:
    case KV_OP_CHUNK: return -1;
    }
    return -1;
}

static void log_access(struct lkv_server *srv, struct MHD_Connection *conn,
                       const struct request *req)
{
    if (srv->access.fd < 0 || req->status == 0)
        return;
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    struct access_entry e = {
        .addr = ci ? ci->client_addr : NULL,
        .user = req->user,
        .method = req->method_name,
        .target = req->raw_uri,
        .version = req->version,
        .status = req->status,
        .bytes = req->bytes_sent,
        .referer = req->referer,
        .agent = req->user_agent,
        .when = (time_t)req->arrived,
        .micros = clock_mono_us() - req->started_us,
        .partition = answering_partition(req),
    };
    access_log_write(&srv->access, &e);
}

/* The route label of req's latency (metrics): keys by path, lists, and
 * everything else (health, metrics, errors) as "admin". */
static enum server_route route_of(const struct request *req)
{
    if (req->uri_status != LKV_OK)
        return SERVER_ADMIN;
    switch (req->uri.route) {
    case ROUTE_KEY: return req->uri.canonical ? SERVER_CANONICAL : SERVER_LAZY;
    case ROUTE_LIST: return SERVER_LIST;
    default: return SERVER_ADMIN;
    }
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **req_cls,
                         enum MHD_RequestTerminationCode toe)
{
    (void)toe;
    struct lkv_server *srv = cls;
    struct request *req = *req_cls;
    if (req) {
        if (req->status != 0 && req->begun)
            histo_observe(&srv->http_duration[route_of(req)][req->method],
                          clock_mono_us() - req->started_us);
        log_access(srv, conn, req);
        if (req->dispatched)
            atomic_fetch_sub(&srv->dispatched, 1); /* its answer went out (or never will) */
        atomic_fetch_sub(&srv->active, 1);
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
    struct lkv_server *srv = cls;
    if (code == MHD_CONNECTION_NOTIFY_STARTED && srv->tls.client_ca_pem)
        *socket_ctx = calloc(1, sizeof(int)); /* client_certified()'s verdict */
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) {
        free(*socket_ctx);
        *socket_ctx = NULL;
        atomic_fetch_sub(&srv->connections, 1);
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_warn("http: %s", msg);
}

static int start_backend(struct lkv_server *srv, const struct lkv_config *cfg)
{
    if (kvsql_build(&srv->sql, cfg->table_name) != 0) {
        log_error("out of memory");
        return -1;
    }
    srv->sql_built = 1;
    srv->probers = calloc((size_t)cfg->partitions, sizeof(*srv->probers));
    srv->workers = calloc((size_t)cfg->threads, sizeof(*srv->workers));
    if (srv->probers == NULL || srv->workers == NULL) {
        log_error("out of memory");
        return -1;
    }
    for (; srv->nprobers < cfg->partitions; srv->nprobers++)
        if (prober_start(&srv->probers[srv->nprobers], cfg, srv->nprobers) != 0)
            return -1;
    srv->backend.cfg = cfg;
    srv->backend.sql = (const char *const *)srv->sql.text;
    srv->backend.probers = srv->probers;
    srv->backend.partitions = cfg->partitions;
    srv->backend.hub = watch_hub_new(srv->workers, cfg->threads);
    if (srv->backend.hub == NULL) {
        log_error("out of memory");
        return -1;
    }
    for (; srv->nworkers < cfg->threads; srv->nworkers++)
        if (worker_start(&srv->workers[srv->nworkers], &srv->backend, srv->nworkers) != 0)
            return -1;
    return 0;
}

/* libmicrohttpd's HTTPS options (an empty list for plain HTTP): the PEM
 * texts read by tls_server_load, which stay alive as long as the daemon. */
static void tls_options(const struct lkv_server *srv, struct MHD_OptionItem opts[5])
{
    int n = 0;
    if (srv->tls.cert_pem) {
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, srv->tls.cert_pem};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, srv->tls.key_pem};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_PRIORITIES, 0,
                                            srv->cfg->tls_priorities};
        if (srv->tls.client_ca_pem) /* makes MHD request a client certificate */
            opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_TRUST, 0,
                                                srv->tls.client_ca_pem};
    }
    opts[n] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
}

static int is_loopback(const char *host)
{
    return strcmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
           strcmp(host, "::1") == 0;
}

int server_prepare(struct lkv_server *srv, const struct lkv_config *cfg, char *err,
                   size_t errlen)
{
    srv->cfg = cfg;
    srv->access.fd = -1;
    srv->stream_hooks = &mhd_hooks;
    if (tls_server_load(&srv->tls, cfg, err, errlen) != 0)
        return -1;
    if (cfg->tokens_file && auth_open(&srv->auth, cfg->tokens_file, err, errlen) != 0)
        return -1;
    if (access_log_open(&srv->access, cfg->access_log, err, errlen) != 0)
        return -1;
    if (cfg->tokens_file == NULL && !is_loopback(cfg->listen_host))
        log_warn("no [auth] tokens_file: anyone who can reach %s:%d can read, write and delete"
                 " every key", cfg->listen_host, cfg->listen_port);
    return 0;
}

void server_reload(struct lkv_server *srv)
{
    char err[512];
    if (access_log_reopen(&srv->access, err, sizeof(err)) != 0)
        log_error("%s; still writing to the old file", err);
    if (srv->auth.path == NULL)
        return;
    if (auth_reload(&srv->auth, err, sizeof(err)) != 0)
        log_error("%s; the tokens in force are kept", err);
    else
        log_info("%s: tokens reloaded", srv->auth.path);
}

int server_start(struct lkv_server *srv, const struct lkv_config *cfg)
{
    srv->cfg = cfg;
    if (start_backend(srv, cfg) != 0)
        return -1;

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
    unsigned flags = MHD_USE_POLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    unsigned pool = (unsigned)cfg->http_threads;
    struct MHD_OptionItem tls_opts[5];
    tls_options(srv, tls_opts);
    if (srv->tls.cert_pem)
        flags |= MHD_USE_TLS;
    srv->daemon = MHD_start_daemon(
        flags, 0, accept_policy, srv, on_access, srv,
        MHD_OPTION_EXTERNAL_LOGGER, mhd_log, srv, /* first, to catch option errors */
        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        /* A hard stop a little above max_connections for each thread (the
         * pool divides this among them): accept_policy() is what refuses,
         * cleanly, past max_connections in all. */
        MHD_OPTION_CONNECTION_LIMIT, ((unsigned)cfg->max_connections + 64u) * pool,
        /* Each thread of the pool keeps its own connections: a resume
         * (libmicrohttpd 0.9.75 and 1.0 walk every suspended connection
         * of the thread, daemon.c resume_suspended_connections) then costs
         * a share of the requests waiting, not all of them. */
        MHD_OPTION_THREAD_POOL_SIZE, pool,
        MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)cfg->connection_timeout,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, connection_memory_limit(cfg),
        MHD_OPTION_URI_LOG_CALLBACK, uri_log_cb, srv,
        MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
        MHD_OPTION_LISTEN_BACKLOG_SIZE, 1024u,
        MHD_OPTION_ARRAY, tls_opts,
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

/* Waits up to ms for *count (a number of requests) to reach 0. The bound is
 * on the monotonic clock, not a count of 1 ms sleeps: on a loaded machine
 * each sleep lasts longer than asked, and the shutdown must still end
 * within its budget (see server_stop in server.h). */
static void wait_drained(atomic_int *count, int ms)
{
    uint64_t deadline = clock_mono_us() + (uint64_t)ms * 1000u;
    while (atomic_load(count) > 0 && clock_mono_us() < deadline) {
        struct timespec t = {0, 1000000L};
        nanosleep(&t, NULL);
    }
}

/* Order matters: the probers stop first (a lane asking one for a connection
 * then gets none, at once), the workers next (answering what is left, 503),
 * then libmicrohttpd, once those answers are sent; memory is freed last,
 * when no thread can reach it. */
void server_stop(struct lkv_server *srv)
{
    MHD_socket listen_fd = MHD_INVALID_SOCKET;
    atomic_store(&srv->stopping, 1);
    /* Requests waiting for a change are answered (503) first: they would
     * only wait out their wait. */
    if (srv->nworkers > 0)
        worker_close_watches(&srv->workers[0]);
    if (srv->daemon) {
        listen_fd = MHD_quiesce_daemon(srv->daemon);
        /* Refuse new connections now rather than let the kernel queue them
         * until the socket is closed (only after MHD_stop_daemon, which
         * may still poll it): shutdown() takes a listening socket out of
         * LISTEN at once, so a client gets ECONNREFUSED and can go to
         * another lazykvd while this one finishes what it has. */
        if (listen_fd != MHD_INVALID_SOCKET)
            shutdown(listen_fd, SHUT_RDWR);
        /* Health probes are of no use any more, and one blocked on a hung
         * partition would hold prober_stop below for its read_timeout. */
        for (int i = 0; i < srv->nprobers; i++)
            prober_quiet(&srv->probers[i]);
        /* What is in flight finishes normally for a moment: requests being
         * uploaded, waiting on a worker or being sent alike (a request
         * arriving on a kept-alive connection now is answered with
         * Connection: close, so this drains)... */
        wait_drained(&srv->active, 2000);
    }
    for (int i = 0; i < srv->nprobers; i++)
        prober_stop(&srv->probers[i]);
    /* ...then the workers answer whatever is left (503) and resume it. */
    for (int i = 0; i < srv->nworkers; i++)
        worker_stop(&srv->workers[i]);
    if (srv->daemon) {
        wait_drained(&srv->dispatched, 1000);
        MHD_stop_daemon(srv->daemon);
        srv->daemon = NULL;
    }
    if (listen_fd != MHD_INVALID_SOCKET)
        close(listen_fd);
    for (int i = 0; i < srv->nworkers; i++)
        worker_free(&srv->workers[i]);
    for (int i = 0; i < srv->nprobers; i++)
        prober_free(&srv->probers[i]);
    watch_hub_free(srv->backend.hub);
    srv->backend.hub = NULL;
    free(srv->workers);
    free(srv->probers);
    srv->workers = NULL;
    srv->probers = NULL;
    srv->nworkers = srv->nprobers = 0;
    if (srv->sql_built)
        kvsql_free(&srv->sql);
    srv->sql_built = 0;
    auth_close(&srv->auth);
    access_log_close(&srv->access);
    tls_server_free(&srv->tls);
}
