/*
 * util.c -- liblazykv's pure helpers. See util.h.
 */
#include "util.h"

#include <stdlib.h>
#include <string.h>

int lkvu_append(struct lkvu_buf *b, const void *p, size_t n)
{
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *d = realloc(b->data, cap);
        if (d == NULL)
            return -1;
        b->data = d;
        b->cap = cap;
    }
    if (n)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int lkvu_puts(struct lkvu_buf *b, const char *s)
{
    return lkvu_append(b, s, strlen(s));
}

void lkvu_free(struct lkvu_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

static int unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '-' || c == '.' || c == '_' || c == '~';
}

int lkvu_pct_encode(struct lkvu_buf *b, const void *s, size_t n, int keep_slash)
{
    static const char hex[] = "0123456789ABCDEF";
    const unsigned char *p = s;
    for (size_t i = 0; i < n; i++) {
        char esc[3] = {'%', hex[p[i] >> 4], hex[p[i] & 15]};
        int rc = unreserved(p[i]) || (keep_slash && p[i] == '/') ? lkvu_append(b, &p[i], 1)
                                                                   : lkvu_append(b, esc, 3);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0'
           : c >= 'a' && c <= 'f' ? c - 'a' + 10
           : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                  : -1;
}

char *lkvu_pct_decode(const char *s, size_t n, size_t *out_len)
{
    char *d = malloc(n + 1);
    if (d == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] != '%') {
            d[o++] = s[i];
            continue;
        }
        if (i + 2 >= n) {
            free(d);
            return NULL;
        }
        int a = hexval(s[i + 1]), b = hexval(s[i + 2]);
        if (a < 0 || b < 0) {
            free(d);
            return NULL;
        }
        d[o++] = (char)(a << 4 | b);
        i += 2;
    }
    d[o] = '\0';
    *out_len = o;
    return d;
}

void lkvu_endpoints_free(char **v, int n)
{
    for (int i = 0; v && i < n; i++)
        free(v[i]);
    free(v);
}

/* One endpoint, s[0..n): scheme, a host, no spaces. */
static char *endpoint_dup(const char *s, size_t n)
{
    while (n > 0 && s[n - 1] == '/')
        n--;
    size_t scheme = strncmp(s, "http://", 7) == 0 ? 7 : strncmp(s, "https://", 8) == 0 ? 8 : 0;
    if (scheme == 0 || n <= scheme || memchr(s, ' ', n) || s[scheme] == '/' || s[scheme] == ':')
        return NULL;
    return strndup(s, n);
}

int lkvu_endpoints(const char *list, char ***out)
{
    if (list == NULL || *list == '\0')
        return -1;
    int n = 1;
    for (const char *p = list; *p; p++)
        n += *p == ',';
    char **v = calloc((size_t)n, sizeof(*v));
    if (v == NULL)
        return -1;
    const char *p = list;
    for (int i = 0; i < n; i++) {
        size_t len = strcspn(p, ",");
        v[i] = endpoint_dup(p, len);
        if (v[i] == NULL) {
            lkvu_endpoints_free(v, n);
            return -1;
        }
        p += len + (p[len] == ',');
    }
    *out = v;
    return n;
}

/* Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm). */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    int64_t era = (y >= 0 ? y : y - 399) / 400;
    unsigned yoe = (unsigned)(y - era * 400);
    unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

/* n digits at s as a number, or -1. */
static int digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

int64_t lkvu_rfc3339_ms(const char *s)
{
    if (s == NULL || strlen(s) < 20 || s[4] != '-' || s[7] != '-' || s[10] != 'T' ||
        s[13] != ':' || s[16] != ':')
        return -1;
    int y = digits(s, 4), mo = digits(s + 5, 2), d = digits(s + 8, 2);
    int h = digits(s + 11, 2), mi = digits(s + 14, 2), se = digits(s + 17, 2);
    if (y < 0 || mo < 1 || mo > 12 || d < 1 || d > 31 || h < 0 || h > 23 || mi < 0 || mi > 59 ||
        se < 0 || se > 60)
        return -1;
    const char *p = s + 19;
    int ms = 0;
    if (*p == '.') {
        int n = 0;
        for (p++; *p >= '0' && *p <= '9'; p++, n++)
            if (n < 3)
                ms = ms * 10 + (*p - '0');
        if (n == 0)
            return -1;
        for (; n < 3; n++)
            ms *= 10;
    }
    if (strcmp(p, "Z") != 0)
        return -1;
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    return ((days * 86400 + h * 3600 + mi * 60 + se) * 1000) + ms;
}

static int b64val(char c)
{
    return c >= 'A' && c <= 'Z' ? c - 'A'
           : c >= 'a' && c <= 'z' ? c - 'a' + 26
           : c >= '0' && c <= '9' ? c - '0' + 52
           : c == '+'             ? 62
           : c == '/'             ? 63
                                  : -1;
}

unsigned char *lkvu_base64_decode(const char *s, size_t n, size_t *out_len)
{
    if (n % 4 != 0)
        return NULL;
    unsigned char *d = malloc(n / 4 * 3 + 1);
    if (d == NULL)
        return NULL;
    size_t o = 0;
    for (size_t i = 0; i < n; i += 4) {
        int pad = (s[i + 2] == '=') + (s[i + 3] == '=');
        int v[4];
        for (int k = 0; k < 4; k++)
            v[k] = k >= 4 - pad ? 0 : b64val(s[i + k]);
        if (v[0] < 0 || v[1] < 0 || v[2] < 0 || v[3] < 0 || (pad && i + 4 != n) ||
            (pad == 1 && s[i + 2] == '=')) {
            free(d);
            return NULL;
        }
        uint32_t x = (uint32_t)v[0] << 18 | (uint32_t)v[1] << 12 | (uint32_t)v[2] << 6 | (uint32_t)v[3];
        d[o++] = (unsigned char)(x >> 16);
        if (pad < 2)
            d[o++] = (unsigned char)(x >> 8);
        if (pad < 1)
            d[o++] = (unsigned char)x;
    }
    d[o] = '\0';
    *out_len = o;
    return d;
}
