/* authfile: the tokens file parser, and the scope of a token's prefixes;
 * accesslog: the access log's line format. */
#include <check.h>
#include <string.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <arpa/inet.h>

#include "accesslog.h"
#include "authfile.h"
#include "buf.h"

#define H1 "3a9397c0d0d100b55c1ed3f8044f25da4033a74c008a3ee5b5549dce57cb0c9a"
#define H2 "0000000000000000000000000000000000000000000000000000000000000001"

static struct auth_set *parse(const char *text, char *err)
{
    return authfile_parse(text, strlen(text), err, 128);
}

START_TEST(parses_tokens_comments_and_blank_lines)
{
    char err[128] = "";
    struct auth_set *set = parse("# tokens\n\n  \t\nalice rw " H1 " app/ x%20y/\r\n"
                                 "root\twar\t" H2 "\t*\n", err);
    ck_assert_msg(set != NULL, "%s", err);
    ck_assert_int_eq(set->ntokens, 2);
    const struct auth_token *a = &set->tokens[0], *r = &set->tokens[1];
    ck_assert_str_eq(a->name, "alice");
    ck_assert_uint_eq(a->perms, AUTH_READ | AUTH_WRITE);
    ck_assert_uint_eq(a->hash[0], 0x3a);
    ck_assert_uint_eq(a->hash[31], 0x9a);
    ck_assert_int_eq(a->nprefixes, 2);
    ck_assert_int_eq(a->everything, 0);
    ck_assert_uint_eq(a->prefixes[1].len, 4);
    ck_assert(memcmp(a->prefixes[1].bytes, "x y/", 4) == 0);
    ck_assert_uint_eq(r->perms, AUTH_READ | AUTH_WRITE | AUTH_ADMIN);
    ck_assert_int_eq(r->everything, 1);
    auth_set_free(set);
    set = parse("", err); /* no tokens: nobody gets in, which is a valid state */
    ck_assert(set != NULL && set->ntokens == 0);
    auth_set_free(set);
}
END_TEST

START_TEST(refuses_the_whole_file_naming_the_line)
{
    static const struct { const char *text, *err; } bad[] = {
        {"alice rw " H1 "\n", "1: at least one PREFIX"},
        {"# ok\nalice rwx " H1 " a\n", "2: PERMISSIONS"},
        {"alice rr " H1 " a\n", "1: PERMISSIONS"},
        {"alice - " H1 " a\n", "1: PERMISSIONS"},
        {"alice r 3A9397c0d0d100b55c1ed3f8044f25da4033a74c008a3ee5b5549dce57cb0c9a a\n",
         "1: the hash"},
        {"alice r " H1 "0 a\n", "1: the hash"},
        {"alice r abc a\n", "1: the hash"},
        {"al/ice r " H1 " a\n", "1: NAME"},
        {"alice r " H1 " a\nalice w " H2 " b\n", "2: this NAME"},
        {"alice r " H1 " a\nbob w " H1 " b\n", "2: this hash"},
        {"alice r " H1 " a%zz\n", "1: a prefix has a bad %-escape"},
        {"alice\n", "1: PERMISSIONS"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        char err[128] = "";
        struct auth_set *set = parse(bad[i].text, err);
        ck_assert_msg(set == NULL, "accepted: %s", bad[i].text);
        ck_assert_msg(strncmp(err, bad[i].err, strlen(bad[i].err)) == 0, "%s -> %s", bad[i].text,
                      err);
    }
    char err[128] = "";
    static const char with_nul[] = "alice r " H1 " a\0b\n";
    ck_assert(authfile_parse(with_nul, sizeof(with_nul) - 1, err, sizeof(err)) == NULL);
    ck_assert_str_eq(err, "1: a NUL byte");
}
END_TEST

START_TEST(a_token_covers_keys_and_prefixes_under_its_own)
{
    char err[128];
    struct auth_set *set = parse("alice r " H1 " app/ %2A\nroot r " H2 " *\n", err);
    ck_assert(set != NULL);
    const struct auth_token *a = &set->tokens[0], *r = &set->tokens[1];
    ck_assert(auth_token_covers(a, "app/x", 5));
    ck_assert(auth_token_covers(a, "app/", 4));
    ck_assert(!auth_token_covers(a, "app", 3)); /* a shorter prefix reaches outside */
    ck_assert(!auth_token_covers(a, "apq/x", 5));
    ck_assert(!auth_token_covers(a, "", 0));    /* a list of everything */
    ck_assert(auth_token_covers(a, "*star", 5)); /* %2A is a literal star */
    ck_assert(auth_token_covers(r, "", 0));
    ck_assert(auth_token_covers(r, "anything", 8));
    auth_set_free(set);
}
END_TEST

START_TEST(perms_and_names)
{
    unsigned p;
    ck_assert_int_eq(authfile_parse_perms("a", 1, &p), 0);
    ck_assert_uint_eq(p, AUTH_ADMIN);
    ck_assert_int_eq(authfile_parse_perms("", 0, &p), -1);
    ck_assert_int_eq(authfile_parse_perms("R", 1, &p), -1);
    ck_assert(authfile_name_valid("ci-bot@example.org_1", 20));
    ck_assert(!authfile_name_valid("", 0));
    ck_assert(!authfile_name_valid("a b", 3));
    char long_name[66];
    memset(long_name, 'n', 65);
    long_name[65] = '\0';
    ck_assert(authfile_name_valid(long_name, 64));
    ck_assert(!authfile_name_valid(long_name, 65));
}
END_TEST

START_TEST(access_log_line)
{
    struct sockaddr_in sin = {.sin_family = AF_INET};
    inet_pton(AF_INET, "127.0.0.1", &sin.sin_addr);
    struct access_entry e = {
        .addr = (struct sockaddr *)&sin, .user = "alice", .method = "GET",
        .target = "/bucket/a%20b?x=1", .version = "HTTP/1.1", .status = 200, .bytes = 5,
        .referer = NULL, .agent = "say \"hi\"\\\n\x80", .when = 1795968835, .micros = 1234,
        .partition = 2,
    };
    struct buf out = {0};
    ck_assert_int_eq(access_log_format(&e, &out), 0);
    ck_assert_str_eq(out.data, "127.0.0.1 - alice [29/Nov/2026:16:13:55 +0000] "
                               "\"GET /bucket/a%20b?x=1 HTTP/1.1\" 200 5 \"-\" "
                               "\"say \\\"hi\\\"\\\\\\x0a\\x80\" 1234 2\n");
    e.user = "";
    e.bytes = 0;
    e.partition = -1;
    e.addr = NULL;
    ck_assert_int_eq(access_log_format(&e, &out), 0);
    ck_assert_str_eq(out.data, "- - - [29/Nov/2026:16:13:55 +0000] "
                               "\"GET /bucket/a%20b?x=1 HTTP/1.1\" 200 - \"-\" "
                               "\"say \\\"hi\\\"\\\\\\x0a\\x80\" 1234 -\n");
    buf_free(&out);
}
END_TEST

Suite *authfile_suite(void);
Suite *authfile_suite(void)
{
    Suite *s = suite_create("authfile");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, parses_tokens_comments_and_blank_lines);
    tcase_add_test(tc, refuses_the_whole_file_naming_the_line);
    tcase_add_test(tc, a_token_covers_keys_and_prefixes_under_its_own);
    tcase_add_test(tc, perms_and_names);
    tcase_add_test(tc, access_log_line);
    suite_add_tcase(s, tc);
    return s;
}
