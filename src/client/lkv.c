/*
 * lkv.c -- liblazykv: lazykv's HTTP API behind libkv's operations. See
 * lazykv.h for the interface and its promises.
 *
 * One request is request(): it tries the endpoints in turn from the last
 * one that answered, moves on when one cannot be connected to or answers
 * 503 (with a growing pause once every endpoint has been tried), and gives
 * every other answer back as it is. The rest maps operations to requests
 * and answers to lkv_err:
 *
 *   put, delete, delete-tree, atomics   POST/PUT/DELETE /bucket/KEY (the
 *                                       master writes; the sync copies)
 *   get, exists, list                   /canonicalbucket/ (/bucket/ with
 *                                       lazy)
 *   watch, watch-tree                   GET ?index= (answered by masters)
 *   locks                               PUT ?ttl&wait / refresh / DELETE
 *                                       with the lock's ETag
 */
#include "lazykv.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "util.h"

#define API __attribute__((visibility("default")))
#define DEFAULT_TIMEOUT_MS 10000L
#define WATCH_WAIT_S 60       /* each watch request waits this long at most */
#define LIST_PAGE 1000

struct lkv {
    char *endpoints;            /* owned: as given (a lock clones the client) */
    char **ep;                  /* owned */
    int nep;
    int cur;                    /* the endpoint that answered last */
    struct lkv_options opt;     /* strings owned */
    CURL *curl;                 /* owned: reused for keep-alive */
    const volatile int *stop;   /* a watch's, while it runs */
    char err[512];
};

/* One answer. */
struct resp {
    long status;
    struct lkvu_buf body;
    char index[64];             /* X-Lazykv-Index */
    char expires[48];           /* X-Lazykv-Expires */
    char etag[40];
    char ctype[256];
};

static void resp_free(struct resp *r)
{
    lkvu_free(&r->body);
}

static int64_t now_ms(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void pause_ms(long ms)
{
    struct timespec t = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&t, &t) != 0 && errno == EINTR)
        ;
}

static void set_err(lkv *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* What failed, for lkv_last_error(). */
static void set_err(lkv *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err, sizeof(c->err), fmt, ap);
    va_end(ap);
}

/* ---- the client ---------------------------------------------------------------- */

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

/* libcurl's global set-up is not thread-safe: once, before any handle. */
static void init_curl(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

API lkv *lkv_open(const char *endpoints, const struct lkv_options *opt)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, init_curl);
    lkv *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->nep = lkvu_endpoints(endpoints, &c->ep);
    c->endpoints = strdup(endpoints ? endpoints : "");
    if (opt)
        c->opt = *opt;
    c->opt.token = dup_or_null(c->opt.token);
    c->opt.ca_file = dup_or_null(c->opt.ca_file);
    c->opt.cert_file = dup_or_null(c->opt.cert_file);
    c->opt.key_file = dup_or_null(c->opt.key_file);
    if (c->opt.timeout_ms <= 0)
        c->opt.timeout_ms = DEFAULT_TIMEOUT_MS;
    c->curl = curl_easy_init();
    if (c->nep < 0 || c->endpoints == NULL || c->curl == NULL ||
        (opt && ((opt->token && !c->opt.token) || (opt->ca_file && !c->opt.ca_file) ||
                 (opt->cert_file && !c->opt.cert_file) || (opt->key_file && !c->opt.key_file)))) {
        if (c->nep < 0)
            c->nep = 0;
        lkv_close(c);
        return NULL;
    }
    return c;
}

API void lkv_close(lkv *c)
{
    if (c == NULL)
        return;
    if (c->curl)
        curl_easy_cleanup(c->curl);
    lkvu_endpoints_free(c->ep, c->nep);
    free(c->endpoints);
    free((char *)c->opt.token);
    free((char *)c->opt.ca_file);
    free((char *)c->opt.cert_file);
    free((char *)c->opt.key_file);
    free(c);
}

API const char *lkv_strerror(lkv_err e)
{
    switch (e) {
    case LKV_OK: return "success";
    case LKV_ERR_NOT_FOUND: return "key not found";
    case LKV_ERR_KEY_EXISTS: return "key exists";
    case LKV_ERR_KEY_MODIFIED: return "key modified since it was read";
    case LKV_ERR_CANNOT_LOCK: return "lock held by another client";
    case LKV_ERR_TIMEOUT: return "timed out";
    case LKV_ERR_UNAVAILABLE: return "no endpoint available";
    case LKV_ERR_UNAUTHORIZED: return "unauthorized";
    case LKV_ERR_FORBIDDEN: return "forbidden";
    case LKV_ERR_INVALID: return "invalid request";
    case LKV_ERR_IO: return "I/O error";
    case LKV_ERR_NOMEM: return "out of memory";
    }
    return "unknown error";
}

API const char *lkv_last_error(lkv *c)
{
    return c ? c->err : "";
}

/* ---- one request ---------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;
    return lkvu_append(&r->body, p, size * n) == 0 ? size * n : 0;
}

/* Copies the value of header "name: value\r\n" in line into out. */
static void header_value(const char *line, size_t len, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    if (len <= nl + 1 || strncasecmp(line, name, nl) != 0 || line[nl] != ':')
        return;
    const char *v = line + nl + 1;
    const char *end = line + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' '))
        end--;
    size_t n = (size_t)(end - v) < cap - 1 ? (size_t)(end - v) : cap - 1;
    memcpy(out, v, n);
    out[n] = '\0';
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct resp *r = arg;
    size_t len = size * n;
    header_value(p, len, "X-Lazykv-Index", r->index, sizeof(r->index));
    header_value(p, len, "X-Lazykv-Expires", r->expires, sizeof(r->expires));
    header_value(p, len, "ETag", r->etag, sizeof(r->etag));
    header_value(p, len, "Content-Type", r->ctype, sizeof(r->ctype));
    return len;
}

/* libcurl's progress callback: a watch stops when asked to. */
static int on_progress(void *arg, curl_off_t a, curl_off_t b, curl_off_t c_, curl_off_t d)
{
    (void)a, (void)b, (void)c_, (void)d;
    const lkv *c = arg;
    return c->stop && *c->stop ? 1 : 0;
}

/* The problem detail of an error answer, as the last error. */
static void take_detail(lkv *c, const struct resp *r)
{
    json_error_t e;
    json_t *doc = r->body.data ? json_loadb(r->body.data, r->body.len, 0, &e) : NULL;
    const char *d = doc ? json_string_value(json_object_get(doc, "detail")) : NULL;
    if (d)
        set_err(c, "%s", d);
    else
        snprintf(c->err, sizeof(c->err), "HTTP status %ld", r->status);
    json_decref(doc);
}

struct req {
    const char *method;
    const char *path;           /* with its query, encoded */
    const void *body;
    size_t len;
    const char *if_match;       /* header values, or NULL */
    const char *if_none_match;
    const char *ctype;          /* a body's Content-Type, or NULL */
    long timeout_ms;            /* 0: the client's */
};

/* Appends "name: value" ("Authorization: Bearer" takes a space, not a
 * colon). 1, or 0 when out of memory (*h unchanged). */
static int add_header(struct curl_slist **h, const char *name, const char *value)
{
    char *line = NULL;
    const char *sep = strchr(name, ':') ? " " : ": ";
    if (asprintf(&line, "%s%s%s", name, sep, value) < 0)
        return 0;
    struct curl_slist *t = curl_slist_append(*h, line);
    free(line);
    if (t == NULL)
        return 0;
    *h = t;
    return 1;
}

static lkv_err perform_on(lkv *c, const char *base, const struct req *q, struct resp *r,
                          long timeout_ms, CURLcode *code)
{
    struct lkvu_buf url = {0};
    struct curl_slist *h = NULL;
    if (lkvu_puts(&url, base) != 0 || lkvu_puts(&url, q->path) != 0) {
        lkvu_free(&url);
        return LKV_ERR_NOMEM;
    }
    CURL *k = c->curl;
    curl_easy_reset(k);
    curl_easy_setopt(k, CURLOPT_URL, url.data);
    /* The key as given: libcurl would drop "." and ".." segments and write
     * another key; the server refuses them (400) instead. */
    curl_easy_setopt(k, CURLOPT_PATH_AS_IS, 1L);
    curl_easy_setopt(k, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(k, CURLOPT_TIMEOUT_MS, timeout_ms);
    curl_easy_setopt(k, CURLOPT_CONNECTTIMEOUT_MS, timeout_ms < 2000 ? timeout_ms : 2000L);
    curl_easy_setopt(k, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(k, CURLOPT_WRITEDATA, r);
    curl_easy_setopt(k, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(k, CURLOPT_HEADERDATA, r);
    curl_easy_setopt(k, CURLOPT_XFERINFOFUNCTION, on_progress);
    curl_easy_setopt(k, CURLOPT_XFERINFODATA, c);
    curl_easy_setopt(k, CURLOPT_NOPROGRESS, 0L);
    if (strcmp(q->method, "HEAD") == 0)
        curl_easy_setopt(k, CURLOPT_NOBODY, 1L);
    else
        curl_easy_setopt(k, CURLOPT_CUSTOMREQUEST, q->method);
    if (q->body || strcmp(q->method, "PUT") == 0 || strcmp(q->method, "POST") == 0) {
        curl_easy_setopt(k, CURLOPT_POSTFIELDS, q->body ? q->body : "");
        curl_easy_setopt(k, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)q->len);
    }
    /* No "Expect: 100-continue" round trip before a body. Every header is
     * needed: a lost If-Match would turn a compare-and-swap into a write. */
    int ok = (h = curl_slist_append(NULL, "Expect:")) != NULL;
    if (ok && (strcmp(q->method, "PUT") == 0 || strcmp(q->method, "POST") == 0))
        ok = add_header(&h, "Content-Type", q->ctype ? q->ctype : "application/octet-stream");
    if (ok && q->if_match)
        ok = add_header(&h, "If-Match", q->if_match);
    if (ok && q->if_none_match)
        ok = add_header(&h, "If-None-Match", q->if_none_match);
    if (ok && c->opt.token)
        ok = add_header(&h, "Authorization: Bearer", c->opt.token);
    if (!ok) {
        curl_slist_free_all(h);
        lkvu_free(&url);
        return LKV_ERR_NOMEM;
    }
    curl_easy_setopt(k, CURLOPT_HTTPHEADER, h);
    if (c->opt.ca_file)
        curl_easy_setopt(k, CURLOPT_CAINFO, c->opt.ca_file);
    if (c->opt.cert_file)
        curl_easy_setopt(k, CURLOPT_SSLCERT, c->opt.cert_file);
    if (c->opt.key_file)
        curl_easy_setopt(k, CURLOPT_SSLKEY, c->opt.key_file);
    *code = curl_easy_perform(k);
    curl_easy_getinfo(k, CURLINFO_RESPONSE_CODE, &r->status);
    curl_slist_free_all(h);
    lkvu_free(&url);
    return LKV_OK;
}

/* Whether the request can go to the next endpoint: it never reached this
 * one (no connection, or a connect that timed out), or it only reads (a
 * connection broken mid-way may have delivered a write, which must not be
 * sent twice: that is returned as LKV_ERR_IO). */
static int try_next(CURL *k, CURLcode code, const char *method)
{
    if (code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST ||
        code == CURLE_COULDNT_RESOLVE_PROXY)
        return 1;
    curl_off_t connected = 0;
    if (code == CURLE_OPERATION_TIMEDOUT &&
        curl_easy_getinfo(k, CURLINFO_CONNECT_TIME_T, &connected) == CURLE_OK && connected == 0)
        return 1;
    int reads = strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
    return reads && (code == CURLE_SEND_ERROR || code == CURLE_RECV_ERROR ||
                     code == CURLE_GOT_NOTHING);
}

/* Runs q on the endpoints until one answers something other than 503, or
 * the deadline passes. *r holds that answer (r->status), or nothing with
 * the error returned. */
static lkv_err request(lkv *c, const struct req *q, struct resp *r)
{
    long budget = q->timeout_ms ? q->timeout_ms : c->opt.timeout_ms;
    int64_t deadline = now_ms() + budget;
    long pause = 50;
    int tried = 0, saw_503 = 0;
    c->err[0] = '\0';
    for (;;) {
        memset(r, 0, sizeof(*r));
        long left = (long)(deadline - now_ms());
        if (left <= 0)
            break;
        CURLcode code;
        if (perform_on(c, c->ep[c->cur], q, r, left, &code) != LKV_OK)
            return LKV_ERR_NOMEM;
        if (code == CURLE_ABORTED_BY_CALLBACK) {
            resp_free(r);
            set_err(c, "stopped");
            return LKV_ERR_TIMEOUT;
        }
        if (code == CURLE_OK && r->status != 503)
            return LKV_OK;
        if (code == CURLE_OK) {
            take_detail(c, r);
            saw_503 = 1;
        } else {
            snprintf(c->err, sizeof(c->err), "%s: %s", c->ep[c->cur], curl_easy_strerror(code));
            if (!try_next(c->curl, code, q->method)) {
                resp_free(r);
                return code == CURLE_OPERATION_TIMEDOUT ? LKV_ERR_TIMEOUT : LKV_ERR_IO;
            }
        }
        resp_free(r);
        c->cur = (c->cur + 1) % c->nep;
        if (++tried % c->nep == 0) {
            /* Every endpoint refused: unavailable, unless some were only
             * busy (503), which is worth waiting for. */
            if (!saw_503)
                return LKV_ERR_UNAVAILABLE;
            pause_ms(pause < left ? pause : left);
            pause = pause * 2 > 1000 ? 1000 : pause * 2;
            saw_503 = 0;
        }
    }
    if (c->err[0] == '\0')
        set_err(c, "no endpoint answered in time");
    return LKV_ERR_UNAVAILABLE;
}

/* The lkv_err of an answer that is not a success. */
static lkv_err status_err(lkv *c, const struct resp *r)
{
    take_detail(c, r);
    switch (r->status) {
    case 400: return LKV_ERR_INVALID;
    case 401: return LKV_ERR_UNAUTHORIZED;
    case 403: return LKV_ERR_FORBIDDEN;
    case 404: return LKV_ERR_NOT_FOUND;
    case 412: return LKV_ERR_KEY_MODIFIED;
    case 503: return LKV_ERR_UNAVAILABLE;
    default: return LKV_ERR_IO;
    }
}

static int ok_status(long s)
{
    return s >= 200 && s < 300;
}

/* ---- paths ----------------------------------------------------------------------- */

/* "/bucket/KEY" (writes; reads: per c->opt.lazy) plus query. */
static int key_path(const lkv *c, struct lkvu_buf *p, const char *key, int write,
                    const char *query)
{
    const char *root = write || c->opt.lazy ? "/bucket/" : "/canonicalbucket/";
    if (lkvu_puts(p, root) != 0 || lkvu_pct_encode(p, key, strlen(key), 1) != 0)
        return -1;
    return query ? lkvu_puts(p, query) : 0;
}

static void etag_of(uint64_t index, char out[24])
{
    snprintf(out, 24, "\"%016" PRIx64 "\"", index);
}

static uint64_t parse_u64(const char *s)
{
    return s && *s ? strtoull(s, NULL, 10) : 0;
}

/* ---- pairs ------------------------------------------------------------------------- */

API void lkv_pair_free(lkv_pair *p)
{
    if (p == NULL)
        return;
    free(p->key);
    free(p->value);
    free(p->content_type);
    free(p);
}

API void lkv_pairs_free(lkv_pair **v, size_t n)
{
    for (size_t i = 0; v && i < n; i++)
        lkv_pair_free(v[i]);
    free(v);
}

/* A pair owning copies of key, value and content type. */
static lkv_pair *pair_new(const char *key, size_t klen, const void *value, size_t len,
                          const char *ctype)
{
    lkv_pair *p = calloc(1, sizeof(*p));
    if (p == NULL)
        return NULL;
    p->key = strndup(key, klen);
    p->value = malloc(len + 1);
    p->content_type = strdup(ctype ? ctype : "");
    if (p->key == NULL || p->value == NULL || p->content_type == NULL) {
        lkv_pair_free(p);
        return NULL;
    }
    if (len)
        memcpy(p->value, value, len);
    p->value[len] = '\0';
    p->value_len = len;
    return p;
}

/* ---- keys ---------------------------------------------------------------------------- */

/* A write: method, optional ttl/refresh query and preconditions; *out the
 * answer (caller frees). */
static lkv_err write_key_ctype(lkv *c, const char *method, const char *key, const void *value,
                               size_t len, const char *ctype, unsigned ttl_s,
                               const char *if_match, const char *if_none_match,
                               struct resp *out)
{
    if (key == NULL || *key == '\0') {
        set_err(c, "the key is empty");
        return LKV_ERR_INVALID;
    }
    char query[32] = "";
    if (ttl_s)
        snprintf(query, sizeof(query), "?ttl=%u", ttl_s);
    struct lkvu_buf path = {0};
    if (key_path(c, &path, key, 1, query) != 0)
        return LKV_ERR_NOMEM;
    struct req q = {.method = method, .path = path.data, .body = value, .len = len,
                    .if_match = if_match, .if_none_match = if_none_match, .ctype = ctype};
    lkv_err e = request(c, &q, out);
    lkvu_free(&path);
    if (e == LKV_OK && !ok_status(out->status)) {
        e = status_err(c, out);
        resp_free(out);
    }
    return e;
}

static lkv_err write_key(lkv *c, const char *method, const char *key, const void *value,
                         size_t len, unsigned ttl_s, const char *if_match,
                         const char *if_none_match, struct resp *out)
{
    return write_key_ctype(c, method, key, value, len, NULL, ttl_s, if_match, if_none_match,
                           out);
}

API lkv_err lkv_put_ctype(lkv *c, const char *key, const void *value, size_t len,
                          const char *content_type, unsigned ttl_s)
{
    struct resp r;
    lkv_err e = write_key_ctype(c, "POST", key, value, len, content_type, ttl_s, NULL, NULL, &r);
    if (e == LKV_OK)
        resp_free(&r);
    return e;
}

API lkv_err lkv_put(lkv *c, const char *key, const void *value, size_t len, unsigned ttl_s)
{
    return lkv_put_ctype(c, key, value, len, NULL, ttl_s);
}

API lkv_err lkv_health(lkv *c, char **json_out)
{
    *json_out = NULL;
    struct resp r;
    struct req q = {.method = "GET", .path = "/health"};
    lkv_err e = request(c, &q, &r);
    if (e != LKV_OK)
        return e;
    if (r.status != 200) {
        e = status_err(c, &r);
        resp_free(&r);
        return e;
    }
    *json_out = r.body.data ? r.body.data : strdup("");
    r.body.data = NULL;
    resp_free(&r);
    return *json_out ? LKV_OK : LKV_ERR_NOMEM;
}

/* A read: GET (or HEAD) of key; *r the answer. */
static lkv_err read_key(lkv *c, const char *method, const char *key, const char *query,
                        long timeout_ms, struct resp *r)
{
    if (key == NULL || *key == '\0') {
        set_err(c, "the key is empty");
        return LKV_ERR_INVALID;
    }
    struct lkvu_buf path = {0};
    if (key_path(c, &path, key, 0, query) != 0)
        return LKV_ERR_NOMEM;
    struct req q = {.method = method, .path = path.data, .timeout_ms = timeout_ms};
    lkv_err e = request(c, &q, r);
    lkvu_free(&path);
    return e;
}

/* The pair a GET answered. */
static lkv_err pair_of(const char *key, const struct resp *r, lkv_pair **out)
{
    *out = pair_new(key, strlen(key), r->body.data, r->body.len, r->ctype);
    if (*out == NULL)
        return LKV_ERR_NOMEM;
    (*out)->index = parse_u64(r->index);
    int64_t exp = r->expires[0] ? lkvu_rfc3339_ms(r->expires) : 0;
    (*out)->expires_at_ms = exp > 0 ? exp : 0;
    return LKV_OK;
}

API lkv_err lkv_get(lkv *c, const char *key, lkv_pair **out)
{
    struct resp r;
    *out = NULL;
    lkv_err e = read_key(c, "GET", key, NULL, 0, &r);
    if (e != LKV_OK)
        return e;
    e = r.status == 200 ? pair_of(key, &r, out) : status_err(c, &r);
    resp_free(&r);
    return e;
}

API lkv_err lkv_exists(lkv *c, const char *key, int *exists)
{
    struct resp r;
    *exists = 0;
    lkv_err e = read_key(c, "HEAD", key, NULL, 0, &r);
    if (e != LKV_OK)
        return e;
    if (r.status == 200 || r.status == 404)
        *exists = r.status == 200;
    else
        e = status_err(c, &r);
    resp_free(&r);
    return e;
}

API lkv_err lkv_delete(lkv *c, const char *key)
{
    struct resp r;
    lkv_err e = write_key(c, "DELETE", key, NULL, 0, 0, NULL, NULL, &r);
    if (e == LKV_OK)
        resp_free(&r);
    return e;
}

/* After a 412 against previous: the key gone (NOT_FOUND) or changed. */
static lkv_err modified_or_gone(lkv *c, const char *key)
{
    char saved[sizeof(c->err)];
    memcpy(saved, c->err, sizeof(saved));
    int exists = 1, lazy = c->opt.lazy;
    c->opt.lazy = 0; /* the master decided the 412: ask it */
    lkv_err e = lkv_exists(c, key, &exists);
    c->opt.lazy = lazy;
    memcpy(c->err, saved, sizeof(saved));
    return e == LKV_OK && !exists ? LKV_ERR_NOT_FOUND : LKV_ERR_KEY_MODIFIED;
}

/* The version in a write's JSON answer. */
static uint64_t written_version(const struct resp *r)
{
    json_error_t je;
    json_t *doc = json_loadb(r->body.data ? r->body.data : "", r->body.len, 0, &je);
    uint64_t v = (uint64_t)json_integer_value(json_object_get(doc, "version"));
    json_decref(doc);
    return v;
}

API lkv_err lkv_atomic_put(lkv *c, const char *key, const void *value, size_t len,
                           const lkv_pair *previous, unsigned ttl_s, lkv_pair **out)
{
    char etag[24];
    if (out)
        *out = NULL;
    if (previous)
        etag_of(previous->index, etag);
    struct resp r;
    lkv_err e = write_key(c, "PUT", key, value, len, ttl_s, previous ? etag : NULL,
                          previous ? NULL : "*", &r);
    if (e == LKV_ERR_KEY_MODIFIED)
        return previous ? modified_or_gone(c, key) : LKV_ERR_KEY_EXISTS;
    if (e != LKV_OK)
        return e;
    if (out) {
        *out = pair_new(key, strlen(key), value, len, "application/octet-stream");
        if (*out == NULL) {
            resp_free(&r);
            return LKV_ERR_NOMEM;
        }
        (*out)->index = written_version(&r);
        int64_t exp = r.expires[0] ? lkvu_rfc3339_ms(r.expires) : 0;
        (*out)->expires_at_ms = exp > 0 ? exp : 0;
    }
    resp_free(&r);
    return LKV_OK;
}

API lkv_err lkv_atomic_delete(lkv *c, const char *key, const lkv_pair *previous)
{
    char etag[24];
    if (previous == NULL) {
        set_err(c, "an atomic delete needs the pair it deletes");
        return LKV_ERR_INVALID;
    }
    etag_of(previous->index, etag);
    struct resp r;
    lkv_err e = write_key(c, "DELETE", key, NULL, 0, 0, etag, NULL, &r);
    if (e == LKV_ERR_KEY_MODIFIED)
        return modified_or_gone(c, key);
    if (e == LKV_OK)
        resp_free(&r);
    return e;
}

/* ---- lists ----------------------------------------------------------------------------- */

struct pairs {
    lkv_pair **v;
    size_t n, cap;
};

static int pairs_add(struct pairs *ps, lkv_pair *p)
{
    if (ps->n == ps->cap) {
        size_t cap = ps->cap ? ps->cap * 2 : 64;
        lkv_pair **v = realloc(ps->v, cap * sizeof(lkv_pair *));
        if (v == NULL)
            return -1;
        ps->v = v;
        ps->cap = cap;
    }
    ps->v[ps->n++] = p;
    return 0;
}

/* One entry of a page with values and url-encoded keys. */
static lkv_pair *entry_pair(json_t *e)
{
    const char *k = json_string_value(json_object_get(e, "key"));
    const char *v = json_string_value(json_object_get(e, "value"));
    const char *enc = json_string_value(json_object_get(e, "encoding"));
    const char *ct = json_string_value(json_object_get(e, "content_type"));
    const char *exp = json_string_value(json_object_get(e, "expires_at"));
    if (k == NULL || v == NULL)
        return NULL;
    size_t klen, vlen = json_string_length(json_object_get(e, "value"));
    char *key = lkvu_pct_decode(k, strlen(k), &klen);
    unsigned char *bytes = NULL;
    if (enc && strcmp(enc, "base64") == 0)
        bytes = lkvu_base64_decode(v, vlen, &vlen);
    lkv_pair *p = key && (bytes || !enc || strcmp(enc, "base64") != 0)
                      ? pair_new(key, klen, bytes ? (const void *)bytes : v, vlen, ct)
                      : NULL;
    free(key);
    free(bytes);
    if (p) {
        p->index = (uint64_t)json_integer_value(json_object_get(e, "version"));
        int64_t ms = exp ? lkvu_rfc3339_ms(exp) : 0;
        p->expires_at_ms = ms > 0 ? ms : 0;
    }
    return p;
}

/* An entry listed without its value (over 1 MiB, stored in chunks): the
 * key read whole. */
static lkv_err chunked_entry_pair(lkv *c, json_t *e, lkv_pair **out)
{
    const char *k = json_string_value(json_object_get(e, "key"));
    size_t klen;
    char *key = k ? lkvu_pct_decode(k, strlen(k), &klen) : NULL;
    if (key == NULL)
        return k ? LKV_ERR_NOMEM : LKV_ERR_IO;
    lkv_err err = lkv_get(c, key, out);
    free(key);
    return err;
}

/* Every page of prefix's list with values; *token, when not NULL, gets the
 * first page's X-Lazykv-Index (the state it stands for, watch_tree). */
static lkv_err list_all(lkv *c, const char *prefix, struct pairs *ps, char *token, size_t tcap)
{
    char *after = NULL;
    lkv_err e = LKV_OK;
    for (int page = 0; e == LKV_OK; page++) {
        struct lkvu_buf path = {0};
        char limit[48];
        snprintf(limit, sizeof(limit), "&values=1&encoding=url&limit=%d", LIST_PAGE);
        int rc = lkvu_puts(&path, c->opt.lazy ? "/bucket/?prefix=" : "/canonicalbucket/?prefix=") |
                 lkvu_pct_encode(&path, prefix ? prefix : "", prefix ? strlen(prefix) : 0, 0) |
                 lkvu_puts(&path, limit);
        if (after)
            rc |= lkvu_puts(&path, "&start_after=") |
                  lkvu_pct_encode(&path, after, strlen(after), 0);
        if (rc != 0) {
            lkvu_free(&path);
            e = LKV_ERR_NOMEM;
            break;
        }
        struct resp r;
        struct req q = {.method = "GET", .path = path.data};
        e = request(c, &q, &r);
        lkvu_free(&path);
        if (e != LKV_OK)
            break;
        if (r.status != 200) {
            e = status_err(c, &r);
            resp_free(&r);
            break;
        }
        if (page == 0 && token)
            snprintf(token, tcap, "%s", r.index);
        /* A value may hold NUL bytes ("\u0000" in its JSON string). */
        json_error_t je;
        json_t *doc = json_loadb(r.body.data ? r.body.data : "", r.body.len, JSON_ALLOW_NUL, &je);
        resp_free(&r);
        json_t *keys = json_object_get(doc, "keys");
        if (doc == NULL || !json_is_array(keys))
            set_err(c, "malformed list page: %s", doc ? "no keys" : je.text);
        size_t i;
        json_t *item;
        json_array_foreach(keys, i, item) {
            lkv_pair *p = NULL;
            if (json_is_null(json_object_get(item, "value"))) {
                /* a value over 1 MiB is listed without its bytes: read it */
                e = chunked_entry_pair(c, item, &p);
                if (e == LKV_ERR_NOT_FOUND) { /* gone since the page was read */
                    e = LKV_OK;
                    continue;
                }
                if (e != LKV_OK)
                    break;
            } else {
                p = entry_pair(item);
            }
            if (p == NULL || pairs_add(ps, p) != 0) {
                lkv_pair_free(p);
                e = LKV_ERR_NOMEM;
                break;
            }
        }
        const char *next = json_string_value(json_object_get(doc, "next_start_after"));
        int more = e == LKV_OK && json_is_true(json_object_get(doc, "truncated")) && next;
        size_t alen = 0;
        free(after);
        after = more ? lkvu_pct_decode(next, strlen(next), &alen) : NULL;
        if (doc == NULL || keys == NULL)
            e = e == LKV_OK ? LKV_ERR_IO : e;
        json_decref(doc);
        if (!more || e != LKV_OK)
            break;
        if (after == NULL) {
            e = LKV_ERR_NOMEM;
            break;
        }
    }
    free(after);
    return e;
}

API lkv_err lkv_list(lkv *c, const char *prefix, lkv_pair ***out, size_t *n)
{
    struct pairs ps = {0};
    lkv_err e = list_all(c, prefix, &ps, NULL, 0);
    if (e != LKV_OK) {
        lkv_pairs_free(ps.v, ps.n);
        *out = NULL;
        *n = 0;
        return e;
    }
    *out = ps.v;
    *n = ps.n;
    return LKV_OK;
}

API lkv_err lkv_delete_tree(lkv *c, const char *prefix)
{
    if (prefix == NULL || *prefix == '\0') {
        set_err(c, "a delete of a tree needs a non-empty prefix");
        return LKV_ERR_INVALID;
    }
    struct lkvu_buf path = {0};
    if (lkvu_puts(&path, "/bucket/?prefix=") != 0 ||
        lkvu_pct_encode(&path, prefix, strlen(prefix), 0) != 0) {
        lkvu_free(&path);
        return LKV_ERR_NOMEM;
    }
    struct resp r;
    struct req q = {.method = "DELETE", .path = path.data};
    lkv_err e = request(c, &q, &r);
    lkvu_free(&path);
    if (e != LKV_OK)
        return e;
    if (!ok_status(r.status))
        e = status_err(c, &r);
    resp_free(&r);
    return e;
}

/* ---- watches ---------------------------------------------------------------------------- */

/* Retries a failed watch request with a pause, until timeout_ms passes
 * without an answer from any endpoint. */
static int keep_trying(lkv *c, int64_t *failing_since)
{
    int64_t now = now_ms();
    if (*failing_since == 0)
        *failing_since = now;
    if (now - *failing_since >= c->opt.timeout_ms)
        return 0;
    pause_ms(200);
    return 1;
}

/* What a watch does after a request: 0 go on (it answered), 1 try again
 * (no endpoint answered, for less than timeout_ms), -1 end with *result. */
static int after_failure(lkv *c, lkv_err e, int64_t *failing_since, lkv_err *result)
{
    if (e == LKV_ERR_UNAVAILABLE || e == LKV_ERR_TIMEOUT || e == LKV_ERR_IO) {
        if (keep_trying(c, failing_since))
            return 1;
        *result = LKV_ERR_UNAVAILABLE;
        return -1;
    }
    if (e != LKV_OK) {
        *result = e;
        return -1;
    }
    *failing_since = 0;
    return 0;
}

API lkv_err lkv_watch(lkv *c, const char *key, lkv_watch_fn fn, void *arg,
                      const volatile int *stop)
{
    uint64_t index = 0;
    int first = 1;
    int64_t failing_since = 0;
    c->stop = stop;
    lkv_err result = LKV_OK;
    while (!(stop && *stop)) {
        char query[80];
        snprintf(query, sizeof(query), "?index=%" PRIu64 "&wait=%d", index, WATCH_WAIT_S);
        struct resp r;
        int saved_lazy = c->opt.lazy;
        c->opt.lazy = 0; /* answered by the master anyway */
        lkv_err e = read_key(c, "GET", key, first ? NULL : query,
                             first ? 0 : (WATCH_WAIT_S + 10) * 1000L, &r);
        c->opt.lazy = saved_lazy;
        if (stop && *stop) {
            if (e == LKV_OK)
                resp_free(&r);
            break;
        }
        if (e == LKV_OK && r.status != 200 && r.status != 404) {
            e = status_err(c, &r);
            resp_free(&r);
        }
        int next = after_failure(c, e, &failing_since, &result);
        if (next > 0)
            continue;
        if (next < 0)
            break;
        uint64_t now_index = parse_u64(r.index);
        if (first || now_index != index) {
            lkv_pair *p = NULL;
            if (r.status == 200 && pair_of(key, &r, &p) != LKV_OK) {
                resp_free(&r);
                result = LKV_ERR_NOMEM;
                break;
            }
            int done = fn(p, arg);
            lkv_pair_free(p);
            if (done) {
                resp_free(&r);
                break;
            }
        }
        index = now_index;
        first = 0;
        resp_free(&r);
    }
    c->stop = NULL;
    return result;
}

API lkv_err lkv_watch_tree(lkv *c, const char *prefix, lkv_watch_tree_fn fn, void *arg,
                           const volatile int *stop)
{
    char token[1100] = "";
    int64_t failing_since = 0;
    lkv_err result = LKV_OK;
    c->stop = stop;
    int saved_lazy = c->opt.lazy;
    c->opt.lazy = 0; /* a watch is answered by the masters: list them too */
    while (!(stop && *stop)) {
        /* The whole tree with values, and the token it stands for. */
        struct pairs ps = {0};
        char fresh[1100] = "";
        lkv_err e = list_all(c, prefix, &ps, fresh, sizeof(fresh));
        if (e == LKV_OK && strcmp(fresh, token) != 0) {
            snprintf(token, sizeof(token), "%s", fresh);
            int done = fn(ps.v, ps.n, arg);
            lkv_pairs_free(ps.v, ps.n);
            if (done)
                break;
        } else {
            lkv_pairs_free(ps.v, ps.n);
        }
        if (e == LKV_OK) {
            /* Wait for the state to move from token. */
            struct lkvu_buf path = {0};
            char tail[64];
            snprintf(tail, sizeof(tail), "&wait=%d&limit=1", WATCH_WAIT_S);
            int rc = lkvu_puts(&path, "/canonicalbucket/?prefix=") |
                     lkvu_pct_encode(&path, prefix ? prefix : "", prefix ? strlen(prefix) : 0, 0) |
                     lkvu_puts(&path, "&index=") |
                     lkvu_pct_encode(&path, token, strlen(token), 0) | lkvu_puts(&path, tail);
            if (rc != 0) {
                lkvu_free(&path);
                result = LKV_ERR_NOMEM;
                break;
            }
            struct resp r;
            struct req q = {.method = "GET", .path = path.data,
                            .timeout_ms = (WATCH_WAIT_S + 10) * 1000L};
            e = request(c, &q, &r);
            lkvu_free(&path);
            if (e == LKV_OK) {
                if (r.status != 200)
                    e = status_err(c, &r);
                resp_free(&r);
            }
        }
        if (stop && *stop)
            break;
        int next = after_failure(c, e, &failing_since, &result);
        if (next > 0)
            continue;
        if (next < 0)
            break;
    }
    c->opt.lazy = saved_lazy;
    c->stop = NULL;
    return result;
}

/* ---- locks -------------------------------------------------------------------------------- */

struct lkv_lock {
    lkv *c;                     /* ref: acquire and release */
    lkv *renewer;               /* owned: the renewal thread's client */
    char *key;
    unsigned char *value;
    size_t len;
    unsigned ttl_s;
    _Atomic uint64_t index;     /* the lock's version while held */
    atomic_int held;
    pthread_t thread;
    int running;
    pthread_mutex_t mu;
    pthread_cond_t cv;          /* on CLOCK_MONOTONIC */
    int quit;                   /* under mu */
    volatile int abort_renewal; /* stops a renewal in flight (release) */
    int64_t acquired_ms;        /* when the acquiring request was sent */
};

API lkv_lock *lkv_lock_new(lkv *c, const char *key, const void *value, size_t len,
                           unsigned ttl_s)
{
    if (c == NULL || key == NULL || *key == '\0' || ttl_s == 0)
        return NULL;
    lkv_lock *l = calloc(1, sizeof(*l));
    if (l == NULL)
        return NULL;
    l->c = c;
    l->key = strdup(key);
    l->value = malloc(len + 1);
    l->len = len;
    l->ttl_s = ttl_s;
    l->renewer = lkv_open(c->endpoints, &c->opt);
    if (l->key == NULL || l->value == NULL || l->renewer == NULL) {
        lkv_close(l->renewer);
        free(l->key);
        free(l->value);
        free(l);
        return NULL;
    }
    if (len)
        memcpy(l->value, value, len);
    /* Renewals are timed on the monotonic clock: setting the wall clock
     * back must not stop them. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&l->mu, NULL);
    pthread_cond_init(&l->cv, &ca);
    pthread_condattr_destroy(&ca);
    l->renewer->stop = &l->abort_renewal;
    return l;
}

/* Waits up to ms on the lock's condition; 1 when asked to quit. */
static int wait_quit(lkv_lock *l, long ms)
{
    struct timespec until;
    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&l->mu);
    while (!l->quit && pthread_cond_timedwait(&l->cv, &l->mu, &until) == 0)
        ;
    int quit = l->quit;
    pthread_mutex_unlock(&l->mu);
    return quit;
}

/* Renews at a third of the TTL; gives up (held = 0) when the lock is
 * taken from it, or before the TTL could run out unrenewed: the server's
 * expiry counts from when a renewal was sent, so does this one, less a
 * margin, so that held turns 0 before anyone else can hold the lock. */
static void *renew_loop(void *arg)
{
    lkv_lock *l = arg;
    const long ttl_ms = (long)l->ttl_s * 1000, third = ttl_ms / 3, margin = ttl_ms / 10;
    int64_t expires = l->acquired_ms + ttl_ms;
    long period = third;
    while (!wait_quit(l, period)) {
        char etag[24], query[48];
        etag_of(atomic_load(&l->index), etag);
        snprintf(query, sizeof(query), "?ttl=%u&refresh=1", l->ttl_s);
        struct lkvu_buf path = {0};
        struct resp r;
        lkv_err e = LKV_ERR_NOMEM;
        int64_t sent = now_ms();
        long left = (long)(expires - margin - sent);
        if (left > 0 && key_path(l->renewer, &path, l->key, 1, query) == 0) {
            struct req q = {.method = "PUT", .path = path.data, .if_match = etag,
                            .timeout_ms = left};
            e = request(l->renewer, &q, &r);
        }
        lkvu_free(&path);
        if (e == LKV_OK) {
            if (r.status == 200) {
                atomic_store(&l->index, written_version(&r));
                expires = sent + ttl_ms;
                period = third;
                resp_free(&r);
                continue;
            }
            resp_free(&r);
            atomic_store(&l->held, 0); /* 412/404: someone else has it now */
            return NULL;
        }
        if (l->abort_renewal)
            return NULL; /* released */
        if (now_ms() >= expires - margin - 100) {
            atomic_store(&l->held, 0); /* could not renew in time: maybe lost */
            return NULL;
        }
        period = 100; /* try again soon */
    }
    return NULL;
}

static void stop_renewal(lkv_lock *l)
{
    if (!l->running)
        return;
    pthread_mutex_lock(&l->mu);
    l->quit = 1;
    l->abort_renewal = 1;
    pthread_cond_signal(&l->cv);
    pthread_mutex_unlock(&l->mu);
    pthread_join(l->thread, NULL);
    l->running = 0;
    l->quit = 0;
    l->abort_renewal = 0;
}

API lkv_err lkv_lock_acquire(lkv_lock *l, long wait_ms)
{
    if (atomic_load(&l->held))
        return LKV_OK;
    stop_renewal(l); /* the thread of a lock lost earlier */
    int64_t deadline = now_ms() + (wait_ms > 0 ? wait_ms : 0);
    for (;;) {
        long left = (long)(deadline - now_ms());
        long wait_s = left > 0 ? (left + 999) / 1000 : 0;
        if (wait_s > 600)
            wait_s = 600;
        char query[64];
        if (wait_s > 0)
            snprintf(query, sizeof(query), "?ttl=%u&wait=%ld", l->ttl_s, wait_s);
        else
            snprintf(query, sizeof(query), "?ttl=%u", l->ttl_s);
        struct lkvu_buf path = {0};
        if (key_path(l->c, &path, l->key, 1, query) != 0)
            return LKV_ERR_NOMEM;
        struct resp r;
        struct req q = {.method = "PUT", .path = path.data, .body = l->value, .len = l->len,
                        .if_none_match = "*",
                        .timeout_ms = wait_s * 1000 + l->c->opt.timeout_ms};
        l->acquired_ms = now_ms(); /* the TTL counts from no later than this */
        lkv_err e = request(l->c, &q, &r);
        lkvu_free(&path);
        if (e != LKV_OK)
            return e;
        if (r.status == 201) {
            /* A blocking acquire was created just before its answer, not
             * when it was sent (the renewal margin covers the latency). */
            if (wait_s > 0)
                l->acquired_ms = now_ms();
            atomic_store(&l->index, written_version(&r));
            resp_free(&r);
            atomic_store(&l->held, 1);
            if (pthread_create(&l->thread, NULL, renew_loop, l) != 0) {
                lkv_lock_release(l);
                set_err(l->c, "cannot start the renewal thread");
                return LKV_ERR_NOMEM;
            }
            l->running = 1;
            return LKV_OK;
        }
        if (r.status != 412) {
            e = status_err(l->c, &r);
            resp_free(&r);
            return e;
        }
        resp_free(&r);
        if (now_ms() >= deadline) {
            set_err(l->c, "%s is held by another client", l->key);
            return LKV_ERR_CANNOT_LOCK;
        }
    }
}

API uint64_t lkv_lock_token(const lkv_lock *l)
{
    return atomic_load(&((lkv_lock *)l)->index);
}

API int lkv_lock_held(const lkv_lock *l)
{
    return atomic_load(&((lkv_lock *)l)->held);
}

API lkv_err lkv_lock_release(lkv_lock *l)
{
    stop_renewal(l);
    if (!atomic_exchange(&l->held, 0))
        return LKV_OK;
    char etag[24];
    etag_of(atomic_load(&l->index), etag);
    struct resp r;
    lkv_err e = write_key(l->c, "DELETE", l->key, NULL, 0, 0, etag, NULL, &r);
    if (e == LKV_OK)
        resp_free(&r);
    return e;
}

API void lkv_lock_free(lkv_lock *l)
{
    if (l == NULL)
        return;
    stop_renewal(l);
    lkv_close(l->renewer);
    pthread_mutex_destroy(&l->mu);
    pthread_cond_destroy(&l->cv);
    free(l->key);
    free(l->value);
    free(l);
}
