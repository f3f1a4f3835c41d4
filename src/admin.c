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
#include "auth.h"
#include "config.h"
#include "lkv.h"
#include "log.h"
#include "partition.h"
#include "store.h"

extern const char *const schema_sql[]; /* build/schema_sql.c, from sql/schema.sql */

static void usage(FILE *f)
{
    fprintf(f,
        "usage: lazykv-admin -c FILE [--test] COMMAND [ARG...]\n"
        "\n"
        "Commands:\n"
        "  init          create every missing database and table on every partition,\n"
        "                and upgrade tables of earlier releases, keeping their rows\n"
        "                (idempotent: running it twice changes nothing)\n"
        "  token NAME PERMISSIONS PREFIX...\n"
        "                make a bearer token: prints the token once on stderr, and on\n"
        "                stdout the line to add to [auth] tokens_file (its hash only).\n"
        "                PERMISSIONS: letters of r (read), w (write), a (metrics,\n"
        "                detailed health); PREFIX: keys it reaches, percent-encoded,\n"
        "                or '*' for every key. Touches no database.\n"
        "  verify        compare all partitions (hash-bucket digests, narrowed where\n"
        "                they differ) and list the keys whose live state differs;\n"
        "                exit 0 when none differ, 1 otherwise\n"
        "    --repair    also copy each differing key's winning row to the others:\n"
        "                the highest version; for equal versions with different\n"
        "                contents, the majority's, then the master's; takes the\n"
        "                sync's lock (exit 75 while a pass runs: nothing done)\n"
        "\n"
        "Options:\n"
        "  -c, --config FILE   configuration file\n"
        "      --test          test mode: database names get the test_ prefix\n"
        "                      (also when LAZYKV_ENV=test)\n"
        "  -v, --verbose       name each differing bucket\n"
        "  -h, --help          this help\n"
        "\n"
        "Exit status: 0 done; 1 a partition failed (named on stderr); 2 usage or\n"
        "configuration error; 75 verify --repair while a sync pass runs.\n");
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

/* token NAME PERMISSIONS PREFIX...: see usage(). */
static int cmd_token(int argc, char **argv)
{
    unsigned perms;
    if (argc < 3) {
        fprintf(stderr, "lazykv-admin: token needs NAME PERMISSIONS PREFIX...\n");
        return 2;
    }
    if (!authfile_name_valid(argv[0], strlen(argv[0]))) {
        fprintf(stderr, "lazykv-admin: token: NAME must be 1 to 64 of A-Z a-z 0-9 . _ @ -\n");
        return 2;
    }
    if (authfile_parse_perms(argv[1], strlen(argv[1]), &perms) != 0) {
        fprintf(stderr, "lazykv-admin: token: PERMISSIONS must be distinct letters of r, w"
                        " and a, got '%s'\n", argv[1]);
        return 2;
    }
    char line[4096], text[AUTH_TOKEN_TEXT], hex[2 * AUTH_HASH_LEN + 1], why[128];
    int n = snprintf(line, sizeof(line), "%s %s %s", argv[0], argv[1],
                     "0000000000000000000000000000000000000000000000000000000000000000");
    for (int i = 2; i < argc && n < (int)sizeof(line); i++)
        n += snprintf(line + n, sizeof(line) - (size_t)n, " %s", argv[i]);
    /* the line must read back as written: check it as lazykvd will */
    struct auth_set *set = authfile_parse(line, strlen(line), why, sizeof(why));
    if (n >= (int)sizeof(line) || set == NULL) {
        fprintf(stderr, "lazykv-admin: token: %s\n",
                set ? "too many prefixes" : strchr(why, ' ') + 1);
        auth_set_free(set);
        return 2;
    }
    auth_set_free(set);
    if (auth_new_token(text, hex) != 0) {
        fprintf(stderr, "lazykv-admin: token: no randomness from the system\n");
        return 1;
    }
    printf("%s %s %s", argv[0], argv[1], hex);
    for (int i = 2; i < argc; i++)
        printf(" %s", argv[i]);
    printf("\n");
    fprintf(stderr, "%s\n", text);
    explicit_bzero(text, sizeof(text));
    return fflush(stdout) == 0 ? 0 : 1;
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
    int token_args = optind < argc && strcmp(argv[optind], "token") == 0;
    if (config_path == NULL || (optind != argc - 1 && !token_args)) {
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
    if (token_args) {
        rc = cmd_token(argc - optind - 1, argv + optind + 1);
    } else if (strcmp(cmd, "init") == 0) {
        rc = cmd_init(cfg);
    } else if (strcmp(cmd, "verify") == 0) {
        rc = admin_verify(cfg, repair, verbose);
    } else {
        fprintf(stderr, "lazykv-admin: unknown command '%s' (init, token, verify)\n", cmd);
        rc = 2;
    }
    config_free(cfg);
    mysql_library_end();
    return rc;
}
