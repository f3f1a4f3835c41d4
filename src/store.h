/*
 * store.h -- every SQL statement lazykv runs against a partition's table.
 *
 * The statement texts are built once at start-up from constant templates and
 * the configured table name (a validated identifier, see config.c); request
 * bytes only ever reach the database as bound parameters. The table layout
 * is in sql/schema.sql; the meaning of its columns:
 *
 *   k        the key (1..key_length bytes, no NUL)
 *   v        the value (empty for a tombstone)
 *   ctype    the Content-Type it was written with
 *   version  hybrid logical clock, see version.h; never decreases per key
 *   deleted  1 for a tombstone (a delete that still has to propagate)
 *   seq      change tracking for lazykv-sync: NULL = written here and not yet
 *            stamped; > 0 = the sync epoch that stamped it; 0 = a copy
 *            received from another partition (propagated by its origin)
 */
#ifndef LKV_STORE_H
#define LKV_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "lkv.h"
#include "partition.h"

#define STORE_CTYPE_MAX 255
#define STORE_KEY_MAX 3072

enum store_stmt {
    ST_GET,          /* value, ctype, version, deleted of one key */
    ST_HEAD,         /* the same without the value */
    ST_LOCK,         /* version, deleted FOR UPDATE */
    ST_SET,          /* upsert a live value at the master */
    ST_DELETE,       /* turn a live row into a tombstone at the master */
    ST_APPLY,        /* versioned upsert of a copy (replicas, sync) */
    ST_LIST_FROM,    /* live keys >= lower, ordered */
    ST_LIST_RANGE,   /* live keys >= lower and < upper, ordered */
    ST_COUNT
};

/* The texts of all statements for one table name. Read-only once built. */
struct store_sql {
    char *text[PCONN_MAX_STMTS]; /* owned */
    int count;
};

/* Builds the statement texts for table (a validated identifier). 0 or -1. */
int store_sql_build(struct store_sql *sql, const char *table);
void store_sql_free(struct store_sql *sql);

/* Replaces each "@T" in tmpl by name (a validated identifier: a table or
 * database name from the config). Returns a malloc'd string, or NULL. */
char *store_sql_expand(const char *tmpl, const char *name);

/* One row, as read or as to be written. */
struct record {
    const char *key;            /* ref */
    size_t key_len;
    char *value;                /* owned when read by store_get (free()) */
    size_t value_len;
    char ctype[STORE_CTYPE_MAX + 1];
    uint64_t version;
    int deleted;
};

/* Reads key. With want_value, out->value is malloc'd (caller frees). A
 * tombstone or a missing row is LKV_ENOTFOUND (out->version is then the
 * tombstone's version, or 0). */
enum lkv_status store_get(struct pconn *c, const char *key, size_t key_len, int want_value,
                          struct record *out);

/* A precondition checked under the row lock before a write: cur is the
 * current live row or NULL when absent or deleted. Returns LKV_OK to go on,
 * LKV_EPRECOND to write nothing. */
typedef enum lkv_status (*store_check_fn)(const struct record *cur, void *arg);

struct write_result {
    uint64_t version; /* the version written */
    int created;      /* 1 when no live row existed before */
};

/* Writes rec (key, value, ctype; deleted=1 for a delete) at the master with a
 * new version >= now_us. Without check and for a set, one statement and
 * result->created is not computed (set to 1); with check, or for PUT
 * semantics (need_created), it runs in a transaction with the row locked.
 * A delete of a missing or deleted key is LKV_ENOTFOUND. */
enum lkv_status store_write(struct pconn *c, const struct record *rec, uint64_t now_us,
                            int need_created, store_check_fn check, void *arg,
                            struct write_result *result);

/* Applies a copy of a row (from the master or the sync): kept only if its
 * version is higher than the stored one, so replays and reorderings are
 * no-ops. The row is marked as a copy (seq = 0). */
enum lkv_status store_apply(struct pconn *c, const struct record *rec);

/* Calls fn for each live key >= lower (and < upper unless upper is NULL), in
 * bytewise order, at most limit keys. fn returns 0 to go on, 1 to stop. */
typedef int (*store_key_fn)(const char *key, size_t len, void *arg);
enum lkv_status store_list(struct pconn *c, const char *lower, size_t lower_len,
                           const char *upper, size_t upper_len, int limit,
                           store_key_fn fn, void *arg);

#endif
