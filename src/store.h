/*
 * store.h -- the SQL of lazykv-sync and lazykv-admin (lazykvd's request path
 * has its own, non-blocking: kvsql.h, lane.h), on blocking connections
 * (partition.h).
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
 *   expires_at NULL, or the instant (µs since the epoch) from which a live
 *            row counts as absent (TTL); an expired row's index is
 *            max(version + 1, expires_at), and the sync turns it into a
 *            tombstone of exactly that version (store_expire)
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

/* The version rule of every copy (the sync's and canonical writes'):
 * MariaDB assigns left to right, each expression seeing the columns already
 * assigned, so version comes last and the others compare against the old
 * one. */
#define STORE_APPLY_UPDATE \
    " ON DUPLICATE KEY UPDATE" \
    " v = IF(VALUES(version) > version, VALUES(v), v)," \
    " digest = IF(VALUES(version) > version, VALUES(digest), digest)," \
    " len = IF(VALUES(version) > version, VALUES(len), len)," \
    " chunks = IF(VALUES(version) > version, VALUES(chunks), chunks)," \
    " chunk_version = IF(VALUES(version) > version, VALUES(chunk_version), chunk_version)," \
    " ctype = IF(VALUES(version) > version, VALUES(ctype), ctype)," \
    " deleted = IF(VALUES(version) > version, VALUES(deleted), deleted)," \
    " seq = IF(VALUES(version) > version, 0, seq)," \
    " expires_at = IF(VALUES(version) > version, VALUES(expires_at), expires_at)," \
    " version = GREATEST(version, VALUES(version))"

/* Large values (chunks.h). A chunk written where it may be already: the
 * same (k, set, n) is the same bytes. */
#define STORE_CHUNK_INSERT \
    "INSERT INTO `@T_chunks` (kh, version, n, k, data) VALUES (UNHEX(SHA2(?, 256)), ?, ?, ?, ?)"
#define STORE_CHUNK_COPY STORE_CHUNK_INSERT " ON DUPLICATE KEY UPDATE n = n"
/* A chunked value's main row, inserted (or applied) only when its chunk
 * set is whole at this partition; the count's shared locks hold the set
 * until the commit. Parameters: k, ctype, version, expires_at, digest,
 * len, chunks, set, then k, set, chunks. */
#define STORE_SWITCH_HEAD \
    "INSERT INTO `@T` (k, v, ctype, version, deleted, expires_at, seq, digest, len, chunks," \
    " chunk_version)"
#define STORE_SWITCH_IF_WHOLE \
    " FROM DUAL WHERE (SELECT COUNT(*) FROM `@T_chunks`" \
    " WHERE kh = UNHEX(SHA2(?, 256)) AND version = ?) = ?"
#define STORE_APPLY_CHUNKED \
    STORE_SWITCH_HEAD " SELECT ?, '', ?, ?, 0, ?, 0, ?, ?, ?, ?" STORE_SWITCH_IF_WHOLE \
    STORE_APPLY_UPDATE
#define STORE_NODE_ID_MAX 64

/* Rows one multi-row apply statement of the sync writes, at most: its
 * statements come in every power of two from 1 to 1 << STORE_MANY_LOG, and
 * a batch is cut into them (fewest statements, no padding). Larger
 * statements gain little once a statement's fixed cost is a few per cent
 * of its rows', and each width is one more prepared statement. */
#define STORE_MANY_LOG 8
#define STORE_MANY_MAX (1 << STORE_MANY_LOG)

enum store_stmt {
    ST_GET,          /* value, ctype, version, deleted, expires_at of one key */
    ST_HEAD,         /* the same without the value */
    /* lazykv-sync */
    ST_NODE_ID,      /* this partition's node id */
    ST_EPOCH_LOCK,   /* the last epoch, locked */
    ST_STAMP,        /* give pending rows (seq NULL) an epoch */
    ST_EPOCH_SET,    /* record the new last epoch */
    ST_WM_GET,       /* how far this partition applied a source */
    ST_WM_SET,
    ST_CHANGES,      /* a source's stamped rows after a (seq, k) position */
    ST_TOMBSTONES,   /* tombstones older than a version */
    ST_PURGE,        /* remove a tombstone (not a newer row) */
    ST_GET_LOCK,     /* MariaDB named lock: one sync pass at a time */
    ST_RELEASE_LOCK,
    ST_PENDING,      /* how many rows wait for a stamp, and the oldest version */
    ST_REPAIR,       /* verify --repair: overwrite with the winner */
    ST_VERIFY_TOP,   /* live-row digest per 2-hex-digit hash bucket */
    ST_VERIFY_SUB,   /* the same per 4-digit bucket, within one top bucket */
    ST_VERIFY_ROWS,  /* key, version, deleted, value digest in one 4-digit bucket */
    ST_EXPIRE,       /* turn expired rows into tombstones */
    ST_SCHEMA,       /* does the table have the current schema */
    ST_PACKET,       /* the server's max_allowed_packet */
    ST_ROW_CHUNKS,   /* version, chunks, chunk_version of one key */
    ST_CHUNK_NUMBERS,/* the chunks of a set a partition holds */
    ST_CHUNK_READ,   /* one chunk */
    ST_CHUNK_COPY,   /* one chunk, kept if there */
    ST_APPLY_CHUNKED,/* a copy of a chunked row, if its set is whole */
    ST_GC_LIST,      /* chunk sets that may be garbage, past the grace */
    ST_GC_LOCK,      /* chunks, chunk_version of a key, locked */
    ST_GC_DELETE,    /* a set's chunks */
    ST_GC_FORGET,    /* a set's candidate row */
    ST_INCOMPLETE,   /* live rows naming a set not held whole (verify) */
    ST_APPLY_MANY,   /* versioned upsert of 1 copy; + i for 1 << i rows */
    ST_COUNT = ST_APPLY_MANY + STORE_MANY_LOG + 1
};

/* Value bytes one multi-row write statement carries, at most (a row bigger
 * than this goes alone): the statement must stay under the server's
 * max_allowed_packet whatever the values, and memory bounded. */
#define STORE_MANY_BYTES (1u << 20) /* CHUNKS_STATEMENT_BYTES (chunks.h) */

/* The texts of all statements for one table name. Read-only once built. */
struct store_sql {
    char *text[PCONN_MAX_STMTS]; /* owned */
    int count;
};

/* Builds the statement texts for table (a validated identifier). 0 or -1. */
int store_sql_build(struct store_sql *sql, const char *table);
void store_sql_free(struct store_sql *sql);

/* head, then count copies of group separated by sep, then tail, with each
 * "@T" expanded to table: the multi-row statements. Malloc'd, or NULL. */
char *store_sql_join(const char *table, const char *head, const char *group, const char *sep,
                     int count, const char *tail);

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
    uint64_t version;           /* an expired row's read: its index */
    int deleted;                /* an expired row's read: 1 */
    uint64_t expires_at;        /* 0: none */
    int has_digest;             /* digest holds the value's SHA-256: a write's,
                                   computed as its body arrived; a read's, as
                                   stored (rows from before schema 3 have none) */
    unsigned char digest[32];
    uint32_t chunks;            /* 0: inline (value, value_len); else a
                                   chunked value (chunks.h) of value_len
                                   bytes, value NULL: the chunks of set
                                   chunk_version */
    uint64_t chunk_version;
};

/* Whether a live row with rec's expiry has expired at now_us. */
static inline int record_expired(const struct record *rec, uint64_t now_us)
{
    return rec->expires_at != 0 && rec->expires_at <= now_us;
}

/* The index of an expired row: above its version and no earlier than the
 * instant it expired; the tombstone the sync makes of it has this version. */
static inline uint64_t record_index(const struct record *rec)
{
    return rec->version + 1 > rec->expires_at ? rec->version + 1 : rec->expires_at;
}

/* Reads key as stored: an expired row is read as the live row it still is
 * (out->expires_at tells; the sync turns it into a tombstone). With
 * want_value, out->value is malloc'd (caller frees). A tombstone or a
 * missing row is LKV_ENOTFOUND (out->version is then the tombstone's
 * version, or 0). */
enum lkv_status store_get(struct pconn *c, const char *key, size_t key_len, int want_value,
                          struct record *out);

/* ---- lazykv-sync ---------------------------------------------------------- */

/* Rows read from a source, owned by the batch. */
struct batch {
    struct record *rec;   /* owned array; each key and value malloc'd */
    uint64_t *seq;        /* owned: each row's seq */
    size_t n, cap;
    size_t bytes;         /* sum of key and value lengths */
};

void batch_clear(struct batch *b);
void batch_free(struct batch *b);

/* A (seq, k) position in a source's change order. */
struct position {
    uint64_t seq;
    char key[STORE_KEY_MAX + 1];
    size_t key_len;
};

/* The partition's max_allowed_packet, in bytes. */
enum lkv_status store_max_packet(struct pconn *c, uint64_t *bytes);

/* Reads the partition's node id (NUL-terminated) into id. */
enum lkv_status store_node_id(struct pconn *c, char id[STORE_NODE_ID_MAX + 1]);

/* Checks that the partition's table (named table) has the current schema:
 * *old = 1 when it exists without the expires_at column (a table of an
 * earlier release, which lazykv-admin init upgrades), else 0 (a missing
 * table is not old: the statements that need it report it). */
enum lkv_status store_check_schema(struct pconn *c, const char *table, int *old);

/* The name of the MariaDB named lock that makes sync passes (and
 * lazykv-admin verify --repair) on table exclusive. */
#define STORE_SYNC_LOCK_FMT "lazykv-sync:%s"

/* Takes (1) or finds busy (0) the named lock; *got says which. */
enum lkv_status store_named_lock(struct pconn *c, const char *name, int *got);
enum lkv_status store_named_unlock(struct pconn *c, const char *name);

/* Stamps up to limit pending rows (seq NULL) with a new epoch, in one
 * set-based UPDATE over the NULL range of by_seq and one transaction (run
 * again when InnoDB picks it as a deadlock victim against lazykvd's writes
 * or the sync's own applies). *stamped is the number of rows (0: nothing
 * was pending). */
enum lkv_status store_stamp(struct pconn *c, int limit, uint64_t *stamped);

/* Turns up to limit live rows written here (not copies: see sync.h) that
 * expired at or before now (µs, the clock of version_now_us) into
 * tombstones, in one statement (its own transaction): version
 * max(version + 1, expires_at), the row's index; expires_at NULL;
 * seq NULL, so the next stamp propagates it and makes it a tombstone of
 * this source that the purge finds (store_tombstones). *expired is the
 * number of rows (below limit: none is left). */
enum lkv_status store_expire(struct pconn *c, uint64_t now, int limit, uint64_t *expired);

/* How far target has applied source_id; (0, "") when never. */
enum lkv_status store_watermark(struct pconn *target, const char *source_id,
                                struct position *pos);

/* Appends to b the source's stamped rows after pos in (seq, k) order: at
 * most limit rows, stopping early once b->bytes reaches max_bytes; one
 * statement, a range scan of by_seq in index order (no sort). *more = 1
 * when it stopped at a limit (the source may hold more). The order is
 * checked row by row: rows out of (seq, k) order (a plan that does not
 * follow the index) are LKV_EINTERNAL, with source->last_error set. */
enum lkv_status store_read_changes(struct pconn *source, const struct position *pos, int limit,
                                   long long max_bytes, struct batch *b, int *more);

/* 1 when (seq, key) is at or before pos in a source's change order. */
int position_covers(const struct position *pos, uint64_t seq, const char *key, size_t len);

/* Moves pos to row i of b. */
void position_set(struct position *pos, const struct batch *b, size_t i);

/* Applies rows [from, b->n) of b at target (version rule, see
 * STORE_APPLY_UPDATE) in multi-row statements of at most STORE_MANY_MAX
 * rows and STORE_MANY_BYTES value bytes, and moves target's watermark for
 * source_id to b's last row, in one transaction, run again when InnoDB
 * picks it as a deadlock victim. Nothing to do when from >= b->n. */
enum lkv_status store_apply_batch(struct pconn *target, const struct batch *b, size_t from,
                                  const char *source_id);

/* Appends to b (keys and versions only) up to limit of the source's own
 * stamped tombstones with a version below before. */
enum lkv_status store_tombstones(struct pconn *c, uint64_t before, int limit, struct batch *b);

/* Removes key's tombstone if its version is <= version (never a newer row). */
enum lkv_status store_purge(struct pconn *c, const char *key, size_t key_len, uint64_t version);

/* The rows waiting for a stamp (seq NULL): how many, and the oldest
 * version among them (0 when none). */
enum lkv_status store_pending(struct pconn *c, uint64_t *rows, uint64_t *oldest_version);

/* Overwrites key with rec unless the stored version is newer (verify). A
 * chunked rec's set must be whole at c first (store_copy_chunks), and is
 * applied only over a lower version. */
enum lkv_status store_repair(struct pconn *c, const struct record *rec);

/* ---- large values (chunks.h) ---------------------------------------------------- */

/* Whether rec is a live chunked value (its value is its chunks). */
static inline int record_chunked(const struct record *rec)
{
    return rec->chunks > 0 && !rec->deleted;
}

/* The version, chunk count and set of key's row at c (*found = 0: none). */
enum lkv_status store_row_chunks(struct pconn *c, const char *key, size_t key_len, int *found,
                                 uint64_t *version, uint32_t *chunks, uint64_t *set);

/* Copies to target the chunks of rec's set (a chunked row read at source)
 * that target does not hold, one at a time (one chunk in memory). Nothing
 * is copied, and *skipped = 1, when target's row is already at rec's
 * version or newer, or when the source row has moved on and its set is
 * gone (a later change carries the new value). A chunk missing at a source
 * that still names the set is LKV_EINTERNAL with source->last_error set. */
enum lkv_status store_copy_chunks(struct pconn *source, struct pconn *target,
                                  const struct record *rec, int *skipped);

/* The same for verify --repair of a set found incomplete at target (whose
 * main row names it): the chunks it lacks are copied whatever the versions. */
enum lkv_status store_complete_chunks(struct pconn *source, struct pconn *target,
                                      const struct record *rec);

/* Calls fn for each live row of c that names a chunk set it does not hold
 * whole (chunks: how many the row names; held: how many are there). fn may
 * run statements on c; one that loses c's connection ends the walk with
 * LKV_EUNAVAIL. */
typedef void (*store_incomplete_fn)(const char *key, size_t len, uint32_t chunks, uint32_t held,
                                    void *arg);
enum lkv_status store_incomplete_sets(struct pconn *c, store_incomplete_fn fn, void *arg);

/* The collector: deletes the chunk sets of c that no main row names and
 * that became candidates more than grace_s seconds ago (chunks.h); *sets
 * is how many. */
enum lkv_status store_collect_chunks(struct pconn *c, int grace_s, uint64_t *sets);

/* ---- lazykv-admin verify ------------------------------------------------------ */

/* Calls fn for each hash bucket of live rows: its name (hex digits of
 * MD5(k)), row count and XOR of 64-bit row digests (key, version, value,
 * content type, expiry). With top NULL the buckets are the 256 2-digit
 * ones; with top = "ab" the 4-digit ones under it. */
typedef void (*store_bucket_fn)(const char *bucket, uint64_t count, uint64_t digest, void *arg);
enum lkv_status store_verify_buckets(struct pconn *c, const char *top, store_bucket_fn fn,
                                     void *arg);

/* Calls fn for every row (tombstones included) in a 4-digit bucket;
 * value_md5 is the MD5 of its value, content type and expiry. */
typedef void (*store_row_fn)(const char *key, size_t len, uint64_t version, int deleted,
                             const char *value_md5, void *arg);
enum lkv_status store_verify_rows(struct pconn *c, const char *bucket, store_row_fn fn, void *arg);

#endif
