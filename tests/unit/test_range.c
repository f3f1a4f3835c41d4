/* range: Range against a length, If-Range, Content-Range. */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "range.h"

#define ETAG "\"00060a1b2c3d4e5f\""

/* Parses h against length; on RANGE_ONE also checks first..last. */
static void expect_one(const char *h, uint64_t length, uint64_t first, uint64_t last)
{
    struct byte_range r = {7, 7};
    ck_assert_msg(range_parse(h, length, &r) == RANGE_ONE, "%s against %llu", h,
                  (unsigned long long)length);
    ck_assert_msg(r.first == first && r.last == last, "%s: %llu-%llu", h,
                  (unsigned long long)r.first, (unsigned long long)r.last);
}

static enum range_result parse(const char *h, uint64_t length)
{
    struct byte_range r = {7, 7};
    enum range_result res = range_parse(h, length, &r);
    if (res != RANGE_ONE) /* out is only written for one range */
        ck_assert(r.first == 7 && r.last == 7);
    return res;
}

START_TEST(the_three_forms)
{
    expect_one("bytes=2-5", 10, 2, 5);
    expect_one("bytes=3-", 10, 3, 9);
    expect_one("bytes=-4", 10, 6, 9);
}
END_TEST

START_TEST(edges)
{
    expect_one("bytes=0-0", 10, 0, 0);       /* first byte */
    expect_one("bytes=9-9", 10, 9, 9);       /* last byte */
    expect_one("bytes=-1", 10, 9, 9);        /* last byte, as a suffix */
    expect_one("bytes=0-", 10, 0, 9);        /* all of it */
    expect_one("bytes=5-100", 10, 5, 9);     /* last-pos past the end: cut */
    expect_one("bytes=9-10", 10, 9, 9);
    expect_one("bytes=-10", 10, 0, 9);       /* suffix of exactly the length */
    expect_one("bytes=-100", 10, 0, 9);      /* longer suffix: the whole value */
    expect_one("bytes=0-0", 1, 0, 0);        /* a one-byte value */
    expect_one("bytes=-1", 1, 0, 0);
    ck_assert_int_eq(parse("bytes=10-", 10), RANGE_UNSATISFIABLE);  /* past the end */
    ck_assert_int_eq(parse("bytes=10-20", 10), RANGE_UNSATISFIABLE);
    ck_assert_int_eq(parse("bytes=-0", 10), RANGE_UNSATISFIABLE);   /* no byte asked */
    ck_assert_int_eq(parse("bytes=-000", 10), RANGE_UNSATISFIABLE);
    ck_assert_int_eq(parse("bytes=1-0", 10), RANGE_NONE);           /* last < first: invalid */
}
END_TEST

START_TEST(zero_length_value)
{
    ck_assert_int_eq(parse("bytes=0-0", 0), RANGE_UNSATISFIABLE);
    ck_assert_int_eq(parse("bytes=0-", 0), RANGE_UNSATISFIABLE);
    ck_assert_int_eq(parse("bytes=-0", 0), RANGE_UNSATISFIABLE);
    /* satisfiable per RFC 9110, but no Content-Range can describe zero bytes */
    ck_assert_int_eq(parse("bytes=-5", 0), RANGE_NONE);
    ck_assert_int_eq(parse("bytes=-5,-6", 0), RANGE_SEVERAL);
    ck_assert_int_eq(parse("bytes=0-1,2-3", 0), RANGE_UNSATISFIABLE);
}
END_TEST

START_TEST(whitespace)
{
    expect_one(" \tbytes=0-1 \t", 10, 0, 1);              /* around the value */
    ck_assert_int_eq(parse("bytes=0-1 , 3-4", 10), RANGE_SEVERAL); /* around commas */
    ck_assert_int_eq(parse("bytes=0-1\t,\t3-4", 10), RANGE_SEVERAL);
    ck_assert_int_eq(parse("bytes= 0-1", 10), RANGE_NONE);  /* not after '=' */
    ck_assert_int_eq(parse("bytes =0-1", 10), RANGE_NONE);  /* not before it */
    ck_assert_int_eq(parse("bytes=0 -1", 10), RANGE_NONE);  /* not inside a range */
    ck_assert_int_eq(parse("bytes=0- 1", 10), RANGE_NONE);
    ck_assert_int_eq(parse("bytes=- 1", 10), RANGE_NONE);
    ck_assert_int_eq(parse("bytes=0-1 2-3", 10), RANGE_NONE);
}
END_TEST

START_TEST(list_elements)
{
    expect_one("bytes=,0-1", 10, 0, 1);      /* empty elements are skipped */
    expect_one("bytes=0-1,", 10, 0, 1);
    expect_one("bytes=, ,0-1,,", 10, 0, 1);
    ck_assert_int_eq(parse("bytes=", 10), RANGE_NONE);  /* at least one range */
    ck_assert_int_eq(parse("bytes=,", 10), RANGE_NONE);
    ck_assert_int_eq(parse("bytes= ", 10), RANGE_NONE);
}
END_TEST

START_TEST(several_ranges)
{
    ck_assert_int_eq(parse("bytes=0-1,3-4", 10), RANGE_SEVERAL);
    ck_assert_int_eq(parse("bytes=0-1,0-1", 10), RANGE_SEVERAL);
    ck_assert_int_eq(parse("bytes=0-1,100-200", 10), RANGE_SEVERAL); /* one satisfiable */
    ck_assert_int_eq(parse("bytes=-0,5-", 10), RANGE_SEVERAL);
    ck_assert_int_eq(parse("bytes=100-200,300-", 10), RANGE_UNSATISFIABLE);
    ck_assert_int_eq(parse("bytes=-0,-0", 10), RANGE_UNSATISFIABLE);
    ck_assert_int_eq(parse("bytes=0-1,5-4", 10), RANGE_NONE); /* one invalid: all ignored */
    ck_assert_int_eq(parse("bytes=0-1,x", 10), RANGE_NONE);
}
END_TEST

START_TEST(units_and_syntax)
{
    ck_assert_int_eq(parse(NULL, 10), RANGE_NONE);
    ck_assert_int_eq(parse("", 10), RANGE_NONE);
    expect_one("Bytes=0-1", 10, 0, 1);       /* unit names are case-insensitive */
    expect_one("BYTES=0-1", 10, 0, 1);
    ck_assert_int_eq(parse("items=0-1", 10), RANGE_NONE);   /* other units: ignored */
    ck_assert_int_eq(parse("bytesx=0-1", 10), RANGE_NONE);
    ck_assert_int_eq(parse("byte=0-1", 10), RANGE_NONE);
    ck_assert_int_eq(parse("bytes", 10), RANGE_NONE);
    ck_assert_int_eq(parse("bytes:0-1", 10), RANGE_NONE);
    ck_assert_int_eq(parse("bytes=-", 10), RANGE_NONE);
    ck_assert_int_eq(parse("bytes=--1", 10), RANGE_NONE);
    ck_assert_int_eq(parse("bytes=+1-2", 10), RANGE_NONE);
    ck_assert_int_eq(parse("bytes=1-2-3", 10), RANGE_NONE);
    ck_assert_int_eq(parse("bytes=0x1-2", 10), RANGE_NONE);
    ck_assert_int_eq(parse("bytes=1", 10), RANGE_NONE);
    ck_assert_int_eq(parse("bytes=a-b", 10), RANGE_NONE);
    ck_assert_int_eq(parse("bytes=1-2;x", 10), RANGE_NONE);
    ck_assert_int_eq(parse("bytes=\xc2\xb9-2", 10), RANGE_NONE);
    expect_one("bytes=0005-0009", 10, 5, 9); /* leading zeros */
    expect_one("bytes=00-0", 10, 0, 0);
    ck_assert_int_eq(parse("bytes=10-09", 10), RANGE_NONE);
}
END_TEST

START_TEST(huge_numbers)
{
    /* 2^64 and beyond: past every end, or up to the end, never wrapped */
    ck_assert_int_eq(parse("bytes=18446744073709551616-", 10), RANGE_UNSATISFIABLE);
    ck_assert_int_eq(parse("bytes=99999999999999999999999999999-", 10), RANGE_UNSATISFIABLE);
    expect_one("bytes=0-18446744073709551616", 10, 0, 9);
    expect_one("bytes=3-999999999999999999999999999999999999", 10, 3, 9);
    expect_one("bytes=-18446744073709551616", 10, 0, 9);
    expect_one("bytes=-18446744073709551615", 10, 0, 9);
    /* the order of two huge numbers is still exact */
    ck_assert_int_eq(parse("bytes=99999999999999999999-99999999999999999998", 10), RANGE_NONE);
    ck_assert_int_eq(parse("bytes=99999999999999999998-99999999999999999999", 10),
                     RANGE_UNSATISFIABLE);
    /* the largest lengths */
    expect_one("bytes=18446744073709551613-18446744073709551614", UINT64_MAX,
               UINT64_MAX - 2, UINT64_MAX - 1);
    expect_one("bytes=-1", UINT64_MAX, UINT64_MAX - 1, UINT64_MAX - 1);
    ck_assert_int_eq(parse("bytes=18446744073709551615-", UINT64_MAX), RANGE_UNSATISFIABLE);
}
END_TEST

START_TEST(if_range)
{
    struct byte_range r;
    ck_assert_int_eq(range_if_range(NULL, ETAG), 1);
    ck_assert_int_eq(range_if_range(ETAG, ETAG), 1);                 /* current */
    ck_assert_int_eq(range_if_range(" " ETAG "\t", ETAG), 1);
    ck_assert_int_eq(range_if_range("\"00060a1b2c3d4e5e\"", ETAG), 0); /* stale */
    ck_assert_int_eq(range_if_range("W/" ETAG, ETAG), 0);             /* weak: no strong match */
    ck_assert_int_eq(range_if_range("\"00060A1B2C3D4E5F\"", ETAG), 0); /* byte-wise */
    ck_assert_int_eq(range_if_range("Sat, 29 Oct 1994 19:43:31 GMT", ETAG), 0); /* a date */
    ck_assert_int_eq(range_if_range(ETAG ", " ETAG, ETAG), 0);        /* one tag only */
    ck_assert_int_eq(range_if_range("", ETAG), 0);
    ck_assert_int_eq(range_if_range("*", ETAG), 0);
    ck_assert_int_eq(range_if_range(ETAG, NULL), 0);
    ck_assert_int_eq(range_if_range("W/" ETAG, "W/" ETAG), 0);       /* a weak current tag */

    ck_assert_int_eq(range_evaluate("bytes=0-1", ETAG, ETAG, 10, &r), RANGE_ONE);
    ck_assert(r.first == 0 && r.last == 1);
    ck_assert_int_eq(range_evaluate("bytes=0-1", NULL, ETAG, 10, &r), RANGE_ONE);
    ck_assert_int_eq(range_evaluate("bytes=0-1", "\"0\"", ETAG, 10, &r), RANGE_NONE);
    /* a stale If-Range ignores even an unsatisfiable Range: 200, not 416 */
    ck_assert_int_eq(range_evaluate("bytes=50-", "\"0\"", ETAG, 10, &r), RANGE_NONE);
    ck_assert_int_eq(range_evaluate("bytes=50-", ETAG, ETAG, 10, &r), RANGE_UNSATISFIABLE);
    ck_assert_int_eq(range_evaluate(NULL, ETAG, ETAG, 10, &r), RANGE_NONE);
}
END_TEST

START_TEST(content_range)
{
    char out[RANGE_CONTENT_RANGE_MAX];
    struct byte_range r = {0, 0};
    range_content_range(&r, 1, out);
    ck_assert_str_eq(out, "bytes 0-0/1");
    r = (struct byte_range){1048576, 2097151};
    range_content_range(&r, 268435456, out);
    ck_assert_str_eq(out, "bytes 1048576-2097151/268435456");
    r = (struct byte_range){UINT64_MAX - 1, UINT64_MAX - 1};
    range_content_range(&r, UINT64_MAX, out);
    ck_assert_str_eq(out, "bytes 18446744073709551614-18446744073709551614/18446744073709551615");
    range_unsatisfied(10, out);
    ck_assert_str_eq(out, "bytes */10");
    range_unsatisfied(0, out);
    ck_assert_str_eq(out, "bytes */0");
}
END_TEST

START_TEST(answer)
{
    struct range_answer a;
    range_answer(NULL, NULL, ETAG, 10, &a); /* no Range: the whole value */
    ck_assert_uint_eq(a.status, 200);
    ck_assert(a.offset == 0 && a.length == 10);
    ck_assert_str_eq(a.content_range, "");
    range_answer("bytes=2-4", NULL, ETAG, 10, &a);
    ck_assert_uint_eq(a.status, 206);
    ck_assert(a.offset == 2 && a.length == 3);
    ck_assert_str_eq(a.content_range, "bytes 2-4/10");
    range_answer("bytes=-1", ETAG, ETAG, 10, &a); /* the last byte, If-Range current */
    ck_assert_uint_eq(a.status, 206);
    ck_assert(a.offset == 9 && a.length == 1);
    ck_assert_str_eq(a.content_range, "bytes 9-9/10");
    range_answer("bytes=0-", NULL, ETAG, 10, &a); /* all of it, still a 206 */
    ck_assert_uint_eq(a.status, 206);
    ck_assert(a.offset == 0 && a.length == 10);
    range_answer("bytes=10-", NULL, ETAG, 10, &a);
    ck_assert_uint_eq(a.status, 416);
    ck_assert(a.offset == 0 && a.length == 0);
    ck_assert_str_eq(a.content_range, "bytes */10");
    range_answer("bytes=-0", NULL, ETAG, 10, &a);
    ck_assert_uint_eq(a.status, 416);
    range_answer("bytes=0-0", NULL, ETAG, 0, &a); /* nothing of an empty value */
    ck_assert_uint_eq(a.status, 416);
    ck_assert_str_eq(a.content_range, "bytes */0");
    range_answer("bytes=-5", NULL, ETAG, 0, &a); /* a suffix of it: 200, empty */
    ck_assert_uint_eq(a.status, 200);
    ck_assert(a.offset == 0 && a.length == 0);
    range_answer("bytes=5-3", NULL, ETAG, 10, &a); /* malformed: ignored */
    ck_assert_uint_eq(a.status, 200);
    ck_assert(a.length == 10);
    range_answer("bytes=0-1,4-5", NULL, ETAG, 10, &a); /* several: the whole value */
    ck_assert_uint_eq(a.status, 200);
    ck_assert(a.offset == 0 && a.length == 10);
    ck_assert_str_eq(a.content_range, "");
    range_answer("bytes=0-1", "\"0\"", ETAG, 10, &a); /* stale If-Range */
    ck_assert_uint_eq(a.status, 200);
    ck_assert(a.length == 10);
    range_answer("bytes=50-", "\"0\"", ETAG, 10, &a); /* stale: not even a 416 */
    ck_assert_uint_eq(a.status, 200);
}
END_TEST

Suite *range_suite(void)
{
    Suite *s = suite_create("range");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, the_three_forms);
    tcase_add_test(tc, edges);
    tcase_add_test(tc, zero_length_value);
    tcase_add_test(tc, whitespace);
    tcase_add_test(tc, list_elements);
    tcase_add_test(tc, several_ranges);
    tcase_add_test(tc, units_and_syntax);
    tcase_add_test(tc, huge_numbers);
    tcase_add_test(tc, if_range);
    tcase_add_test(tc, content_range);
    tcase_add_test(tc, answer);
    suite_add_tcase(s, tc);
    return s;
}
