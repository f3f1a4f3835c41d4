/*
 * clock.h -- the monotonic clock, for deadlines, timeouts and back-offs
 * (never for versions: those are wall-clock time, see version.h).
 */
#ifndef LKV_CLOCK_H
#define LKV_CLOCK_H

#include <stdint.h>
#include <time.h>

/* Microseconds on CLOCK_MONOTONIC: only differences mean anything. */
static inline uint64_t clock_mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

#endif
