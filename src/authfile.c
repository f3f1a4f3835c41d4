/*
 * authfile.c -- the tokens file parser. See authfile.h.
 */
#include "authfile.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"

#define BLANKS " \t\r"

struct cursor {
    const char *p, *end;
};

/* The next blank-separated field of the line, or len 0 at its end. */
static size_t next_field(struct cursor *c, const char **field)
{
    while (c->p < c->end && strchr(BLANKS, *c->p) && *c->p)
        c->p++;
    *field = c->p;
    while (c->p < c->end && !(strchr(BLANKS, *c->p) && *c->p))
        c->p++;
    return (size_t)(c->p - *field);
}

int authfile_name_valid(const char *s, size_t len)
{
    if (len == 0 || len > AUTH_NAME_MAX)
        return 0;
    for (size_t i = 0; i < len; i++) {
        char ch = s[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
                 (ch >= '0' && ch <= '9') || (ch && strchr("._@-", ch));
        if (!ok)
            return 0;
    }
    return 1;
}

int authfile_parse_perms(const char *s, size_t len, unsigned *perms)
{
    unsigned bits = 0;
    if (len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        unsigned b = s[i] == 'r' ? AUTH_READ : s[i] == 'w' ? AUTH_WRITE : s[i] == 'a' ? AUTH_ADMIN : 0;
        if (b == 0 || (bits & b))
            return -1;
        bits |= b;
    }
    *perms = bits;
    return 0;
}

static int hex_value(char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    return -1; /* upper case too: the file says lowercase, and one spelling compares */
}

static int parse_hash(const char *s, size_t len, uint8_t out[AUTH_HASH_LEN])
{
    if (len != 2 * AUTH_HASH_LEN)
        return -1;
    for (size_t i = 0; i < AUTH_HASH_LEN; i++) {
        int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0)
            return -1;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

static void token_free(struct auth_token *tok)
{
    for (int i = 0; i < tok->nprefixes; i++)
        free(tok->prefixes[i].bytes);
    free(tok->prefixes);
}

void auth_set_free(struct auth_set *set)
{
    if (set == NULL)
        return;
    for (int i = 0; i < set->ntokens; i++)
        token_free(&set->tokens[i]);
    free(set->tokens);
    free(set);
}

/* Appends one PREFIX field to tok. NULL, or why it is refused. */
static const char *add_prefix(struct auth_token *tok, const char *f, size_t len)
{
    struct auth_prefix *grown = realloc(tok->prefixes, (size_t)(tok->nprefixes + 1) * sizeof(*grown));
    if (grown == NULL)
        return "out of memory";
    tok->prefixes = grown;
    struct auth_prefix *pre = &tok->prefixes[tok->nprefixes];
    pre->bytes = NULL;
    pre->len = 0;
    if (len == 1 && f[0] == '*') {
        tok->everything = 1;
        tok->nprefixes++;
        return NULL;
    }
    pre->bytes = malloc(len + 1);
    if (pre->bytes == NULL)
        return "out of memory";
    ssize_t n = codec_pct_decode(f, len, pre->bytes, 0);
    if (n <= 0) {
        free(pre->bytes);
        return n < 0 ? "a prefix has a bad %-escape" : "a prefix is empty";
    }
    pre->len = (size_t)n;
    tok->nprefixes++;
    return NULL;
}

/* Parses one non-blank, non-comment line into tok. NULL, or why not. */
static const char *parse_line(struct cursor *c, struct auth_token *tok)
{
    const char *f;
    size_t len = next_field(c, &f);
    if (!authfile_name_valid(f, len))
        return "NAME must be 1 to 64 of A-Z a-z 0-9 . _ @ -";
    memcpy(tok->name, f, len);
    tok->name[len] = '\0';
    len = next_field(c, &f);
    if (authfile_parse_perms(f, len, &tok->perms) != 0)
        return "PERMISSIONS must be distinct letters of r, w and a";
    len = next_field(c, &f);
    if (parse_hash(f, len, tok->hash) != 0)
        return "the hash must be 64 lowercase hex digits (SHA-256 of the token)";
    while ((len = next_field(c, &f)) > 0) {
        const char *why = add_prefix(tok, f, len);
        if (why)
            return why;
    }
    if (tok->nprefixes == 0)
        return "at least one PREFIX is required ('*' for every key)";
    return NULL;
}

/* Why tok cannot join set (a repeated name or hash), or NULL. */
static const char *clash(const struct auth_set *set, const struct auth_token *tok)
{
    for (int i = 0; i < set->ntokens; i++) {
        if (strcmp(set->tokens[i].name, tok->name) == 0)
            return "this NAME is already used by an earlier line";
        if (memcmp(set->tokens[i].hash, tok->hash, AUTH_HASH_LEN) == 0)
            return "this hash is already used by an earlier line";
    }
    return NULL;
}

static int line_is_blank(const char *p, const char *end)
{
    while (p < end && *p && strchr(BLANKS, *p))
        p++;
    return p == end || *p == '#';
}

static struct auth_set *refuse(struct auth_set *set, char *err, size_t errlen, int line,
                               const char *why)
{
    snprintf(err, errlen, "%d: %s", line, why);
    auth_set_free(set);
    return NULL;
}

static int add_token(struct auth_set *set, const struct auth_token *tok)
{
    struct auth_token *grown = realloc(set->tokens, (size_t)(set->ntokens + 1) * sizeof(*grown));
    if (grown == NULL)
        return -1;
    set->tokens = grown;
    set->tokens[set->ntokens++] = *tok;
    return 0;
}

struct auth_set *authfile_parse(const char *text, size_t len, char *err, size_t errlen)
{
    struct auth_set *set = calloc(1, sizeof(*set));
    if (set == NULL)
        return refuse(NULL, err, errlen, 0, "out of memory");
    const char *p = text, *end = text + len;
    for (int line = 1; p < end; line++) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        if (eol == NULL)
            eol = end;
        if (memchr(p, '\0', (size_t)(eol - p)))
            return refuse(set, err, errlen, line, "a NUL byte");
        if (!line_is_blank(p, eol)) {
            struct auth_token tok;
            memset(&tok, 0, sizeof(tok));
            struct cursor c = {p, eol};
            const char *why = parse_line(&c, &tok);
            if (why == NULL)
                why = clash(set, &tok);
            if (why == NULL && add_token(set, &tok) != 0)
                why = "out of memory";
            if (why) {
                token_free(&tok);
                return refuse(set, err, errlen, line, why);
            }
        }
        if (eol == end)
            break;
        p = eol + 1;
    }
    return set;
}

int auth_token_covers(const struct auth_token *tok, const char *key, size_t len)
{
    if (tok->everything)
        return 1;
    for (int i = 0; i < tok->nprefixes; i++) {
        const struct auth_prefix *pre = &tok->prefixes[i];
        if (pre->bytes && pre->len <= len && memcmp(key, pre->bytes, pre->len) == 0)
            return 1;
    }
    return 0;
}
