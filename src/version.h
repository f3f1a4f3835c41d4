/*
 * version.h -- record versions and the HTTP validators derived from them.
 *
 * A version is a 64-bit hybrid logical clock assigned by the key's master:
 * max(previous version + 1, wall clock in microseconds since the epoch), the
 * max taken inside the database under the row lock (see store.c). So versions
 * of one key strictly increase even with several controllers and skewed
 * clocks, stay close to real time, and compare across partitions: the sync
 * never applies a lower version over a higher one.
 *
 * The ETag is the version in 16 hex digits, quoted; Last-Modified is the
 * version read as a time.
 */
#ifndef LKV_VERSION_H
#define LKV_VERSION_H

#include <stdint.h>

#define VERSION_ETAG_LEN 19 /* '"' + 16 hex + '"' + NUL */
#define VERSION_DATE_LEN 32

/* Wall clock, microseconds since the Unix epoch. */
uint64_t version_now_us(void);

/* Writes "\"%016x\"" for v into out. */
void version_etag(uint64_t v, char out[VERSION_ETAG_LEN]);

/* An IMF-fixdate (RFC 9110) for the second of version v. */
void version_http_date(uint64_t v, char out[VERSION_DATE_LEN]);

/* An instant in microseconds as RFC 3339 UTC with milliseconds,
 * "2026-11-29T16:40:00.123Z" (expiry instants). */
void version_rfc3339(uint64_t us, char out[VERSION_DATE_LEN]);

/* Matches an If-Match / If-None-Match header against version v. A weak tag
 * W/"..." matches only when weak_ok (If-None-Match uses weak comparison).
 * Returns 1 when the list contains a tag for v, 0 when not, -1 when the
 * header is malformed. Sets *star when the header is "*" (then returns 0). */
int version_etag_list_match(const char *header, uint64_t v, int weak_ok, int *star);

/* What If-Match (if_match, NULL when absent) says of a key that exists
 * (live) at version v: 1 when it holds, 0 when not, -1 when malformed. */
int version_if_match(const char *if_match, int exists, uint64_t v);

/* The same for If-None-Match: 1 when it holds (the key is not one of the
 * listed versions, or absent for "*"), 0 when not, -1 when malformed. */
int version_if_none_match(const char *if_none_match, int exists, uint64_t v);

#endif
