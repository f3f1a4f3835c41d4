/*
 * config.c -- table-driven configuration: parse, validate, dump. See config.h.
 *
 * iniparser lower-cases sections and keys and strips ';' comments. Its number
 * getters accept octal and trailing junk, so every value is read as a string
 * and parsed here (config_parse_ll).
 */
#include "config.h"

#include <ctype.h>
#include <errno.h>
#include <iniparser/iniparser.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"

enum conf_type {
    CT_INT,    /* long long within [min, max], stored as int */
    CT_LLONG,  /* long long within [min, max] */
    CT_STRING, /* any non-empty string */
    CT_IDENT,  /* SQL identifier: [A-Za-z0-9_], 1..64 bytes */
    CT_LISTEN, /* HOST:PORT, stored into listen_host / listen_port */
    CT_LEVEL,  /* a log level name */
    CT_PATH,   /* a file name, made absolute against the configuration's directory */
    CT_TLS,    /* off | on | verify, stored as enum partition_tls */
    CT_LOG     /* off | - | a file name (CT_PATH) */
};

enum conf_scope { SC_GLOBAL, SC_PARTITION };

struct conf_key {
    enum conf_scope scope;
    const char *section;   /* "store", "server", "sync"; unused for partitions */
    const char *key;
    enum conf_type type;
    long long min, max;
    const char *def;       /* default text; NULL = required; "" = optional, unset */
    size_t offset;         /* into struct lkv_config or lkv_partition_conf */
};

#define G(sec, k, t, lo, hi, d, field) \
    {SC_GLOBAL, sec, k, t, lo, hi, d, offsetof(struct lkv_config, field)}
#define P(k, t, lo, hi, d, field) \
    {SC_PARTITION, "partition-N", k, t, lo, hi, d, offsetof(struct lkv_partition_conf, field)}

static const struct conf_key conf_keys[] = {
    G("store", "key_length", CT_INT, 1, CONFIG_MAX_KEY_LENGTH, "250", key_length),
    G("store", "partitions", CT_INT, 1, CONFIG_MAX_PARTITIONS, NULL, partitions),
    G("store", "table_name", CT_IDENT, 0, 0, "data", table_name),
    G("store", "max_value_size", CT_LLONG, 0, 1LL << 30, "16777216", max_value_size),
    G("store", "connect_timeout", CT_INT, 1, 3600, "2", connect_timeout),
    G("store", "read_timeout", CT_INT, 1, 3600, "5", read_timeout),
    G("store", "write_timeout", CT_INT, 1, 3600, "5", write_timeout),
    G("server", "listen", CT_LISTEN, 0, 0, "127.0.0.1:8080", listen_host),
    G("server", "threads", CT_INT, 0, 1024, "0", threads),
    G("server", "http_threads", CT_INT, 1, 64, "4", http_threads),
    G("server", "max_connections", CT_INT, 1, 1000000, "10000", max_connections),
    G("server", "connection_timeout", CT_INT, 1, 86400, "30", connection_timeout),
    G("server", "batch", CT_INT, 1, CONFIG_MAX_BATCH, "16", batch),
    G("server", "read_cache_ms", CT_INT, 0, 3600000, "0", read_cache_ms),
    G("server", "read_cache_bytes", CT_LLONG, 0, 1LL << 40, "67108864", read_cache_bytes),
    G("server", "log_level", CT_LEVEL, 0, 0, "info", log_level),
    G("server", "tls_cert", CT_PATH, 0, 0, "", tls_cert),
    G("server", "tls_key", CT_PATH, 0, 0, "", tls_key),
    G("server", "tls_client_ca", CT_PATH, 0, 0, "", tls_client_ca),
    G("server", "tls_priorities", CT_STRING, 0, 0, CONFIG_TLS_PRIORITIES, tls_priorities),
    G("server", "access_log", CT_LOG, 0, 0, "off", access_log),
    G("auth", "tokens_file", CT_PATH, 0, 0, "", tokens_file),
    G("sync", "batch_size", CT_INT, 1, 100000, "1000", sync_batch_size),
    G("sync", "batch_bytes", CT_LLONG, 1024, 1LL << 30, "33554432", sync_batch_bytes),
    G("sync", "tombstone_grace", CT_INT, 0, 100000000, "86400", tombstone_grace),
    G("sync", "chunk_grace", CT_INT, 0, 100000000, "3600", chunk_grace),
    P("name", CT_IDENT, 0, 0, NULL, name),
    P("host", CT_STRING, 0, 0, "127.0.0.1", host),
    P("port", CT_INT, 1, 65535, "3306", port),
    P("socket", CT_STRING, 0, 0, "", socket),
    P("user", CT_STRING, 0, 0, NULL, user),
    P("password", CT_STRING, 0, 0, "", password),
    P("connect_timeout", CT_INT, 1, 3600, "", connect_timeout),
    P("read_timeout", CT_INT, 1, 3600, "", read_timeout),
    P("write_timeout", CT_INT, 1, 3600, "", write_timeout),
    P("tls", CT_TLS, 0, 0, "off", tls),
    P("tls_ca", CT_PATH, 0, 0, "", tls_ca),
    P("tls_cert", CT_PATH, 0, 0, "", tls_cert),
    P("tls_key", CT_PATH, 0, 0, "", tls_key),
};
#define N_CONF_KEYS (sizeof(conf_keys) / sizeof(conf_keys[0]))

struct loader {
    const char *path;
    dictionary *ini;
    char *err;
    size_t errlen;
};

static int fail(struct loader *ld, const char *section, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int fail(struct loader *ld, const char *section, const char *key, const char *fmt, ...)
{
    char what[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof(what), fmt, ap);
    va_end(ap);
    if (section && key)
        snprintf(ld->err, ld->errlen, "%s: [%s] %s: %s", ld->path, section, key, what);
    else
        snprintf(ld->err, ld->errlen, "%s: %s", ld->path, what);
    return -1;
}

int config_parse_ll(const char *s, long long *out)
{
    const char *p = s;
    if (*p == '-')
        p++;
    if (*p == '\0')
        return -1;
    for (const char *q = p; *q; q++)
        if (!isdigit((unsigned char)*q))
            return -1;
    errno = 0;
    long long v = strtoll(s, NULL, 10);
    if (errno == ERANGE)
        return -1;
    *out = v;
    return 0;
}

static int ident_valid(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_')
            return 0;
    return 1;
}

int config_parse_listen(const char *s, char **host, int *port)
{
    const char *colon = strrchr(s, ':');
    if (colon == NULL || colon == s)
        return -1;
    long long p;
    if (config_parse_ll(colon + 1, &p) != 0 || p < 0 || p > 65535)
        return -1;
    const char *h = s;
    size_t hlen = (size_t)(colon - s);
    if (h[0] == '[') {
        if (hlen < 3 || h[hlen - 1] != ']')
            return -1;
        h++;
        hlen -= 2;
    }
    char *copy = strndup(h, hlen);
    if (copy == NULL)
        return -1;
    *host = copy;
    *port = (int)p;
    return 0;
}

/* name as given when absolute, else relative to the directory of the
 * configuration file cfg_path (the working directory of a daemon is not
 * something a configuration should depend on). Malloc'd, NULL if out of
 * memory. */
static char *path_from(const char *cfg_path, const char *name)
{
    const char *slash = strrchr(cfg_path, '/');
    if (name[0] == '/' || slash == NULL)
        return strdup(name);
    char *out;
    if (asprintf(&out, "%.*s/%s", (int)(slash - cfg_path), cfg_path, name) < 0)
        return NULL;
    return out;
}

/* Stores one validated value of row k, read as text v, into the struct at base. */
static int set_value(struct loader *ld, const char *section, const struct conf_key *k,
                     const char *v, void *base)
{
    char *field = (char *)base + k->offset;
    long long n;
    char *copy;
    switch (k->type) {
    case CT_INT:
    case CT_LLONG:
        if (config_parse_ll(v, &n) != 0 || n < k->min || n > k->max)
            return fail(ld, section, k->key, "must be a whole number from %lld to %lld, got '%s'",
                        k->min, k->max, v);
        if (k->type == CT_INT)
            *(int *)field = (int)n;
        else
            *(long long *)field = n;
        return 0;
    case CT_IDENT:
        if (!ident_valid(v))
            return fail(ld, section, k->key,
                        "must be 1 to 64 letters, digits or '_', got '%s'", v);
        break;
    case CT_LISTEN: {
        struct lkv_config *cfg = base;
        if (config_parse_listen(v, &cfg->listen_host, &cfg->listen_port) != 0)
            return fail(ld, section, k->key, "must be HOST:PORT with a port from 0 to 65535, got '%s'", v);
        return 0;
    }
    case CT_LEVEL: {
        enum log_level lv;
        if (log_level_parse(v, &lv) != 0)
            return fail(ld, section, k->key, "must be error, warn, info or debug, got '%s'", v);
        break;
    }
    case CT_TLS: {
        static const char *const modes[] = {"off", "on", "verify"};
        for (int m = 0; m < 3; m++)
            if (strcmp(v, modes[m]) == 0) {
                *(int *)field = m;
                return 0;
            }
        return fail(ld, section, k->key, "must be off, on or verify, got '%s'", v);
    }
    case CT_LOG:
        if (strcmp(v, "off") == 0)
            return 0; /* NULL: no access log */
        if (strcmp(v, "-") == 0)
            break;
        __attribute__((fallthrough)); /* a file name */
    case CT_PATH:
        copy = path_from(ld->path, v);
        if (copy == NULL)
            return fail(ld, section, k->key, "out of memory");
        *(char **)field = copy;
        return 0;
    case CT_STRING:
        break;
    }
    copy = strdup(v);
    if (copy == NULL)
        return fail(ld, section, k->key, "out of memory");
    *(char **)field = copy;
    return 0;
}

/* Reads every row of the given scope from section into base. */
static int load_section(struct loader *ld, enum conf_scope scope, const char *section, void *base)
{
    for (size_t i = 0; i < N_CONF_KEYS; i++) {
        const struct conf_key *k = &conf_keys[i];
        if (k->scope != scope || (scope == SC_GLOBAL && strcmp(k->section, section) != 0))
            continue;
        char full[128];
        snprintf(full, sizeof(full), "%s:%s", section, k->key);
        const char *v = iniparser_getstring(ld->ini, full, NULL);
        if (v == NULL || v[0] == '\0') {
            if (k->def == NULL)
                return fail(ld, section, k->key, "is required");
            if (k->def[0] == '\0')
                continue;
            v = k->def;
        }
        if (set_value(ld, section, k, v, base) != 0)
            return -1;
    }
    return 0;
}

static int known_section(const struct lkv_config *cfg, const char *sec)
{
    if (!strcmp(sec, "store") || !strcmp(sec, "server") || !strcmp(sec, "sync") ||
        !strcmp(sec, "auth"))
        return 1;
    long long n;
    return strncmp(sec, "partition-", 10) == 0 && config_parse_ll(sec + 10, &n) == 0 &&
           n >= 0 && n < cfg->partitions;
}

static int known_key(const char *sec, const char *key)
{
    int part = strncmp(sec, "partition-", 10) == 0;
    for (size_t i = 0; i < N_CONF_KEYS; i++) {
        const struct conf_key *k = &conf_keys[i];
        if (strcmp(k->key, key) != 0)
            continue;
        if ((part && k->scope == SC_PARTITION) ||
            (!part && k->scope == SC_GLOBAL && strcmp(k->section, sec) == 0))
            return 1;
    }
    return 0;
}

/* Warns (does not fail) about sections and keys that nothing reads: a typo
 * should be visible, but an old file should still start. */
static int warn_unknown(struct loader *ld, const struct lkv_config *cfg)
{
    int nsec = iniparser_getnsec(ld->ini);
    for (int s = 0; s < nsec; s++) {
        const char *sec = iniparser_getsecname(ld->ini, s);
        if (!known_section(cfg, sec)) {
            log_warn("%s: [%s]: unknown section, ignored", ld->path, sec);
            continue;
        }
        int nkeys = iniparser_getsecnkeys(ld->ini, sec);
        if (nkeys <= 0)
            continue;
        const char **keys = calloc((size_t)nkeys, sizeof(*keys));
        if (keys == NULL)
            return fail(ld, NULL, NULL, "out of memory");
        iniparser_getseckeys(ld->ini, sec, keys);
        size_t seclen = strlen(sec);
        for (int i = 0; i < nkeys; i++) {
            const char *key = keys[i] + seclen + 1; /* "section:key" */
            if (!known_key(sec, key))
                log_warn("%s: [%s] %s: unknown key, ignored", ld->path, sec, key);
        }
        free(keys);
    }
    return 0;
}

static int load_partition(struct loader *ld, struct lkv_config *cfg, int i)
{
    struct lkv_partition_conf *p = &cfg->part[i];
    char sec[32];
    snprintf(sec, sizeof(sec), "partition-%d", i);
    if (iniparser_find_entry(ld->ini, sec) == 0)
        return fail(ld, sec, "name", "section [%s] is required because partitions = %d",
                    sec, cfg->partitions);
    if (load_section(ld, SC_PARTITION, sec, p) != 0)
        return -1;
    if (!p->tls_cert != !p->tls_key)
        return fail(ld, sec, p->tls_cert ? "tls_key" : "tls_cert",
                    "tls_cert and tls_key go together (a client certificate and its key)");
    if (p->tls == PARTITION_TLS_VERIFY && p->tls_ca == NULL)
        return fail(ld, sec, "tls_ca", "is required with tls = verify (the CA that signed the"
                                       " server's certificate)");
    if (p->tls == PARTITION_TLS_OFF && (p->tls_ca || p->tls_cert))
        return fail(ld, sec, "tls", "is off, but tls_ca or tls_cert is set: say on or verify");
    if (p->connect_timeout == 0)
        p->connect_timeout = cfg->connect_timeout;
    if (p->read_timeout == 0)
        p->read_timeout = cfg->read_timeout;
    if (p->write_timeout == 0)
        p->write_timeout = cfg->write_timeout;
    if (cfg->test_mode) {
        size_t n = strlen(CONFIG_TEST_PREFIX) + strlen(p->name) + 1;
        if (n > 65)
            return fail(ld, sec, "name", "'%s' is too long for the test_ prefix", p->name);
        char *prefixed = malloc(n);
        if (prefixed == NULL)
            return fail(ld, sec, "name", "out of memory");
        snprintf(prefixed, n, "%s%s", CONFIG_TEST_PREFIX, p->name);
        free(p->name);
        p->name = prefixed;
    }
    for (int j = 0; j < i; j++) {
        const struct lkv_partition_conf *q = &cfg->part[j];
        int same_server = (p->socket && q->socket && !strcmp(p->socket, q->socket)) ||
                          (!p->socket && !q->socket && !strcmp(p->host, q->host) &&
                           p->port == q->port);
        if (same_server && !strcmp(p->name, q->name))
            return fail(ld, sec, "name", "'%s' on the same server as [partition-%d]", p->name, j);
    }
    return 0;
}

/* The longest name lazykv derives from table_name, "@T_chunks_unnamed" (a
 * trigger: sql/schema.sql), must be a MariaDB identifier (64 bytes). */
#define TABLE_SUFFIX_MAX (sizeof("_chunks_unnamed") - 1)

static int check_store(struct loader *ld, const struct lkv_config *cfg)
{
    if (cfg->table_name && strlen(cfg->table_name) + TABLE_SUFFIX_MAX > 64)
        return fail(ld, "store", "table_name",
                    "must be at most %d bytes (lazykv names tables and triggers after it),"
                    " got '%s'", (int)(64 - TABLE_SUFFIX_MAX), cfg->table_name);
    return 0;
}

static int check_server_tls(struct loader *ld, const struct lkv_config *cfg)
{
    if (!cfg->tls_cert != !cfg->tls_key)
        return fail(ld, "server", cfg->tls_cert ? "tls_key" : "tls_cert",
                    "tls_cert and tls_key go together");
    if (cfg->tls_client_ca && !cfg->tls_cert)
        return fail(ld, "server", "tls_client_ca", "needs tls_cert and tls_key (HTTPS)");
    return 0;
}

static int count_cores(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static int ini_error_to_log(const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_error("%s", msg);
    return 0;
}

struct lkv_config *config_load(const char *path, int test_mode, char *err, size_t errlen)
{
    struct loader ld = {path, NULL, err, errlen};
    struct lkv_config *cfg = calloc(1, sizeof(*cfg));
    if (cfg == NULL) {
        snprintf(err, errlen, "%s: out of memory", path);
        return NULL;
    }
    cfg->test_mode = test_mode;
    cfg->path = strdup(path);
    if (cfg->path == NULL) {
        fail(&ld, NULL, NULL, "out of memory");
        goto fail;
    }
    FILE *f = fopen(path, "r");
    if (f == NULL) {
        fail(&ld, NULL, NULL, "cannot open: %s", strerror(errno));
        goto fail;
    }
    fclose(f);
    iniparser_set_error_callback(ini_error_to_log);
    ld.ini = iniparser_load(path);
    if (ld.ini == NULL) {
        fail(&ld, NULL, NULL, "not a valid INI file");
        goto fail;
    }
    if (load_section(&ld, SC_GLOBAL, "store", cfg) != 0 ||
        load_section(&ld, SC_GLOBAL, "server", cfg) != 0 ||
        load_section(&ld, SC_GLOBAL, "sync", cfg) != 0 ||
        load_section(&ld, SC_GLOBAL, "auth", cfg) != 0 || check_server_tls(&ld, cfg) != 0 ||
        check_store(&ld, cfg) != 0)
        goto fail;
    /* partitions >= 1: validated by its row's bounds */
    cfg->part = calloc((size_t)cfg->partitions, sizeof(*cfg->part)); // NOLINT(clang-analyzer-optin.portability.UnixAPI)
    if (cfg->part == NULL) {
        fail(&ld, NULL, NULL, "out of memory");
        goto fail;
    }
    for (int i = 0; i < cfg->partitions; i++)
        if (load_partition(&ld, cfg, i) != 0)
            goto fail;
    /* Workers each run an event loop that never waits on the database;
     * libmicrohttpd's own thread takes the remaining core. More loops than
     * that only split the batches (server.h). */
    if (cfg->threads == 0)
        cfg->threads = count_cores() > 1 ? count_cores() - 1 : 1;
    if (warn_unknown(&ld, cfg) != 0)
        goto fail;
    iniparser_freedict(ld.ini);
    return cfg;
fail:
    if (ld.ini)
        iniparser_freedict(ld.ini);
    config_free(cfg);
    return NULL;
}

void config_free(struct lkv_config *cfg)
{
    if (cfg == NULL)
        return;
    for (int i = 0; cfg->part && i < cfg->partitions; i++) {
        struct lkv_partition_conf *p = &cfg->part[i];
        free(p->name);
        free(p->host);
        free(p->socket);
        free(p->user);
        free(p->password);
        free(p->tls_ca);
        free(p->tls_cert);
        free(p->tls_key);
    }
    free(cfg->part);
    free(cfg->path);
    free(cfg->table_name);
    free(cfg->listen_host);
    free(cfg->log_level);
    free(cfg->tls_cert);
    free(cfg->tls_key);
    free(cfg->tls_client_ca);
    free(cfg->tls_priorities);
    free(cfg->access_log);
    free(cfg->tokens_file);
    free(cfg);
}

void config_dump(const struct lkv_config *cfg, void *file, const char *server_notes)
{
    FILE *f = file;
    fprintf(f, "; effective configuration of %s%s\n", cfg->path,
            cfg->test_mode ? " (test mode)" : "");
    fprintf(f, "[store]\nkey_length = %d\npartitions = %d\ntable_name = %s\n"
               "max_value_size = %lld\nconnect_timeout = %d\nread_timeout = %d\n"
               "write_timeout = %d\n",
            cfg->key_length, cfg->partitions, cfg->table_name, cfg->max_value_size,
            cfg->connect_timeout, cfg->read_timeout, cfg->write_timeout);
    fprintf(f, "[server]\nlisten = %s:%d\nthreads = %d\nhttp_threads = %d\n"
               "max_connections = %d\n"
               "connection_timeout = %d\nbatch = %d\nread_cache_ms = %d\n"
               "read_cache_bytes = %lld\nlog_level = %s\n",
            cfg->listen_host, cfg->listen_port, cfg->threads, cfg->http_threads,
            cfg->max_connections,
            cfg->connection_timeout, cfg->batch, cfg->read_cache_ms, cfg->read_cache_bytes,
            cfg->log_level);
    if (cfg->tls_cert)
        fprintf(f, "tls_cert = %s\ntls_key = %s\n", cfg->tls_cert, cfg->tls_key);
    if (cfg->tls_client_ca)
        fprintf(f, "tls_client_ca = %s\n", cfg->tls_client_ca);
    fprintf(f, "tls_priorities = %s\naccess_log = %s\n", cfg->tls_priorities,
            cfg->access_log ? cfg->access_log : "off");
    if (server_notes)
        fputs(server_notes, f);
    if (cfg->tokens_file)
        fprintf(f, "[auth]\ntokens_file = %s\n", cfg->tokens_file);
    fprintf(f, "[sync]\nbatch_size = %d\nbatch_bytes = %lld\ntombstone_grace = %d\n"
               "chunk_grace = %d\n",
            cfg->sync_batch_size, cfg->sync_batch_bytes, cfg->tombstone_grace, cfg->chunk_grace);
    for (int i = 0; i < cfg->partitions; i++) {
        const struct lkv_partition_conf *p = &cfg->part[i];
        fprintf(f, "[partition-%d]\nname = %s\n", i, p->name);
        if (p->socket)
            fprintf(f, "socket = %s\n", p->socket);
        else
            fprintf(f, "host = %s\nport = %d\n", p->host, p->port);
        fprintf(f, "user = %s\npassword = %s\nconnect_timeout = %d\nread_timeout = %d\n"
                   "write_timeout = %d\n",
                p->user, p->password[0] ? "(set)" : "", p->connect_timeout,
                p->read_timeout, p->write_timeout);
        static const char *const tls_modes[] = {"off", "on", "verify"};
        fprintf(f, "tls = %s\n", tls_modes[p->tls]);
        if (p->tls_ca)
            fprintf(f, "tls_ca = %s\n", p->tls_ca);
        if (p->tls_cert)
            fprintf(f, "tls_cert = %s\ntls_key = %s\n", p->tls_cert, p->tls_key);
    }
}

int config_env_test_mode(void)
{
    const char *env = getenv("LAZYKV_ENV");
    return env != NULL && strcmp(env, "test") == 0;
}
