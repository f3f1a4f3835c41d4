/*
 * digest.c -- digest fields, the streaming hasher, hex keys. See digest.h.
 *
 * The dictionary reader follows RFC 8941 section 4.2 step by step but keeps
 * nothing it reads except what a known algorithm's member holds: unknown
 * members are parsed only to find where they end and whether the field is
 * well-formed.
 */
#include "digest.h"

#include <string.h>

#include "codec.h"

static const struct {
    const char *name;
    size_t len;
    gnutls_digest_algorithm_t gnutls;
} algs[DIGEST_ALGS] = {
    [DIGEST_SHA256] = {"sha-256", 32, GNUTLS_DIG_SHA256},
    [DIGEST_SHA512] = {"sha-512", 64, GNUTLS_DIG_SHA512},
    [DIGEST_MD5] = {"md5", 16, GNUTLS_DIG_MD5},
};

size_t digest_len(enum digest_alg alg)
{
    return algs[alg].len;
}

const char *digest_alg_name(enum digest_alg alg)
{
    return algs[alg].name;
}

const char *digest_expected_name(const struct digest_expected *x)
{
    static const char *const names[DIGEST_FIELDS][DIGEST_ALGS] = {
        [DIGEST_CONTENT_DIGEST] = {"Content-Digest sha-256", "Content-Digest sha-512",
                                   "Content-Digest md5"},
        [DIGEST_REPR_DIGEST] = {"Repr-Digest sha-256", "Repr-Digest sha-512", "Repr-Digest md5"},
        [DIGEST_CONTENT_MD5] = {"Content-MD5", "Content-MD5", "Content-MD5"},
    };
    return names[x->field][x->alg];
}

void digest_expect_init(struct digest_expect *e)
{
    memset(e, 0, sizeof(*e));
}

unsigned digest_expect_algs(const struct digest_expect *e)
{
    unsigned bits = 0;
    for (int i = 0; i < e->n; i++)
        bits |= DIGEST_BIT(e->item[i].alg);
    return bits;
}

/* ---- base64 (RFC 4648), as RFC 8941 byte sequences want it ----------------- */

static int b64_value(char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    return c == '+' ? 62 : c == '/' ? 63 : -1;
}

/* Decodes len characters into out (NULL: only checks them) and sets *n to
 * the decoded length. Padding may be missing and pad bits may be set (RFC
 * 8941 4.2.7 asks parsers not to fail on either); '=' only at the end, at
 * most two. 0, or -1 when the text is not base64. */
static int b64_decode(const char *s, size_t len, uint8_t *out, size_t *n)
{
    size_t pad = 0;
    while (pad < 2 && len > 0 && s[len - 1] == '=') {
        len--;
        pad++;
    }
    if (len % 4 == 1 || (pad > 0 && (len + pad) % 4 != 0))
        return -1;
    unsigned acc = 0;
    int bits = 0;
    *n = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64_value(s[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6 | (unsigned)v) & 0xFFFFFF;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (out != NULL)
                out[*n] = (uint8_t)(acc >> bits);
            (*n)++;
        }
    }
    return 0;
}

/* ---- RFC 8941 dictionary ------------------------------------------------------ */

struct cursor {
    const char *p;
};

/* A byte sequence found as a member's value. */
struct bytes_seen {
    const char *b64;   /* ref; NULL when the member was not a byte sequence */
    size_t len;
    int present;
};

static int is_lcalpha(char c)
{
    return c >= 'a' && c <= 'z';
}

static int is_alpha(char c)
{
    return is_lcalpha(c) || (c >= 'A' && c <= 'Z');
}

static int is_digit(char c)
{
    return c >= '0' && c <= '9';
}

static int is_tchar(char c)
{
    return is_alpha(c) || is_digit(c) || (c != '\0' && strchr("!#$%&'*+-.^_`|~", c) != NULL);
}

static void skip_sp(struct cursor *c)
{
    while (*c->p == ' ')
        c->p++;
}

static void skip_ows(struct cursor *c)
{
    while (*c->p == ' ' || *c->p == '\t')
        c->p++;
}

/* key = ( lcalpha / "*" ) *( lcalpha / DIGIT / "_" / "-" / "." / "*" ) */
static int parse_key(struct cursor *c, const char **key, size_t *len)
{
    const char *s = c->p;
    if (!is_lcalpha(*s) && *s != '*')
        return -1;
    while (is_lcalpha(*s) || is_digit(*s) || (*s != '\0' && strchr("_-.*", *s) != NULL))
        s++;
    *key = c->p;
    *len = (size_t)(s - c->p);
    c->p = s;
    return 0;
}

/* sf-integer (at most 15 digits) or sf-decimal (at most 12 + 3). */
static int parse_number(struct cursor *c)
{
    const char *s = c->p;
    if (*s == '-')
        s++;
    if (!is_digit(*s))
        return -1;
    size_t ndigits = 0, frac = 0;
    int decimal = 0;
    for (; is_digit(*s) || (*s == '.' && !decimal); s++) {
        if (*s == '.') {
            if (ndigits > 12)
                return -1;
            decimal = 1;
            continue;
        }
        ndigits++;
        frac += decimal;
        if (ndigits > 15) /* an integer's 15, or a decimal's 12 + 3 */
            return -1;
    }
    if (decimal && (frac == 0 || frac > 3))
        return -1;
    c->p = s;
    return 0;
}

static int parse_string(struct cursor *c)
{
    const char *s = c->p + 1; /* past the opening quote */
    for (;;) {
        char ch = *s++;
        if (ch == '"')
            break;
        if (ch == '\\') {
            if (*s != '"' && *s != '\\')
                return -1;
            s++;
        } else if (ch < 0x20 || ch > 0x7E) {
            return -1; /* also the end of the text: no closing quote */
        }
    }
    c->p = s;
    return 0;
}

/* sf-token = ( ALPHA / "*" ) *( tchar / ":" / "/" ) */
static int parse_token(struct cursor *c)
{
    const char *s = c->p + 1;
    while (is_tchar(*s) || *s == ':' || *s == '/')
        s++;
    c->p = s;
    return 0;
}

static int parse_bytes(struct cursor *c, struct bytes_seen *seen)
{
    const char *start = c->p + 1, *end = strchr(start, ':');
    size_t n;
    if (end == NULL || b64_decode(start, (size_t)(end - start), NULL, &n) != 0)
        return -1;
    if (seen != NULL) {
        seen->b64 = start;
        seen->len = (size_t)(end - start);
    }
    c->p = end + 1;
    return 0;
}

/* A bare item; when it is a byte sequence and seen is not NULL, where it is. */
static int parse_bare_item(struct cursor *c, struct bytes_seen *seen)
{
    char ch = *c->p;
    if (ch == '-' || is_digit(ch))
        return parse_number(c);
    if (ch == '"')
        return parse_string(c);
    if (is_alpha(ch) || ch == '*')
        return parse_token(c);
    if (ch == ':')
        return parse_bytes(c, seen);
    if (ch == '?' && (c->p[1] == '0' || c->p[1] == '1')) {
        c->p += 2;
        return 0;
    }
    return -1;
}

/* parameters = *( ";" *SP key [ "=" bare-item ] ) */
static int parse_parameters(struct cursor *c)
{
    while (*c->p == ';') {
        c->p++;
        skip_sp(c);
        const char *key;
        size_t len;
        if (parse_key(c, &key, &len) != 0)
            return -1;
        if (*c->p == '=') {
            c->p++;
            if (parse_bare_item(c, NULL) != 0)
                return -1;
        }
    }
    return 0;
}

/* inner-list = "(" *SP [ sf-item *( 1*SP sf-item ) *SP ] ")" parameters */
static int parse_inner_list(struct cursor *c)
{
    c->p++;
    for (;;) {
        skip_sp(c);
        if (*c->p == ')') {
            c->p++;
            return parse_parameters(c);
        }
        if (parse_bare_item(c, NULL) != 0 || parse_parameters(c) != 0)
            return -1;
        if (*c->p != ' ' && *c->p != ')')
            return -1;
    }
}

/* A member's value after its key: "=" item-or-inner-list, or parameters
 * alone (the value true). seen is filled when the value is a bare byte
 * sequence, cleared otherwise. */
static int parse_member_value(struct cursor *c, struct bytes_seen *seen)
{
    seen->b64 = NULL;
    seen->len = 0;
    if (*c->p != '=')
        return parse_parameters(c);
    c->p++;
    if (*c->p == '(')
        return parse_inner_list(c);
    if (parse_bare_item(c, seen) != 0)
        return -1;
    return parse_parameters(c);
}

static int known_alg(const char *key, size_t len)
{
    for (int a = DIGEST_SHA256; a <= DIGEST_SHA512; a++)
        if (strlen(algs[a].name) == len && memcmp(key, algs[a].name, len) == 0)
            return a;
    return -1;
}

/* Parses the dictionary, remembering the last value of sha-256 and sha-512. */
static int parse_dictionary(const char *value, struct bytes_seen seen[DIGEST_ALGS])
{
    struct cursor c = {value};
    skip_ows(&c);
    while (*c.p != '\0') {
        const char *key;
        size_t len;
        struct bytes_seen one;
        if (parse_key(&c, &key, &len) != 0 || parse_member_value(&c, &one) != 0)
            return -1;
        int a = known_alg(key, len);
        if (a >= 0) {
            seen[a] = one;
            seen[a].present = 1;
        }
        skip_ows(&c);
        if (*c.p == '\0')
            break;
        if (*c.p != ',')
            return -1;
        c.p++;
        skip_ows(&c);
        if (*c.p == '\0')
            return -1; /* a trailing comma */
    }
    return 0;
}

/* Sets (or replaces: one per field and algorithm) an expectation. */
static void expect(struct digest_expect *e, enum digest_field field, enum digest_alg alg,
                   const uint8_t *value)
{
    int i = 0;
    while (i < e->n && !(e->item[i].field == field && e->item[i].alg == alg))
        i++;
    if (i == e->n) {
        if (e->n == DIGEST_EXPECT_MAX)
            return; /* cannot happen: two fields x two algorithms + Content-MD5 */
        e->n++;
    }
    e->item[i].field = field;
    e->item[i].alg = alg;
    memcpy(e->item[i].value, value, algs[alg].len);
}

/* Decodes a byte sequence that must be a digest of alg. 0 or -1. */
static int decode_digest(const struct bytes_seen *s, enum digest_alg alg, uint8_t *out)
{
    size_t n;
    if (s->b64 == NULL || s->len > (DIGEST_MAX_LEN + 2) / 3 * 4)
        return -1;
    if (b64_decode(s->b64, s->len, NULL, &n) != 0 || n != algs[alg].len)
        return -1;
    return b64_decode(s->b64, s->len, out, &n);
}

enum lkv_status digest_parse_field(struct digest_expect *e, enum digest_field field,
                                   const char *value, const char **why)
{
    static const char *const malformed[DIGEST_FIELDS] = {
        [DIGEST_CONTENT_DIGEST] = "Content-Digest is not a structured-field dictionary (RFC 8941)",
        [DIGEST_REPR_DIGEST] = "Repr-Digest is not a structured-field dictionary (RFC 8941)",
    };
    static const char *const bad_value[DIGEST_FIELDS][2] = {
        [DIGEST_CONTENT_DIGEST] = {"Content-Digest: sha-256 must be :base64: of 32 bytes",
                                   "Content-Digest: sha-512 must be :base64: of 64 bytes"},
        [DIGEST_REPR_DIGEST] = {"Repr-Digest: sha-256 must be :base64: of 32 bytes",
                                "Repr-Digest: sha-512 must be :base64: of 64 bytes"},
    };
    if (field != DIGEST_CONTENT_DIGEST && field != DIGEST_REPR_DIGEST)
        return *why = "not a dictionary field", LKV_EBADREQ;
    struct bytes_seen seen[DIGEST_ALGS];
    memset(seen, 0, sizeof(seen));
    if (parse_dictionary(value, seen) != 0)
        return *why = malformed[field], LKV_EBADREQ;
    uint8_t d[DIGEST_ALGS][DIGEST_MAX_LEN];
    for (int a = DIGEST_SHA256; a <= DIGEST_SHA512; a++)
        if (seen[a].present && decode_digest(&seen[a], (enum digest_alg)a, d[a]) != 0)
            return *why = bad_value[field][a], LKV_EBADREQ;
    for (int a = DIGEST_SHA256; a <= DIGEST_SHA512; a++)
        if (seen[a].present)
            expect(e, field, (enum digest_alg)a, d[a]);
    return LKV_OK;
}

enum lkv_status digest_parse_content_md5(struct digest_expect *e, const char *value,
                                         const char **why)
{
    struct cursor c = {value};
    skip_ows(&c);
    size_t len = strlen(c.p);
    while (len > 0 && (c.p[len - 1] == ' ' || c.p[len - 1] == '\t'))
        len--;
    struct bytes_seen s = {c.p, len, 1};
    uint8_t d[DIGEST_MAX_LEN];
    if (decode_digest(&s, DIGEST_MD5, d) != 0)
        return *why = "Content-MD5 must be the base64 of 16 bytes (RFC 1864)", LKV_EBADREQ;
    expect(e, DIGEST_CONTENT_MD5, DIGEST_MD5, d);
    return LKV_OK;
}

/* ---- the hasher ---------------------------------------------------------------- */

enum lkv_status digest_hasher_init(struct digest_hasher *h, unsigned want)
{
    memset(h, 0, sizeof(*h));
    for (int a = 0; a < DIGEST_ALGS; a++) {
        if (!(want & DIGEST_BIT(a)))
            continue;
        int rc = gnutls_hash_init(&h->h[a], algs[a].gnutls);
        if (rc < 0) {
            h->h[a] = NULL;
            digest_hasher_free(h);
            return rc == GNUTLS_E_MEMORY_ERROR ? LKV_ENOMEM : LKV_EINTERNAL;
        }
        h->algs |= DIGEST_BIT(a);
    }
    return LKV_OK;
}

enum lkv_status digest_hasher_update(struct digest_hasher *h, const void *data, size_t len)
{
    if (h->finished)
        return LKV_EINTERNAL;
    if (len == 0)
        return LKV_OK;
    for (int a = 0; a < DIGEST_ALGS; a++)
        if (h->h[a] != NULL && gnutls_hash(h->h[a], data, len) < 0)
            return LKV_EINTERNAL;
    h->length += len;
    return LKV_OK;
}

void digest_hasher_finish(struct digest_hasher *h)
{
    for (int a = 0; a < DIGEST_ALGS; a++) {
        if (h->h[a] != NULL) {
            gnutls_hash_deinit(h->h[a], h->out[a]);
            h->h[a] = NULL;
        }
    }
    h->finished = 1;
}

void digest_hasher_free(struct digest_hasher *h)
{
    for (int a = 0; a < DIGEST_ALGS; a++) {
        if (h->h[a] != NULL) {
            gnutls_hash_deinit(h->h[a], NULL);
            h->h[a] = NULL;
        }
    }
}

const uint8_t *digest_hasher_result(const struct digest_hasher *h, enum digest_alg alg)
{
    if (!h->finished || !(h->algs & DIGEST_BIT(alg)))
        return NULL;
    return h->out[alg];
}

const struct digest_expected *digest_mismatch(const struct digest_hasher *h,
                                              const struct digest_expect *e)
{
    for (int i = 0; i < e->n; i++) {
        const struct digest_expected *x = &e->item[i];
        const uint8_t *got = digest_hasher_result(h, x->alg);
        if (got == NULL || memcmp(got, x->value, algs[x->alg].len) != 0)
            return x;
    }
    return NULL;
}

enum lkv_status digest_sha256(const void *data, size_t len, uint8_t out[DIGEST_SHA256_LEN])
{
    uint8_t d[DIGEST_SHA256_LEN];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, len ? data : "", len, d) < 0)
        return LKV_EINTERNAL;
    memcpy(out, d, sizeof(d));
    return LKV_OK;
}

/* ---- formatting ------------------------------------------------------------------ */

int digest_format(struct buf *out, enum digest_alg alg, const uint8_t *digest)
{
    size_t mark = out->len;
    if (buf_puts(out, algs[alg].name) != 0 || buf_puts(out, "=:") != 0 ||
        codec_base64_encode(out, digest, algs[alg].len) != 0 || buf_puts(out, ":") != 0) {
        out->len = mark; /* leave b as it was, as buf.h promises of an append */
        if (out->data != NULL)
            out->data[mark] = '\0';
        return -1;
    }
    return 0;
}

void digest_hex(const uint8_t *digest, size_t len, char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (size_t i = 0; i < len; i++) {
        out[2 * i] = hex[digest[i] >> 4];
        out[2 * i + 1] = hex[digest[i] & 15];
    }
    out[2 * len] = '\0';
}

int digest_sha256_hex(const struct digest_hasher *h, char out[DIGEST_HEX_LEN + 1])
{
    const uint8_t *d = digest_hasher_result(h, DIGEST_SHA256);
    if (d == NULL)
        return -1;
    digest_hex(d, DIGEST_SHA256_LEN, out);
    return 0;
}
