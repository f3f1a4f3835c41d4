/* rcache: the lazy read cache's expiry, invalidation stamps and bound. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rcache.h"

static struct record rec_of(const char *key, const char *value, uint64_t version)
{
    struct record r;
    memset(&r, 0, sizeof(r));
    r.key = key;
    r.key_len = strlen(key);
    r.value = (char *)value;
    r.value_len = strlen(value);
    r.version = version;
    strcpy(r.ctype, "text/plain");
    return r;
}

/* 1 and the value, or 0, for key at now. */
static int get(struct rcache *rc, const char *key, uint64_t now, char *value, size_t cap)
{
    struct record out;
    memset(&out, 0, sizeof(out));
    int part = -1;
    int hit = rcache_get(rc, key, strlen(key), now, &out, &part);
    if (hit == 1) {
        ck_assert_uint_lt(out.value_len, cap);
        memcpy(value, out.value, out.value_len + 1);
        ck_assert_str_eq(out.ctype, "text/plain");
        ck_assert_int_eq(part, 2);
        free(out.value);
    }
    return hit;
}

START_TEST(off_by_default)
{
    struct rcache rc;
    ck_assert_int_eq(rcache_init(&rc, 0, 1 << 20), 0);
    struct record r = rec_of("k", "v", 1);
    rcache_put(&rc, &r, 2, rcache_stamp(&rc), 100);
    char buf[64];
    ck_assert_int_eq(get(&rc, "k", 100, buf, sizeof(buf)), 0);
    rcache_free(&rc);
}
END_TEST

START_TEST(hit_until_ttl)
{
    struct rcache rc;
    ck_assert_int_eq(rcache_init(&rc, 1000, 1 << 20), 0);
    struct record r = rec_of("k", "hello", 7);
    rcache_put(&rc, &r, 2, rcache_stamp(&rc), 5000);
    char buf[64];
    ck_assert_int_eq(get(&rc, "k", 5999, buf, sizeof(buf)), 1);
    ck_assert_str_eq(buf, "hello");
    ck_assert_int_eq(get(&rc, "k", 6000, buf, sizeof(buf)), 0);
    ck_assert_int_eq(get(&rc, "other", 5001, buf, sizeof(buf)), 0);
    rcache_free(&rc);
}
END_TEST

START_TEST(invalidation_wins_over_reads_in_flight)
{
    struct rcache rc;
    ck_assert_int_eq(rcache_init(&rc, 1000000, 1 << 20), 0);
    struct record old = rec_of("k", "old", 1), fresh = rec_of("k", "new", 2);
    char buf[64];
    rcache_put(&rc, &old, 2, rcache_stamp(&rc), 10);
    uint64_t in_flight = rcache_stamp(&rc); /* a read starts */
    rcache_invalidate(&rc, "k", 1);          /* a write of k */
    ck_assert_int_eq(get(&rc, "k", 11, buf, sizeof(buf)), 0);
    rcache_put(&rc, &old, 2, in_flight, 12); /* the read comes back: refused */
    ck_assert_int_eq(get(&rc, "k", 13, buf, sizeof(buf)), 0);
    rcache_put(&rc, &fresh, 2, rcache_stamp(&rc), 14); /* a read after the write */
    ck_assert_int_eq(get(&rc, "k", 15, buf, sizeof(buf)), 1);
    ck_assert_str_eq(buf, "new");
    rcache_free(&rc);
}
END_TEST

START_TEST(memory_is_bounded_least_recently_used_first)
{
    struct rcache rc;
    size_t max = 64 * 1024;
    ck_assert_int_eq(rcache_init(&rc, 1000000, max), 0);
    static char value[1024];
    memset(value, 'x', sizeof(value) - 1);
    char key[32], buf[2048];
    for (int i = 0; i < 1000; i++) {
        snprintf(key, sizeof(key), "key/%d", i);
        struct record r = rec_of(key, value, 1);
        rcache_put(&rc, &r, 2, rcache_stamp(&rc), 1);
        ck_assert_uint_le(rc.bytes, max);
        if (i >= 10) /* keep key/0 recent */
            ck_assert_int_eq(get(&rc, "key/0", 2, buf, sizeof(buf)), 1);
    }
    ck_assert_int_eq(get(&rc, "key/999", 2, buf, sizeof(buf)), 1);
    ck_assert_int_eq(get(&rc, "key/500", 2, buf, sizeof(buf)), 0); /* evicted */
    /* a value that cannot fit is not kept, and evicts nothing */
    static char huge[128 * 1024];
    memset(huge, 'y', sizeof(huge) - 1);
    struct record h = rec_of("huge", huge, 1);
    rcache_put(&rc, &h, 2, rcache_stamp(&rc), 3);
    ck_assert_int_eq(get(&rc, "huge", 4, buf, sizeof(buf)), 0);
    ck_assert_int_eq(get(&rc, "key/0", 4, buf, sizeof(buf)), 1);
    rcache_free(&rc);
}
END_TEST

Suite *rcache_suite(void)
{
    Suite *s = suite_create("rcache");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, off_by_default);
    tcase_add_test(tc, hit_until_ttl);
    tcase_add_test(tc, invalidation_wins_over_reads_in_flight);
    tcase_add_test(tc, memory_is_bounded_least_recently_used_first);
    suite_add_tcase(s, tc);
    return s;
}
