/*
 * store.c -- the SQL of the controller. See store.h.
 */
#include "store.h"

#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "log.h"

/* "@T" stands for the table name. No request data is ever placed here. */
static const char *const templates[] = {
    [ST_GET] = "SELECT v, ctype, version, deleted FROM `@T` WHERE k = ?",
    [ST_HEAD] = "SELECT ctype, version, deleted, LENGTH(v) FROM `@T` WHERE k = ?",
    [ST_LOCK] = "SELECT version, deleted FROM `@T` WHERE k = ? FOR UPDATE",
    /* The new version is max(old + 1, now): LAST_INSERT_ID(expr) hands it
     * back through mysql_stmt_insert_id() without a second round trip. A
     * fresh insert reports 0, and then the version is the bound `now`. */
    [ST_SET] = "INSERT INTO `@T` (k, v, ctype, version, deleted, seq) VALUES (?, ?, ?, ?, 0, NULL)"
               " ON DUPLICATE KEY UPDATE v = VALUES(v), ctype = VALUES(ctype), deleted = 0,"
               " seq = NULL, version = LAST_INSERT_ID(GREATEST(version + 1, VALUES(version)))",
    [ST_DELETE] = "UPDATE `@T` SET v = '', deleted = 1, seq = NULL,"
                  " version = LAST_INSERT_ID(GREATEST(version + 1, ?))"
                  " WHERE k = ? AND deleted = 0",
    /* MariaDB assigns left to right, each expression seeing the columns
     * already assigned: version must come last so the others compare
     * against the old one. */
    [ST_APPLY] = "INSERT INTO `@T` (k, v, ctype, version, deleted, seq) VALUES (?, ?, ?, ?, ?, 0)"
                 " ON DUPLICATE KEY UPDATE"
                 " v = IF(VALUES(version) > version, VALUES(v), v),"
                 " ctype = IF(VALUES(version) > version, VALUES(ctype), ctype),"
                 " deleted = IF(VALUES(version) > version, VALUES(deleted), deleted),"
                 " seq = IF(VALUES(version) > version, 0, seq),"
                 " version = GREATEST(version, VALUES(version))",
    [ST_LIST_FROM] = "SELECT k FROM `@T` WHERE k >= ? AND deleted = 0 ORDER BY k LIMIT ?",
    [ST_LIST_RANGE] = "SELECT k FROM `@T` WHERE k >= ? AND k < ? AND deleted = 0"
                      " ORDER BY k LIMIT ?",
};


char *store_sql_expand(const char *tmpl, const char *table)
{
    struct buf b = BUF_INIT;
    for (const char *p = tmpl; *p; p++) {
        int rc = (p[0] == '@' && p[1] == 'T') ? (p++, buf_puts(&b, table))
                                              : buf_append(&b, p, 1);
        if (rc != 0) {
            buf_free(&b);
            return NULL;
        }
    }
    return buf_steal(&b, NULL);
}

int store_sql_build(struct store_sql *sql, const char *table)
{
    memset(sql, 0, sizeof(*sql));
    int n = ST_COUNT;
    for (int i = 0; i < n; i++) {
        sql->text[i] = store_sql_expand(templates[i], table);
        if (sql->text[i] == NULL) {
            store_sql_free(sql);
            return -1;
        }
    }
    sql->count = n;
    return 0;
}

void store_sql_free(struct store_sql *sql)
{
    for (int i = 0; i < PCONN_MAX_STMTS; i++) {
        free(sql->text[i]);
        sql->text[i] = NULL;
    }
    sql->count = 0;
}

/* Binding helpers: each fills one MYSQL_BIND. */
static void bind_blob(MYSQL_BIND *b, const void *data, size_t len, unsigned long *lenp)
{
    memset(b, 0, sizeof(*b));
    *lenp = (unsigned long)len;
    b->buffer_type = MYSQL_TYPE_BLOB;
    b->buffer = (void *)data;
    b->buffer_length = (unsigned long)len;
    b->length = lenp;
}

static void bind_u64(MYSQL_BIND *b, uint64_t *v)
{
    memset(b, 0, sizeof(*b));
    b->buffer_type = MYSQL_TYPE_LONGLONG;
    b->buffer = v;
    b->is_unsigned = 1;
}

static void bind_int(MYSQL_BIND *b, int *v)
{
    memset(b, 0, sizeof(*b));
    b->buffer_type = MYSQL_TYPE_LONG;
    b->buffer = v;
}

/* Discards what is left of a result, unless a failure closed the statement. */
static void finish(struct pconn *c, int id)
{
    if (c->stmt[id])
        mysql_stmt_free_result(c->stmt[id]);
}

/* Executes stmt with params bound; maps failures through pconn_fail. */
static enum lkv_status run(struct pconn *c, MYSQL_STMT *s, MYSQL_BIND *params)
{
    if ((params && mysql_stmt_bind_param(s, params) != 0) || mysql_stmt_execute(s) != 0)
        return pconn_fail(c, s);
    return LKV_OK;
}

enum lkv_status store_get(struct pconn *c, const char *key, size_t key_len, int want_value,
                          struct record *out)
{
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, want_value ? ST_GET : ST_HEAD, &st);
    if (s == NULL)
        return st;
    MYSQL_BIND p[1], r[4];
    unsigned long klen, vlen = 0, clen = 0;
    uint64_t version = 0, size = 0;
    int deleted = 0;
    bind_blob(&p[0], key, key_len, &klen);
    if ((st = run(c, s, p)) != LKV_OK)
        return st;

    memset(r, 0, sizeof(r));
    int col = 0;
    if (want_value) {
        r[col].buffer_type = MYSQL_TYPE_BLOB;
        r[col].length = &vlen;
        col++;
    }
    r[col].buffer_type = MYSQL_TYPE_STRING;
    r[col].buffer = out->ctype;
    r[col].buffer_length = sizeof(out->ctype) - 1;
    r[col].length = &clen;
    bind_u64(&r[col + 1], &version);
    bind_int(&r[col + 2], &deleted);
    if (!want_value)
        bind_u64(&r[col + 3], &size);
    if (mysql_stmt_bind_result(s, r) != 0) {
        st = pconn_fail(c, s);
        goto out;
    }
    int rc = mysql_stmt_fetch(s);
    if (rc == MYSQL_NO_DATA) {
        out->version = 0;
        st = LKV_ENOTFOUND;
        goto out;
    }
    if (rc == 1) {
        st = pconn_fail(c, s);
        goto out;
    }
    /* MYSQL_DATA_TRUNCATED is expected: the value is fetched on its own. */
    out->ctype[clen < sizeof(out->ctype) ? clen : sizeof(out->ctype) - 1] = '\0';
    out->version = version;
    out->deleted = deleted;
    out->value = NULL;
    out->value_len = want_value ? vlen : (size_t)size;
    if (deleted) {
        st = LKV_ENOTFOUND;
        goto out;
    }
    if (want_value) {
        out->value = malloc(vlen + 1);
        if (out->value == NULL) {
            st = LKV_ENOMEM;
            goto out;
        }
        MYSQL_BIND vb;
        memset(&vb, 0, sizeof(vb));
        vb.buffer_type = MYSQL_TYPE_BLOB;
        vb.buffer = out->value;
        vb.buffer_length = vlen + 1;
        vb.length = &vlen;
        if (vlen > 0 && mysql_stmt_fetch_column(s, &vb, 0, 0) != 0) {
            free(out->value);
            out->value = NULL;
            st = pconn_fail(c, s);
            goto out;
        }
        out->value[vlen] = '\0';
    }
    st = LKV_OK;
out:
    finish(c, want_value ? ST_GET : ST_HEAD);
    return st;
}

/* The single-statement set: INSERT ... ON DUPLICATE KEY UPDATE. */
static enum lkv_status write_set(struct pconn *c, const struct record *rec, uint64_t now_us,
                                 uint64_t *version)
{
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, ST_SET, &st);
    if (s == NULL)
        return st;
    MYSQL_BIND p[4];
    unsigned long klen, vlen, clen;
    bind_blob(&p[0], rec->key, rec->key_len, &klen);
    bind_blob(&p[1], rec->value ? rec->value : "", rec->value_len, &vlen);
    bind_blob(&p[2], rec->ctype, strlen(rec->ctype), &clen);
    bind_u64(&p[3], &now_us);
    if ((st = run(c, s, p)) != LKV_OK)
        return st;
    uint64_t id = mysql_stmt_insert_id(s);
    *version = id ? id : now_us;
    return LKV_OK;
}

static enum lkv_status write_delete(struct pconn *c, const struct record *rec, uint64_t now_us,
                                    uint64_t *version)
{
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, ST_DELETE, &st);
    if (s == NULL)
        return st;
    MYSQL_BIND p[2];
    unsigned long klen;
    bind_u64(&p[0], &now_us);
    bind_blob(&p[1], rec->key, rec->key_len, &klen);
    if ((st = run(c, s, p)) != LKV_OK)
        return st;
    if (mysql_stmt_affected_rows(s) == 0)
        return LKV_ENOTFOUND;
    *version = mysql_stmt_insert_id(s);
    return LKV_OK;
}

/* Reads the current row under an exclusive lock (inside a transaction). */
static enum lkv_status lock_row(struct pconn *c, const struct record *rec, struct record *cur,
                                int *exists)
{
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, ST_LOCK, &st);
    if (s == NULL)
        return st;
    MYSQL_BIND p[1], r[2];
    unsigned long klen;
    int deleted = 0;
    bind_blob(&p[0], rec->key, rec->key_len, &klen);
    if ((st = run(c, s, p)) != LKV_OK)
        return st;
    bind_u64(&r[0], &cur->version);
    bind_int(&r[1], &deleted);
    if (mysql_stmt_bind_result(s, r) != 0)
        return pconn_fail(c, s);
    int rc = mysql_stmt_fetch(s);
    if (rc == 1 || rc == MYSQL_DATA_TRUNCATED) {
        st = pconn_fail(c, s);
        finish(c, ST_LOCK);
        return st;
    }
    *exists = rc == 0 && !deleted;
    finish(c, ST_LOCK);
    return LKV_OK;
}

static enum lkv_status write_locked(struct pconn *c, const struct record *rec, uint64_t now_us,
                                    store_check_fn check, void *arg,
                                    struct write_result *result)
{
    enum lkv_status st = pconn_exec(c, "START TRANSACTION");
    if (st != LKV_OK)
        return st;
    struct record cur;
    memset(&cur, 0, sizeof(cur));
    int exists = 0;
    st = lock_row(c, rec, &cur, &exists);
    if (st == LKV_OK && check)
        st = check(exists ? &cur : NULL, arg);
    if (st == LKV_OK && rec->deleted && !exists)
        st = LKV_ENOTFOUND;
    if (st == LKV_OK) {
        result->created = !exists;
        st = rec->deleted ? write_delete(c, rec, now_us, &result->version)
                          : write_set(c, rec, now_us, &result->version);
    }
    if (st == LKV_OK) {
        if (c->mysql == NULL || mysql_commit(c->mysql) != 0)
            st = c->mysql ? pconn_fail(c, NULL) : LKV_EUNAVAIL;
    } else if (c->mysql) {
        mysql_rollback(c->mysql);
    }
    return st;
}

enum lkv_status store_write(struct pconn *c, const struct record *rec, uint64_t now_us,
                            int need_created, store_check_fn check, void *arg,
                            struct write_result *result)
{
    result->created = 1;
    if (check == NULL && !need_created) {
        return rec->deleted ? write_delete(c, rec, now_us, &result->version)
                            : write_set(c, rec, now_us, &result->version);
    }
    /* Two writers locking a missing key's gap can deadlock; InnoDB picks a
     * victim at once, and the retry then sees the other's row. */
    enum lkv_status st = LKV_EUNAVAIL;
    for (int attempt = 0; attempt < 5; attempt++) {
        st = write_locked(c, rec, now_us, check, arg, result);
        if (st != LKV_EUNAVAIL || !pconn_is_retryable(c))
            break;
    }
    return st;
}

enum lkv_status store_apply(struct pconn *c, const struct record *rec)
{
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, ST_APPLY, &st);
    if (s == NULL)
        return st;
    MYSQL_BIND p[5];
    unsigned long klen, vlen, clen;
    uint64_t version = rec->version;
    int deleted = rec->deleted;
    bind_blob(&p[0], rec->key, rec->key_len, &klen);
    bind_blob(&p[1], rec->value ? rec->value : "", rec->value_len, &vlen);
    bind_blob(&p[2], rec->ctype, strlen(rec->ctype), &clen);
    bind_u64(&p[3], &version);
    bind_int(&p[4], &deleted);
    return run(c, s, p);
}

enum lkv_status store_list(struct pconn *c, const char *lower, size_t lower_len,
                           const char *upper, size_t upper_len, int limit,
                           store_key_fn fn, void *arg)
{
    enum lkv_status st;
    int id = upper ? ST_LIST_RANGE : ST_LIST_FROM;
    MYSQL_STMT *s = pconn_stmt(c, id, &st);
    if (s == NULL)
        return st;
    MYSQL_BIND p[3], r[1];
    unsigned long lo_len, up_len, klen = 0;
    int n = 0;
    bind_blob(&p[n++], lower, lower_len, &lo_len);
    if (upper)
        bind_blob(&p[n++], upper, upper_len, &up_len);
    bind_int(&p[n++], &limit);
    if ((st = run(c, s, p)) != LKV_OK)
        return st;
    char key[STORE_KEY_MAX + 1];
    memset(r, 0, sizeof(r));
    r[0].buffer_type = MYSQL_TYPE_BLOB;
    r[0].buffer = key;
    r[0].buffer_length = sizeof(key);
    r[0].length = &klen;
    if (mysql_stmt_bind_result(s, r) != 0)
        return pconn_fail(c, s);
    int rc;
    while ((rc = mysql_stmt_fetch(s)) == 0) {
        if (fn(key, klen, arg) != 0)
            break;
    }
    st = rc == 1 ? pconn_fail(c, s) : LKV_OK;
    finish(c, id);
    return st;
}
