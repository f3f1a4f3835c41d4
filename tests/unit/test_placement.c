/* placement: hash vectors, jump hash movement and balance. */
#include <check.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "placement.h"

static uint64_t fmix64(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

START_TEST(hash_is_fnv1a_then_fmix64)
{
    /* Published FNV-1a 64 vectors, then the murmur3 finalizer. */
    ck_assert_uint_eq(placement_hash64("", 0), fmix64(0xcbf29ce484222325ULL));
    ck_assert_uint_eq(placement_hash64("a", 1), fmix64(0xaf63dc4c8601ec8cULL));
    ck_assert_uint_eq(placement_hash64("foobar", 6), fmix64(0x85944171f73967e8ULL));
}
END_TEST

START_TEST(hash_and_master_are_pinned)
{
    /* Changing these moves every key's master: an on-disk contract. */
    ck_assert_uint_eq(placement_hash64("hello world", 11), 0x7c6d8c019b6ee5d5ULL);
    ck_assert_uint_eq(placement_hash64("user/42", 7), 0xab51e013121d86fdULL);
    ck_assert_int_eq(placement_master("hello world", 11, 3), 0);
    ck_assert_int_eq(placement_master("user/42", 7, 3), 2);
    ck_assert_int_eq(placement_master("a", 1, 10), 5);
    ck_assert_int_eq(placement_master("foobar", 6, 64), 38);
    ck_assert_int_eq(placement_jump(0x0123456789abcdefULL, 100), 57);
    ck_assert_int_eq(placement_jump(0x02468acf13579bdeULL, 1000), 284);
}
END_TEST

START_TEST(hash_covers_nul_bytes)
{
    ck_assert_uint_ne(placement_hash64("a\0b", 3), placement_hash64("a\0c", 3));
    ck_assert_uint_ne(placement_hash64("a", 1), placement_hash64("a\0", 2));
}
END_TEST

START_TEST(jump_single_bucket_is_zero)
{
    for (uint64_t h = 0; h < 1000; h++)
        ck_assert_int_eq(placement_jump(h * 0x9e3779b97f4a7c15ULL, 1), 0);
}
END_TEST

#define NKEYS 100000

START_TEST(growth_moves_about_one_over_n_plus_one)
{
    for (int n = 1; n <= 8; n++) {
        int moved = 0;
        for (int i = 0; i < NKEYS; i++) {
            char key[32];
            int len = snprintf(key, sizeof(key), "key-%d", i);
            int a = placement_master(key, (size_t)len, n);
            int b = placement_master(key, (size_t)len, n + 1);
            if (a != b) {
                moved++;
                ck_assert_int_eq(b, n); /* keys only ever move to the new partition */
            }
        }
        double expected = (double)NKEYS / (n + 1);
        ck_assert_msg(moved > expected * 0.97 && moved < expected * 1.03,
                      "n=%d: moved %d of %d, expected about %.0f", n, moved, NKEYS, expected);
    }
}
END_TEST

START_TEST(partitions_are_balanced_within_3_percent)
{
    for (int n = 2; n <= 5; n++) {
        int count[5] = {0};
        for (int i = 0; i < NKEYS; i++) {
            char key[32];
            int len = snprintf(key, sizeof(key), "user:%d", i);
            count[placement_master(key, (size_t)len, n)]++;
        }
        double mean = (double)NKEYS / n;
        for (int p = 0; p < n; p++)
            ck_assert_msg(count[p] > mean * 0.97 && count[p] < mean * 1.03,
                          "n=%d partition %d has %d keys (mean %.0f)", n, p, count[p], mean);
    }
}
END_TEST

Suite *placement_suite(void)
{
    Suite *s = suite_create("placement");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, hash_is_fnv1a_then_fmix64);
    tcase_add_test(tc, hash_and_master_are_pinned);
    tcase_add_test(tc, hash_covers_nul_bytes);
    tcase_add_test(tc, jump_single_bucket_is_zero);
    tcase_add_test(tc, growth_moves_about_one_over_n_plus_one);
    tcase_add_test(tc, partitions_are_balanced_within_3_percent);
    suite_add_tcase(s, tc);
    return s;
}
