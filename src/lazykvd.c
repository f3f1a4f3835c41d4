/*
 * lazykvd.c -- main of the HTTP controller: command line, configuration,
 * signals. The work is in server.c (HTTP), handlers.c (the API), kv.c (the
 * cluster policy) and worker.c (the event loops that talk to the partitions).
 */
#include <errno.h>
#include <inttypes.h>
#include <getopt.h>
#include <malloc.h>
#include <mysql.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "chunks.h"
#include "config.h"
#include "digest.h"
#include "lkv.h"
#include "log.h"
#include "notify.h"
#include "partition.h"
#include "server.h"
#include "spool.h"
#include "store.h"
#include "tls.h"

static void usage(FILE *f)
{
    fprintf(f,
        "usage: lazykvd -c FILE [--test] [--listen HOST:PORT] [--test-conf]\n"
        "\n"
        "The lazykv HTTP controller: stores each key at its master partition\n"
        "(a MariaDB/MySQL database chosen by hashing the key) and serves reads\n"
        "from any partition (/bucket/KEY) or from the master (/canonicalbucket/KEY).\n"
        "\n"
        "  -c, --config FILE     configuration file (INI; see README.md)\n"
        "      --test            test mode: every database name gets the test_ prefix\n"
        "                        (also when LAZYKV_ENV=test)\n"
        "  -l, --listen H:P      listen address, overriding [server] listen (port 0:\n"
        "                        any free port, printed at start-up)\n"
        "  -t, --test-conf       check the configuration, print it, and exit\n"
        "      --allow-root      run even as root\n"
        "  -h, --help            this help\n"
        "  -V, --version         print the version\n"
        "\n"
        "Exit status: 0 after SIGINT/SIGTERM, 1 if the server cannot start,\n"
        "2 for a usage or configuration error, or a table of an earlier schema\n"
        "(run lazykv-admin init to upgrade).\n");
}

/* Raises the open-file limit to its hard maximum: each client connection
 * and each database connection is a descriptor. */
static void raise_fd_limit(int want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return;
    rlim_t target = (rlim_t)want + 256;
    if (target > rl.rlim_max)
        target = rl.rlim_max;
    if (rl.rlim_cur < target) {
        rl.rlim_cur = target;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
            log_warn("cannot raise the open-file limit to %llu", (unsigned long long)target);
    }
}

static void warn_readable_password(const struct lkv_config *cfg)
{
    struct stat st;
    int has_password = 0;
    for (int i = 0; i < cfg->partitions; i++)
        has_password |= cfg->part[i].password[0] != '\0';
    if (has_password && stat(cfg->path, &st) == 0 && (st.st_mode & S_IROTH))
        log_warn("%s holds a database password and is readable by everyone (chmod o-r)",
                 cfg->path);
}

/* Checks the table of every partition reachable now, and that its
 * max_allowed_packet carries lazykv's largest statement (one chunk and its
 * key, chunks.h), whatever max_value_size: 0 when all is well, 2 when not
 * (said in one line on stderr), 1 when out of memory. One that is not
 * reachable is skipped without a word: the server runs without it, and its
 * prober reports it. */
static int check_schemas(const struct lkv_config *cfg)
{
    struct store_sql sql;
    if (store_sql_build(&sql, cfg->table_name) != 0) {
        log_error("out of memory");
        return 1;
    }
    int old = 0, small = 0;
    uint64_t need = chunks_packet_min(cfg->key_length);
    for (int i = 0; i < cfg->partitions && !old && !small; i++) {
        struct pconn c;
        enum lkv_status st;
        unsigned err_no;
        char err[256];
        pconn_init(&c, cfg, i, (const char *const *)sql.text, sql.count);
        /* Connected here rather than by pconn_mysql, which logs a failure. */
        c.mysql = partition_connect(c.conf, cfg->test_mode, c.conf->name, 0, &st, &err_no, err,
                                    sizeof(err));
        if (c.mysql && store_check_schema(&c, cfg->table_name, &old) == LKV_OK && old)
            fprintf(stderr,
                    "lazykvd: partition %d (%s): table %s is of an earlier schema"
                    " (no chunk_version column):"
                    " run lazykv-admin init to upgrade\n",
                    i, c.conf->name, cfg->table_name);
        uint64_t packet = 0;
        if (c.mysql && !old && store_max_packet(&c, &packet) == LKV_OK && packet < need) {
            fprintf(stderr,
                    "lazykvd: partition %d (%s): max_allowed_packet is %" PRIu64 " bytes;"
                    " lazykv needs at least %" PRIu64 " (a 1 MiB chunk and a key of"
                    " key_length bytes), whatever max_value_size\n",
                    i, c.conf->name, packet, need);
            small = 1;
        }
        pconn_close(&c);
    }
    store_sql_free(&sql);
    return old || small ? 2 : 0;
}

/* Content-addressed writes (key_length >= 64) keep a body over one chunk
 * in a spool file until its last byte (spool.h): the spool directory must
 * take one, checked once here rather than found out by each such write.
 * 0, or 2 with one line. */
static int check_spool_dir(const struct lkv_config *cfg)
{
    if (cfg->key_length < DIGEST_HEX_LEN || cfg->max_value_size <= (long long)CHUNKS_SIZE)
        return 0; /* nothing is ever spooled */
    struct spool *sp = spool_open(NULL);
    if (sp) {
        spool_free(sp);
        return 0;
    }
    fprintf(stderr,
            "lazykvd: %s: cannot make a temporary file there (%s); content-addressed"
            " writes over 1 MiB are kept there until their last byte: set TMPDIR to a"
            " writable directory on disk\n",
            spool_default_dir(), strerror(errno));
    return 2;
}

/* -t: the effective configuration, and the certificate lazykvd would
 * serve (its files and the tokens file checked as at start-up). 0, or 2
 * with one line. */
static int check_config(struct lkv_config *cfg)
{
    struct tls_server tls;
    char err[512], notes[1024] = "";
    int rc = 0;
    struct auth tokens;
    if (cfg->tokens_file && auth_open(&tokens, cfg->tokens_file, err, sizeof(err)) != 0) {
        fprintf(stderr, "lazykvd: %s\n", err);
        config_free(cfg);
        return 2;
    }
    if (cfg->tokens_file)
        auth_close(&tokens);
    if (check_spool_dir(cfg) != 0) {
        config_free(cfg);
        return 2;
    }
    if (tls_server_load(&tls, cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "lazykvd: %s\n", err);
        rc = 2;
    } else {
        if (tls.cert_pem)
            snprintf(notes, sizeof(notes), "; tls_cert subject: %s\n; tls_cert expires: %s\n",
                     tls.subject, tls.expires);
        config_dump(cfg, stdout, notes);
        tls_server_free(&tls);
    }
    config_free(cfg);
    return rc;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"test", no_argument, NULL, 'T'},
        {"listen", required_argument, NULL, 'l'}, {"test-conf", no_argument, NULL, 't'},
        {"allow-root", no_argument, NULL, 'R'},   {"help", no_argument, NULL, 'h'},
        {"version", no_argument, NULL, 'V'},      {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *listen = NULL;
    int test_mode = config_env_test_mode(), check_only = 0, allow_root = 0, c;
    log_init("lazykvd", LOG_INFO);
    while ((c = getopt_long(argc, argv, "c:l:thV", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'T': test_mode = 1; break;
        case 'l': listen = optarg; break;
        case 't': check_only = 1; break;
        case 'R': allow_root = 1; break;
        case 'h': usage(stdout); return 0;
        case 'V': printf("lazykvd %s\n", LKV_VERSION); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (config_path == NULL || optind != argc) {
        fprintf(stderr, "lazykvd: %s\n", config_path ? "unexpected argument" : "-c FILE is required");
        usage(stderr);
        return 2;
    }
    char err[512];
    struct lkv_config *cfg = config_load(config_path, test_mode, err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "lazykvd: %s\n", err);
        return 2;
    }
    if (listen) {
        free(cfg->listen_host);
        cfg->listen_host = NULL;
        if (config_parse_listen(listen, &cfg->listen_host, &cfg->listen_port) != 0) {
            fprintf(stderr, "lazykvd: --listen: must be HOST:PORT, got '%s'\n", listen);
            config_free(cfg);
            return 2;
        }
    }
    enum log_level level;
    log_level_parse(cfg->log_level, &level);
    log_init("lazykvd", level);
    if (check_only)
        return check_config(cfg);
    if (geteuid() == 0 && !allow_root) {
        fprintf(stderr, "lazykvd: refusing to run as root (use --allow-root to insist)\n");
        config_free(cfg);
        return 2;
    }
    if (check_spool_dir(cfg) != 0) {
        config_free(cfg);
        return 2;
    }
    warn_readable_password(cfg);
    /* clients, the workers' lanes, the probers' connections, and spare */
    raise_fd_limit(cfg->max_connections + cfg->threads * cfg->partitions * LANE_KINDS +
                   2 * cfg->partitions + 64);

    /* Block the signals before MHD starts its threads, so they inherit the
     * mask and only sigwait() below ever sees them. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    /* Values up to max_value_size pass through malloc: a fixed mmap
     * threshold keeps every large buffer mmapped, so its memory goes back to
     * the system on free instead of staying in a thread's arena. */
    mallopt(M_MMAP_THRESHOLD, 256 * 1024);

    if (mysql_library_init(0, NULL, NULL) != 0) {
        log_error("cannot initialise the MariaDB client library");
        config_free(cfg);
        return 1;
    }
    int rc = check_schemas(cfg);
    if (rc != 0) {
        mysql_library_end();
        config_free(cfg);
        return rc;
    }
    struct lkv_server srv;
    memset(&srv, 0, sizeof(srv));
    if (server_prepare(&srv, cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "lazykvd: %s\n", err);
        rc = 2;
    } else if (server_start(&srv, cfg) != 0) {
        rc = 1;
    } else {
        char status[256];
        snprintf(status, sizeof(status), "listening on %s://%s:%d/ (%d partitions, %d threads%s%s)",
                 srv.tls.cert_pem ? "https" : "http", cfg->listen_host, srv.port,
                 cfg->partitions, cfg->threads, cfg->tokens_file ? ", tokens" : "",
                 cfg->test_mode ? ", test mode" : "");
        log_info("%s", status);
        /* Only now, with the socket listening, may systemd start what
         * depends on lazykvd (Type=notify). */
        if (notify_ready(status) < 0)
            log_warn("cannot notify the service manager at $NOTIFY_SOCKET: %s", strerror(errno));
        int sig = 0;
        while (sigwait(&sigs, &sig) == 0 && sig == SIGHUP) {
            notify_reloading();
            server_reload(&srv);
            notify_ready(status);
        }
        log_info("%s received, stopping", sig == SIGINT ? "SIGINT" : "SIGTERM");
        notify_stopping();
    }
    server_stop(&srv);
    mysql_library_end();
    config_free(cfg);
    return rc;
}
