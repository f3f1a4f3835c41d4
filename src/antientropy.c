/*
 * antientropy.c -- `lazykv-admin verify [--repair]`: finds the keys whose
 * live state differs between partitions without copying tables.
 *
 * Merkle-style, in SQL: each partition reports a digest (count and XOR of
 * 64-bit row digests over key, version, value and content type) of its live
 * rows per bucket of MD5(key)'s first 2 hex digits; only buckets that differ
 * are narrowed to 4 digits, and only 4-digit buckets that differ are read
 * row by row (keys and digests, not values). Tombstones and absent rows are
 * the same live state. --repair copies the winning row (see winner()) to
 * every partition that differs.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "antientropy.h"

#include "buf.h"
#include "codec.h"
#include "config.h"
#include "partition.h"
#include "placement.h"
#include "store.h"

#define TOP_BUCKETS 256

struct digest {
    uint64_t count, xor;
};

/* Digests of one partition at one level, indexed by bucket name. */
struct level {
    struct digest *by_bucket; /* owned: TOP_BUCKETS (top) or 256 entries (sub) */
    int sub;                  /* 1: the last two hex digits index it */
};

static int hexval(const char *h, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        char c = h[i];
        v = v * 16 + (c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : 0);
    }
    return v;
}

static void collect_digest(const char *bucket, uint64_t count, uint64_t digest, void *arg)
{
    struct level *lv = arg;
    size_t len = strlen(bucket);
    int idx = lv->sub ? (len >= 4 ? hexval(bucket + 2, 2) : 0) : hexval(bucket, 2);
    lv->by_bucket[idx].count = count;
    lv->by_bucket[idx].xor = digest;
}

/* One key's row as each partition has it. */
struct keystate {
    char *key;                       /* owned */
    size_t len;
    struct {
        int present;
        uint64_t version;
        int deleted;
        char md5[33];
    } at[CONFIG_MAX_PARTITIONS];
};

struct rowset {
    struct keystate *k; /* owned */
    size_t n, cap;
    int partition;      /* which partition the rows being added come from */
    int failed;
};

static struct keystate *rowset_find(struct rowset *rs, const char *key, size_t len)
{
    for (size_t i = 0; i < rs->n; i++)
        if (rs->k[i].len == len && memcmp(rs->k[i].key, key, len) == 0)
            return &rs->k[i];
    if (rs->n == rs->cap) {
        size_t cap = rs->cap ? rs->cap * 2 : 16;
        struct keystate *p = realloc(rs->k, cap * sizeof(*p));
        if (p == NULL)
            return NULL;
        rs->k = p;
        rs->cap = cap;
    }
    struct keystate *ks = &rs->k[rs->n];
    memset(ks, 0, sizeof(*ks));
    ks->key = malloc(len + 1);
    if (ks->key == NULL)
        return NULL;
    memcpy(ks->key, key, len + 1);
    ks->len = len;
    rs->n++;
    return ks;
}

static void collect_row(const char *key, size_t len, uint64_t version, int deleted,
                        const char *md5, void *arg)
{
    struct rowset *rs = arg;
    struct keystate *ks = rowset_find(rs, key, len);
    if (ks == NULL) {
        rs->failed = 1;
        return;
    }
    ks->at[rs->partition].present = 1;
    ks->at[rs->partition].version = version;
    ks->at[rs->partition].deleted = deleted;
    snprintf(ks->at[rs->partition].md5, sizeof(ks->at[0].md5), "%s", md5);
}

static int live(const struct keystate *ks, int p)
{
    return ks->at[p].present && !ks->at[p].deleted;
}

static int same_live_state(const struct keystate *ks, int a, int b)
{
    if (live(ks, a) != live(ks, b))
        return 0;
    return !live(ks, a) || (ks->at[a].version == ks->at[b].version &&
                            strcmp(ks->at[a].md5, ks->at[b].md5) == 0);
}

struct verifier {
    const struct lkv_config *cfg;
    struct pconn *conn;   /* owned array */
    int n;
    int repair, verbose;
    uint64_t differing, repaired, failed;
    int failed_at;        /* the partition whose statement failed, or -1 */
};

/* A statement at partition p failed: -1, and p remembered for the line
 * verify ends with (its connection's error says why). */
static int partition_failed(struct verifier *v, int p)
{
    v->failed_at = p;
    return -1;
}

/* The partition whose row wins: the highest version; among rows of that
 * version that differ (a hand edit keeps the version), the content most
 * partitions hold, then the master's. */
static int winner(const struct verifier *v, const struct keystate *ks)
{
    int master = placement_master(ks->key, ks->len, v->n), best = -1, best_votes = 0;
    uint64_t top = 0;
    for (int p = 0; p < v->n; p++)
        if (ks->at[p].present && ks->at[p].version > top)
            top = ks->at[p].version;
    for (int p = 0; p < v->n; p++) {
        if (!ks->at[p].present || ks->at[p].version != top)
            continue;
        int votes = 0;
        for (int q = 0; q < v->n; q++)
            votes += ks->at[q].present && ks->at[q].version == top &&
                     ks->at[q].deleted == ks->at[p].deleted &&
                     strcmp(ks->at[q].md5, ks->at[p].md5) == 0;
        if (votes > best_votes || (votes == best_votes && p == master)) {
            best = p;
            best_votes = votes;
        }
    }
    return best;
}

static void repair_key(struct verifier *v, const struct keystate *ks)
{
    int w = winner(v, ks);
    if (w < 0)
        return;
    struct record rec;
    memset(&rec, 0, sizeof(rec));
    enum lkv_status st = store_get(&v->conn[w], ks->key, ks->len, 1, &rec);
    rec.key = ks->key;
    rec.key_len = ks->len;
    if (st == LKV_ENOTFOUND && rec.deleted) {
        rec.value = NULL;
        rec.value_len = 0;
    } else if (st != LKV_OK) {
        v->failed++;
        return;
    }
    for (int p = 0; p < v->n; p++) {
        if (p == w || same_live_state(ks, p, w))
            continue;
        int skipped = 0;
        if (record_chunked(&rec) &&
            store_copy_chunks(&v->conn[w], &v->conn[p], &rec, &skipped) != LKV_OK) {
            v->failed++;
            continue;
        }
        if (store_repair(&v->conn[p], &rec) == LKV_OK)
            v->repaired++;
        else
            v->failed++;
    }
    free(rec.value);
}

static void report_key(struct verifier *v, const struct keystate *ks)
{
    struct buf line = BUF_INIT;
    int ok = buf_puts(&line, "differs: ") == 0 &&
             codec_pct_encode(&line, ks->key, ks->len, 1) == 0;
    for (int p = 0; ok && p < v->n; p++) {
        if (!ks->at[p].present)
            ok = buf_printf(&line, " p%d=absent", p) == 0;
        else
            ok = buf_printf(&line, " p%d=%s@%016" PRIx64 "/%.8s", p,
                            ks->at[p].deleted ? "deleted" : "live", ks->at[p].version,
                            ks->at[p].md5) == 0;
    }
    if (ok)
        printf("%s\n", line.data);
    buf_free(&line);
}

/* Reads a 4-digit bucket from every partition and reports its differences. */
static int check_rows(struct verifier *v, const char *bucket)
{
    struct rowset rs;
    memset(&rs, 0, sizeof(rs));
    int rc = 0;
    for (int p = 0; p < v->n && rc == 0; p++) {
        rs.partition = p;
        if (store_verify_rows(&v->conn[p], bucket, collect_row, &rs) != LKV_OK)
            rc = partition_failed(v, p);
        else if (rs.failed)
            rc = -1; /* out of memory */
    }
    for (size_t i = 0; i < rs.n && rc == 0; i++) {
        const struct keystate *ks = &rs.k[i];
        int differs = 0;
        for (int p = 1; p < v->n; p++)
            differs |= !same_live_state(ks, 0, p);
        if (!differs)
            continue;
        v->differing++;
        report_key(v, ks);
        if (v->repair)
            repair_key(v, ks);
    }
    for (size_t i = 0; i < rs.n; i++)
        free(rs.k[i].key);
    free(rs.k);
    return rc;
}

/* Digests of every partition at one level; the indexes where they differ
 * get differ[i] = 1. */
static int compare_level(struct verifier *v, const char *top, int *differ)
{
    struct digest *d = calloc((size_t)v->n * TOP_BUCKETS, sizeof(*d));
    if (d == NULL)
        return -1;
    int rc = 0;
    for (int p = 0; p < v->n && rc == 0; p++) {
        struct level lv = {d + (size_t)p * TOP_BUCKETS, top != NULL};
        if (store_verify_buckets(&v->conn[p], top, collect_digest, &lv) != LKV_OK)
            rc = partition_failed(v, p);
    }
    for (int b = 0; b < TOP_BUCKETS && rc == 0; b++) {
        differ[b] = 0;
        for (int p = 1; p < v->n; p++)
            if (d[(size_t)p * TOP_BUCKETS + b].count != d[b].count ||
                d[(size_t)p * TOP_BUCKETS + b].xor != d[b].xor)
                differ[b] = 1;
    }
    free(d);
    return rc;
}

static int run_verify(struct verifier *v)
{
    int top_differ[TOP_BUCKETS], sub_differ[TOP_BUCKETS];
    if (compare_level(v, NULL, top_differ) != 0)
        return -1;
    for (int t = 0; t < TOP_BUCKETS; t++) {
        if (!top_differ[t])
            continue;
        char top[3];
        snprintf(top, sizeof(top), "%02x", t);
        if (compare_level(v, top, sub_differ) != 0)
            return -1;
        for (int s = 0; s < TOP_BUCKETS; s++) {
            if (!sub_differ[s])
                continue;
            char bucket[5];
            snprintf(bucket, sizeof(bucket), "%s%02x", top, s);
            if (v->verbose)
                fprintf(stderr, "verify: bucket %s differs\n", bucket);
            if (check_rows(v, bucket) != 0)
                return -1;
        }
    }
    return 0;
}

/* A partition's live row naming a chunk set it does not hold whole
 * (chunks.h): reported, and with --repair completed from another partition
 * holding the same set. */
struct incomplete {
    struct verifier *v;
    int p;
};

static void incomplete_set(const char *key, size_t len, uint32_t chunks, uint32_t held, void *arg)
{
    struct incomplete *in = arg;
    struct verifier *v = in->v;
    struct buf line = BUF_INIT;
    if (buf_puts(&line, "incomplete: ") == 0 && codec_pct_encode(&line, key, len, 1) == 0 &&
        buf_printf(&line, " p%d=%u/%u chunks", in->p, held, chunks) == 0)
        printf("%s\n", line.data);
    buf_free(&line);
    v->differing++;
    if (!v->repair)
        return;
    struct record rec;
    memset(&rec, 0, sizeof(rec));
    if (store_get(&v->conn[in->p], key, len, 0, &rec) != LKV_OK || !record_chunked(&rec)) {
        v->failed++;
        return;
    }
    rec.key = key;
    rec.key_len = len;
    for (int q = 0; q < v->n; q++)
        if (q != in->p && store_complete_chunks(&v->conn[q], &v->conn[in->p], &rec) == LKV_OK) {
            v->repaired++;
            return;
        }
    v->failed++;
}

static int check_chunk_sets(struct verifier *v)
{
    for (int p = 0; p < v->n; p++) {
        struct incomplete in = {v, p};
        if (store_incomplete_sets(&v->conn[p], incomplete_set, &in) != LKV_OK)
            return partition_failed(v, p);
    }
    return 0;
}

/* --repair writes rows and chunk sets, as a sync pass does: it takes the
 * pass lock on every partition, so that no pass (and so no collector,
 * chunks.h) runs while it repairs. 0; ADMIN_LOCKED when a pass holds it,
 * or 1 when a partition fails (said on stderr). Closing the connections
 * releases it. A connection lost meanwhile is not opened again (pconn
 * knows it held the lock): the repair fails on that partition, and says so. */
static int lock_out_sync(struct verifier *v)
{
    char name[160];
    snprintf(name, sizeof(name), STORE_SYNC_LOCK_FMT, v->cfg->table_name);
    for (int p = 0; p < v->n; p++) {
        int got = 0;
        if (store_named_lock(&v->conn[p], name, &got) != LKV_OK) {
            fprintf(stderr, "lazykv-admin: verify: partition %d (%s): %s\n", p,
                    v->cfg->part[p].name, v->conn[p].last_error);
            return 1;
        }
        if (!got) {
            fprintf(stderr, "lazykv-admin: verify --repair: a sync pass is running "
                            "(partition %d holds its lock); nothing done, try again\n", p);
            return ADMIN_LOCKED;
        }
    }
    return 0;
}

int admin_verify(const struct lkv_config *cfg, int repair, int verbose)
{
    struct verifier v = {cfg, NULL, cfg->partitions, repair, verbose, 0, 0, 0, -1};
    struct store_sql sql;
    if (store_sql_build(&sql, cfg->table_name) != 0) {
        fprintf(stderr, "lazykv-admin: out of memory\n");
        return 1;
    }
    v.conn = calloc((size_t)v.n, sizeof(*v.conn));
    int rc = 1;
    if (v.conn == NULL)
        goto out;
    for (int p = 0; p < v.n; p++) {
        enum lkv_status st;
        pconn_init(&v.conn[p], cfg, p, (const char *const *)sql.text, sql.count);
        if (pconn_mysql(&v.conn[p], &st) == NULL) {
            fprintf(stderr, "lazykv-admin: verify: partition %d (%s) unreachable: %s\n", p,
                    cfg->part[p].name, v.conn[p].last_error);
            goto out;
        }
    }
    if (repair && (rc = lock_out_sync(&v)) != 0)
        goto out;
    rc = 1;
    if (run_verify(&v) != 0 || check_chunk_sets(&v) != 0) {
        if (v.failed_at >= 0)
            fprintf(stderr, "lazykv-admin: verify failed: partition %d (%s): %s\n", v.failed_at,
                    cfg->part[v.failed_at].name, v.conn[v.failed_at].last_error);
        else
            fprintf(stderr, "lazykv-admin: verify failed: out of memory\n");
        goto out;
    }
    printf("verify: partitions=%d differing=%" PRIu64 "%s", v.n, v.differing,
           repair ? "" : "\n");
    if (repair)
        printf(" repaired=%" PRIu64 " failed=%" PRIu64 "\n", v.repaired, v.failed);
    rc = (v.differing == 0 || (repair && v.failed == 0)) ? 0 : 1;
out:
    for (int p = 0; v.conn && p < v.n; p++)
        pconn_close(&v.conn[p]);
    free(v.conn);
    store_sql_free(&sql);
    return rc;
}
