/*
 * html.c -- the browsable HTML view. See html.h.
 *
 * Every function here appends to a struct buf and returns 0, or -1 when an
 * allocation failed (the buf then holds part of a page: the caller frees
 * it). Chains of appends are written "a || b || c", whose value is 1 when
 * any of them failed.
 */
#include "html.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "codec.h"

#define STYLE                                                                                  \
    "body{font:16px/1.45 system-ui,sans-serif;margin:0 auto;max-width:60em;padding:0 1em 2em;" \
    "color:#222;background:#fff}"                                                              \
    "nav{display:flex;flex-wrap:wrap;gap:.25em 1.2em;padding:.6em 0;"                          \
    "border-bottom:1px solid #ccc}"                                                            \
    "h1{font-size:1.3em;overflow-wrap:anywhere}h2{font-size:1.1em}a{color:#0645ad}"            \
    "pre{white-space:pre-wrap;overflow-wrap:anywhere;background:#f6f6f6;padding:.5em;"         \
    "border:1px solid #ddd}"                                                                   \
    "mark{background:#fde68a;font-family:monospace}code{overflow-wrap:anywhere}"               \
    "ul.keys{list-style:none;padding:0}ul.keys li{padding:.4em 0;border-bottom:1px solid #eee;" \
    "overflow-wrap:anywhere}small{color:#555}"                                                 \
    "dl{display:grid;grid-template-columns:max-content 1fr;gap:.2em 1em}dt{font-weight:600}"   \
    "dd{margin:0;overflow-wrap:anywhere}"                                                      \
    ".tbl{overflow-x:auto}table{border-collapse:collapse;min-width:100%;font-size:.9em}"       \
    "th,td{text-align:left;padding:.3em .4em;border-bottom:1px solid #ddd}"                    \
    ".bad{color:#b00020;font-weight:600}.ok{color:#0a7d2c}"                                    \
    "form{display:flex;flex-wrap:wrap;gap:.5em;align-items:center}"                            \
    "input,button{font-size:1em;padding:.3em}input[type=search]{flex:1;min-width:8em}"

/* ---- escaping ------------------------------------------------------------ */

/* The UTF-8 sequence at p[0..len): its length and code point, or 0 when
 * it is not well-formed (overlong, surrogate, past U+10FFFF, cut short). */
static size_t utf8_next(const unsigned char *p, size_t len, unsigned *cp)
{
    size_t n;
    unsigned c;
    if (p[0] < 0x80) {
        *cp = p[0];
        return 1;
    }
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        n = 2, c = p[0] & 0x1Fu;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF)
        n = 3, c = p[0] & 0x0Fu;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4)
        n = 4, c = p[0] & 0x07u;
    else
        return 0;
    if (len < n)
        return 0;
    for (size_t k = 1; k < n; k++) {
        if ((p[k] & 0xC0) != 0x80)
            return 0;
        c = c << 6 | (p[k] & 0x3Fu);
    }
    if ((n == 3 && c < 0x800) || (n == 4 && c < 0x10000) || c > 0x10FFFF ||
        (c >= 0xD800 && c <= 0xDFFF))
        return 0;
    *cp = c;
    return n;
}

/* 1 when HTML text may carry code point cp: no controls (C0 but tab, LF and
 * CR when keep_space; DEL; C1) and no noncharacters. */
static int carriable(unsigned cp, int keep_space)
{
    if (cp == '\t' || cp == '\n' || cp == '\r')
        return keep_space;
    if (cp < 0x20 || (cp >= 0x7F && cp <= 0x9F))
        return 0;
    return !((cp >= 0xFDD0 && cp <= 0xFDEF) || (cp & 0xFFFEu) == 0xFFFEu);
}

static const char *entity(unsigned char c)
{
    switch (c) {
    case '&': return "&amp;";
    case '<': return "&lt;";
    case '>': return "&gt;";
    case '"': return "&quot;";
    case '\'': return "&#39;";
    default: return NULL;
    }
}

/* Appends the n bytes at p that HTML may carry, escaped. */
static int put_escaped(struct buf *b, const char *p, size_t n)
{
    const char *e = n == 1 ? entity((unsigned char)p[0]) : NULL;
    return e ? buf_puts(b, e) : buf_append(b, p, n);
}

/* The core of html_text and attr_text: marked nonzero writes what HTML
 * cannot carry as %XX in <mark> (text), zero as U+FFFD (attributes, the
 * title). */
static int escape_bytes(struct buf *b, const char *s, size_t len, int keep_space, int marked)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = (const unsigned char *)s;
    int in_mark = 0;
    size_t i = 0;
    while (i < len) {
        unsigned cp = 0;
        size_t n = utf8_next(p + i, len - i, &cp);
        int ok = n > 0 && carriable(cp, keep_space);
        if (n == 0)
            n = 1; /* not UTF-8: this byte alone */
        if (ok && in_mark && buf_puts(b, "</mark>") != 0)
            return -1;
        if (!ok && marked && !in_mark && buf_puts(b, "<mark>") != 0)
            return -1;
        in_mark = !ok && marked;
        int rc = 0;
        if (ok)
            rc = put_escaped(b, s + i, n);
        else if (!marked)
            rc = buf_puts(b, "\xEF\xBF\xBD");
        for (size_t k = 0; !ok && marked && rc == 0 && k < n; k++)
            rc = buf_printf(b, "%%%c%c", hex[p[i + k] >> 4], hex[p[i + k] & 15]);
        if (rc != 0)
            return -1;
        i += n;
    }
    return in_mark ? buf_puts(b, "</mark>") : 0;
}

int html_text(struct buf *b, const char *p, size_t len, int keep_space)
{
    return escape_bytes(b, p, len, keep_space, 1);
}

/* Bytes for an attribute value or the <title>: escaped, U+FFFD for what
 * HTML cannot carry (no markup is possible there). */
static int attr_text(struct buf *b, const char *p, size_t len)
{
    return escape_bytes(b, p, len, 0, 0);
}

static int put_text(struct buf *b, const char *s)
{
    return html_text(b, s, strlen(s), 0);
}

/* ---- URLs ---------------------------------------------------------------- */

static const char *family(int canonical)
{
    return canonical ? "/canonicalbucket/" : "/bucket/";
}

/* Appends the path of key's page. Percent-encoding leaves only unreserved
 * characters, '/' and '%': nothing an attribute needs escaped. */
static int put_key_url(struct buf *b, int canonical, const char *key, size_t len)
{
    return buf_puts(b, family(canonical)) || codec_pct_encode(b, key, len, 1) ? -1 : 0;
}

/* One query parameter "[?&]name=value", value percent-encoded ('&' as
 * "&amp;": this is an attribute). *first says whether one came before. */
static int put_param(struct buf *b, int *first, const char *name, const char *v, size_t len)
{
    int rc = buf_puts(b, *first ? "?" : "&amp;") || buf_puts(b, name) || buf_puts(b, "=") ||
             codec_pct_encode(b, v, len, 1);
    *first = 0;
    return rc ? -1 : 0;
}

/* The URL of a list page of l's family and prefix, from after start_after
 * (NULL: the first page), keeping a limit that is not the default and
 * values=1. canonical picks the family. */
static int put_list_url(struct buf *b, const struct html_list *l, int canonical,
                        const char *start_after, size_t sa_len)
{
    int first = 1;
    char num[24];
    snprintf(num, sizeof(num), "%d", l->limit);
    return buf_puts(b, family(canonical)) ||
                   (l->prefix && l->prefix_len &&
                    put_param(b, &first, "prefix", l->prefix, l->prefix_len)) ||
                   (start_after && put_param(b, &first, "start_after", start_after, sa_len)) ||
                   (l->limit != l->limit_default &&
                    put_param(b, &first, "limit", num, strlen(num))) ||
                   (l->values && put_param(b, &first, "values", "1", 1))
               ? -1
               : 0;
}

/* ---- the page frame ------------------------------------------------------ */

int html_page_open(struct buf *b, const char *title, size_t title_len)
{
    return buf_puts(b, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
                       "<meta name=\"viewport\" content=\"width=device-width, "
                       "initial-scale=1\"><title>") ||
                   attr_text(b, title, title_len) ||
                   buf_puts(b, " - lazykv</title><style>" STYLE "</style></head><body>"
                               "<nav><a href=\"/bucket/\">Keys (lazy)</a>"
                               "<a href=\"/canonicalbucket/\">Keys (canonical)</a>"
                               "<a href=\"/health\">Health</a></nav><main><h1>") ||
                   html_text(b, title, title_len, 0) || buf_puts(b, "</h1>\n")
               ? -1
               : 0;
}

int html_page_close(struct buf *b)
{
    return buf_puts(b, "</main></body></html>\n");
}

/* "N bytes", and the size in KiB/MiB/GiB past 1 KiB. */
static int put_size(struct buf *b, uint64_t n)
{
    static const char *const unit[] = {"KiB", "MiB", "GiB", "TiB"};
    if (buf_printf(b, "%" PRIu64 " byte%s", n, n == 1 ? "" : "s") != 0)
        return -1;
    if (n < 1024)
        return 0;
    double v = (double)n / 1024;
    int u = 0;
    while (v >= 1024 && u < 3)
        v /= 1024, u++;
    return buf_printf(b, " (%.1f %s)", v, unit[u]);
}

/* ---- a list of keys ------------------------------------------------------ */

int html_list_open(struct buf *b, const struct html_list *l)
{
    struct buf title = BUF_INIT;
    int rc = buf_puts(&title, family(l->canonical)) ||
             (l->prefix && buf_append(&title, l->prefix, l->prefix_len));
    rc = rc || html_page_open(b, title.data, title.len);
    buf_free(&title);
    rc = rc ||
         buf_puts(b, l->canonical ? "<p>Canonical: every key as its master holds it. <a href=\""
                                  : "<p>Lazy: the keys one partition holds (it may lag the "
                                    "masters). <a href=\"") ||
         put_list_url(b, l, !l->canonical, NULL, 0) ||
         buf_puts(b, l->canonical ? "\">The lazy list</a></p>\n" : "\">The canonical list</a></p>\n");
    /* the filter: a GET form whose field names are the list's parameters */
    rc = rc || buf_printf(b, "<form method=\"get\" action=\"%s\"><label for=\"prefix\">Prefix"
                             "</label><input type=\"search\" id=\"prefix\" name=\"prefix\" "
                             "value=\"", family(l->canonical)) ||
         (l->prefix && attr_text(b, l->prefix, l->prefix_len)) || buf_puts(b, "\">") ||
         (l->limit != l->limit_default &&
          buf_printf(b, "<input type=\"hidden\" name=\"limit\" value=\"%d\">", l->limit)) ||
         (l->values && buf_puts(b, "<input type=\"hidden\" name=\"values\" value=\"1\">")) ||
         buf_puts(b, "<button type=\"submit\">List</button></form>\n");
    rc = rc || buf_printf(b, "<p>%zu key%s", l->count, l->count == 1 ? "" : "s") ||
         (l->start_after && (buf_puts(b, " after <code>") ||
                             html_text(b, l->start_after, l->start_after_len, 0) ||
                             buf_puts(b, "</code>"))) ||
         buf_puts(b, l->count ? ":</p>\n<ul class=\"keys\">\n" : ".</p>\n");
    return rc ? -1 : 0;
}

int html_list_key(struct buf *b, const struct html_list *l, const char *key, size_t len,
                  const struct html_entry *e)
{
    int rc = buf_puts(b, "<li><a href=\"") || put_key_url(b, l->canonical, key, len) ||
             buf_puts(b, "\">") || html_text(b, key, len, 0) || buf_puts(b, "</a>");
    if (e != NULL)
        rc = rc || buf_puts(b, " <small>") || put_size(b, e->size) || buf_puts(b, ", ") ||
             put_text(b, e->ctype) ||
             buf_printf(b, ", version %" PRIu64 "</small>", e->version);
    return rc || buf_puts(b, "</li>\n") ? -1 : 0;
}

int html_list_close(struct buf *b, const struct html_list *l)
{
    int rc = l->count && buf_puts(b, "</ul>\n");
    if (l->next)
        rc = rc || buf_puts(b, "<p><a rel=\"next\" href=\"") ||
             put_list_url(b, l, l->canonical, l->next, l->next_len) ||
             buf_puts(b, "\">Next page</a></p>\n");
    if (l->start_after)
        rc = rc || buf_puts(b, "<p><a href=\"") || put_list_url(b, l, l->canonical, NULL, 0) ||
             buf_puts(b, "\">First page</a></p>\n");
    return rc || html_page_close(b) ? -1 : 0;
}

/* ---- one key ------------------------------------------------------------- */

/* 1 when the media type (parameters ignored) is text of some kind:
 * text/ *, a +json, +xml or +yaml type, or one of app[] under application/. */
static int textual_type(const char *ctype)
{
    static const char *const app[] = {"json", "xml", "javascript", "ecmascript", "yaml",
                                      "x-yaml", "toml", "x-sh", "sql", "x-www-form-urlencoded",
                                      "octet-stream"};
    static const char *const suffix[] = {"+json", "+xml", "+yaml"};
    size_t n = strcspn(ctype, "; \t");
    const char *slash = memchr(ctype, '/', n);
    if (slash == NULL)
        return 0;
    size_t tn = (size_t)(slash - ctype), sn = n - tn - 1;
    const char *sub = slash + 1;
    if (tn == 4 && strncasecmp(ctype, "text", 4) == 0)
        return sn > 0;
    for (size_t i = 0; i < sizeof(suffix) / sizeof(suffix[0]); i++) {
        size_t k = strlen(suffix[i]);
        if (sn > k && strncasecmp(sub + sn - k, suffix[i], k) == 0)
            return 1;
    }
    if (tn != 11 || strncasecmp(ctype, "application", 11) != 0)
        return 0;
    for (size_t i = 0; i < sizeof(app) / sizeof(app[0]); i++)
        if (strlen(app[i]) == sn && strncasecmp(sub, app[i], sn) == 0)
            return 1;
    return 0;
}

int html_value_is_text(const char *ctype, const char *value, size_t len)
{
    if (!textual_type(ctype))
        return 0;
    const unsigned char *p = (const unsigned char *)value;
    size_t i = 0;
    while (i < len) {
        unsigned cp;
        size_t n = utf8_next(p + i, len - i, &cp);
        if (n == 0 || !carriable(cp, 1))
            return 0;
        i += n;
    }
    return 1;
}

/* "<dt>name</dt><dd>" before a field's value, "</dd>" after it. */
static int dt(struct buf *b, const char *name)
{
    return buf_printf(b, "<dt>%s</dt><dd>", name);
}

static int key_meta(struct buf *b, const struct html_key *k)
{
    return buf_puts(b, "<dl>") ||
                   dt(b, "Version (index)") ||
                   buf_printf(b, "%" PRIu64 "</dd>", k->version) || dt(b, "ETag") ||
                   buf_puts(b, "<code>") || put_text(b, k->etag) ||
                   buf_puts(b, "</code></dd>") || dt(b, "Last modified") ||
                   put_text(b, k->last_modified) || buf_puts(b, "</dd>") ||
                   dt(b, "Content-Type") || buf_puts(b, "<code>") || put_text(b, k->ctype) ||
                   buf_puts(b, "</code></dd>") || dt(b, "Size") || put_size(b, k->value_len) ||
                   buf_puts(b, "</dd>") || dt(b, "Expires") ||
                   put_text(b, k->expires ? k->expires : "never") || buf_puts(b, "</dd>") ||
                   dt(b, "Partition") ||
                   (k->partition >= 0 ? buf_printf(b, "%d", k->partition)
                                      : buf_puts(b, "unknown")) ||
                   buf_puts(b, k->canonical ? " (the key&#39;s master)</dd>"
                                            : " (a lazy read: any partition)</dd>") ||
                   buf_puts(b, "</dl>\n")
               ? -1
               : 0;
}

/* Links to the list the key is in (its prefix up to the last '/') and to
 * the key read the other way (lazy, canonical). */
static int key_links(struct buf *b, const struct html_key *k)
{
    size_t dir = k->key_len;
    while (dir > 0 && k->key[dir - 1] != '/')
        dir--;
    struct html_list up = {.canonical = k->canonical, .prefix = k->key, .prefix_len = dir};
    return buf_puts(b, "<p><a href=\"") || put_list_url(b, &up, k->canonical, NULL, 0) ||
                   buf_puts(b, "\">Keys under <code>") ||
                   html_text(b, family(k->canonical), strlen(family(k->canonical)), 0) ||
                   html_text(b, k->key, dir, 0) || buf_puts(b, "</code></a> &middot; <a href=\"") ||
                   put_key_url(b, !k->canonical, k->key, k->key_len) ||
                   buf_puts(b, k->canonical ? "\">Read it lazily</a></p>\n"
                                            : "\">Read it at its master</a></p>\n")
               ? -1
               : 0;
}

/* The link to the raw value: the key's URL with ?raw=1, downloaded under
 * the key's last segment as its file name. */
static int raw_link(struct buf *b, const struct html_key *k, const char *text)
{
    size_t base = k->key_len;
    while (base > 0 && k->key[base - 1] != '/')
        base--;
    const char *name = base < k->key_len ? k->key + base : "value";
    size_t name_len = base < k->key_len ? k->key_len - base : 5;
    return buf_puts(b, "<a href=\"") || put_key_url(b, k->canonical, k->key, k->key_len) ||
                   buf_puts(b, "?raw=1\" download=\"") || attr_text(b, name, name_len) ||
                   buf_puts(b, "\">") || buf_puts(b, text) || buf_puts(b, "</a>")
               ? -1
               : 0;
}

/* The value: text in a <pre> (cut at a character boundary past
 * HTML_VALUE_SHOWN_MAX), else a download link. */
static int key_value(struct buf *b, const struct html_key *k)
{
    const char *v = k->value ? k->value : "";
    if (buf_puts(b, "<h2>Value</h2>\n") != 0)
        return -1;
    if (k->value == NULL && k->value_len > 0) /* chunked (chunks.h): not read */
        return buf_puts(b, "<p>Not shown: over one chunk (1 MiB). ") ||
                       raw_link(b, k, "Download the value") || buf_puts(b, "</p>\n")
                   ? -1
                   : 0;
    if (!html_value_is_text(k->ctype, v, k->value_len))
        return buf_puts(b, "<p>Not shown: not text. ") ||
                       raw_link(b, k, "Download the value") || buf_puts(b, "</p>\n")
                   ? -1
                   : 0;
    size_t shown = k->value_len;
    if (shown > HTML_VALUE_SHOWN_MAX) {
        shown = HTML_VALUE_SHOWN_MAX;
        while (shown > 0 && ((unsigned char)v[shown] & 0xC0) == 0x80)
            shown--;
    }
    int rc = buf_puts(b, "<pre>") || html_text(b, v, shown, 1) || buf_puts(b, "</pre>\n");
    if (shown < k->value_len)
        rc = rc || buf_printf(b, "<p>The first %zu bytes are shown.</p>\n", shown);
    return rc || buf_puts(b, "<p>") || raw_link(b, k, "Download the value") ||
                   buf_puts(b, "</p>\n")
               ? -1
               : 0;
}

char *html_key_page(const struct html_key *k, size_t *len)
{
    struct buf b = BUF_INIT;
    if (html_page_open(&b, k->key, k->key_len) || key_links(&b, k) || key_meta(&b, k) ||
        key_value(&b, k) || html_page_close(&b)) {
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b, len);
}

/* ---- /health ------------------------------------------------------------- */

/* Labels of the health document's fields; others show their own name. */
static const struct {
    const char *name, *label;
} labels[] = {
    {"status", "Status"},           {"mode", "Mode"},
    {"auth", "Authentication"},     {"reachable", "Reachable"},
    {"partitions", "Partitions"},   {"index", "#"},
    {"database", "Database"},       {"address", "Address"},
    {"pending_rows", "Pending rows"}, {"last_pass_end", "Last pass ended"},
    {"exit_code", "Exit code"},     {"rows", "Rows copied"},
    {"lag_seconds", "Lag (seconds)"},
};

static int put_label(struct buf *b, const char *name)
{
    for (size_t i = 0; i < sizeof(labels) / sizeof(labels[0]); i++)
        if (strcmp(labels[i].name, name) == 0)
            return buf_puts(b, labels[i].label);
    return put_text(b, name);
}

/* The class a field's value is shown with: "ok" for true and the status
 * "ok", "bad" for false, another status and a nonzero exit code; else none. */
static const char *value_class(const char *name, const json_t *v)
{
    if (strcmp(name, "status") == 0 && json_is_string(v))
        return strcmp(json_string_value(v), "ok") == 0 ? "ok" : "bad";
    if (json_is_boolean(v))
        return json_is_true(v) ? "ok" : "bad";
    if (strcmp(name, "exit_code") == 0 && json_is_integer(v) && json_integer_value(v) != 0)
        return "bad";
    return NULL;
}

/* A field's value as text: strings escaped, numbers, yes/no, "-" for null,
 * anything else as compact JSON. */
static int put_value(struct buf *b, const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_STRING:
        return html_text(b, json_string_value(v), json_string_length(v), 0);
    case JSON_INTEGER:
        return buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    case JSON_REAL:
        return buf_printf(b, "%g", json_real_value(v));
    case JSON_TRUE:
        return buf_puts(b, "yes");
    case JSON_FALSE:
        return buf_puts(b, "no");
    case JSON_NULL:
        return buf_puts(b, "-");
    default: {
        char *s = json_dumps(v, JSON_COMPACT | JSON_PRESERVE_ORDER);
        int rc = s == NULL || put_text(b, s);
        free(s);
        return rc ? -1 : 0;
    }
    }
}

/* "<tag class=...>value</tag>" for one field. */
static int put_cell(struct buf *b, const char *tag, const char *name, const json_t *v)
{
    const char *cls = v ? value_class(name, v) : NULL;
    return buf_printf(b, "<%s", tag) || (cls && buf_printf(b, " class=\"%s\"", cls)) ||
                   buf_puts(b, ">") || (v && put_value(b, v)) || buf_printf(b, "</%s>", tag)
               ? -1
               : 0;
}

/* The scalar fields of an object (objects and arrays skipped) as a <dl>. */
static int fields_dl(struct buf *b, const json_t *obj)
{
    const char *k;
    json_t *v;
    if (buf_puts(b, "<dl>") != 0)
        return -1;
    json_object_foreach((json_t *)obj, k, v) {
        if (json_is_object(v) || json_is_array(v))
            continue;
        if (buf_puts(b, "<dt>") || put_label(b, k) || buf_puts(b, "</dt>") ||
            put_cell(b, "dd", k, v))
            return -1;
    }
    return buf_puts(b, "</dl>\n");
}

/* The fields any partition object has, in the order first seen, as the
 * keys of a new object (caller decrefs); NULL when out of memory. */
static json_t *columns_of(const json_t *parts)
{
    json_t *cols = json_object();
    size_t i;
    json_t *p;
    json_array_foreach(parts, i, p) {
        const char *k;
        json_t *v;
        json_object_foreach(p, k, v) {
            if (cols && json_object_get(cols, k) == NULL &&
                json_object_set_new(cols, k, json_null()) != 0) {
                json_decref(cols);
                cols = NULL;
            }
        }
    }
    return cols;
}

/* The "partition" array as a table: a row per partition. */
static int partitions_table(struct buf *b, const json_t *parts)
{
    json_t *cols = columns_of(parts);
    const char *k;
    json_t *unused, *p;
    size_t i;
    int rc = cols == NULL ||
             buf_puts(b, "<h2>Partitions</h2>\n<div class=\"tbl\"><table><thead><tr>");
    json_object_foreach(cols, k, unused) {
        rc = rc || buf_puts(b, "<th scope=\"col\">") || put_label(b, k) || buf_puts(b, "</th>");
    }
    rc = rc || buf_puts(b, "</tr></thead><tbody>\n");
    json_array_foreach(parts, i, p) {
        rc = rc || buf_puts(b, "<tr>");
        json_object_foreach(cols, k, unused) {
            rc = rc || put_cell(b, "td", k, json_is_object(p) ? json_object_get(p, k) : NULL);
        }
        rc = rc || buf_puts(b, "</tr>\n");
    }
    json_decref(cols);
    return rc || buf_puts(b, "</tbody></table></div>\n") ? -1 : 0;
}

static int sync_section(struct buf *b, const json_t *sync)
{
    if (buf_puts(b, "<h2>Sync: the last pass</h2>\n") != 0)
        return -1;
    if (!json_is_object(sync))
        return buf_puts(b, "<p>No pass recorded.</p>\n");
    return fields_dl(b, sync);
}

char *html_health_page(const json_t *doc, size_t *len)
{
    struct buf b = BUF_INIT;
    const json_t *parts = json_object_get(doc, "partition");
    const json_t *sync = json_object_get(doc, "sync");
    int rc = html_page_open(&b, "Health", 6) || fields_dl(&b, doc) ||
             (json_is_array(parts) && partitions_table(&b, parts)) ||
             (sync && sync_section(&b, sync)) || html_page_close(&b);
    if (rc) {
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b, len);
}
