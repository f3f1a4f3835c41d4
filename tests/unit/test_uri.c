/* uri: routes, key decoding, list parameters, key checks. */
#include <check.h>
#include <string.h>

#include "uri.h"

START_TEST(routes)
{
    struct uri u;
    ck_assert_int_eq(uri_parse("/bucket/a%2Fb/c", &u), LKV_OK);
    ck_assert_int_eq(u.route, ROUTE_KEY);
    ck_assert_int_eq(u.canonical, 0);
    ck_assert_uint_eq(u.key_len, 5);
    ck_assert_mem_eq(u.key, "a/b/c", 5);
    uri_free(&u);
    ck_assert_int_eq(uri_parse("/canonicalbucket/k?ignored=1", &u), LKV_OK);
    ck_assert_int_eq(u.route, ROUTE_KEY);
    ck_assert_int_eq(u.canonical, 1);
    ck_assert_str_eq(u.key, "k");
    uri_free(&u);
    const char *lists[] = {"/bucket/", "/bucket", "/canonicalbucket/", "/bucket/?"};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(uri_parse(lists[i], &u), LKV_OK);
        ck_assert_int_eq(u.route, ROUTE_LIST);
        uri_free(&u);
    }
    const char *missing[] = {"/", "/buckets/x", "/bucketx", "/healthz", "", "bucket/x"};
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(uri_parse(missing[i], &u), LKV_OK);
        ck_assert_int_eq(u.route, ROUTE_NOT_FOUND);
        uri_free(&u);
    }
    ck_assert_int_eq(uri_parse("/health", &u), LKV_OK);
    ck_assert_int_eq(u.route, ROUTE_HEALTH);
    uri_free(&u);
    ck_assert_int_eq(uri_parse("/metrics?x", &u), LKV_OK);
    ck_assert_int_eq(u.route, ROUTE_METRICS);
    uri_free(&u);
}
END_TEST

START_TEST(key_keeps_plus_and_nul)
{
    struct uri u;
    ck_assert_int_eq(uri_parse("/bucket/a+b%00c", &u), LKV_OK);
    ck_assert_uint_eq(u.key_len, 5);
    ck_assert_mem_eq(u.key, "a+b\0c", 5);
    uri_free(&u);
    ck_assert_int_eq(uri_parse("/bucket/a%zz", &u), LKV_EBADREQ);
    ck_assert_ptr_nonnull(u.error);
    uri_free(&u);
}
END_TEST

START_TEST(list_parameters)
{
    struct uri u;
    ck_assert_int_eq(uri_parse("/bucket/?prefix=a+b%2F&start_after=x&limit=5&encoding=url", &u),
                     LKV_OK);
    ck_assert_str_eq(u.prefix, "a b/");
    ck_assert_str_eq(u.start_after, "x");
    ck_assert_int_eq(u.limit, 5);
    ck_assert_int_eq(u.url_encoding, 1);
    uri_free(&u);
    ck_assert_int_eq(uri_parse("/bucket/", &u), LKV_OK);
    ck_assert_int_eq(u.limit, URI_LIMIT_DEFAULT);
    ck_assert_ptr_null(u.prefix);
    uri_free(&u);
    const char *bad[] = {"/bucket/?limit=0", "/bucket/?limit=10001", "/bucket/?limit=1x",
                         "/bucket/?limit=", "/bucket/?prefix=%g0", "/bucket/?encoding=b64"};
    for (int i = 0; i < 6; i++) {
        ck_assert_int_eq(uri_parse(bad[i], &u), LKV_EBADREQ);
        uri_free(&u);
    }
}
END_TEST

START_TEST(key_and_watch_parameters)
{
    struct uri u;
    ck_assert_int_eq(uri_parse("/bucket/k?ttl=315360000&refresh=1&index=42&wait=600", &u), LKV_OK);
    ck_assert_int_eq(u.ttl, 315360000);
    ck_assert_int_eq(u.refresh, 1);
    ck_assert_str_eq(u.index, "42");
    ck_assert_int_eq(u.wait, 600);
    ck_assert_int_eq(u.has_wait, 1);
    ck_assert_int_eq(u.raw, 0);
    uri_free(&u);
    ck_assert_int_eq(uri_parse("/bucket/k?raw=1", &u), LKV_OK);
    ck_assert_int_eq(u.raw, 1);
    uri_free(&u);
    ck_assert_int_eq(uri_parse("/bucket/k", &u), LKV_OK);
    ck_assert_int_eq(u.ttl, 0);
    ck_assert_int_eq(u.wait, URI_WAIT_DEFAULT);
    ck_assert_int_eq(u.has_wait, 0);
    ck_assert_ptr_null(u.index);
    uri_free(&u);
    /* each route reads its own parameters and ignores the others' */
    ck_assert_int_eq(uri_parse("/bucket/k?limit=x&values=x&prefix=%zz&%zz=1", &u), LKV_OK);
    uri_free(&u);
    ck_assert_int_eq(uri_parse("/bucket/?ttl=x&refresh=x&raw=x&values=1", &u), LKV_OK);
    ck_assert_int_eq(u.values, 1);
    uri_free(&u);
    const char *bad[] = {"/bucket/k?ttl=", "/bucket/k?ttl=0", "/bucket/k?ttl=1.5",
                         "/bucket/k?ttl=2s", "/bucket/k?ttl=-1", "/bucket/k?ttl=315360001",
                         "/bucket/k?ttl=%2B5", "/bucket/k?refresh=2", "/bucket/k?raw=yes", "/bucket/k?wait=0",
                         "/bucket/k?wait=601", "/bucket/?wait=", "/bucket/?values=2",
                         "/bucket/?values="};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(uri_parse(bad[i], &u) == LKV_EBADREQ, "%s", bad[i]);
        ck_assert_ptr_nonnull(u.error);
        uri_free(&u);
    }
}
END_TEST

START_TEST(content_addressed_parameter)
{
    struct uri u;
    ck_assert_int_eq(uri_parse("/bucket/?key=sha256", &u), LKV_OK);
    ck_assert_int_eq(u.route, ROUTE_LIST);
    ck_assert_int_eq(u.key_param, 1);
    ck_assert_int_eq(u.key_sha256, 1);
    ck_assert_ptr_null(u.key);
    uri_free(&u);
    ck_assert_int_eq(uri_parse("/canonicalbucket?key=sha%32%356", &u), LKV_OK);
    ck_assert_int_eq(u.canonical, 1);
    ck_assert_int_eq(u.key_sha256, 1);
    uri_free(&u);
    /* read on a key path too, for handlers.c to refuse */
    ck_assert_int_eq(uri_parse("/bucket/k?key=sha256", &u), LKV_OK);
    ck_assert_int_eq(u.route, ROUTE_KEY);
    ck_assert_int_eq(u.key_param, 1);
    ck_assert_int_eq(u.key_sha256, 1);
    uri_free(&u);
    ck_assert_int_eq(uri_parse("/bucket/", &u), LKV_OK);
    ck_assert_int_eq(u.key_param, 0);
    ck_assert_int_eq(u.key_sha256, 0);
    uri_free(&u);
    const char *bad[] = {"/bucket/?key=", "/bucket/?key=SHA256", "/bucket/?key=sha-256",
                         "/bucket/?key=sha512", "/bucket/?key", "/bucket/k?key=md5",
                         "/bucket/?key=sha256%00", "/bucket/?key=sha256&key=x"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ck_assert_msg(uri_parse(bad[i], &u) == LKV_EBADREQ, "%s", bad[i]);
        ck_assert_ptr_nonnull(u.error);
        uri_free(&u);
    }
}
END_TEST

START_TEST(key_checks)
{
    const char *why;
    ck_assert_int_eq(uri_check_key("abc", 3, 3, 0, &why), LKV_OK);
    ck_assert_int_eq(uri_check_key("abcd", 4, 3, 0, &why), LKV_EBADREQ);
    ck_assert_int_eq(uri_check_key("abcd", 4, 3, 1, &why), LKV_ENOTFOUND);
    ck_assert_int_eq(uri_check_key("", 0, 3, 1, &why), LKV_EBADREQ);
    ck_assert_int_eq(uri_check_key("a\0b", 3, 9, 1, &why), LKV_EBADREQ);
    ck_assert_int_eq(uri_check_key("a/../b", 6, 9, 0, &why), LKV_EBADREQ);
    ck_assert_int_eq(uri_check_key("..", 2, 9, 0, &why), LKV_EBADREQ);
    ck_assert_int_eq(uri_check_key("a/.", 3, 9, 0, &why), LKV_EBADREQ);
    ck_assert_int_eq(uri_check_key("a/..b/.c", 8, 9, 0, &why), LKV_OK);
    ck_assert_int_eq(uri_check_key("a//b/", 5, 9, 0, &why), LKV_OK);
}
END_TEST

Suite *uri_suite(void)
{
    Suite *s = suite_create("uri");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, routes);
    tcase_add_test(tc, key_keeps_plus_and_nul);
    tcase_add_test(tc, list_parameters);
    tcase_add_test(tc, key_checks);
    tcase_add_test(tc, content_addressed_parameter);
    tcase_add_test(tc, key_and_watch_parameters);
    suite_add_tcase(s, tc);
    return s;
}
