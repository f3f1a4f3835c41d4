/*
 * kvsql.c -- statement texts of the request path. See kvsql.h and, for the
 * columns, store.h.
 */
#include "kvsql.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "store.h"

/* A master write, set or delete, of a row the transaction has locked: the
 * new version is max(old + 1, now); a tombstone keeps its content type. */
#define WRITE_UPDATE \
    " ON DUPLICATE KEY UPDATE v = VALUES(v)," \
    " ctype = IF(VALUES(deleted), ctype, VALUES(ctype)), deleted = VALUES(deleted)," \
    " seq = NULL, version = GREATEST(version + 1, VALUES(version))"

#define INSERT_HEAD "INSERT INTO `@T` (k, v, ctype, version, deleted, seq) VALUES "
/* Each row's new version, computed by the server, comes back with it: a
 * batch of writes is one statement (MariaDB 10.5+: with ON DUPLICATE KEY
 * UPDATE, RETURNING gives the row as updated). */
#define RETURNING " RETURNING k, version"

static const char *const templates[] = {
    [KV_GET] = "SELECT v, ctype, version, deleted FROM `@T` WHERE k = ?",
    [KV_DELETE] = "UPDATE `@T` SET v = '', deleted = 1, seq = NULL,"
                  " version = LAST_INSERT_ID(GREATEST(version + 1, ?))"
                  " WHERE k = ? AND deleted = 0",
    [KV_APPLY] = INSERT_HEAD "(?, ?, ?, ?, ?, 0)" STORE_APPLY_UPDATE,
    [KV_LIST_FROM] = "SELECT k FROM `@T` WHERE k >= ? AND deleted = 0 ORDER BY k LIMIT ?",
    [KV_LIST_RANGE] = "SELECT k FROM `@T` WHERE k >= ? AND k < ? AND deleted = 0"
                      " ORDER BY k LIMIT ?",
};

static char *repeated(const char *table, const char *head, const char *group, int count,
                      const char *tail)
{
    return store_sql_join(table, head, group, ", ", count, tail);
}

static char *build(const char *table, int id)
{
    if (id >= KV_INSERT_MANY)
        return repeated(table, INSERT_HEAD, "(?, ?, ?, ?, ?, NULL)", id - KV_INSERT_MANY + 1,
                        RETURNING);
    if (id >= KV_WRITE_MANY)
        return repeated(table, INSERT_HEAD, "(?, ?, ?, ?, ?, NULL)", id - KV_WRITE_MANY + 1,
                        WRITE_UPDATE RETURNING);
    if (id >= KV_LOCK_MANY) {
        /* One equality lookup per key, each key once: InnoDB then takes
         * exactly the record or gap lock of each key. */
        return store_sql_join(table, "",
                              "(SELECT k, version, deleted FROM `@T` WHERE k = ? FOR UPDATE)",
                              " UNION ALL ", id - KV_LOCK_MANY + 1, "");
    }
    if (id >= KV_APPLY_MANY)
        return repeated(table, INSERT_HEAD, "(?, ?, ?, ?, ?, 0)", 2 << (id - KV_APPLY_MANY),
                        STORE_APPLY_UPDATE);
    if (id >= KV_GET_MANY)
        return repeated(table, "SELECT k, v, ctype, version, deleted FROM `@T` WHERE k IN (", "?",
                        2 << (id - KV_GET_MANY), ")");
    return store_sql_expand(templates[id], table);
}

int kvsql_build(struct kvsql *sql, const char *table)
{
    memset(sql, 0, sizeof(*sql));
    for (int i = 0; i < KVSQL_COUNT; i++) {
        sql->text[i] = build(table, i);
        if (sql->text[i] == NULL) {
            kvsql_free(sql);
            return -1;
        }
    }
    return 0;
}

void kvsql_free(struct kvsql *sql)
{
    for (int i = 0; i < KVSQL_COUNT; i++) {
        free(sql->text[i]);
        sql->text[i] = NULL;
    }
}

int kvsql_padded(int base, int n, int *width)
{
    int which = 0;
    while ((2 << which) < n)
        which++;
    *width = 2 << which;
    return base + which;
}
