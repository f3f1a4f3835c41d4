/* version: ETags, If-Match lists, dates. */
#include <check.h>

#include "version.h"

START_TEST(etag_format)
{
    char e[VERSION_ETAG_LEN];
    version_etag(0x660d588269d62ULL, e);
    ck_assert_str_eq(e, "\"000660d588269d62\"");
}
END_TEST

START_TEST(etag_lists)
{
    int star;
    uint64_t v = 0x10;
    ck_assert_int_eq(version_etag_list_match("\"0000000000000010\"", v, 0, &star), 1);
    ck_assert_int_eq(version_etag_list_match("\"0000000000000011\"", v, 0, &star), 0);
    ck_assert_int_eq(version_etag_list_match("\"a\", \"0000000000000010\"", v, 0, &star), 1);
    ck_assert_int_eq(version_etag_list_match("W/\"0000000000000010\"", v, 0, &star), 0);
    ck_assert_int_eq(version_etag_list_match("W/\"0000000000000010\"", v, 1, &star), 1);
    ck_assert_int_eq(version_etag_list_match(" * ", v, 0, &star), 0);
    ck_assert_int_eq(star, 1);
    ck_assert_int_eq(version_etag_list_match("0000000000000010", v, 0, &star), -1);
    ck_assert_int_eq(star, 0);
    ck_assert_int_eq(version_etag_list_match("\"unterminated", v, 0, &star), -1);
    ck_assert_int_eq(version_etag_list_match("\"a\" \"b\"", v, 0, &star), -1);
    ck_assert_int_eq(version_etag_list_match("", v, 0, &star), -1);
}
END_TEST

START_TEST(http_date)
{
    char d[VERSION_DATE_LEN];
    version_http_date(784111777ULL * 1000000ULL + 123, d);
    ck_assert_str_eq(d, "Sun, 06 Nov 1994 08:49:37 GMT");
    version_http_date(0, d);
    ck_assert_str_eq(d, "Thu, 01 Jan 1970 00:00:00 GMT");
    version_http_date(951782400ULL * 1000000ULL, d); /* a leap day */
    ck_assert_str_eq(d, "Tue, 29 Feb 2000 00:00:00 GMT");
    version_http_date(4102444799ULL * 1000000ULL, d); /* 2100 is not a leap year */
    ck_assert_str_eq(d, "Thu, 31 Dec 2099 23:59:59 GMT");
    version_http_date(4107542400ULL * 1000000ULL, d);
    ck_assert_str_eq(d, "Mon, 01 Mar 2100 00:00:00 GMT");
}
END_TEST

START_TEST(rfc3339)
{
    char d[VERSION_DATE_LEN];
    version_rfc3339(784111777ULL * 1000000ULL + 123999, d);
    ck_assert_str_eq(d, "1994-11-06T08:49:37.123Z");
    version_rfc3339(951782400ULL * 1000000ULL + 999, d); /* below a millisecond */
    ck_assert_str_eq(d, "2000-02-29T00:00:00.000Z");
    version_rfc3339(4102444799ULL * 1000000ULL + 999999, d);
    ck_assert_str_eq(d, "2099-12-31T23:59:59.999Z");
}
END_TEST

Suite *version_suite(void)
{
    Suite *s = suite_create("version");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, etag_format);
    tcase_add_test(tc, etag_lists);
    tcase_add_test(tc, http_date);
    tcase_add_test(tc, rfc3339);
    suite_add_tcase(s, tc);
    return s;
}
