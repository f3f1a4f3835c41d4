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

/* Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
 * civil_from_days). Done here because gmtime_r takes glibc's timezone lock,
 * which would serialise every GET on the request path. */
static void civil_from_days(int64_t z, int *y, unsigned *m, unsigned *d)
{
    z += 719468;
    int64_t era = (z >= 0 ? z : z - 146096) / 146097;
    unsigned doe = (unsigned)(z - era * 146097);
    unsigned yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t year = (int64_t)yoe + era * 400;
    unsigned doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    unsigned mp = (5 * doy + 2) / 153;
    *d = doy - (153 * mp + 2) / 5 + 1;
    *m = mp < 10 ? mp + 3 : mp - 9;
    *y = (int)(year + (*m <= 2));
}

void version_http_date(uint64_t v, char out[VERSION_DATE_LEN])
{
    static const char wday[7][4] = {"Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"};
    static const char month[12][4] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                      "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    int64_t secs = (int64_t)(v / 1000000u);
    int64_t days = secs / 86400, rem = secs % 86400;
    int y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(out, VERSION_DATE_LEN, "%s, %02u %s %04d %02d:%02d:%02d GMT", wday[days % 7], d,
             month[m - 1], y, (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60));
}

void version_rfc3339(uint64_t us, char out[VERSION_DATE_LEN])
{
    int64_t secs = (int64_t)(us / 1000000u);
    int64_t days = secs / 86400, rem = secs % 86400;
    int y;
    unsigned m, d;
    civil_from_days(days, &y, &m, &d);
    snprintf(out, VERSION_DATE_LEN, "%04d-%02u-%02uT%02d:%02d:%02d.%03uZ", y, m, d,
             (int)(rem / 3600), (int)(rem / 60 % 60), (int)(rem % 60),
             (unsigned)(us / 1000u % 1000u));
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

int version_if_match(const char *if_match, int exists, uint64_t v)
{
    if (if_match == NULL)
        return 1;
    int star;
    int m = version_etag_list_match(if_match, exists ? v : 0, 0, &star);
    if (m < 0 && !star)
        return -1;
    return exists && (star || m == 1);
}

int version_if_none_match(const char *if_none_match, int exists, uint64_t v)
{
    if (if_none_match == NULL)
        return 1;
    int star;
    int m = version_etag_list_match(if_none_match, exists ? v : 0, 1, &star);
    if (m < 0 && !star)
        return -1;
    return !(exists && (star || m == 1));
}
