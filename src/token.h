/*
 * token.h -- a list's index (X-Lazykv-Index of a list): "T-D", T an instant
 * (µs) and D a digest of the rows under the list's prefix, at their
 * masters, whose index passed T; or "0", which no state matches (watch.h
 * explains why this makes prefix watches exact). Pure: unit-tested.
 */
#ifndef LKV_TOKEN_H
#define LKV_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define WATCH_TOKEN_LEN 48

struct watch_token {
    uint64_t t;                 /* µs */
    uint64_t digest;
    int valid;                  /* 0: "0" */
};

/* The index a row as stored has at now_us: its version, or an expired
 * live row's index (record_index). */
uint64_t token_row_index(const struct record *row, uint64_t now_us);

/* The row's (key, index) mixed into 64 bits: what a digest sums. */
uint64_t token_row_mix(const struct record *row, uint64_t index);

/* What row contributes to a token's digest: its mix when its index at
 * now_us is above t, else 0. Digests are sums (mod 2^64): order-free. */
uint64_t watch_row_digest(const struct record *row, uint64_t t, uint64_t now_us);

void watch_token_format(const struct watch_token *tok, char out[WATCH_TOKEN_LEN]);

/* Parses "T-D" (D: 16 lowercase hex digits) or "0". 0, or -1 when s is
 * not a token. */
int watch_token_parse(const char *s, size_t len, struct watch_token *tok);

#endif
