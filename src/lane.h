/*
 * lane.h -- the statements of one kind to one partition from one worker:
 * a queue, one connection, one statement (or transaction) in flight.
 *
 * Requests that arrive while a lane's statement is in flight queue, and the
 * next statement carries as many of them as fit (up to [server] batch):
 * the way a database groups commits, without ever waiting for a batch to
 * fill. Four kinds:
 *
 *   LANE_READ   point reads: SELECT ... WHERE k IN (...)
 *   LANE_WRITE  master writes, group-committed: one transaction locks the
 *               rows that need checking (SELECT ... FOR UPDATE), judges each
 *               request's preconditions, upserts the passing ones in one
 *               multi-row statement, reads their new versions back and
 *               commits; a request alone and unconditional is one statement
 *   LANE_COPY   copies of canonical writes: a multi-row versioned upsert
 *   LANE_LIST   one list page at a time
 *   LANE_SCAN   one scan of changed rows at a time (lists' tokens)
 *   LANE_POLL   the same, for the watch hub's change scans, so that they
 *               never queue behind tokens (watch.h)
 *   LANE_CHUNK  one chunk of a large value at a time: an upload's (to the
 *               master, or teed to a replica), or a download's even chunks
 *   LANE_CHUNK_ODD  a download's odd chunks: with the lane above, a
 *               download reads two chunks at once (download.h)
 *
 * A batch never holds two writes of one key: the second waits for the next
 * transaction, so writes of a key are applied in arrival order. Since every
 * write of a key goes through one worker (worker.h routes by key), one
 * lazykvd never sends two conflicting writes of a key at once.
 *
 * Faults: a connection fault (or timeout) fails the batch in flight and
 * every request queued on the lane with LKV_EUNAVAIL at once, and starts
 * the partition's back-off (prober.h), during which the other lanes fail
 * their requests fast instead of connecting. A deadlock victim is run again
 * after a random pause (at most PCONN_DEADLOCK_ATTEMPTS tries).
 */
#ifndef LKV_LANE_H
#define LKV_LANE_H

#include <mysql.h>
#include <stdint.h>

#include "dbconn.h"
#include "kvsql.h"
#include "lkv.h"
#include "prober.h"
#include "store.h"

/* Bound parameters of one written row: k, v, ctype, version, deleted,
 * expires_at, digest. */
#define LANE_ROW_PARAMS 7

enum lane_kind {
    LANE_READ,
    LANE_WRITE,
    LANE_COPY,
    LANE_LIST,
    LANE_SCAN,
    LANE_POLL,
    LANE_CHUNK, /* one chunk of a large value written or read (chunks.h) */
    LANE_CHUNK_ODD, /* the same for the odd chunks a download reads, so that
                       it reads two at once */
    LANE_KINDS
};

/* What a LANE_CHUNK job does. */
enum chunk_io { CHUNK_PUT, CHUNK_TEE, CHUNK_GET };

/* A scan (LANE_SCAN): one statement of rows (k, version, deleted,
 * expires_at) with its parameters, each a blob (blob != NULL) or a number. */
#define SCAN_MAX_PARAMS 8
struct scan_args {
    int stmt;                   /* a kvsql id */
    int nparams;
    struct {
        const char *blob;       /* ref */
        size_t len;
        uint64_t u64;
    } param[SCAN_MAX_PARAMS];
    /* Each row (key a ref valid during the call); returns 0 to go on. */
    int (*on_row)(const struct record *row, void *arg);
};

struct job;
/* Called on the worker thread when the job is answered (j->st set). */
typedef void (*job_done_fn)(struct job *j);
/* A list job's keys, in order, with their value's length when the job
 * asked for it (else 0); returns 0 to go on. */
typedef int (*job_key_fn)(const char *key, size_t len, uint64_t value_len, void *arg);

struct job {
    struct job *next;           /* in a lane's queue */
    struct record *rec;         /* ref: reads fill it (value malloc'd, the
                                   caller frees); writes and copies read it,
                                   and a write sets its version */
    /* reads */
    int want_value;             /* 0: only the value's length (a HEAD) */
    /* writes */
    int need_created;           /* a PUT: tell created from replaced */
    uint64_t ttl_us;            /* a set's time to live, or 0; the lane
                                   sets rec->expires_at from it */
    int refresh;                /* new expiry only (value kept); the key
                                   must be live */
    int content_addressed;      /* a live row already holding rec's digest
                                   is left alone (unchanged = 1) */
    int unchanged;              /* out */
    const char *if_match;       /* ref, or NULL */
    const char *if_none_match;  /* ref, or NULL */
    int created;                /* out: no live row existed before */
    /* lists */
    const char *lower;          /* ref: keys >= lower */
    size_t lower_len;
    const char *upper;          /* ref: keys < upper, or NULL */
    size_t upper_len;
    int limit;
    int with_lengths;           /* on_key gets each value's length */
    job_key_fn on_key;
    /* scans */
    const struct scan_args *scan; /* ref */
    /* chunks: chunk n of set chunk_set of rec->key */
    enum chunk_io chunk_io;
    uint64_t chunk_set;
    uint32_t chunk_n;
    const char *chunk_data;     /* put, tee: ref, chunk_len bytes */
    size_t chunk_len;           /* get: bytes wanted from chunk_from; out:
                                   bytes read into chunk_buf */
    uint32_t chunk_from;        /* get: the first byte wanted */
    char *chunk_buf;            /* get: ref, chunk_len bytes of room */
    /* every kind */
    enum lkv_status st;         /* out */
    int statements;             /* out: 1 when this job's statement ran it
                                   (0: another job's statement carried it) */
    job_done_fn done;
    void *arg;                  /* ref: the caller's */
    /* lane internals */
    int cur_row;                /* a row, live or tombstone, was found */
    int cur_exists;             /* ... and it is live (not expired) */
    uint64_t cur_version;       /* its version, or an expired row's index */
    uint64_t cur_expires_at;    /* its expiry (0: none) */
    int cur_same_digest;        /* it stores rec's digest */
    int switched;               /* a chunked write's main row was written */
    int included;
};

struct worker;

struct lane {
    struct worker *worker;          /* ref: the owner */
    struct prober *prober;          /* ref: the partition's */
    int partition;
    enum lane_kind kind;
    int max_batch;
    struct dbconn conn;
    struct prober_req connect;      /* a connection asked of the prober */
    int connecting;
    uint64_t connect_deadline_us;   /* queued requests fail if not connected by then */
    unsigned connect_timeout_ms;
    MYSQL *delivered;               /* set by the prober's thread (under the
                                       worker's inbox lock), taken by lane_connected */
    struct lane *next_delivered;    /* in the worker's inbox */
    struct job *head, *tail;        /* queued */
    struct job *batch[KVSQL_MANY_MAX]; /* in flight */
    int nbatch;
    int step;                       /* of a write transaction (lane.c) */
    int locked;                     /* the transaction read its rows FOR UPDATE */
    int nincluded;                  /* requests it writes */
    int redo;                       /* run the batch again after its rollback */
    int attempt;                    /* deadlock retries of this batch */
    uint64_t retry_at_us;           /* 0, or when to run the batch again */
    uint64_t now_us;                /* the batch's clock for new versions */
    uint64_t started_us;            /* monotonic: when the batch in flight began */
    int ever_connected;             /* a connection was delivered before (reconnects) */
    uint64_t rng;                   /* retry jitter */
    /* bound parameters and result buffers of the statement in flight */
    MYSQL_BIND param[KVSQL_MANY_MAX * LANE_ROW_PARAMS];
    unsigned long plen[KVSQL_MANY_MAX * 4];
    int pint[KVSQL_MANY_MAX];
    uint64_t pu64[KVSQL_MANY_MAX * 2];
    int limit;
    MYSQL_BIND result[10];
    my_bool expires_null;
    my_bool digest_null;
    unsigned long dlen;
    char key[STORE_KEY_MAX + 1];
    unsigned long klen, vlen, clen;
    uint64_t len64;                 /* a list's LENGTH(v); a read's length */
    struct record row;
};

/* Sets lane up; connects nothing yet. sql: kvsql texts. */
void lane_init(struct lane *l, struct worker *w, struct prober *prober, int partition,
               enum lane_kind kind, int max_batch, const char *const *sql,
               const struct lkv_config *cfg);

/* Queues j; it is answered through j->done (perhaps before this returns,
 * e.g. when the partition is backing off). */
void lane_submit(struct lane *l, struct job *j);

/* The prober delivered the connection this lane asked for (the worker
 * calls this on its own thread). */
void lane_connected(struct lane *l);

/* The worker's clock reached l's earliest deadline (see lane_deadline). */
void lane_on_time(struct lane *l, uint64_t now_us);

/* The earliest instant l must be woken at (a statement's timeout, a
 * retry), or 0 for none. */
uint64_t lane_deadline(const struct lane *l);

/* Answers every queued and in-flight job with st and closes the
 * connection (shutdown). */
void lane_close(struct lane *l, enum lkv_status st);

#endif
