/*
 * store.c -- the SQL of the controller. See store.h.
 */
#include "store.h"

#include <mysqld_error.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bind.h"
#include "chunks.h"
#include "buf.h"
#include "log.h"

_Static_assert(ST_COUNT <= PCONN_MAX_STMTS, "a connection caches every statement");

/* A value's digest in verify: an inline value's own bytes hashed (as
 * verify always compared them: a value edited by hand differs), a chunked
 * value's stored SHA-256 (its chunks are not read; a set not held whole is
 * found apart, store_incomplete_sets). */
#define VALUE_DIGEST "IF(chunks = 0, UNHEX(SHA2(v, 256)), digest)"
/* The 64-bit digest of a live row in verify: key, version, value, content
 * type and expiry (COALESCE: a NULL would make the whole CONCAT NULL), so
 * rows that differ only in their expiry differ. */
#define VERIFY_DIGEST \
    "CAST(CONV(LEFT(MD5(CONCAT(k, 0x00, version, 0x00, " VALUE_DIGEST ", 0x00, ctype, 0x00," \
    " COALESCE(expires_at, 0))), 16), 16, 10) AS UNSIGNED)"

/* "@T" stands for the table name. No request data is ever placed here. */
static const char *const templates[] = {
    [ST_GET] = "SELECT v, ctype, version, deleted, expires_at, digest, chunks, chunk_version,"
               " COALESCE(len, 0) FROM `@T` WHERE k = ?",
    [ST_HEAD] = "SELECT ctype, version, deleted, LENGTH(v), expires_at, digest, chunks,"
                " chunk_version, COALESCE(len, 0) FROM `@T` WHERE k = ?",
    [ST_NODE_ID] = "SELECT text FROM `@T_meta` WHERE name = 'node_id'",
    [ST_EPOCH_LOCK] = "SELECT value FROM `@T_meta` WHERE name = 'epoch' FOR UPDATE",
    [ST_STAMP] = "UPDATE `@T` SET seq = ? WHERE seq IS NULL LIMIT ?",
    [ST_EPOCH_SET] = "UPDATE `@T_meta` SET value = ? WHERE name = 'epoch'",
    [ST_WM_GET] = "SELECT seq, k FROM `@T_sync` WHERE source = ?",
    [ST_WM_SET] = "INSERT INTO `@T_sync` (source, seq, k) VALUES (?, ?, ?)"
                  " ON DUPLICATE KEY UPDATE seq = VALUES(seq), k = VALUES(k)",
    /* Changes are read in by_seq's own order: InnoDB keeps a secondary
     * index sorted by (seq, primary key), so a range scan of it returns
     * (seq, k) order and needs no sort (MariaDB cannot extend by_seq with a
     * 3072-byte key, so it does not know the order and an ORDER BY seq, k
     * would sort the whole backlog; store_read_changes checks the order
     * instead). The position's key is compared on the index entries (index
     * condition pushdown): only the rows after it are read. Parameters:
     * the first epoch (at least 1: seq = 0 rows are copies, their origin
     * propagates them), the position's epoch and key, the row limit. */
    [ST_CHANGES] = "SELECT k, v, ctype, version, deleted, seq, expires_at, digest, chunks,"
                   " chunk_version, COALESCE(len, 0) FROM `@T`"
                   " FORCE INDEX (by_seq)"
                   " WHERE seq >= ? AND (seq > ? OR k > ?) ORDER BY seq LIMIT ?",
    /* ST_APPLY_MANY..: build_statement() */
    [ST_TOMBSTONES] = "SELECT k, version, seq FROM `@T` FORCE INDEX (by_tombstone)"
                      " WHERE deleted = 1 AND version < ? AND seq > 0 LIMIT ?",
    [ST_PURGE] = "DELETE FROM `@T` WHERE k = ? AND deleted = 1 AND version <= ?",
    [ST_GET_LOCK] = "SELECT GET_LOCK(?, 0)",
    [ST_RELEASE_LOCK] = "SELECT RELEASE_LOCK(?)",
    [ST_PENDING] = "SELECT COUNT(*), COALESCE(MIN(version), 0) FROM `@T` WHERE seq IS NULL",
    /* The new version is the expired row's index, the version every
     * partition computes from the same row (see store_expire). */
    [ST_EXPIRE] = "UPDATE `@T` FORCE INDEX (by_expiry) SET deleted = 1, v = '', digest = NULL,"
                  " len = NULL, chunks = 0, chunk_version = 0, seq = NULL,"
                  " version = GREATEST(version + 1, expires_at), expires_at = NULL"
                  " WHERE expires_at <= ? AND deleted = 0 AND (seq IS NULL OR seq > 0) LIMIT ?",
    [ST_PACKET] = "SELECT @@max_allowed_packet",
    [ST_ROW_CHUNKS] = "SELECT version, chunks, chunk_version FROM `@T` WHERE k = ?",
    [ST_CHUNK_NUMBERS] = "SELECT n FROM `@T_chunks` WHERE kh = UNHEX(SHA2(?, 256)) AND version = ?",
    [ST_CHUNK_READ] = "SELECT data FROM `@T_chunks`"
                      " WHERE kh = UNHEX(SHA2(?, 256)) AND version = ? AND n = ?",
    [ST_CHUNK_COPY] = STORE_CHUNK_COPY,
    [ST_APPLY_CHUNKED] = STORE_APPLY_CHUNKED,
    /* since is the partition's own clock: no clock agreement needed */
    [ST_GC_LIST] = "SELECT kh, version, k FROM `@T_chunks_gc` FORCE INDEX (by_since)"
                   " WHERE since < UNIX_TIMESTAMP(NOW(6)) * 1000000 - ? LIMIT ?",
    [ST_GC_LOCK] = "SELECT chunks, chunk_version FROM `@T` WHERE k = ? FOR UPDATE",
    [ST_GC_DELETE] = "DELETE FROM `@T_chunks` WHERE kh = ? AND version = ?",
    [ST_GC_FORGET] = "DELETE FROM `@T_chunks_gc` WHERE kh = ? AND version = ?",
    /* Each chunked row's set counted by primary key (ref on kh, version). */
    [ST_INCOMPLETE] = "SELECT m.k, m.chunks, COUNT(c.n) FROM `@T` m LEFT JOIN `@T_chunks` c"
                      " ON c.kh = UNHEX(SHA2(m.k, 256)) AND c.version = m.chunk_version"
                      " WHERE m.chunks > 0 AND m.deleted = 0 GROUP BY m.k"
                      " HAVING COUNT(c.n) <> m.chunks",
    /* The table name is bound: here it is a value to compare. */
    [ST_SCHEMA] = "SELECT COUNT(*), COALESCE(MAX(COLUMN_NAME = 'chunk_version'), 0)"
                  " FROM information_schema.COLUMNS"
                  " WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ?",
    [ST_VERIFY_TOP] = "SELECT LEFT(MD5(k), 2) AS b, COUNT(*), BIT_XOR(" VERIFY_DIGEST ")"
                      " FROM `@T` WHERE deleted = 0 GROUP BY b",
    [ST_VERIFY_SUB] = "SELECT LEFT(MD5(k), 4) AS b, COUNT(*), BIT_XOR(" VERIFY_DIGEST ")"
                      " FROM `@T` WHERE deleted = 0 AND LEFT(MD5(k), 2) = ? GROUP BY b",
    [ST_VERIFY_ROWS] = "SELECT k, version, deleted,"
                       " MD5(CONCAT(" VALUE_DIGEST ", 0x00, ctype, 0x00, COALESCE(expires_at, 0)))"
                       " FROM `@T`"
                       " WHERE LEFT(MD5(k), 4) = ?",
    [ST_REPAIR] = "INSERT INTO `@T` (k, v, ctype, version, deleted, expires_at, seq, digest)"
                  " VALUES (?, ?, ?, ?, ?, ?, 0, ?)"
                  " ON DUPLICATE KEY UPDATE"
                  " v = IF(VALUES(version) >= version, VALUES(v), v),"
                  " digest = IF(VALUES(version) >= version, VALUES(digest), digest),"
                  " len = IF(VALUES(version) >= version, NULL, len),"
                  " chunks = IF(VALUES(version) >= version, 0, chunks),"
                  " chunk_version = IF(VALUES(version) >= version, 0, chunk_version),"
                  " ctype = IF(VALUES(version) >= version, VALUES(ctype), ctype),"
                  " deleted = IF(VALUES(version) >= version, VALUES(deleted), deleted),"
                  " seq = IF(VALUES(version) >= version, 0, seq),"
                  " expires_at = IF(VALUES(version) >= version, VALUES(expires_at), expires_at),"
                  " version = GREATEST(version, VALUES(version))",
};

char *store_sql_join(const char *table, const char *head, const char *group, const char *sep,
                     int count, const char *tail)
{
    struct buf b = BUF_INIT;
    int rc = buf_puts(&b, head);
    for (int i = 0; i < count && rc == 0; i++)
        rc = (i ? buf_puts(&b, sep) : 0) || buf_puts(&b, group);
    if (rc == 0)
        rc = buf_puts(&b, tail);
    char *tmpl = rc == 0 ? buf_steal(&b, NULL) : NULL;
    buf_free(&b);
    char *text = tmpl ? store_sql_expand(tmpl, table) : NULL;
    free(tmpl);
    return text;
}

#define APPLY_HEAD \
    "INSERT INTO `@T` (k, v, ctype, version, deleted, expires_at, seq, digest) VALUES "
#define APPLY_ROW "(?, ?, ?, ?, ?, ?, 0, ?)"
#define APPLY_PARAMS 7 /* bound parameters per row: bind_record() */
_Static_assert(STORE_MANY_MAX * APPLY_PARAMS < 65536, "placeholders per statement, at most");

/* The text of statement id, for the ones not in templates[]. */
static char *build_statement(const char *table, int id)
{
    if (id >= ST_APPLY_MANY)
        return store_sql_join(table, APPLY_HEAD, APPLY_ROW, ", ", 1 << (id - ST_APPLY_MANY),
                              STORE_APPLY_UPDATE);
    return store_sql_expand(templates[id], table);
}

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
        sql->text[i] = build_statement(table, i);
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

/* Discards what is left of a result, unless a failure closed the statement. */
static void finish(struct pconn *c, int id)
{
    if (c->stmt[id])
        mysql_stmt_free_result(c->stmt[id]);
}

/* Ends the transaction begun on c: commits it when st is LKV_OK (the
 * commit's own status is returned), else rolls it back (st returned). */
static enum lkv_status end_transaction(struct pconn *c, enum lkv_status st)
{
    if (st == LKV_OK)
        return pconn_commit(c);
    pconn_rollback(c);
    return st;
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
    MYSQL_BIND p[1], r[9];
    unsigned long klen, vlen = 0, clen = 0, dlen = 0;
    uint64_t version = 0, size = 0, expires_at = 0, len = 0;
    my_bool no_expiry = 0, no_digest = 0;
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
    bind_u64_out(&r[4], &expires_at, &no_expiry); /* the same columns in both from here */
    bind_bytes_out(&r[5], out->digest, sizeof(out->digest), &dlen, &no_digest);
    bind_u32(&r[6], &out->chunks);
    bind_u64(&r[7], &out->chunk_version);
    bind_u64(&r[8], &len);
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
    out->expires_at = no_expiry ? 0 : expires_at;
    out->value = NULL;
    out->has_digest = !no_digest && dlen == sizeof(out->digest);
    out->value_len = want_value ? vlen : (size_t)size;
    if (out->chunks > 0)
        out->value_len = (size_t)len; /* v is '': the value is its chunks */
    if (deleted) {
        st = LKV_ENOTFOUND;
        goto out;
    }
    if (want_value && out->chunks == 0) {
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

/* What the APPLY_PARAMS parameters of one record point to while its
 * statement runs (bind_record). */
struct row_params {
    unsigned long lens[3];   /* key, value, content type */
    uint64_t version;
    int deleted;
    uint64_t expires_at;     /* 0: sent as NULL */
    unsigned long digest_len;
};

static void bind_record(MYSQL_BIND *p, const struct record *rec, struct row_params *rp);

/* Runs a one-row statement whose parameters are a whole record. */
static enum lkv_status write_record(struct pconn *c, int id, const struct record *rec)
{
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, id, &st);
    if (s == NULL)
        return st;
    MYSQL_BIND p[APPLY_PARAMS];
    struct row_params rp;
    bind_record(p, rec, &rp);
    return run(c, s, p);
}

void batch_clear(struct batch *b)
{
    for (size_t i = 0; i < b->n; i++) {
        free((char *)b->rec[i].key);
        free(b->rec[i].value);
    }
    b->n = 0;
    b->bytes = 0;
}

void batch_free(struct batch *b)
{
    batch_clear(b);
    free(b->rec);
    free(b->seq);
    memset(b, 0, sizeof(*b));
}

/* A new zeroed record at the end of b, or NULL when out of memory. */
static struct record *batch_push(struct batch *b)
{
    if (b->n == b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 64;
        struct record *r = realloc(b->rec, cap * sizeof(*r));
        if (r == NULL)
            return NULL;
        b->rec = r;
        uint64_t *s = realloc(b->seq, cap * sizeof(*s));
        if (s == NULL)
            return NULL;
        b->seq = s;
        b->cap = cap;
    }
    memset(&b->rec[b->n], 0, sizeof(b->rec[0]));
    b->seq[b->n] = 0;
    return &b->rec[b->n++];
}

/* Runs a statement that returns one unsigned integer (NULL reads as 0). */
static enum lkv_status query_u64(struct pconn *c, int id, MYSQL_BIND *params, uint64_t *out,
                                 int *found)
{
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, id, &st);
    if (s == NULL)
        return st;
    if ((st = run(c, s, params)) != LKV_OK)
        return st;
    MYSQL_BIND r[1];
    my_bool is_null = 0;
    *out = 0;
    bind_u64(&r[0], out);
    r[0].is_null = &is_null;
    if (mysql_stmt_bind_result(s, r) != 0)
        return pconn_fail(c, s);
    int rc = mysql_stmt_fetch(s);
    st = rc == 1 ? pconn_fail(c, s) : LKV_OK;
    if (found)
        *found = rc == 0 || rc == MYSQL_DATA_TRUNCATED;
    if (is_null)
        *out = 0;
    finish(c, id);
    return st;
}

enum lkv_status store_max_packet(struct pconn *c, uint64_t *bytes)
{
    return query_u64(c, ST_PACKET, NULL, bytes, NULL);
}

enum lkv_status store_node_id(struct pconn *c, char id[STORE_NODE_ID_MAX + 1])
{
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, ST_NODE_ID, &st);
    if (s == NULL)
        return st;
    if ((st = run(c, s, NULL)) != LKV_OK)
        return st;
    MYSQL_BIND r[1];
    unsigned long len = 0;
    memset(r, 0, sizeof(r));
    bind_out(&r[0], MYSQL_TYPE_STRING, id, STORE_NODE_ID_MAX, &len);
    if (mysql_stmt_bind_result(s, r) != 0)
        return pconn_fail(c, s);
    int rc = mysql_stmt_fetch(s);
    if (rc == 1)
        st = pconn_fail(c, s);
    else if (rc == MYSQL_NO_DATA)
        st = LKV_EUNAVAIL; /* no node id: lazykv-admin init was not run */
    finish(c, ST_NODE_ID);
    id[len < STORE_NODE_ID_MAX ? len : STORE_NODE_ID_MAX] = '\0';
    return st;
}

enum lkv_status store_check_schema(struct pconn *c, const char *table, int *old)
{
    *old = 0;
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, ST_SCHEMA, &st);
    if (s == NULL)
        return st;
    MYSQL_BIND p[1], r[2];
    unsigned long tlen;
    uint64_t columns = 0, current = 0;
    bind_blob(&p[0], table, strlen(table), &tlen);
    if ((st = run(c, s, p)) != LKV_OK)
        return st;
    bind_u64(&r[0], &columns);
    bind_u64(&r[1], &current);
    if (mysql_stmt_bind_result(s, r) != 0)
        return pconn_fail(c, s);
    if (mysql_stmt_fetch(s) == 1)
        st = pconn_fail(c, s);
    else
        *old = columns > 0 && current == 0;
    finish(c, ST_SCHEMA);
    return st;
}

enum lkv_status store_named_lock(struct pconn *c, const char *name, int *got)
{
    MYSQL_BIND p[1];
    unsigned long len;
    uint64_t v = 0;
    bind_blob(&p[0], name, strlen(name), &len);
    enum lkv_status st = query_u64(c, ST_GET_LOCK, p, &v, NULL);
    *got = st == LKV_OK && v == 1;
    if (*got)
        c->holds_lock = 1; /* pconn_mysql: never silently replaced now */
    return st;
}

enum lkv_status store_named_unlock(struct pconn *c, const char *name)
{
    MYSQL_BIND p[1];
    unsigned long len;
    uint64_t v = 0;
    bind_blob(&p[0], name, strlen(name), &len);
    enum lkv_status st = query_u64(c, ST_RELEASE_LOCK, p, &v, NULL);
    c->holds_lock = 0; /* released, or gone with its connection */
    return st;
}

/* One attempt of store_stamp: a transaction, committed or rolled back. */
static enum lkv_status stamp_once(struct pconn *c, int limit, uint64_t *stamped)
{
    *stamped = 0;
    enum lkv_status st = pconn_begin(c);
    if (st != LKV_OK)
        return st;
    uint64_t epoch = 0;
    int found = 0;
    st = query_u64(c, ST_EPOCH_LOCK, NULL, &epoch, &found);
    if (st == LKV_OK && !found)
        st = LKV_EUNAVAIL; /* no epoch row: lazykv-admin init was not run */
    MYSQL_STMT *s = NULL;
    if (st == LKV_OK) {
        epoch++;
        s = pconn_stmt(c, ST_STAMP, &st);
    }
    if (s) {
        MYSQL_BIND p[2];
        bind_u64(&p[0], &epoch);
        bind_int(&p[1], &limit);
        st = run(c, s, p);
        if (st == LKV_OK)
            *stamped = mysql_stmt_affected_rows(s);
    }
    if (st == LKV_OK && *stamped > 0) {
        MYSQL_STMT *e = pconn_stmt(c, ST_EPOCH_SET, &st);
        if (e) {
            MYSQL_BIND p[1];
            bind_u64(&p[0], &epoch);
            st = run(c, e, p);
        }
    }
    st = end_transaction(c, st);
    if (st != LKV_OK)
        *stamped = 0;
    return st;
}

enum lkv_status store_stamp(struct pconn *c, int limit, uint64_t *stamped)
{
    /* The stamp locks pending rows that lazykvd may be rewriting, and the
     * sync applies copies to this partition while it stamps: a deadlock
     * victim was rolled back whole, so it is simply run again. */
    enum lkv_status st;
    int attempt = 0;
    do
        st = stamp_once(c, limit, stamped);
    while (st == LKV_EUNAVAIL && pconn_retry_deadlock(c, attempt++));
    return st;
}

enum lkv_status store_expire(struct pconn *c, uint64_t now, int limit, uint64_t *expired)
{
    *expired = 0;
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, ST_EXPIRE, &st);
    if (s == NULL)
        return st;
    MYSQL_BIND p[2];
    bind_u64(&p[0], &now);
    bind_int(&p[1], &limit);
    /* lazykvd's writes lock the same rows: a statement InnoDB picks as a
     * deadlock victim was rolled back whole, so it is simply run again. */
    int attempt = 0;
    do
        st = run(c, s, p);
    while (st == LKV_EUNAVAIL && pconn_retry_deadlock(c, attempt++));
    if (st == LKV_OK)
        *expired = mysql_stmt_affected_rows(s);
    return st;
}

enum lkv_status store_watermark(struct pconn *target, const char *source_id,
                                struct position *pos)
{
    enum lkv_status st;
    pos->seq = 0;
    pos->key_len = 0;
    pos->key[0] = '\0';
    MYSQL_STMT *s = pconn_stmt(target, ST_WM_GET, &st);
    if (s == NULL)
        return st;
    MYSQL_BIND p[1], r[2];
    unsigned long len, klen = 0;
    bind_blob(&p[0], source_id, strlen(source_id), &len);
    if ((st = run(target, s, p)) != LKV_OK)
        return st;
    memset(r, 0, sizeof(r));
    bind_u64(&r[0], &pos->seq);
    bind_out(&r[1], MYSQL_TYPE_BLOB, pos->key, STORE_KEY_MAX, &klen);
    if (mysql_stmt_bind_result(s, r) != 0)
        return pconn_fail(target, s);
    int rc = mysql_stmt_fetch(s);
    if (rc == 1)
        st = pconn_fail(target, s);
    else if (rc == 0)
        pos->key_len = klen;
    else
        pos->seq = 0;
    finish(target, ST_WM_GET);
    return st;
}

/* The result columns of ST_CHANGES, and the buffers of those fetched with
 * the row: key and value are fetched column by column at their real size
 * (fetch_change). */
#define CHANGE_COLS 11
struct change_cols {
    uint32_t chunks;
    uint64_t chunk_version;
    uint64_t value_len;                /* of a chunked value */
    unsigned long len[4];              /* key, value, content type, digest */
    unsigned char digest[32];
    my_bool no_digest;
    char ctype[STORE_CTYPE_MAX + 1];
    uint64_t version;
    int deleted;
    uint64_t seq;
    uint64_t expires_at;
    my_bool no_expiry;                 /* expires_at is NULL */
};

static void bind_change_cols(MYSQL_BIND *r, struct change_cols *cc)
{
    memset(r, 0, CHANGE_COLS * sizeof(*r));
    r[0].buffer_type = r[1].buffer_type = MYSQL_TYPE_BLOB;
    r[0].length = &cc->len[0];
    r[1].length = &cc->len[1];
    bind_out(&r[2], MYSQL_TYPE_STRING, cc->ctype, sizeof(cc->ctype), &cc->len[2]);
    bind_u64(&r[3], &cc->version);
    bind_int(&r[4], &cc->deleted);
    bind_u64(&r[5], &cc->seq);
    bind_u64_out(&r[6], &cc->expires_at, &cc->no_expiry);
    bind_bytes_out(&r[7], cc->digest, sizeof(cc->digest), &cc->len[3], &cc->no_digest);
    bind_u32(&r[8], &cc->chunks);
    bind_u64(&r[9], &cc->chunk_version);
    bind_u64(&r[10], &cc->value_len);
}

/* Fetches the current row of s (bound by bind_change_cols to r and cc)
 * into a new record of b. */
static enum lkv_status fetch_change(struct pconn *c, MYSQL_STMT *s, const MYSQL_BIND *r,
                                    const struct change_cols *cc, struct batch *b)
{
    struct record *rec = batch_push(b);
    if (rec == NULL)
        return LKV_ENOMEM;
    const unsigned long *len = cc->len;
    char *key = malloc(len[0] + 1), *value = malloc(len[1] + 1);
    rec->key = key;
    rec->value = value;
    if (key == NULL || value == NULL)
        return LKV_ENOMEM;
    MYSQL_BIND col;
    for (int i = 0; i < 2; i++) {
        col = r[i];
        col.buffer = i ? value : key;
        col.buffer_length = len[i] + 1;
        if (len[i] > 0 && mysql_stmt_fetch_column(s, &col, (unsigned)i, 0) != 0)
            return pconn_fail(c, s);
    }
    key[len[0]] = value[len[1]] = '\0';
    rec->key_len = len[0];
    rec->value_len = len[1];
    int clen = len[2] > STORE_CTYPE_MAX ? STORE_CTYPE_MAX : (int)len[2];
    snprintf(rec->ctype, sizeof(rec->ctype), "%.*s", clen, cc->ctype);
    rec->version = cc->version;
    rec->deleted = cc->deleted;
    rec->expires_at = cc->no_expiry ? 0 : cc->expires_at;
    rec->has_digest = !cc->no_digest && len[3] == sizeof(rec->digest);
    if (rec->has_digest)
        memcpy(rec->digest, cc->digest, sizeof(rec->digest));
    rec->chunks = cc->chunks;
    rec->chunk_version = cc->chunk_version;
    if (rec->chunks > 0 && !rec->deleted)
        rec->value_len = (size_t)cc->value_len; /* v is '': the chunks are copied apart */
    b->seq[b->n - 1] = cc->seq;
    b->bytes += len[0] + len[1];
    return LKV_OK;
}

int position_covers(const struct position *pos, uint64_t seq, const char *key, size_t len)
{
    if (pos->seq != seq)
        return pos->seq > seq;
    size_t n = pos->key_len < len ? pos->key_len : len;
    int c = memcmp(pos->key, key, n);
    return c > 0 || (c == 0 && pos->key_len >= len);
}

void position_set(struct position *pos, const struct batch *b, size_t i)
{
    const struct record *r = &b->rec[i];
    pos->seq = b->seq[i];
    memcpy(pos->key, r->key, r->key_len);
    pos->key_len = r->key_len;
}

/* Whether row i of b comes strictly after the row before it in (seq, k)
 * order (after pos when i is first, the first row this read appended):
 * what store_read_changes relies on. */
static int in_order(const struct position *pos, const struct batch *b, size_t i, size_t first)
{
    const struct record *r = &b->rec[i];
    if (i == first)
        return !position_covers(pos, b->seq[i], r->key, r->key_len);
    const struct record *q = &b->rec[i - 1];
    if (b->seq[i - 1] != b->seq[i])
        return b->seq[i - 1] < b->seq[i];
    size_t n = q->key_len < r->key_len ? q->key_len : r->key_len;
    int c = memcmp(q->key, r->key, n);
    return c < 0 || (c == 0 && q->key_len < r->key_len);
}

enum lkv_status store_read_changes(struct pconn *source, const struct position *pos, int limit,
                                   long long max_bytes, struct batch *b, int *more)
{
    *more = 0;
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(source, ST_CHANGES, &st);
    if (s == NULL)
        return st;
    uint64_t first = pos->seq > 0 ? pos->seq : 1, seq = pos->seq;
    MYSQL_BIND p[4], r[CHANGE_COLS];
    unsigned long klen;
    struct change_cols cc;
    memset(&cc, 0, sizeof(cc));
    bind_u64(&p[0], &first);
    bind_u64(&p[1], &seq);
    bind_blob(&p[2], pos->key, pos->key_len, &klen);
    bind_int(&p[3], &limit);
    if ((st = run(source, s, p)) != LKV_OK)
        return st;
    bind_change_cols(r, &cc);
    if (mysql_stmt_bind_result(s, r) != 0)
        return pconn_fail(source, s);
    size_t start = b->n;
    int rc = 0, rows = 0;
    while (st == LKV_OK && (long long)b->bytes < max_bytes &&
           ((rc = mysql_stmt_fetch(s)) == 0 || rc == MYSQL_DATA_TRUNCATED)) {
        st = fetch_change(source, s, r, &cc, b);
        if (st == LKV_OK && !in_order(pos, b, b->n - 1, start)) {
            snprintf(source->last_error, sizeof(source->last_error),
                     "changes read out of (seq, k) order: the plan of the changes query"
                     " does not follow the by_seq index");
            st = LKV_EINTERNAL;
        }
        rows++;
    }
    if (st == LKV_OK && (long long)b->bytes < max_bytes && rc == 1)
        st = pconn_fail(source, s);
    *more = rows >= limit || (long long)b->bytes >= max_bytes;
    finish(source, ST_CHANGES);
    return st;
}

/* Binds rec as one row of APPLY_ROW: key, value, content type, version,
 * deleted, expiry (NULL for none, as the schema stores it), digest (NULL
 * for none: readers then hash v). */
static void bind_record(MYSQL_BIND *p, const struct record *rec, struct row_params *rp)
{
    rp->version = rec->version;
    rp->deleted = rec->deleted;
    rp->expires_at = rec->expires_at;
    bind_blob(&p[0], rec->key, rec->key_len, &rp->lens[0]);
    bind_blob(&p[1], rec->value ? rec->value : "", rec->value_len, &rp->lens[1]);
    bind_blob(&p[2], rec->ctype, strlen(rec->ctype), &rp->lens[2]);
    bind_u64(&p[3], &rp->version);
    bind_int(&p[4], &rp->deleted);
    bind_u64_or_null(&p[5], &rp->expires_at);
    bind_blob_or_null(&p[6], rec->digest, sizeof(rec->digest), &rp->digest_len,
                      rec->has_digest && !rec->deleted);
}

/* The bound parameters of one multi-row apply, allocated once per batch:
 * STORE_MANY_MAX rows of them do not belong on a thread's stack. */
struct apply_params {
    MYSQL_BIND p[STORE_MANY_MAX * APPLY_PARAMS];
    struct row_params rp[STORE_MANY_MAX];
};

/* Applies rec[0 .. 1 << lg) in one statement: each kept only over a lower
 * version, marked as a copy (seq = 0). */
static enum lkv_status apply_rows(struct pconn *c, struct apply_params *ap,
                                  const struct record *rec, int lg)
{
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, ST_APPLY_MANY + lg, &st);
    if (s == NULL)
        return st;
    for (int i = 0; i < 1 << lg; i++)
        bind_record(&ap->p[i * APPLY_PARAMS], &rec[i], &ap->rp[i]);
    return run(c, s, ap->p);
}

/* The size of the next statement for rec[0 .. left), left > 0 and rec[0]
 * inline, as log2 of its rows: as many inline rows as STORE_MANY_BYTES
 * holds (one at least) and STORE_MANY_MAX allows, rounded down to a power
 * of two, so a batch is cut into few statements and none is padded. */
static int next_width(const struct record *rec, size_t left)
{
    size_t n = 0, bytes = 0;
    while (n < left && n < STORE_MANY_MAX && !record_chunked(&rec[n]) &&
           (n == 0 || bytes + rec[n].key_len + rec[n].value_len <= STORE_MANY_BYTES)) {
        bytes += rec[n].key_len + rec[n].value_len;
        n++;
    }
    int lg = 0;
    while ((size_t)2 << lg <= n)
        lg++;
    return lg;
}

/* What the parameters of STORE_APPLY_CHUNKED point to. */
struct chunked_params {
    unsigned long lens[4];   /* key, content type, digest, key again */
    uint64_t version, expires_at, len, set;
    uint32_t chunks;
};

static void bind_chunked(MYSQL_BIND *p, const struct record *rec, struct chunked_params *cp)
{
    cp->version = rec->version;
    cp->expires_at = rec->expires_at;
    cp->len = rec->value_len;
    cp->set = rec->chunk_version;
    cp->chunks = rec->chunks;
    bind_blob(&p[0], rec->key, rec->key_len, &cp->lens[0]);
    bind_blob(&p[1], rec->ctype, strlen(rec->ctype), &cp->lens[1]);
    bind_u64(&p[2], &cp->version);
    bind_u64_or_null(&p[3], &cp->expires_at);
    bind_blob_or_null(&p[4], rec->digest, sizeof(rec->digest), &cp->lens[2], rec->has_digest);
    bind_u64(&p[5], &cp->len);
    bind_u32(&p[6], &cp->chunks);
    bind_u64(&p[7], &cp->set);
    bind_blob(&p[8], rec->key, rec->key_len, &cp->lens[3]);
    bind_u64(&p[9], &cp->set);
    bind_u32(&p[10], &cp->chunks);
}

/* Applies a chunked row (in the caller's transaction) if its set is whole
 * at target: store_copy_chunks copied it, unless the row was skipped. */
static enum lkv_status apply_chunked(struct pconn *target, const struct record *rec)
{
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(target, ST_APPLY_CHUNKED, &st);
    if (s == NULL)
        return st;
    MYSQL_BIND p[11];
    struct chunked_params cp;
    bind_chunked(p, rec, &cp);
    return run(target, s, p);
}

/* Moves target's watermark for source_id to row i of b (in the caller's
 * transaction). */
static enum lkv_status set_watermark(struct pconn *target, const struct batch *b, size_t i,
                                     const char *source_id)
{
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(target, ST_WM_SET, &st);
    if (s == NULL)
        return st;
    const struct record *last = &b->rec[i];
    uint64_t seq = b->seq[i];
    MYSQL_BIND p[3];
    unsigned long l0, l2;
    bind_blob(&p[0], source_id, strlen(source_id), &l0);
    bind_u64(&p[1], &seq);
    bind_blob(&p[2], last->key, last->key_len, &l2);
    return run(target, s, p);
}

/* One attempt of store_apply_batch: a transaction, committed or rolled back. */
static enum lkv_status apply_batch_once(struct pconn *target, const struct batch *b, size_t from,
                                        const char *source_id, struct apply_params *ap)
{
    enum lkv_status st = pconn_begin(target);
    for (size_t i = from; st == LKV_OK && i < b->n;) {
        if (record_chunked(&b->rec[i])) {
            st = apply_chunked(target, &b->rec[i]);
            i++;
            continue;
        }
        int lg = next_width(&b->rec[i], b->n - i);
        st = apply_rows(target, ap, &b->rec[i], lg);
        i += (size_t)1 << lg;
    }
    if (st == LKV_OK)
        st = set_watermark(target, b, b->n - 1, source_id);
    st = end_transaction(target, st);
    return st;
}

enum lkv_status store_apply_batch(struct pconn *target, const struct batch *b, size_t from,
                                  const char *source_id)
{
    if (from >= b->n)
        return LKV_OK;
    struct apply_params *ap = malloc(sizeof(*ap));
    if (ap == NULL)
        return LKV_ENOMEM;
    /* InnoDB may pick this transaction as a deadlock victim (against the
     * stamping of the same partition, or lazykvd's writes): it was rolled
     * back whole, so it is simply run again. */
    enum lkv_status st;
    int attempt = 0;
    do
        st = apply_batch_once(target, b, from, source_id, ap);
    while (st == LKV_EUNAVAIL && pconn_retry_deadlock(target, attempt++));
    free(ap);
    return st;
}

enum lkv_status store_tombstones(struct pconn *c, uint64_t before, int limit, struct batch *b)
{
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, ST_TOMBSTONES, &st);
    if (s == NULL)
        return st;
    MYSQL_BIND p[2], r[3];
    uint64_t version = 0, seq = 0;
    unsigned long klen = 0;
    char key[STORE_KEY_MAX + 1];
    bind_u64(&p[0], &before);
    bind_int(&p[1], &limit);
    if ((st = run(c, s, p)) != LKV_OK)
        return st;
    memset(r, 0, sizeof(r));
    bind_out(&r[0], MYSQL_TYPE_BLOB, key, STORE_KEY_MAX, &klen);
    bind_u64(&r[1], &version);
    bind_u64(&r[2], &seq);
    if (mysql_stmt_bind_result(s, r) != 0)
        return pconn_fail(c, s);
    int rc;
    while ((rc = mysql_stmt_fetch(s)) == 0) {
        struct record *rec = batch_push(b);
        char *k = rec ? malloc(klen + 1) : NULL;
        if (k == NULL) {
            st = LKV_ENOMEM;
            break;
        }
        memcpy(k, key, klen);
        k[klen] = '\0';
        rec->key = k;
        rec->key_len = klen;
        rec->version = version;
        rec->deleted = 1;
        b->seq[b->n - 1] = seq;
    }
    if (rc == 1)
        st = pconn_fail(c, s);
    finish(c, ST_TOMBSTONES);
    return st;
}

enum lkv_status store_purge(struct pconn *c, const char *key, size_t key_len, uint64_t version)
{
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, ST_PURGE, &st);
    if (s == NULL)
        return st;
    MYSQL_BIND p[2];
    unsigned long klen;
    bind_blob(&p[0], key, key_len, &klen);
    bind_u64(&p[1], &version);
    return run(c, s, p);
}

enum lkv_status store_pending(struct pconn *c, uint64_t *rows, uint64_t *oldest_version)
{
    *rows = *oldest_version = 0;
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, ST_PENDING, &st);
    if (s == NULL)
        return st;
    if ((st = run(c, s, NULL)) != LKV_OK)
        return st;
    MYSQL_BIND r[2];
    memset(r, 0, sizeof(r));
    bind_u64(&r[0], rows);
    bind_u64(&r[1], oldest_version);
    if (mysql_stmt_bind_result(s, r) != 0)
        return pconn_fail(c, s);
    if (mysql_stmt_fetch(s) == 1)
        st = pconn_fail(c, s);
    finish(c, ST_PENDING);
    return st;
}

enum lkv_status store_repair(struct pconn *c, const struct record *rec)
{
    if (record_chunked(rec))
        return apply_chunked(c, rec); /* its set made whole by store_copy_chunks first */
    return write_record(c, ST_REPAIR, rec);
}

/* ---- chunks of large values (chunks.h) ------------------------------------------ */

enum lkv_status store_row_chunks(struct pconn *c, const char *key, size_t key_len, int *found,
                                 uint64_t *version, uint32_t *chunks, uint64_t *set)
{
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, ST_ROW_CHUNKS, &st);
    if (s == NULL)
        return st;
    MYSQL_BIND p[1], r[3];
    unsigned long klen;
    *version = *set = 0;
    *chunks = 0;
    *found = 0;
    bind_blob(&p[0], key, key_len, &klen);
    if ((st = run(c, s, p)) != LKV_OK)
        return st;
    bind_u64(&r[0], version);
    bind_u32(&r[1], chunks);
    bind_u64(&r[2], set);
    if (mysql_stmt_bind_result(s, r) != 0)
        return pconn_fail(c, s);
    int rc = mysql_stmt_fetch(s);
    st = rc == 1 ? pconn_fail(c, s) : LKV_OK;
    *found = rc == 0;
    finish(c, ST_ROW_CHUNKS);
    return st;
}

/* Marks in have[] the chunks of rec's set that c holds. */
static enum lkv_status chunk_numbers(struct pconn *c, const struct record *rec,
                                     unsigned char *have)
{
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, ST_CHUNK_NUMBERS, &st);
    if (s == NULL)
        return st;
    MYSQL_BIND p[2], r[1];
    unsigned long klen;
    uint64_t set = rec->chunk_version;
    uint32_t n = 0;
    bind_blob(&p[0], rec->key, rec->key_len, &klen);
    bind_u64(&p[1], &set);
    if ((st = run(c, s, p)) != LKV_OK)
        return st;
    bind_u32(&r[0], &n);
    if (mysql_stmt_bind_result(s, r) != 0)
        return pconn_fail(c, s);
    int rc;
    while ((rc = mysql_stmt_fetch(s)) == 0)
        if (n < rec->chunks)
            have[n] = 1;
    st = rc == 1 ? pconn_fail(c, s) : LKV_OK;
    finish(c, ST_CHUNK_NUMBERS);
    return st;
}

/* Reads chunk n of rec's set at c into buf (CHUNKS_SIZE bytes of room):
 * *len bytes, or *found = 0. */
static enum lkv_status read_chunk(struct pconn *c, const struct record *rec, uint32_t n,
                                  char *buf, size_t *len, int *found)
{
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, ST_CHUNK_READ, &st);
    if (s == NULL)
        return st;
    MYSQL_BIND p[3], r[1];
    unsigned long klen, dlen = 0;
    uint64_t set = rec->chunk_version;
    bind_blob(&p[0], rec->key, rec->key_len, &klen);
    bind_u64(&p[1], &set);
    bind_u32(&p[2], &n);
    if ((st = run(c, s, p)) != LKV_OK)
        return st;
    bind_out(&r[0], MYSQL_TYPE_BLOB, buf, CHUNKS_SIZE, &dlen);
    if (mysql_stmt_bind_result(s, r) != 0)
        return pconn_fail(c, s);
    int rc = mysql_stmt_fetch(s);
    *found = rc == 0 || rc == MYSQL_DATA_TRUNCATED;
    if (rc == 1)
        st = pconn_fail(c, s);
    else if (rc == MYSQL_DATA_TRUNCATED || (*found && dlen == 0)) {
        snprintf(c->last_error, sizeof(c->last_error),
                 "a chunk of %lu bytes: a chunk holds 1 to %u", dlen, CHUNKS_SIZE);
        st = LKV_EINTERNAL;
    }
    *len = dlen;
    finish(c, ST_CHUNK_READ);
    return st;
}

static enum lkv_status write_chunk(struct pconn *c, const struct record *rec, uint32_t n,
                                   const char *data, size_t len)
{
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, ST_CHUNK_COPY, &st);
    if (s == NULL)
        return st;
    MYSQL_BIND p[5];
    unsigned long l0, l3, l4;
    uint64_t set = rec->chunk_version;
    bind_blob(&p[0], rec->key, rec->key_len, &l0);
    bind_u64(&p[1], &set);
    bind_u32(&p[2], &n);
    bind_blob(&p[3], rec->key, rec->key_len, &l3);
    bind_blob(&p[4], data, len, &l4);
    return run(c, s, p);
}

/* store_copy_chunks; force: whatever target's version. */
static enum lkv_status copy_chunks(struct pconn *source, struct pconn *target,
                                   const struct record *rec, int force, int *skipped)
{
    *skipped = 0;
    if (rec->chunks > CHUNKS_VALUE_MAX / CHUNKS_SIZE) {
        snprintf(source->last_error, sizeof(source->last_error),
                 "a value of %u chunks: at most %llu", rec->chunks,
                 CHUNKS_VALUE_MAX / CHUNKS_SIZE);
        return LKV_EINTERNAL;
    }
    int found = 0;
    uint64_t version = 0, set = 0;
    uint32_t chunks = 0;
    enum lkv_status st =
        store_row_chunks(target, rec->key, rec->key_len, &found, &version, &chunks, &set);
    if (st != LKV_OK)
        return st;
    if (found && version >= rec->version && !force) {
        *skipped = 1; /* the copy would change nothing there */
        return LKV_OK;
    }
    unsigned char have[CHUNKS_VALUE_MAX / CHUNKS_SIZE];
    memset(have, 0, rec->chunks);
    if ((st = chunk_numbers(target, rec, have)) != LKV_OK)
        return st;
    char *buf = NULL;
    for (uint32_t n = 0; st == LKV_OK && n < rec->chunks; n++) {
        if (have[n])
            continue; /* left by a pass cut short, or teed by lazykvd */
        if (buf == NULL && (buf = malloc(CHUNKS_SIZE)) == NULL)
            return LKV_ENOMEM;
        size_t len = 0;
        st = read_chunk(source, rec, n, buf, &len, &found);
        if (st == LKV_OK && !found) {
            /* The source row moved on since it was read (its set was
             * replaced and collected): its new version is pending there and
             * a later change carries it. If it still names the set, the
             * source is damaged. */
            st = store_row_chunks(source, rec->key, rec->key_len, &found, &version, &chunks,
                                  &set);
            if (st == LKV_OK && found && chunks == rec->chunks && set == rec->chunk_version) {
                snprintf(source->last_error, sizeof(source->last_error),
                         "key '%.*s': chunk %u of its value is missing (lazykv-admin verify)",
                         (int)(rec->key_len > 200 ? 200 : rec->key_len), rec->key, n);
                st = LKV_EINTERNAL;
            } else if (st == LKV_OK) {
                *skipped = 1;
                break;
            }
        }
        if (st == LKV_OK)
            st = write_chunk(target, rec, n, buf, len);
    }
    free(buf);
    return st;
}

enum lkv_status store_copy_chunks(struct pconn *source, struct pconn *target,
                                  const struct record *rec, int *skipped)
{
    return copy_chunks(source, target, rec, 0, skipped);
}

enum lkv_status store_complete_chunks(struct pconn *source, struct pconn *target,
                                      const struct record *rec)
{
    int skipped = 0;
    enum lkv_status st = copy_chunks(source, target, rec, 1, &skipped);
    if (st == LKV_OK && skipped) {
        snprintf(source->last_error, sizeof(source->last_error),
                 "the set is not whole here either");
        st = LKV_ENOTFOUND;
    }
    return st;
}

enum lkv_status store_incomplete_sets(struct pconn *c, store_incomplete_fn fn, void *arg)
{
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, ST_INCOMPLETE, &st);
    if (s == NULL)
        return st;
    if ((st = run(c, s, NULL)) != LKV_OK)
        return st;
    char key[STORE_KEY_MAX];
    unsigned long klen = 0;
    uint32_t chunks = 0;
    uint64_t held = 0;
    MYSQL_BIND r[3];
    bind_out(&r[0], MYSQL_TYPE_BLOB, key, sizeof(key), &klen);
    bind_u32(&r[1], &chunks);
    bind_u64(&r[2], &held);
    if (mysql_stmt_bind_result(s, r) != 0)
        return pconn_fail(c, s);
    if (mysql_stmt_store_result(s) != 0) /* fn may run statements on c */
        return pconn_fail(c, s);
    int rc;
    while ((rc = mysql_stmt_fetch(s)) == 0) {
        fn(key, klen, chunks, (uint32_t)held, arg);
        if (c->stmt[ST_INCOMPLETE] != s)
            return LKV_EUNAVAIL; /* fn lost the connection: s was closed with it */
    }
    st = rc == 1 ? pconn_fail(c, s) : LKV_OK;
    finish(c, ST_INCOMPLETE);
    return st;
}

/* One candidate of the collector. */
struct gc_candidate {
    unsigned char kh[32];
    unsigned long kh_len;
    uint64_t set;
    char key[STORE_KEY_MAX];
    unsigned long key_len;
};

static enum lkv_status gc_list(struct pconn *c, int grace_s, int limit,
                               struct gc_candidate *cand, int *n)
{
    *n = 0;
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, ST_GC_LIST, &st);
    if (s == NULL)
        return st;
    MYSQL_BIND p[2], r[3];
    uint64_t grace_us = (uint64_t)grace_s * 1000000u;
    struct gc_candidate row;
    memset(&row, 0, sizeof(row));
    bind_u64(&p[0], &grace_us);
    bind_int(&p[1], &limit);
    if ((st = run(c, s, p)) != LKV_OK)
        return st;
    bind_out(&r[0], MYSQL_TYPE_BLOB, row.kh, sizeof(row.kh), &row.kh_len);
    bind_u64(&r[1], &row.set);
    bind_out(&r[2], MYSQL_TYPE_BLOB, row.key, sizeof(row.key), &row.key_len);
    if (mysql_stmt_bind_result(s, r) != 0)
        return pconn_fail(c, s);
    int rc = 0;
    *n = 0;
    while (*n < limit && (rc = mysql_stmt_fetch(s)) == 0)
        cand[(*n)++] = row;
    st = *n < limit && rc == 1 ? pconn_fail(c, s) : LKV_OK;
    finish(c, ST_GC_LIST);
    return st;
}

/* Runs statement id with a candidate's (kh, set) (in the caller's transaction). */
static enum lkv_status gc_run(struct pconn *c, int id, const struct gc_candidate *x)
{
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, id, &st);
    if (s == NULL)
        return st;
    MYSQL_BIND p[2];
    unsigned long len;
    uint64_t set = x->set;
    bind_blob(&p[0], x->kh, x->kh_len, &len);
    bind_u64(&p[1], &set);
    return run(c, s, p);
}

/* One candidate, in one transaction: the main row is locked first (the
 * order every switch takes too), and the set deleted only if the row does
 * not name it. *deleted = 1 when it was. */
static enum lkv_status gc_one(struct pconn *c, const struct gc_candidate *x, int *deleted)
{
    *deleted = 0;
    enum lkv_status st = pconn_begin(c);
    if (st != LKV_OK)
        return st;
    MYSQL_STMT *s = pconn_stmt(c, ST_GC_LOCK, &st);
    MYSQL_BIND p[1], r[2];
    unsigned long klen;
    uint32_t chunks = 0;
    uint64_t set = 0;
    int named = 0;
    if (s != NULL) {
        bind_blob(&p[0], x->key, x->key_len, &klen);
        st = run(c, s, p);
        if (st == LKV_OK) {
            bind_u32(&r[0], &chunks);
            bind_u64(&r[1], &set);
            if (mysql_stmt_bind_result(s, r) != 0) {
                st = pconn_fail(c, s);
            } else {
                int rc = mysql_stmt_fetch(s);
                if (rc == 1)
                    st = pconn_fail(c, s);
                named = rc == 0 && chunks > 0 && set == x->set;
            }
            finish(c, ST_GC_LOCK);
        }
    }
    if (st == LKV_OK && !named && (st = gc_run(c, ST_GC_DELETE, x)) == LKV_OK)
        *deleted = 1;
    if (st == LKV_OK)
        st = gc_run(c, ST_GC_FORGET, x);
    st = end_transaction(c, st);
    if (st != LKV_OK)
        *deleted = 0;
    return st;
}

enum lkv_status store_collect_chunks(struct pconn *c, int grace_s, uint64_t *sets)
{
    enum { GC_BATCH = 64 };
    struct gc_candidate *cand = calloc(GC_BATCH, sizeof(*cand));
    if (cand == NULL)
        return LKV_ENOMEM;
    enum lkv_status st = LKV_OK;
    int n = GC_BATCH;
    *sets = 0;
    while (st == LKV_OK && n == GC_BATCH) {
        if ((st = gc_list(c, grace_s, GC_BATCH, cand, &n)) != LKV_OK)
            break;
        for (int i = 0; st == LKV_OK && i < n; i++) {
            int deleted = 0, attempt = 0;
            do
                st = gc_one(c, &cand[i], &deleted);
            while (st == LKV_EUNAVAIL && pconn_retry_deadlock(c, attempt++));
            *sets += (uint64_t)deleted;
        }
    }
    free(cand);
    return st;
}

/* ---- lazykv-admin verify ------------------------------------------------------ */

enum lkv_status store_verify_buckets(struct pconn *c, const char *top, store_bucket_fn fn,
                                     void *arg)
{
    enum lkv_status st;
    int id = top ? ST_VERIFY_SUB : ST_VERIFY_TOP;
    MYSQL_STMT *s = pconn_stmt(c, id, &st);
    if (s == NULL)
        return st;
    MYSQL_BIND p[1], r[3];
    unsigned long tlen, blen = 0;
    char bucket[8];
    uint64_t count = 0, digest = 0;
    memset(p, 0, sizeof(p));
    if (top)
        bind_blob(&p[0], top, strlen(top), &tlen);
    if ((st = run(c, s, top ? p : NULL)) != LKV_OK)
        return st;
    memset(r, 0, sizeof(r));
    bind_out(&r[0], MYSQL_TYPE_STRING, bucket, sizeof(bucket), &blen);
    bind_u64(&r[1], &count);
    bind_u64(&r[2], &digest);
    if (mysql_stmt_bind_result(s, r) != 0)
        return pconn_fail(c, s);
    int rc;
    while ((rc = mysql_stmt_fetch(s)) == 0) {
        bucket[blen < sizeof(bucket) ? blen : sizeof(bucket) - 1] = '\0';
        fn(bucket, count, digest, arg);
    }
    st = rc == 1 ? pconn_fail(c, s) : LKV_OK;
    finish(c, id);
    return st;
}

enum lkv_status store_verify_rows(struct pconn *c, const char *bucket, store_row_fn fn, void *arg)
{
    enum lkv_status st;
    MYSQL_STMT *s = pconn_stmt(c, ST_VERIFY_ROWS, &st);
    if (s == NULL)
        return st;
    MYSQL_BIND p[1], r[4];
    unsigned long blen, klen = 0, mlen = 0;
    char key[STORE_KEY_MAX + 1], md5[33];
    uint64_t version = 0;
    int deleted = 0;
    bind_blob(&p[0], bucket, strlen(bucket), &blen);
    if ((st = run(c, s, p)) != LKV_OK)
        return st;
    memset(r, 0, sizeof(r));
    bind_out(&r[0], MYSQL_TYPE_BLOB, key, STORE_KEY_MAX, &klen);
    bind_u64(&r[1], &version);
    bind_int(&r[2], &deleted);
    bind_out(&r[3], MYSQL_TYPE_STRING, md5, sizeof(md5), &mlen);
    if (mysql_stmt_bind_result(s, r) != 0)
        return pconn_fail(c, s);
    int rc;
    while ((rc = mysql_stmt_fetch(s)) == 0) {
        key[klen] = '\0';
        md5[mlen < sizeof(md5) ? mlen : sizeof(md5) - 1] = '\0';
        fn(key, klen, version, deleted, md5, arg);
    }
    st = rc == 1 ? pconn_fail(c, s) : LKV_OK;
    finish(c, ST_VERIFY_ROWS);
    return st;
}
