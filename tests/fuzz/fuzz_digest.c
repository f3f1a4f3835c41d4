/* libFuzzer target: Content-Digest / Repr-Digest / Content-MD5 parsing on
 * arbitrary bytes; every digest accepted must survive Repr-Digest
 * formatting and parsing again unchanged; the hasher fed the input in two
 * pieces must agree with GnuTLS in one call. */
#include <gnutls/crypto.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_input.h"

#include "buf.h"
#include "digest.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Formats x as a dictionary, parses it back: the same bytes. */
static void round_trip(const struct digest_expected *x)
{
    if (x->alg == DIGEST_MD5)
        return; /* Content-MD5 is not a dictionary member we read */
    struct buf b = BUF_INIT;
    struct digest_expect e;
    const char *why = NULL;
    digest_expect_init(&e);
    if (digest_format(&b, x->alg, x->value) != 0)
        return;
    if (digest_parse_field(&e, DIGEST_REPR_DIGEST, b.data, &why) != LKV_OK || e.n != 1 ||
        e.item[0].alg != x->alg || memcmp(e.item[0].value, x->value, digest_len(x->alg)) != 0)
        abort();
    buf_free(&b);
}

static void parse_all(const char *s)
{
    struct digest_expect e;
    const char *why = NULL;
    digest_expect_init(&e);
    if (digest_parse_field(&e, DIGEST_CONTENT_DIGEST, s, &why) != LKV_OK && why == NULL)
        abort();
    digest_parse_field(&e, DIGEST_REPR_DIGEST, s, &why);
    digest_parse_content_md5(&e, s, &why);
    if (e.n < 0 || e.n > DIGEST_EXPECT_MAX)
        abort();
    for (int i = 0; i < e.n; i++) {
        round_trip(&e.item[i]);
        if (digest_expected_name(&e.item[i]) == NULL)
            abort();
    }
}

static void hash_in_two(const uint8_t *data, size_t size)
{
    struct digest_hasher h;
    unsigned all = DIGEST_BIT(DIGEST_SHA256) | DIGEST_BIT(DIGEST_SHA512) | DIGEST_BIT(DIGEST_MD5);
    if (digest_hasher_init(&h, all) != LKV_OK)
        return;
    size_t cut = size ? data[0] % (size + 1) : 0;
    if (digest_hasher_update(&h, data, cut) != LKV_OK ||
        digest_hasher_update(&h, data + cut, size - cut) != LKV_OK) {
        digest_hasher_free(&h);
        return;
    }
    digest_hasher_finish(&h);
    uint8_t want[32];
    char hex[DIGEST_HEX_LEN + 1];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, data, size, want) != 0)
        abort();
    if (memcmp(digest_hasher_result(&h, DIGEST_SHA256), want, 32) != 0 ||
        digest_sha256_hex(&h, hex) != 0 || strlen(hex) != DIGEST_HEX_LEN)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstring(data, size);
    if (s == NULL)
        return 0;
    parse_all(s);
    free(s);
    hash_in_two(data, size);
    return 0;
}
