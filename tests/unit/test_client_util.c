/* liblazykv's pure helpers: percent-encoding, endpoints, instants, base64. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

START_TEST(percent_encoding)
{
    struct lkvu_buf b = {0};
    ck_assert_int_eq(lkvu_pct_encode(&b, "a/b c%?#\xff~", 10, 1), 0);
    ck_assert_str_eq(b.data, "a/b%20c%25%3F%23%FF~");
    b.len = 0;
    ck_assert_int_eq(lkvu_pct_encode(&b, "a/b\0c", 5, 0), 0);
    ck_assert_str_eq(b.data, "a%2Fb%00c");
    lkvu_free(&b);
    size_t n;
    char *d = lkvu_pct_decode("a%2Fb%00c+d", 11, &n);
    ck_assert_uint_eq(n, 7);
    ck_assert_mem_eq(d, "a/b\0c+d", 7);
    free(d);
    ck_assert_ptr_null(lkvu_pct_decode("a%2", 3, &n));
    ck_assert_ptr_null(lkvu_pct_decode("a%zz", 4, &n));
}
END_TEST

START_TEST(endpoints)
{
    char **v;
    ck_assert_int_eq(lkvu_endpoints("http://h1:8080,https://h2/", &v), 2);
    ck_assert_str_eq(v[0], "http://h1:8080");
    ck_assert_str_eq(v[1], "https://h2");
    lkvu_endpoints_free(v, 2);
    const char *bad[] = {"", "h1:8080", "http://", "http://h1,", "ftp://h", "http://a b",
                         "http:///x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(lkvu_endpoints(bad[i], &v) == -1, "%s", bad[i]);
    ck_assert_int_eq(lkvu_endpoints(NULL, &v), -1);
}
END_TEST

START_TEST(instants)
{
    ck_assert(lkvu_rfc3339_ms("1970-01-01T00:00:00Z") == 0);
    ck_assert(lkvu_rfc3339_ms("1994-11-06T08:49:37.123Z") == 784111777123LL);
    ck_assert(lkvu_rfc3339_ms("2000-02-29T00:00:00.5Z") == 951782400500LL);
    ck_assert(lkvu_rfc3339_ms("2026-11-29T16:40:00.123456Z") == 1795970400123LL);
    ck_assert(lkvu_rfc3339_ms("2026-11-29 16:40:00Z") == -1);
    ck_assert(lkvu_rfc3339_ms("2026-11-29T16:40:00+01:00") == -1);
    ck_assert(lkvu_rfc3339_ms("2026-13-29T16:40:00Z") == -1);
    ck_assert(lkvu_rfc3339_ms("2026-11-29T16:40:00.Z") == -1);
}
END_TEST

START_TEST(base64)
{
    size_t n;
    unsigned char *d = lkvu_base64_decode("/wA=", 4, &n);
    ck_assert_uint_eq(n, 2);
    ck_assert(d[0] == 0xff && d[1] == 0);
    free(d);
    d = lkvu_base64_decode("aGVsbG8h", 8, &n);
    ck_assert_uint_eq(n, 6);
    ck_assert_str_eq((char *)d, "hello!");
    free(d);
    d = lkvu_base64_decode("", 0, &n);
    ck_assert_uint_eq(n, 0);
    free(d);
    const char *bad[] = {"abc", "a=bc", "ab=c", "=abc", "ab*c", "ab==abcd"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(lkvu_base64_decode(bad[i], strlen(bad[i]), &n) == NULL, "%s", bad[i]);
}
END_TEST

Suite *client_util_suite(void)
{
    Suite *s = suite_create("client util");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, percent_encoding);
    tcase_add_test(tc, endpoints);
    tcase_add_test(tc, instants);
    tcase_add_test(tc, base64);
    suite_add_tcase(s, tc);
    return s;
}
