/*
 * metrics.c -- the /metrics exposition. See metrics.h.
 */
#include "metrics.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "handlers.h"
#include "server.h"
#include "watch.h"

_Static_assert(M_COUNT == SERVER_METHODS, "one latency histogram per method");

static const char *const route_names[SERVER_ROUTES] = {"lazy", "canonical", "list", "admin"};
static const char *const method_names[SERVER_METHODS] = {"GET",    "HEAD",   "POST",
                                                         "PUT",    "DELETE", "other"};
static const char *const kind_names[PART_STMT_KINDS] = {
    "read", "write", "copy", "list", "scan", "poll", "chunk", "chunk_odd"};
static const char *const error_names[PART_ERR_KINDS] = {"connect", "timeout", "connection",
                                                        "deadlock", "other"};

static int family(struct buf *b, const char *name, const char *type, const char *help)
{
    return buf_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

static uint64_t load(const atomic_uint_fast64_t *v)
{
    return (uint64_t)atomic_load_explicit(v, memory_order_relaxed);
}

static int http_histograms(struct lkv_server *srv, struct buf *b)
{
    const char *name = "lazykv_http_request_duration_seconds";
    int rc = family(b, name, "histogram", "time from a request's arrival to the end of its "
                                          "answer, by route (lazy, canonical, list, admin) and method");
    for (int r = 0; r < SERVER_ROUTES; r++)
        for (int m = 0; m < SERVER_METHODS; m++) {
            const struct histo *h = &srv->http_duration[r][m];
            if (load(&h->count) == 0)
                continue; /* a series appears with its first request */
            char labels[64];
            snprintf(labels, sizeof(labels), "route=\"%s\",method=\"%s\"", route_names[r],
                     method_names[m]);
            rc |= histo_render(b, name, labels, h);
        }
    return rc;
}

static int statement_histograms(struct lkv_server *srv, struct buf *b)
{
    const char *name = "lazykv_db_statement_duration_seconds";
    int rc = family(b, name, "histogram", "time a statement (for writes: a transaction) took at a "
                                          "partition, by partition and kind");
    for (int p = 0; p < srv->nprobers; p++)
        for (int k = 0; k < PART_STMT_KINDS; k++) {
            const struct histo *h = &srv->probers[p].stats.duration[k];
            if (load(&h->count) == 0)
                continue;
            char labels[64];
            snprintf(labels, sizeof(labels), "partition=\"%d\",kind=\"%s\"", p, kind_names[k]);
            rc |= histo_render(b, name, labels, h);
        }
    return rc;
}

/* One line per partition of a value read by get(p). */
static int per_partition(struct lkv_server *srv, struct buf *b, const char *name,
                         const char *type, const char *help,
                         uint64_t (*get)(const struct prober *p))
{
    int rc = family(b, name, type, help);
    for (int p = 0; p < srv->nprobers; p++)
        rc |= buf_printf(b, "%s{partition=\"%d\"} %" PRIu64 "\n", name, p, get(&srv->probers[p]));
    return rc;
}

static uint64_t up_of(const struct prober *p) { return (uint64_t)prober_reachable(p); }
static uint64_t in_flight_of(const struct prober *p)
{
    int n = atomic_load_explicit(&p->stats.in_flight, memory_order_relaxed);
    return n > 0 ? (uint64_t)n : 0;
}
static uint64_t reconnects_of(const struct prober *p) { return load(&p->stats.reconnects); }

static int partition_counters(struct lkv_server *srv, struct buf *b)
{
    int rc = per_partition(srv, b, "lazykv_partition_up", "gauge",
                           "1 when the last probe or statement of the partition succeeded "
                           "(probed every second)", up_of);
    rc |= per_partition(srv, b, "lazykv_partition_statements_in_flight", "gauge",
                        "statements (transactions) running at the partition now", in_flight_of);
    rc |= per_partition(srv, b, "lazykv_partition_reconnects_total", "counter",
                        "connections of the workers opened again after the first", reconnects_of);
    rc |= family(b, "lazykv_partition_errors_total", "counter",
                 "failed statements and connection attempts, by partition and kind");
    for (int p = 0; p < srv->nprobers; p++)
        for (int e = 0; e < PART_ERR_KINDS; e++)
            rc |= buf_printf(b, "lazykv_partition_errors_total{partition=\"%d\",kind=\"%s\"} %" PRIu64
                                "\n", p, error_names[e], load(&srv->probers[p].stats.errors[e]));
    rc |= family(b, "lazykv_partition_statements_total", "counter",
                 "statements (transactions) run, by partition and kind");
    for (int p = 0; p < srv->nprobers; p++)
        for (int k = 0; k < PART_STMT_KINDS; k++)
            rc |= buf_printf(b, "lazykv_partition_statements_total{partition=\"%d\",kind=\"%s\"} %"
                                PRIu64 "\n", p, kind_names[k],
                             load(&srv->probers[p].stats.statements[k]));
    rc |= family(b, "lazykv_partition_mean_batch", "gauge",
                 "requests per statement since start (reads, writes and copies: batching)");
    for (int p = 0; p < srv->nprobers; p++) {
        const struct part_stats *s = &srv->probers[p].stats;
        uint64_t st = 0, req = 0;
        for (int k = 0; k <= 2; k++) { /* read, write, copy: the kinds that batch */
            st += load(&s->statements[k]);
            req += load(&s->requests[k]);
        }
        rc |= buf_printf(b, "lazykv_partition_mean_batch{partition=\"%d\"} %.3f\n", p,
                         st ? (double)req / (double)st : 0.0);
    }
    return rc;
}

/* The sync's last pass as recorded at the reachable partitions: the most
 * recent record wins (each pass writes it to every partition it reached). */
static int sync_metrics(struct lkv_server *srv, struct buf *b)
{
    struct sync_status last = {0}, st;
    uint64_t pending;
    int rc = family(b, "lazykv_sync_pending_rows", "gauge",
                    "rows changed at the partition that no sync pass has picked up yet "
                    "(counted up to 1000000, every 5 s)");
    for (int p = 0; p < srv->nprobers; p++) {
        if (prober_sync_status(&srv->probers[p], &st, &pending) != 0)
            continue;
        rc |= buf_printf(b, "lazykv_sync_pending_rows{partition=\"%d\"} %" PRIu64 "\n", p, pending);
        if (st.known && st.end_us > last.end_us)
            last = st;
    }
    if (!last.known)
        return rc; /* no pass recorded yet: no sample (alert on absent()) */
    rc |= family(b, "lazykv_sync_last_pass_end_timestamp_seconds", "gauge",
                 "when the last lazykv-sync pass ended (Unix time)");
    rc |= buf_printf(b, "lazykv_sync_last_pass_end_timestamp_seconds %.3f\n",
                     (double)last.end_us / 1e6);
    rc |= family(b, "lazykv_sync_last_pass_exit_code", "gauge",
                 "its exit status: 0 all propagated, 1 a partition was unreachable");
    rc |= buf_printf(b, "lazykv_sync_last_pass_exit_code %d\n", last.exit_code);
    rc |= family(b, "lazykv_sync_lag_seconds", "gauge",
                 "replication lag the last pass reported: age of the oldest change it found");
    rc |= buf_printf(b, "lazykv_sync_lag_seconds %.3f\n", (double)last.lag_ms / 1e3);
    rc |= family(b, "lazykv_sync_last_pass_rows", "gauge", "rows the last pass copied");
    rc |= buf_printf(b, "lazykv_sync_last_pass_rows %" PRIu64 "\n", last.rows);
    return rc;
}

int metrics_render(struct lkv_server *srv, struct buf *b)
{
    struct stats totals;
    memset(&totals, 0, sizeof(totals));
    server_stats(srv, &totals);
    int rc = stats_render(b, &totals);
    rc |= family(b, "lazykv_http_connections", "gauge", "client connections open now");
    rc |= buf_printf(b, "lazykv_http_connections %d\n", atomic_load(&srv->connections));
    rc |= family(b, "lazykv_watches_waiting", "gauge",
                 "requests waiting for a change (watches, blocking lock acquisitions)");
    rc |= buf_printf(b, "lazykv_watches_waiting %d\n", watch_waiting(srv->backend.hub));
    rc |= http_histograms(srv, b);
    rc |= statement_histograms(srv, b);
    rc |= partition_counters(srv, b);
    rc |= sync_metrics(srv, b);
    return rc ? -1 : 0;
}
