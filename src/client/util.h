/*
 * util.h -- the pure parts of liblazykv (no I/O; unit-tested): a growable
 * byte buffer, percent-encoding, the endpoint list, RFC 3339 instants and
 * base64. Internal: not part of lazykv.h.
 */
#ifndef LKV_CLIENT_UTIL_H
#define LKV_CLIENT_UTIL_H

#include <stddef.h>
#include <stdint.h>

struct lkvu_buf {
    char *data;     /* NUL-terminated when not NULL */
    size_t len, cap;
};

/* Appends n bytes; 0, or -1 when out of memory (b unchanged). */
int lkvu_append(struct lkvu_buf *b, const void *p, size_t n);
int lkvu_puts(struct lkvu_buf *b, const char *s);
void lkvu_free(struct lkvu_buf *b);

/* Appends s[0..n) percent-encoded: every byte but A-Z a-z 0-9 - . _ ~ (and
 * '/' when keep_slash: a key's path segments stay readable). */
int lkvu_pct_encode(struct lkvu_buf *b, const void *s, size_t n, int keep_slash);

/* Decodes s[0..n) ("%2F" and '+' as is) into a fresh NUL-terminated
 * allocation; NULL on a bad escape or out of memory. */
char *lkvu_pct_decode(const char *s, size_t n, size_t *out_len);

/* Splits "http://h1:8080,http://h2:8080/" into base URLs without a
 * trailing '/'. Each must start with http:// or https:// and have a host.
 * Returns the count (>= 1) with *out a malloc'd array of malloc'd strings,
 * or -1 (malformed, or out of memory). */
int lkvu_endpoints(const char *list, char ***out);
void lkvu_endpoints_free(char **v, int n);

/* "2026-11-29T16:40:00.123Z" (milliseconds optional) to ms since the
 * epoch; -1 when s is not such an instant. */
int64_t lkvu_rfc3339_ms(const char *s);

/* Decodes standard base64 (padding required) into a fresh allocation,
 * NUL-terminated; NULL when s is not base64 or out of memory. */
unsigned char *lkvu_base64_decode(const char *s, size_t n, size_t *out_len);

#endif
