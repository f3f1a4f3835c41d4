/*
 * dbconn.c -- non-blocking statements on one connection. See dbconn.h.
 *
 * A call is a small state machine; c->op names the library call whose
 * _cont comes next:
 *
 *   exec:  [OP_PREPARE, first use on this connection] -> OP_EXECUTE
 *          -> [OP_STORE, when the statement returns rows] -> rows -> done
 *   query: OP_QUERY -> done
 *
 * Every step either finishes at once or returns the events it waits for;
 * step() turns that into a watch on the loop and a deadline.
 */
#include "dbconn.h"

#include <errmsg.h>
#include <mysqld_error.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>

#include "log.h"
#include "clock.h"

enum { OP_NONE, OP_PREPARE, OP_EXECUTE, OP_STORE, OP_QUERY };

void dbconn_init(struct dbconn *c, int partition, const char *name, const char *const *sql,
                 int nsql, unsigned read_timeout_ms, unsigned write_timeout_ms,
                 dbconn_watch_fn watch, void *owner)
{
    memset(c, 0, sizeof(*c));
    c->partition = partition;
    c->name = name;
    c->sql = sql;
    c->nsql = nsql < DBCONN_MAX_STMTS ? nsql : DBCONN_MAX_STMTS;
    c->read_timeout_ms = read_timeout_ms;
    c->write_timeout_ms = write_timeout_ms;
    c->watch = watch;
    c->owner = owner;
    c->fd = -1;
    c->stmt_id = -1;
}

static void set_watch(struct dbconn *c, int fd, unsigned events)
{
    if (fd == c->fd && events == c->watching)
        return;
    c->watch(c, fd, events, c->owner);
    c->fd = fd;
    c->watching = events;
}

void dbconn_attach(struct dbconn *c, MYSQL *m)
{
    dbconn_close(c);
    c->mysql = m;
    /* Idle, the connection is watched for reading: the server has nothing
     * to say to an idle client, so readability means it closed the
     * connection (restart, kill, wait_timeout), noticed at once. */
    set_watch(c, (int)mysql_get_socket(m), EPOLLIN);
}

int dbconn_ready(const struct dbconn *c)
{
    return c->mysql != NULL;
}

void dbconn_close(struct dbconn *c)
{
    set_watch(c, -1, 0);
    if (c->mysql) {
        /* COM_QUIT is a few bytes into an idle or broken socket: mysql_close
         * does not wait on it. Statements after it only free memory. */
        mysql_close(c->mysql);
        c->mysql = NULL;
    }
    for (int i = 0; i < DBCONN_MAX_STMTS; i++) {
        if (c->stmt[i]) {
            mysql_stmt_close(c->stmt[i]);
            c->stmt[i] = NULL;
        }
    }
    c->busy = 0;
    c->op = OP_NONE;
    c->deadline_us = 0;
    c->largest_value = 0;
}

/* Errors after which the connection cannot be trusted any more. */
static int breaks_connection(unsigned err)
{
    return (err >= 2000 && err < 3000) || err == ER_CON_COUNT_ERROR ||
           err == ER_SERVER_SHUTDOWN || err == ER_QUERY_INTERRUPTED || err == 0;
}

int dbconn_deadlocked(const struct dbconn *c)
{
    return c->last_errno == ER_LOCK_DEADLOCK;
}

int dbconn_duplicate(const struct dbconn *c)
{
    return c->last_errno == ER_DUP_ENTRY;
}

int dbconn_faulted(const struct dbconn *c)
{
    return breaks_connection(c->last_errno);
}

static void finish(struct dbconn *c, enum lkv_status st)
{
    c->busy = 0;
    c->op = OP_NONE;
    c->deadline_us = 0;
    if (c->mysql)
        set_watch(c, (int)mysql_get_socket(c->mysql), EPOLLIN);
    c->done(c, st, c->arg);
}

/* Ends the call with the failure of the statement (or of the handle when
 * s is NULL), classified as pconn_fail() does. */
static void fail_with(struct dbconn *c, unsigned err, const char *msg)
{
    c->last_errno = err;
    if (msg != c->last_error)
        snprintf(c->last_error, sizeof(c->last_error), "%s", msg);
    msg = c->last_error;
    enum lkv_status st = LKV_EUNAVAIL;
    switch (err) {
    case ER_LOCK_DEADLOCK: /* retried by the caller */
    case ER_DUP_ENTRY:     /* an insert raced another writer: see lane.c */
        log_debug("partition %d: %s", c->partition, msg);
        break;
    case ER_LOCK_WAIT_TIMEOUT:
        log_info("partition %d: %s", c->partition, msg);
        break;
    case ER_BAD_DB_ERROR:
    case ER_NO_SUCH_TABLE:
        log_error("partition %d (%s): %s (run lazykv-admin init)", c->partition, c->name, msg);
        break;
    default:
        if (breaks_connection(err)) {
            log_warn("partition %d (%s): %s", c->partition, c->name, msg);
            dbconn_close(c);
        } else {
            log_error("partition %d (%s): unexpected error %u: %s", c->partition, c->name, err,
                      msg);
            st = LKV_EINTERNAL;
        }
    }
    finish(c, st);
}

static void fail(struct dbconn *c, MYSQL_STMT *s)
{
    if (s)
        fail_with(c, mysql_stmt_errno(s), mysql_stmt_error(s));
    else if (c->mysql)
        fail_with(c, mysql_errno(c->mysql), mysql_error(c->mysql));
    else
        fail_with(c, CR_SERVER_LOST, "connection closed");
}

static MYSQL_STMT *current_stmt(const struct dbconn *c)
{
    return c->stmt_id >= 0 ? c->stmt[c->stmt_id] : NULL;
}

static void step(struct dbconn *c, int status, int ret);

/* Waits for what the library asked (status bits) until the deadline. */
static void wait_for(struct dbconn *c, int status)
{
    unsigned events = 0;
    if (status & MYSQL_WAIT_READ)
        events |= EPOLLIN;
    if (status & MYSQL_WAIT_WRITE)
        events |= EPOLLOUT;
    if (status & MYSQL_WAIT_EXCEPT)
        events |= EPOLLPRI;
    unsigned ms = (events & EPOLLOUT) ? c->write_timeout_ms : c->read_timeout_ms;
    c->deadline_us = clock_mono_us() + (uint64_t)ms * 1000u;
    set_watch(c, (int)mysql_get_socket(c->mysql), events);
}

static void start_store(struct dbconn *c)
{
    int ret = 0;
    c->op = OP_STORE;
    int status = mysql_stmt_store_result_start(&ret, current_stmt(c));
    step(c, status, ret); /* status first: it sets ret */
}

/* The rows of a stored result, read locally. */
static void read_rows(struct dbconn *c)
{
    MYSQL_STMT *s = current_stmt(c);
    enum lkv_status st = LKV_OK;
    if (c->results && mysql_stmt_bind_result(s, c->results) != 0) {
        fail(c, s);
        return;
    }
    int rc;
    while (st == LKV_OK && ((rc = mysql_stmt_fetch(s)) == 0 || rc == MYSQL_DATA_TRUNCATED))
        st = c->on_row ? c->on_row(s, c->arg) : LKV_OK;
    mysql_stmt_free_result(s); /* local once stored */
    if (st == LKV_OK && rc == 1) {
        fail(c, s);
        return;
    }
    if (st != LKV_OK) {
        /* The caller's own failure (out of memory): the connection is fine. */
        c->last_errno = ER_OUTOFMEMORY;
        snprintf(c->last_error, sizeof(c->last_error), "a row could not be taken");
    }
    finish(c, st);
}

static void start_execute(struct dbconn *c)
{
    MYSQL_STMT *s = current_stmt(c);
    if (c->params && mysql_stmt_bind_param(s, c->params) != 0) {
        fail(c, s);
        return;
    }
    int ret = 0;
    c->op = OP_EXECUTE;
    int status = mysql_stmt_execute_start(&ret, s);
    step(c, status, ret); /* status first: it sets ret */
}

/* A library call returned: status != 0 means it waits; else it finished
 * with ret (0 = success). */
static void step(struct dbconn *c, int status, int ret)
{
    if (status != 0) {
        wait_for(c, status);
        return;
    }
    MYSQL_STMT *s = current_stmt(c);
    switch (c->op) {
    case OP_PREPARE:
        if (ret != 0) {
            /* Not cached: the next call prepares it afresh. */
            c->stmt[c->stmt_id] = NULL;
            unsigned err = mysql_stmt_errno(s);
            snprintf(c->last_error, sizeof(c->last_error), "%s", mysql_stmt_error(s));
            mysql_stmt_close(s);
            c->stmt_id = -1;
            fail_with(c, err, c->last_error);
            return;
        }
        start_execute(c);
        return;
    case OP_EXECUTE:
        if (ret != 0) {
            fail(c, s);
            return;
        }
        c->affected_rows = mysql_stmt_affected_rows(s);
        c->insert_id = mysql_stmt_insert_id(s);
        if (mysql_stmt_field_count(s) > 0)
            start_store(c);
        else
            finish(c, LKV_OK);
        return;
    case OP_STORE:
        if (ret != 0)
            fail(c, s);
        else
            read_rows(c);
        return;
    case OP_QUERY:
        if (ret != 0)
            fail(c, NULL);
        else
            finish(c, LKV_OK);
        return;
    default:
        finish(c, LKV_EINTERNAL);
    }
}

static void begin_call(struct dbconn *c, dbconn_done_fn done, void *arg)
{
    c->busy = 1;
    c->done = done;
    c->arg = arg;
    c->affected_rows = 0;
    c->insert_id = 0;
    c->last_errno = 0;
    c->timed_out = 0;
    c->last_error[0] = '\0';
}

void dbconn_exec(struct dbconn *c, int id, MYSQL_BIND *params, MYSQL_BIND *results,
                 dbconn_row_fn on_row, dbconn_done_fn done, void *arg)
{
    begin_call(c, done, arg);
    c->stmt_id = id;
    c->params = params;
    c->results = results;
    c->on_row = on_row;
    if (c->mysql == NULL || id < 0 || id >= c->nsql) {
        c->stmt_id = -1;
        c->last_errno = c->mysql ? ER_UNKNOWN_ERROR : CR_SERVER_LOST;
        finish(c, c->mysql ? LKV_EINTERNAL : LKV_EUNAVAIL);
        return;
    }
    if (c->stmt[id] != NULL) {
        start_execute(c);
        return;
    }
    MYSQL_STMT *s = mysql_stmt_init(c->mysql);
    if (s == NULL) {
        c->stmt_id = -1;
        c->last_errno = ER_OUTOFMEMORY;
        finish(c, LKV_ENOMEM);
        return;
    }
    c->stmt[id] = s;
    int ret = 0;
    c->op = OP_PREPARE;
    int status = mysql_stmt_prepare_start(&ret, s, c->sql[id], strlen(c->sql[id]));
    step(c, status, ret); /* status first: it sets ret */
}

void dbconn_query(struct dbconn *c, const char *sql, dbconn_done_fn done, void *arg)
{
    begin_call(c, done, arg);
    c->stmt_id = -1;
    c->query = sql;
    if (c->mysql == NULL) {
        c->last_errno = CR_SERVER_LOST;
        finish(c, LKV_EUNAVAIL);
        return;
    }
    int ret = 0;
    c->op = OP_QUERY;
    int status = mysql_real_query_start(&ret, c->mysql, sql, strlen(sql));
    step(c, status, ret); /* status first: it sets ret */
}

/* The _cont of the call in flight, with ready (MYSQL_WAIT_* bits). */
static int resume(struct dbconn *c, int ready, int *ret)
{
    switch (c->op) {
    case OP_PREPARE: return mysql_stmt_prepare_cont(ret, current_stmt(c), ready);
    case OP_EXECUTE: return mysql_stmt_execute_cont(ret, current_stmt(c), ready);
    case OP_STORE: return mysql_stmt_store_result_cont(ret, current_stmt(c), ready);
    case OP_QUERY: return mysql_real_query_cont(ret, c->mysql, ready);
    default: *ret = 1; return 0;
    }
}

void dbconn_on_event(struct dbconn *c, unsigned events)
{
    if (!c->busy) {
        log_info("partition %d (%s): connection closed by the server", c->partition, c->name);
        dbconn_close(c);
        return;
    }
    int ready = 0;
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        ready |= MYSQL_WAIT_READ;
    if (events & (EPOLLOUT | EPOLLHUP | EPOLLERR))
        ready |= MYSQL_WAIT_WRITE;
    if (events & EPOLLPRI)
        ready |= MYSQL_WAIT_EXCEPT;
    int ret = 0;
    int status = resume(c, ready, &ret);
    step(c, status, ret);
}

void dbconn_on_timeout(struct dbconn *c)
{
    if (!c->busy)
        return;
    log_warn("partition %d (%s): no answer within the timeout", c->partition, c->name);
    c->timed_out = 1;
    /* The library fails the call (CR_SERVER_LOST) and closes its socket:
     * stop watching it first. */
    set_watch(c, -1, 0);
    int ret = 0;
    int status = resume(c, MYSQL_WAIT_TIMEOUT, &ret);
    if (status != 0 || ret == 0) {
        /* Should not happen; the connection cannot be trusted either way. */
        dbconn_close(c);
        c->last_errno = CR_SERVER_LOST;
        snprintf(c->last_error, sizeof(c->last_error), "timed out");
        finish(c, LKV_EUNAVAIL);
        return;
    }
    step(c, 0, ret);
}

void dbconn_release_buffers(struct dbconn *c)
{
    if (c->largest_value > DBCONN_LARGE_TRANSFER && !c->busy)
        dbconn_close(c);
    c->largest_value = 0;
}
