/*
 * token.c -- lists' tokens. See token.h.
 */
#include "token.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "placement.h"

uint64_t token_row_index(const struct record *row, uint64_t now_us)
{
    return !row->deleted && record_expired(row, now_us) ? record_index(row) : row->version;
}

uint64_t token_row_mix(const struct record *row, uint64_t index)
{
    return placement_mix64(placement_hash64(row->key, row->key_len) +
                           index * 0x9e3779b97f4a7c15ULL);
}

uint64_t watch_row_digest(const struct record *row, uint64_t t, uint64_t now_us)
{
    uint64_t index = token_row_index(row, now_us);
    return index > t ? token_row_mix(row, index) : 0;
}

void watch_token_format(const struct watch_token *tok, char out[WATCH_TOKEN_LEN])
{
    if (!tok->valid)
        snprintf(out, WATCH_TOKEN_LEN, "0");
    else
        snprintf(out, WATCH_TOKEN_LEN, "%" PRIu64 "-%016" PRIx64, tok->t, tok->digest);
}

int watch_token_parse(const char *s, size_t len, struct watch_token *tok)
{
    memset(tok, 0, sizeof(*tok));
    if (len == 1 && s[0] == '0')
        return 0;
    const char *dash = memchr(s, '-', len);
    if (dash == NULL || dash == s || dash == s + len - 1 || s + len - dash - 1 != 16)
        return -1;
    uint64_t t = 0, d = 0;
    for (const char *p = s; p < dash; p++) {
        if (*p < '0' || *p > '9' || t > (UINT64_MAX - 9) / 10)
            return -1;
        t = t * 10 + (uint64_t)(*p - '0');
    }
    for (const char *p = dash + 1; p < s + len; p++) {
        int v = *p >= '0' && *p <= '9' ? *p - '0' : *p >= 'a' && *p <= 'f' ? *p - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        d = d << 4 | (uint64_t)v;
    }
    tok->t = t;
    tok->digest = d;
    tok->valid = 1;
    return 0;
}

