/* config: strict numbers, listen addresses, whole files. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

START_TEST(strict_integers)
{
    long long n;
    ck_assert_int_eq(config_parse_ll("42", &n), 0);
    ck_assert_int_eq(n, 42);
    ck_assert_int_eq(config_parse_ll("-7", &n), 0);
    ck_assert_int_eq(n, -7);
    ck_assert_int_eq(config_parse_ll("010", &n), 0);
    ck_assert_int_eq(n, 10); /* decimal, not octal */
    ck_assert_int_eq(config_parse_ll("0x10", &n), -1);
    ck_assert_int_eq(config_parse_ll("12abc", &n), -1);
    ck_assert_int_eq(config_parse_ll("", &n), -1);
    ck_assert_int_eq(config_parse_ll("-", &n), -1);
    ck_assert_int_eq(config_parse_ll(" 1", &n), -1);
    ck_assert_int_eq(config_parse_ll("99999999999999999999", &n), -1);
}
END_TEST

START_TEST(listen_addresses)
{
    char *h;
    int p;
    ck_assert_int_eq(config_parse_listen("127.0.0.1:8080", &h, &p), 0);
    ck_assert_str_eq(h, "127.0.0.1");
    ck_assert_int_eq(p, 8080);
    free(h);
    ck_assert_int_eq(config_parse_listen("[::1]:0", &h, &p), 0);
    ck_assert_str_eq(h, "::1");
    ck_assert_int_eq(p, 0);
    free(h);
    ck_assert_int_eq(config_parse_listen("host", &h, &p), -1);
    ck_assert_int_eq(config_parse_listen(":80", &h, &p), -1);
    ck_assert_int_eq(config_parse_listen("h:65536", &h, &p), -1);
    ck_assert_int_eq(config_parse_listen("h:-1", &h, &p), -1);
}
END_TEST

static char *write_tmp(const char *text)
{
    static char path[64];
    snprintf(path, sizeof(path), "/tmp/lazykv-unit-%d.cfg", (int)getpid());
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    fputs(text, f);
    fclose(f);
    return path;
}

static const char *const good =
    "[store]\npartitions = 2\n"
    "[partition-0]\nname = a\nuser = u\n"
    "[partition-1]\nname = b\nsocket = /tmp/s\nuser = u\nread_timeout = 9\n";

START_TEST(whole_file_defaults_and_test_prefix)
{
    char err[256];
    struct lkv_config *cfg = config_load(write_tmp(good), 1, err, sizeof(err));
    ck_assert_msg(cfg != NULL, "%s", err);
    ck_assert_int_eq(cfg->key_length, 250);
    ck_assert_str_eq(cfg->table_name, "data");
    ck_assert_int_eq(cfg->max_value_size, 16777216);
    ck_assert_str_eq(cfg->listen_host, "127.0.0.1");
    ck_assert_int_eq(cfg->listen_port, 8080);
    ck_assert_int_gt(cfg->threads, 0);
    ck_assert_str_eq(cfg->part[0].name, "test_a");
    ck_assert_str_eq(cfg->part[1].name, "test_b");
    ck_assert_int_eq(cfg->part[0].port, 3306);
    ck_assert_ptr_null(cfg->part[0].socket);
    ck_assert_str_eq(cfg->part[1].socket, "/tmp/s");
    ck_assert_int_eq(cfg->part[0].read_timeout, 5);
    ck_assert_int_eq(cfg->part[1].read_timeout, 9);
    config_free(cfg);
    cfg = config_load(write_tmp(good), 0, err, sizeof(err));
    ck_assert_str_eq(cfg->part[0].name, "a");
    config_free(cfg);
}
END_TEST

START_TEST(errors_are_one_precise_line)
{
    char err[256];
    const char *path = write_tmp("[store]\npartitions = 2\n[partition-0]\nname = a\nuser = u\n");
    ck_assert_ptr_null(config_load(path, 0, err, sizeof(err)));
    ck_assert_msg(strstr(err, "[partition-1] name: section [partition-1] is required") != NULL,
                  "%s", err);
    ck_assert_ptr_null(strchr(err, '\n'));
    path = write_tmp("[store]\npartitions = 1\n[partition-0]\nname = a\nuser = u\nport = 70000\n");
    ck_assert_ptr_null(config_load(path, 0, err, sizeof(err)));
    ck_assert_msg(strstr(err, "[partition-0] port: must be a whole number from 1 to 65535, got "
                              "'70000'") != NULL, "%s", err);
    path = write_tmp("[store]\npartitions = 2\n[partition-0]\nname = a\nuser = u\n"
                     "[partition-1]\nname = a\nuser = u\n");
    ck_assert_ptr_null(config_load(path, 0, err, sizeof(err)));
    ck_assert_msg(strstr(err, "[partition-1] name: 'a' on the same server") != NULL, "%s", err);
    ck_assert_ptr_null(config_load("/nonexistent/x.cfg", 0, err, sizeof(err)));
    ck_assert_msg(strstr(err, "cannot open") != NULL, "%s", err);
    unlink(write_tmp(""));
}
END_TEST

Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, strict_integers);
    tcase_add_test(tc, listen_addresses);
    tcase_add_test(tc, whole_file_defaults_and_test_prefix);
    tcase_add_test(tc, errors_are_one_precise_line);
    suite_add_tcase(s, tc);
    return s;
}
