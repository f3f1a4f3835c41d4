/*
 * digest.h -- integrity digests of values: the request fields that carry
 * them (RFC 9530 Content-Digest and Repr-Digest, RFC 1864 Content-MD5), the
 * Repr-Digest lazykv answers with, an incremental hasher fed chunk by chunk
 * as a body streams, and the lowercase hex SHA-256 that names a
 * content-addressed key. Parsing and formatting are pure (fuzzed); the
 * hasher uses GnuTLS.
 *
 * A write is checked against every digest the client sent: each
 * (field, algorithm) it names is one expectation, and after the last byte
 * digest_mismatch() names the first that failed, for the 400 problem
 * document. Content-Digest and Repr-Digest both describe the body of a
 * write here: lazykv stores the body as it arrives (no content coding, no
 * partial PUT), so content and representation are the same bytes.
 *
 * Algorithms: sha-256 and sha-512, the two that RFC 9530 does not deprecate;
 * other dictionary members (md5, sha, crc32c, unixsum, ... and names not
 * registered at all) are ignored, as RFC 9530 lets a recipient do. MD5 is
 * computed only for Content-MD5, which S3 clients still send.
 */
#ifndef LKV_DIGEST_H
#define LKV_DIGEST_H

#include <gnutls/crypto.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "lkv.h"

enum digest_alg { DIGEST_SHA256, DIGEST_SHA512, DIGEST_MD5, DIGEST_ALGS };

#define DIGEST_BIT(alg) (1u << (alg))
#define DIGEST_MAX_LEN 64                 /* bytes: SHA-512 */
#define DIGEST_SHA256_LEN 32
#define DIGEST_HEX_LEN (2 * DIGEST_SHA256_LEN) /* a content-addressed key */

/* The request field an expected digest came from. */
enum digest_field { DIGEST_CONTENT_DIGEST, DIGEST_REPR_DIGEST, DIGEST_CONTENT_MD5, DIGEST_FIELDS };

struct digest_expected {
    enum digest_field field;
    enum digest_alg alg;
    uint8_t value[DIGEST_MAX_LEN];    /* digest_len(alg) bytes used */
};

/* sha-256 and sha-512 from each of the two dictionaries, and Content-MD5 */
#define DIGEST_EXPECT_MAX 5

/* What a write must hash to. Zero it (or digest_expect_init) first. */
struct digest_expect {
    struct digest_expected item[DIGEST_EXPECT_MAX];
    int n;
};

/* Bytes of a digest of alg (32, 64, 16). */
size_t digest_len(enum digest_alg alg);

/* The algorithm's name as a dictionary key: "sha-256", "sha-512", "md5". */
const char *digest_alg_name(enum digest_alg alg);

/* How a problem document names an expectation, e.g. "Content-Digest
 * sha-256", "Repr-Digest sha-512", "Content-MD5". Static. */
const char *digest_expected_name(const struct digest_expected *x);

void digest_expect_init(struct digest_expect *e);

/* Reads a Content-Digest or Repr-Digest field value (field says which;
 * NUL-terminated) into e: one expectation per sha-256 / sha-512 member (a
 * repeated member: the last one counts, as RFC 8941 says). Returns LKV_OK
 * (also for an empty value, or one with no algorithm we know), or
 * LKV_EBADREQ with a static *why when the value is not a structured-field
 * dictionary (RFC 8941), or a sha-256 / sha-512 member is not a byte
 * sequence of the right length. RFC 8941 would have a malformed field
 * ignored; here it fails the write instead, because ignoring it would skip
 * the check the client asked for. e is unchanged on error. */
enum lkv_status digest_parse_field(struct digest_expect *e, enum digest_field field,
                                   const char *value, const char **why);

/* Reads a Content-MD5 value (RFC 1864: the base64 of 16 bytes; surrounding
 * blanks allowed, padding optional) into e. LKV_OK, or LKV_EBADREQ with a
 * static *why (e unchanged). */
enum lkv_status digest_parse_content_md5(struct digest_expect *e, const char *value,
                                         const char **why);

/* The algorithms e needs (DIGEST_BIT set). */
unsigned digest_expect_algs(const struct digest_expect *e);

/* Hashes a body as it streams, with up to three algorithms at once. Lives
 * in the request's state; init, update per chunk, then finish (results
 * kept in the struct) or free (an aborted upload). */
struct digest_hasher {
    gnutls_hash_hd_t h[DIGEST_ALGS];      /* owned until finish/free; NULL when
                                             the algorithm is not computed */
    unsigned algs;                        /* DIGEST_BIT set */
    int finished;
    uint64_t length;                      /* bytes hashed */
    uint8_t out[DIGEST_ALGS][DIGEST_MAX_LEN]; /* the results, once finished */
};

/* Starts hashing with algs (DIGEST_BIT set; lazykv always wants SHA-256, so
 * callers pass DIGEST_BIT(DIGEST_SHA256) | digest_expect_algs(e)).
 * LKV_OK; LKV_ENOMEM, or LKV_EINTERNAL when GnuTLS refuses an algorithm
 * (MD5 in FIPS mode): h is then left freed. */
enum lkv_status digest_hasher_init(struct digest_hasher *h, unsigned algs);

/* Feeds len more bytes. LKV_OK, or LKV_EINTERNAL (GnuTLS failed; the
 * caller still frees h). */
enum lkv_status digest_hasher_update(struct digest_hasher *h, const void *data, size_t len);

/* Ends hashing: the results are in h->out, handles released. */
void digest_hasher_finish(struct digest_hasher *h);

/* Releases the handles of an unfinished hasher. Safe after finish, twice,
 * and on a hasher whose init failed. */
void digest_hasher_free(struct digest_hasher *h);

/* The finished digest of alg, or NULL (not computed, not finished). */
const uint8_t *digest_hasher_result(const struct digest_hasher *h, enum digest_alg alg);

/* After finish: the first expectation of e that h's results do not meet
 * (an algorithm h did not compute counts as not met: never confirm what
 * was not checked), or NULL when all hold. The pointer is into e. */
const struct digest_expected *digest_mismatch(const struct digest_hasher *h,
                                              const struct digest_expect *e);

/* The SHA-256 of len bytes in memory, in one call (a value already whole:
 * a read's, from before digests were stored). LKV_OK, or LKV_EINTERNAL
 * when GnuTLS fails (out untouched). */
enum lkv_status digest_sha256(const void *data, size_t len, uint8_t out[DIGEST_SHA256_LEN]);

/* Appends "sha-256=:BASE64:" (the algorithm's dictionary key, then the
 * digest as a byte sequence): a Repr-Digest field value. 0, or -1 when out
 * of memory. */
int digest_format(struct buf *out, enum digest_alg alg, const uint8_t *digest);

/* Writes the len bytes as lowercase hex and a NUL: out holds 2 * len + 1. */
void digest_hex(const uint8_t *digest, size_t len, char *out);

/* The content-addressed key of a finished hash: its SHA-256 in lowercase
 * hex (DIGEST_HEX_LEN characters and a NUL). 0, or -1 when h has no
 * finished SHA-256. */
int digest_sha256_hex(const struct digest_hasher *h, char out[DIGEST_HEX_LEN + 1]);

#endif
