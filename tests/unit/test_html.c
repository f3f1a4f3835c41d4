/* html: the browsable view's pages, and above all their escaping. */
#include <check.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "html.h"

#define NASTY "<script>alert(1)</script>\"&'"
#define NASTY_ESCAPED "&lt;script&gt;alert(1)&lt;/script&gt;&quot;&amp;&#39;"
#define NASTY_URL "%3Cscript%3Ealert%281%29%3C/script%3E%22%26%27"

static char *text(const char *in, size_t len, int keep_space)
{
    struct buf b = BUF_INIT;
    ck_assert_int_eq(html_text(&b, in, len, keep_space), 0);
    return buf_steal(&b, NULL);
}

/* Every page: UTF-8, HTML5 with a viewport, and no script anywhere. */
static void check_page(const char *page, size_t len)
{
    ck_assert_ptr_nonnull(page);
    ck_assert_uint_eq(strlen(page), len);
    ck_assert(codec_utf8_valid(page, len));
    ck_assert(strncmp(page, "<!DOCTYPE html>\n<html lang=\"en\">", 32) == 0);
    ck_assert_ptr_nonnull(strstr(page, "<meta name=\"viewport\""));
    ck_assert_ptr_null(strcasestr(page, "<script"));
    ck_assert_ptr_nonnull(strstr(page, "</main></body></html>\n"));
}

START_TEST(text_escapes_markup)
{
    char *s = text(NASTY, strlen(NASTY), 0);
    ck_assert_str_eq(s, NASTY_ESCAPED);
    free(s);
}
END_TEST

START_TEST(text_marks_what_html_cannot_carry)
{
    /* not UTF-8 (runs grouped), C0, DEL, C1, a noncharacter; UTF-8 kept */
    static const char in[] = "a\xff\xfe" "b\x01" "c\x7f" "d\xc2\x85" "e\xef\xbf\xbe" "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80";
    char *s = text(in, sizeof(in) - 1, 0);
    ck_assert_str_eq(s, "a<mark>%FF%FE</mark>b<mark>%01</mark>c<mark>%7F</mark>d<mark>%C2%85"
                        "</mark>e<mark>%EF%BF%BE</mark>\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80");
    free(s);
    /* overlong and surrogate forms, a sequence cut short */
    s = text("\xc0\xaf\xed\xa0\x80\xe2\x82", 7, 0);
    ck_assert_str_eq(s, "<mark>%C0%AF%ED%A0%80%E2%82</mark>");
    free(s);
}
END_TEST

START_TEST(text_keeps_space_in_pre_only)
{
    char *s = text("a\tb\nc\r", 6, 1);
    ck_assert_str_eq(s, "a\tb\nc\r");
    free(s);
    s = text("a\tb\n", 4, 0);
    ck_assert_str_eq(s, "a<mark>%09</mark>b<mark>%0A</mark>");
    free(s);
}
END_TEST

static const struct html_list LIST = {
    .canonical = 0, .prefix = "p/<", .prefix_len = 3, .limit = 2, .limit_default = 1000,
    .count = 2, .next = "p/&b", .next_len = 4,
};

static char *list_page(const struct html_list *l, size_t *len)
{
    struct buf b = BUF_INIT;
    static const char key[] = "p/<" NASTY "\xff";
    struct html_entry e = {.size = 3, .ctype = "text/<x>", .version = 7};
    ck_assert_int_eq(html_list_open(&b, l), 0);
    ck_assert_int_eq(html_list_key(&b, l, key, sizeof(key) - 1, l->values ? &e : NULL), 0);
    ck_assert_int_eq(html_list_key(&b, l, "p/&b", 4, l->values ? &e : NULL), 0);
    ck_assert_int_eq(html_list_close(&b, l), 0);
    char *s = buf_steal(&b, len);
    check_page(s, *len);
    return s;
}

START_TEST(list_links_every_key_and_the_next_page)
{
    size_t len;
    char *s = list_page(&LIST, &len);
    ck_assert_ptr_nonnull(strstr(s, "<li><a href=\"/bucket/p/%3C" NASTY_URL "%FF\">p/&lt;"
                                    NASTY_ESCAPED "<mark>%FF</mark></a></li>"));
    ck_assert_ptr_nonnull(strstr(s, "<li><a href=\"/bucket/p/%26b\">p/&amp;b</a></li>"));
    ck_assert_ptr_nonnull(strstr(s, "<a rel=\"next\" href=\"/bucket/?prefix=p/%3C&amp;"
                                    "start_after=p/%26b&amp;limit=2\">"));
    ck_assert_ptr_nonnull(strstr(s, "<title>/bucket/p/&lt; - lazykv</title>"));
    ck_assert_ptr_nonnull(strstr(s, "<h1>/bucket/p/&lt;</h1>"));
    /* the first page has no link to itself */
    ck_assert_ptr_null(strstr(s, "First page"));
    free(s);
}
END_TEST

START_TEST(list_form_uses_the_list_parameters)
{
    size_t len;
    char *s = list_page(&LIST, &len);
    ck_assert_ptr_nonnull(strstr(s, "<form method=\"get\" action=\"/bucket/\">"));
    ck_assert_ptr_nonnull(strstr(s, "name=\"prefix\" value=\"p/&lt;\">"));
    ck_assert_ptr_nonnull(strstr(s, "<input type=\"hidden\" name=\"limit\" value=\"2\">"));
    ck_assert_ptr_null(strstr(s, "name=\"values\""));
    free(s);
    /* the default limit is left out; values=1 and canonical are kept */
    struct html_list l = LIST;
    l.limit = l.limit_default;
    l.values = 1;
    l.canonical = 1;
    l.start_after = "p/a";
    l.start_after_len = 3;
    l.next = NULL;
    s = list_page(&l, &len);
    ck_assert_ptr_nonnull(strstr(s, "action=\"/canonicalbucket/\""));
    ck_assert_ptr_null(strstr(s, "name=\"limit\""));
    ck_assert_ptr_nonnull(strstr(s, "<input type=\"hidden\" name=\"values\" value=\"1\">"));
    ck_assert_ptr_null(strstr(s, "rel=\"next\""));
    ck_assert_ptr_nonnull(strstr(s, "<a href=\"/canonicalbucket/?prefix=p/%3C&amp;values=1\">"
                                    "First page</a>"));
    ck_assert_ptr_nonnull(strstr(s, "2 keys after <code>p/a</code>"));
    ck_assert_ptr_nonnull(strstr(s, "<small>3 bytes, text/&lt;x&gt;, version 7</small>"));
    free(s);
}
END_TEST

START_TEST(list_empty)
{
    struct html_list l = {.limit = 1000, .limit_default = 1000};
    struct buf b = BUF_INIT;
    ck_assert_int_eq(html_list_open(&b, &l) || html_list_close(&b, &l), 0);
    size_t len;
    char *s = buf_steal(&b, &len);
    check_page(s, len);
    ck_assert_ptr_nonnull(strstr(s, "<p>0 keys.</p>"));
    ck_assert_ptr_null(strstr(s, "<ul"));
    ck_assert_ptr_nonnull(strstr(s, "value=\"\">"));
    free(s);
}
END_TEST

static struct html_key key_of(const char *value, size_t len, const char *ctype)
{
    struct html_key k = {
        .canonical = 0, .key = "dir/" NASTY, .key_len = strlen("dir/" NASTY),
        .value = value, .value_len = len, .ctype = ctype, .version = 1795968834126590ull,
        .etag = "\"000660d588269d62\"", .last_modified = "Sun, 29 Nov 2026 18:55:51 GMT",
        .expires = "2026-11-29T19:00:00.000Z", .partition = 2,
    };
    return k;
}

START_TEST(key_page_shows_metadata_and_text)
{
    struct html_key k = key_of(NASTY, strlen(NASTY), "text/plain; charset=utf-8");
    size_t len;
    char *s = html_key_page(&k, &len);
    check_page(s, len);
    ck_assert_ptr_nonnull(strstr(s, "<h1>dir/" NASTY_ESCAPED "</h1>"));
    ck_assert_ptr_nonnull(strstr(s, "<pre>" NASTY_ESCAPED "</pre>"));
    ck_assert_ptr_nonnull(strstr(s, "<dt>Version (index)</dt><dd>1795968834126590</dd>"));
    ck_assert_ptr_nonnull(strstr(s, "<dd><code>&quot;000660d588269d62&quot;</code></dd>"));
    ck_assert_ptr_nonnull(strstr(s, "<dt>Content-Type</dt><dd><code>text/plain; charset=utf-8"));
    ck_assert_ptr_nonnull(strstr(s, "<dt>Size</dt><dd>28 bytes</dd>"));
    ck_assert_ptr_nonnull(strstr(s, "<dt>Expires</dt><dd>2026-11-29T19:00:00.000Z</dd>"));
    ck_assert_ptr_nonnull(strstr(s, "<dt>Partition</dt><dd>2 "));
    ck_assert_ptr_nonnull(strstr(s, "<a href=\"/bucket/dir/" NASTY_URL "?raw=1\" download=\""));
    ck_assert_ptr_nonnull(strstr(s, "<a href=\"/bucket/?prefix=dir/%3Cscript%3Ealert%281%29%3C/\">"));
    ck_assert_ptr_nonnull(strstr(s, "<a href=\"/canonicalbucket/dir/" NASTY_URL "\">"));
    free(s);
}
END_TEST

START_TEST(key_page_links_binary_values)
{
    struct html_key k = key_of("\x89PNG\0\xff", 6, "image/png");
    k.expires = NULL;
    k.key = "photos/cat.png";
    k.key_len = strlen(k.key);
    k.canonical = 1;
    size_t len;
    char *s = html_key_page(&k, &len);
    check_page(s, len);
    ck_assert_ptr_null(strstr(s, "<pre>"));
    ck_assert_ptr_nonnull(strstr(s, "<a href=\"/canonicalbucket/photos/cat.png?raw=1\" "
                                    "download=\"cat.png\">Download the value</a></p>"));
    ck_assert_ptr_nonnull(strstr(s, "<dt>Expires</dt><dd>never</dd>"));
    free(s);
}
END_TEST

START_TEST(key_page_cuts_long_text)
{
    size_t n = HTML_VALUE_SHOWN_MAX + 10;
    char *v = malloc(n);
    ck_assert_ptr_nonnull(v);
    memset(v, 'a', n);
    memcpy(v + HTML_VALUE_SHOWN_MAX - 1, "\xe2\x82\xac", 3); /* a character across the cut */
    struct html_key k = key_of(v, n, "text/plain");
    size_t len;
    char *s = html_key_page(&k, &len);
    check_page(s, len);
    ck_assert_ptr_nonnull(strstr(s, "<p>The first 262143 bytes are shown.</p>"));
    ck_assert_ptr_nonnull(strstr(s, "aaa</pre>"));
    free(s);
    free(v);
}
END_TEST

START_TEST(value_is_text)
{
    ck_assert(html_value_is_text("text/plain", "hi", 2));
    ck_assert(html_value_is_text("TEXT/csv; charset=utf-8", "a,b\r\n", 5));
    ck_assert(html_value_is_text("application/json", "{\"a\":\"\xc3\xa9\"}", 10));
    ck_assert(html_value_is_text("application/vnd.api+json", "{}", 2));
    ck_assert(html_value_is_text("image/svg+xml", "<svg/>", 6));
    ck_assert(html_value_is_text("application/octet-stream", "plain", 5));
    ck_assert(html_value_is_text("text/plain", "", 0));
    ck_assert(!html_value_is_text("image/png", "plain", 5));
    ck_assert(!html_value_is_text("application/pdf", "plain", 5));
    ck_assert(!html_value_is_text("text/plain", "\xff", 1));
    ck_assert(!html_value_is_text("text/plain", "a\x01", 2));
    ck_assert(!html_value_is_text("application/octet-stream", "\x89PNG", 4));
    ck_assert(!html_value_is_text("text", "a", 1));
    ck_assert(!html_value_is_text("", "a", 1));
}
END_TEST

static char *health(const char *json, size_t *len)
{
    json_t *doc = json_loads(json, 0, NULL);
    ck_assert_ptr_nonnull(doc);
    char *s = html_health_page(doc, len);
    json_decref(doc);
    check_page(s, *len);
    return s;
}

START_TEST(health_table)
{
    size_t len;
    char *s = health("{\"status\":\"degraded\",\"mode\":\"test\",\"reachable\":1,\"partitions\":2,"
                     "\"partition\":[{\"index\":0,\"database\":\"<db>\",\"address\":\"h:1\","
                     "\"reachable\":true},{\"index\":1,\"database\":\"b\",\"address\":\"h:2\","
                     "\"reachable\":false}]}", &len);
    ck_assert_ptr_nonnull(strstr(s, "<dt>Status</dt><dd class=\"bad\">degraded</dd>"));
    ck_assert_ptr_nonnull(strstr(s, "<tr><th scope=\"col\">#</th><th scope=\"col\">Database</th>"
                                    "<th scope=\"col\">Address</th><th scope=\"col\">Reachable"
                                    "</th></tr>"));
    ck_assert_ptr_nonnull(strstr(s, "<tr><td>0</td><td>&lt;db&gt;</td><td>h:1</td>"
                                    "<td class=\"ok\">yes</td></tr>"));
    ck_assert_ptr_nonnull(strstr(s, "<td class=\"bad\">no</td></tr>"));
    ck_assert_ptr_null(strstr(s, "Pending rows"));
    ck_assert_ptr_null(strstr(s, "Sync"));
    free(s);
}
END_TEST

START_TEST(health_pending_rows_and_sync)
{
    size_t len;
    char *s = health("{\"status\":\"ok\",\"partition\":[{\"index\":0,\"reachable\":true,"
                     "\"pending_rows\":12},{\"index\":1,\"reachable\":true,\"pending_rows\":0}],"
                     "\"sync\":{\"last_pass_end\":\"2026-11-29T18:00:00Z\",\"exit_code\":1,"
                     "\"rows\":10,\"lag_seconds\":1.5}}", &len);
    ck_assert_ptr_nonnull(strstr(s, "<th scope=\"col\">Pending rows</th>"));
    ck_assert_ptr_nonnull(strstr(s, "<td class=\"ok\">yes</td><td>12</td></tr>"));
    ck_assert_ptr_nonnull(strstr(s, "<dt>Last pass ended</dt><dd>2026-11-29T18:00:00Z</dd>"
                                    "<dt>Exit code</dt><dd class=\"bad\">1</dd>"
                                    "<dt>Rows copied</dt><dd>10</dd>"
                                    "<dt>Lag (seconds)</dt><dd>1.5</dd>"));
    free(s);
    /* a field only some partitions have: an empty cell for the others */
    s = health("{\"status\":\"ok\",\"partition\":[{\"index\":0},{\"index\":1,\"pending_rows\":3}],"
               "\"sync\":null}", &len);
    ck_assert_ptr_nonnull(strstr(s, "<tr><td>0</td><td></td></tr>"));
    ck_assert_ptr_nonnull(strstr(s, "<p>No pass recorded.</p>"));
    free(s);
}
END_TEST

START_TEST(health_brief)
{
    size_t len;
    char *s = health("{\"status\":\"ok\"}", &len);
    ck_assert_ptr_nonnull(strstr(s, "<dl><dt>Status</dt><dd class=\"ok\">ok</dd></dl>"));
    ck_assert_ptr_null(strstr(s, "<table"));
    free(s);
}
END_TEST

Suite *html_suite(void)
{
    Suite *s = suite_create("html");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, text_escapes_markup);
    tcase_add_test(tc, text_marks_what_html_cannot_carry);
    tcase_add_test(tc, text_keeps_space_in_pre_only);
    tcase_add_test(tc, list_links_every_key_and_the_next_page);
    tcase_add_test(tc, list_form_uses_the_list_parameters);
    tcase_add_test(tc, list_empty);
    tcase_add_test(tc, key_page_shows_metadata_and_text);
    tcase_add_test(tc, key_page_links_binary_values);
    tcase_add_test(tc, key_page_cuts_long_text);
    tcase_add_test(tc, value_is_text);
    tcase_add_test(tc, health_table);
    tcase_add_test(tc, health_pending_rows_and_sync);
    tcase_add_test(tc, health_brief);
    suite_add_tcase(s, tc);
    return s;
}
