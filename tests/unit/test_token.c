/* token: lists' tokens (X-Lazykv-Index of a list) and the digest of rows. */
#include <check.h>
#include <string.h>

#include "token.h"

START_TEST(format_and_parse)
{
    struct watch_token t = {.t = 1795968835159160ULL, .digest = 0xb0f0527b44b13d5dULL, .valid = 1};
    char s[WATCH_TOKEN_LEN];
    watch_token_format(&t, s);
    ck_assert_str_eq(s, "1795968835159160-b0f0527b44b13d5d");
    struct watch_token back;
    ck_assert_int_eq(watch_token_parse(s, strlen(s), &back), 0);
    ck_assert(back.valid && back.t == t.t && back.digest == t.digest);
    ck_assert_int_eq(watch_token_parse("0", 1, &back), 0);
    ck_assert_int_eq(back.valid, 0);
    struct watch_token zero = {0};
    watch_token_format(&zero, s);
    ck_assert_str_eq(s, "0");
    const char *bad[] = {"", "-", "12-", "-b0f0527b44b13d5d", "12-b0f0527b44b13d5", "12-B0F0527B44B13D5D",
                         "1x-b0f0527b44b13d5d", "99999999999999999999-b0f0527b44b13d5d", "00",
                         "12-b0f0527b44b13d5d0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        ck_assert_msg(watch_token_parse(bad[i], strlen(bad[i]), &back) == -1, "%s", bad[i]);
}
END_TEST

START_TEST(digest_counts_rows_whose_index_passed_t)
{
    struct record live = {.key = "a", .key_len = 1, .version = 100};
    struct record expiring = {.key = "b", .key_len = 1, .version = 100, .expires_at = 500};
    struct record gone = {.key = "c", .key_len = 1, .version = 300, .deleted = 1};
    ck_assert_uint_eq(watch_row_digest(&live, 100, 1000), 0);
    ck_assert_uint_ne(watch_row_digest(&live, 99, 1000), 0);
    /* not expired yet at 400: index 100; expired at 500: index 500 */
    ck_assert_uint_eq(watch_row_digest(&expiring, 200, 400), 0);
    ck_assert_uint_eq(token_row_index(&expiring, 500), 500);
    ck_assert_uint_ne(watch_row_digest(&expiring, 200, 500), 0);
    ck_assert_uint_eq(token_row_index(&gone, 1000), 300);
    /* any change of a row's index changes its mix; keys are told apart */
    struct record newer = live;
    newer.version = 101;
    ck_assert_uint_ne(watch_row_digest(&live, 0, 0), watch_row_digest(&newer, 0, 0));
    struct record other = live;
    other.key = "d";
    ck_assert_uint_ne(watch_row_digest(&live, 0, 0), watch_row_digest(&other, 0, 0));
}
END_TEST

Suite *token_suite(void)
{
    Suite *s = suite_create("token");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, format_and_parse);
    tcase_add_test(tc, digest_counts_rows_whose_index_passed_t);
    suite_add_tcase(s, tc);
    return s;
}
