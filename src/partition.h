/*
 * partition.h -- connections to the partitions' databases.
 *
 * A struct pconn is one blocking connection to one partition, owned by
 * exactly one thread: lazykv-sync and lazykv-admin keep one per partition
 * (per thread). lazykvd's request path never blocks and has its own,
 * dbconn.h.
 * Connections open lazily, and after a connection-level failure they are
 * closed and not retried for a short back-off, so a dead partition costs one
 * timeout per thread per back-off period, not one per request. Prepared
 * statements are cached per connection and re-prepared after a reconnect.
 */
#ifndef LKV_PARTITION_H
#define LKV_PARTITION_H

#include <mysql.h>
#include <stdint.h>

#include "config.h"
#include "lkv.h"

#define PCONN_MAX_STMTS 40

/* After a connection failure, requests fail fast for this long. */
#define PCONN_BACKOFF_US 1000000u

struct pconn {
    int index;                                /* partition number */
    const struct lkv_partition_conf *conf;    /* ref: lives in the config */
    int test_mode;                            /* refuse non-test_ databases */
    const char *const *sql;                   /* ref: statement texts by id */
    int nsql;                                 /* entries in sql */
    MYSQL *mysql;                             /* owned; NULL when closed */
    MYSQL_STMT *stmt[PCONN_MAX_STMTS];        /* owned; prepared lazily */
    uint64_t retry_at_us;                     /* no reconnect before this */
    uint64_t failed_at_us;                    /* when the last connection failed */
    int in_txn;                               /* a transaction is open */
    int holds_lock;                           /* a named lock (GET_LOCK) is held */
    uint64_t last_used_us;                    /* when a statement last ran */
    unsigned last_errno;                      /* of the last failure */
    char last_error[256];                     /* of the last failure */
    uint64_t rng;                             /* xorshift64 state: retry jitter */
};

/* Initialises c for partition index of cfg; connects nothing yet. sql is a
 * table of nsql statement texts that pconn_stmt() prepares by id. */
void pconn_init(struct pconn *c, const struct lkv_config *cfg, int index,
                const char *const *sql, int nsql);

/* A connected handle to partition p's server (blocking, in the caller's
 * thread), database db selected (NULL: none), left in non-blocking mode when
 * nonblock (lazykvd's loops drive it with _start/_cont). In test mode a
 * database without the test_ prefix is refused. NULL on failure, with *st
 * (LKV_EUNAVAIL: cannot connect; LKV_ENOMEM; LKV_EINTERNAL: refused),
 * *err_no (the client error, or 0) and a message in err. */
MYSQL *partition_connect(const struct lkv_partition_conf *p, int test_mode, const char *db,
                         int nonblock, enum lkv_status *st, unsigned *err_no, char *err,
                         size_t errlen);

/* partition_connect in two halves, for a caller that must be able to cut a
 * connect short from another thread (prober.c shuts the handle's socket
 * down): partition_handle makes the handle with every option set (NULL when
 * out of memory or MYSQL_OPT_NONBLOCK fails, with *st and err), and
 * partition_connect_handle connects it (0, or -1 with *st, *err_no and err
 * as partition_connect). m stays the caller's to close, connected or not. */
MYSQL *partition_handle(const struct lkv_partition_conf *p, int nonblock, enum lkv_status *st,
                        char *err, size_t errlen);
int partition_connect_handle(MYSQL *m, const struct lkv_partition_conf *p, int test_mode,
                             const char *db, enum lkv_status *st, unsigned *err_no, char *err,
                             size_t errlen);

/* Closes the connection and its statements. c can be used again. */
void pconn_close(struct pconn *c);

/* The connection, opened now if needed (selecting the partition's database,
 * or none when no_db). NULL with *st = LKV_EUNAVAIL on failure. */
MYSQL *pconn_mysql(struct pconn *c, enum lkv_status *st);

/* Opens a connection without selecting a database (for lazykv-admin init,
 * which creates it). Closes any open one first. */
MYSQL *pconn_connect_server(struct pconn *c, enum lkv_status *st);

/* Statement id, prepared on this connection if not yet. NULL with *st set. */
MYSQL_STMT *pconn_stmt(struct pconn *c, int id, enum lkv_status *st);

/* Classifies the error of the last call on c (mysql_errno of the handle, or
 * of stmt when not NULL), logs it, closes the connection when it is broken,
 * and returns the status to report: LKV_EUNAVAIL for connection faults,
 * timeouts and missing schema, LKV_EINTERNAL for anything unexpected. */
enum lkv_status pconn_fail(struct pconn *c, MYSQL_STMT *stmt);

/* Attempts a transaction or statement gets when InnoDB picks it as a
 * deadlock victim. */
#define PCONN_DEADLOCK_ATTEMPTS 10

/* Called after attempt (0-based) of a write failed with LKV_EUNAVAIL: 1 when
 * the failure was InnoDB choosing it as a deadlock victim and attempts are
 * left. InnoDB rolled the victim back whole, so the caller runs it again, as
 * if it had arrived later. Before returning 1 it sleeps a random pause of
 * up to 2^attempt ms (at most 64 ms), so that the writers that met do not
 * meet again in step.
 * A deadlock is contention, not a fault: it never puts c in back-off. */
int pconn_retry_deadlock(struct pconn *c, int attempt);

/* Transactions. A connection found dead inside one is never silently
 * replaced (the work done so far is gone): the next call fails instead.
 * pconn_commit and pconn_rollback end it whatever happens. */
enum lkv_status pconn_begin(struct pconn *c);
enum lkv_status pconn_commit(struct pconn *c);
void pconn_rollback(struct pconn *c);

/* Runs a constant SQL text (no parameters, no results). For DDL and
 * transaction control only; data always goes through prepared statements. */
enum lkv_status pconn_exec(struct pconn *c, const char *sql);

#endif
