/*
 * handlers.h -- what each route and method does: turns a parsed request into
 * a reply (status, headers, body), either at once (errors, /health,
 * /metrics) or through a struct kv_op that a worker runs (kv.h), rendering
 * its result. Knows nothing of libmicrohttpd: server.c collects the request,
 * suspends it while its operation runs, and sends the reply.
 */
#ifndef LKV_HANDLERS_H
#define LKV_HANDLERS_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "buf.h"
#include "digest.h"
#include "download.h"
#include "kv.h"
#include "stream.h"
#include "upload.h"
#include "lkv.h"
#include "uri.h"

enum method { M_GET, M_HEAD, M_POST, M_PUT, M_DELETE, M_OTHER, M_COUNT };

#define REPLY_MAX_HEADERS 16

struct reply {
    unsigned status;
    char *body;                 /* owned (malloc); NULL for no body */
    size_t body_len;
    const char *content_type;   /* ref: a static string or ctype_buf */
    char ctype_buf[256];
    int head_only;              /* HEAD of a raw value: send head_size, no body */
    uint64_t head_size;
    struct download *stream;    /* owned: a chunked value's bytes, sent as they
                                   are read (stream_size of them), or NULL */
    uint64_t stream_size;
    int nheaders;
    struct {
        const char *name;       /* static */
        char *value;            /* owned */
    } header[REPLY_MAX_HEADERS];
};

struct lkv_server;

struct request {
    char *raw_uri;              /* owned: the request target as sent */
    enum method method;
    int begun;                  /* 1 after the first access-handler call */
    struct uri uri;             /* owned contents */
    enum lkv_status uri_status; /* result of uri_parse */
    const char *accept;         /* ref: MHD's header storage, or NULL */
    const char *if_match;       /* ref */
    const char *if_none_match;  /* ref */
    const char *content_type;   /* ref */
    const char *range;          /* ref: Range (a GET of a value), or NULL */
    const char *if_range;       /* ref */
    const char *content_digest; /* ref: a write's Content-Digest, or NULL */
    const char *repr_digest;    /* ref: a write's Repr-Digest */
    const char *content_md5;    /* ref: a write's Content-MD5 */
    char *joined[3];            /* owned: a digest field sent on several
                                   lines, joined (the three above point here
                                   then); NULL otherwise */
    struct buf body;            /* owned: the uploaded value, or its first
                                   chunk while it may go on (chunks.h) */
    struct upload *upload;      /* owned: the body streamed to the master in
                                   chunks, once it passed one chunk; or NULL */
    struct spool *spool;        /* owned: a content-addressed write's body on
                                   disk, once it passed one chunk; or NULL */
    int spool_errno;            /* the spool failed (errno): the rest of the
                                   body is discarded, the answer is 503 */
    uint64_t body_bytes;        /* of the body taken so far */
    struct digest_expect expect; /* what the body of a write must hash to */
    struct digest_hasher hasher; /* owned handles: hashes a POST's or PUT's
                                   body as it arrives (request_body_hash) */
    int hashing;                /* hasher started */
    char ca_key[DIGEST_HEX_LEN + 1]; /* a content-addressed write's key: the
                                   body's SHA-256 in hex (op.rec.key points
                                   here) */
    int ca_declared;            /* ... known from the headers already: the
                                   Content-Digest or Repr-Digest sha-256 the
                                   body must match (its body streams) */
    int too_large;              /* the body passed max_value_size: discarding */
    unsigned long long discarded; /* bytes of it thrown away */
    struct kv_op op;            /* owned contents: the work a worker does */
    int dispatched;             /* op handed to a worker; the connection suspended */
    struct reply reply;         /* owned: the answer to a dispatched op */
    void *conn;                 /* ref: the MHD connection, while suspended */
    struct lkv_server *srv;     /* ref */
    /* authentication ([auth]) */
    const char *authorization;  /* ref: the Authorization header, or NULL */
    char user[AUTH_NAME_MAX + 1]; /* the token's NAME, or "" */
    int health_brief;           /* /health answers {"status"} only: no 'a' token */
    /* for the access log */
    char method_name[16];       /* as sent (cut) */
    char version[16];           /* "HTTP/1.1" */
    const char *referer;        /* ref: MHD's header storage, or NULL */
    const char *user_agent;     /* ref */
    long long arrived;          /* time(2) when it arrived */
    uint64_t started_us;        /* monotonic, when it arrived */
    unsigned status;            /* of the reply sent, 0 before */
    uint64_t bytes_sent;        /* body bytes of the reply */
    int partition;              /* the partition that answered, or -1 */
};

/* Frees a request's owned parts (not the struct). */
void request_free(struct request *req);

/* The first call of a request, its headers in and its body not: answers
 * at once what its headers alone decide, so that no body is read for it,
 * and starts hashing the body of a write. For a POST or PUT of a key, or a
 * content-addressed POST (?key=sha256): a malformed Content-Digest,
 * Repr-Digest or Content-MD5 is 400; a content-addressed write where
 * key_length < 64 is 400. Returns 1 to go on and read the body; 0 with rep
 * filled (400; 503 out of memory; 500 when GnuTLS refuses an algorithm
 * asked for, MD5 in FIPS mode). */
int handle_begin(struct lkv_server *srv, struct request *req, struct reply *rep);

/* Feeds n more bytes of req's body, as server.c takes them in, to the
 * hasher handle_begin started for a write (a body past max_value_size is
 * never hashed: it is discarded). LKV_OK, or LKV_EINTERNAL when the hash
 * failed (the caller answers 500). */
enum lkv_status request_body_hash(struct request *req, const char *data, size_t n);

/* Decides what req needs. Returns 0 with rep filled when the answer is known
 * now; 1 when req->op is ready to run on a worker, after which
 * handle_op_done() renders the answer. Never fails: out-of-memory and
 * backend faults become 503 replies, bugs 500. */
int handle_request(struct lkv_server *srv, struct request *req, struct reply *rep);

/* Whether req's body, once past one chunk, is streamed to its master
 * rather than held whole: a POST or PUT of a key, or a content-addressed
 * write whose headers declare the body's SHA-256 (its key). */
int handle_streams_body(const struct lkv_config *cfg, const struct request *req);

/* The key a streamed body goes to (handle_streams_body said 1): the
 * URI's, or the declared content-addressed key. */
const char *handle_body_key(const struct request *req, size_t *len);

/* Whether req's body, once past one chunk, is spooled to disk until its
 * last byte (spool.h): a content-addressed write that declares no
 * SHA-256, whose key and master are known only then. */
int handle_spools_body(const struct request *req);

/* Renders the reply of req once its operation has run (on the worker's
 * thread). */
void handle_op_done(struct request *req, struct reply *rep);

/* A reply for a request that cannot be handled normally (status is 413,
 * 503, ...), with a problem document. */
void handle_error(struct request *req, struct reply *rep, unsigned status, const char *detail);

void reply_free(struct reply *rep);

/* What req needs of a bearer token (auth.h): the permission of its route
 * and method, and the key or the list's prefix it reaches. A /health
 * request needs no token (server.c answers it briefly without one). */
void handle_auth_need(const struct request *req, struct auth_need *need);

/* The 401 (no or unknown token) or 403 (not allowed) reply. */
void handle_auth_refused(struct request *req, struct reply *rep, enum auth_verdict v);

/* The one mapping from lkv_status to an HTTP status code. */
unsigned http_status_of(enum lkv_status st);

#endif
