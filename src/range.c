/*
 * range.c -- Range, If-Range and Content-Range. See range.h.
 */
#include "range.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

/* A decimal number as written: its significant digits (leading zeros
 * dropped, so "007" and "7" compare equal) and its value, saturated at
 * UINT64_MAX when it does not fit (huge). Comparing digits keeps "last-pos
 * below first-pos" exact for numbers of any size. */
struct number {
    const char *digits;     /* ref: into the header */
    size_t len;             /* 0 for zero */
    uint64_t value;
    int huge;               /* more than UINT64_MAX */
};

/* How one range-spec stands against the length. */
enum spec_kind {
    SPEC_SATISFIABLE,       /* bytes to send */
    SPEC_EMPTY_WHOLE,       /* a suffix of an empty value: nothing to send */
    SPEC_UNSATISFIABLE
};

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* Reads 1*DIGIT at *p into n and moves *p past it. 0, or -1 without a digit. */
static int read_number(const char **p, struct number *n)
{
    const char *s = *p;
    if (!is_digit(*s))
        return -1;
    while (*s == '0')
        s++;
    memset(n, 0, sizeof(*n));
    n->digits = s;
    for (; is_digit(*s); s++) {
        unsigned d = (unsigned)(*s - '0');
        if (!n->huge && n->value > (UINT64_MAX - d) / 10)
            n->huge = 1;
        n->value = n->huge ? UINT64_MAX : n->value * 10 + d;
    }
    n->len = (size_t)(s - n->digits);
    *p = s;
    return 0;
}

/* -1, 0 or 1 as a is below, equal to or above b. */
static int number_cmp(const struct number *a, const struct number *b)
{
    if (a->len != b->len)
        return a->len < b->len ? -1 : 1;
    int c = memcmp(a->digits, b->digits, a->len);
    return (c > 0) - (c < 0);
}

/* n is at least length (past the last byte). */
static int number_at_least(const struct number *n, uint64_t length)
{
    return n->huge || n->value >= length;
}

/* "-N": the last N bytes. */
static enum spec_kind suffix_range(const struct number *n, uint64_t length, struct byte_range *r)
{
    if (n->len == 0)
        return SPEC_UNSATISFIABLE; /* "-0" asks for no byte */
    if (length == 0)
        return SPEC_EMPTY_WHOLE;
    r->first = number_at_least(n, length) ? 0 : length - n->value;
    r->last = length - 1;
    return SPEC_SATISFIABLE;
}

/* "A-" or "A-B". */
static enum spec_kind int_range(const struct number *first, const struct number *last,
                                uint64_t length, struct byte_range *r)
{
    if (number_at_least(first, length))
        return SPEC_UNSATISFIABLE; /* also every range of an empty value */
    r->first = first->value;
    r->last = last == NULL || number_at_least(last, length) ? length - 1 : last->value;
    return SPEC_SATISFIABLE;
}

/* Parses one range-spec at *p (moving past it) and judges it. 0, or -1
 * when it is invalid, which makes the whole header ignored. */
static int parse_spec(const char **p, uint64_t length, enum spec_kind *kind,
                      struct byte_range *r)
{
    struct number first, last, suffix;
    if (**p == '-') {
        (*p)++;
        if (read_number(p, &suffix) != 0)
            return -1;
        *kind = suffix_range(&suffix, length, r);
        return 0;
    }
    if (read_number(p, &first) != 0 || **p != '-')
        return -1;
    (*p)++;
    if (!is_digit(**p)) {
        *kind = int_range(&first, NULL, length, r);
        return 0;
    }
    if (read_number(p, &last) != 0 || number_cmp(&last, &first) < 0)
        return -1; /* a last-pos below its first-pos makes the range invalid */
    *kind = int_range(&first, &last, length, r);
    return 0;
}

static int is_tchar(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || is_digit(c) ||
           (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

/* Moves *p past "bytes=" (any case). 0, or -1 for another unit or no '='. */
static int read_unit(const char **p)
{
    const char *s = *p;
    while (is_tchar(*s))
        s++;
    if (*s != '=' || s - *p != 5 || strncasecmp(*p, "bytes", 5) != 0)
        return -1;
    *p = s + 1;
    return 0;
}

enum range_result range_parse(const char *header, uint64_t length, struct byte_range *out)
{
    if (header == NULL)
        return RANGE_NONE;
    const char *p = skip_ows(header);
    if (read_unit(&p) != 0)
        return RANGE_NONE;
    int count = 0, satisfiable = 0;
    enum spec_kind only = SPEC_UNSATISFIABLE;
    struct byte_range only_range = {0, 0};
    while (*p != '\0') {
        if (*p == ',') { /* an empty list element */
            p = skip_ows(p + 1);
            continue;
        }
        enum spec_kind kind;
        struct byte_range r = {0, 0};
        if (parse_spec(&p, length, &kind, &r) != 0)
            return RANGE_NONE;
        if (count == 0) {
            only = kind;
            only_range = r;
        }
        count = count < 2 ? count + 1 : 2; /* one, or several */
        satisfiable |= kind != SPEC_UNSATISFIABLE;
        p = skip_ows(p);
        if (*p != ',' && *p != '\0')
            return RANGE_NONE; /* junk after a range, or a space inside one */
    }
    if (count == 0)
        return RANGE_NONE; /* "bytes=" names no range: invalid */
    if (count > 1)
        return satisfiable ? RANGE_SEVERAL : RANGE_UNSATISFIABLE;
    if (only == SPEC_UNSATISFIABLE)
        return RANGE_UNSATISFIABLE;
    if (only == SPEC_EMPTY_WHOLE)
        return RANGE_NONE;
    *out = only_range;
    return RANGE_ONE;
}

int range_if_range(const char *if_range, const char *etag)
{
    if (if_range == NULL)
        return 1;
    if (etag == NULL || etag[0] != '"')
        return 0; /* no strong validator to compare with */
    const char *p = skip_ows(if_range);
    size_t len = strlen(p);
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    /* A date never starts with a quote, a weak tag starts with W/: neither
     * can equal a strong tag, so one byte-wise comparison decides. */
    return len == strlen(etag) && memcmp(p, etag, len) == 0;
}

enum range_result range_evaluate(const char *range, const char *if_range, const char *etag,
                                 uint64_t length, struct byte_range *out)
{
    if (range == NULL || !range_if_range(if_range, etag))
        return RANGE_NONE;
    return range_parse(range, length, out);
}

void range_content_range(const struct byte_range *r, uint64_t length,
                         char out[RANGE_CONTENT_RANGE_MAX])
{
    snprintf(out, RANGE_CONTENT_RANGE_MAX, "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, r->first,
             r->last, length);
}

void range_unsatisfied(uint64_t length, char out[RANGE_CONTENT_RANGE_MAX])
{
    snprintf(out, RANGE_CONTENT_RANGE_MAX, "bytes */%" PRIu64, length);
}

void range_answer(const char *range, const char *if_range, const char *etag, uint64_t length,
                  struct range_answer *out)
{
    struct byte_range r = {0, 0};
    out->content_range[0] = '\0';
    switch (range_evaluate(range, if_range, etag, length, &r)) {
    case RANGE_ONE:
        out->status = 206;
        out->offset = r.first;
        out->length = r.last - r.first + 1;
        range_content_range(&r, length, out->content_range);
        return;
    case RANGE_UNSATISFIABLE:
        out->status = 416;
        out->offset = 0;
        out->length = 0;
        range_unsatisfied(length, out->content_range);
        return;
    case RANGE_NONE:
    case RANGE_SEVERAL:
        break;
    }
    out->status = 200;
    out->offset = 0;
    out->length = length;
}
