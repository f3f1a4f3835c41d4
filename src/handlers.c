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

#include "codec.h"
#include "log.h"
#include "negotiate.h"
#include "placement.h"
#include "render.h"
#include "version.h"

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
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 406: return "Not Acceptable";
    case 412: return "Precondition Failed";
    case 413: return "Content Too Large";
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
}

void reply_free(struct reply *rep)
{
    free(rep->body);
    rep->body = NULL;
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

/* ---- preconditions (If-Match / If-None-Match) ---------------------------- */

struct precond {
    const char *if_match;      /* ref, or NULL */
    const char *if_none_match; /* ref, or NULL */
};

/* Evaluates the preconditions against the current row (NULL: absent).
 * Returns LKV_OK, LKV_EPRECOND, or LKV_EBADREQ for a malformed header. */
static enum lkv_status precond_eval(const struct record *cur, const struct precond *pc)
{
    int star;
    uint64_t v = cur ? cur->version : 0;
    if (pc->if_match) {
        int m = version_etag_list_match(pc->if_match, v, 0, &star);
        if (m < 0 && !star)
            return LKV_EBADREQ;
        if (cur == NULL || (!star && m == 0))
            return LKV_EPRECOND;
    }
    if (pc->if_none_match) {
        int m = version_etag_list_match(pc->if_none_match, v, 1, &star);
        if (m < 0 && !star)
            return LKV_EBADREQ;
        if (cur != NULL && (star || m == 1))
            return LKV_EPRECOND;
    }
    return LKV_OK;
}

static enum lkv_status precond_check(const struct record *cur, void *arg)
{
    return precond_eval(cur, arg);
}

/* Syntax check of both headers before any database work. */
static int precond_valid(const struct precond *pc)
{
    int star;
    return !((pc->if_match && version_etag_list_match(pc->if_match, 0, 0, &star) < 0 && !star) ||
             (pc->if_none_match &&
              version_etag_list_match(pc->if_none_match, 0, 1, &star) < 0 && !star));
}

/* ---- reads --------------------------------------------------------------- */

/* Reads key from partition p: a read of the value goes through the
 * partition's batcher, so that concurrent reads share one statement. */
static enum lkv_status read_at(struct worker *w, int p, const struct uri *u, int want_value,
                               struct record *rec)
{
    int statements = 1;
    enum lkv_status st =
        want_value ? batcher_get(&w->srv->readers[p], &w->conn[p], rec, &statements)
            : store_get(&w->conn[p], u->key, u->key_len, want_value, rec);
    stats_add(&w->stats, db_reads_total, 1);
    stats_add(&w->stats, db_read_statements_total, statements);
    return st;
}

/* Reads key from a random partition, failing over to the next ones when a
 * partition is down. *served is the partition that answered. */
static enum lkv_status read_any(struct worker *w, const struct uri *u, int want_value,
                                struct record *rec, int *served)
{
    int n = w->n;
    int start = (int)(worker_random(w) % (uint64_t)n);
    enum lkv_status st = LKV_EUNAVAIL;
    for (int i = 0; i < n; i++) {
        int p = (start + i) % n;
        if (pconn_backing_off(&w->conn[p]))
            continue;
        st = read_at(w, p, u, want_value, rec);
        *served = p;
        if (st != LKV_EUNAVAIL)
            return st;
    }
    return st;
}

static enum lkv_status read_key(struct worker *w, const struct uri *u, int want_value,
                                struct record *rec, int *served)
{
    memset(rec, 0, sizeof(*rec));
    rec->key = u->key;
    rec->key_len = u->key_len;
    if (!u->canonical)
        return read_any(w, u, want_value, rec, served);
    *served = placement_master(u->key, u->key_len, w->n);
    return read_at(w, *served, u, want_value, rec);
}

static json_t *value_doc(const struct record *rec, int markup)
{
    const char *kenc, *venc;
    char etag[VERSION_ETAG_LEN], date[VERSION_DATE_LEN];
    version_etag(rec->version, etag);
    version_http_date(rec->version, date);
    json_t *k = render_bytes_json(rec->key, rec->key_len, markup, &kenc);
    json_t *v = render_bytes_json(rec->value ? rec->value : "", rec->value_len, markup, &venc);
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
    return doc;
}

static void handle_get(struct worker *w, struct request *req, struct reply *rep)
{
    const struct uri *u = &req->uri;
    struct record rec;
    int served = -1;
    int head = req->method == M_HEAD;
    /* One read per request, and everything (preconditions, validators,
     * length) judged on the record it returns: a lazy read of the same key
     * twice could reach two partitions holding two versions. A HEAD reads
     * the value too when a document may be chosen, whose length needs it.
     * A value read went through a batcher, which released the client
     * library's buffers of whichever connection carried it. */
    int want_value = !head || negotiate_document_possible(req->accept);
    struct precond pc = {req->if_match, req->if_none_match};
    if (!precond_valid(&pc)) {
        memset(&rec, 0, sizeof(rec));
        reply_status(req, rep, LKV_EBADREQ, "malformed If-Match or If-None-Match");
        goto out;
    }
    enum lkv_status st = read_key(w, u, want_value, &rec, &served);
    if (st != LKV_OK) {
        reply_status(req, rep, st,
                     st == LKV_ENOTFOUND ? "no such key"
                     : st == LKV_EUNAVAIL ? "no partition holding the key is reachable"
                                          : "the read failed");
        goto out;
    }
    if (pc.if_match && precond_eval(&rec, &(struct precond){pc.if_match, NULL}) != LKV_OK) {
        reply_status(req, rep, LKV_EPRECOND, "If-Match does not match the current version");
        goto out;
    }
    if (pc.if_none_match &&
        precond_eval(&rec, &(struct precond){NULL, pc.if_none_match}) != LKV_OK) {
        rep->status = 304;
        add_validators(rep, rec.version);
        goto out;
    }
    enum media m = negotiate_media(req->accept, rec.ctype);
    if (m == MEDIA_NONE) {
        handle_error(req, rep, 406, "no acceptable representation: the value is served raw, "
                                    "or as JSON, XML, HTML or text");
        goto out;
    }
    if (m != MEDIA_RAW && !want_value) {
        /* negotiate_document_possible() said no document could be chosen. */
        log_error("HEAD %s: a document was chosen without the value read", req->raw_uri);
        reply_status(req, rep, LKV_EINTERNAL, "the representation could not be chosen");
        goto out;
    }
    rep->status = 200;
    if (m == MEDIA_RAW) {
        snprintf(rep->ctype_buf, sizeof(rep->ctype_buf), "%s", rec.ctype);
        rep->content_type = rep->ctype_buf;
        if (head) {
            rep->head_only = 1;
            rep->head_size = rec.value_len;
        } else {
            rep->body = rec.value; /* stolen: no copy of the value */
            rep->body_len = rec.value_len;
            stats_add(&w->stats, value_bytes_out_total, rec.value_len);
            rec.value = NULL;
        }
    } else {
        reply_doc(rep, req, 200, value_doc(&rec, m == MEDIA_XML || m == MEDIA_HTML), "value", 0);
        if (rep->status != 200)
            goto out;
    }
    add_validators(rep, rec.version);
    reply_header(rep, "Vary", "Accept");
out:
    /* Which partition answered, on every answer it decided (404, 304 and
     * 412 included): lazy reads may differ by partition. */
    if (served >= 0 && rep->status != 503)
        reply_header(rep, "X-Lazykv-Partition", "%d", served);
    free(rec.value);
}

/* ---- writes -------------------------------------------------------------- */

/* Copies a write made at the master to every other reachable partition.
 * Returns how many partitions hold it now, the master included. */
static int replicate(struct worker *w, int master, const struct record *rec)
{
    int written = 1;
    for (int p = 0; p < w->n; p++) {
        if (p == master || pconn_backing_off(&w->conn[p]))
            continue;
        int statements = 1;
        if (batcher_apply(&w->srv->appliers[p], &w->conn[p], rec, &statements) == LKV_OK)
            written++;
        stats_add(&w->stats, db_copies_total, 1);
        stats_add(&w->stats, db_copy_statements_total, statements);
    }
    return written;
}

static void handle_write(struct worker *w, struct request *req, struct reply *rep)
{
    const struct uri *u = &req->uri;
    int is_delete = req->method == M_DELETE;
    struct precond pc = {req->if_match, req->if_none_match};
    if (!precond_valid(&pc)) {
        reply_status(req, rep, LKV_EBADREQ, "malformed If-Match or If-None-Match");
        return;
    }
    struct record rec;
    memset(&rec, 0, sizeof(rec));
    rec.key = u->key;
    rec.key_len = u->key_len;
    rec.deleted = is_delete;
    if (!is_delete) {
        const char *ct = req->content_type && req->content_type[0] ? req->content_type
                                                                   : DEFAULT_CTYPE;
        if (strlen(ct) > STORE_CTYPE_MAX) {
            reply_status(req, rep, LKV_EBADREQ, "Content-Type is longer than 255 bytes");
            return;
        }
        snprintf(rec.ctype, sizeof(rec.ctype), "%s", ct);
        rec.value = req->body.data; /* ref: the request keeps ownership */
        rec.value_len = req->body.len;
    }
    int master = placement_master(u->key, u->key_len, w->n);
    int has_pc = pc.if_match || pc.if_none_match;
    struct write_result res;
    pthread_mutex_t *order = keylock_of(&w->srv->keylocks, master, u->key, u->key_len);
    pthread_mutex_lock(order);
    enum lkv_status st = store_write(&w->conn[master], &rec, version_now_us(),
                                     req->method == M_PUT, has_pc ? precond_check : NULL, &pc,
                                     &res);
    pthread_mutex_unlock(order);
    pconn_after_transfer(&w->conn[master], rec.value_len);
    if (st != LKV_OK) {
        reply_status(req, rep, st,
                     st == LKV_ENOTFOUND ? "no such key"
                     : st == LKV_EPRECOND ? "the precondition does not hold; nothing was written"
                     : st == LKV_EBADREQ ? "malformed If-Match or If-None-Match"
                     : st == LKV_EUNAVAIL ? "the key's master partition is unreachable"
                                          : "the write failed");
        return;
    }
    stats_add(&w->stats, value_bytes_in_total, rec.value_len);
    int written = 1;
    if (u->canonical) {
        rec.version = res.version;
        written = replicate(w, master, &rec);
    }
    unsigned status;
    const char *result;
    if (is_delete) {
        status = 202; /* how many partitions hold it: X-Lazykv-Replicas */
        result = "deleted";
    } else if (req->method == M_PUT && !res.created) {
        status = 200;
        result = "replaced";
    } else {
        status = 201;
        result = "created";
    }
    char etag[VERSION_ETAG_LEN];
    version_etag(res.version, etag);
    const char *kenc;
    json_t *doc = json_pack("{s:s, s:o, s:I, s:s, s:i, s:s}", "result", result, "key",
                            render_bytes_json(u->key, u->key_len, 0, &kenc), "version",
                            (json_int_t)res.version, "etag", etag, "master", master,
                            "consistency", u->canonical ? "canonical" : "lazy");
    reply_doc(rep, req, status, doc, "result", 0);
    if (rep->status != status)
        return;
    if (!is_delete) {
        reply_header(rep, "ETag", "%s", etag);
        if (status == 201) {
            struct buf loc = BUF_INIT;
            if (buf_puts(&loc, u->canonical ? "/canonicalbucket/" : "/bucket/") == 0 &&
                codec_pct_encode(&loc, u->key, u->key_len, 1) == 0)
                reply_header(rep, "Location", "%s", loc.data);
            buf_free(&loc);
        }
    }
    if (u->canonical)
        reply_header(rep, "X-Lazykv-Replicas", "%d/%d", written, w->n);
}

/* ---- lists --------------------------------------------------------------- */

struct keyref {
    char *key;  /* owned by the keylist */
    size_t len;
};

struct keylist {
    struct keyref *item; /* owned */
    size_t n, cap;
    int master_filter;  /* keep only keys mastered here, -1 = keep all */
    int partitions;
    size_t seen;        /* rows read, kept or not */
    int failed;         /* out of memory */
};

static int keylist_add(const char *key, size_t len, void *arg)
{
    struct keylist *kl = arg;
    kl->seen++;
    if (kl->master_filter >= 0 && placement_master(key, len, kl->partitions) != kl->master_filter)
        return 0;
    if (kl->n == kl->cap) {
        size_t cap = kl->cap ? kl->cap * 2 : 64;
        void *p = realloc(kl->item, cap * sizeof(*kl->item));
        if (p == NULL)
            return kl->failed = 1;
        kl->item = p;
        kl->cap = cap;
    }
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return kl->failed = 1;
    memcpy(copy, key, len);
    copy[len] = '\0';
    kl->item[kl->n].key = copy;
    kl->item[kl->n].len = len;
    kl->n++;
    return 0;
}

static void keylist_free(struct keylist *kl)
{
    for (size_t i = 0; i < kl->n; i++)
        free(kl->item[i].key);
    free(kl->item);
}

static int key_cmp(const void *a, const void *b)
{
    const struct keyref *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->key, y->key, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* The bounds of a list: lower inclusive, upper exclusive (NULL: none). */
struct list_bounds {
    struct buf lower;
    struct buf upper;
    int has_upper;
};

static int bounds_init(struct list_bounds *b, const struct uri *u)
{
    memset(b, 0, sizeof(*b));
    const char *prefix = u->prefix ? u->prefix : "";
    size_t plen = u->prefix ? u->prefix_len : 0;
    /* "k > start_after" is "k >= start_after + NUL" in bytewise order. */
    struct keyref sa = {u->start_after, u->start_after_len}, pre = {(char *)prefix, plen};
    int after = u->start_after && key_cmp(&sa, &pre) >= 0;
    if (after ? buf_append(&b->lower, u->start_after, u->start_after_len) ||
                    buf_append(&b->lower, "", 1)
              : buf_append(&b->lower, prefix, plen))
        return -1;
    /* The smallest string above every key with the prefix: drop trailing
     * 0xff bytes, then increment the last one. None if nothing is left. */
    while (plen > 0 && (unsigned char)prefix[plen - 1] == 0xff)
        plen--;
    if (plen > 0) {
        if (buf_append(&b->upper, prefix, plen) != 0)
            return -1;
        b->upper.data[plen - 1] = (char)((unsigned char)b->upper.data[plen - 1] + 1);
        b->has_upper = 1;
    }
    return 0;
}

static enum lkv_status list_partition(struct worker *w, int p, const struct list_bounds *b,
                                      int want, struct keylist *kl)
{
    return store_list(&w->conn[p], b->lower.data, b->lower.len,
                      b->has_upper ? b->upper.data : NULL, b->upper.len, want, keylist_add, kl);
}

/* Lazy list: one reachable partition's view. */
static enum lkv_status list_lazy(struct worker *w, const struct list_bounds *b, int want,
                                 struct keylist *kl)
{
    int start = (int)(worker_random(w) % (uint64_t)w->n);
    enum lkv_status st = LKV_EUNAVAIL;
    for (int i = 0; i < w->n; i++) {
        int p = (start + i) % w->n;
        if (pconn_backing_off(&w->conn[p]))
            continue;
        st = list_partition(w, p, b, want, kl);
        if (st != LKV_EUNAVAIL)
            return st;
    }
    return st;
}

/* Canonical list: from each partition, the first `want` live keys it is the
 * master of, paging through the keys it holds; the union, sorted, starts
 * with the first `want` keys of the authoritative view. */
static enum lkv_status list_canonical(struct worker *w, const struct list_bounds *b, int want,
                                      struct keylist *kl)
{
    for (int p = 0; p < w->n; p++) {
        struct list_bounds page;
        memset(&page, 0, sizeof(page));
        if (buf_append(&page.lower, b->lower.data, b->lower.len) != 0)
            return LKV_ENOMEM;
        page.upper = b->upper; /* ref: not freed below */
        page.has_upper = b->has_upper;
        size_t kept_before = kl->n;
        enum lkv_status st = LKV_OK;
        for (;;) {
            kl->master_filter = p;
            /* The last key read, kept or not, is where the next page starts;
             * remember it through a keep-all pass over the page. */
            struct keylist all = {NULL, 0, 0, -1, w->n, 0, 0};
            st = list_partition(w, p, &page, want, &all);
            for (size_t i = 0; st == LKV_OK && i < all.n && !kl->failed; i++)
                keylist_add(all.item[i].key, all.item[i].len, kl);
            int exhausted = all.n < (size_t)want;
            if (st == LKV_OK && all.n > 0) {
                page.lower.len = 0;
                if (buf_append(&page.lower, all.item[all.n - 1].key, all.item[all.n - 1].len) ||
                    buf_append(&page.lower, "", 1))
                    st = LKV_ENOMEM;
            }
            if (all.failed || kl->failed)
                st = LKV_ENOMEM;
            keylist_free(&all);
            if (st != LKV_OK || exhausted || kl->n - kept_before >= (size_t)want)
                break;
        }
        buf_free(&page.lower);
        if (st != LKV_OK)
            return st;
    }
    if (kl->n > 1)
        qsort(kl->item, kl->n, sizeof(*kl->item), key_cmp);
    return LKV_OK;
}

static void handle_list(struct worker *w, struct request *req, struct reply *rep)
{
    const struct uri *u = &req->uri;
    struct list_bounds b;
    struct keylist kl = {NULL, 0, 0, -1, w->n, 0, 0};
    json_t *keys = NULL;
    enum lkv_status st = bounds_init(&b, u) == 0 ? LKV_OK : LKV_ENOMEM;
    int want = u->limit + 1; /* one more tells whether the list is truncated */
    if (st == LKV_OK)
        st = u->canonical ? list_canonical(w, &b, want, &kl) : list_lazy(w, &b, want, &kl);
    if (st == LKV_OK && kl.failed)
        st = LKV_ENOMEM;
    if (st != LKV_OK) {
        reply_status(req, rep, st,
                     st == LKV_EUNAVAIL ? (u->canonical ? "a partition is unreachable"
                                                        : "no partition is reachable")
                                        : "the list failed");
        goto out;
    }
    int truncated = kl.n > (size_t)u->limit;
    size_t count = truncated ? (size_t)u->limit : kl.n;
    int url = u->url_encoding;
    for (size_t i = 0; i < count && !url; i++)
        url = !codec_utf8_valid(kl.item[i].key, kl.item[i].len);
    keys = json_array();
    struct buf enc = BUF_INIT;
    for (size_t i = 0; keys && i < count; i++) {
        json_t *s;
        if (url) {
            enc.len = 0;
            s = codec_pct_encode(&enc, kl.item[i].key, kl.item[i].len, 1) == 0
                    ? json_stringn(enc.data, enc.len)
                    : NULL;
        } else {
            s = json_stringn(kl.item[i].key, kl.item[i].len);
        }
        if (s == NULL || json_array_append_new(keys, s) != 0) {
            json_decref(keys);
            keys = NULL;
        }
    }
    json_t *doc = keys ? json_pack("{s:O, s:I, s:b, s:s}", "keys", keys, "count",
                                   (json_int_t)count, "truncated", truncated, "consistency",
                                   u->canonical ? "canonical" : "lazy")
                       : NULL;
    if (doc && url)
        json_object_set_new(doc, "encoding", json_string("url"));
    if (doc && truncated && kl.item != NULL) {
        const struct keyref *last = &kl.item[count - 1];
        json_t *next;
        if (url) {
            enc.len = 0;
            next = codec_pct_encode(&enc, last->key, last->len, 1) == 0
                       ? json_stringn(enc.data, enc.len)
                       : NULL;
        } else {
            next = json_stringn(last->key, last->len);
        }
        if (next == NULL || json_object_set_new(doc, "next_start_after", next) != 0) {
            json_decref(doc);
            doc = NULL;
        }
    }
    buf_free(&enc);
    reply_doc(rep, req, 200, doc, "list", 0);
    reply_header(rep, "Vary", "Accept");
out:
    json_decref(keys);
    keylist_free(&kl);
    buf_free(&b.lower);
    buf_free(&b.upper);
}

/* ---- health -------------------------------------------------------------- */

static void handle_health(struct worker *w, struct request *req, struct reply *rep)
{
    const struct lkv_config *cfg = w->srv->cfg;
    json_t *parts = json_array();
    int up = 0;
    for (int p = 0; parts && p < w->n; p++) {
        const struct lkv_partition_conf *pc = &cfg->part[p];
        int ok = pconn_ping(&w->conn[p]) == LKV_OK;
        up += ok;
        char addr[300];
        if (pc->socket)
            snprintf(addr, sizeof(addr), "unix:%s", pc->socket);
        else
            snprintf(addr, sizeof(addr), "%s:%d", pc->host, pc->port);
        json_t *o = json_pack("{s:i, s:s, s:s, s:b}", "index", p, "database", pc->name,
                              "address", addr, "reachable", ok);
        if (o == NULL || json_array_append_new(parts, o) != 0) {
            json_decref(parts);
            parts = NULL;
        }
    }
    const char *status = up == w->n ? "ok" : up > 0 ? "degraded" : "unavailable";
    json_t *doc = parts ? json_pack("{s:s, s:s, s:i, s:i, s:o}", "status", status, "mode",
                                    cfg->test_mode ? "test" : "production", "reachable", up,
                                    "partitions", w->n, "partition", parts)
                        : NULL;
    reply_doc(rep, req, up > 0 ? 200 : 503, doc, "health", 0);
    if (up == 0)
        reply_header(rep, "Retry-After", RETRY_AFTER_SECONDS);
}

/* ---- metrics ------------------------------------------------------------- */

static void handle_metrics(struct worker *w, struct request *req, struct reply *rep)
{
    struct stats totals;
    memset(&totals, 0, sizeof(totals));
    server_stats(w->srv, &totals);
    struct buf b = BUF_INIT;
    int rc = stats_render(&b, &totals);
    rc |= buf_printf(&b, "# HELP lazykv_http_connections client connections open now\n"
                         "# TYPE lazykv_http_connections gauge\nlazykv_http_connections %d\n",
                     atomic_load(&w->srv->connections));
    if (rc != 0) {
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

static void handle_key(struct worker *w, struct request *req, struct reply *rep)
{
    const struct uri *u = &req->uri;
    int is_read = req->method == M_GET || req->method == M_HEAD;
    if (req->method == M_OTHER) {
        method_not_allowed(req, rep, "GET, HEAD, POST, PUT, DELETE");
        return;
    }
    const char *why = NULL;
    enum lkv_status st = uri_check_key(u->key, u->key_len, w->srv->cfg->key_length, is_read, &why);
    if (st != LKV_OK) {
        reply_status(req, rep, st, why);
        return;
    }
    if (is_read)
        handle_get(w, req, rep);
    else
        handle_write(w, req, rep);
}

void handle_request(struct worker *w, struct request *req, struct reply *rep)
{
    memset(rep, 0, sizeof(*rep));
    if (req->uri_status != LKV_OK) {
        reply_status(req, rep, req->uri_status,
                     req->uri.error ? req->uri.error : "the request could not be parsed");
        return;
    }
    switch (req->uri.route) {
    case ROUTE_KEY:
        handle_key(w, req, rep);
        return;
    case ROUTE_LIST:
        if (req->method == M_GET || req->method == M_HEAD)
            handle_list(w, req, rep);
        else if (req->method == M_OTHER)
            method_not_allowed(req, rep, "GET, HEAD");
        else
            reply_status(req, rep, LKV_EBADREQ, "the key is empty");
        return;
    case ROUTE_HEALTH:
    case ROUTE_METRICS:
        if (req->method != M_GET && req->method != M_HEAD)
            method_not_allowed(req, rep, "GET, HEAD");
        else if (req->uri.route == ROUTE_HEALTH)
            handle_health(w, req, rep);
        else
            handle_metrics(w, req, rep);
        return;
    case ROUTE_NOT_FOUND:
        break;
    }
    handle_error(req, rep, 404, "no such resource: use /bucket/KEY, /canonicalbucket/KEY, "
                                "/health or /metrics");
}
