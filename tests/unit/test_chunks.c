/* chunks: how a value splits into chunk rows, which chunks a range needs,
 * and the packet size a partition must allow. */
#include <check.h>
#include <stdint.h>

#include "chunks.h"

#define MiB (1ull << 20)

START_TEST(inline_up_to_one_chunk)
{
    ck_assert_int_eq(chunks_inline(0), 1);
    ck_assert_int_eq(chunks_inline(MiB), 1);         /* exactly one piece: inline */
    ck_assert_int_eq(chunks_inline(MiB + 1), 0);
    ck_assert_uint_eq(chunks_count(0), 0);
    ck_assert_uint_eq(chunks_count(1), 0);
    ck_assert_uint_eq(chunks_count(MiB - 1), 0);
    ck_assert_uint_eq(chunks_count(MiB), 0);
    ck_assert_uint_eq(chunks_count(MiB + 1), 2);     /* one piece + 1 B: two chunks */
    ck_assert_uint_eq(chunks_count(2 * MiB), 2);
    ck_assert_uint_eq(chunks_count(2 * MiB + 1), 3);
    ck_assert_uint_eq(chunks_count(CHUNKS_VALUE_MAX), 1024);
}
END_TEST

START_TEST(chunk_lengths)
{
    ck_assert_uint_eq(chunks_len(MiB + 1, 0), MiB);
    ck_assert_uint_eq(chunks_len(MiB + 1, 1), 1);
    ck_assert_uint_eq(chunks_len(MiB + 1, 2), 0);    /* no such chunk */
    ck_assert_uint_eq(chunks_len(2 * MiB, 1), MiB);  /* a full last chunk */
    ck_assert_uint_eq(chunks_len(100, 0), 0);        /* inline: no chunks */
    uint64_t len = 100 * MiB + 12345, sum = 0;
    for (uint32_t n = 0; n < chunks_count(len); n++)
        sum += chunks_len(len, n);
    ck_assert_uint_eq(sum, len);
}
END_TEST

START_TEST(spans_of_ranges)
{
    struct chunks_span s;
    struct byte_range r = {0, 0};                    /* first byte */
    chunks_span(&r, &s);
    ck_assert(s.first == 0 && s.last == 0 && s.skip == 0 && s.keep == 1);
    r = (struct byte_range){MiB - 1, MiB};           /* across a boundary */
    chunks_span(&r, &s);
    ck_assert(s.first == 0 && s.last == 1 && s.skip == MiB - 1 && s.keep == 1);
    r = (struct byte_range){3 * MiB + 4, 3 * MiB + 4}; /* last byte of 3 MiB + 5 */
    chunks_span(&r, &s);
    ck_assert(s.first == 3 && s.last == 3 && s.skip == 4 && s.keep == 5);
    r = (struct byte_range){128 * MiB, 129 * MiB - 1}; /* 1 MiB aligned: one chunk */
    chunks_span(&r, &s);
    ck_assert(s.first == 128 && s.last == 128 && s.skip == 0 && s.keep == MiB);
}
END_TEST

START_TEST(packet_minimum)
{
    uint64_t small = chunks_packet_min(250), big = chunks_packet_min(3072);
    ck_assert_uint_gt(small, CHUNKS_SIZE);           /* a chunk and its keys */
    ck_assert_uint_gt(big, small);
    ck_assert_uint_lt(big, 2 * MiB);                 /* "a little over 1 MiB" */
    ck_assert_uint_le(big, 16 * MiB);                /* MariaDB's default allows it */
}
END_TEST

Suite *chunks_suite(void)
{
    Suite *s = suite_create("chunks");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, inline_up_to_one_chunk);
    tcase_add_test(tc, chunk_lengths);
    tcase_add_test(tc, spans_of_ranges);
    tcase_add_test(tc, packet_minimum);
    suite_add_tcase(s, tc);
    return s;
}
