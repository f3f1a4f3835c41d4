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

START_TEST(document_possible_is_never_wrong)
{
    /* No Accept, or one under which the raw value never loses a tie: no
     * value read for a HEAD. */
    ck_assert_int_eq(negotiate_document_possible(NULL), 0);
    ck_assert_int_eq(negotiate_document_possible(" "), 0);
    ck_assert_int_eq(negotiate_document_possible("*/*"), 0);
    ck_assert_int_eq(negotiate_document_possible("image/png, */*;q=0.5"), 0);
    ck_assert_int_eq(negotiate_document_possible("image/png;q=0.4, */*;q=0.5"), 1);
    ck_assert_int_eq(negotiate_document_possible("image/*"), 0);
    ck_assert_int_eq(negotiate_document_possible("application/json"), 1);
    ck_assert_int_eq(negotiate_document_possible("text/xml"), 1);
    /* The property, over a grid: when it says 0, no stored type gets a
     * document. */
    static const char *const accepts[] = {
        "*/*", "*/*;q=0.9, text/*;q=0.1", "text/*", "application/*", "text/plain",
        "application/json;q=0.5, */*", "*/*;q=0, application/json", "image/*, */*;q=0.1",
        "text/html, application/xhtml+xml, */*;q=0.8", "application/json, */*;q=1",
        "audio/ogg", "*/*;q=0.5, application/octet-stream", "text/plain;q=0, */*",
    };
    static const char *const types[] = {
        "text/plain", "text/css", "application/json", "application/octet-stream",
        "image/png", "application/xml; charset=utf-8", "text/html", "nonsense",
    };
    for (size_t a = 0; a < sizeof(accepts) / sizeof(accepts[0]); a++) {
        if (negotiate_document_possible(accepts[a]))
            continue;
        for (size_t t = 0; t < sizeof(types) / sizeof(types[0]); t++) {
            enum media m = negotiate_media(accepts[a], types[t]);
            ck_assert_msg(m == MEDIA_RAW || m == MEDIA_NONE, "%s with %s gave %d", accepts[a],
                          types[t], (int)m);
        }
    }
}
END_TEST

Suite *negotiate_suite(void)
{
    Suite *s = suite_create("negotiate");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, explicit_formats);
    tcase_add_test(tc, q_values_and_specificity);
    tcase_add_test(tc, document_possible_is_never_wrong);
    suite_add_tcase(s, tc);
    return s;
}
