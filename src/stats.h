/*
 * stats.h -- lazykvd's counters, from one X-macro list that gives the
 * struct, the exposition in /metrics (Prometheus text format) and its help.
 *
 * Each worker thread owns a struct stats and is the only writer of it
 * (relaxed atomic adds, no contention); /metrics sums every worker's copy.
 * A new counter is one line here and one stats_add() where it happens.
 */
#ifndef LKV_STATS_H
#define LKV_STATS_H

#include <stdatomic.h>
#include <stdint.h>

#include "buf.h"

#define STATS_FIELDS(X)                                                            \
    X(http_requests_total, "HTTP requests answered")                               \
    X(http_responses_2xx_total, "responses with a 2xx status")                     \
    X(http_responses_3xx_total, "responses with a 3xx status")                     \
    X(http_responses_4xx_total, "responses with a 4xx status (client errors)")     \
    X(http_responses_5xx_total, "responses with a 5xx status (server or backend)") \
    X(value_bytes_in_total, "value bytes received by writes")                      \
    X(value_bytes_out_total, "value bytes sent by reads")                          \
    X(db_reads_total, "key reads from a partition (GET, HEAD)")                   \
    X(db_read_statements_total, "statements that answered them (batched reads share one)") \
    X(db_writes_total, "master writes (POST, PUT, DELETE)")                        \
    X(db_write_batches_total, "statements or transactions that wrote them (group commit)") \
    X(db_copies_total, "copies of canonical writes sent to other partitions")     \
    X(db_copy_statements_total, "statements that wrote them (batched copies share one)") \
    X(db_deadlock_retries_total, "writes run again after InnoDB chose them as a deadlock victim") \
    X(read_cache_hits_total, "lazy reads answered from the read cache ([server] read_cache_ms)") \
    X(watch_scans_total, "scans of a partition for changes while requests wait (one per partition per 100 ms)") \
    X(watch_wakeups_total, "waiting requests run again after a possible change or their wait")

struct stats {
#define STATS_FIELD(name, help) atomic_uint_fast64_t name;
    STATS_FIELDS(STATS_FIELD)
#undef STATS_FIELD
};

/* Adds n to a counter of stats owned by the calling thread. */
#define stats_add(s, field, n) \
    atomic_fetch_add_explicit(&(s)->field, (uint_fast64_t)(n), memory_order_relaxed)

/* Adds every counter of from into the plain totals of into. */
void stats_sum(struct stats *into, const struct stats *from);

/* Appends the Prometheus text exposition of totals (prefix "lazykv_").
 * 0, or -1 when out of memory. */
int stats_render(struct buf *out, const struct stats *totals);

#endif
