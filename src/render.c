/*
 * render.c -- JSON, XML, HTML and text renderers of a document tree.
 */
#include "render.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "codec.h"
#include "html.h"

const char *render_content_type(enum media m, int problem)
{
    if (problem && m == MEDIA_JSON)
        return "application/problem+json";
    if (problem && m == MEDIA_XML)
        return "application/problem+xml";
    return negotiate_content_type(m);
}

/* Appends a scalar's text (strings unescaped; the caller escapes). */
static int scalar_text(struct buf *b, const json_t *v, int markup)
{
    char num[32];
    switch (json_typeof(v)) {
    case JSON_STRING:
        return markup ? codec_escape_markup(b, json_string_value(v), json_string_length(v))
                      : buf_append(b, json_string_value(v), json_string_length(v));
    case JSON_INTEGER:
        snprintf(num, sizeof(num), "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf_puts(b, num);
    case JSON_REAL:
        snprintf(num, sizeof(num), "%g", json_real_value(v));
        return buf_puts(b, num);
    case JSON_TRUE:
        return buf_puts(b, "true");
    case JSON_FALSE:
        return buf_puts(b, "false");
    default:
        return 0;
    }
}

/* The element name of an array's items: "keys" -> "key", else "item". */
static void item_name(const char *array_name, char *out, size_t outlen)
{
    size_t n = strlen(array_name);
    if (n > 1 && n < outlen && array_name[n - 1] == 's') {
        memcpy(out, array_name, n - 1);
        out[n - 1] = '\0';
    } else {
        snprintf(out, outlen, "item");
    }
}

static int xml_node(struct buf *b, const char *name, const json_t *v)
{
    if (buf_printf(b, "<%s>", name) != 0)
        return -1;
    if (json_is_object(v)) {
        const char *k;
        json_t *child;
        json_object_foreach((json_t *)v, k, child) {
            if (xml_node(b, k, child) != 0)
                return -1;
        }
    } else if (json_is_array(v)) {
        char item[64];
        item_name(name, item, sizeof(item));
        size_t i;
        json_t *child;
        json_array_foreach(v, i, child) {
            if (xml_node(b, item, child) != 0)
                return -1;
        }
    } else if (scalar_text(b, v, 1) != 0) {
        return -1;
    }
    return buf_printf(b, "</%s>", name);
}

static int html_node(struct buf *b, const json_t *v)
{
    const char *k;
    json_t *child;
    size_t i;
    if (json_is_object(v)) {
        if (buf_puts(b, "<dl>") != 0)
            return -1;
        json_object_foreach((json_t *)v, k, child) {
            if (buf_puts(b, "<dt>") || codec_escape_markup(b, k, strlen(k)) ||
                buf_puts(b, "</dt><dd>") || html_node(b, child) || buf_puts(b, "</dd>"))
                return -1;
        }
        return buf_puts(b, "</dl>");
    }
    if (json_is_array(v)) {
        if (buf_puts(b, "<ul>") != 0)
            return -1;
        json_array_foreach(v, i, child) {
            if (buf_puts(b, "<li>") || html_node(b, child) || buf_puts(b, "</li>"))
                return -1;
        }
        return buf_puts(b, "</ul>");
    }
    if (json_is_string(v))
        return buf_puts(b, "<pre>") || scalar_text(b, v, 1) || buf_puts(b, "</pre>") ? -1 : 0;
    return scalar_text(b, v, 1);
}

/* Plain text: "name: value" lines; arrays one item per line, indented. */
static int text_node(struct buf *b, const json_t *v, int depth)
{
    const char *k;
    json_t *child;
    size_t i;
    if (json_is_object(v)) {
        json_object_foreach((json_t *)v, k, child) {
            if (buf_printf(b, "%*s%s:", depth * 2, "", k) != 0)
                return -1;
            if (json_is_object(child) || json_is_array(child)) {
                if (buf_puts(b, "\n") || text_node(b, child, depth + 1))
                    return -1;
            } else if (buf_puts(b, " ") || scalar_text(b, child, 0) || buf_puts(b, "\n")) {
                return -1;
            }
        }
        return 0;
    }
    json_array_foreach(v, i, child) {
        if (json_is_object(child)) {
            if (buf_printf(b, "%*s-\n", depth * 2, "") || text_node(b, child, depth + 1))
                return -1;
        } else if (buf_printf(b, "%*s", depth * 2, "") || scalar_text(b, child, 0) ||
                   buf_puts(b, "\n")) {
            return -1;
        }
    }
    return 0;
}

char *render_doc(const json_t *doc, enum media m, const char *root, size_t *len)
{
    struct buf b = BUF_INIT;
    int rc = 0;
    switch (m) {
    case MEDIA_XML:
        rc = buf_puts(&b, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n") ||
             xml_node(&b, root, doc) || buf_puts(&b, "\n");
        break;
    case MEDIA_HTML:
        /* the page frame of the browsable view (html.h) */
        rc = html_page_open(&b, root, strlen(root)) || html_node(&b, doc) ||
             buf_puts(&b, "\n") || html_page_close(&b);
        break;
    case MEDIA_TEXT:
        rc = text_node(&b, doc, 0);
        break;
    default: {
        char *s = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER);
        rc = s == NULL || buf_puts(&b, s) || buf_puts(&b, "\n");
        free(s);
        break;
    }
    }
    if (rc != 0) {
        buf_free(&b);
        return NULL;
    }
    return buf_steal(&b, len);
}

json_t *render_bytes_json(const char *p, size_t len, int markup, const char **encoding)
{
    int text = codec_utf8_valid(p, len);
    for (size_t i = 0; text && markup && i < len; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
            text = 0;
    }
    if (text) {
        *encoding = "utf-8";
        return json_stringn(p, len);
    }
    struct buf b = BUF_INIT;
    if (codec_base64_encode(&b, p, len) != 0)
        return NULL;
    *encoding = "base64";
    json_t *s = json_stringn(b.data ? b.data : "", b.len);
    buf_free(&b);
    return s;
}
