/* negotiate: Accept parsing, q-values, specificity. */
#include <check.h>

#include "negotiate.h"

START_TEST(defaults)
{
    ck_assert_int_eq(negotiate_media(NULL, "image/png"), MEDIA_RAW);
    ck_assert_int_eq(negotiate_media("", "image/png"), MEDIA_RAW);
    ck_assert_int_eq(negotiate_media("*/*", "image/png"), MEDIA_RAW);
    ck_assert_int_eq(negotiate_media(NULL, NULL), MEDIA_JSON);
    ck_assert_int_eq(negotiate_media("*/*", NULL), MEDIA_JSON);
}
END_TEST

START_TEST(explicit_formats)
{
    ck_assert_int_eq(negotiate_media("application/json", "image/png"), MEDIA_JSON);
    ck_assert_int_eq(negotiate_media("application/xml", "image/png"), MEDIA_XML);
    ck_assert_int_eq(negotiate_media("text/xml", NULL), MEDIA_XML);
    ck_assert_int_eq(negotiate_media("text/html", NULL), MEDIA_HTML);
    ck_assert_int_eq(negotiate_media("text/plain", "image/png"), MEDIA_TEXT);
    ck_assert_int_eq(negotiate_media("TEXT/PLAIN", "text/plain; charset=utf-8"), MEDIA_RAW);
    ck_assert_int_eq(negotiate_media("image/*", "image/png"), MEDIA_RAW);
    ck_assert_int_eq(negotiate_media("audio/ogg", "image/png"), MEDIA_NONE);
    ck_assert_int_eq(negotiate_media("audio/ogg", NULL), MEDIA_NONE);
}
END_TEST

START_TEST(q_values_and_specificity)
{
    ck_assert_int_eq(negotiate_media("image/png;q=0.5, application/json;q=0.9", "image/png"),
                     MEDIA_JSON);
    ck_assert_int_eq(negotiate_media("application/json;q=0.1, */*", "image/png"), MEDIA_RAW);
    ck_assert_int_eq(negotiate_media("*/*;q=0.1, application/json;q=0", NULL), MEDIA_XML);
    ck_assert_int_eq(negotiate_media("text/*;q=0.5, text/html", NULL), MEDIA_HTML);
    ck_assert_int_eq(negotiate_media("application/json;q=0", NULL), MEDIA_NONE);
    ck_assert_int_eq(
        negotiate_media("text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8",
                        "image/png"),
        MEDIA_HTML);
    /* malformed ranges and weights are skipped */
    ck_assert_int_eq(negotiate_media("garbage, application/json;q=2", "image/png"), MEDIA_NONE);
    ck_assert_int_eq(negotiate_media("garbage,application/xml", "image/png"), MEDIA_XML);
}
END_TEST

Suite *negotiate_suite(void)
{
    Suite *s = suite_create("negotiate");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, explicit_formats);
    tcase_add_test(tc, q_values_and_specificity);
    suite_add_tcase(s, tc);
    return s;
}
