/*
 * placement.h -- which partition is a key's master. Pure functions, no I/O.
 *
 * The key is hashed with placement_hash64(): 64-bit FNV-1a over the key bytes,
 * then the murmur3 64-bit finalizer ("fmix64") to spread FNV's weak low bits.
 * The hash is mapped to a partition with jump consistent hashing (Lamping and
 * Veach, 2014), so going from N to N+1 partitions moves the master of about
 * 1/(N+1) of the keys, and only towards the new partition. Both functions are
 * part of the on-disk contract: changing them moves every key's master.
 */
#ifndef LKV_PLACEMENT_H
#define LKV_PLACEMENT_H

#include <stddef.h>
#include <stdint.h>

/* The stable 64-bit hash of a key of len bytes (any bytes, NUL included). */
uint64_t placement_hash64(const void *key, size_t len);

/* murmur3's 64-bit finalizer: a bijection that spreads every input bit. */
uint64_t placement_mix64(uint64_t x);

/* Jump consistent hash: a bucket in [0, buckets) for hash. buckets >= 1. */
int placement_jump(uint64_t hash, int buckets);

/* The master partition of a key among n partitions: jump(hash64(key), n). */
int placement_master(const void *key, size_t len, int n);

#endif
