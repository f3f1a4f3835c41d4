/*
 * negotiate.c -- Accept header parsing. See negotiate.h.
 */
#include "negotiate.h"

#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* A media type split into its two halves, without parameters. */
struct mtype {
    const char *type;
    size_t type_len;
    const char *sub;
    size_t sub_len;
};

static int split_type(const char *s, size_t len, struct mtype *out)
{
    while (len > 0 && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    const char *slash = memchr(s, '/', len);
    if (slash == NULL || slash == s || slash == s + len - 1)
        return -1;
    out->type = s;
    out->type_len = (size_t)(slash - s);
    out->sub = slash + 1;
    out->sub_len = len - out->type_len - 1;
    return 0;
}

static int part_eq(const char *a, size_t alen, const char *b, size_t blen)
{
    return alen == blen && strncasecmp(a, b, alen) == 0;
}

/* Parses "q=0.5" style weights; returns thousandths, or -1 when malformed. */
static int parse_q(const char *s, size_t len)
{
    while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (len == 0 || len > 5 || (s[0] != '0' && s[0] != '1'))
        return -1;
    int q = (s[0] - '0') * 1000;
    if (len == 1)
        return q;
    if (s[1] != '.')
        return -1;
    int scale = 100;
    for (size_t i = 2; i < len; i++, scale /= 10) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        q += (s[i] - '0') * scale;
    }
    return q > 1000 ? -1 : q;
}

/* One media range of an Accept header: its type and its q (thousandths,
 * -1 when malformed). Returns where the next range starts, or NULL at the
 * end; *r is only meaningful when *valid. */
static const char *next_range(const char *p, struct mtype *r, int *q, int *valid)
{
    if (*p == '\0')
        return NULL;
    size_t range_len = strcspn(p, ",");
    size_t type_len = strcspn(p, ";,");
    *valid = split_type(p, type_len, r) == 0;
    *q = 1000;
    const char *param = p + type_len;
    while (param < p + range_len && *param == ';') {
        param++;
        while (*param == ' ' || *param == '\t')
            param++;
        size_t plen = strcspn(param, ";,");
        if (plen >= 2 && (param[0] == 'q' || param[0] == 'Q') && param[1] == '=')
            *q = parse_q(param + 2, plen - 2);
        param += plen;
    }
    p += range_len;
    return *p == ',' ? p + 1 : p;
}

static int is_any(const struct mtype *r)
{
    return part_eq(r->type, r->type_len, "*", 1) && part_eq(r->sub, r->sub_len, "*", 1);
}

/* For one offered type, the q of the most specific range that matches it:
 * exact type/subtype beats type/ *, which beats * / *. -1 if none matches. */
static int q_for(const char *accept, const struct mtype *offer)
{
    int best_spec = -1, best_q = -1, q, valid;
    struct mtype r;
    for (const char *p = accept; (p = next_range(p, &r, &q, &valid)) != NULL;) {
        if (!valid)
            continue;
        int spec = -1;
        if (is_any(&r))
            spec = 0;
        else if (part_eq(r.type, r.type_len, offer->type, offer->type_len)) {
            if (part_eq(r.sub, r.sub_len, "*", 1))
                spec = 1;
            else if (part_eq(r.sub, r.sub_len, offer->sub, offer->sub_len))
                spec = 2;
        }
        if (q >= 0 && spec > best_spec) {
            best_spec = spec;
            best_q = q;
        }
    }
    return best_q;
}

static const char *const doc_types[] = {
    [MEDIA_JSON] = "application/json",
    [MEDIA_XML] = "application/xml",
    [MEDIA_HTML] = "text/html",
    [MEDIA_TEXT] = "text/plain",
};

const char *negotiate_content_type(enum media m)
{
    switch (m) {
    case MEDIA_JSON: return "application/json";
    case MEDIA_XML: return "application/xml; charset=utf-8";
    case MEDIA_HTML: return "text/html; charset=utf-8";
    case MEDIA_TEXT: return "text/plain; charset=utf-8";
    default: return "application/octet-stream";
    }
}

/* The q accept gives format m (the raw value typed raw_type for MEDIA_RAW). */
static int offer_q(const char *accept, int m, const char *raw_type)
{
    struct mtype offer;
    const char *t = m == MEDIA_RAW ? raw_type : doc_types[m];
    if (split_type(t, strcspn(t, ";"), &offer) != 0 &&
        split_type("application/octet-stream", 24, &offer) != 0)
        return -1;
    int q = q_for(accept, &offer);
    /* text/xml is an alias many clients send for XML. */
    if (m == MEDIA_XML && strcasestr(accept, "text/xml") != NULL) {
        struct mtype alias;
        int qa = split_type("text/xml", 8, &alias) == 0 ? q_for(accept, &alias) : -1;
        if (qa > q)
            q = qa;
    }
    return q;
}

static int accept_empty(const char *accept)
{
    return accept == NULL || accept[strspn(accept, " \t")] == '\0';
}

enum media negotiate_media(const char *accept, const char *raw_type)
{
    int first = raw_type ? MEDIA_RAW : MEDIA_JSON;
    if (accept_empty(accept))
        return (enum media)first;
    int best = MEDIA_NONE, best_q = 0;
    for (int m = first; m <= MEDIA_TEXT; m++) {
        int q = offer_q(accept, m, raw_type);
        if (q > best_q) {
            best_q = q;
            best = m;
        }
    }
    return (enum media)best;
}

int negotiate_document_possible(const char *accept)
{
    if (accept_empty(accept))
        return 0;
    int doc_q = 0;
    for (int m = MEDIA_JSON; m <= MEDIA_TEXT; m++) {
        int q = offer_q(accept, m, NULL);
        doc_q = q > doc_q ? q : doc_q;
    }
    if (doc_q == 0)
        return 0;
    /* A raw value of any type gets the q of some range when * / * is
     * listed; it never loses (ties go to raw) when no range, * / * included,
     * has a lower q than the best document. */
    int any = 0, min_q = 1000, q, valid;
    struct mtype r;
    for (const char *p = accept; (p = next_range(p, &r, &q, &valid)) != NULL;) {
        if (!valid || q < 0)
            continue;
        any |= is_any(&r);
        min_q = q < min_q ? q : min_q;
    }
    return !(any && min_q >= doc_q);
}
