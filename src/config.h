/*
 * config.h -- the configuration file (INI, read with iniparser), parsed and
 * validated once at start-up, read-only afterwards.
 *
 * Every key is described by one row of a table in config.c (section, key,
 * type, bounds, default). A bad or missing value stops the program with one
 * line naming the file, section, key and problem; unknown sections and keys
 * are warned about. See README.md "Configuration" for the reference.
 */
#ifndef LKV_CONFIG_H
#define LKV_CONFIG_H

#include <stddef.h>

#define CONFIG_MAX_PARTITIONS 64
#define CONFIG_MAX_KEY_LENGTH 3072 /* InnoDB's limit for an index key */
#define CONFIG_MAX_BATCH 16        /* requests per grouped statement (lane.h) */
#define CONFIG_TEST_PREFIX "test_"
/* TLS 1.2 and 1.3 only, no RSA key exchange (no forward secrecy), no SHA-1;
 * the server's order of preference. */
#define CONFIG_TLS_PRIORITIES \
    "SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-RSA:-SHA1:%SERVER_PRECEDENCE"

/* [partition-N] tls: how lazykv's connections to a partition use TLS. */
enum partition_tls {
    PARTITION_TLS_OFF,   /* plain TCP (or a Unix socket) */
    PARTITION_TLS_ON,    /* encrypted; the server's certificate not checked */
    PARTITION_TLS_VERIFY /* encrypted; certificate checked against tls_ca, and the host name */
};

struct lkv_partition_conf {
    char *name;            /* owned: database name, "test_" prefixed in test mode */
    char *host;            /* owned: TCP host, unused when socket is set */
    int   port;            /* TCP port */
    char *socket;          /* owned: Unix socket path, or NULL for TCP */
    char *user;            /* owned */
    char *password;        /* owned: never logged */
    int   connect_timeout; /* seconds; from [store] unless overridden */
    int   read_timeout;    /* seconds */
    int   write_timeout;   /* seconds */
    int   tls;             /* enum partition_tls */
    char *tls_ca;          /* owned: PEM CA file, or NULL */
    char *tls_cert;        /* owned: PEM client certificate, or NULL */
    char *tls_key;         /* owned: its key, or NULL */
};

struct lkv_config {
    char *path;                 /* owned: the file it was read from */
    int   test_mode;            /* 1: every database name has the test_ prefix */

    /* [store] */
    int   key_length;           /* max key bytes */
    int   partitions;           /* number of [partition-N] sections used */
    char *table_name;           /* owned: validated SQL identifier */
    long long max_value_size;   /* bytes */
    int   connect_timeout;      /* seconds, default for partitions */
    int   read_timeout;
    int   write_timeout;

    /* [server] */
    char *listen_host;          /* owned */
    int   listen_port;
    int   threads;              /* resolved: 0 in the file means one per core */
    int   http_threads;         /* libmicrohttpd's threads (its thread pool) */
    int   max_connections;
    int   connection_timeout;   /* idle seconds before a client is dropped */
    int   batch;                /* concurrent requests to a partition in one statement, at most */
    int   read_cache_ms;        /* lazy read cache: how long a read value is reused; 0 = off */
    long long read_cache_bytes; /* its memory, all workers together */
    char *log_level;            /* owned: error|warn|info|debug */
    char *tls_cert;             /* owned: PEM file; with tls_key, the listener is HTTPS; or NULL */
    char *tls_key;              /* owned: PEM file, or NULL */
    char *tls_client_ca;        /* owned: PEM CA clients' certificates must chain to, or NULL */
    char *tls_priorities;       /* owned: GnuTLS priority string */
    char *access_log;           /* owned: "-" (stdout), a file name, or NULL (off) */

    /* [auth] */
    char *tokens_file;          /* owned: bearer tokens (auth.h), or NULL: no authentication */

    /* [sync] */
    int   sync_batch_size;      /* rows per transaction */
    long long sync_batch_bytes; /* value bytes per transaction, soft cap */
    int   tombstone_grace;      /* seconds a tombstone is kept at least */
    int   chunk_grace;          /* seconds an unused chunk set is kept at least */

    struct lkv_partition_conf *part; /* owned: array of partitions */
};

/* Reads and validates path. test_mode prefixes database names with "test_".
 * Returns the config (caller frees with config_free), or NULL with a one-line
 * message in err ("FILE: [section] key: problem"). */
struct lkv_config *config_load(const char *path, int test_mode, char *err, size_t errlen);

void config_free(struct lkv_config *cfg);

/* Writes the effective configuration as INI to f, password masked;
 * server_notes (or NULL) is written at the end of [server]. */
void config_dump(const struct lkv_config *cfg, void *file, const char *server_notes);

/* 1 when LAZYKV_ENV=test is set in the environment. */
int config_env_test_mode(void);

/* Parses "HOST:PORT" or "[V6]:PORT". host is malloc'd. 0 or -1. */
int config_parse_listen(const char *s, char **host, int *port);

/* Strict base-10 integer: optional '-', digits only, no overflow. 0 or -1. */
int config_parse_ll(const char *s, long long *out);

#endif
