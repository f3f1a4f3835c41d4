/*
 * lane.c -- queues and batched statements of one partition. See lane.h.
 *
 * A batch of unconditional sets is one multi-row upsert that returns each
 * row's new version (INSERT ... ON DUPLICATE KEY UPDATE ... RETURNING), its
 * own transaction. A batch where some request needs the current row (a
 * precondition, PUT's created/replaced, a delete's 404) is a transaction,
 * one step per statement:
 *
 *   W_BEGIN -> W_LOCK -> judge each request -> [W_INSERT] [W_UPSERT]
 *           -> W_COMMIT -> answer
 *
 * W_LOCK reads the rows FOR UPDATE, one equality lookup per key. Keys found
 * with no row at all are then inserted (W_INSERT), the others upserted
 * (W_UPSERT), each returning its version: should another writer create such
 * a key meanwhile, the insert fails as a duplicate and the batch runs
 * again, so a create never overwrites whatever the locking read saw (two
 * writers that both found a key absent normally deadlock on their gap locks
 * first, and the victim runs again). A lone unconditional delete is the
 * single statement W_LONE.
 */
#include "lane.h"

#include <stdlib.h>
#include <string.h>

#include "bind.h"
#include "chunks.h"
#include "clock.h"
#include "rng.h"
#include "partition.h"
#include "version.h"
#include "worker.h"

enum { W_NONE, W_LONE, W_BEGIN, W_LOCK, W_INSERT, W_UPSERT, W_COMMIT, W_ROLLBACK };

_Static_assert(KVSQL_COUNT <= DBCONN_MAX_STMTS, "a connection caches every statement");
_Static_assert(CONFIG_MAX_BATCH <= KVSQL_MANY_MAX, "[server] batch fits a statement");
_Static_assert(LANE_KINDS == PART_STMT_KINDS, "prober.h counts statements by lane kind");

static void kick(struct lane *l);

void lane_init(struct lane *l, struct worker *w, struct prober *prober, int partition,
               enum lane_kind kind, int max_batch, const char *const *sql,
               const struct lkv_config *cfg)
{
    memset(l, 0, sizeof(*l));
    l->worker = w;
    l->prober = prober;
    l->partition = partition;
    l->kind = kind;
    l->max_batch = kind == LANE_LIST || kind == LANE_SCAN || kind == LANE_POLL ? 1
                   : max_batch < 1 ? 1
                   : max_batch > KVSQL_MANY_MAX ? KVSQL_MANY_MAX
                                                : max_batch;
    const struct lkv_partition_conf *p = &cfg->part[partition];
    dbconn_init(&l->conn, partition, p->name, sql, KVSQL_COUNT,
                (unsigned)p->read_timeout * 1000u, (unsigned)p->write_timeout * 1000u,
                worker_watch, l);
    l->connect_timeout_ms = (unsigned)p->connect_timeout * 1000u;
    l->connect.deliver = worker_deliver_connection;
    l->connect.arg = l;
    l->rng = version_now_us() ^ ((uint64_t)(uintptr_t)l << 13) ^ 0x2545f4914f6cdd1dULL;
}

/* ---- answering ------------------------------------------------------------ */

static void answer(struct job *j, enum lkv_status st)
{
    j->st = st;
    j->done(j);
}

/* Answers every queued job with st. The queue is detached first: a done
 * callback may queue new jobs. */
static void fail_queue(struct lane *l, enum lkv_status st)
{
    struct job *j = l->head;
    l->head = l->tail = NULL;
    while (j) {
        struct job *next = j->next;
        answer(j, st);
        j = next;
    }
}

/* Records a batch of n requests that has ended (prober.h part_stats). */
static void count_batch(struct lane *l, int n)
{
    struct part_stats *ps = &l->prober->stats;
    atomic_fetch_sub_explicit(&ps->in_flight, 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&ps->statements[l->kind], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&ps->requests[l->kind], (uint_fast64_t)n, memory_order_relaxed);
    histo_observe(&ps->duration[l->kind], clock_mono_us() - l->started_us);
}

static void count_error(struct lane *l, enum part_error e)
{
    atomic_fetch_add_explicit(&l->prober->stats.errors[e], 1, memory_order_relaxed);
}

/* Ends the batch in flight: each job keeps the status already set in it
 * (st_all overrides it unless LKV_OK), then the next batch may start. */
static void end_batch(struct lane *l, enum lkv_status st_all)
{
    struct job *done[KVSQL_MANY_MAX];
    int n = l->nbatch;
    memcpy(done, l->batch, (size_t)n * sizeof(struct job *));
    l->nbatch = 0;
    l->step = W_NONE;
    l->attempt = 0;
    l->retry_at_us = 0;
    count_batch(l, n);
    /* Before the answers: an answer may submit to this lane and start its
     * next batch at once (lane_submit), whose buffers must not be let go. */
    dbconn_release_buffers(&l->conn);
    for (int i = 0; i < n; i++) {
        done[i]->statements = i == 0;
        answer(done[i], st_all != LKV_OK ? st_all : done[i]->st);
    }
    kick(l);
}

static void run_batch(struct lane *l);
static void retry_later(struct lane *l);

/* The statement of the batch failed with st: a deadlock victim runs again
 * after a pause; a broken connection fails everything queued here too and
 * starts the partition's back-off; anything else fails the batch. */
static void batch_failed(struct lane *l, enum lkv_status st)
{
    count_error(l, dbconn_deadlocked(&l->conn)  ? PART_ERR_DEADLOCK
                   : l->conn.timed_out            ? PART_ERR_TIMEOUT
                   : !dbconn_ready(&l->conn) ||
                           dbconn_faulted(&l->conn) ? PART_ERR_CONNECTION
                                                    : PART_ERR_OTHER);
    if (dbconn_deadlocked(&l->conn) && l->attempt + 1 < PCONN_DEADLOCK_ATTEMPTS) {
        stats_add(worker_stats(l->worker), db_deadlock_retries_total, 1);
        retry_later(l);
        return;
    }
    if (!dbconn_ready(&l->conn) || dbconn_faulted(&l->conn)) {
        prober_note_fault(l->prober);
        dbconn_close(&l->conn);
        end_batch(l, st);
        fail_queue(l, LKV_EUNAVAIL);
        return;
    }
    end_batch(l, st);
}

/* The end of a statement whose rows set each job's status (its row
 * callback): a failure fails the batch, else each job keeps its own. */
static void rows_decided_done(struct dbconn *c, enum lkv_status st, void *arg)
{
    (void)c;
    struct lane *l = arg;
    if (st != LKV_OK) {
        batch_failed(l, st);
        return;
    }
    end_batch(l, LKV_OK);
}

/* ---- reads ---------------------------------------------------------------- */

/* Fills every job of the batch asking for the current row's key. */
static enum lkv_status read_row(MYSQL_STMT *s, void *arg)
{
    struct lane *l = arg;
    int many = l->nbatch > 1;
    const char *key = many ? l->key : l->batch[0]->rec->key;
    size_t klen = many ? l->klen : l->batch[0]->rec->key_len;
    l->row.ctype[l->clen < sizeof(l->row.ctype) ? l->clen : sizeof(l->row.ctype) - 1] = '\0';
    const char *first = NULL;
    for (int i = 0; i < l->nbatch; i++) {
        struct record *r = l->batch[i]->rec;
        if (r->key_len != klen || memcmp(r->key, key, klen) != 0)
            continue;
        memcpy(r->ctype, l->row.ctype, sizeof(r->ctype));
        r->version = l->row.version;
        r->deleted = l->row.deleted;
        r->expires_at = l->expires_null ? 0 : l->row.expires_at;
        r->value_len = l->vlen;
        r->chunks = l->row.chunks;
        r->chunk_version = l->row.chunk_version;
        if (r->chunks > 0)
            r->value_len = (size_t)l->len64; /* v is '': the value is its chunks */
        r->has_digest = !l->digest_null && l->dlen == sizeof(r->digest);
        if (r->has_digest)
            memcpy(r->digest, l->row.digest, sizeof(r->digest));
        if (!r->deleted && record_expired(r, version_now_us())) {
            r->version = record_index(r);
            r->deleted = 1;
        }
        if (r->deleted)
            continue;
        l->batch[i]->st = LKV_OK;
        if (!l->batch[i]->want_value || r->chunks > 0)
            continue;
        r->value = malloc(l->vlen + 1);
        if (r->value == NULL)
            return LKV_ENOMEM;
        if (first) {
            memcpy(r->value, first, l->vlen);
        } else if (l->vlen > 0) {
            MYSQL_BIND vb;
            unsigned long got = 0;
            bind_out(&vb, MYSQL_TYPE_BLOB, r->value, l->vlen + 1, &got);
            if (mysql_stmt_fetch_column(s, &vb, many ? 1 : 0, 0) != 0)
                return LKV_EINTERNAL;
        }
        r->value[l->vlen] = '\0';
        first = r->value;
        if (l->vlen > l->conn.largest_value)
            l->conn.largest_value = l->vlen;
    }
    return LKV_OK;
}

static void read_done(struct dbconn *c, enum lkv_status st, void *arg)
{
    (void)c;
    struct lane *l = arg;
    if (st != LKV_OK) {
        for (int i = 0; i < l->nbatch; i++) {
            free(l->batch[i]->rec->value);
            l->batch[i]->rec->value = NULL;
        }
        batch_failed(l, st);
        return;
    }
    end_batch(l, LKV_OK);
}

static void start_read(struct lane *l)
{
    int n = l->nbatch, width = 1, id = KV_GET, col = 0;
    for (int i = 0; i < n; i++) {
        struct record *r = l->batch[i]->rec;
        r->value = NULL;
        r->version = 0;
        r->deleted = 0;
        r->expires_at = 0;
        r->chunks = 0;
        r->chunk_version = 0;
        l->batch[i]->st = LKV_ENOTFOUND;
    }
    if (n > 1)
        id = kvsql_padded(KV_GET_MANY, n, &width);
    for (int i = 0; i < width; i++) {
        const struct record *q = l->batch[i < n ? i : n - 1]->rec;
        bind_blob(&l->param[i], q->key, q->key_len, &l->plen[i]);
    }
    if (n > 1)
        bind_out(&l->result[col++], MYSQL_TYPE_BLOB, l->key, sizeof(l->key) - 1, &l->klen);
    bind_out(&l->result[col++], MYSQL_TYPE_BLOB, NULL, 0, &l->vlen);
    bind_out(&l->result[col++], MYSQL_TYPE_STRING, l->row.ctype, sizeof(l->row.ctype) - 1,
             &l->clen);
    bind_u64(&l->result[col++], &l->row.version);
    bind_int(&l->result[col++], &l->row.deleted);
    bind_u64_out(&l->result[col++], &l->row.expires_at, &l->expires_null);
    bind_bytes_out(&l->result[col++], l->row.digest, sizeof(l->row.digest), &l->dlen,
                   &l->digest_null);
    bind_u32(&l->result[col++], &l->row.chunks);
    bind_u64(&l->result[col++], &l->row.chunk_version);
    bind_u64(&l->result[col], &l->len64);
    dbconn_exec(&l->conn, id, l->param, l->result, read_row, read_done, l);
}

/* ---- copies --------------------------------------------------------------- */

static int by_key(const void *a, const void *b)
{
    const struct record *x = (*(struct job *const *)a)->rec;
    const struct record *y = (*(struct job *const *)b)->rec;
    int d = memcmp(x->key, y->key, x->key_len < y->key_len ? x->key_len : y->key_len);
    return d ? d : (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/* Binds rec as the LANE_ROW_PARAMS parameters (k, v, ctype, version,
 * deleted, expires_at, digest) from p, using slot i of the lane's scratch arrays;
 * deleted is rec->deleted, or 2 for a refresh (see kvsql.c). */
static void bind_row(struct lane *l, MYSQL_BIND *p, int i, const struct record *rec,
                     uint64_t version, int deleted)
{
    bind_blob(&p[0], rec->key, rec->key_len, &l->plen[4 * i]);
    bind_blob(&p[1], rec->value ? rec->value : "", deleted ? 0 : rec->value_len,
              &l->plen[4 * i + 1]);
    bind_blob(&p[2], rec->ctype, strlen(rec->ctype), &l->plen[4 * i + 2]);
    l->pu64[2 * i] = version;
    bind_u64(&p[3], &l->pu64[2 * i]);
    l->pint[i] = deleted;
    bind_int(&p[4], &l->pint[i]);
    l->pu64[2 * i + 1] = rec->deleted ? 0 : rec->expires_at;
    bind_u64_or_null(&p[5], &l->pu64[2 * i + 1]);
    /* NULL (a delete, a refresh, a write that brought none): readers hash v */
    bind_blob_or_null(&p[6], rec->digest, sizeof(rec->digest), &l->plen[4 * i + 3],
                      rec->has_digest && !deleted);
    if (!rec->deleted && rec->value_len > l->conn.largest_value)
        l->conn.largest_value = rec->value_len;
}

/* Binds the parameters of KV_SWITCH_INSERT, KV_SWITCH_UPSERT and
 * KV_APPLY_CHUNKED for rec, a chunked value, with version (kvsql.h). */
static void bind_chunked_row(struct lane *l, const struct record *rec, uint64_t version)
{
    MYSQL_BIND *p = l->param;
    bind_blob(&p[0], rec->key, rec->key_len, &l->plen[0]);
    bind_blob(&p[1], rec->ctype, strlen(rec->ctype), &l->plen[1]);
    l->pu64[0] = version;
    bind_u64(&p[2], &l->pu64[0]);
    l->pu64[1] = rec->expires_at;
    bind_u64_or_null(&p[3], &l->pu64[1]);
    bind_blob_or_null(&p[4], rec->digest, sizeof(rec->digest), &l->plen[2], rec->has_digest);
    l->pu64[2] = rec->value_len;
    bind_u64(&p[5], &l->pu64[2]);
    l->pint[0] = (int)rec->chunks;
    bind_int(&p[6], &l->pint[0]);
    l->pu64[3] = rec->chunk_version;
    bind_u64(&p[7], &l->pu64[3]);
    bind_blob(&p[8], rec->key, rec->key_len, &l->plen[3]);
    bind_u64(&p[9], &l->pu64[3]);
    bind_int(&p[10], &l->pint[0]);
}

/* A copy of a chunked value: applied only if the set is whole at this
 * partition (a replica whose chunks were not all teed stays as it was;
 * the sync brings it later). The statement returns a row when the set is
 * whole: the replica holds the value now (applied, or already there; or a
 * later one), as an ordinary copy counts. */
static enum lkv_status chunked_copy_row(MYSQL_STMT *s, void *arg)
{
    (void)s;
    struct lane *l = arg;
    l->batch[0]->st = LKV_OK;
    return LKV_OK;
}

/* A multi-row copy: every copy in it holds once the statement ran. */
static void copy_done(struct dbconn *c, enum lkv_status st, void *arg)
{
    struct lane *l = arg;
    for (int i = 0; i < l->nbatch; i++)
        l->batch[i]->st = LKV_OK;
    rows_decided_done(c, st, l);
}

static void start_copy(struct lane *l)
{
    int n = l->nbatch, width = 1, id = KV_APPLY;
    if (l->batch[0]->rec->chunks > 0 && !l->batch[0]->rec->deleted) { /* alone: take_batch */
        bind_chunked_row(l, l->batch[0]->rec, l->batch[0]->rec->version);
        bind_out(&l->result[0], MYSQL_TYPE_BLOB, l->key, sizeof(l->key) - 1, &l->klen);
        l->batch[0]->st = LKV_EUNAVAIL; /* unless a row comes back */
        dbconn_exec(&l->conn, KV_APPLY_CHUNKED, l->param, l->result, chunked_copy_row,
                    rows_decided_done, l);
        return;
    }
    if (n > 1) {
        /* Rows locked in key order: two copy statements never wait for
         * each other in a cycle. */
        qsort(l->batch, (size_t)n, sizeof(struct job *), by_key);
        id = kvsql_padded(KV_APPLY_MANY, n, &width);
    }
    for (int i = 0; i < width; i++) {
        const struct record *r = l->batch[i < n ? i : n - 1]->rec;
        bind_row(l, &l->param[LANE_ROW_PARAMS * i], i, r, r->version, r->deleted);
    }
    dbconn_exec(&l->conn, id, l->param, NULL, NULL, copy_done, l);
}

/* ---- chunks of large values ------------------------------------------------- */

static enum lkv_status chunk_row(MYSQL_STMT *s, void *arg)
{
    struct lane *l = arg;
    struct job *j = l->batch[0];
    if (l->vlen > j->chunk_len)
        return LKV_EINTERNAL; /* SUBSTRING returned more than asked */
    if (l->vlen > 0) {
        MYSQL_BIND vb;
        unsigned long got = 0;
        bind_out(&vb, MYSQL_TYPE_BLOB, j->chunk_buf, (unsigned long)j->chunk_len, &got);
        if (mysql_stmt_fetch_column(s, &vb, 0, 0) != 0)
            return LKV_EINTERNAL;
    }
    j->chunk_len = l->vlen;
    j->st = LKV_OK;
    if (l->vlen > l->conn.largest_value)
        l->conn.largest_value = l->vlen;
    return LKV_OK;
}

static void chunk_done(struct dbconn *c, enum lkv_status st, void *arg)
{
    struct lane *l = arg;
    struct job *j = l->batch[0];
    if (st != LKV_OK && j->chunk_io == CHUNK_PUT && dbconn_duplicate(c)) {
        /* another upload of this key began in the same microsecond (chunks.h):
         * the uploader takes a new set name */
        j->st = LKV_EPRECOND;
        end_batch(l, LKV_OK);
        return;
    }
    if (st != LKV_OK) {
        batch_failed(l, st);
        return;
    }
    end_batch(l, LKV_OK);
}

static void start_chunk(struct lane *l)
{
    struct job *j = l->batch[0];
    const struct record *r = j->rec;
    MYSQL_BIND *p = l->param;
    l->pu64[0] = j->chunk_set;
    l->pint[0] = (int)j->chunk_n;
    if (j->chunk_io == CHUNK_GET) {
        j->st = LKV_ENOTFOUND; /* unless a row comes */
        l->pu64[1] = (uint64_t)j->chunk_from + 1;
        l->pu64[2] = j->chunk_len;
        bind_u64(&p[0], &l->pu64[1]);
        bind_u64(&p[1], &l->pu64[2]);
        bind_blob(&p[2], r->key, r->key_len, &l->plen[0]);
        bind_u64(&p[3], &l->pu64[0]);
        bind_int(&p[4], &l->pint[0]);
        bind_out(&l->result[0], MYSQL_TYPE_BLOB, NULL, 0, &l->vlen);
        dbconn_exec(&l->conn, KV_CHUNK_GET, p, l->result, chunk_row, chunk_done, l);
        return;
    }
    j->st = LKV_OK;
    bind_blob(&p[0], r->key, r->key_len, &l->plen[0]);
    bind_u64(&p[1], &l->pu64[0]);
    bind_int(&p[2], &l->pint[0]);
    bind_blob(&p[3], r->key, r->key_len, &l->plen[1]);
    bind_blob(&p[4], j->chunk_data, j->chunk_len, &l->plen[2]);
    if (j->chunk_len > l->conn.largest_value)
        l->conn.largest_value = j->chunk_len;
    dbconn_exec(&l->conn, j->chunk_io == CHUNK_PUT ? KV_CHUNK_PUT : KV_CHUNK_TEE, p, NULL, NULL,
                chunk_done, l);
}

/* ---- lists ---------------------------------------------------------------- */

static enum lkv_status list_row(MYSQL_STMT *s, void *arg)
{
    (void)s;
    struct lane *l = arg;
    struct job *j = l->batch[0];
    if (l->klen > STORE_KEY_MAX)
        return LKV_OK; /* cannot be a key */
    uint64_t vlen = j->with_lengths ? l->len64 : 0;
    return j->on_key(l->key, l->klen, vlen, j->arg) == 0 ? LKV_OK : LKV_ENOMEM;
}

static void list_done(struct dbconn *c, enum lkv_status st, void *arg)
{
    (void)c;
    struct lane *l = arg;
    if (st != LKV_OK) {
        batch_failed(l, st);
        return;
    }
    l->batch[0]->st = LKV_OK;
    end_batch(l, LKV_OK);
}

static void start_list(struct lane *l)
{
    struct job *j = l->batch[0];
    int np = 0;
    bind_blob(&l->param[np++], j->lower, j->lower_len, &l->plen[0]);
    if (j->upper)
        bind_blob(&l->param[np++], j->upper, j->upper_len, &l->plen[1]);
    l->pu64[0] = version_now_us();
    bind_u64(&l->param[np++], &l->pu64[0]);
    l->limit = j->limit;
    bind_int(&l->param[np], &l->limit);
    bind_out(&l->result[0], MYSQL_TYPE_BLOB, l->key, sizeof(l->key) - 1, &l->klen);
    int id = j->upper ? KV_LIST_RANGE : KV_LIST_FROM;
    if (j->with_lengths) {
        id = j->upper ? KV_LIST_LEN_RANGE : KV_LIST_LEN_FROM;
        bind_u64(&l->result[1], &l->len64);
    }
    dbconn_exec(&l->conn, id, l->param, l->result, list_row, list_done, l);
}

/* ---- scans ----------------------------------------------------------------- */

static enum lkv_status scan_row(MYSQL_STMT *s, void *arg)
{
    (void)s;
    struct lane *l = arg;
    struct job *j = l->batch[0];
    if (l->klen > STORE_KEY_MAX)
        return LKV_OK;
    struct record row = {.key = l->key, .key_len = l->klen, .version = l->row.version,
                         .deleted = l->row.deleted,
                         .expires_at = l->expires_null ? 0 : l->row.expires_at};
    return j->scan->on_row(&row, j->arg) == 0 ? LKV_OK : LKV_ENOMEM;
}

static void start_scan(struct lane *l)
{
    const struct scan_args *a = l->batch[0]->scan;
    for (int i = 0; i < a->nparams; i++) {
        if (a->param[i].blob) {
            bind_blob(&l->param[i], a->param[i].blob, a->param[i].len, &l->plen[i]);
        } else {
            l->pu64[i] = a->param[i].u64;
            bind_u64(&l->param[i], &l->pu64[i]);
        }
    }
    bind_out(&l->result[0], MYSQL_TYPE_BLOB, l->key, sizeof(l->key) - 1, &l->klen);
    bind_u64(&l->result[1], &l->row.version);
    bind_int(&l->result[2], &l->row.deleted);
    bind_u64_out(&l->result[3], &l->row.expires_at, &l->expires_null);
    dbconn_exec(&l->conn, a->stmt, l->param, l->result, scan_row, list_done, l);
}

/* ---- master writes (group commit) ------------------------------------------- */

static int needs_state(const struct job *j)
{
    return j->if_match || j->if_none_match || j->need_created || j->rec->deleted || j->refresh ||
           j->content_addressed || j->rec->chunks > 0;
}

static void write_step(struct dbconn *c, enum lkv_status st, void *arg);

static struct job *job_of_key(struct lane *l, const char *key, size_t len)
{
    for (int i = 0; i < l->nbatch; i++) {
        const struct record *r = l->batch[i]->rec;
        if (r->key_len == len && memcmp(r->key, key, len) == 0)
            return l->batch[i];
    }
    return NULL;
}

static enum lkv_status lock_row(MYSQL_STMT *s, void *arg)
{
    (void)s;
    struct lane *l = arg;
    struct job *j = job_of_key(l, l->key, l->klen);
    if (j) {
        struct record cur = {.version = l->row.version,
                             .expires_at = l->expires_null ? 0 : l->row.expires_at};
        int expired = !l->row.deleted && record_expired(&cur, l->now_us);
        j->cur_row = 1;
        j->cur_exists = !l->row.deleted && !expired;
        j->cur_version = expired ? record_index(&cur) : l->row.version;
        j->cur_expires_at = cur.expires_at;
        j->cur_same_digest = !l->digest_null && l->dlen == sizeof(l->row.digest) &&
                             j->rec->has_digest &&
                             memcmp(l->row.digest, j->rec->digest, sizeof(l->row.digest)) == 0;
    }
    return LKV_OK;
}

/* A row of RETURNING k, version: the version the write got. */
static enum lkv_status version_row(MYSQL_STMT *s, void *arg)
{
    (void)s;
    struct lane *l = arg;
    struct job *j = job_of_key(l, l->key, l->klen);
    if (j && j->included) {
        j->rec->version = l->row.version;
        j->switched = 1;
    }
    return LKV_OK;
}

/* Judges each request on the locked rows; returns how many go on. */
static int judge(struct lane *l)
{
    int n = 0;
    for (int i = 0; i < l->nbatch; i++) {
        struct job *j = l->batch[i];
        int m = version_if_match(j->if_match, j->cur_exists, j->cur_version);
        int nm = version_if_none_match(j->if_none_match, j->cur_exists, j->cur_version);
        j->included = 0;
        if (m < 0 || nm < 0)
            j->st = LKV_EBADREQ;
        else if (m == 0 || nm == 0)
            j->st = LKV_EPRECOND;
        else if ((j->rec->deleted || j->refresh) && !j->cur_exists)
            j->st = LKV_ENOTFOUND;
        else if (j->content_addressed && j->cur_exists && j->cur_same_digest) {
            /* the same content under its own digest: nothing to rewrite */
            j->unchanged = 1;
            j->rec->version = j->cur_version;
            j->rec->expires_at = j->cur_expires_at;
            j->st = LKV_OK;
        } else {
            j->included = 1;
            j->created = !j->cur_exists;
            j->st = LKV_OK;
            n++;
        }
    }
    return n;
}

/* Binds the included jobs whose row was found (fresh = 0: upserts) or not
 * found (fresh = 1: inserts), in key order (the order InnoDB locks them
 * in, so two such statements never wait for each other in a cycle), and
 * the RETURNING columns; returns how many. */
static int bind_writes(struct lane *l, int fresh)
{
    struct job *pick[KVSQL_MANY_MAX];
    int n = 0;
    for (int i = 0; i < l->nbatch; i++) {
        struct job *j = l->batch[i];
        if (j->included && (l->locked && !j->cur_row) == fresh)
            pick[n++] = j;
    }
    if (n > 1)
        qsort(pick, (size_t)n, sizeof(struct job *), by_key);
    for (int i = 0; i < n; i++) {
        struct job *j = pick[i];
        j->rec->expires_at = j->ttl_us && !j->rec->deleted ? l->now_us + j->ttl_us : 0;
        bind_row(l, &l->param[LANE_ROW_PARAMS * i], i, j->rec, l->now_us,
                 j->refresh ? 2 : j->rec->deleted);
    }
    bind_out(&l->result[0], MYSQL_TYPE_BLOB, l->key, sizeof(l->key) - 1, &l->klen);
    bind_u64(&l->result[1], &l->row.version);
    return n;
}

/* A chunked write (always alone in its batch: take_batch) switches its
 * key's main row to the uploaded set, if the set is whole: an insert when
 * no row was found (fresh), else an upsert. 1 when the statement went. */
static int switch_chunked(struct lane *l, int fresh)
{
    struct job *j = l->batch[0];
    if (!j->included || !l->locked || (j->cur_row == 0) != (fresh != 0))
        return 0;
    j->rec->expires_at = j->ttl_us ? l->now_us + j->ttl_us : 0;
    bind_chunked_row(l, j->rec, l->now_us);
    bind_out(&l->result[0], MYSQL_TYPE_BLOB, l->key, sizeof(l->key) - 1, &l->klen);
    bind_u64(&l->result[1], &l->row.version);
    dbconn_exec(&l->conn, fresh ? KV_SWITCH_INSERT : KV_SWITCH_UPSERT, l->param, l->result,
                version_row, write_step, l);
    return 1;
}

static int chunked_batch(const struct lane *l)
{
    return l->nbatch == 1 && l->batch[0]->rec->chunks > 0;
}

/* The next statement after step: inserts, upserts, then the commit of a
 * transaction; skipping what has nothing to do. */
static void write_next(struct lane *l)
{
    int n;
    switch (l->step) {
    case W_LOCK:
        /* Keys found with no row are inserted, never upserted: should
         * another writer create one meanwhile, the insert fails
         * (duplicate) instead of overwriting it, and the batch runs again. */
        l->step = W_INSERT;
        if (chunked_batch(l)) {
            if (switch_chunked(l, 1))
                return;
        } else if ((n = bind_writes(l, 1)) > 0) {
            dbconn_exec(&l->conn, KV_INSERT_MANY + n - 1, l->param, l->result, version_row,
                        write_step, l);
            return;
        }
        __attribute__((fallthrough));
    case W_INSERT:
        l->step = W_UPSERT;
        if (chunked_batch(l)) {
            if (switch_chunked(l, 0))
                return;
        } else if ((n = bind_writes(l, 0)) > 0) {
            dbconn_exec(&l->conn, KV_WRITE_MANY + n - 1, l->param, l->result, version_row,
                        write_step, l);
            return;
        }
        __attribute__((fallthrough));
    case W_UPSERT:
        if (!l->locked) {
            end_batch(l, LKV_OK); /* one statement, committed by itself */
            return;
        }
        l->step = W_COMMIT;
        dbconn_query(&l->conn, "COMMIT", write_step, l);
        return;
    default:
        end_batch(l, LKV_OK);
    }
}

/* Schedules the batch to run again after a random pause. */
static void retry_later(struct lane *l)
{
    uint64_t x = rng_next(&l->rng);
    unsigned max_us = 1000u << (l->attempt < 6 ? l->attempt : 6);
    l->attempt++;
    l->retry_at_us = clock_mono_us() + 1 + x % max_us;
}

static void write_step(struct dbconn *c, enum lkv_status st, void *arg)
{
    (void)c;
    struct lane *l = arg;
    if (l->step == W_ROLLBACK) {
        if (l->redo && l->attempt + 1 < PCONN_DEADLOCK_ATTEMPTS && dbconn_ready(&l->conn)) {
            l->redo = 0;
            retry_later(l);
            return;
        }
        for (int i = 0; l->redo && i < l->nbatch; i++)
            l->batch[i]->st = LKV_EUNAVAIL;
        l->redo = 0;
        end_batch(l, LKV_OK); /* each job holds its answer */
        return;
    }
    if (st != LKV_OK) {
        if (l->locked && dbconn_ready(&l->conn) && !dbconn_deadlocked(&l->conn) &&
            l->step != W_COMMIT && !dbconn_faulted(&l->conn)) {
            /* The transaction is still open: end it before answering, or
             * before running the batch again after a lost insert race. */
            l->redo = l->step == W_INSERT && dbconn_duplicate(&l->conn);
            for (int i = 0; i < l->nbatch; i++)
                l->batch[i]->st = st;
            l->step = W_ROLLBACK;
            dbconn_query(&l->conn, "ROLLBACK", write_step, l);
            return;
        }
        batch_failed(l, st);
        return;
    }
    if ((l->step == W_INSERT || l->step == W_UPSERT) && chunked_batch(l) &&
        l->batch[0]->included && !l->batch[0]->switched) {
        /* The set is not whole (the collector took it, chunks.h): nothing
         * was switched; the old value stays. */
        l->batch[0]->st = LKV_EUNAVAIL;
        l->step = W_ROLLBACK;
        dbconn_query(&l->conn, "ROLLBACK", write_step, l);
        return;
    }
    switch (l->step) {
    case W_BEGIN:
        l->step = W_LOCK;
        for (int i = 0; i < l->nbatch; i++)
            bind_blob(&l->param[i], l->batch[i]->rec->key, l->batch[i]->rec->key_len,
                      &l->plen[i]);
        bind_out(&l->result[0], MYSQL_TYPE_BLOB, l->key, sizeof(l->key) - 1, &l->klen);
        bind_u64(&l->result[1], &l->row.version);
        bind_int(&l->result[2], &l->row.deleted);
        bind_u64_out(&l->result[3], &l->row.expires_at, &l->expires_null);
        bind_bytes_out(&l->result[4], l->row.digest, sizeof(l->row.digest), &l->dlen,
                       &l->digest_null);
        dbconn_exec(&l->conn, KV_LOCK_MANY + l->nbatch - 1, l->param, l->result, lock_row,
                    write_step, l);
        return;
    case W_LOCK:
        if (judge(l) == 0) {
            l->step = W_UPSERT; /* nothing to write: commit, releasing the locks */
            write_next(l);
            return;
        }
        write_next(l);
        return;
    case W_COMMIT:
        end_batch(l, LKV_OK);
        return;
    default:
        write_next(l);
    }
}

/* A lone unconditional delete: one statement, whose row is the tombstone's
 * version; no row means absent. */
static enum lkv_status lone_delete_row(MYSQL_STMT *s, void *arg)
{
    (void)s;
    struct lane *l = arg;
    l->batch[0]->rec->version = l->row.version;
    l->batch[0]->st = LKV_OK;
    return LKV_OK;
}

static void start_write(struct lane *l)
{
    l->now_us = version_now_us();
    l->locked = 0;
    for (int i = 0; i < l->nbatch; i++) {
        struct job *j = l->batch[i];
        j->cur_row = j->cur_exists = j->cur_same_digest = 0;
        j->cur_version = j->cur_expires_at = 0;
        j->unchanged = 0;
        j->switched = 0;
        l->locked |= needs_state(j);
    }
    if (!l->locked) {
        /* Blind sets: one multi-row upsert, its own transaction. */
        judge(l);
        l->step = W_LOCK;
        write_next(l);
        return;
    }
    struct job *j = l->batch[0];
    if (l->nbatch == 1 && j->rec->deleted && !j->if_match && !j->if_none_match) {
        l->step = W_LONE;
        l->pu64[0] = l->now_us;
        bind_u64(&l->param[0], &l->pu64[0]);
        bind_blob(&l->param[1], j->rec->key, j->rec->key_len, &l->plen[0]);
        bind_u64(&l->param[2], &l->pu64[0]);
        bind_out(&l->result[0], MYSQL_TYPE_BLOB, l->key, sizeof(l->key) - 1, &l->klen);
        bind_u64(&l->result[1], &l->row.version);
        j->st = LKV_ENOTFOUND; /* unless a row comes back */
        dbconn_exec(&l->conn, KV_DELETE, l->param, l->result, lone_delete_row, rows_decided_done,
                    l);
        return;
    }
    l->step = W_BEGIN;
    dbconn_query(&l->conn, "START TRANSACTION", write_step, l);
}

/* ---- the queue -------------------------------------------------------------- */

static int same_key(const struct job *a, const struct job *b)
{
    return a->rec->key_len == b->rec->key_len &&
           memcmp(a->rec->key, b->rec->key, a->rec->key_len) == 0;
}

/* Moves the next batch from the queue into l->batch. */
static void take_batch(struct lane *l)
{
    struct job **link = &l->head, *prev = NULL, *old_tail = l->tail;
    size_t bytes = 0;
    int took_tail = 0;
    while (*link && l->nbatch < l->max_batch) {
        struct job *j = *link;
        int skip = 0;
        if ((l->kind == LANE_CHUNK || l->kind == LANE_CHUNK_ODD) && l->nbatch > 0)
            break; /* a chunk a statement */
        if (l->kind == LANE_COPY || l->kind == LANE_WRITE) {
            /* A chunked value's switch goes alone; the others together up
             * to one chunk of value bytes (chunks.h: what every partition's
             * max_allowed_packet must allow). */
            int chunked = j->rec->chunks > 0 && !j->rec->deleted;
            size_t len = chunked || j->rec->deleted ? 0 : j->rec->value_len;
            if (l->nbatch > 0 && (chunked || l->batch[0]->rec->chunks > 0 ||
                                  bytes + len > CHUNKS_STATEMENT_BYTES))
                break;
            bytes += len;
        }
        if (l->kind == LANE_WRITE) {
            /* a second write of a key waits for the next transaction */
            for (int i = 0; i < l->nbatch && !skip; i++)
                skip = same_key(l->batch[i], j);
        }
        if (skip) {
            prev = j;
            link = &j->next;
            continue;
        }
        *link = j->next;
        j->next = NULL;
        took_tail |= j == old_tail;
        l->batch[l->nbatch++] = j;
    }
    /* Taking the old tail means the whole queue was walked: what is left
     * is the skipped jobs, prev the last of them. */
    l->tail = l->head == NULL ? NULL : took_tail ? prev : old_tail;
}

static void run_batch(struct lane *l)
{
    switch (l->kind) {
    case LANE_READ: start_read(l); break;
    case LANE_WRITE: start_write(l); break;
    case LANE_COPY: start_copy(l); break;
    case LANE_LIST: start_list(l); break;
    case LANE_SCAN:
    case LANE_POLL: start_scan(l); break;
    case LANE_CHUNK:
    case LANE_CHUNK_ODD: start_chunk(l); break;
    default: end_batch(l, LKV_EINTERNAL);
    }
}

static void kick(struct lane *l)
{
    if (l->nbatch > 0 || l->conn.busy || l->head == NULL)
        return;
    if (!dbconn_ready(&l->conn)) {
        if (l->connecting) {
            /* Asked already; what queued after a connect timed out gets a
             * full connect_timeout of its own. */
            if (l->connect_deadline_us == 0)
                l->connect_deadline_us =
                    clock_mono_us() + (uint64_t)l->connect_timeout_ms * 1000u;
            return;
        }
        if (prober_backing_off(l->prober)) {
            fail_queue(l, LKV_EUNAVAIL);
            return;
        }
        l->connecting = 1;
        l->connect_deadline_us = clock_mono_us() + (uint64_t)l->connect_timeout_ms * 1000u;
        prober_request(l->prober, &l->connect);
        return;
    }
    take_batch(l);
    if (l->nbatch == 0)
        return;
    l->started_us = clock_mono_us();
    atomic_fetch_add_explicit(&l->prober->stats.in_flight, 1, memory_order_relaxed);
    run_batch(l);
}

void lane_submit(struct lane *l, struct job *j)
{
    j->next = NULL;
    j->statements = 0;
    if (l->tail)
        l->tail->next = j;
    else
        l->head = j;
    l->tail = j;
    kick(l);
}

void lane_connected(struct lane *l)
{
    MYSQL *m = l->delivered;
    l->delivered = NULL;
    l->connecting = 0;
    l->connect_deadline_us = 0;
    if (m == NULL) {
        count_error(l, PART_ERR_CONNECT);
        fail_queue(l, LKV_EUNAVAIL);
        return;
    }
    if (l->ever_connected)
        atomic_fetch_add_explicit(&l->prober->stats.reconnects, 1, memory_order_relaxed);
    l->ever_connected = 1;
    dbconn_attach(&l->conn, m);
    kick(l);
}

uint64_t lane_deadline(const struct lane *l)
{
    if (l->retry_at_us)
        return l->retry_at_us;
    if (l->connecting && l->head && l->connect_deadline_us)
        return l->connect_deadline_us;
    return l->conn.busy ? l->conn.deadline_us : 0;
}

void lane_on_time(struct lane *l, uint64_t now_us)
{
    if (l->retry_at_us && now_us >= l->retry_at_us) {
        l->retry_at_us = 0;
        if (!dbconn_ready(&l->conn)) {
            end_batch(l, LKV_EUNAVAIL);
            return;
        }
        run_batch(l);
        return;
    }
    if (l->connecting && l->head && l->connect_deadline_us &&
        now_us >= l->connect_deadline_us) {
        /* The prober has not connected in time (the partition hangs, or the
         * prober is held by a probe of it): fail what waits, once, and use
         * the connection if it comes after all. */
        l->connect_deadline_us = 0;
        prober_note_fault(l->prober);
        count_error(l, PART_ERR_CONNECT);
        fail_queue(l, LKV_EUNAVAIL);
        return;
    }
    if (l->conn.busy && now_us >= l->conn.deadline_us)
        dbconn_on_timeout(&l->conn);
}

void lane_close(struct lane *l, enum lkv_status st)
{
    dbconn_close(&l->conn);
    if (l->nbatch > 0) {
        for (int i = 0; i < l->nbatch; i++)
            if (l->kind == LANE_READ) {
                free(l->batch[i]->rec->value);
                l->batch[i]->rec->value = NULL;
            }
        struct job *done[KVSQL_MANY_MAX];
        int n = l->nbatch;
        memcpy(done, l->batch, (size_t)n * sizeof(struct job *));
        l->nbatch = 0;
        atomic_fetch_sub_explicit(&l->prober->stats.in_flight, 1, memory_order_relaxed);
        for (int i = 0; i < n; i++)
            answer(done[i], st);
    }
    fail_queue(l, st);
    if (l->delivered) {
        mysql_close(l->delivered);
        l->delivered = NULL;
    }
}
