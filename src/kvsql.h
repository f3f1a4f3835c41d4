/*
 * kvsql.h -- the statements of lazykvd's request path, by id, and the
 * widths of their multi-row forms.
 *
 * Texts are built once at start-up from constant templates and the
 * configured table name; request bytes only reach the database as bound
 * parameters (make lint checks). The sync's and verify's statements are in
 * store.h. Multi-row statements that only read, or that write idempotently
 * (versioned copies), come in widths 2, 4, 8, 16 and are padded with their
 * last row; master writes and their locking reads come in every width
 * 1..KVSQL_MANY_MAX, because a repeated row would be written twice, and a
 * key is looked up once.
 */
#ifndef LKV_KVSQL_H
#define LKV_KVSQL_H

#define KVSQL_MANY_MAX 16
#define KVSQL_WIDTHS 4 /* 2, 4, 8, 16 */
#define KVSQL_CHANGES_MAX 10000 /* rows of each half of KV_CHANGES, at most */

enum kvsql_id {
    KV_GET,           /* v, ctype, version, deleted, expires_at, digest, chunks,
                         chunk_version, length of one key */
    KV_DELETE,        /* a lone unconditional delete: now, k, now; RETURNING k,
                         version (no row: absent) */
    KV_APPLY,         /* versioned upsert of one copy */
    KV_LIST_FROM,     /* live keys >= lower, at now, ordered, limit */
    KV_LIST_RANGE,    /* live keys >= lower and < upper, at now, ordered, limit */
    KV_LIST_LEN_FROM, /* KV_LIST_FROM with each value's length */
    KV_LIST_LEN_RANGE,
    KV_CHANGES,       /* watch.c's poll: rows changed since an instant, or
                         expired in a window: since, since, from, to */
    KV_PREFIX_FROM,   /* rows >= lower whose index passed T: the state of a
                         list's token (watch.h): lower, T, lower, T, T, now */
    KV_PREFIX_RANGE,  /* the same within [lower, upper): lower, upper, T,
                         lower, upper, T, T, now */
    /* large values (chunks.h) */
    KV_CHUNK_PUT,     /* a chunk of a master's upload: k, set, n, k, data */
    KV_CHUNK_TEE,     /* the same at a replica (a chunk already there is kept) */
    KV_CHUNK_GET,     /* SUBSTRING of a chunk: from (1-based), count, k, set, n */
    KV_SWITCH_INSERT, /* a chunked value's main row, if its set is complete:
                         k, ctype, version, expires_at, digest, len, chunks,
                         set, then k, set, chunks; RETURNING k, version */
    KV_SWITCH_UPSERT, /* the same over a locked row (WRITE_UPDATE) */
    KV_APPLY_CHUNKED, /* a copy of a chunked row, if its set is complete:
                         KV_SWITCH_INSERT's parameters, version the copy's;
                         RETURNING k when the set is complete */
    KV_GET_MANY,      /* k + KV_GET's columns; + i for width 2 << i */
    KV_APPLY_MANY = KV_GET_MANY + KVSQL_WIDTHS,    /* copies, padded */
    KV_LOCK_MANY = KV_APPLY_MANY + KVSQL_WIDTHS,   /* k, version, deleted, expires_at FOR UPDATE;
                                                      + n - 1 for n distinct keys */
    KV_WRITE_MANY = KV_LOCK_MANY + KVSQL_MANY_MAX, /* master upserts RETURNING k, version;
                                                      + n - 1 for n rows */
    KV_INSERT_MANY = KV_WRITE_MANY + KVSQL_MANY_MAX, /* inserts of keys found absent,
                                                        RETURNING k, version; + n - 1 */
    KVSQL_COUNT = KV_INSERT_MANY + KVSQL_MANY_MAX
};

struct kvsql {
    char *text[KVSQL_COUNT]; /* owned */
};

/* Builds every text for table (a validated identifier). 0, or -1 when out
 * of memory (nothing left allocated). */
int kvsql_build(struct kvsql *sql, const char *table);
void kvsql_free(struct kvsql *sql);

/* The id of a padded family (KV_GET_MANY, KV_APPLY_MANY) for n rows,
 * 2 <= n <= KVSQL_MANY_MAX; *width is the
 * statement's row count (n rounded up to a power of two). */
int kvsql_padded(int base, int n, int *width);

#endif
