/* codec: percent-encoding, base64, UTF-8, markup escaping. */
#include <check.h>
#include <string.h>

#include "codec.h"

static ssize_t dec(const char *in, char *out, int plus)
{
    return codec_pct_decode(in, strlen(in), out, plus);
}

START_TEST(pct_decode_valid)
{
    char out[64];
    ck_assert_int_eq(dec("a%2Fb%20c", out, 0), 5);
    ck_assert_mem_eq(out, "a/b c", 5);
    ck_assert_int_eq(dec("a+b", out, 0), 3);
    ck_assert_mem_eq(out, "a+b", 3);
    ck_assert_int_eq(dec("a+b", out, 1), 3);
    ck_assert_mem_eq(out, "a b", 3);
    ck_assert_int_eq(dec("%00%ff%FF", out, 0), 3);
    ck_assert_mem_eq(out, "\0\xff\xff", 3);
    ck_assert_int_eq(dec("", out, 0), 0);
}
END_TEST

START_TEST(pct_decode_invalid)
{
    char out[64];
    ck_assert_int_eq(dec("%", out, 0), -1);
    ck_assert_int_eq(dec("%4", out, 0), -1);
    ck_assert_int_eq(dec("ab%4", out, 0), -1);
    ck_assert_int_eq(dec("%zz", out, 0), -1);
    ck_assert_int_eq(dec("%4g", out, 0), -1);
}
END_TEST

START_TEST(pct_encode_round_trip)
{
    struct buf b = BUF_INIT;
    ck_assert_int_eq(codec_pct_encode(&b, "a/b c\xff~", 7, 1), 0);
    ck_assert_str_eq(b.data, "a/b%20c%FF~");
    b.len = 0;
    ck_assert_int_eq(codec_pct_encode(&b, "a/b", 3, 0), 0);
    ck_assert_str_eq(b.data, "a%2Fb");
    char out[64];
    ck_assert_int_eq(codec_pct_decode(b.data, b.len, out, 0), 3);
    ck_assert_mem_eq(out, "a/b", 3);
    buf_free(&b);
}
END_TEST

START_TEST(base64_rfc4648_vectors)
{
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *want[] = {"", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        struct buf b = BUF_INIT;
        ck_assert_int_eq(codec_base64_encode(&b, in[i], strlen(in[i])), 0);
        ck_assert_str_eq(b.data ? b.data : "", want[i]);
        buf_free(&b);
    }
}
END_TEST

START_TEST(utf8_validation)
{
    ck_assert_int_eq(codec_utf8_valid("plain", 5), 1);
    ck_assert_int_eq(codec_utf8_valid("\xc3\xa9", 2), 1);          /* é */
    ck_assert_int_eq(codec_utf8_valid("\xf0\x9f\x98\x80", 4), 1);  /* emoji */
    ck_assert_int_eq(codec_utf8_valid("a\0b", 3), 1);
    ck_assert_int_eq(codec_utf8_valid("\xff", 1), 0);
    ck_assert_int_eq(codec_utf8_valid("\xc0\xaf", 2), 0);          /* overlong */
    ck_assert_int_eq(codec_utf8_valid("\xed\xa0\x80", 3), 0);      /* surrogate */
    ck_assert_int_eq(codec_utf8_valid("\xf4\x90\x80\x80", 4), 0);  /* > U+10FFFF */
    ck_assert_int_eq(codec_utf8_valid("\xc3", 1), 0);              /* truncated */
    ck_assert_int_eq(codec_utf8_valid("\xe2\x82", 2), 0);
}
END_TEST

START_TEST(markup_escaping)
{
    struct buf b = BUF_INIT;
    ck_assert_int_eq(codec_escape_markup(&b, "<a href=\"x\">'&'</a>\x01", 20), 0);
    ck_assert_str_eq(b.data, "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;\xEF\xBF\xBD");
    buf_free(&b);
}
END_TEST

Suite *codec_suite(void)
{
    Suite *s = suite_create("codec");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, pct_decode_valid);
    tcase_add_test(tc, pct_decode_invalid);
    tcase_add_test(tc, pct_encode_round_trip);
    tcase_add_test(tc, base64_rfc4648_vectors);
    tcase_add_test(tc, utf8_validation);
    tcase_add_test(tc, markup_escaping);
    suite_add_tcase(s, tc);
    return s;
}
