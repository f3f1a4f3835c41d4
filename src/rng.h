/*
 * rng.h -- xorshift64: cheap pseudo-random numbers for jitter and for
 * spreading lazy reads, one state per owner (no lock). Not for secrets.
 */
#ifndef LKV_RNG_H
#define LKV_RNG_H

#include <stdint.h>

/* The next number from *state (never 0 if the seed was not 0). */
static inline uint64_t rng_next(uint64_t *state)
{
    uint64_t x = *state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *state = x;
}

#endif
