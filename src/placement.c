/*
 * placement.c -- key hash and jump consistent hash. See placement.h.
 */
#include "placement.h"

#define FNV64_OFFSET 0xcbf29ce484222325ULL
#define FNV64_PRIME  0x100000001b3ULL

uint64_t placement_hash64(const void *key, size_t len)
{
    const unsigned char *p = key;
    uint64_t h = FNV64_OFFSET;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= FNV64_PRIME;
    }
    return placement_mix64(h);
}

uint64_t placement_mix64(uint64_t h)
{
    /* murmur3 fmix64: every input bit affects every output bit. */
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    h ^= h >> 33;
    return h;
}

int placement_jump(uint64_t hash, int buckets)
{
    int64_t b = -1, j = 0;
    while (j < buckets) {
        b = j;
        hash = hash * 2862933555777941757ULL + 1;
        j = (int64_t)((double)(b + 1) *
                      ((double)(1LL << 31) / (double)((hash >> 33) + 1)));
    }
    return (int)b;
}

int placement_master(const void *key, size_t len, int n)
{
    return placement_jump(placement_hash64(key, len), n);
}
