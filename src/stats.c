/*
 * stats.c -- summing and exposing the counters of stats.h.
 */
#include "stats.h"

#include <inttypes.h>

void stats_sum(struct stats *into, const struct stats *from)
{
#define STATS_SUM(name, help)                                                   \
    atomic_fetch_add_explicit(&into->name,                                      \
                              atomic_load_explicit(&from->name, memory_order_relaxed), \
                              memory_order_relaxed);
    STATS_FIELDS(STATS_SUM)
#undef STATS_SUM
}

int stats_render(struct buf *out, const struct stats *t)
{
    int rc = 0;
#define STATS_RENDER(name, help)                                                     \
    rc |= buf_printf(out, "# HELP lazykv_%s %s\n# TYPE lazykv_%s counter\nlazykv_%s %" PRIuFAST64 "\n", \
                     #name, help, #name, #name,                                      \
                     (uint_fast64_t)atomic_load_explicit(&t->name, memory_order_relaxed));
    STATS_FIELDS(STATS_RENDER)
#undef STATS_RENDER
    return rc ? -1 : 0;
}
