/*
 * partition.c -- per-thread database connections. See partition.h.
 */
#include "partition.h"

#include <errmsg.h>
#include <poll.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "rng.h"
#include "version.h"

void pconn_init(struct pconn *c, const struct lkv_config *cfg, int index,
                const char *const *sql, int nsql)
{
    memset(c, 0, sizeof(*c));
    c->index = index;
    c->conf = &cfg->part[index];
    c->test_mode = cfg->test_mode;
    c->sql = sql;
    c->nsql = nsql < PCONN_MAX_STMTS ? nsql : PCONN_MAX_STMTS;
    c->rng = version_now_us() ^ ((uint64_t)(uintptr_t)c << 17) ^ 0x9e3779b97f4a7c15ULL;
}

void pconn_close(struct pconn *c)
{
    /* in_txn and holds_lock stay set: pconn_commit/pconn_rollback and
     * store_named_unlock clear them, so a caller in a transaction or holding
     * a lock learns that the connection went away (pconn_mysql). */
    for (int i = 0; i < PCONN_MAX_STMTS; i++) {
        if (c->stmt[i]) {
            mysql_stmt_close(c->stmt[i]);
            c->stmt[i] = NULL;
        }
    }
    if (c->mysql) {
        mysql_close(c->mysql);
        c->mysql = NULL;
    }
}

/* 1 when c is in its back-off period (recently failed), else 0. */
static int backing_off(const struct pconn *c)
{
    return c->mysql == NULL && c->retry_at_us != 0 && version_now_us() < c->retry_at_us;
}

static void remember_failure(struct pconn *c, unsigned err, const char *msg)
{
    c->last_errno = err;
    snprintf(c->last_error, sizeof(c->last_error), "%s", msg);
}

/* After a connection is lost: a named lock it held went with it, and the
 * error says so (pconn_mysql opens no other in its place). */
static void note_lock_lost(struct pconn *c)
{
    if (!c->holds_lock)
        return;
    size_t n = strlen(c->last_error);
    snprintf(c->last_error + n, sizeof(c->last_error) - n, "; the named lock it held went with it");
}

static void start_backoff(struct pconn *c)
{
    c->failed_at_us = version_now_us();
    c->retry_at_us = c->failed_at_us + PCONN_BACKOFF_US;
}

/* [partition-N] tls. "on" still refuses a server that does not offer TLS
 * (MYSQL_OPT_SSL_ENFORCE): a silent fall-back to clear text is what TLS is
 * there to prevent. "verify" checks the server's certificate against
 * tls_ca and its name against host (Connector/C: X509_check_host, then
 * X509_check_ip_asc, so "127.0.0.1" matches an IP SAN). */
static void set_tls(MYSQL *m, const struct lkv_partition_conf *p)
{
    if (p->tls == PARTITION_TLS_OFF)
        return;
    my_bool yes = 1, verify = p->tls == PARTITION_TLS_VERIFY;
    mysql_options(m, MYSQL_OPT_SSL_ENFORCE, &yes);
    mysql_options(m, MYSQL_OPT_SSL_VERIFY_SERVER_CERT, &verify);
    if (p->tls_ca)
        mysql_options(m, MYSQL_OPT_SSL_CA, p->tls_ca);
    if (p->tls_cert) {
        mysql_options(m, MYSQL_OPT_SSL_CERT, p->tls_cert);
        mysql_options(m, MYSQL_OPT_SSL_KEY, p->tls_key);
    }
}

MYSQL *partition_handle(const struct lkv_partition_conf *p, int nonblock, enum lkv_status *st,
                        char *err, size_t errlen)
{
    MYSQL *m = mysql_init(NULL);
    if (m == NULL) {
        snprintf(err, errlen, "out of memory");
        *st = LKV_ENOMEM;
        return NULL;
    }
    unsigned ct = (unsigned)p->connect_timeout, rt = (unsigned)p->read_timeout,
             wt = (unsigned)p->write_timeout;
    unsigned long max_packet = 1UL << 30;
    my_bool no = 0;
    mysql_options(m, MYSQL_OPT_CONNECT_TIMEOUT, &ct);
    mysql_options(m, MYSQL_OPT_READ_TIMEOUT, &rt);
    mysql_options(m, MYSQL_OPT_WRITE_TIMEOUT, &wt);
    mysql_options(m, MYSQL_OPT_MAX_ALLOWED_PACKET, &max_packet);
    mysql_options(m, MYSQL_OPT_RECONNECT, &no);
    mysql_options(m, MYSQL_SET_CHARSET_NAME, "utf8mb4");
    /* Non-blocking mode may be set before a blocking connect (checked
     * against Connector/C 3.3): the handle is then driven with _start/_cont. */
    if (nonblock && mysql_options(m, MYSQL_OPT_NONBLOCK, 0) != 0) {
        snprintf(err, errlen, "cannot set MYSQL_OPT_NONBLOCK");
        mysql_close(m);
        *st = LKV_EINTERNAL;
        return NULL;
    }
    set_tls(m, p);
    *st = LKV_OK;
    return m;
}

int partition_connect_handle(MYSQL *m, const struct lkv_partition_conf *p, int test_mode,
                             const char *db, enum lkv_status *st, unsigned *err_no, char *err,
                             size_t errlen)
{
    *st = LKV_EUNAVAIL;
    *err_no = 0;
    if (test_mode && strncmp(p->name, CONFIG_TEST_PREFIX, strlen(CONFIG_TEST_PREFIX)) != 0) {
        /* Defence in depth: config.c prefixes every name in test mode. */
        snprintf(err, errlen, "refusing database '%s' in test mode", p->name);
        *st = LKV_EINTERNAL;
        return -1;
    }
    const char *host = p->socket ? "localhost" : p->host;
    if (mysql_real_connect(m, host, p->user, p->password, db, (unsigned)p->port, p->socket,
                           0) == NULL) {
        *err_no = mysql_errno(m);
        snprintf(err, errlen, "%s", mysql_error(m));
        return -1;
    }
    *st = LKV_OK;
    return 0;
}

MYSQL *partition_connect(const struct lkv_partition_conf *p, int test_mode, const char *db,
                         int nonblock, enum lkv_status *st, unsigned *err_no, char *err,
                         size_t errlen)
{
    *err_no = 0;
    MYSQL *m = partition_handle(p, nonblock, st, err, errlen);
    if (m == NULL)
        return NULL;
    if (partition_connect_handle(m, p, test_mode, db, st, err_no, err, errlen) != 0) {
        mysql_close(m);
        return NULL;
    }
    return m;
}

static MYSQL *connect_to(struct pconn *c, const char *db, enum lkv_status *st)
{
    char err[256];
    unsigned err_no;
    MYSQL *m = partition_connect(c->conf, c->test_mode, db, 0, st, &err_no, err, sizeof(err));
    if (m == NULL) {
        remember_failure(c, err_no, err);
        if (*st == LKV_EUNAVAIL) {
            /* info: every caller says it in its own words (last_error) */
            log_info("partition %d (%s): cannot connect: %s", c->index, c->conf->name, err);
            start_backoff(c);
        } else {
            log_error("partition %d (%s): %s", c->index, c->conf->name, err);
        }
        return NULL;
    }
    c->retry_at_us = 0;
    return m;
}

/* An idle connection has nothing to read: if its socket is readable or
 * hung up, the server closed it (restarted, killed, wait_timeout). Checking
 * costs one poll() and no round trip, and saves a request from failing on a
 * connection that is already dead. */
static int idle_connection_dead(MYSQL *m)
{
    struct pollfd pfd = {(int)mysql_get_socket(m), POLLIN | POLLRDHUP, 0};
    if (pfd.fd < 0)
        return 1;
    return poll(&pfd, 1, 0) != 0;
}

/* A connection used this recently is not checked: under load that saves a
 * syscall per request, and a server restart is noticed by the first request
 * after a quiet moment, or fails that one request with 503. */
#define PCONN_CHECK_IDLE_US 100000u

MYSQL *pconn_mysql(struct pconn *c, enum lkv_status *st)
{
    uint64_t now = version_now_us();
    int idle = now - c->last_used_us > PCONN_CHECK_IDLE_US;
    c->last_used_us = now;
    if (c->mysql && idle && idle_connection_dead(c->mysql)) {
        log_info("partition %d (%s): connection closed by the server", c->index, c->conf->name);
        pconn_close(c);
    }
    if (c->mysql) {
        *st = LKV_OK;
        return c->mysql;
    }
    /* A transaction and a named lock live in their connection: a new one
     * would carry on without them, and say nothing. The caller learns it
     * lost them (it ends the transaction, or gives the partition up). */
    if (c->in_txn || c->holds_lock) {
        remember_failure(c, CR_SERVER_LOST,
                         c->in_txn ? "connection lost inside a transaction" : "connection lost");
        note_lock_lost(c);
        *st = LKV_EUNAVAIL;
        return NULL;
    }
    if (backing_off(c)) {
        *st = LKV_EUNAVAIL;
        return NULL;
    }
    c->mysql = connect_to(c, c->conf->name, st);
    return c->mysql;
}

MYSQL *pconn_connect_server(struct pconn *c, enum lkv_status *st)
{
    pconn_close(c);
    c->mysql = connect_to(c, NULL, st);
    return c->mysql;
}

MYSQL_STMT *pconn_stmt(struct pconn *c, int id, enum lkv_status *st)
{
    if (id < 0 || id >= c->nsql) {
        *st = LKV_EINTERNAL;
        return NULL;
    }
    MYSQL *m = pconn_mysql(c, st); /* checks the connection is still alive */
    if (m == NULL)
        return NULL;
    if (c->stmt[id]) {
        *st = LKV_OK;
        return c->stmt[id];
    }
    MYSQL_STMT *s = mysql_stmt_init(m);
    if (s == NULL) {
        *st = LKV_ENOMEM;
        return NULL;
    }
    if (mysql_stmt_prepare(s, c->sql[id], strlen(c->sql[id])) != 0) {
        *st = pconn_fail(c, s);
        mysql_stmt_close(s);
        return NULL;
    }
    c->stmt[id] = s;
    *st = LKV_OK;
    return s;
}

/* Errors after which the connection cannot be trusted any more. */
static int is_connection_error(unsigned err)
{
    return err >= 2000 && err < 3000;
}

enum lkv_status pconn_fail(struct pconn *c, MYSQL_STMT *stmt)
{
    unsigned err = stmt ? mysql_stmt_errno(stmt) : (c->mysql ? mysql_errno(c->mysql) : 0);
    const char *msg = stmt ? mysql_stmt_error(stmt) : (c->mysql ? mysql_error(c->mysql) : "");
    remember_failure(c, err, msg);
    switch (err) {
    case ER_LOCK_DEADLOCK: /* retried by the caller: pconn_retry_deadlock */
        log_debug("partition %d: %s", c->index, msg);
        return LKV_EUNAVAIL;
    case ER_LOCK_WAIT_TIMEOUT:
        log_info("partition %d: %s", c->index, msg);
        return LKV_EUNAVAIL;
    case ER_BAD_DB_ERROR:
    case ER_NO_SUCH_TABLE:
        log_error("partition %d (%s): %s (run lazykv-admin init)", c->index, c->conf->name, msg);
        return LKV_EUNAVAIL;
    case ER_CON_COUNT_ERROR:
    case ER_SERVER_SHUTDOWN:
    case ER_QUERY_INTERRUPTED:
        log_warn("partition %d: %s", c->index, msg);
        pconn_close(c);
        note_lock_lost(c);
        return LKV_EUNAVAIL;
    default:
        break;
    }
    if (is_connection_error(err)) {
        log_warn("partition %d (%s): %s", c->index, c->conf->name, msg);
        /* A statement handle is owned by the cache or by the caller; only
         * the cached ones are closed here. */
        pconn_close(c);
        note_lock_lost(c);
        start_backoff(c);
        return LKV_EUNAVAIL;
    }
    log_error("partition %d (%s): unexpected error %u: %s", c->index, c->conf->name, err, msg);
    return LKV_EINTERNAL;
}

int pconn_retry_deadlock(struct pconn *c, int attempt)
{
    int deadlock = c->last_errno == ER_LOCK_DEADLOCK;
    c->last_errno = 0; /* consumed: a later failure of another kind is not retried */
    if (!deadlock || attempt + 1 >= PCONN_DEADLOCK_ATTEMPTS)
        return 0;
    uint64_t x = rng_next(&c->rng);
    unsigned max_us = 1000u << (attempt < 6 ? attempt : 6);
    struct timespec pause = {0, (long)(x % max_us) * 1000L};
    nanosleep(&pause, NULL);
    return 1;
}

enum lkv_status pconn_begin(struct pconn *c)
{
    c->in_txn = 0;
    enum lkv_status st = pconn_exec(c, "START TRANSACTION");
    c->in_txn = st == LKV_OK;
    return st;
}

enum lkv_status pconn_commit(struct pconn *c)
{
    enum lkv_status st = LKV_OK;
    if (c->mysql == NULL)
        st = LKV_EUNAVAIL;
    else if (mysql_commit(c->mysql) != 0)
        st = pconn_fail(c, NULL);
    c->in_txn = 0;
    return st;
}

void pconn_rollback(struct pconn *c)
{
    if (c->mysql)
        mysql_rollback(c->mysql);
    c->in_txn = 0;
}

enum lkv_status pconn_exec(struct pconn *c, const char *sql)
{
    enum lkv_status st;
    MYSQL *m = pconn_mysql(c, &st);
    if (m == NULL)
        return st;
    if (mysql_real_query(m, sql, strlen(sql)) != 0)
        return pconn_fail(c, NULL);
    MYSQL_RES *res = mysql_store_result(m);
    if (res)
        mysql_free_result(res);
    return LKV_OK;
}
