/*
 * dbconn.h -- one non-blocking connection to a partition, driven by the
 * event loop of the worker thread that owns it, and the one executor of
 * prepared statements on it.
 *
 * A statement runs as a chain of MariaDB Connector/C calls (prepare once per
 * connection, execute, store the result, fetch the rows locally), each a
 * mysql_*_start / mysql_*_cont pair: whenever the library would block, the
 * connection tells its loop which socket events it waits for and by when,
 * and the loop calls dbconn_on_event() or dbconn_on_timeout(). The library
 * enforces no timeout of its own in this mode (it only reports one): the
 * deadline here is read_timeout (write_timeout while sending), and a
 * statement past it fails and the connection is discarded.
 *
 * Connecting blocks (name lookup, TLS), so it never happens here: the
 * partition's prober thread (prober.h) opens the MYSQL handle and the owner
 * hands it over with dbconn_attach().
 *
 * One call at a time per connection. Everything here runs on the owning
 * worker thread; nothing is shared.
 */
#ifndef LKV_DBCONN_H
#define LKV_DBCONN_H

#include <mysql.h>
#include <stddef.h>
#include <stdint.h>

#include "lkv.h"

#define DBCONN_MAX_STMTS 80

struct dbconn;

/* Called once per call when it ends. st is LKV_OK, or the failure mapped
 * as pconn_fail() does (LKV_EUNAVAIL for connection faults, timeouts and
 * deadlocks -- dbconn_deadlocked() tells those apart -- LKV_EINTERNAL for
 * anything unexpected). After a connection fault the connection is already
 * closed (dbconn_ready() is 0). */
typedef void (*dbconn_done_fn)(struct dbconn *c, enum lkv_status st, void *arg);

/* Called for each row of a result, with the statement positioned on it
 * (mysql_stmt_fetch done, bound results filled; MYSQL_DATA_TRUNCATED
 * columns can be read with mysql_stmt_fetch_column, which is local).
 * Returns 0 to go on, or a failure status that ends the call with it. */
typedef enum lkv_status (*dbconn_row_fn)(MYSQL_STMT *s, void *arg);

/* Tells the owner's loop what c waits for: fd (-1: nothing, deregister)
 * and events (EPOLLIN / EPOLLOUT bits). */
typedef void (*dbconn_watch_fn)(struct dbconn *c, int fd, unsigned events, void *owner);

struct dbconn {
    int partition;                  /* index, for logs */
    const char *name;               /* ref: the database name, for logs */
    const char *const *sql;         /* ref: statement texts by id */
    int nsql;
    unsigned read_timeout_ms, write_timeout_ms;
    dbconn_watch_fn watch;          /* ref: the owner's loop */
    void *owner;                    /* ref */

    MYSQL *mysql;                   /* owned; NULL when closed */
    MYSQL_STMT *stmt[DBCONN_MAX_STMTS]; /* owned; prepared on first use */
    int fd;                         /* socket being watched, or -1 */
    unsigned watching;              /* events asked of the loop */
    uint64_t deadline_us;           /* of the call in flight; 0 when idle */

    /* the call in flight */
    int op;                         /* which _cont to call next (dbconn.c) */
    int busy;
    int stmt_id;                    /* -1 for a plain query */
    MYSQL_BIND *params;             /* ref, for a statement */
    MYSQL_BIND *results;            /* ref: bound to each row, or NULL */
    const char *query;              /* ref: for a plain query */
    dbconn_row_fn on_row;
    dbconn_done_fn done;
    void *arg;

    /* what the last call left */
    uint64_t affected_rows;
    uint64_t insert_id;
    unsigned last_errno;
    int timed_out;                  /* the last call failed on its deadline */
    char last_error[256];
    size_t largest_value;           /* set by the caller: see dbconn_release_buffers */
};

/* Sets c up (closed). sql[id] are the statement texts. */
void dbconn_init(struct dbconn *c, int partition, const char *name, const char *const *sql,
                 int nsql, unsigned read_timeout_ms, unsigned write_timeout_ms,
                 dbconn_watch_fn watch, void *owner);

/* Takes ownership of m, a connected handle with MYSQL_OPT_NONBLOCK set. */
void dbconn_attach(struct dbconn *c, MYSQL *m);

/* Closes the connection and its statements (a call in flight is dropped
 * without its done callback: only for shutdown and after a fault). */
void dbconn_close(struct dbconn *c);

/* 1 when connected. */
int dbconn_ready(const struct dbconn *c);

/* Runs prepared statement id with params bound (ref until done); results
 * are bound to each row before on_row (NULL on_row: no rows expected).
 * The connection must be ready and idle. done is always called, perhaps
 * before this returns. */
void dbconn_exec(struct dbconn *c, int id, MYSQL_BIND *params, MYSQL_BIND *results,
                 dbconn_row_fn on_row, dbconn_done_fn done, void *arg);

/* Runs a constant SQL text without results (START TRANSACTION, COMMIT,
 * ROLLBACK). As dbconn_exec otherwise. */
void dbconn_query(struct dbconn *c, const char *sql, dbconn_done_fn done, void *arg);

/* The loop saw events (EPOLLIN/EPOLLOUT/EPOLLERR/EPOLLHUP bits) on c's
 * socket. Events on an idle connection mean the server closed it (or sent
 * what nobody asked for): it is closed. */
void dbconn_on_event(struct dbconn *c, unsigned events);

/* The loop's clock passed c->deadline_us: the call fails (LKV_EUNAVAIL)
 * and the connection is discarded. */
void dbconn_on_timeout(struct dbconn *c);

/* 1 when the last failure was InnoDB choosing the call's transaction as a
 * deadlock victim (rolled back whole: run it again). */
int dbconn_deadlocked(const struct dbconn *c);

/* 1 when the last failure was a duplicate key (an INSERT that raced). */
int dbconn_duplicate(const struct dbconn *c);

/* 1 when the last failure broke the connection (it is closed now). */
int dbconn_faulted(const struct dbconn *c);

/* Values above this many bytes leave the client library holding buffers of
 * their size for the life of the connection: such a connection is closed
 * once idle, so memory follows the load. */
#define DBCONN_LARGE_TRANSFER (1u << 20)

/* Closes c if it carried a value larger than DBCONN_LARGE_TRANSFER since
 * it last did this check (c->largest_value, set by the caller). */
void dbconn_release_buffers(struct dbconn *c);

#endif
