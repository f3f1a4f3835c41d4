/*
 * auth.h -- bearer tokens ([auth] tokens_file): who may do what, to which
 * keys. The file is parsed by authfile.h; this module owns the set in
 * force, swaps it on reload (SIGHUP) and answers one question per request,
 * before its body is read: may this Authorization header do this?
 *
 * Threads: auth_check runs on libmicrohttpd's threads under a read lock;
 * auth_reload (the main thread) builds the new set outside the lock and
 * swaps it under the write lock, so a request checked before a reload
 * finishes with the permissions it was admitted with.
 */
#ifndef LKV_AUTH_H
#define LKV_AUTH_H

#include <pthread.h>
#include <stddef.h>

#include "authfile.h"

struct auth {
    char *path;            /* owned: the tokens file */
    pthread_rwlock_t lock; /* guards set */
    struct auth_set *set;  /* owned */
};

/* What a request needs. */
struct auth_need {
    unsigned perm;         /* enum auth_perm bits, all needed; 0: any known token */
    const char *scope;     /* the key, or a list's prefix ("" for none); NULL: no scope */
    size_t scope_len;
};

enum auth_verdict {
    AUTH_GRANTED,
    AUTH_UNKNOWN,   /* no token, another scheme, or a token not in the file: 401 */
    AUTH_DENIED     /* a known token without the permission or the scope: 403 */
};

/* Reads path and puts its tokens in force. 0, or -1 with one line in err:
 * "PATH:LINE: reason", "[auth] tokens_file: cannot read PATH: ...",
 * "[auth] tokens_file: PATH is readable by others ...". */
int auth_open(struct auth *a, const char *path, char *err, size_t errlen);

/* Reads the file again; on any error the tokens in force stay and err says
 * why (as auth_open). 0 or -1. */
int auth_reload(struct auth *a, char *err, size_t errlen);

void auth_close(struct auth *a);

/* Checks an Authorization header value (NULL when absent) against need.
 * On AUTH_GRANTED and AUTH_DENIED, the token's name and permissions are
 * copied out (name may be NULL). Tokens are compared in constant time. */
enum auth_verdict auth_check(struct auth *a, const char *authorization,
                             const struct auth_need *need, char *name, unsigned *perms);

/* A new random token: 43 characters of base64url (256 bits) into
 * out[AUTH_TOKEN_TEXT], and the hex SHA-256 of that text into
 * hex[2 * AUTH_HASH_LEN + 1]. 0, or -1 when the system has no randomness. */
#define AUTH_TOKEN_TEXT 44
int auth_new_token(char out[AUTH_TOKEN_TEXT], char hex[2 * AUTH_HASH_LEN + 1]);

#endif
