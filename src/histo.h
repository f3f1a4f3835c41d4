/*
 * histo.h -- latency histograms for /metrics (Prometheus "histogram"):
 * fixed buckets from 100 µs to 10 s, lock-free.
 *
 * Any thread may observe into a histogram (relaxed atomic adds: a reader
 * may see a count one observation ahead of its sum, which Prometheus
 * tolerates). The buckets are the same for every histogram, so one table
 * of bounds serves them all and a histogram is a flat array of counters.
 */
#ifndef LKV_HISTO_H
#define LKV_HISTO_H

#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"

#define HISTO_BUCKETS 16 /* upper bounds; +Inf is the count */

struct histo {
    atomic_uint_fast64_t bucket[HISTO_BUCKETS]; /* observations <= bound i (not cumulative) */
    atomic_uint_fast64_t count;
    atomic_uint_fast64_t sum_us;
};

/* Records one duration, in microseconds. */
void histo_observe(struct histo *h, uint64_t us);

/* Appends the series of h: NAME_bucket{LABELS,le="..."} (cumulative), NAME_sum
 * (seconds) and NAME_count. labels is "" or 'k="v",k2="v2"' (already
 * escaped). 0, or -1 when out of memory. The # HELP / # TYPE lines are the
 * caller's, once per family. */
int histo_render(struct buf *out, const char *name, const char *labels, const struct histo *h);

#endif
