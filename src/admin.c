/*
 * admin.c -- lazykv-admin, the operator tool: `init` creates the databases
 * and tables on every partition and upgrades tables of earlier releases
 * (idempotent; sql/schema.sql); `verify` compares partitions (see
 * antientropy.c).
 */
#include <getopt.h>
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "antientropy.h"
#include "config.h"
#include "lkv.h"
#include "log.h"
#include "partition.h"
#include "store.h"

extern const char *const schema_sql[]; /* build/schema_sql.c, from sql/schema.sql */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: lazykv-admin -c FILE [--test] COMMAND\n"
        "\n"
        "Commands:\n"
        "  init          create every missing database and table on every partition,\n"
        "                and upgrade tables of earlier releases, keeping their rows\n"
        "                (idempotent: running it twice changes nothing)\n"
        "  verify        compare all partitions (hash-bucket digests, narrowed where\n"
        "                they differ) and list the keys whose live state differs;\n"
        "                exit 0 when none differ, 1 otherwise\n"
        "    --repair    also copy each differing key's winning row to the others:\n"
        "                the highest version; for equal versions with different\n"
        "                contents, the majority's, then the master's\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE   configuration file\n"
        "      --test          test mode: database names get the test_ prefix\n"
        "                      (also when LAZYKV_ENV=test)\n"
        "  -v, --verbose       name each differing bucket\n"
        "  -h, --help          this help\n"
        "\n"
        "Exit status: 0 done; 1 a partition failed (named on stderr); 2 usage or\n"
        "configuration error.\n");
}

/* Runs one DDL text with "@T" expanded to name. */
static int exec_expanded(struct pconn *c, const char *tmpl, const char *name)
{
    char *sql = store_sql_expand(tmpl, name);
    if (sql == NULL) {
        log_error("out of memory");
        return -1;
    }
    enum lkv_status st = pconn_exec(c, sql);
    free(sql);
    return st == LKV_OK ? 0 : -1;
}

static int init_partition(const struct lkv_config *cfg, int i)
{
    struct pconn c;
    enum lkv_status st;
    pconn_init(&c, cfg, i, NULL, 0);
    const char *db = cfg->part[i].name;
    int rc = -1;
    if (pconn_connect_server(&c, &st) == NULL) {
        fprintf(stderr, "lazykv-admin: partition %d (%s): %s\n", i, db, c.last_error);
        return -1;
    }
    if (exec_expanded(&c, "CREATE DATABASE IF NOT EXISTS `@T`", db) != 0 ||
        mysql_select_db(c.mysql, db) != 0)
        goto out;
    for (int s = 0; schema_sql[s]; s++)
        if (exec_expanded(&c, schema_sql[s], cfg->table_name) != 0)
            goto out;
    printf("partition %d: %s.%s ready\n", i, db, cfg->table_name);
    rc = 0;
out:
    if (rc != 0)
        fprintf(stderr, "lazykv-admin: partition %d (%s): %s\n", i, db,
                c.mysql ? mysql_error(c.mysql) : c.last_error);
    pconn_close(&c);
    return rc;
}

static int cmd_init(const struct lkv_config *cfg)
{
    int failed = 0;
    for (int i = 0; i < cfg->partitions; i++)
        failed |= init_partition(cfg, i) != 0;
    return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'}, {"test", no_argument, NULL, 'T'},
        {"repair", no_argument, NULL, 'r'},       {"verbose", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL;
    int test_mode = config_env_test_mode(), repair = 0, verbose = 0, c;
    log_init("lazykv-admin", LOG_WARN);
    while ((c = getopt_long(argc, argv, "c:rvh", opts, NULL)) != -1) {
        switch (c) {
        case 'c': config_path = optarg; break;
        case 'T': test_mode = 1; break;
        case 'r': repair = 1; break;
        case 'v': verbose = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return 2;
        }
    }
    if (config_path == NULL || optind != argc - 1) {
        fprintf(stderr, "lazykv-admin: %s\n",
                config_path ? "one COMMAND is required" : "-c FILE is required");
        usage(stderr);
        return 2;
    }
    const char *cmd = argv[optind];
    char err[512];
    struct lkv_config *cfg = config_load(config_path, test_mode, err, sizeof(err));
    if (cfg == NULL) {
        fprintf(stderr, "lazykv-admin: %s\n", err);
        return 2;
    }
    int rc;
    mysql_library_init(0, NULL, NULL);
    if (strcmp(cmd, "init") == 0) {
        rc = cmd_init(cfg);
    } else if (strcmp(cmd, "verify") == 0) {
        rc = admin_verify(cfg, repair, verbose);
    } else {
        fprintf(stderr, "lazykv-admin: unknown command '%s' (init, verify)\n", cmd);
        rc = 2;
    }
    config_free(cfg);
    mysql_library_end();
    return rc;
}
