/*
 * lazykv_sync.c -- main of lazykv-sync: command line, signals, --loop.
 * A pass is in sync.c.
 */
#include <getopt.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "lkv.h"
#include "log.h"
#include "store.h"
#include "sync.h"
#include "syncrecord.h"
#include "version.h"

/* Set by SIGINT/SIGTERM; the pass finishes its current batch and stops. */
static volatile sig_atomic_t stop_requested;

static void on_stop(int sig)
{
    (void)sig;
    stop_requested = 1;
}

static void usage(FILE *f)
{
    fprintf(f,
        "usage: lazykv-sync -c FILE [--test] [--loop SECONDS] [--dry-run] [--verbose]\n"
        "                   [--metrics-file PATH]\n"
        "\n"
        "Copies every change made at any partition to every other partition, in\n"
        "version order, turns expired keys into tombstones, and purges tombstones\n"
        "once every partition has them.\n"
        "Run it from cron every minute, or with --loop for sub-minute lag.\n"
        "\n"
        "  -c, --config FILE   configuration file (the same as lazykvd's)\n"
        "      --test          test mode: database names get the test_ prefix\n"
        "                      (also when LAZYKV_ENV=test)\n"
        "      --loop SECONDS  repeat passes until SIGINT/SIGTERM: the next at once\n"
        "                      while changes are left, else SECONDS after the last\n"
        "      --dry-run       report what would be copied; change nothing\n"
        "  -v, --verbose       a line per batch\n"
        "      --metrics-file PATH\n"
        "                      after each pass, write its end, exit status, rows,\n"
        "                      lag and each partition's backlog to PATH in the\n"
        "                      Prometheus text format (node_exporter's textfile\n"
        "                      collector), atomically. Every pass also records\n"
        "                      itself in each partition's _meta table, where\n"
        "                      lazykvd's /metrics and /health read it.\n"
        "  -h, --help          this help\n"
        "\n"
        "Prints a line per source -> target (rows, bytes, ms) and a total line with\n"
        "the replication lag and the changes left pending (backlog). Exit status: 0 everything propagated; 1 done, but a\n"
        "partition was unreachable (named on stderr); 2 usage or configuration\n"
        "error, or a table of an earlier schema (run lazykv-admin init to upgrade;\n"
        "nothing done); 75 another pass holds the lock (nothing done).\n");
}

/* Sleeps up to seconds, waking early when a stop is requested. */
static void pause_between_passes(int seconds)
{
    for (int i = 0; i < seconds * 10 && !stop_requested; i++) {
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

/* Whether --loop runs the next pass at once: the last one went well and
 * left changes (written while it ran). After a failure or a lock held
 * elsewhere, the loop waits its SECONDS, so it never spins against a
 * partition that is down. */
static int backlog_left(int rc, const struct sync_stats *stats)
{
    return rc == SYNC_OK && stats->backlog > 0;
}

/* One pass, recorded (syncrecord.h) when it ran: not when the lock was
 * held elsewhere or the schema refused, and not a dry run. */
static int recorded_pass(const struct lkv_config *cfg, const struct store_sql *sql,
                         const struct sync_options *opt, struct sync_stats *stats,
                         struct sync_recorder *rec)
{
    uint64_t start = version_now_us();
    int rc = sync_pass(cfg, sql, opt, stats);
    if (!opt->dry_run && (rc == SYNC_OK || rc == SYNC_PARTIAL))
        sync_recorder_pass(rec, rc, start, version_now_us(), stats);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"test", no_argument, NULL, 'T'},
        {"loop", required_argument, NULL, 'L'},   {"dry-run", no_argument, NULL, 'n'},
        {"verbose", no_argument, NULL, 'v'},      {"help", no_argument, NULL, 'h'},
        {"metrics-file", required_argument, NULL, 'M'}, {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *metrics_file = NULL;
    int test_mode = config_env_test_mode(), loop = -1, c;
    struct sync_options opt = {0, 0, &stop_requested, stdout};
    long long n;
    log_init("lazykv-sync", LOG_WARN);
    while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'T': test_mode = 1; break;
        case 'L':
            if (config_parse_ll(optarg, &n) != 0 || n < 0 || n > 86400) {
                fprintf(stderr, "lazykv-sync: --loop: must be seconds from 0 to 86400, got '%s'\n",
                        optarg);
                return SYNC_USAGE;
            }
            loop = (int)n;
            break;
        case 'n': opt.dry_run = 1; break;
        case 'M': metrics_file = optarg; break;
        case 'v': opt.verbose = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return SYNC_USAGE;
        }
    }
    if (config_path == NULL || optind != argc) {
        fprintf(stderr, "lazykv-sync: %s\n", config_path ? "unexpected argument" : "-c FILE is required");
        usage(stderr);
        return SYNC_USAGE;
    }
    char err[512];
    struct lkv_config *cfg = config_load(config_path, test_mode, err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "lazykv-sync: %s\n", err);
        return SYNC_USAGE;
    }
    struct store_sql sql;
    if (store_sql_build(&sql, cfg->table_name) != 0) {
        fprintf(stderr, "lazykv-sync: out of memory\n");
        config_free(cfg);
        return SYNC_PARTIAL;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_stop;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);
    setvbuf(stdout, NULL, _IOLBF, 0);
    mysql_library_init(0, NULL, NULL);

    struct sync_recorder rec;
    if (sync_recorder_open(&rec, cfg, metrics_file) != 0) {
        fprintf(stderr, "lazykv-sync: out of memory\n");
        store_sql_free(&sql);
        config_free(cfg);
        return SYNC_PARTIAL;
    }
    struct sync_stats stats;
    int rc = recorded_pass(cfg, &sql, &opt, &stats, &rec);
    /* A pass refused to run on a table of an earlier schema: so does the
     * loop, as it would have at its first pass. */
    while (loop >= 0 && !stop_requested && rc != SYNC_USAGE) {
        if (!backlog_left(rc, &stats))
            pause_between_passes(loop);
        if (!stop_requested)
            rc = recorded_pass(cfg, &sql, &opt, &stats, &rec);
    }
    sync_recorder_close(&rec);
    if (loop >= 0 && stop_requested && rc != SYNC_USAGE)
        rc = SYNC_OK; /* a loop stopped on request ends well */
    store_sql_free(&sql);
    config_free(cfg);
    mysql_library_end();
    return rc;
}
