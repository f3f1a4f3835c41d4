/*
 * codec.c -- percent-encoding, base64, UTF-8 validation, markup escaping.
 * See codec.h.
 */
#include "codec.h"

#include <string.h>

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

ssize_t codec_pct_decode(const char *in, size_t len, char *out, int plus_is_space)
{
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        if (c == '%') {
            if (i + 2 >= len)
                return -1;
            int hi = hex_value((unsigned char)in[i + 1]);
            int lo = hex_value((unsigned char)in[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            out[o++] = (char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            out[o++] = ' ';
        } else {
            out[o++] = (char)c;
        }
    }
    return (ssize_t)o;
}

static int is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' || c == '~';
}

int codec_pct_encode(struct buf *out, const void *in, size_t len, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = in;
    if (buf_reserve(out, len * 3) != 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (is_unreserved(p[i]) || (keep_slash && p[i] == '/')) {
            out->data[out->len++] = (char)p[i];
        } else {
            out->data[out->len++] = '%';
            out->data[out->len++] = hex[p[i] >> 4];
            out->data[out->len++] = hex[p[i] & 15];
        }
    }
    out->data[out->len] = '\0';
    return 0;
}

int codec_base64_encode(struct buf *out, const void *in, size_t len)
{
    static const char alphabet[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const unsigned char *p = in;
    size_t outlen = (len + 2) / 3 * 4;
    if (buf_reserve(out, outlen) != 0)
        return -1;
    char *o = out->data + out->len;
    size_t i = 0;
    for (; i + 3 <= len; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        *o++ = alphabet[v >> 18];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = alphabet[(v >> 6) & 63];
        *o++ = alphabet[v & 63];
    }
    if (i < len) {
        unsigned v = (unsigned)p[i] << 16;
        if (i + 1 < len)
            v |= (unsigned)p[i + 1] << 8;
        *o++ = alphabet[v >> 18];
        *o++ = alphabet[(v >> 12) & 63];
        *o++ = i + 1 < len ? alphabet[(v >> 6) & 63] : '=';
        *o++ = '=';
    }
    out->len += outlen;
    out->data[out->len] = '\0';
    return 0;
}

int codec_utf8_valid(const void *in, size_t len)
{
    const unsigned char *p = in;
    size_t i = 0;
    while (i < len) {
        unsigned char c = p[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t n;
        unsigned cp;
        if (c >= 0xC2 && c <= 0xDF) {
            n = 1;
            cp = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            n = 2;
            cp = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return 0;
        }
        if (len - i <= n)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((p[i + k] & 0xC0) != 0x80)
                return 0;
            cp = cp << 6 | (p[i + k] & 0x3F);
        }
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) || cp > 0x10FFFF ||
            (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

int codec_escape_markup(struct buf *out, const char *in, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)in[i];
        const char *rep = NULL;
        switch (c) {
        case '&': rep = "&amp;"; break;
        case '<': rep = "&lt;"; break;
        case '>': rep = "&gt;"; break;
        case '"': rep = "&quot;"; break;
        case '\'': rep = "&#39;"; break;
        default:
            if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
                rep = "\xEF\xBF\xBD";
        }
        int rc = rep ? buf_puts(out, rep) : buf_append(out, &in[i], 1);
        if (rc != 0)
            return -1;
    }
    return 0;
}
