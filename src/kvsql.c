/*
 * kvsql.c -- statement texts of the request path. See kvsql.h and, for the
 * columns, store.h.
 */
#include "kvsql.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "store.h"

/* A master write of a row the transaction has locked (or of any row, for
 * blind sets). deleted is 0 for a set, 1 for a delete, and 2 for a refresh
 * (?ttl=N&refresh=1: a new expiry, value and content type kept), which is
 * only ever sent for a row found live under its lock. MariaDB assigns left
 * to right, each expression seeing the columns already assigned: version
 * still sees the old expires_at. The new version is max(old + 1, now), and
 * above an expired row's index (max(version + 1, expires_at)) so that a
 * key's index only ever increases; a tombstone keeps its content type and
 * has no expiry. Every statement that sets v sets digest (store.h: NULL
 * means SHA2(v)) and the chunk columns (chunks.h): VALUES() of a column an
 * INSERT does not list is its default (len NULL, chunks 0), so inline
 * writes and chunked switches share this text. */
#define WRITE_UPDATE \
    " ON DUPLICATE KEY UPDATE v = IF(VALUES(deleted) = 2, v, VALUES(v))," \
    " digest = IF(VALUES(deleted) = 2, digest, VALUES(digest))," \
    " len = IF(VALUES(deleted) = 2, len, VALUES(len))," \
    " chunks = IF(VALUES(deleted) = 2, chunks, VALUES(chunks))," \
    " chunk_version = IF(VALUES(deleted) = 2, chunk_version, VALUES(chunk_version))," \
    " ctype = IF(VALUES(deleted) = 0, VALUES(ctype), ctype)," \
    " deleted = IF(VALUES(deleted) = 1, 1, 0), seq = NULL," \
    " version = GREATEST(version + 1, VALUES(version)," \
    "                    IF(expires_at <= VALUES(version), expires_at + 1, 0))," \
    " expires_at = VALUES(expires_at)"

/* "Live" for a row: not a tombstone and not expired at the bound instant. */
#define LIVE_AT "deleted = 0 AND (expires_at IS NULL OR expires_at > ?)"

#define INSERT_HEAD_NO_DIGEST \
    "INSERT INTO `@T` (k, v, ctype, version, deleted, expires_at, seq)"
#define INSERT_HEAD \
    "INSERT INTO `@T` (k, v, ctype, version, deleted, expires_at, seq, digest) VALUES "
/* Each row's new version, computed by the server, comes back with it: a
 * batch of writes is one statement (MariaDB 10.5+: with ON DUPLICATE KEY
 * UPDATE, RETURNING gives the row as updated). */
#define RETURNING " RETURNING k, version"

/* A read's digest: the stored one, or the value's for inline rows written
 * before schema 3 (and copies of them). */
#define DIGEST_COL "COALESCE(digest, IF(chunks = 0, UNHEX(SHA2(v, 256)), NULL))"
/* What a read returns after the digest: whether and how the value is
 * chunked, and its length (NULL len: the inline v's). */
#define CHUNK_COLS ", chunks, chunk_version, COALESCE(len, LENGTH(v))"

#define STR_(x) #x
#define STR(x) STR_(x)
#define CHANGES_MAX STR(KVSQL_CHANGES_MAX)

static const char *const templates[] = {
    [KV_GET] = "SELECT v, ctype, version, deleted, expires_at, " DIGEST_COL CHUNK_COLS
               " FROM `@T` WHERE k = ?",
    [KV_CHUNK_PUT] = STORE_CHUNK_INSERT,
    /* A chunk already there is the same bytes: (k, set) names one content. */
    [KV_CHUNK_TEE] = STORE_CHUNK_COPY,
    [KV_CHUNK_GET] = "SELECT SUBSTRING(data, ?, ?) FROM `@T_chunks`"
                     " WHERE kh = UNHEX(SHA2(?, 256)) AND version = ? AND n = ?",
    [KV_SWITCH_INSERT] = STORE_SWITCH_HEAD " SELECT ?, '', ?, ?, 0, ?, NULL, ?, ?, ?, ?"
                         STORE_SWITCH_IF_WHOLE RETURNING,
    [KV_SWITCH_UPSERT] = STORE_SWITCH_HEAD " SELECT ?, '', ?, ?, 0, ?, NULL, ?, ?, ?, ?"
                         STORE_SWITCH_IF_WHOLE WRITE_UPDATE RETURNING,
    /* RETURNING: a row when the set is whole here (applied, or the row
     * already at this version or above); none when it is not (the copy
     * changed nothing: the replica does not hold the value). */
    [KV_APPLY_CHUNKED] = STORE_APPLY_CHUNKED " RETURNING k",
    /* Not a row that has expired: that key is absent already (404). */
    /* The live row, turned into a tombstone; its new version comes back
     * by RETURNING. An UPDATE setting LAST_INSERT_ID(version) would do,
     * but MariaDB 10.11 sends 0 as the OK packet's insert id once the
     * table has an UPDATE trigger, as schema 3's chunk bookkeeping gives
     * it. Why (10.11.18 source): LAST_INSERT_ID(expr) keeps its value and
     * sets thd->arg_of_last_insert_id_function (item_func.cc:4539), which
     * the OK packet's id depends on (sql_insert.cc:1374, sql_update.cc:1380);
     * a trigger's body runs as a sub-statement, and sp_head::execute calls
     * THD::cleanup_after_query after each of its statements (sp_head.cc:1557),
     * which clears the flag (sql_class.cc:2388); Sub_statement_state saves
     * and restores the value but not the flag (sql_class.h:1881). SELECT
     * LAST_INSERT_ID() still sees the value: a second round trip. No row:
     * absent. */
    [KV_DELETE] = INSERT_HEAD_NO_DIGEST " SELECT k, '', ctype, GREATEST(version + 1, ?), 1, NULL,"
                  " NULL FROM `@T` WHERE k = ? AND " LIVE_AT
                  " ON DUPLICATE KEY UPDATE v = '', digest = NULL, len = NULL, chunks = 0,"
                  " chunk_version = 0, deleted = 1, seq = NULL, expires_at = NULL,"
                  " version = VALUES(version)" RETURNING,
    [KV_APPLY] = INSERT_HEAD "(?, ?, ?, ?, ?, ?, 0, ?)" STORE_APPLY_UPDATE,
    [KV_LIST_FROM] = "SELECT k FROM `@T` WHERE k >= ? AND " LIVE_AT " ORDER BY k LIMIT ?",
    [KV_LIST_RANGE] = "SELECT k FROM `@T` WHERE k >= ? AND k < ? AND " LIVE_AT
                      " ORDER BY k LIMIT ?",
    /* Lists with values (?values=1) learn the lengths first, to fill a page
     * up to its byte budget without reading more values than it holds. */
    [KV_LIST_LEN_FROM] = "SELECT k, LENGTH(v) FROM `@T` WHERE k >= ? AND " LIVE_AT
                         " ORDER BY k LIMIT ?",
    /* Each half is an index range (by_tombstone, by_expiry); the second
     * leaves out what the first returns. Only rows written here (not
     * copies, seq 0): a key's changes are its master's. */
    [KV_CHANGES] = "(SELECT k, version, deleted, expires_at FROM `@T`"
                   " WHERE deleted IN (0, 1) AND version > ? AND (seq IS NULL OR seq > 0)"
                   " LIMIT " CHANGES_MAX ")"
                   " UNION ALL (SELECT k, version, deleted, expires_at FROM `@T`"
                   " WHERE version <= ? AND expires_at > ? AND expires_at <= ? AND deleted = 0"
                   " AND (seq IS NULL OR seq > 0) LIMIT " CHANGES_MAX ")",
    [KV_PREFIX_FROM] = "(SELECT k, version, deleted, expires_at FROM `@T`"
                       " WHERE k >= ? AND deleted IN (0, 1) AND version > ?)"
                       " UNION ALL (SELECT k, version, deleted, expires_at FROM `@T`"
                       " WHERE k >= ? AND version <= ? AND expires_at > ? AND expires_at <= ?"
                       " AND deleted = 0)",
    [KV_PREFIX_RANGE] = "(SELECT k, version, deleted, expires_at FROM `@T`"
                        " WHERE k >= ? AND k < ? AND deleted IN (0, 1) AND version > ?)"
                        " UNION ALL (SELECT k, version, deleted, expires_at FROM `@T`"
                        " WHERE k >= ? AND k < ? AND version <= ? AND expires_at > ?"
                        " AND expires_at <= ? AND deleted = 0)",
    [KV_LIST_LEN_RANGE] = "SELECT k, LENGTH(v) FROM `@T` WHERE k >= ? AND k < ? AND " LIVE_AT
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
        return repeated(table, INSERT_HEAD, "(?, ?, ?, ?, ?, ?, NULL, ?)", id - KV_INSERT_MANY + 1,
                        RETURNING);
    if (id >= KV_WRITE_MANY)
        return repeated(table, INSERT_HEAD, "(?, ?, ?, ?, ?, ?, NULL, ?)", id - KV_WRITE_MANY + 1,
                        WRITE_UPDATE RETURNING);
    if (id >= KV_LOCK_MANY) {
        /* One equality lookup per key, each key once: InnoDB then takes
         * exactly the record or gap lock of each key. */
        return store_sql_join(table, "",
                              "(SELECT k, version, deleted, expires_at, digest FROM `@T`"
                              " WHERE k = ? FOR UPDATE)",
                              " UNION ALL ", id - KV_LOCK_MANY + 1, "");
    }
    if (id >= KV_APPLY_MANY)
        return repeated(table, INSERT_HEAD, "(?, ?, ?, ?, ?, ?, 0, ?)", 2 << (id - KV_APPLY_MANY),
                        STORE_APPLY_UPDATE);
    if (id >= KV_GET_MANY)
        return repeated(table, "SELECT k, v, ctype, version, deleted, expires_at, "
                        DIGEST_COL CHUNK_COLS " FROM `@T` WHERE k IN (", "?",
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
