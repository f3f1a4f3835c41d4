/*
 * syncrecord.c -- each pass recorded in _meta and the textfile. See
 * syncrecord.h.
 */
#include "syncrecord.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "syncstatus.h"

int sync_recorder_open(struct sync_recorder *r, const struct lkv_config *cfg,
                       const char *metrics_file)
{
    r->cfg = cfg;
    r->metrics_file = metrics_file;
    r->conn = calloc((size_t)cfg->partitions, sizeof(*r->conn));
    if (r->conn == NULL)
        return -1;
    for (int i = 0; i < cfg->partitions; i++)
        pconn_init(&r->conn[i], cfg, i, NULL, 0);
    return 0;
}

void sync_recorder_close(struct sync_recorder *r)
{
    for (int i = 0; r->conn && i < r->cfg->partitions; i++)
        pconn_close(&r->conn[i]);
    free(r->conn);
    r->conn = NULL;
}

/* The textfile: the same names lazykvd exposes (metrics.c), so one alert
 * rule serves both. pending[i] is UINT64_MAX for a partition not reached. */
static int format_textfile(struct buf *b, const struct sync_status *st, const uint64_t *pending,
                           int n)
{
    int rc = buf_printf(b, "# HELP lazykv_sync_last_pass_end_timestamp_seconds when the last "
                           "lazykv-sync pass ended (Unix time)\n"
                           "# TYPE lazykv_sync_last_pass_end_timestamp_seconds gauge\n"
                           "lazykv_sync_last_pass_end_timestamp_seconds %.3f\n",
                        (double)st->end_us / 1e6);
    rc |= buf_printf(b, "# HELP lazykv_sync_last_pass_exit_code its exit status: 0 all "
                        "propagated, 1 a partition was unreachable\n"
                        "# TYPE lazykv_sync_last_pass_exit_code gauge\n"
                        "lazykv_sync_last_pass_exit_code %d\n", st->exit_code);
    rc |= buf_printf(b, "# HELP lazykv_sync_lag_seconds replication lag the last pass reported: "
                        "age of the oldest change it found\n"
                        "# TYPE lazykv_sync_lag_seconds gauge\nlazykv_sync_lag_seconds %.3f\n",
                     (double)st->lag_ms / 1e3);
    rc |= buf_printf(b, "# HELP lazykv_sync_last_pass_rows rows the last pass copied\n"
                        "# TYPE lazykv_sync_last_pass_rows gauge\n"
                        "lazykv_sync_last_pass_rows %" PRIu64 "\n", st->rows);
    rc |= buf_printf(b, "# HELP lazykv_sync_pending_rows rows changed at the partition that no "
                        "sync pass has picked up yet\n# TYPE lazykv_sync_pending_rows gauge\n");
    for (int i = 0; i < n; i++)
        if (pending[i] != UINT64_MAX)
            rc |= buf_printf(b, "lazykv_sync_pending_rows{partition=\"%d\"} %" PRIu64 "\n", i,
                             pending[i]);
    return rc ? -1 : 0;
}

/* Writes b to path through a temporary file in the same directory and a
 * rename, so the collector reads the old file or the new one, whole. */
static int write_atomically(const char *path, const struct buf *b)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid()) >= (int)sizeof(tmp)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    FILE *f = fopen(tmp, "w");
    if (f == NULL)
        return -1;
    int ok = fwrite(b->data, 1, b->len, f) == b->len;
    ok &= fclose(f) == 0;
    if (!ok || rename(tmp, path) != 0) {
        int saved = errno;
        unlink(tmp);
        errno = saved;
        return -1;
    }
    return 0;
}

void sync_recorder_pass(struct sync_recorder *r, int exit_code, uint64_t start_us,
                        uint64_t end_us, const struct sync_stats *stats)
{
    int n = r->cfg->partitions;
    struct sync_status st = {1, start_us, end_us, exit_code, stats->rows, stats->lag_ms};
    uint64_t pending[CONFIG_MAX_PARTITIONS];
    for (int i = 0; i < n; i++) {
        enum lkv_status ls;
        struct sync_status back;
        MYSQL *m = pconn_mysql(&r->conn[i], &ls);
        pending[i] = UINT64_MAX;
        if (m == NULL)
            continue; /* unreachable: the pass has said so already */
        if (syncstatus_write(m, r->cfg->table_name, &st) != 0 ||
            syncstatus_read(m, r->cfg->table_name, &back, &pending[i]) != 0) {
            log_warn("partition %d (%s): cannot record the pass: %s", i, r->cfg->part[i].name,
                     mysql_error(m));
            pconn_close(&r->conn[i]);
        }
    }
    if (r->metrics_file == NULL)
        return;
    struct buf b = BUF_INIT;
    if (format_textfile(&b, &st, pending, n) != 0 || write_atomically(r->metrics_file, &b) != 0)
        log_error("--metrics-file %s: cannot write: %s", r->metrics_file, strerror(errno));
    buf_free(&b);
}
