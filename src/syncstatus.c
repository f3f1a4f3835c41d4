/*
 * syncstatus.c -- the last sync pass, recorded in _meta. See syncstatus.h.
 */
#include "syncstatus.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "store.h"

static const char *const names[] = {"sync_pass_start", "sync_pass_end", "sync_pass_exit",
                                    "sync_pass_rows", "sync_pass_lag_ms"};
#define NNAMES 5

static MYSQL_STMT *prepare(MYSQL *m, const char *tmpl, const char *table)
{
    char *sql = store_sql_expand(tmpl, table);
    MYSQL_STMT *s = sql ? mysql_stmt_init(m) : NULL;
    if (s && mysql_stmt_prepare(s, sql, strlen(sql)) != 0) {
        mysql_stmt_close(s);
        s = NULL;
    }
    free(sql);
    return s;
}

/* Runs s (no parameters) and reads a single BIGINT column of each row into
 * out[i] with the row's name matched against names (nameless: out[0]). */
static int read_values(MYSQL_STMT *s, int named, uint64_t out[NNAMES], int *found)
{
    char name[64] = "";
    unsigned long nlen = 0;
    uint64_t value = 0;
    MYSQL_BIND r[2];
    memset(r, 0, sizeof(r));
    int vcol = named ? 1 : 0;
    if (named) {
        r[0].buffer_type = MYSQL_TYPE_STRING;
        r[0].buffer = name;
        r[0].buffer_length = sizeof(name);
        r[0].length = &nlen;
    }
    r[vcol].buffer_type = MYSQL_TYPE_LONGLONG;
    r[vcol].buffer = &value;
    r[vcol].is_unsigned = 1;
    if (mysql_stmt_execute(s) != 0 || mysql_stmt_bind_result(s, r) != 0)
        return -1;
    int rc;
    while ((rc = mysql_stmt_fetch(s)) == 0 || rc == MYSQL_DATA_TRUNCATED) {
        for (int i = 0; i < NNAMES; i++)
            if (!named ? i == 0
                       : nlen == strlen(names[i]) && memcmp(name, names[i], nlen) == 0) {
                out[i] = value;
                *found |= 1 << i;
            }
    }
    return rc == MYSQL_NO_DATA ? 0 : -1;
}

int syncstatus_read(MYSQL *m, const char *table, struct sync_status *st, uint64_t *pending)
{
    uint64_t v[NNAMES] = {0}, count[NNAMES] = {0};
    int found = 0, counted = 0, rc = -1;
    MYSQL_STMT *meta = prepare(m, "SELECT name, value FROM `@T_meta` WHERE name LIKE 'sync\\_pass\\_%'",
                               table);
    /* by_seq holds NULLs first: this reads the backlog's index entries only */
    MYSQL_STMT *backlog = prepare(m, "SELECT COUNT(*) FROM (SELECT 1 FROM `@T` WHERE seq IS NULL"
                                     " LIMIT 1000000) AS pending", table);
    if (meta && backlog && read_values(meta, 1, v, &found) == 0 &&
        read_values(backlog, 0, count, &counted) == 0) {
        memset(st, 0, sizeof(*st));
        st->known = (found & 3) == 3;
        st->start_us = v[0];
        st->end_us = v[1];
        st->exit_code = (int)v[2];
        st->rows = v[3];
        st->lag_ms = v[4];
        *pending = count[0];
        rc = 0;
    }
    if (meta)
        mysql_stmt_close(meta);
    if (backlog)
        mysql_stmt_close(backlog);
    return rc;
}

int syncstatus_write(MYSQL *m, const char *table, const struct sync_status *st)
{
    MYSQL_STMT *s = prepare(m, "INSERT INTO `@T_meta` (name, value, text) VALUES"
                               " ('sync_pass_start', ?, ''), ('sync_pass_end', ?, ''),"
                               " ('sync_pass_exit', ?, ''), ('sync_pass_rows', ?, ''),"
                               " ('sync_pass_lag_ms', ?, '')"
                               " ON DUPLICATE KEY UPDATE value = VALUES(value)", table);
    if (s == NULL)
        return -1;
    uint64_t v[NNAMES] = {st->start_us, st->end_us, (uint64_t)st->exit_code, st->rows,
                          st->lag_ms};
    MYSQL_BIND p[NNAMES];
    memset(p, 0, sizeof(p));
    for (int i = 0; i < NNAMES; i++) {
        p[i].buffer_type = MYSQL_TYPE_LONGLONG;
        p[i].buffer = &v[i];
        p[i].is_unsigned = 1;
    }
    int rc = mysql_stmt_bind_param(s, p) == 0 && mysql_stmt_execute(s) == 0 ? 0 : -1;
    mysql_stmt_close(s);
    return rc;
}
