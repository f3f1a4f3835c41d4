/*
 * handlers.c -- the HTTP API: routes, verbs, preconditions, replication of
 * canonical writes, and the choice of status codes. See handlers.h and the
 * API section of README.md.
 */
#include "handlers.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "codec.h"
#include "html.h"
#include "log.h"
#include "metrics.h"
#include "negotiate.h"
#include "placement.h"
#include "prober.h"
#include "range.h"
#include "render.h"
#include "server.h"
#include "spool.h"
#include "version.h"
#include "worker.h"

#define RETRY_AFTER_SECONDS "2"
#define DEFAULT_CTYPE "application/octet-stream"

unsigned http_status_of(enum lkv_status st)
{
    switch (st) {
    case LKV_OK: return 200;
    case LKV_EBADREQ: return 400;
    case LKV_ENOTFOUND: return 404;
    case LKV_EPRECOND: return 412;
    case LKV_ETOOLARGE: return 413;
    case LKV_EUNAVAIL:
    case LKV_ENOMEM: /* transient: the client may retry */
        return 503;
    case LKV_EINTERNAL: return 500;
    }
    return 500;
}

static const char *reason_phrase(unsigned status)
{
    switch (status) {
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
    case 416: return "Range Not Satisfiable";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    default: return "Error";
    }
}

void request_free(struct request *req)
{
    free(req->raw_uri);
    req->raw_uri = NULL;
    uri_free(&req->uri);
    buf_free(&req->body);
    upload_release(req->upload);
    req->upload = NULL;
    spool_free(req->spool);
    req->spool = NULL;
    digest_hasher_free(&req->hasher);
    req->hashing = 0;
    for (size_t i = 0; i < sizeof(req->joined) / sizeof(req->joined[0]); i++) {
        free(req->joined[i]);
        req->joined[i] = NULL;
    }
    kv_op_free(&req->op);
    reply_free(&req->reply);
}

enum lkv_status request_body_hash(struct request *req, const char *data, size_t n)
{
    if (req->hashing && n > 0)
        return digest_hasher_update(&req->hasher, data, n);
    return LKV_OK;
}

void reply_free(struct reply *rep)
{
    free(rep->body);
    rep->body = NULL;
    download_release(rep->stream);
    rep->stream = NULL;
    for (int i = 0; i < rep->nheaders; i++)
        free(rep->header[i].value);
    rep->nheaders = 0;
}

static void reply_header(struct reply *rep, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Adds a header; on allocation failure the header is dropped (the reply is
 * still valid HTTP) and logged. */
static void reply_header(struct reply *rep, const char *name, const char *fmt, ...)
{
    if (rep->nheaders >= REPLY_MAX_HEADERS)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *value = NULL;
    int n = vasprintf(&value, fmt, ap);
    va_end(ap);
    if (n < 0) {
        log_warn("out of memory for header %s", name);
        return;
    }
    rep->header[rep->nheaders].name = name;
    rep->header[rep->nheaders].value = value;
    rep->nheaders++;
}

/* Fallback when even rendering a problem fails: a static JSON body. */
static void reply_oom(struct reply *rep)
{
    static const char body[] = "{\"type\":\"about:blank\",\"title\":\"Service Unavailable\","
                               "\"status\":503,\"detail\":\"out of memory\"}\n";
    reply_free(rep);
    rep->status = 503;
    rep->body = strdup(body);
    rep->body_len = rep->body ? sizeof(body) - 1 : 0;
    rep->content_type = "application/problem+json";
    reply_header(rep, "Retry-After", RETRY_AFTER_SECONDS);
}

/* Renders doc (stolen) as the reply body in the format the client accepts. */
static void reply_doc(struct reply *rep, const struct request *req, unsigned status,
                      json_t *doc, const char *root, int problem)
{
    enum media m = negotiate_media(req->accept, NULL);
    if (m == MEDIA_NONE)
        m = MEDIA_JSON; /* errors and messages are always sent, as JSON */
    if (doc == NULL) {
        reply_oom(rep);
        return;
    }
    rep->status = status;
    rep->body = render_doc(doc, m, root, &rep->body_len);
    rep->content_type = render_content_type(m, problem);
    json_decref(doc);
    if (rep->body == NULL)
        reply_oom(rep);
    else if (m == MEDIA_HTML)
        reply_header(rep, "Content-Security-Policy", "%s", HTML_CSP);
}

/* A page of the HTML view (html.h; stolen, NULL when out of memory) as the
 * reply. */
static void reply_page(struct reply *rep, unsigned status, char *page, size_t len)
{
    if (page == NULL) {
        reply_oom(rep);
        return;
    }
    rep->status = status;
    rep->body = page;
    rep->body_len = len;
    rep->content_type = negotiate_content_type(MEDIA_HTML);
    reply_header(rep, "Content-Security-Policy", "%s", HTML_CSP);
}

void handle_error(struct request *req, struct reply *rep, unsigned status, const char *detail)
{
    json_t *doc = json_pack("{s:s, s:s, s:i, s:s}", "type", "about:blank", "title",
                            reason_phrase(status), "status", (int)status, "detail", detail);
    reply_doc(rep, req, status, doc, "problem", 1);
    if (status == 503)
        reply_header(rep, "Retry-After", RETRY_AFTER_SECONDS);
}

static void reply_status(struct request *req, struct reply *rep, enum lkv_status st,
                         const char *detail)
{
    handle_error(req, rep, http_status_of(st), detail);
}

static void add_validators(struct reply *rep, uint64_t version)
{
    char etag[VERSION_ETAG_LEN], date[VERSION_DATE_LEN];
    version_etag(version, etag);
    version_http_date(version, date);
    reply_header(rep, "ETag", "%s", etag);
    reply_header(rep, "Last-Modified", "%s", date);
}

/* Repr-Digest (RFC 9530) of a value: its SHA-256 as stored (rec->has_digest),
 * else computed here when the whole value is in memory (in_memory: a read
 * that took the value; rows written before digests were stored). Omitted
 * when neither is known (a HEAD, which reads no value) or the hash fails. */
static void add_repr_digest(struct reply *rep, const struct record *rec, int in_memory)
{
    uint8_t computed[DIGEST_SHA256_LEN];
    const uint8_t *d = NULL;
    if (rec->has_digest)
        d = rec->digest;
    else if (in_memory && digest_sha256(rec->value, rec->value_len, computed) == LKV_OK)
        d = computed;
    if (d == NULL)
        return;
    struct buf b = BUF_INIT;
    if (digest_format(&b, DIGEST_SHA256, d) == 0)
        reply_header(rep, "Repr-Digest", "%s", b.data);
    buf_free(&b);
}

/* The expiry of a live key (X-Lazykv-Expires, "expires_at"). */
static void add_expiry(struct reply *rep, json_t *doc, const struct record *rec)
{
    if (rec->expires_at == 0 || rec->deleted)
        return;
    char when[VERSION_DATE_LEN];
    version_rfc3339(rec->expires_at, when);
    if (doc)
        json_object_set_new(doc, "expires_at", json_string(when));
    if (rep)
        reply_header(rep, "X-Lazykv-Expires", "%s", when);
}

static json_t *value_doc(const struct record *rec, int markup)
{
    const char *kenc, *venc;
    char etag[VERSION_ETAG_LEN], date[VERSION_DATE_LEN];
    version_etag(rec->version, etag);
    version_http_date(rec->version, date);
    json_t *k = render_bytes_json(rec->key, rec->key_len, markup, &kenc);
    /* A chunked value (chunks.h) is never held whole: its document (in a
     * list with values) has "value": null and its "length". */
    int chunked = rec->chunks > 0;
    json_t *v = chunked ? json_null()
                        : render_bytes_json(rec->value ? rec->value : "", rec->value_len, markup,
                                            &venc);
    if (chunked)
        venc = "none";
    if (k == NULL || v == NULL) {
        json_decref(k);
        json_decref(v);
        return NULL;
    }
    json_t *doc = json_pack("{s:o, s:o, s:s, s:s, s:I, s:s, s:s}", "key", k, "value", v,
                            "encoding", venc, "content_type", rec->ctype, "version",
                            (json_int_t)rec->version, "etag", etag, "last_modified", date);
    if (doc && strcmp(kenc, "utf-8") != 0)
        json_object_set_new(doc, "key_encoding", json_string(kenc));
    if (doc && chunked)
        json_object_set_new(doc, "length", json_integer((json_int_t)rec->value_len));
    add_expiry(NULL, doc, rec);
    return doc;
}

static int key_cmp(const struct kv_key *x, const struct kv_key *y)
{
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* ---- preconditions ---------------------------------------------------------- */

/* Syntax check of If-Match and If-None-Match, before any database work. */
static int precond_valid(const struct request *req)
{
    return version_if_match(req->if_match, 0, 0) >= 0 &&
           version_if_none_match(req->if_none_match, 0, 0) >= 0;
}

/* ---- waiting (watch.h) ------------------------------------------------------- */

/* A key's index: a decimal number (a version). 0, or -1. */
static int parse_index(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0 || len > 20)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9' || v > (UINT64_MAX - (uint64_t)(s[i] - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(s[i] - '0');
    }
    *out = v;
    return 0;
}

/* Sets op up to wait, on what key (or prefix) for how long. */
static void set_wait(struct kv_op *op, enum watch_kind kind, const char *key, size_t len, int wait)
{
    op->watch = kind;
    op->watch_key = key;
    op->watch_key_len = len;
    op->watch_deadline_us = clock_mono_us() + (uint64_t)wait * 1000000u;
}

/* ---- reads --------------------------------------------------------------- */

static int start_get(struct request *req, struct reply *rep)
{
    const struct uri *u = &req->uri;
    if (!precond_valid(req)) {
        reply_status(req, rep, LKV_EBADREQ, "malformed If-Match or If-None-Match");
        return 0;
    }
    struct kv_op *op = &req->op;
    op->kind = KV_OP_READ;
    op->canonical = u->canonical;
    op->rec.key = u->key;
    op->rec.key_len = u->key_len;
    /* One read per request, and everything (preconditions, validators,
     * length) judged on the record it returns: a lazy read of the same key
     * twice could reach two partitions holding two versions. A HEAD takes
     * the value too when a document may be chosen, whose length needs it. */
    op->job.want_value = req->method != M_HEAD ||
                         (!u->raw && negotiate_document_possible(req->accept));
    if (u->index) {
        /* A watch: answered from the master, when the index moves. */
        if (parse_index(u->index, u->index_len, &op->watch_index) != 0) {
            reply_status(req, rep, LKV_EBADREQ,
                         "index must be a key's X-Lazykv-Index: a whole number");
            return 0;
        }
        op->canonical = 1;
        set_wait(op, WATCH_KEY, u->key, u->key_len, u->wait);
    }
    return 1;
}

/* The HTML view of a key read (html.h). NULL when out of memory. */
static char *key_page(const struct kv_op *op, size_t *len)
{
    const struct record *rec = &op->rec;
    char etag[VERSION_ETAG_LEN], date[VERSION_DATE_LEN], expires[VERSION_DATE_LEN];
    version_etag(rec->version, etag);
    version_http_date(rec->version, date);
    if (rec->expires_at)
        version_rfc3339(rec->expires_at, expires);
    struct html_key k = {
        .canonical = op->canonical, .key = rec->key, .key_len = rec->key_len,
        .value = rec->value, .value_len = rec->value_len, .ctype = rec->ctype,
        .version = rec->version, .etag = etag, .last_modified = date,
        .expires = rec->expires_at ? expires : NULL, .partition = op->served,
    };
    return html_key_page(&k, len);
}

static void finish_get(struct request *req, struct reply *rep)
{
    struct kv_op *op = &req->op;
    struct record *rec = &op->rec;
    int head = req->method == M_HEAD;
    enum lkv_status st = op->st;
    if (st != LKV_OK) {
        reply_status(req, rep, st,
                     st == LKV_ENOTFOUND ? "no such key"
                     : st == LKV_EUNAVAIL ? "no partition holding the key is reachable"
                                          : "the read failed");
        goto out;
    }
    if (version_if_match(req->if_match, 1, rec->version) == 0) {
        reply_status(req, rep, LKV_EPRECOND, "If-Match does not match the current version");
        goto out;
    }
    if (version_if_none_match(req->if_none_match, 1, rec->version) == 0) {
        rep->status = 304;
        add_validators(rep, rec->version);
        goto out;
    }
    /* ?raw=1 (the HTML view's download links): the value, whatever the Accept */
    enum media m = req->uri.raw ? MEDIA_RAW : negotiate_media(req->accept, rec->ctype);
    if (m == MEDIA_NONE) {
        handle_error(req, rep, 406, "no acceptable representation: the value is served raw, "
                                    "or as JSON, XML, HTML or text");
        goto out;
    }
    if (rec->chunks > 0 && (m == MEDIA_JSON || m == MEDIA_XML)) {
        handle_error(req, rep, 406, "a value over 1 MiB is served raw (or as an HTML page),"
                                    " not inside a JSON or XML document");
        goto out;
    }
    if (m != MEDIA_RAW && !op->job.want_value && rec->chunks == 0) {
        /* negotiate_document_possible() said no document could be chosen. */
        log_error("HEAD %s: a document was chosen without the value read", req->raw_uri);
        reply_status(req, rep, LKV_EINTERNAL, "the representation could not be chosen");
        goto out;
    }
    rep->status = 200;
    if (m == MEDIA_RAW) {
        /* Byte ranges apply to the value itself (a document ignores Range,
         * and so does HEAD: RFC 9110 14.2 defines ranges for GET only). */
        char etag[VERSION_ETAG_LEN];
        version_etag(rec->version, etag);
        struct range_answer ra;
        range_answer(head ? NULL : req->range, req->if_range, etag, rec->value_len, &ra);
        if (ra.status == 416) {
            handle_error(req, rep, 416, "the range is past the end of the value: "
                                        "Content-Range gives its length");
            reply_header(rep, "Content-Range", "%s", ra.content_range);
            goto out;
        }
        int digest_header = rep->nheaders;
        add_repr_digest(rep, rec, op->job.want_value && rec->chunks == 0); /* the whole value */
        rep->status = ra.status;
        snprintf(rep->ctype_buf, sizeof(rep->ctype_buf), "%s", rec->ctype);
        rep->content_type = rep->ctype_buf;
        if (head) {
            rep->head_only = 1;
            rep->head_size = rec->value_len;
        } else if (rec->chunks > 0) {
            /* streamed as its chunks are read: only those the range needs */
            rep->stream = download_start(op->worker, rec, op->served, ra.offset,
                                         ra.offset + ra.length - 1, req->srv->stream_hooks);
            if (rep->stream == NULL) {
                while (rep->nheaders > digest_header) /* no Repr-Digest on the 503 */
                    free(rep->header[--rep->nheaders].value);
                reply_status(req, rep, LKV_ENOMEM, "out of memory");
                goto out;
            }
            rep->stream_size = ra.length;
            if (ra.status == 206)
                reply_header(rep, "Content-Range", "%s", ra.content_range);
            stats_add(worker_stats(op->worker), value_bytes_out_total, ra.length);
        } else {
            rep->body = rec->value; /* stolen: no copy of the value */
            rec->value = NULL;
            if (ra.offset > 0) /* a range: its bytes moved to the front */
                memmove(rep->body, rep->body + ra.offset, (size_t)ra.length);
            rep->body_len = (size_t)ra.length;
            if (ra.status == 206)
                reply_header(rep, "Content-Range", "%s", ra.content_range);
            stats_add(worker_stats(op->worker), value_bytes_out_total, ra.length);
        }
    } else if (m == MEDIA_HTML) {
        size_t len = 0;
        char *page = key_page(op, &len);
        reply_page(rep, 200, page, len);
        if (rep->status != 200)
            goto out;
    } else {
        reply_doc(rep, req, 200, value_doc(rec, m == MEDIA_XML), "value", 0);
        if (rep->status != 200)
            goto out;
    }
    add_validators(rep, rec->version);
    reply_header(rep, "Vary", "Accept");
    if (op->cached)
        reply_header(rep, "X-Lazykv-Cache", "hit");
out:
    /* Ranges of the value can be asked for whatever this answer was. */
    if (rep->status == 200 || rep->status == 206 || rep->status == 304 || rep->status == 416)
        reply_header(rep, "Accept-Ranges", "bytes");
    /* Which partition answered, and the key's index there, on every answer
     * it decided (404, 304 and 412 included): lazy reads may differ by
     * partition. The index of an absent key is its tombstone's version (an
     * expired key's: see record_index), 0 when it has none. */
    if (op->served >= 0 && rep->status != 503) {
        reply_header(rep, "X-Lazykv-Partition", "%d", op->served);
        reply_header(rep, "X-Lazykv-Index", "%" PRIu64, rec->version);
        if (rep->status != 404)
            add_expiry(rep, NULL, rec);
    }
}

/* ---- digests of a write's body ------------------------------------------------ */

/* Whether req's body is to become a value, and so is hashed and checked
 * against its digest fields: a POST or PUT of a key, or a content-addressed
 * POST. Elsewhere those fields are ignored (the answer is 400, 404 or 405
 * for other reasons). */
static int stores_body(const struct request *req)
{
    const struct uri *u = &req->uri;
    if (req->uri_status != LKV_OK)
        return 0;
    if (u->route == ROUTE_KEY)
        return req->method == M_POST || req->method == M_PUT;
    return u->route == ROUTE_LIST && req->method == M_POST && u->key_sha256;
}

/* Reads the digest fields a write sent into req->expect. LKV_OK, or
 * LKV_EBADREQ with *why (static). */
static enum lkv_status read_expected_digests(struct request *req, const char **why)
{
    enum lkv_status st = LKV_OK;
    digest_expect_init(&req->expect);
    if (req->content_digest)
        st = digest_parse_field(&req->expect, DIGEST_CONTENT_DIGEST, req->content_digest, why);
    if (st == LKV_OK && req->repr_digest)
        st = digest_parse_field(&req->expect, DIGEST_REPR_DIGEST, req->repr_digest, why);
    if (st == LKV_OK && req->content_md5)
        st = digest_parse_content_md5(&req->expect, req->content_md5, why);
    return st;
}

/* After the last byte of a write's body: finishes the hash (once), and
 * checks every digest the client sent. Returns 1 when they all hold (and
 * for a request whose body is not hashed); 0 with rep filled (400 naming
 * the first digest that failed) otherwise: nothing is to be written. */
static int body_digests_hold(struct request *req, struct reply *rep)
{
    if (!req->hashing)
        return 1;
    if (!req->hasher.finished)
        digest_hasher_finish(&req->hasher);
    const struct digest_expected *bad = digest_mismatch(&req->hasher, &req->expect);
    if (bad == NULL)
        return 1;
    char detail[160];
    snprintf(detail, sizeof(detail), "the body does not match its %s; nothing was written",
             digest_expected_name(bad));
    reply_status(req, rep, LKV_EBADREQ, detail);
    return 0;
}

/* ---- content-addressed writes ------------------------------------------------ */

/* POST /bucket/?key=sha256: whether this server can take it (its keys are
 * 64 hex digits). 1, or 0 with rep filled (400). */
static int content_addressed_possible(const struct lkv_server *srv, struct request *req,
                                      struct reply *rep)
{
    if (srv->cfg->key_length >= DIGEST_HEX_LEN)
        return 1;
    char detail[160];
    snprintf(detail, sizeof(detail),
             "key=sha256 needs key_length >= %d (the key is the body's SHA-256 in hex); "
             "this server's key_length is %d", DIGEST_HEX_LEN, srv->cfg->key_length);
    reply_status(req, rep, LKV_EBADREQ, detail);
    return 0;
}

/* A content-addressed write whose headers give the body's SHA-256 (the
 * first sha-256 of Content-Digest or Repr-Digest) knows its key before
 * its body: the body streams to that key's master as any write's does,
 * and a body that does not match is 400 at its end, as for any write
 * (its chunks left to the collector). */
static void declare_content_address(struct request *req)
{
    for (int i = 0; i < req->expect.n; i++) {
        const struct digest_expected *x = &req->expect.item[i];
        if (x->alg == DIGEST_SHA256) {
            digest_hex(x->value, DIGEST_SHA256_LEN, req->ca_key);
            req->ca_declared = 1;
            return;
        }
    }
}

int handle_begin(struct lkv_server *srv, struct request *req, struct reply *rep)
{
    memset(rep, 0, sizeof(*rep));
    if (!stores_body(req))
        return 1;
    const char *why = NULL;
    if (read_expected_digests(req, &why) != LKV_OK) {
        reply_status(req, rep, LKV_EBADREQ, why);
        return 0;
    }
    if (req->uri.route == ROUTE_LIST && !content_addressed_possible(srv, req, rep))
        return 0;
    if (req->uri.route == ROUTE_LIST)
        declare_content_address(req);
    /* SHA-256 always (the value's Repr-Digest, a content-addressed key),
     * and whatever the client's digests need */
    enum lkv_status st = digest_hasher_init(
        &req->hasher, DIGEST_BIT(DIGEST_SHA256) | digest_expect_algs(&req->expect));
    if (st != LKV_OK) {
        handle_error(req, rep, http_status_of(st),
                     st == LKV_ENOMEM ? "out of memory" : "a digest the request asks for "
                                                          "cannot be computed here");
        return 0;
    }
    req->hashing = 1;
    return 1;
}

/* ---- writes -------------------------------------------------------------- */

/* Prepares req->op to write (POST, PUT) or delete the key (key, len): a
 * ref, into the URI or req->ca_key. 1, or 0 with rep filled. */
static int start_write(struct request *req, struct reply *rep, const char *key, size_t len)
{
    const struct uri *u = &req->uri;
    struct kv_op *op = &req->op;
    if (!precond_valid(req)) {
        reply_status(req, rep, LKV_EBADREQ, "malformed If-Match or If-None-Match");
        return 0;
    }
    if (!body_digests_hold(req, rep))
        return 0;
    op->kind = KV_OP_WRITE;
    op->canonical = u->canonical;
    op->rec.key = key;
    op->rec.key_len = len;
    op->rec.deleted = req->method == M_DELETE;
    op->need_created = req->method == M_PUT;
    op->if_match = req->if_match;
    op->if_none_match = req->if_none_match;
    if (u->ttl && op->rec.deleted) {
        reply_status(req, rep, LKV_EBADREQ, "ttl applies to POST and PUT");
        return 0;
    }
    if (u->refresh && (req->method != M_PUT || !u->ttl || req->body_bytes > 0)) {
        reply_status(req, rep, LKV_EBADREQ, "refresh=1 is a PUT with ttl and an empty body");
        return 0;
    }
    op->ttl_us = (uint64_t)u->ttl * 1000000u;
    op->refresh = u->refresh;
    if (u->has_wait) {
        /* A blocking lock acquisition: creates the key once it is absent. */
        if (req->method != M_PUT || req->if_none_match == NULL ||
            strcmp(req->if_none_match, "*") != 0 || u->refresh) {
            reply_status(req, rep, LKV_EBADREQ, "wait applies to a PUT with If-None-Match: *");
            return 0;
        }
        set_wait(op, WATCH_LOCK, key, len, u->wait);
    }
    if (!op->rec.deleted) {
        const char *ct = req->content_type && req->content_type[0] ? req->content_type
                                                                   : DEFAULT_CTYPE;
        if (strlen(ct) > STORE_CTYPE_MAX) {
            reply_status(req, rep, LKV_EBADREQ, "Content-Type is longer than 255 bytes");
            return 0;
        }
        snprintf(op->rec.ctype, sizeof(op->rec.ctype), "%s", ct);
        op->rec.value = req->body.data; /* ref: the request keeps ownership */
        op->rec.value_len = req->body.len;
        /* The value's SHA-256, for the storage to keep; a refresh keeps
         * the stored value (its empty body is not the value). */
        const uint8_t *d = digest_hasher_result(&req->hasher, DIGEST_SHA256);
        if (!op->refresh && d != NULL) {
            memcpy(op->rec.digest, d, DIGEST_SHA256_LEN);
            op->rec.has_digest = 1;
        }
        if (req->upload) {
            /* streamed: the write switches the key to the uploaded chunks */
            op->rec.value = NULL;
            op->rec.value_len = req->body_bytes;
            op->rec.chunks = upload_chunks(req->upload);
            op->rec.chunk_version = upload_set(req->upload);
        } else if (req->spool) {
            /* on disk: written as chunks, then switched to (kv.c) */
            op->rec.value = NULL;
            op->rec.value_len = spool_length(req->spool);
            op->spool = req->spool;
        }
    }
    return 1;
}

/* POST /{bucket|canonicalbucket}/?key=sha256: the body is stored under its
 * SHA-256 in lowercase hex, known once the last byte is in. */
static int start_content_addressed(struct lkv_server *srv, struct request *req,
                                   struct reply *rep)
{
    if (!content_addressed_possible(srv, req, rep) || !body_digests_hold(req, rep))
        return 0;
    if (digest_sha256_hex(&req->hasher, req->ca_key) != 0) {
        /* handle_begin starts hashing every POST */
        log_error("POST %s: no SHA-256 of the body", req->raw_uri);
        reply_status(req, rep, LKV_EINTERNAL, "the body's SHA-256 is missing");
        return 0;
    }
    req->op.content_addressed = 1;
    return start_write(req, rep, req->ca_key, DIGEST_HEX_LEN);
}

static void finish_write(struct request *req, struct reply *rep)
{
    const struct uri *u = &req->uri;
    struct kv_op *op = &req->op;
    int is_delete = req->method == M_DELETE;
    int partitions = op->worker->be->partitions;
    enum lkv_status st = op->st;
    if (st != LKV_OK) {
        reply_status(req, rep, st,
                     st == LKV_ENOTFOUND ? "no such key"
                     : st == LKV_EPRECOND ? "the precondition does not hold; nothing was written"
                     : st == LKV_EBADREQ ? "malformed If-Match or If-None-Match"
                     : st == LKV_EUNAVAIL ? "the key's master partition is unreachable"
                                          : "the write failed");
        return;
    }
    const char *key = op->rec.key; /* the URI's, or a content-addressed write's */
    size_t key_len = op->rec.key_len;
    int unchanged = op->content_addressed && op->unchanged;
    if (!unchanged)
        stats_add(worker_stats(op->worker), value_bytes_in_total, op->rec.value_len);
    unsigned status;
    const char *result;
    if (is_delete) {
        status = 202; /* how many partitions hold it: X-Lazykv-Replicas */
        result = "deleted";
    } else if (unchanged) {
        status = 200; /* the same content was live under its key: not rewritten */
        result = "unchanged";
    } else if (req->method == M_PUT && !op->created) {
        status = 200;
        result = op->refresh ? "refreshed" : "replaced";
    } else {
        status = 201;
        result = "created";
    }
    char etag[VERSION_ETAG_LEN];
    version_etag(op->rec.version, etag);
    const char *kenc;
    json_t *doc = json_pack("{s:s, s:o, s:I, s:s, s:i, s:s}", "result", result, "key",
                            render_bytes_json(key, key_len, 0, &kenc), "version",
                            (json_int_t)op->rec.version, "etag", etag, "master", op->master,
                            "consistency", u->canonical ? "canonical" : "lazy");
    add_expiry(NULL, doc, &op->rec);
    reply_doc(rep, req, status, doc, "result", 0);
    if (rep->status != status)
        return;
    add_expiry(rep, NULL, &op->rec);
    if (!is_delete) {
        reply_header(rep, "ETag", "%s", etag);
        add_repr_digest(rep, &op->rec, 0); /* the value's, as written (or kept) */
        /* Location: where a created value is; a content-addressed write's
         * client learns its key there, also when it was there already */
        if (status == 201 || op->content_addressed) {
            struct buf loc = BUF_INIT;
            if (buf_puts(&loc, u->canonical ? "/canonicalbucket/" : "/bucket/") == 0 &&
                codec_pct_encode(&loc, key, key_len, 1) == 0)
                reply_header(rep, "Location", "%s", loc.data);
            buf_free(&loc);
        }
    }
    if (u->canonical)
        reply_header(rep, "X-Lazykv-Replicas", "%d/%d", op->written, partitions);
}

/* ---- lists --------------------------------------------------------------- */

/* op->lower and op->upper for the keys under the list's prefix (after
 * start_after). 0, or -1 when out of memory. */
static int set_list_bounds(const struct uri *u, struct kv_op *op)
{
    const char *prefix = u->prefix ? u->prefix : "";
    size_t plen = u->prefix ? u->prefix_len : 0;
    /* "k > start_after" is "k >= start_after + NUL" in bytewise order. */
    struct kv_key sa = {.key = u->start_after, .len = u->start_after_len};
    struct kv_key pre = {.key = (char *)prefix, .len = plen};
    int after = u->start_after && key_cmp(&sa, &pre) >= 0;
    int rc = after ? buf_append(&op->lower, u->start_after, u->start_after_len) ||
                         buf_append(&op->lower, "", 1)
                   : buf_append(&op->lower, prefix, plen);
    /* The smallest string above every key with the prefix: drop trailing
     * 0xff bytes, then increment the last one. None if nothing is left. */
    while (plen > 0 && (unsigned char)prefix[plen - 1] == 0xff)
        plen--;
    if (rc == 0 && plen > 0) {
        rc = buf_append(&op->upper, prefix, plen);
        if (rc == 0)
            op->upper.data[plen - 1] = (char)((unsigned char)op->upper.data[plen - 1] + 1);
        op->has_upper = 1;
    }
    return rc ? -1 : 0;
}

static int start_list(struct request *req, struct reply *rep)
{
    const struct uri *u = &req->uri;
    struct kv_op *op = &req->op;
    op->kind = KV_OP_LIST;
    op->canonical = u->canonical;
    op->want = u->limit + 1; /* one more tells whether the list is truncated */
    op->values = u->values;
    if (set_list_bounds(u, op) != 0) {
        reply_status(req, rep, LKV_ENOMEM, "out of memory");
        return 0;
    }
    /* The prefix is what the list's token (X-Lazykv-Index) covers. */
    op->watch_key = u->prefix ? u->prefix : "";
    op->watch_key_len = u->prefix ? u->prefix_len : 0;
    if (u->index) {
        /* A watch: answered from the masters, when the state moves. */
        if (watch_token_parse(u->index, u->index_len, &op->watch_token) != 0) {
            reply_status(req, rep, LKV_EBADREQ, "index must be a list's X-Lazykv-Index");
            return 0;
        }
        op->canonical = 1;
        set_wait(op, WATCH_PREFIX, op->watch_key, op->watch_key_len, u->wait);
    }
    return 1;
}

/* DELETE /bucket/?prefix=P: every live key under P (not a whole bucket: an
 * empty prefix is refused). */
static int start_delete_tree(struct request *req, struct reply *rep)
{
    const struct uri *u = &req->uri;
    struct kv_op *op = &req->op;
    if (u->prefix == NULL || u->prefix_len == 0) {
        reply_status(req, rep, LKV_EBADREQ, "a delete of a tree needs a non-empty prefix");
        return 0;
    }
    op->kind = KV_OP_DELETE_TREE;
    op->canonical = u->canonical;
    struct uri bounds = *u;
    bounds.start_after = NULL;
    if (set_list_bounds(&bounds, op) != 0) {
        reply_status(req, rep, LKV_ENOMEM, "out of memory");
        return 0;
    }
    return 1;
}

static void finish_delete_tree(struct request *req, struct reply *rep)
{
    struct kv_op *op = &req->op;
    if (op->st != LKV_OK) {
        reply_status(req, rep, op->st,
                     op->st == LKV_EUNAVAIL
                         ? "a partition is unreachable; the keys deleted so far stay deleted"
                         : "the delete failed; the keys deleted so far stay deleted");
        return;
    }
    json_t *doc = json_pack("{s:s, s:I, s:s}", "result", "deleted", "deleted",
                            (json_int_t)op->deleted, "consistency",
                            req->uri.canonical ? "canonical" : "lazy");
    reply_doc(rep, req, 202, doc, "result", 0);
}

/* A key as a JSON string: as is, or percent-encoded when url. */
static json_t *key_json(const struct kv_key *k, int url, struct buf *scratch)
{
    if (!url)
        return json_stringn(k->key, k->len);
    scratch->len = 0;
    return codec_pct_encode(scratch, k->key, k->len, 1) == 0
               ? json_stringn(scratch->data, scratch->len)
               : NULL;
}

/* The last key of a truncated page: where the next one starts. With values,
 * the page may have lost keys deleted since they were listed: it ends where
 * the listing ended. */
static const struct kv_key *list_last(const struct kv_op *op, size_t count)
{
    return op->values_cut ? &op->cut_after : &op->keys.item[count - 1];
}

/* The list as a document (JSON, XML, text), its keys percent-encoded when
 * any is not UTF-8 or encoding=url asks. NULL when out of memory. */
static json_t *list_doc(const struct request *req, size_t count, int truncated, int markup)
{
    const struct uri *u = &req->uri;
    const struct kv_op *op = &req->op;
    const struct kv_keys *kl = &op->keys;
    int url = u->url_encoding;
    for (size_t i = 0; i < count && !url; i++)
        url = !codec_utf8_valid(kl->item[i].key, kl->item[i].len);
    if (op->values_cut && !url)
        url = !codec_utf8_valid(op->cut_after.key, op->cut_after.len);
    json_t *keys = json_array();
    struct buf enc = BUF_INIT;
    for (size_t i = 0; keys && i < count; i++) {
        /* With values, each entry is the key's document, as GET renders it. */
        json_t *s = u->values ? value_doc(kl->item[i].rec, markup)
                              : key_json(&kl->item[i], url, &enc);
        if (s && u->values && url) {
            /* a page of keys percent-encoded ("encoding": "url") */
            json_object_del(s, "key_encoding");
            if (json_object_set_new(s, "key", key_json(&kl->item[i], 1, &enc)) != 0) {
                json_decref(s);
                s = NULL;
            }
        }
        if (s == NULL || json_array_append_new(keys, s) != 0) {
            json_decref(keys);
            keys = NULL;
        }
    }
    json_t *doc = keys ? json_pack("{s:o, s:I, s:b, s:s}", "keys", keys, "count",
                                   (json_int_t)count, "truncated", truncated, "consistency",
                                   op->canonical ? "canonical" : "lazy")
                       : NULL;
    if (doc && url)
        json_object_set_new(doc, "encoding", json_string("url"));
    if (doc && truncated) {
        json_t *next = key_json(list_last(op, count), url, &enc);
        if (next == NULL || json_object_set_new(doc, "next_start_after", next) != 0) {
            json_decref(doc);
            doc = NULL;
        }
    }
    buf_free(&enc);
    return doc;
}

/* The list as a page of the HTML view (html.h). NULL when out of memory. */
static char *list_page(const struct request *req, size_t count, int truncated, size_t *len)
{
    const struct uri *u = &req->uri;
    const struct kv_op *op = &req->op;
    const struct kv_key *next = truncated ? list_last(op, count) : NULL;
    struct html_list l = {
        .canonical = u->canonical, .prefix = u->prefix, .prefix_len = u->prefix_len,
        .start_after = u->start_after, .start_after_len = u->start_after_len,
        .limit = u->limit, .limit_default = URI_LIMIT_DEFAULT, .values = u->values,
        .count = count, .next = next ? next->key : NULL, .next_len = next ? next->len : 0,
    };
    struct buf b = BUF_INIT;
    int rc = html_list_open(&b, &l);
    for (size_t i = 0; rc == 0 && i < count && op->keys.item; i++) {
        const struct kv_key *k = &op->keys.item[i];
        struct html_entry e = {0};
        if (k->rec) {
            e.size = k->rec->value_len;
            e.ctype = k->rec->ctype;
            e.version = k->rec->version;
        }
        rc = html_list_key(&b, &l, k->key, k->len, k->rec ? &e : NULL);
    }
    if (rc != 0 || html_list_close(&b, &l) != 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b, len);
}

static void finish_list(struct request *req, struct reply *rep)
{
    const struct uri *u = &req->uri;
    struct kv_op *op = &req->op;
    const struct kv_keys *kl = &op->keys;
    enum lkv_status st = op->st;
    if (st != LKV_OK) {
        reply_status(req, rep, st,
                     st == LKV_EUNAVAIL ? (u->canonical ? "a partition is unreachable"
                                                        : "no partition is reachable")
                                        : "the list failed");
        return;
    }
    int truncated = kl->n > (size_t)u->limit || op->values_cut;
    size_t count = kl->n > (size_t)u->limit ? (size_t)u->limit : kl->n;
    enum media m = negotiate_media(req->accept, NULL);
    if (m == MEDIA_HTML) {
        size_t len = 0;
        char *page = list_page(req, count, truncated, &len);
        reply_page(rep, 200, page, len);
    } else {
        reply_doc(rep, req, 200, list_doc(req, count, truncated, m == MEDIA_XML), "list", 0);
    }
    if (rep->status != 200)
        return;
    reply_header(rep, "Vary", "Accept");
    char token[WATCH_TOKEN_LEN];
    watch_token_format(&op->list_token, token);
    reply_header(rep, "X-Lazykv-Index", "%s", token);
}

/* ---- health -------------------------------------------------------------- */

/* The last sync pass recorded at the partitions (syncstatus.h), or null. */
static json_t *sync_doc(const struct sync_status *st)
{
    if (!st->known)
        return json_null();
    char end[VERSION_DATE_LEN];
    version_rfc3339(st->end_us, end);
    return json_pack("{s:s, s:i, s:I, s:f}", "last_pass_end", end, "exit_code", st->exit_code,
                     "rows", (json_int_t)st->rows, "lag_seconds", (double)st->lag_ms / 1e3);
}

/* What the probers know now (they probe every second, and every fault a
 * worker meets is recorded at once): no database work on the request. */
static void handle_health(struct lkv_server *srv, struct request *req, struct reply *rep)
{
    const struct lkv_config *cfg = srv->cfg;
    int n = cfg->partitions;
    struct sync_status last = {0};
    json_t *parts = json_array();
    int up = 0;
    for (int p = 0; parts && p < n; p++) {
        const struct lkv_partition_conf *pc = &cfg->part[p];
        int ok = prober_reachable(&srv->probers[p]);
        up += ok;
        char addr[300];
        if (pc->socket)
            snprintf(addr, sizeof(addr), "unix:%s", pc->socket);
        else
            snprintf(addr, sizeof(addr), "%s:%d", pc->host, pc->port);
        json_t *o = json_pack("{s:i, s:s, s:s, s:b}", "index", p, "database", pc->name,
                              "address", addr, "reachable", ok);
        struct sync_status st;
        uint64_t pending;
        if (o && prober_sync_status(&srv->probers[p], &st, &pending) == 0) {
            json_object_set_new(o, "pending_rows", json_integer((json_int_t)pending));
            if (st.known && st.end_us > last.end_us)
                last = st;
        }
        if (o == NULL || json_array_append_new(parts, o) != 0) {
            json_decref(parts);
            parts = NULL;
        }
    }
    const char *status = up == n ? "ok" : up > 0 ? "degraded" : "unavailable";
    json_t *doc;
    if (req->health_brief) {
        json_decref(parts);
        doc = json_pack("{s:s}", "status", status);
    } else {
        doc = parts ? json_pack("{s:s, s:s, s:s, s:i, s:i, s:o, s:o}", "status", status, "mode",
                                cfg->test_mode ? "test" : "production", "auth",
                                cfg->tokens_file ? "on" : "off", "reachable", up, "partitions",
                                n, "partition", parts, "sync", sync_doc(&last))
                    : NULL;
    }
    if (doc && negotiate_media(req->accept, NULL) == MEDIA_HTML) {
        size_t len = 0;
        char *page = html_health_page(doc, &len);
        json_decref(doc);
        reply_page(rep, up > 0 ? 200 : 503, page, len);
    } else {
        reply_doc(rep, req, up > 0 ? 200 : 503, doc, "health", 0);
    }
    if (up == 0)
        reply_header(rep, "Retry-After", RETRY_AFTER_SECONDS);
}

/* ---- authentication ------------------------------------------------------ */

void handle_auth_need(const struct request *req, struct auth_need *need)
{
    const struct uri *u = &req->uri;
    int reads = req->method == M_GET || req->method == M_HEAD;
    int writes = req->method == M_POST || req->method == M_PUT || req->method == M_DELETE;
    memset(need, 0, sizeof(*need)); /* any known token; the handler then says 400, 404, 405 */
    if (req->uri_status != LKV_OK)
        return;
    switch (u->route) {
    case ROUTE_KEY:
        need->perm = reads ? AUTH_READ : writes ? AUTH_WRITE : 0;
        need->scope = u->key;
        need->scope_len = u->key_len;
        return;
    case ROUTE_LIST:
        if (req->method == M_POST && u->key_sha256) {
            /* content-addressed: the key, the body's SHA-256, is known
             * only once the body is in, and may be any: a token that
             * writes every key ('*') */
            need->perm = AUTH_WRITE;
            need->scope = "";
            need->scope_len = 0;
            return;
        }
        /* a list, a prefix watch and a delete-tree reach every key under
         * their prefix: the prefix itself must be inside the token's */
        need->perm = reads ? AUTH_READ : req->method == M_DELETE ? AUTH_WRITE : 0;
        need->scope = u->prefix ? u->prefix : "";
        need->scope_len = u->prefix ? u->prefix_len : 0;
        return;
    case ROUTE_METRICS:
        need->perm = AUTH_ADMIN;
        return;
    case ROUTE_HEALTH:
    case ROUTE_NOT_FOUND:
        return;
    }
}

void handle_auth_refused(struct request *req, struct reply *rep, enum auth_verdict v)
{
    memset(rep, 0, sizeof(*rep));
    if (v == AUTH_DENIED) {
        handle_error(req, rep, 403, "this token may not do this here: its permissions or its"
                                    " key prefixes do not cover the request");
        return;
    }
    handle_error(req, rep, 401, "a bearer token is required: Authorization: Bearer TOKEN");
    reply_header(rep, "WWW-Authenticate", "Bearer realm=\"lazykv\"");
}

/* ---- metrics ------------------------------------------------------------- */

static void handle_metrics(struct lkv_server *srv, struct request *req, struct reply *rep)
{
    struct buf b = BUF_INIT;
    if (metrics_render(srv, &b) != 0) {
        buf_free(&b);
        reply_status(req, rep, LKV_ENOMEM, "out of memory");
        return;
    }
    rep->status = 200;
    rep->content_type = "text/plain; version=0.0.4; charset=utf-8";
    rep->body = buf_steal(&b, &rep->body_len);
    if (rep->body == NULL)
        reply_oom(rep);
}

/* ---- routing ------------------------------------------------------------- */

static void method_not_allowed(struct request *req, struct reply *rep, const char *allow)
{
    handle_error(req, rep, 405, "method not allowed on this resource");
    reply_header(rep, "Allow", "%s", allow);
}

#define KEY_PARAM_WHERE \
    "key=sha256 applies to a POST to /bucket/ or /canonicalbucket/ (the key is then the " \
    "body's SHA-256)"

static int handle_key(struct lkv_server *srv, struct request *req, struct reply *rep)
{
    const struct uri *u = &req->uri;
    int is_read = req->method == M_GET || req->method == M_HEAD;
    if (req->method == M_OTHER) {
        method_not_allowed(req, rep, "GET, HEAD, POST, PUT, DELETE");
        return 0;
    }
    const char *why = NULL;
    enum lkv_status st = uri_check_key(u->key, u->key_len, srv->cfg->key_length, is_read, &why);
    if (st != LKV_OK) {
        reply_status(req, rep, st, why);
        return 0;
    }
    if (u->key_param) {
        reply_status(req, rep, LKV_EBADREQ, KEY_PARAM_WHERE);
        return 0;
    }
    return is_read ? start_get(req, rep) : start_write(req, rep, u->key, u->key_len);
}

static int is_content_addressed(const struct request *req)
{
    return req->uri_status == LKV_OK && req->uri.route == ROUTE_LIST && req->method == M_POST &&
           req->uri.key_sha256;
}

int handle_streams_body(const struct lkv_config *cfg, const struct request *req)
{
    const struct uri *u = &req->uri;
    const char *why = NULL;
    if (is_content_addressed(req))
        return req->ca_declared;
    return req->uri_status == LKV_OK && u->route == ROUTE_KEY &&
           (req->method == M_POST || req->method == M_PUT) && !u->refresh &&
           uri_check_key(u->key, u->key_len, cfg->key_length, 0, &why) == LKV_OK;
}

const char *handle_body_key(const struct request *req, size_t *len)
{
    if (is_content_addressed(req)) {
        *len = DIGEST_HEX_LEN;
        return req->ca_key;
    }
    *len = req->uri.key_len;
    return req->uri.key;
}

int handle_spools_body(const struct request *req)
{
    return is_content_addressed(req) && !req->ca_declared;
}

int handle_request(struct lkv_server *srv, struct request *req, struct reply *rep)
{
    memset(rep, 0, sizeof(*rep));
    if (req->uri_status != LKV_OK) {
        reply_status(req, rep, req->uri_status,
                     req->uri.error ? req->uri.error : "the request could not be parsed");
        return 0;
    }
    switch (req->uri.route) {
    case ROUTE_KEY:
        return handle_key(srv, req, rep);
    case ROUTE_LIST:
        if (req->method == M_OTHER) {
            method_not_allowed(req, rep, "GET, HEAD, DELETE");
            return 0;
        }
        if (req->method == M_POST && req->uri.key_sha256)
            return start_content_addressed(srv, req, rep);
        if (req->uri.key_param) {
            reply_status(req, rep, LKV_EBADREQ, KEY_PARAM_WHERE);
            return 0;
        }
        if (req->method == M_GET || req->method == M_HEAD)
            return start_list(req, rep);
        if (req->method == M_DELETE)
            return start_delete_tree(req, rep);
        reply_status(req, rep, LKV_EBADREQ,
                     "the key is empty (POST ?key=sha256 names it by the body's SHA-256)");
        return 0;
    case ROUTE_HEALTH:
    case ROUTE_METRICS:
        if (req->method != M_GET && req->method != M_HEAD)
            method_not_allowed(req, rep, "GET, HEAD");
        else if (req->uri.route == ROUTE_HEALTH)
            handle_health(srv, req, rep);
        else
            handle_metrics(srv, req, rep);
        return 0;
    case ROUTE_NOT_FOUND:
        break;
    }
    handle_error(req, rep, 404, "no such resource: use /bucket/KEY, /canonicalbucket/KEY, "
                                "/health or /metrics");
    return 0;
}

void handle_op_done(struct request *req, struct reply *rep)
{
    memset(rep, 0, sizeof(*rep));
    switch (req->op.kind) {
    case KV_OP_READ: finish_get(req, rep); return;
    case KV_OP_WRITE: finish_write(req, rep); return;
    case KV_OP_LIST: finish_list(req, rep); return;
    case KV_OP_DELETE_TREE: finish_delete_tree(req, rep); return;
    case KV_OP_CHUNK: break; /* never a request's own operation */
    }
    reply_status(req, rep, LKV_EINTERNAL, "unknown operation");
}
