/*
 * metrics.h -- GET /metrics: everything lazykvd knows, in the Prometheus
 * text format (version 0.0.4): the counters of stats.h, request and
 * statement latency histograms, each partition's state (up, statements in
 * flight, reconnects, errors by kind, batching) and the replication status
 * the probers read (syncstatus.h). Reads only what other threads keep
 * up to date: no database work on the request.
 */
#ifndef LKV_METRICS_H
#define LKV_METRICS_H

#include "buf.h"

struct lkv_server;

/* Appends the whole exposition. 0, or -1 when out of memory. */
int metrics_render(struct lkv_server *srv, struct buf *out);

#endif
