/*
 * authfile.h -- the tokens file ([auth] tokens_file) parsed into a set of
 * tokens. Pure: no I/O, no clock; unit-tested and fuzzed. auth.h loads the
 * file and checks requests against the set.
 *
 * One token a line, fields separated by blanks:
 *     NAME PERMISSIONS SHA256-HEX PREFIX [PREFIX...]
 * NAME: 1..64 of [A-Za-z0-9._@-]; PERMISSIONS: distinct letters of "rwa";
 * SHA256-HEX: 64 lowercase hex digits, the SHA-256 of the token's text as
 * sent; PREFIX: "*" (every key) or a key prefix, percent-encoded as in a URL
 * path ("%2A" is a literal star). Blank lines and '#' lines are ignored.
 * The file holds hashes only: reading it does not give a token away.
 */
#ifndef LKV_AUTHFILE_H
#define LKV_AUTHFILE_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_NAME_MAX 64
#define AUTH_HASH_LEN 32 /* SHA-256 */

enum auth_perm { AUTH_READ = 1, AUTH_WRITE = 2, AUTH_ADMIN = 4 };

struct auth_prefix {
    char *bytes;   /* owned: decoded; NULL for "*" */
    size_t len;
};

struct auth_token {
    char name[AUTH_NAME_MAX + 1];
    unsigned perms;                 /* enum auth_perm bits */
    uint8_t hash[AUTH_HASH_LEN];
    struct auth_prefix *prefixes;   /* owned */
    int nprefixes;
    int everything;                 /* one prefix is "*" */
};

struct auth_set {
    struct auth_token *tokens;      /* owned */
    int ntokens;
};

/* Parses the file's text (len bytes, any content). Returns a set (free it
 * with auth_set_free), or NULL with "LINE: reason" in err (line 0: out of
 * memory). The whole file is refused on any error: a half-read file would
 * silently drop tokens. */
struct auth_set *authfile_parse(const char *text, size_t len, char *err, size_t errlen);

void auth_set_free(struct auth_set *set);

/* Parses PERMISSIONS ("rw", "a", ...) into bits. 0, or -1 (empty, unknown
 * or repeated letter). */
int authfile_parse_perms(const char *s, size_t len, unsigned *perms);

/* 1 when name is a valid NAME. */
int authfile_name_valid(const char *s, size_t len);

/* 1 when a key (or a list's prefix) of len bytes is inside one of tok's
 * prefixes: it starts with one of them, or tok has "*". */
int auth_token_covers(const struct auth_token *tok, const char *key, size_t len);

#endif
