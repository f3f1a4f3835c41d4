/*
 * html.h -- the browsable HTML view: whole pages for a person with a
 * browser (a list of keys with links, one key's metadata and value,
 * /health as a table), and the page frame every HTML document shares.
 *
 * Pure: builds text from plain data, no I/O. Everything that comes from a
 * request or a database is escaped here, whatever its bytes: text that is
 * not UTF-8, or that HTML may not carry (controls, noncharacters), is shown
 * as percent-escapes in a <mark>; links carry keys percent-encoded. Pages
 * are HTML5 with an inline stylesheet and a viewport for phones, and no
 * script: a Content-Security-Policy (HTML_CSP) forbids any.
 *
 * The raw value of a key is linked as the key's URL with ?raw=1 (see
 * uri.h), since a link cannot choose the Accept header a browser sends.
 */
#ifndef LKV_HTML_H
#define LKV_HTML_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

/* The Content-Security-Policy sent with every HTML page: no script, no
 * external resource, forms only to lazykvd. */
#define HTML_CSP                                                                         \
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; base-uri 'none'; " \
    "frame-ancestors 'none'"

/* Values longer than this are shown cut (the raw value is linked). */
#define HTML_VALUE_SHOWN_MAX (256u * 1024u)

/* Opens a page: doctype, head (charset, viewport, title, stylesheet), the
 * navigation bar and an <h1> holding title. title is shown escaped. 0, or
 * -1 when out of memory (b may then hold part of the page). */
int html_page_open(struct buf *b, const char *title, size_t title_len);

/* Closes what html_page_open opened. 0 or -1. */
int html_page_close(struct buf *b);

/* Appends arbitrary bytes as HTML text (0 or -1): escaped; bytes that are
 * not UTF-8, and characters HTML may not carry, as "%XX" in a <mark>. With
 * keep_space, tab, LF and CR are kept (inside <pre>); else they are marked
 * too. */
int html_text(struct buf *b, const char *p, size_t len, int keep_space);

/* ---- a list of keys ------------------------------------------------------ */

/* A list page: built with html_list_open, html_list_key for each key in
 * order, html_list_close. Every field is a ref the caller keeps. */
struct html_list {
    int canonical;          /* /canonicalbucket/ (else /bucket/) */
    const char *prefix;     /* the list's prefix, or NULL */
    size_t prefix_len;
    const char *start_after; /* where this page started, or NULL */
    size_t start_after_len;
    int limit;              /* the page's limit */
    int limit_default;      /* the limit when none is given (links omit it) */
    int values;             /* values=1 was asked: links keep it */
    size_t count;           /* keys on this page */
    const char *next;       /* start_after of the next page, NULL when none */
    size_t next_len;
};

/* What a list with values knows of a key (html_list_key); NULL without. */
struct html_entry {
    uint64_t size;          /* bytes of the value */
    const char *ctype;      /* ref */
    uint64_t version;
};

int html_list_open(struct buf *b, const struct html_list *l);
/* One key: a link to its page; e (may be NULL) adds its size and type. */
int html_list_key(struct buf *b, const struct html_list *l, const char *key, size_t len,
                  const struct html_entry *e);
int html_list_close(struct buf *b, const struct html_list *l);

/* ---- one key ------------------------------------------------------------- */

struct html_key {
    int canonical;          /* read at the master (/canonicalbucket/) */
    const char *key;        /* ref */
    size_t key_len;
    const char *value;      /* ref (NULL when empty) */
    size_t value_len;
    const char *ctype;      /* ref: the stored Content-Type */
    uint64_t version;       /* also the key's index (X-Lazykv-Index) */
    const char *etag;       /* ref: the ETag header's value */
    const char *last_modified; /* ref: the Last-Modified header's value */
    const char *expires;    /* ref: RFC 3339, or NULL: no expiry */
    int partition;          /* the partition that answered, or -1 */
};

/* 1 when a value of content type ctype is shown as text: its type is
 * textual (text/ *, JSON, XML, YAML, JavaScript, ...; or
 * application/octet-stream, what a value written without a type gets), and
 * its bytes are UTF-8 that HTML can carry (tab, LF, CR the only controls). */
int html_value_is_text(const char *ctype, const char *value, size_t len);

/* The page of a key: metadata, then the value as text (escaped, in a <pre>,
 * cut past HTML_VALUE_SHOWN_MAX) or a download link to its raw value.
 * Returns a malloc'd page (caller frees) and sets *len, or NULL when out of
 * memory. */
char *html_key_page(const struct html_key *k, size_t *len);

/* ---- /health ------------------------------------------------------------- */

/* The /health document as a page: its scalar fields, a table of its
 * "partition" array (one row per partition, a column per field any of them
 * has: new fields such as "pending_rows" appear by themselves) and its
 * "sync" object when present. Malloc'd (caller frees), or NULL when out of
 * memory. */
char *html_health_page(const json_t *doc, size_t *len);

#endif
