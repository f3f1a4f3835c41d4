/* spool: a body on local disk, unnamed. */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "spool.h"

/* A fresh empty directory for one test; the caller removes it. */
static void make_dir(char *path, size_t size)
{
    snprintf(path, size, "/tmp/lazykv-spool-test-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(path));
}

static int entries(const char *path)
{
    DIR *d = opendir(path);
    ck_assert_ptr_nonnull(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

START_TEST(appends_read_back_at_any_offset)
{
    char dir[64];
    make_dir(dir, sizeof(dir));
    struct spool *sp = spool_open(dir);
    ck_assert_ptr_nonnull(sp);
    ck_assert_int_eq(entries(dir), 0); /* unnamed from the start */
    static char piece[3000];
    for (int i = 0; i < 100; i++) {
        memset(piece, 'a' + i % 26, sizeof(piece));
        ck_assert_int_eq(spool_append(sp, piece, sizeof(piece)), 0);
    }
    ck_assert_uint_eq(spool_length(sp), 300000);
    char got[4000];
    ck_assert_int_eq(spool_read(sp, 2990, got, 20), 0); /* across two appends */
    ck_assert(memcmp(got, "aaaaaaaaaabbbbbbbbbb", 20) == 0);
    ck_assert_int_eq(spool_read(sp, 297000, got, 3000), 0); /* the last append */
    for (int i = 0; i < 3000; i++)
        ck_assert_int_eq(got[i], 'a' + 99 % 26);
    ck_assert_int_eq(spool_read(sp, 300000, got, 0), 0);
    spool_free(sp);
    ck_assert_int_eq(entries(dir), 0);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(reads_past_the_end_are_refused)
{
    char dir[64];
    make_dir(dir, sizeof(dir));
    struct spool *sp = spool_open(dir);
    ck_assert_ptr_nonnull(sp);
    ck_assert_int_eq(spool_append(sp, "0123456789", 10), 0);
    char got[16];
    errno = 0;
    ck_assert_int_eq(spool_read(sp, 5, got, 6), -1);
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(spool_read(sp, 11, got, 0), -1);
    ck_assert_int_eq(spool_read(sp, 5, got, 5), 0);
    ck_assert(memcmp(got, "56789", 5) == 0);
    spool_free(sp);
    spool_free(NULL);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(a_missing_directory_is_an_error)
{
    errno = 0;
    ck_assert_ptr_null(spool_open("/nonexistent/lazykv-spool"));
    ck_assert_int_eq(errno, ENOENT);
}
END_TEST

START_TEST(tmpdir_is_the_default)
{
    char dir[64];
    make_dir(dir, sizeof(dir));
    const char *old = getenv("TMPDIR");
    char *saved = old ? strdup(old) : NULL;
    setenv("TMPDIR", "/nonexistent/lazykv-spool", 1);
    ck_assert_ptr_null(spool_open(NULL)); /* it went where TMPDIR says */
    setenv("TMPDIR", dir, 1);
    struct spool *sp = spool_open(NULL);
    ck_assert_ptr_nonnull(sp);
    spool_free(sp);
    if (saved) {
        setenv("TMPDIR", saved, 1);
        free(saved);
    } else {
        unsetenv("TMPDIR");
    }
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

START_TEST(room_is_counted_against_the_file_system)
{
    char dir[64];
    make_dir(dir, sizeof(dir));
    ck_assert_int_eq(spool_room(dir, 1), 1);
    ck_assert_int_eq(spool_room(dir, 1ULL << 62), 0); /* no disk is that large */
    struct spool *sp = spool_open(dir);
    ck_assert_ptr_nonnull(sp);
    static char byte = 'x';
    ck_assert_int_eq(spool_append(sp, &byte, 1), 0);
    spool_free(sp);
    ck_assert_int_eq(rmdir(dir), 0);
}
END_TEST

Suite *spool_suite(void);
Suite *spool_suite(void)
{
    Suite *s = suite_create("spool");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, appends_read_back_at_any_offset);
    tcase_add_test(tc, reads_past_the_end_are_refused);
    tcase_add_test(tc, a_missing_directory_is_an_error);
    tcase_add_test(tc, tmpdir_is_the_default);
    tcase_add_test(tc, room_is_counted_against_the_file_system);
    suite_add_tcase(s, tc);
    return s;
}
