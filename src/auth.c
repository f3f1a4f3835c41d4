/*
 * auth.c -- bearer tokens in force, and the per-request check. See auth.h.
 */
#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <gnutls/crypto.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>

#include "buf.h"
#include "codec.h"

#define TOKENS_FILE_MAX (16 << 20) /* bytes: far more than any real file */

/* Reads the whole tokens file into a buffer, refusing one that others
 * can read: it holds hashes, not tokens, but which hashes exist and which
 * prefixes they reach is nobody else's business, and a world-readable file
 * is usually a sign it was not meant to be protected at all. */
static int read_file(const char *path, struct buf *out, char *err, size_t errlen)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        snprintf(err, errlen, "[auth] tokens_file: cannot read %s: %s", path, strerror(errno));
        return -1;
    }
    struct stat st;
    int rc = -1;
    if (fstat(fd, &st) != 0)
        snprintf(err, errlen, "[auth] tokens_file: cannot read %s: %s", path, strerror(errno));
    else if (st.st_mode & S_IROTH)
        snprintf(err, errlen, "[auth] tokens_file: %s is readable by others (chmod o-r)", path);
    else if (st.st_size > TOKENS_FILE_MAX)
        snprintf(err, errlen, "[auth] tokens_file: %s is larger than %d bytes", path,
                 TOKENS_FILE_MAX);
    else if (buf_reserve(out, (size_t)st.st_size + 1) != 0)
        snprintf(err, errlen, "[auth] tokens_file: %s: out of memory", path);
    else
        rc = 0;
    while (rc == 0) {
        ssize_t n = read(fd, out->data + out->len, out->cap - out->len);
        if (n == 0)
            break;
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 || (out->len += (size_t)n) == out->cap) {
            snprintf(err, errlen, "[auth] tokens_file: cannot read %s: %s", path,
                     n < 0 ? strerror(errno) : "it grew while being read");
            rc = -1;
        }
    }
    close(fd);
    return rc;
}

static struct auth_set *load_set(const char *path, char *err, size_t errlen)
{
    struct buf text = {0};
    struct auth_set *set = NULL;
    if (read_file(path, &text, err, errlen) == 0) {
        char why[256];
        set = authfile_parse(text.data ? text.data : "", text.len, why, sizeof(why));
        if (set == NULL)
            snprintf(err, errlen, "%s:%s", path, why);
    }
    buf_free(&text);
    return set;
}

int auth_open(struct auth *a, const char *path, char *err, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    a->path = strdup(path);
    if (a->path == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    a->set = load_set(path, err, errlen);
    if (a->set == NULL) {
        free(a->path);
        a->path = NULL;
        return -1;
    }
    pthread_rwlock_init(&a->lock, NULL);
    return 0;
}

int auth_reload(struct auth *a, char *err, size_t errlen)
{
    struct auth_set *fresh = load_set(a->path, err, errlen);
    if (fresh == NULL)
        return -1;
    pthread_rwlock_wrlock(&a->lock);
    struct auth_set *old = a->set;
    a->set = fresh;
    pthread_rwlock_unlock(&a->lock);
    auth_set_free(old);
    return 0;
}

void auth_close(struct auth *a)
{
    if (a->path == NULL)
        return;
    pthread_rwlock_destroy(&a->lock);
    auth_set_free(a->set);
    free(a->path);
    memset(a, 0, sizeof(*a));
}

/* The token of "Bearer TOKEN" (scheme case-insensitive, RFC 9110 11.1), or
 * NULL. */
static const char *bearer_token(const char *header, size_t *len)
{
    if (header == NULL || strncasecmp(header, "Bearer", 6) != 0 ||
        (header[6] != ' ' && header[6] != '\t'))
        return NULL;
    const char *t = header + 6;
    while (*t == ' ' || *t == '\t')
        t++;
    size_t n = strlen(t);
    while (n > 0 && (t[n - 1] == ' ' || t[n - 1] == '\t'))
        n--;
    *len = n;
    return n > 0 ? t : NULL;
}

/* Compares every byte whatever the first difference. */
static int same_hash(const uint8_t *x, const uint8_t *y)
{
    unsigned diff = 0;
    for (int i = 0; i < AUTH_HASH_LEN; i++)
        diff |= (unsigned)(x[i] ^ y[i]);
    return diff == 0;
}

/* The token whose hash is that of text, or NULL. Every token is compared,
 * each in constant time: how long this takes says nothing about how close
 * a guess came. (What is compared are SHA-256 digests, so a timing leak
 * would not reveal the token anyway; this keeps it that way if someone
 * ever stores the tokens themselves.) */
static const struct auth_token *find_token(const struct auth_set *set, const char *text,
                                           size_t len)
{
    uint8_t hash[AUTH_HASH_LEN];
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, text, len, hash) != 0)
        return NULL;
    const struct auth_token *found = NULL;
    for (int i = 0; i < set->ntokens; i++)
        if (same_hash(set->tokens[i].hash, hash))
            found = &set->tokens[i];
    return found;
}

enum auth_verdict auth_check(struct auth *a, const char *authorization,
                             const struct auth_need *need, char *name, unsigned *perms)
{
    size_t len;
    const char *text = bearer_token(authorization, &len);
    if (text == NULL)
        return AUTH_UNKNOWN;
    enum auth_verdict v = AUTH_UNKNOWN;
    pthread_rwlock_rdlock(&a->lock);
    const struct auth_token *tok = find_token(a->set, text, len);
    if (tok) {
        int allowed = (tok->perms & need->perm) == need->perm &&
                      (need->scope == NULL || auth_token_covers(tok, need->scope, need->scope_len));
        v = allowed ? AUTH_GRANTED : AUTH_DENIED;
        if (name)
            memcpy(name, tok->name, sizeof(tok->name));
        if (perms)
            *perms = tok->perms;
    }
    pthread_rwlock_unlock(&a->lock);
    return v;
}

int auth_new_token(char out[AUTH_TOKEN_TEXT], char hex[2 * AUTH_HASH_LEN + 1])
{
    uint8_t raw[32], hash[AUTH_HASH_LEN];
    if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw))
        return -1;
    struct buf b64 = {0};
    if (codec_base64_encode(&b64, raw, sizeof(raw)) != 0)
        return -1;
    size_t n = 0;
    for (size_t i = 0; i < b64.len && b64.data[i] != '=' && n < AUTH_TOKEN_TEXT - 1; i++) {
        char ch = b64.data[i];
        out[n++] = ch == '+' ? '-' : ch == '/' ? '_' : ch; /* base64url, RFC 4648 s5 */
    }
    out[n] = '\0';
    buf_free(&b64);
    if (gnutls_hash_fast(GNUTLS_DIG_SHA256, out, n, hash) != 0)
        return -1;
    for (int i = 0; i < AUTH_HASH_LEN; i++)
        snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    return 0;
}
