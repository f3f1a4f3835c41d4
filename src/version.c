/*
 * version.c -- versions, ETags and dates. See version.h.
 */
#include "version.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

uint64_t version_now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

void version_etag(uint64_t v, char out[VERSION_ETAG_LEN])
{
    snprintf(out, VERSION_ETAG_LEN, "\"%016" PRIx64 "\"", v);
}

void version_http_date(uint64_t v, char out[VERSION_DATE_LEN])
{
    time_t t = (time_t)(v / 1000000u);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, VERSION_DATE_LEN, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

static const char *skip_ows(const char *p)
{
    while (*p == ' ' || *p == '\t')
        p++;
    return p;
}

int version_etag_list_match(const char *header, uint64_t v, int weak_ok, int *star)
{
    char want[VERSION_ETAG_LEN];
    version_etag(v, want);
    *star = 0;
    const char *p = skip_ows(header);
    if (*p == '*' && *skip_ows(p + 1) == '\0') {
        *star = 1;
        return 0;
    }
    int matched = 0, any = 0;
    while (*p) {
        int weak = 0;
        if (p[0] == 'W' && p[1] == '/') {
            weak = 1;
            p += 2;
        }
        if (*p != '"')
            return -1;
        const char *end = strchr(p + 1, '"');
        if (end == NULL)
            return -1;
        size_t len = (size_t)(end - p + 1);
        if ((!weak || weak_ok) && len == VERSION_ETAG_LEN - 1 && memcmp(p, want, len) == 0)
            matched = 1;
        any = 1;
        p = skip_ows(end + 1);
        if (*p == ',')
            p = skip_ows(p + 1);
        else if (*p != '\0')
            return -1;
    }
    return any ? matched : -1;
}
