/*
 * uri.c -- request target parsing. See uri.h.
 */
#include "uri.h"

#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "config.h"

/* Decodes in[0..len) into a fresh NUL-terminated allocation. */
static enum lkv_status decode_dup(const char *in, size_t len, int plus_is_space, char **out,
                                  size_t *out_len)
{
    char *d = malloc(len + 1);
    if (d == NULL)
        return LKV_ENOMEM;
    ssize_t n = codec_pct_decode(in, len, d, plus_is_space);
    if (n < 0) {
        free(d);
        return LKV_EBADREQ;
    }
    d[n] = '\0';
    *out = d;
    *out_len = (size_t)n;
    return LKV_OK;
}

enum param {
    P_PREFIX, P_START_AFTER, P_LIMIT, P_ENCODING, P_VALUES, /* lists */
    P_INDEX, P_WAIT, P_KEY,                                  /* both */
    P_TTL, P_REFRESH, P_RAW,                                 /* keys */
    P_UNKNOWN
};

static const char *const param_names[] = {
    [P_PREFIX] = "prefix", [P_START_AFTER] = "start_after", [P_LIMIT] = "limit",
    [P_ENCODING] = "encoding", [P_VALUES] = "values", [P_INDEX] = "index",
    [P_WAIT] = "wait", [P_KEY] = "key", [P_TTL] = "ttl", [P_REFRESH] = "refresh", [P_RAW] = "raw",
};

static enum param param_of(const char *name, enum route route)
{
    for (int i = 0; i < P_UNKNOWN; i++) {
        if (strcmp(name, param_names[i]) != 0)
            continue;
        int for_list = i <= P_KEY, for_key = i >= P_INDEX;
        if ((route == ROUTE_LIST && for_list) || (route == ROUTE_KEY && for_key))
            return (enum param)i;
    }
    return P_UNKNOWN;
}

/* A decimal number from min to max (no sign, no spaces, no unit). */
static int number_in(const char *v, long long min, long long max, long long *out)
{
    return v[0] != '-' && config_parse_ll(v, out) == 0 && *out >= min && *out <= max;
}

/* A flag: "1" or "0". */
static int flag_of(const char *v, int *out)
{
    if (strcmp(v, "1") != 0 && strcmp(v, "0") != 0)
        return 0;
    *out = v[0] == '1';
    return 1;
}

/* Stores one decoded value v (taken) of parameter p. */
static enum lkv_status set_param(struct uri *u, enum param p, char *v, size_t vlen)
{
    long long n = 0;
    int ok = 1;
    switch (p) {
    case P_PREFIX:
    case P_START_AFTER:
    case P_INDEX: {
        char **dst = p == P_PREFIX ? &u->prefix : p == P_START_AFTER ? &u->start_after : &u->index;
        size_t *dst_len = p == P_PREFIX        ? &u->prefix_len
                          : p == P_START_AFTER ? &u->start_after_len
                                               : &u->index_len;
        if (p == P_INDEX && vlen > URI_INDEX_MAX) {
            free(v);
            return u->error = "index is longer than 1024 bytes", LKV_EBADREQ;
        }
        free(*dst);
        *dst = v;
        *dst_len = vlen;
        return LKV_OK;
    }
    case P_LIMIT:
        if ((ok = number_in(v, 1, URI_LIMIT_MAX, &n)))
            u->limit = (int)n;
        u->error = "limit must be a whole number from 1 to 10000";
        break;
    case P_ENCODING:
        ok = strcmp(v, "url") == 0;
        u->url_encoding = 1;
        u->error = "encoding must be 'url'";
        break;
    case P_VALUES:
        ok = flag_of(v, &u->values);
        u->error = "values must be 1 or 0";
        break;
    case P_WAIT:
        if ((ok = number_in(v, 1, URI_WAIT_MAX, &n)))
            u->wait = (int)n;
        u->has_wait = 1;
        u->error = "wait must be a whole number of seconds from 1 to 600";
        break;
    case P_TTL:
        if ((ok = number_in(v, 1, URI_TTL_MAX, &n)))
            u->ttl = n;
        u->error = "ttl must be a whole number of seconds from 1 to 315360000";
        break;
    case P_KEY:
        /* read on both routes so that handlers.c can refuse it where it
         * does not apply, rather than let a key path ignore it */
        ok = vlen == 6 && memcmp(v, "sha256", 6) == 0;
        u->key_sha256 = ok;
        u->key_param = 1;
        u->error = "key must be sha256: POST /bucket/?key=sha256 stores the body under its "
                   "SHA-256";
        break;
    case P_REFRESH:
        ok = flag_of(v, &u->refresh);
        u->error = "refresh must be 1 or 0";
        break;
    case P_RAW:
        ok = flag_of(v, &u->raw);
        u->error = "raw must be 1 or 0";
        break;
    case P_UNKNOWN:
        break;
    }
    free(v);
    if (!ok)
        return LKV_EBADREQ;
    u->error = NULL;
    return LKV_OK;
}

static enum lkv_status parse_param(struct uri *u, const char *p, size_t len)
{
    const char *eq = memchr(p, '=', len);
    size_t name_len = eq ? (size_t)(eq - p) : len;
    const char *val = eq ? eq + 1 : p + len;
    size_t val_len = eq ? len - name_len - 1 : 0;
    char *name;
    size_t nlen;
    enum lkv_status st = decode_dup(p, name_len, 1, &name, &nlen);
    if (st == LKV_EBADREQ && u->route == ROUTE_KEY)
        return LKV_OK; /* not a name a key reads: ignored, as before there were any */
    if (st != LKV_OK)
        return u->error = "invalid percent-encoding in the query string", st;
    enum param which = param_of(name, u->route);
    free(name);
    if (which == P_UNKNOWN)
        return LKV_OK; /* unknown parameters are ignored, as S3 does */
    char *v;
    size_t vlen;
    st = decode_dup(val, val_len, 1, &v, &vlen);
    if (st != LKV_OK)
        return u->error = "invalid percent-encoding in the query string", st;
    return set_param(u, which, v, vlen);
}

static enum lkv_status parse_query(struct uri *u, const char *q)
{
    while (*q) {
        size_t len = strcspn(q, "&");
        if (len > 0) {
            enum lkv_status st = parse_param(u, q, len);
            if (st != LKV_OK)
                return st;
        }
        q += len;
        if (*q == '&')
            q++;
    }
    return LKV_OK;
}

/* Matches path against "/NAME" followed by end, "/" or more. Returns the
 * rest after "/NAME/" (or "" when the path is exactly "/NAME"), or NULL. */
static const char *match_bucket(const char *path, size_t len, const char *name, size_t *rest_len)
{
    size_t n = strlen(name);
    if (len < n + 1 || path[0] != '/' || memcmp(path + 1, name, n) != 0)
        return NULL;
    if (len == n + 1) {
        *rest_len = 0;
        return path + len;
    }
    if (path[n + 1] != '/')
        return NULL;
    *rest_len = len - n - 2;
    return path + n + 2;
}

enum lkv_status uri_parse(const char *raw, struct uri *u)
{
    memset(u, 0, sizeof(*u));
    u->limit = URI_LIMIT_DEFAULT;
    u->wait = URI_WAIT_DEFAULT;
    size_t path_len = strcspn(raw, "?#");
    const char *query = raw[path_len] == '?' ? raw + path_len + 1 : NULL;

    size_t rest_len;
    const char *rest;
    if ((rest = match_bucket(raw, path_len, "bucket", &rest_len)) != NULL) {
        u->canonical = 0;
    } else if ((rest = match_bucket(raw, path_len, "canonicalbucket", &rest_len)) != NULL) {
        u->canonical = 1;
    } else {
        if (path_len == 7 && memcmp(raw, "/health", 7) == 0)
            u->route = ROUTE_HEALTH;
        else if (path_len == 8 && memcmp(raw, "/metrics", 8) == 0)
            u->route = ROUTE_METRICS;
        else
            u->route = ROUTE_NOT_FOUND;
        return LKV_OK;
    }
    u->route = rest_len == 0 ? ROUTE_LIST : ROUTE_KEY;
    if (u->route == ROUTE_KEY) {
        enum lkv_status st = decode_dup(rest, rest_len, 0, &u->key, &u->key_len);
        if (st != LKV_OK) {
            if (st == LKV_EBADREQ)
                u->error = "invalid percent-encoding in the key";
            return st;
        }
    }
    if (query == NULL)
        return LKV_OK;
    char *q = strndup(query, strcspn(query, "#"));
    if (q == NULL)
        return LKV_ENOMEM;
    enum lkv_status st = parse_query(u, q);
    free(q);
    return st;
}

void uri_free(struct uri *u)
{
    free(u->key);
    free(u->prefix);
    free(u->start_after);
    free(u->index);
    u->key = u->prefix = u->start_after = u->index = NULL;
}

static int has_dot_segment(const char *key, size_t len)
{
    size_t start = 0;
    for (size_t i = 0; i <= len; i++) {
        if (i == len || key[i] == '/') {
            size_t seg = i - start;
            if ((seg == 1 && key[start] == '.') ||
                (seg == 2 && key[start] == '.' && key[start + 1] == '.'))
                return 1;
            start = i + 1;
        }
    }
    return 0;
}

enum lkv_status uri_check_key(const char *key, size_t len, int max_len, int for_read,
                              const char **why)
{
    if (len == 0)
        return *why = "the key is empty", LKV_EBADREQ;
    if (memchr(key, '\0', len) != NULL)
        return *why = "the key contains a NUL byte (%00)", LKV_EBADREQ;
    if (len > (size_t)max_len) {
        if (for_read)
            return *why = "no key is that long", LKV_ENOTFOUND;
        return *why = "the key is longer than key_length", LKV_EBADREQ;
    }
    if (has_dot_segment(key, len))
        return *why = "the key has a '.' or '..' path segment", LKV_EBADREQ;
    return LKV_OK;
}
