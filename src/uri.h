/*
 * uri.h -- parses the raw request target ("/bucket/a%2Fb?x=1") into a route,
 * a decoded key and the list parameters. Pure: no I/O; fuzzed.
 *
 * lazykvd does its own percent-decoding (libmicrohttpd's would silently cut
 * a key at %00 and pass bad escapes through), so this is the one place where
 * request paths are decoded.
 */
#ifndef LKV_URI_H
#define LKV_URI_H

#include <stddef.h>

#include "lkv.h"

enum route {
    ROUTE_NOT_FOUND, /* no such resource: 404 */
    ROUTE_KEY,       /* /bucket/{key}, /canonicalbucket/{key} */
    ROUTE_LIST,      /* /bucket/, /canonicalbucket/ (and without the slash) */
    ROUTE_HEALTH,    /* /health */
    ROUTE_METRICS    /* /metrics (Prometheus text format) */
};

#define URI_LIMIT_DEFAULT 1000
#define URI_LIMIT_MAX 10000
#define URI_TTL_MAX 315360000     /* seconds: ten years */
#define URI_WAIT_DEFAULT 60       /* seconds a watch or a lock waits */
#define URI_WAIT_MAX 600
#define URI_INDEX_MAX 1024        /* bytes of an index (a list's token) */

struct uri {
    enum route route;
    int canonical;          /* 1 for /canonicalbucket/ */
    char *key;              /* owned: decoded key (may hold any byte) */
    size_t key_len;
    char *prefix;           /* owned: list ?prefix=, decoded; NULL if absent */
    size_t prefix_len;
    char *start_after;      /* owned: list ?start_after=, decoded; NULL if absent */
    size_t start_after_len;
    int limit;              /* list ?limit=, URI_LIMIT_DEFAULT if absent */
    int url_encoding;       /* list ?encoding=url */
    int values;             /* list ?values=1: entries carry their values */
    /* both routes */
    char *index;            /* owned: ?index=, decoded; NULL if absent (a
                               watch: a key's version, a list's token) */
    size_t index_len;
    int wait;               /* ?wait= seconds; URI_WAIT_DEFAULT if absent */
    int has_wait;           /* ?wait= was given */
    int key_param;          /* ?key= was given (only a POST to a list path
                               takes it: handlers.c refuses it elsewhere) */
    int key_sha256;         /* ?key=sha256: a content-addressed write */
    /* keys */
    long long ttl;          /* ?ttl= seconds; 0 if absent */
    int refresh;            /* ?refresh=1 */
    int raw;                /* ?raw=1: a GET/HEAD answers the stored value
                               as written, whatever the Accept (the HTML
                               view's download links) */
    const char *error;      /* static: why parsing failed */
};

/* Parses raw (NUL-terminated request target). Returns LKV_OK, LKV_EBADREQ
 * with out->error set (bad percent-encoding, a parameter out of range), or
 * LKV_ENOMEM. Each route reads its own parameters (a key: ttl, refresh,
 * raw, index, wait, key; a list: prefix, start_after, limit, encoding, values,
 * index, wait, key) and ignores any other, as S3 does. key's one value is
 * "sha256" (anything else is LKV_EBADREQ).
 * out must be released with uri_free() whatever the result. */
enum lkv_status uri_parse(const char *raw, struct uri *out);

void uri_free(struct uri *u);

/* Checks a decoded key for a write (or, with for_read, a read): returns
 * LKV_OK; LKV_EBADREQ with *why for an empty key, a NUL byte, a "." or ".."
 * path segment, or (writes only) more than max_len bytes; LKV_ENOTFOUND for
 * a read of a key over max_len, which cannot exist. */
enum lkv_status uri_check_key(const char *key, size_t len, int max_len, int for_read,
                              const char **why);

#endif
