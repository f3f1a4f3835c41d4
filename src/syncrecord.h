/*
 * syncrecord.h -- lazykv-sync's account of each pass, where operators look:
 * written into every reachable partition's _meta (syncstatus.h; lazykvd's
 * /metrics and /health read it back) and, with --metrics-file, into a file
 * in the Prometheus text format for node_exporter's textfile collector
 * (written to a temporary name and renamed, so a scrape never sees half).
 *
 * The recorder keeps one connection per partition across the passes of a
 * --loop. Nothing here changes the outcome of a pass: a partition it
 * cannot reach is skipped, a file it cannot write is one log line.
 */
#ifndef LKV_SYNCRECORD_H
#define LKV_SYNCRECORD_H

#include <stdint.h>

#include "config.h"
#include "partition.h"
#include "sync.h"

struct sync_recorder {
    const struct lkv_config *cfg; /* ref */
    struct pconn *conn;           /* owned: one per partition */
    const char *metrics_file;     /* ref: --metrics-file, or NULL */
};

/* 0, or -1 when out of memory. */
int sync_recorder_open(struct sync_recorder *r, const struct lkv_config *cfg,
                       const char *metrics_file);

/* Records a pass that ran (not one refused by the lock or the schema):
 * its exit code, its start and end (µs since the epoch) and its stats. */
void sync_recorder_pass(struct sync_recorder *r, int exit_code, uint64_t start_us,
                        uint64_t end_us, const struct sync_stats *stats);

void sync_recorder_close(struct sync_recorder *r);

#endif
