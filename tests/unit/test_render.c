/* render: the same document in every format, escaped. */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "render.h"

static char *render(enum media m)
{
    json_t *doc = json_pack("{s:s, s:i, s:b, s:[s,s]}", "detail", "<&\">", "status", 404,
                            "ok", 0, "keys", "a<b", "c");
    size_t len;
    char *out = render_doc(doc, m, "problem", &len);
    json_decref(doc);
    ck_assert_ptr_nonnull(out);
    ck_assert_uint_eq(strlen(out), len);
    return out;
}

START_TEST(json)
{
    char *s = render(MEDIA_JSON);
    ck_assert_str_eq(s, "{\"detail\":\"<&\\\">\",\"status\":404,\"ok\":false,\"keys\":[\"a<b\",\"c\"]}\n");
    free(s);
}
END_TEST

START_TEST(xml)
{
    char *s = render(MEDIA_XML);
    ck_assert_str_eq(s, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<problem><detail>&lt;&amp;"
                        "&quot;&gt;</detail><status>404</status><ok>false</ok><keys><key>a&lt;b"
                        "</key><key>c</key></keys></problem>\n");
    free(s);
}
END_TEST

START_TEST(html)
{
    char *s = render(MEDIA_HTML);
    ck_assert_ptr_nonnull(strstr(s, "<dt>detail</dt><dd><pre>&lt;&amp;&quot;&gt;</pre></dd>"));
    ck_assert_ptr_nonnull(strstr(s, "<ul><li><pre>a&lt;b</pre></li><li><pre>c</pre></li></ul>"));
    ck_assert_ptr_null(strstr(s, "<&"));
    free(s);
}
END_TEST

START_TEST(text)
{
    char *s = render(MEDIA_TEXT);
    ck_assert_str_eq(s, "detail: <&\">\nstatus: 404\nok: false\nkeys:\n  a<b\n  c\n");
    free(s);
}
END_TEST

Suite *render_suite(void)
{
    Suite *s = suite_create("render");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, json);
    tcase_add_test(tc, xml);
    tcase_add_test(tc, html);
    tcase_add_test(tc, text);
    suite_add_tcase(s, tc);
    return s;
}
