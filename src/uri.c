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

static enum lkv_status parse_param(struct uri *u, const char *p, size_t len)
{
    const char *eq = memchr(p, '=', len);
    size_t name_len = eq ? (size_t)(eq - p) : len;
    const char *val = eq ? eq + 1 : p + len;
    size_t val_len = eq ? len - name_len - 1 : 0;
    char *name;
    size_t nlen;
    enum lkv_status st = decode_dup(p, name_len, 1, &name, &nlen);
    if (st != LKV_OK)
        return u->error = "invalid percent-encoding in the query string", st;
    char **dst = NULL;
    size_t *dst_len = NULL;
    if (strcmp(name, "prefix") == 0) {
        dst = &u->prefix;
        dst_len = &u->prefix_len;
    } else if (strcmp(name, "start_after") == 0) {
        dst = &u->start_after;
        dst_len = &u->start_after_len;
    }
    int is_limit = strcmp(name, "limit") == 0, is_enc = strcmp(name, "encoding") == 0;
    free(name);
    if (dst == NULL && !is_limit && !is_enc)
        return LKV_OK; /* unknown parameters are ignored, as S3 does */
    char *v;
    size_t vlen;
    st = decode_dup(val, val_len, 1, &v, &vlen);
    if (st != LKV_OK)
        return u->error = "invalid percent-encoding in the query string", st;
    if (dst) {
        free(*dst);
        *dst = v;
        *dst_len = vlen;
        return LKV_OK;
    }
    if (is_enc) {
        int ok = strcmp(v, "url") == 0;
        free(v);
        if (!ok)
            return u->error = "encoding must be 'url'", LKV_EBADREQ;
        u->url_encoding = 1;
        return LKV_OK;
    }
    long long n;
    int ok = config_parse_ll(v, &n) == 0 && n >= 1 && n <= URI_LIMIT_MAX;
    free(v);
    if (!ok)
        return u->error = "limit must be a whole number from 1 to 10000", LKV_EBADREQ;
    u->limit = (int)n;
    return LKV_OK;
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
    if (rest_len == 0) {
        u->route = ROUTE_LIST;
        if (query) {
            char *q = strndup(query, strcspn(query, "#"));
            if (q == NULL)
                return LKV_ENOMEM;
            enum lkv_status st = parse_query(u, q);
            free(q);
            return st;
        }
        return LKV_OK;
    }
    u->route = ROUTE_KEY;
    enum lkv_status st = decode_dup(rest, rest_len, 0, &u->key, &u->key_len);
    if (st == LKV_EBADREQ)
        u->error = "invalid percent-encoding in the key";
    return st;
}

void uri_free(struct uri *u)
{
    free(u->key);
    free(u->prefix);
    free(u->start_after);
    u->key = u->prefix = u->start_after = NULL;
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
