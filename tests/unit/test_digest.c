/* digest: Content-Digest / Repr-Digest / Content-MD5, the streaming hasher,
 * Repr-Digest formatting, content-addressed keys. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "digest.h"

#define SHA256_EMPTY_HEX "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
#define SHA256_ABC_HEX "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
#define SHA512_ABC_HEX "ddaf35a193617abacc417349ae20413112e6fa4e89a97ea20a9eeee64b55d39a" \
                       "2192992a274fc1a836ba3c23a3feebbd454d4423643ce80e2a9ac94fa54ca49f"
#define MD5_ABC_HEX "900150983cd24fb0d6963f7d28e17f72"

#define SHA256_ABC_B64 "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0="
#define SHA256_EMPTY_B64 "47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU="
#define SHA512_ABC_B64 "3a81oZNherrMQXNJriBBMRLm+k6JqX6iCp7u5ktV05ohkpkqJ0/B" \
                       "qDa6PCOj/uu9RU1EI2Q86A4qmslPpUyknw=="
#define MD5_ABC_B64 "kAFQmDzST7DWlj99KOF/cg=="

/* The hasher's finished digest of alg in hex. */
static const char *hex_of(const struct digest_hasher *h, enum digest_alg alg)
{
    static char out[2 * DIGEST_MAX_LEN + 1];
    const uint8_t *d = digest_hasher_result(h, alg);
    ck_assert_ptr_nonnull(d);
    digest_hex(d, digest_len(alg), out);
    return out;
}

/* Hashes text (fed in pieces of step bytes) with every algorithm. */
static void hash_all(struct digest_hasher *h, const char *text, size_t step)
{
    unsigned all = DIGEST_BIT(DIGEST_SHA256) | DIGEST_BIT(DIGEST_SHA512) | DIGEST_BIT(DIGEST_MD5);
    ck_assert_int_eq(digest_hasher_init(h, all), LKV_OK);
    size_t len = strlen(text);
    for (size_t off = 0; off < len; off += step) {
        size_t n = len - off < step ? len - off : step;
        ck_assert_int_eq(digest_hasher_update(h, text + off, n), LKV_OK);
    }
    digest_hasher_finish(h);
    ck_assert_uint_eq(h->length, len);
}

START_TEST(known_vectors)
{
    struct digest_hasher h;
    hash_all(&h, "", 1);
    ck_assert_str_eq(hex_of(&h, DIGEST_SHA256), SHA256_EMPTY_HEX);
    ck_assert_str_eq(hex_of(&h, DIGEST_MD5), "d41d8cd98f00b204e9800998ecf8427e");
    digest_hasher_free(&h);
    hash_all(&h, "abc", 3);
    ck_assert_str_eq(hex_of(&h, DIGEST_SHA256), SHA256_ABC_HEX);
    ck_assert_str_eq(hex_of(&h, DIGEST_SHA512), SHA512_ABC_HEX);
    ck_assert_str_eq(hex_of(&h, DIGEST_MD5), MD5_ABC_HEX);
    digest_hasher_free(&h); /* after finish: nothing left to release */
}
END_TEST

START_TEST(one_call_sha256)
{
    uint8_t d[DIGEST_SHA256_LEN];
    char hex[DIGEST_HEX_LEN + 1];
    ck_assert_int_eq(digest_sha256("abc", 3, d), LKV_OK);
    digest_hex(d, sizeof(d), hex);
    ck_assert_str_eq(hex, SHA256_ABC_HEX);
    ck_assert_int_eq(digest_sha256(NULL, 0, d), LKV_OK); /* an empty value read as NULL */
    digest_hex(d, sizeof(d), hex);
    ck_assert_str_eq(hex, SHA256_EMPTY_HEX);
}
END_TEST

START_TEST(chunk_by_chunk_equals_whole)
{
    struct digest_hasher h;
    hash_all(&h, "abc", 1); /* "a", "b", "c" */
    ck_assert_str_eq(hex_of(&h, DIGEST_SHA256), SHA256_ABC_HEX);
    ck_assert_str_eq(hex_of(&h, DIGEST_SHA512), SHA512_ABC_HEX);
    ck_assert_str_eq(hex_of(&h, DIGEST_MD5), MD5_ABC_HEX);

    /* 3 MiB + 1 in 1 MiB pieces against GnuTLS in one call */
    size_t len = (3u << 20) + 1;
    char *big = malloc(len);
    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i < len; i++)
        big[i] = (char)(i * 131 + (i >> 9));
    struct digest_hasher s;
    ck_assert_int_eq(digest_hasher_init(&s, DIGEST_BIT(DIGEST_SHA256)), LKV_OK);
    for (size_t off = 0; off < len; off += 1u << 20)
        ck_assert_int_eq(digest_hasher_update(&s, big + off, len - off < (1u << 20) ? len - off
                                                                                   : 1u << 20),
                         LKV_OK);
    ck_assert_int_eq(digest_hasher_update(&s, big, 0), LKV_OK);
    digest_hasher_finish(&s);
    uint8_t want[32];
    ck_assert_int_eq(gnutls_hash_fast(GNUTLS_DIG_SHA256, big, len, want), 0);
    ck_assert_mem_eq(digest_hasher_result(&s, DIGEST_SHA256), want, 32);
    ck_assert_int_eq(digest_hasher_update(&s, "x", 1), LKV_EINTERNAL); /* finished */
    free(big);
}
END_TEST

START_TEST(only_what_is_asked)
{
    struct digest_hasher h;
    ck_assert_int_eq(digest_hasher_init(&h, DIGEST_BIT(DIGEST_SHA256)), LKV_OK);
    ck_assert_ptr_null(digest_hasher_result(&h, DIGEST_SHA256)); /* not finished */
    char key[DIGEST_HEX_LEN + 1];
    ck_assert_int_eq(digest_sha256_hex(&h, key), -1);
    ck_assert_int_eq(digest_hasher_update(&h, "abc", 3), LKV_OK);
    digest_hasher_finish(&h);
    ck_assert_ptr_null(digest_hasher_result(&h, DIGEST_SHA512));
    ck_assert_ptr_null(digest_hasher_result(&h, DIGEST_MD5));
    /* an expectation the hasher did not compute is never confirmed */
    struct digest_expect e;
    const char *why = NULL;
    digest_expect_init(&e);
    ck_assert_int_eq(digest_parse_field(&e, DIGEST_CONTENT_DIGEST, "sha-512=:" SHA512_ABC_B64 ":",
                                        &why), LKV_OK);
    const struct digest_expected *bad = digest_mismatch(&h, &e);
    ck_assert_ptr_nonnull(bad);
    ck_assert_str_eq(digest_expected_name(bad), "Content-Digest sha-512");
}
END_TEST

START_TEST(an_aborted_upload_is_freed)
{
    struct digest_hasher h;
    ck_assert_int_eq(digest_hasher_init(&h, DIGEST_BIT(DIGEST_SHA256) | DIGEST_BIT(DIGEST_MD5)),
                     LKV_OK);
    ck_assert_int_eq(digest_hasher_update(&h, "ab", 2), LKV_OK);
    digest_hasher_free(&h); /* no finish: valgrind and ASan see any leak */
    digest_hasher_free(&h);
    ck_assert_ptr_null(digest_hasher_result(&h, DIGEST_SHA256));
}
END_TEST

/* Parses the two dictionaries and Content-MD5 (each NULL when absent),
 * hashes "abc" with what they need, and returns the name of the first
 * mismatch, or NULL. */
static const char *check_abc(const char *content_digest, const char *repr_digest,
                             const char *content_md5)
{
    struct digest_expect e;
    const char *why = NULL;
    digest_expect_init(&e);
    if (content_digest)
        ck_assert_int_eq(digest_parse_field(&e, DIGEST_CONTENT_DIGEST, content_digest, &why),
                         LKV_OK);
    if (repr_digest)
        ck_assert_int_eq(digest_parse_field(&e, DIGEST_REPR_DIGEST, repr_digest, &why), LKV_OK);
    if (content_md5)
        ck_assert_int_eq(digest_parse_content_md5(&e, content_md5, &why), LKV_OK);
    struct digest_hasher h;
    ck_assert_int_eq(digest_hasher_init(&h, DIGEST_BIT(DIGEST_SHA256) | digest_expect_algs(&e)),
                     LKV_OK);
    ck_assert_int_eq(digest_hasher_update(&h, "abc", 3), LKV_OK);
    digest_hasher_finish(&h);
    const struct digest_expected *bad = digest_mismatch(&h, &e);
    return bad ? digest_expected_name(bad) : NULL;
}

START_TEST(matches)
{
    ck_assert_ptr_null(check_abc(NULL, NULL, NULL));
    ck_assert_ptr_null(check_abc("sha-256=:" SHA256_ABC_B64 ":", NULL, NULL));
    ck_assert_ptr_null(check_abc(NULL, "sha-512=:" SHA512_ABC_B64 ":", NULL));
    ck_assert_ptr_null(check_abc(NULL, NULL, MD5_ABC_B64));
    ck_assert_ptr_null(check_abc("sha-256=:" SHA256_ABC_B64 ":, sha-512=:" SHA512_ABC_B64 ":",
                                 "sha-512=:" SHA512_ABC_B64 ":", " " MD5_ABC_B64 " "));
}
END_TEST

START_TEST(mismatch_on_each_algorithm)
{
    const char *s256 = "sha-256=:" SHA256_EMPTY_B64 ":"; /* of "", not "abc" */
    ck_assert_str_eq(check_abc(s256, NULL, NULL), "Content-Digest sha-256");
    ck_assert_str_eq(check_abc(NULL, s256, NULL), "Repr-Digest sha-256");
    ck_assert_str_eq(check_abc(NULL, NULL, "1B2M2Y8AsgTpgAmY7PhCfg=="), "Content-MD5");
    /* the one that fails is named, whatever its place */
    ck_assert_str_eq(check_abc("sha-256=:" SHA256_ABC_B64 ":", "sha-256=:" SHA256_EMPTY_B64 ":",
                               MD5_ABC_B64), "Repr-Digest sha-256");
    ck_assert_str_eq(check_abc("sha-256=:" SHA256_ABC_B64 ":", NULL, "1B2M2Y8AsgTpgAmY7PhCfg=="),
                     "Content-MD5");
}
END_TEST

START_TEST(sha512_mismatch)
{
    /* the SHA-512 of "" where "abc" was sent */
    const char *s512 = "sha-512=:z4PhNX7vuL3xVChQ1m2AB9Yg5AULVxXcg/SpIdNs6c5H0NE8XYXysP+DGNKHfuwv"
                       "Y7kxvUdBeoGlODJ6+SfaPg==:";
    ck_assert_str_eq(check_abc(s512, NULL, NULL), "Content-Digest sha-512");
    ck_assert_str_eq(check_abc(NULL, s512, NULL), "Repr-Digest sha-512");
    ck_assert_str_eq(check_abc("sha-256=:" SHA256_ABC_B64 ":, " "sha-512=:" SHA512_ABC_B64 ":",
                               s512, NULL), "Repr-Digest sha-512");
}
END_TEST

START_TEST(unknown_algorithms_are_ignored)
{
    struct digest_expect e;
    const char *why = NULL;
    digest_expect_init(&e);
    const char *v = "md5=:" MD5_ABC_B64 ":, unixcksum=916142062, adler=?1, crc32c=abc/d:e,"
                    " id-sha-256=:AAAA:;q=0.5, x=(1 \"a\" :AA==: t ?0);p, y=-1.5, *z=\"q\\\"\"";
    ck_assert_int_eq(digest_parse_field(&e, DIGEST_CONTENT_DIGEST, v, &why), LKV_OK);
    ck_assert_int_eq(e.n, 0);
    ck_assert_int_eq(digest_parse_field(&e, DIGEST_REPR_DIGEST, "", &why), LKV_OK);
    ck_assert_int_eq(digest_parse_field(&e, DIGEST_REPR_DIGEST, " \t", &why), LKV_OK);
    ck_assert_int_eq(e.n, 0);
    ck_assert_uint_eq(digest_expect_algs(&e), 0);
}
END_TEST

/* The value must be refused; e keeps what it had. */
static void refused(enum digest_field field, const char *value, const char *why_part)
{
    struct digest_expect e;
    const char *why = NULL;
    digest_expect_init(&e);
    ck_assert_int_eq(digest_parse_field(&e, DIGEST_CONTENT_DIGEST, "sha-256=:" SHA256_ABC_B64 ":",
                                        &why), LKV_OK);
    ck_assert_msg(digest_parse_field(&e, field, value, &why) == LKV_EBADREQ, "accepted: %s", value);
    ck_assert_ptr_nonnull(why);
    ck_assert_msg(strstr(why, why_part) != NULL, "%s: %s", value, why);
    ck_assert_int_eq(e.n, 1);
}

START_TEST(malformed_fields)
{
    const enum digest_field CD = DIGEST_CONTENT_DIGEST, RD = DIGEST_REPR_DIGEST;
    /* a known algorithm with a value that is not its digest */
    refused(CD, "sha-256=:AAAA:", "sha-256 must be");             /* 3 bytes */
    refused(CD, "sha-256=" SHA256_ABC_HEX, "sha-256 must be");    /* a token, hex */
    refused(CD, "sha-256", "sha-256 must be");                    /* true */
    refused(CD, "sha-256=\"" SHA256_ABC_B64 "\"", "sha-256 must be");
    refused(RD, "sha-512=:" SHA256_ABC_B64 ":", "Repr-Digest: sha-512 must be");
    refused(CD, "sha-256=(:" SHA256_ABC_B64 ":)", "sha-256 must be"); /* an inner list */
    /* not a dictionary at all */
    refused(CD, "SHA-256=:" SHA256_ABC_B64 ":", "not a structured-field dictionary");
    refused(CD, "sha-256=:" SHA256_ABC_B64 ":,", "not a structured-field");   /* trailing comma */
    refused(CD, ",sha-256=:" SHA256_ABC_B64 ":", "not a structured-field");
    refused(CD, "sha-256=:" SHA256_ABC_B64 ": sha-512=:" SHA512_ABC_B64 ":", "not a structured");
    refused(CD, "sha-256=:" SHA256_ABC_B64, "not a structured-field");  /* no closing colon */
    refused(CD, "sha-256=:not base64!:", "not a structured-field");
    refused(CD, "sha-256=:A=AA:", "not a structured-field");           /* '=' inside */
    refused(CD, "sha-256=:A:", "not a structured-field");              /* one char */
    refused(CD, "x=:!!:", "not a structured-field");  /* unknown, but still malformed */
    refused(CD, "x=\"open", "not a structured-field");
    refused(CD, "x=1234567890123456", "not a structured-field");   /* 16-digit integer */
    refused(CD, "x=1.2345", "not a structured-field");
    refused(CD, "x=1.", "not a structured-field");
    refused(CD, "x=(1 2", "not a structured-field");
    refused(CD, "x=?2", "not a structured-field");
    refused(CD, "x=;", "not a structured-field");
    refused(CD, "x;=1", "not a structured-field");
    refused(CD, "x=\"\xc3\xa9\"", "not a structured-field");
    refused(RD, "=1", "Repr-Digest is not");
}
END_TEST

START_TEST(dictionary_rules)
{
    struct digest_expect e;
    const char *why = NULL;
    digest_expect_init(&e);
    /* a repeated member: the last one counts (RFC 8941 4.2.2) */
    ck_assert_int_eq(digest_parse_field(&e, DIGEST_CONTENT_DIGEST,
                                        "sha-256=:AAAA:, sha-256=:" SHA256_ABC_B64 ":", &why),
                     LKV_OK);
    ck_assert_int_eq(e.n, 1);
    ck_assert_int_eq(digest_parse_field(&e, DIGEST_CONTENT_DIGEST,
                                        "sha-256=:" SHA256_ABC_B64 ":, sha-256=?1", &why),
                     LKV_EBADREQ);
    /* parameters on a digest are allowed and ignored; padding may be left out */
    const char *unpadded = "sha-256=:ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0:;a=1;b";
    ck_assert_int_eq(digest_parse_field(&e, DIGEST_REPR_DIGEST, unpadded, &why), LKV_OK);
    ck_assert_int_eq(e.n, 2);
    ck_assert_int_eq(e.item[1].field, DIGEST_REPR_DIGEST);
    ck_assert_int_eq(e.item[1].alg, DIGEST_SHA256);
    uint8_t want[32];
    ck_assert_int_eq(gnutls_hash_fast(GNUTLS_DIG_SHA256, "abc", 3, want), 0);
    ck_assert_mem_eq(e.item[1].value, want, 32);
    /* the same field again replaces, never adds */
    ck_assert_int_eq(digest_parse_field(&e, DIGEST_REPR_DIGEST, "sha-256=:" SHA256_EMPTY_B64 ":",
                                        &why), LKV_OK);
    ck_assert_int_eq(e.n, 2);
    ck_assert_uint_eq(digest_expect_algs(&e), DIGEST_BIT(DIGEST_SHA256));
    /* every slot at once */
    ck_assert_int_eq(digest_parse_field(&e, DIGEST_CONTENT_DIGEST,
                                        "sha-512=:" SHA512_ABC_B64 ":", &why), LKV_OK);
    ck_assert_int_eq(digest_parse_field(&e, DIGEST_REPR_DIGEST,
                                        "sha-512=:" SHA512_ABC_B64 ":", &why), LKV_OK);
    ck_assert_int_eq(digest_parse_content_md5(&e, MD5_ABC_B64, &why), LKV_OK);
    ck_assert_int_eq(e.n, DIGEST_EXPECT_MAX);
}
END_TEST

START_TEST(content_md5)
{
    struct digest_expect e;
    const char *why = NULL;
    digest_expect_init(&e);
    ck_assert_int_eq(digest_parse_content_md5(&e, "kAFQmDzST7DWlj99KOF/cg", &why), LKV_OK);
    ck_assert_int_eq(digest_parse_content_md5(&e, MD5_ABC_HEX, &why), LKV_EBADREQ); /* hex */
    ck_assert_ptr_nonnull(strstr(why, "Content-MD5"));
    ck_assert_int_eq(digest_parse_content_md5(&e, "", &why), LKV_EBADREQ);
    ck_assert_int_eq(digest_parse_content_md5(&e, SHA256_ABC_B64, &why), LKV_EBADREQ);
    ck_assert_int_eq(digest_parse_content_md5(&e, "kAFQmDzST7DWlj99 KOF/cg==", &why), LKV_EBADREQ);
    ck_assert_int_eq(e.n, 1);
    ck_assert_int_eq(e.item[0].field, DIGEST_CONTENT_MD5);
    ck_assert_int_eq(e.item[0].alg, DIGEST_MD5);
}
END_TEST

START_TEST(repr_digest_format_round_trip)
{
    struct digest_hasher h;
    hash_all(&h, "abc", 2);
    struct buf b = BUF_INIT;
    ck_assert_int_eq(digest_format(&b, DIGEST_SHA256, digest_hasher_result(&h, DIGEST_SHA256)), 0);
    ck_assert_str_eq(b.data, "sha-256=:" SHA256_ABC_B64 ":");
    ck_assert_int_eq(buf_puts(&b, ", "), 0);
    ck_assert_int_eq(digest_format(&b, DIGEST_SHA512, digest_hasher_result(&h, DIGEST_SHA512)), 0);
    ck_assert_str_eq(b.data, "sha-256=:" SHA256_ABC_B64 ":, sha-512=:" SHA512_ABC_B64 ":");
    struct digest_expect e;
    const char *why = NULL;
    digest_expect_init(&e);
    ck_assert_int_eq(digest_parse_field(&e, DIGEST_REPR_DIGEST, b.data, &why), LKV_OK);
    ck_assert_int_eq(e.n, 2);
    ck_assert_ptr_null(digest_mismatch(&h, &e));
    buf_free(&b);
}
END_TEST

START_TEST(content_addressed_key)
{
    struct digest_hasher h;
    char key[DIGEST_HEX_LEN + 1];
    ck_assert_int_eq(digest_hasher_init(&h, DIGEST_BIT(DIGEST_SHA256)), LKV_OK);
    digest_hasher_finish(&h);
    ck_assert_int_eq(digest_sha256_hex(&h, key), 0);
    ck_assert_str_eq(key, SHA256_EMPTY_HEX);
    hash_all(&h, "abc", 1);
    ck_assert_int_eq(digest_sha256_hex(&h, key), 0);
    ck_assert_str_eq(key, SHA256_ABC_HEX);
    ck_assert_uint_eq(strlen(key), 64);
}
END_TEST

START_TEST(names)
{
    ck_assert_str_eq(digest_alg_name(DIGEST_SHA256), "sha-256");
    ck_assert_str_eq(digest_alg_name(DIGEST_SHA512), "sha-512");
    ck_assert_str_eq(digest_alg_name(DIGEST_MD5), "md5");
    ck_assert_uint_eq(digest_len(DIGEST_SHA256), 32);
    ck_assert_uint_eq(digest_len(DIGEST_SHA512), 64);
    ck_assert_uint_eq(digest_len(DIGEST_MD5), 16);
}
END_TEST

Suite *digest_suite(void)
{
    Suite *s = suite_create("digest");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, known_vectors);
    tcase_add_test(tc, one_call_sha256);
    tcase_add_test(tc, chunk_by_chunk_equals_whole);
    tcase_add_test(tc, only_what_is_asked);
    tcase_add_test(tc, an_aborted_upload_is_freed);
    tcase_add_test(tc, matches);
    tcase_add_test(tc, mismatch_on_each_algorithm);
    tcase_add_test(tc, sha512_mismatch);
    tcase_add_test(tc, unknown_algorithms_are_ignored);
    tcase_add_test(tc, malformed_fields);
    tcase_add_test(tc, dictionary_rules);
    tcase_add_test(tc, content_md5);
    tcase_add_test(tc, repr_digest_format_round_trip);
    tcase_add_test(tc, content_addressed_key);
    tcase_add_test(tc, names);
    suite_add_tcase(s, tc);
    return s;
}
