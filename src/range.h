/*
 * range.h -- byte ranges of a GET (RFC 9110 14): the Range header read
 * against a representation's length, the Content-Range of the answer, and
 * If-Range. Pure: no I/O, no clock, no allocation; fuzzed.
 *
 * The caller picks the status from the result, in one place:
 *   RANGE_NONE           200, the whole value (no Range, or one to ignore)
 *   RANGE_ONE            206, bytes first..last, Content-Range from
 *                        range_content_range()
 *   RANGE_SEVERAL        200, the whole value: RFC 9110 14.2 lets a server
 *                        ignore Range, and lazykv sends no multipart bodies
 *   RANGE_UNSATISFIABLE  416, Content-Range from range_unsatisfied()
 *
 * What is ignored (RANGE_NONE), as RFC 9110 14.2 allows or requires: a unit
 * other than "bytes" (compared case-insensitively), and a syntactically
 * invalid ranges-specifier (no '=', a space inside a range, a last-pos
 * below its first-pos, a sign, anything but digits). Whitespace: optional
 * spaces and tabs around the commas of the list and around the whole value;
 * none inside "bytes=" or inside a range. Empty list elements ("0-1,,2-3")
 * are skipped (RFC 9110 5.6.1), but at least one range is required.
 */
#ifndef LKV_RANGE_H
#define LKV_RANGE_H

#include <stdint.h>

enum range_result {
    RANGE_NONE,           /* answer 200 with the whole value */
    RANGE_ONE,            /* answer 206 with one range */
    RANGE_SEVERAL,        /* more than one range, some satisfiable: 200 whole */
    RANGE_UNSATISFIABLE   /* answer 416 */
};

/* One satisfiable range: bytes first..last of the value, both inclusive,
 * last < the value's length (so never of an empty value). */
struct byte_range {
    uint64_t first;
    uint64_t last;
};

/* "bytes " + 3 numbers of up to 20 digits + '-' + '/' + NUL */
#define RANGE_CONTENT_RANGE_MAX 70

/* Reads a Range header (NUL-terminated; NULL when absent) against a value
 * of length bytes. On RANGE_ONE, *out holds the range; otherwise *out is
 * untouched.
 *
 * Satisfiable (RFC 9110 14.1.1): "A-B" and "A-" with A < length (B past
 * the end is cut to length - 1); "-N" with N > 0 (the last N bytes, or all
 * of them when N >= length). "-0" and "A-" with A >= length are not. A
 * value of length 0 satisfies no "A-B" or "A-" (416); "-N" asks for the
 * whole empty value, which no Content-Range can describe (there is no
 * last byte): RANGE_NONE, a 200 with the empty body.
 *
 * Numbers of any size are read without overflow: a first-pos past 2^64 is
 * past every end (unsatisfiable), a last-pos or suffix-length past it
 * reaches the end. Several ranges: RANGE_SEVERAL when at least one is
 * satisfiable, else RANGE_UNSATISFIABLE. */
enum range_result range_parse(const char *header, uint64_t length, struct byte_range *out);

/* Evaluates If-Range (RFC 9110 13.1.5) against the current strong ETag
 * (its quoted form, e.g. "\"0001...\""). Returns 1 when the Range is to be
 * honoured: if_range is NULL, or it is exactly etag. Returns 0 otherwise,
 * and the caller ignores Range (200 with the whole value):
 *  - a weak tag (W/"...") or a different tag: If-Range needs a strong match;
 *  - an HTTP-date: the date only matches when Last-Modified is a strong
 *    validator, and ours is not. Last-Modified is the version to the second
 *    while versions are microseconds: two writes within one second share a
 *    date, so a date cannot prove the client's partial copy is of the
 *    current value (RFC 9110 8.8.2.2). Sending the whole value is always
 *    correct; splicing bytes of two values is not;
 *  - anything malformed (and an etag that is itself weak). */
int range_if_range(const char *if_range, const char *etag);

/* Range and If-Range of one GET together (RFC 9110 13.2.2, step 5): when
 * If-Range is present and does not hold, the Range is ignored, even an
 * unsatisfiable one (RANGE_NONE); otherwise as range_parse(). range NULL:
 * RANGE_NONE (If-Range alone is ignored). */
enum range_result range_evaluate(const char *range, const char *if_range, const char *etag,
                                 uint64_t length, struct byte_range *out);

/* What a GET of a value sends, decided from its Range and If-Range: the
 * one place where the status of a read of a value's bytes is chosen, for a
 * value in memory and for one that streams alike. */
struct range_answer {
    unsigned status;        /* 200 (the whole value), 206 or 416 */
    uint64_t offset;        /* the first byte sent */
    uint64_t length;        /* bytes sent, the Content-Length: the whole
                               value on 200, the range on 206, 0 on 416 */
    char content_range[RANGE_CONTENT_RANGE_MAX]; /* Content-Range of a 206
                               or a 416; "" on 200 (none is sent) */
};

/* Fills *out for a GET of a value of length bytes whose strong ETag is etag
 * (quoted), from its Range and If-Range headers (each NULL when absent):
 * range_evaluate() read as status, offset and length. Callers that must
 * ignore Range (HEAD, a document rather than the value) pass range NULL
 * and get 200 with the whole value. Never fails. */
void range_answer(const char *range, const char *if_range, const char *etag, uint64_t length,
                  struct range_answer *out);

/* Writes the Content-Range field value of a 206, "bytes FIRST-LAST/LENGTH". */
void range_content_range(const struct byte_range *r, uint64_t length,
                         char out[RANGE_CONTENT_RANGE_MAX]);

/* Writes the Content-Range field value of a 416: "bytes ", a star, then
 * "/LENGTH" (the unsatisfied-range form of RFC 9110 14.4). */
void range_unsatisfied(uint64_t length, char out[RANGE_CONTENT_RANGE_MAX]);

#endif
