/*
 * histo.c -- latency histograms. See histo.h.
 */
#include "histo.h"

#include <inttypes.h>

/* Upper bounds in µs: 1-2.5-5 steps, the spread of a point read on a LAN
 * (a fraction of a millisecond) to a request that waited out a timeout. */
static const uint64_t bounds_us[HISTO_BUCKETS] = {
    100, 250, 500, 1000, 2500, 5000, 10000, 25000, 50000,
    100000, 250000, 500000, 1000000, 2500000, 5000000, 10000000,
};

void histo_observe(struct histo *h, uint64_t us)
{
    int i = 0;
    while (i < HISTO_BUCKETS && us > bounds_us[i])
        i++;
    if (i < HISTO_BUCKETS)
        atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, us, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

int histo_render(struct buf *out, const char *name, const char *labels, const struct histo *h)
{
    const char *sep = labels[0] ? "," : "";
    uint64_t cumulative = 0;
    int rc = 0;
    for (int i = 0; i < HISTO_BUCKETS; i++) {
        cumulative += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        rc |= buf_printf(out, "%s_bucket{%s%sle=\"%g\"} %" PRIu64 "\n", name, labels, sep,
                         (double)bounds_us[i] / 1e6, cumulative);
    }
    uint64_t count = atomic_load_explicit(&h->count, memory_order_relaxed);
    if (count < cumulative)
        count = cumulative; /* a concurrent observe: the buckets ran ahead */
    uint64_t sum = atomic_load_explicit(&h->sum_us, memory_order_relaxed);
    rc |= buf_printf(out, "%s_bucket{%s%sle=\"+Inf\"} %" PRIu64 "\n", name, labels, sep, count);
    rc |= buf_printf(out, "%s_sum%s%s%s %.6f\n", name, labels[0] ? "{" : "", labels,
                     labels[0] ? "}" : "", (double)sum / 1e6);
    rc |= buf_printf(out, "%s_count%s%s%s %" PRIu64 "\n", name, labels[0] ? "{" : "", labels,
                     labels[0] ? "}" : "", count);
    return rc ? -1 : 0;
}
