/*
 * lkv_test.c -- the driver of liblazykv's integration tests
 * (tests/integration/test_client_lib.py). A program written only from
 * <lazykv.h>, libc and pthreads, as a user of the library would write one.
 *
 *   lkv_test ENDPOINTS [--timeout MS] [--lazy] [--token T] SUBCOMMAND [ARGS]
 *
 * Every subcommand prints exact lines on stdout (line-buffered, so a test
 * can read a long-running one as it goes) and exits:
 *   0  the operation returned LKV_OK (a scenario: every check held);
 *   1  the operation returned another lkv_err (its line says which);
 *   2  usage error, or lkv_open() returned NULL (one line on stderr);
 *   3  a scenario's check failed (one line on stderr: which and why).
 *
 * Output conventions. A result line is
 *   OP ESC(KEY) -> CODE [FIELD=VALUE ...]
 * with CODE the lkv_err's name (LKV_OK, LKV_ERR_NOT_FOUND, ...) and, when it
 * is not LKV_OK, a field detail=ESC(lkv_last_error()). ESC() writes bytes
 * 0x21..0x7e but '\' as themselves and every other byte as \xHH, so a field
 * never holds a space and any byte sequence reads back exactly. A pair is
 *   key=ESC index=N len=N ctype=ESC|- expires_at_ms=N fnv=HEX16 [value=ESC]
 * (value= only for values of 512 bytes or less; fnv is FNV-1a 64 of the value).
 *
 * Value arguments: "hex:0a00ff" (any bytes), "file:PATH" (a file's bytes),
 * anything else is taken literally. Keys and prefixes are argv bytes.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <lazykv.h> /* first: the header must stand on its own */

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define EXIT_ERR   1 /* an operation returned an lkv_err other than LKV_OK */
#define EXIT_USAGE 2
#define EXIT_CHECK 3 /* a scenario's check failed */

#define VALUE_PRINT_MAX 512

/* What the command line gave: read-only once parsed. */
struct run {
    const char *endpoints;      /* ref: argv */
    struct lkv_options opt;     /* token: ref argv */
};

/* ---- failing ------------------------------------------------------------ */

__attribute__((format(printf, 2, 3), noreturn)) static void fail(int line, const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "lkv_test: check failed (lkv_test.c:%d): ", line);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(EXIT_CHECK);
}

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond))                                                                               \
            fail(__LINE__, __VA_ARGS__);                                                           \
    } while (0)

__attribute__((format(printf, 1, 2), noreturn)) static void usage_error(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "lkv_test: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(EXIT_USAGE);
}

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "lkv_test: out of memory\n");
        exit(EXIT_CHECK);
    }
    return p;
}

/* ---- time ------------------------------------------------------------------ */

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* A deadline for pthread_cond_timedwait (CLOCK_REALTIME) ms from now. */
static struct timespec deadline_in(long ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* ---- printing ---------------------------------------------------------------- */

static void esc(const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) {
        if (p[i] > 0x20 && p[i] < 0x7f && p[i] != '\\')
            putchar(p[i]);
        else
            printf("\\x%02x", p[i]);
    }
}

static void esc_str(const char *s)
{
    esc(s, strlen(s));
}

static uint64_t fnv1a(const unsigned char *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) {
        h ^= p[i];
        h *= 0x100000001b3ULL;
    }
    return h;
}

static const char *err_name(lkv_err e)
{
    switch (e) {
    case LKV_OK: return "LKV_OK";
    case LKV_ERR_NOT_FOUND: return "LKV_ERR_NOT_FOUND";
    case LKV_ERR_KEY_EXISTS: return "LKV_ERR_KEY_EXISTS";
    case LKV_ERR_KEY_MODIFIED: return "LKV_ERR_KEY_MODIFIED";
    case LKV_ERR_CANNOT_LOCK: return "LKV_ERR_CANNOT_LOCK";
    case LKV_ERR_TIMEOUT: return "LKV_ERR_TIMEOUT";
    case LKV_ERR_UNAVAILABLE: return "LKV_ERR_UNAVAILABLE";
    case LKV_ERR_UNAUTHORIZED: return "LKV_ERR_UNAUTHORIZED";
    case LKV_ERR_FORBIDDEN: return "LKV_ERR_FORBIDDEN";
    case LKV_ERR_INVALID: return "LKV_ERR_INVALID";
    case LKV_ERR_IO: return "LKV_ERR_IO";
    case LKV_ERR_NOMEM: return "LKV_ERR_NOMEM";
    }
    return "LKV_ERR_(unknown)";
}

/* "OP ESC(key) -> CODE[ detail=ESC]": the start of a result line (the
 * caller adds fields and the newline). key may be NULL (no key field). */
static void result_head(const char *op, const char *key, lkv_err e, lkv *c)
{
    printf("%s ", op);
    if (key != NULL) {
        esc_str(key);
        putchar(' ');
    }
    printf("-> %s", err_name(e));
    if (e != LKV_OK && c != NULL) {
        const char *d = lkv_last_error(c);
        CHECK(d != NULL, "lkv_last_error returned NULL after %s", err_name(e));
        printf(" detail=");
        esc_str(d);
    }
}

/* The pair's fields, after checking what the header promises of any pair. */
static void print_pair(const lkv_pair *p)
{
    CHECK(p != NULL, "a NULL pair");
    CHECK(p->key != NULL, "a pair without a key");
    CHECK(p->value != NULL, "pair %s: value is NULL (it is NUL-terminated, even when empty)",
          p->key);
    CHECK(p->value[p->value_len] == '\0', "pair %s: value not NUL-terminated", p->key);
    printf("key=");
    esc_str(p->key);
    printf(" index=%" PRIu64 " len=%zu ctype=", p->index, p->value_len);
    if (p->content_type != NULL)
        esc_str(p->content_type);
    else
        putchar('-');
    printf(" expires_at_ms=%" PRId64 " fnv=%016" PRIx64, p->expires_at_ms,
           fnv1a(p->value, p->value_len));
    if (p->value_len <= VALUE_PRINT_MAX) {
        printf(" value=");
        esc(p->value, p->value_len);
    }
}

/* ---- arguments ------------------------------------------------------------------- */

struct bytes {
    unsigned char *p;           /* owned */
    size_t n;
};

static int hexval(int ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* A value argument: "hex:...", "file:PATH" or literal bytes. */
static struct bytes arg_value(const char *s)
{
    struct bytes b = {NULL, 0};
    if (strncmp(s, "hex:", 4) == 0) {
        size_t n = strlen(s + 4);
        if (n % 2 != 0)
            usage_error("odd number of hex digits in %s", s);
        b.p = xmalloc(n / 2 + 1);
        for (size_t i = 0; i < n / 2; i++) {
            int hi = hexval((unsigned char)s[4 + 2 * i]), lo = hexval((unsigned char)s[5 + 2 * i]);
            if (hi < 0 || lo < 0)
                usage_error("bad hex digit in %s", s);
            b.p[i] = (unsigned char)(hi * 16 + lo);
        }
        b.n = n / 2;
    } else if (strncmp(s, "file:", 5) == 0) {
        FILE *f = fopen(s + 5, "rb");
        struct stat st;
        if (f == NULL || fstat(fileno(f), &st) != 0)
            usage_error("cannot read %s: %s", s + 5, strerror(errno));
        b.p = xmalloc((size_t)st.st_size + 1);
        b.n = fread(b.p, 1, (size_t)st.st_size, f);
        if (b.n != (size_t)st.st_size)
            usage_error("short read of %s", s + 5);
        fclose(f);
    } else {
        b.n = strlen(s);
        b.p = xmalloc(b.n + 1);
        memcpy(b.p, s, b.n);
    }
    return b;
}

/* A whole decimal number in [min, max] (no sign, no junk). */
static long arg_long(const char *s, long min, long max, const char *what)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || v < min || v > max)
        usage_error("%s: want a number from %ld to %ld, got '%s'", what, min, max, s);
    return v;
}

static uint64_t arg_u64(const char *s, const char *what)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (*s == '\0' || *s == '-' || *end != '\0' || errno != 0)
        usage_error("%s: want an index, got '%s'", what, s);
    return (uint64_t)v;
}

static lkv *client(const struct run *r)
{
    lkv *c = lkv_open(r->endpoints, &r->opt);
    if (c == NULL)
        usage_error("lkv_open(\"%s\") returned NULL", r->endpoints);
    return c;
}

static int exit_for(lkv_err e)
{
    return e == LKV_OK ? 0 : EXIT_ERR;
}

/* ---- plain operations: one call, one line ---------------------------------------------- */

/* open: lkv_open of ENDPOINTS: "open -> OK" or "open -> NULL". */
static int cmd_open(const struct run *r, char **argv)
{
    (void)argv;
    lkv *c = lkv_open(r->endpoints, &r->opt);
    printf("open -> %s\n", c ? "OK" : "NULL");
    if (c == NULL)
        return EXIT_ERR;
    lkv_close(c);
    return 0;
}

/* strerror: one line per code, "N NAME: ESC(text)", then two codes out of range. */
static int cmd_strerror(const struct run *r, char **argv)
{
    (void)r;
    (void)argv;
    for (int i = LKV_OK; i <= LKV_ERR_NOMEM; i++) {
        const char *s = lkv_strerror((lkv_err)i);
        CHECK(s != NULL && *s != '\0', "lkv_strerror(%d) is NULL or empty", i);
        printf("%d %s: ", i, err_name((lkv_err)i));
        esc_str(s);
        putchar('\n');
    }
    const int out[] = {99, -1};
    for (size_t i = 0; i < sizeof out / sizeof out[0]; i++) {
        const char *s = lkv_strerror((lkv_err)out[i]);
        CHECK(s != NULL && *s != '\0', "lkv_strerror(%d) is NULL or empty", out[i]);
        printf("%d unknown: ", out[i]);
        esc_str(s);
        putchar('\n');
    }
    return 0;
}

/* put KEY VALUE [TTL] */
static int cmd_put(const struct run *r, char **argv)
{
    struct bytes v = arg_value(argv[1]);
    unsigned ttl = argv[2] ? (unsigned)arg_long(argv[2], 0, 315360000, "ttl") : 0;
    lkv *c = client(r);
    lkv_err e = lkv_put(c, argv[0], v.p, v.n, ttl);
    result_head("put", argv[0], e, c);
    putchar('\n');
    lkv_close(c);
    free(v.p);
    return exit_for(e);
}

/* put_ctype KEY VALUE CTYPE|- [TTL]: lkv_put_ctype (-: a NULL type). */
static int cmd_put_ctype(const struct run *r, char **argv)
{
    struct bytes v = arg_value(argv[1]);
    const char *ctype = strcmp(argv[2], "-") == 0 ? NULL : argv[2];
    unsigned ttl = argv[3] ? (unsigned)arg_long(argv[3], 0, 315360000, "ttl") : 0;
    lkv *c = client(r);
    lkv_err e = lkv_put_ctype(c, argv[0], v.p, v.n, ctype, ttl);
    result_head("put_ctype", argv[0], e, c);
    putchar('\n');
    lkv_close(c);
    free(v.p);
    return exit_for(e);
}

/* health: "health -> CODE", then, on LKV_OK, "json ESC(document)". */
static int cmd_health(const struct run *r, char **argv)
{
    (void)argv;
    lkv *c = client(r);
    char *json = NULL;
    lkv_err e = lkv_health(c, &json);
    result_head("health", NULL, e, c);
    putchar('\n');
    if (e == LKV_OK) {
        CHECK(json != NULL, "lkv_health: LKV_OK and no document");
        printf("json ");
        esc_str(json);
        putchar('\n');
    } else {
        CHECK(json == NULL, "lkv_health: %s and a document", err_name(e));
    }
    free(json);
    lkv_close(c);
    return exit_for(e);
}

/* get KEY: "get KEY -> OK <pair>" */
static int cmd_get(const struct run *r, char **argv)
{
    lkv *c = client(r);
    lkv_pair *p = NULL;
    lkv_err e = lkv_get(c, argv[0], &p);
    result_head("get", argv[0], e, c);
    if (e == LKV_OK) {
        putchar(' ');
        print_pair(p);
        CHECK(strcmp(p->key, argv[0]) == 0, "get: the pair's key is not the key asked");
    }
    putchar('\n');
    lkv_pair_free(p);
    lkv_close(c);
    return exit_for(e);
}

/* exists KEY: "exists KEY -> OK exists=0|1" */
static int cmd_exists(const struct run *r, char **argv)
{
    lkv *c = client(r);
    int exists = -1;
    lkv_err e = lkv_exists(c, argv[0], &exists);
    result_head("exists", argv[0], e, c);
    if (e == LKV_OK) {
        CHECK(exists == 0 || exists == 1, "exists: *exists is %d", exists);
        printf(" exists=%d", exists);
    }
    putchar('\n');
    lkv_close(c);
    return exit_for(e);
}

/* delete KEY */
static int cmd_delete(const struct run *r, char **argv)
{
    lkv *c = client(r);
    lkv_err e = lkv_delete(c, argv[0]);
    result_head("delete", argv[0], e, c);
    putchar('\n');
    lkv_close(c);
    return exit_for(e);
}

/* list PREFIX: "list PREFIX -> OK n=N", then "pair I <pair>" per key. */
static int cmd_list(const struct run *r, char **argv)
{
    lkv *c = client(r);
    lkv_pair **v = NULL;
    size_t n = 0;
    lkv_err e = lkv_list(c, argv[0], &v, &n);
    result_head("list", argv[0], e, c);
    if (e == LKV_OK)
        printf(" n=%zu", n);
    putchar('\n');
    if (e == LKV_OK) {
        CHECK(n == 0 || v != NULL, "list: n=%zu and a NULL vector", n);
        for (size_t i = 0; i < n; i++) {
            printf("pair %zu ", i);
            print_pair(v[i]);
            putchar('\n');
            CHECK(strncmp(v[i]->key, argv[0], strlen(argv[0])) == 0,
                  "list: key %zu is not under the prefix", i);
            CHECK(i == 0 || strcmp(v[i - 1]->key, v[i]->key) < 0,
                  "list: keys %zu and %zu are not in strictly increasing byte order", i - 1, i);
        }
    }
    lkv_pairs_free(v, n);
    lkv_close(c);
    return exit_for(e);
}

/* delete_tree PREFIX */
static int cmd_delete_tree(const struct run *r, char **argv)
{
    lkv *c = client(r);
    lkv_err e = lkv_delete_tree(c, argv[0]);
    result_head("delete_tree", argv[0], e, c);
    putchar('\n');
    lkv_close(c);
    return exit_for(e);
}

/* A previous pair as a caller holding only an index builds it. */
static lkv_pair previous_of(char *key, const char *index_arg)
{
    static unsigned char empty[1];
    lkv_pair p = {key, empty, 0, arg_u64(index_arg, "previous index"), NULL, 0};
    return p;
}

/* atomic_put KEY VALUE PREV|- [TTL [noout]]: PREV an index, or - (create
 * only). "atomic_put KEY -> OK <new pair>"; with noout, out is NULL and
 * the line has no pair. */
static int cmd_atomic_put(const struct run *r, char **argv)
{
    struct bytes v = arg_value(argv[1]);
    unsigned ttl = argv[3] ? (unsigned)arg_long(argv[3], 0, 315360000, "ttl") : 0;
    int want_out = !(argv[3] && argv[4] && strcmp(argv[4], "noout") == 0);
    if (argv[3] && argv[4] && want_out)
        usage_error("atomic_put: the fifth argument can only be noout");
    lkv_pair prev, *prevp = NULL;
    memset(&prev, 0, sizeof prev);
    if (strcmp(argv[2], "-") != 0) {
        prev = previous_of(argv[0], argv[2]);
        prevp = &prev;
    }
    lkv *c = client(r);
    lkv_pair *out = NULL;
    lkv_err e = lkv_atomic_put(c, argv[0], v.p, v.n, prevp, ttl, want_out ? &out : NULL);
    result_head("atomic_put", argv[0], e, c);
    if (e == LKV_OK && want_out) {
        putchar(' ');
        print_pair(out);
        CHECK(strcmp(out->key, argv[0]) == 0, "atomic_put: the new pair's key differs");
        CHECK(out->value_len == v.n && memcmp(out->value, v.p, v.n) == 0,
              "atomic_put: the new pair's value is not the value written");
        CHECK(prevp == NULL || out->index > prevp->index,
              "atomic_put: the new index %" PRIu64 " is not above the previous one", out->index);
    }
    putchar('\n');
    lkv_pair_free(out);
    lkv_close(c);
    free(v.p);
    return exit_for(e);
}

/* atomic_delete KEY PREV */
static int cmd_atomic_delete(const struct run *r, char **argv)
{
    lkv_pair prev = previous_of(argv[0], argv[1]);
    lkv *c = client(r);
    lkv_err e = lkv_atomic_delete(c, argv[0], &prev);
    result_head("atomic_delete", argv[0], e, c);
    putchar('\n');
    lkv_close(c);
    return exit_for(e);
}

/* ---- fill: many keys at once -------------------------------------------------------- */

#define FILL_THREADS 4

/* The value fill gives key number i: "v%05ld-" then bytes (i + j) % 251
 * up to size bytes (j: the byte's offset in the value). */
static void fill_value(long i, long size, unsigned char *out)
{
    char head[32];
    int h = snprintf(head, sizeof head, "v%05ld-", i);
    for (long j = 0; j < size; j++)
        out[j] = j < h ? (unsigned char)head[j] : (unsigned char)((i + j) % 251);
}

struct filler {
    const struct run *run;      /* ref */
    const char *prefix;         /* ref */
    long from, to, size;        /* keys [from, to) */
    lkv_err err;                /* the first failure, or LKV_OK */
    long failed_at;
    char detail[256];
};

static void *fill_thread(void *arg)
{
    struct filler *f = arg;
    lkv *c = client(f->run); /* a client per thread: clients are not shared */
    size_t plen = strlen(f->prefix);
    char *key = xmalloc(plen + 32);
    unsigned char *value = xmalloc((size_t)f->size + 1);
    for (long i = f->from; i < f->to; i++) {
        snprintf(key, plen + 32, "%s%05ld", f->prefix, i);
        fill_value(i, f->size, value);
        lkv_err e = lkv_put(c, key, value, (size_t)f->size, 0);
        if (e != LKV_OK) {
            f->err = e;
            f->failed_at = i;
            snprintf(f->detail, sizeof f->detail, "%s", lkv_last_error(c));
            break;
        }
    }
    free(value);
    free(key);
    lkv_close(c);
    return NULL;
}

/* fill PREFIX N SIZE: keys PREFIX00000.. with fill_value()s, 4 clients on
 * 4 threads. "fill PREFIX -> OK n=N" */
static int cmd_fill(const struct run *r, char **argv)
{
    long n = arg_long(argv[1], 0, 99999, "n"), size = arg_long(argv[2], 0, 16 << 20, "size");
    struct filler f[FILL_THREADS];
    pthread_t t[FILL_THREADS];
    for (int i = 0; i < FILL_THREADS; i++) {
        f[i] = (struct filler){r, argv[0], n * i / FILL_THREADS, n * (i + 1) / FILL_THREADS,
                               size, LKV_OK, -1, ""};
        CHECK(pthread_create(&t[i], NULL, fill_thread, &f[i]) == 0, "pthread_create");
    }
    lkv_err e = LKV_OK;
    for (int i = 0; i < FILL_THREADS; i++) {
        pthread_join(t[i], NULL);
        if (f[i].err != LKV_OK && e == LKV_OK) {
            e = f[i].err;
            printf("fill ");
            esc_str(argv[0]);
            printf(" -> %s at=%ld detail=", err_name(e), f[i].failed_at);
            esc_str(f[i].detail);
            putchar('\n');
        }
    }
    if (e == LKV_OK) {
        printf("fill ");
        esc_str(argv[0]);
        printf(" -> LKV_OK n=%ld\n", n);
    }
    return exit_for(e);
}

/* ---- watches driven from outside ---------------------------------------------------- */

struct counted {
    long calls, stop_after;
};

static void print_state(long i, const lkv_pair *p)
{
    printf("state %ld: ", i);
    if (p == NULL) {
        printf("absent");
    } else {
        print_pair(p);
    }
    putchar('\n');
}

static int counted_fn(const lkv_pair *p, void *arg)
{
    struct counted *w = arg;
    print_state(w->calls, p);
    fflush(stdout);
    return ++w->calls >= w->stop_after;
}

/* watch KEY N: prints "state I: absent|<pair>" per call of fn (the first
 * is the current state) and stops after N; then "watch KEY -> CODE". */
static int cmd_watch(const struct run *r, char **argv)
{
    struct counted w = {0, arg_long(argv[1], 1, 1000000, "n")};
    static const volatile int never = 0;
    lkv *c = client(r);
    lkv_err e = lkv_watch(c, argv[0], counted_fn, &w, &never);
    result_head("watch", argv[0], e, c);
    printf(" calls=%ld\n", w.calls);
    lkv_close(c);
    return exit_for(e);
}

static void print_tree(long i, lkv_pair *const *pairs, size_t n)
{
    printf("tree %ld: n=%zu\n", i, n);
    CHECK(n == 0 || pairs != NULL, "watch_tree: n=%zu and a NULL vector", n);
    for (size_t k = 0; k < n; k++) {
        printf("tree %ld pair %zu ", i, k);
        print_pair(pairs[k]);
        putchar('\n');
        CHECK(k == 0 || strcmp(pairs[k - 1]->key, pairs[k]->key) < 0,
              "watch_tree: keys %zu and %zu are not in increasing byte order", k - 1, k);
    }
}

static int counted_tree_fn(lkv_pair *const *pairs, size_t n, void *arg)
{
    struct counted *w = arg;
    print_tree(w->calls, pairs, n);
    fflush(stdout);
    return ++w->calls >= w->stop_after;
}

/* watch_tree PREFIX N: "tree I: n=K" then K lines "tree I pair J <pair>" per
 * call; stops after N; then "watch_tree PREFIX -> CODE". */
static int cmd_watch_tree(const struct run *r, char **argv)
{
    struct counted w = {0, arg_long(argv[1], 1, 1000000, "n")};
    static const volatile int never = 0;
    lkv *c = client(r);
    lkv_err e = lkv_watch_tree(c, argv[0], counted_tree_fn, &w, &never);
    result_head("watch_tree", argv[0], e, c);
    printf(" calls=%ld\n", w.calls);
    lkv_close(c);
    return exit_for(e);
}

/* ---- watches stopped by their flag, changed by another thread ------------------------ */

struct stopper {
    const struct run *run;      /* ref */
    const char *key;            /* ref: the key the writer writes */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    long calls;                 /* calls of fn so far */
    int saw_one;                /* fn was given the writer's value */
    int done;                   /* the watch returned */
    volatile int stop;          /* the watch's stop flag */
    int64_t stop_at;            /* mono ms when stop was set */
    lkv_err put_err;
    int writer_failed;          /* 1: the watch never reached a state */
};

static int is_one(const lkv_pair *p)
{
    return p != NULL && p->value_len == 3 && memcmp(p->value, "one", 3) == 0;
}

static void stopper_saw(struct stopper *s, int one)
{
    pthread_mutex_lock(&s->mu);
    s->calls++;
    s->saw_one |= one;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

static int stop_fn(const lkv_pair *p, void *arg)
{
    struct stopper *s = arg;
    pthread_mutex_lock(&s->mu);
    print_state(s->calls, p);
    pthread_mutex_unlock(&s->mu);
    stopper_saw(s, is_one(p));
    return 0; /* never stops by itself: only the flag ends the watch */
}

static int stop_tree_fn(lkv_pair *const *pairs, size_t n, void *arg)
{
    struct stopper *s = arg;
    int one = 0;
    pthread_mutex_lock(&s->mu);
    print_tree(s->calls, pairs, n);
    pthread_mutex_unlock(&s->mu);
    for (size_t i = 0; i < n; i++)
        one |= is_one(pairs[i]) && strcmp(pairs[i]->key, s->key) == 0;
    stopper_saw(s, one);
    return 0;
}

/* Waits until cond(s) or the watch returned, for at most ms; 1 if cond. */
static int stopper_wait(struct stopper *s, int (*cond)(const struct stopper *), long ms)
{
    struct timespec dl = deadline_in(ms);
    pthread_mutex_lock(&s->mu);
    while (!cond(s) && !s->done)
        if (pthread_cond_timedwait(&s->cv, &s->mu, &dl) != 0)
            break;
    int ok = cond(s);
    pthread_mutex_unlock(&s->mu);
    return ok;
}

static int had_first(const struct stopper *s)
{
    return s->calls >= 1;
}

static int had_one(const struct stopper *s)
{
    return s->saw_one;
}

/* The other thread: once the watch has given the current state, writes
 * "one" with a client of its own; once the watch has seen it, sets stop. */
static void *writer_thread(void *arg)
{
    struct stopper *s = arg;
    if (!stopper_wait(s, had_first, 15000)) {
        s->writer_failed = 1;
        return NULL;
    }
    lkv *c = client(s->run);
    s->put_err = lkv_put(c, s->key, "one", 3, 0);
    lkv_close(c);
    if (s->put_err != LKV_OK || !stopper_wait(s, had_one, 15000)) {
        s->writer_failed = 1;
        return NULL;
    }
    pthread_mutex_lock(&s->mu);
    s->stop_at = mono_ms();
    pthread_mutex_unlock(&s->mu);
    __atomic_store_n(&s->stop, 1, __ATOMIC_SEQ_CST);
    return NULL;
}

/* watch_stop KEY / watch_tree_stop PREFIX (the writer writes PREFIX + "k"):
 * prints the states, then "returned CODE calls=N" and "stop_to_return_ms=MS". */
static int run_stopper(const struct run *r, const char *name, const char *watched, int tree)
{
    struct stopper s;
    memset(&s, 0, sizeof s);
    s.run = r;
    size_t klen = strlen(watched) + 2;
    char *key = xmalloc(klen);
    snprintf(key, klen, "%s%s", watched, tree ? "k" : "");
    s.key = key;
    s.put_err = LKV_OK;
    pthread_mutex_init(&s.mu, NULL);
    pthread_cond_init(&s.cv, NULL);
    lkv *c = client(r);
    pthread_t t;
    CHECK(pthread_create(&t, NULL, writer_thread, &s) == 0, "pthread_create");
    lkv_err e = tree ? lkv_watch_tree(c, watched, stop_tree_fn, &s, &s.stop)
                     : lkv_watch(c, watched, stop_fn, &s, &s.stop);
    int64_t returned = mono_ms();
    pthread_mutex_lock(&s.mu);
    s.done = 1;
    pthread_cond_broadcast(&s.cv);
    pthread_mutex_unlock(&s.mu);
    pthread_join(t, NULL);
    result_head(name, watched, e, c);
    printf(" calls=%ld\n", s.calls);
    CHECK(!s.writer_failed, "%s: the watch did not give the current state and then the write "
          "(put: %s, calls: %ld)", name, err_name(s.put_err), s.calls);
    CHECK(e == LKV_OK, "%s: returned %s after its stop flag was set", name, err_name(e));
    printf("stop_to_return_ms=%" PRId64 "\n", returned - s.stop_at);
    lkv_close(c);
    pthread_cond_destroy(&s.cv);
    pthread_mutex_destroy(&s.mu);
    free(key);
    return 0;
}

static int cmd_watch_stop(const struct run *r, char **argv)
{
    return run_stopper(r, "watch_stop", argv[0], 0);
}

static int cmd_watch_tree_stop(const struct run *r, char **argv)
{
    return run_stopper(r, "watch_tree_stop", argv[0], 1);
}

/* ---- locks ------------------------------------------------------------------------------ */

/* The lock key's current (index, value) through client c; CHECKs it is there. */
static uint64_t holder(lkv *c, const char *key, const char *want_value)
{
    lkv_pair *p = NULL;
    lkv_err e = lkv_get(c, key, &p);
    CHECK(e == LKV_OK, "get of the lock key: %s (%s)", err_name(e), lkv_last_error(c));
    CHECK(p->value_len == strlen(want_value) && memcmp(p->value, want_value, p->value_len) == 0,
          "the lock key holds '%s', not '%s'", (const char *)p->value, want_value);
    uint64_t index = p->index;
    printf("holder value=");
    esc(p->value, p->value_len);
    printf(" index=%" PRIu64 "\n", index);
    lkv_pair_free(p);
    return index;
}

struct acquirer {
    lkv_lock *lock;             /* ref */
    long wait_ms;
    lkv_err err;
    int64_t at;                 /* mono ms when acquire returned */
};

static void *acquire_thread(void *arg)
{
    struct acquirer *a = arg;
    a->err = lkv_lock_acquire(a->lock, a->wait_ms);
    a->at = mono_ms();
    return NULL;
}

/* lock_basic KEY: acquire, token, held, CANNOT_LOCK for another holder (at
 * once and after a wait), a blocking acquire won at the release, tokens
 * increasing across holders, release. Self-checking; prints each step. */
static int cmd_lock_basic(const struct run *r, char **argv)
{
    const char *key = argv[0];
    lkv *ca = client(r), *cb = client(r), *cm = client(r);
    lkv_err e;

    lkv_lock *a = lkv_lock_new(ca, key, "owner-a", 7, 30);
    CHECK(a != NULL, "lkv_lock_new returned NULL");
    e = lkv_lock_acquire(a, 0);
    result_head("acquire a wait=0", NULL, e, ca);
    uint64_t t1 = lkv_lock_token(a);
    printf(" token=%" PRIu64 " held=%d\n", t1, lkv_lock_held(a));
    CHECK(e == LKV_OK, "the first acquire failed");
    CHECK(t1 > 0 && lkv_lock_held(a) == 1, "after acquire: token %" PRIu64 ", held %d", t1,
          lkv_lock_held(a));
    CHECK(holder(cm, key, "owner-a") == t1, "the lock key's index is not the token");

    lkv_lock *b = lkv_lock_new(cb, key, "owner-b", 7, 30);
    CHECK(b != NULL, "lkv_lock_new returned NULL");
    e = lkv_lock_acquire(b, 0);
    result_head("acquire b wait=0", NULL, e, cb);
    putchar('\n');
    CHECK(e == LKV_ERR_CANNOT_LOCK, "a held lock was acquired again");
    CHECK(lkv_lock_held(b) == 0, "a lock that failed to acquire says held");
    int64_t t0 = mono_ms();
    e = lkv_lock_acquire(b, 1500);
    int64_t waited = mono_ms() - t0;
    result_head("acquire b wait=1500", NULL, e, cb);
    putchar('\n');
    printf("waited_ms=%" PRId64 "\n", waited);
    CHECK(e == LKV_ERR_CANNOT_LOCK, "a held lock was acquired again after a wait");
    CHECK(waited >= 1400 && waited < 1500 + 3000, "CANNOT_LOCK after %" PRId64 " ms for 1500",
          waited);
    CHECK(holder(cm, key, "owner-a") == t1, "a failed acquisition changed the lock key");
    CHECK(lkv_lock_held(a) == 1, "a lost the lock");

    /* b waits for it on a thread (client cb); a releases it (client ca) */
    struct acquirer wb = {b, 15000, LKV_OK, 0};
    pthread_t t;
    CHECK(pthread_create(&t, NULL, acquire_thread, &wb) == 0, "pthread_create");
    sleep_ms(500); /* nothing to poll: b's request is parked inside the library */
    e = lkv_lock_release(a);
    int64_t released = mono_ms();
    result_head("release a", NULL, e, ca);
    putchar('\n');
    CHECK(e == LKV_OK, "release of a held lock failed");
    pthread_join(t, NULL);
    uint64_t t2 = lkv_lock_token(b);
    result_head("acquire b wait=15000", NULL, wb.err, cb);
    printf(" token=%" PRIu64 " held=%d\n", t2, lkv_lock_held(b));
    printf("handover_ms=%" PRId64 "\n", wb.at - released);
    CHECK(wb.err == LKV_OK, "b did not get the released lock");
    CHECK(wb.at - released < 2000, "b got the lock %" PRId64 " ms after the release",
          wb.at - released);
    CHECK(t2 > t1, "token %" PRIu64 " of the second holder is not above %" PRIu64, t2, t1);
    CHECK(lkv_lock_held(b) == 1, "b does not say held");
    CHECK(holder(cm, key, "owner-b") == t2, "the lock key's index is not b's token");

    e = lkv_lock_release(b);
    result_head("release b", NULL, e, cb);
    putchar('\n');
    CHECK(e == LKV_OK, "release of b failed");
    lkv_pair *p = NULL;
    e = lkv_get(cm, key, &p);
    result_head("get", key, e, cm);
    putchar('\n');
    CHECK(e == LKV_ERR_NOT_FOUND, "the lock key outlived its release");
    lkv_pair_free(p);

    lkv_lock *l3 = lkv_lock_new(ca, key, "owner-c", 7, 30);
    CHECK(l3 != NULL, "lkv_lock_new returned NULL");
    e = lkv_lock_acquire(l3, 0);
    uint64_t t3 = lkv_lock_token(l3);
    result_head("acquire c wait=0", NULL, e, ca);
    printf(" token=%" PRIu64 " held=%d\n", t3, lkv_lock_held(l3));
    CHECK(e == LKV_OK && t3 > t2, "third holder: %s, token %" PRIu64, err_name(e), t3);
    e = lkv_lock_release(l3);
    result_head("release c", NULL, e, ca);
    putchar('\n');
    CHECK(e == LKV_OK, "release of c failed");

    lkv_lock_free(l3);
    lkv_lock_free(b);
    lkv_lock_free(a);
    lkv_close(cm);
    lkv_close(cb);
    lkv_close(ca);
    return 0;
}

/* lock_try KEY WAIT_MS: "lock_try KEY -> CODE [token=T]", and when it got
 * the lock, "release -> CODE". */
static int cmd_lock_try(const struct run *r, char **argv)
{
    long wait = arg_long(argv[1], 0, 3600000, "wait_ms");
    lkv *c = client(r);
    lkv_lock *l = lkv_lock_new(c, argv[0], "lock_try", 8, 30);
    CHECK(l != NULL, "lkv_lock_new returned NULL");
    lkv_err e = lkv_lock_acquire(l, wait);
    result_head("lock_try", argv[0], e, c);
    if (e == LKV_OK)
        printf(" token=%" PRIu64, lkv_lock_token(l));
    putchar('\n');
    if (e == LKV_OK) {
        lkv_err rel = lkv_lock_release(l);
        result_head("release", NULL, rel, c);
        putchar('\n');
        CHECK(rel == LKV_OK, "release failed");
    }
    lkv_lock_free(l);
    lkv_close(c);
    return exit_for(e);
}

static void append_line(const char *path, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void append_line(const char *path, const char *fmt, ...)
{
    char line[128];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT, 0644);
    CHECK(fd >= 0, "open %s: %s", path, strerror(errno));
    CHECK(write(fd, line, (size_t)n) == n, "write %s: %s", path, strerror(errno));
    close(fd);
}

/* contend KEY FILE HOLD_MS: acquire (waiting up to 60 s), append "start PID
 * TOKEN", sleep HOLD_MS, append "end PID TOKEN", release.
 * "contend KEY -> OK token=T" */
static int cmd_contend(const struct run *r, char **argv)
{
    long hold = arg_long(argv[2], 0, 600000, "hold_ms");
    char me[32];
    int mlen = snprintf(me, sizeof me, "%ld", (long)getpid());
    lkv *c = client(r);
    lkv_lock *l = lkv_lock_new(c, argv[0], me, (size_t)mlen, 10);
    CHECK(l != NULL, "lkv_lock_new returned NULL");
    lkv_err e = lkv_lock_acquire(l, 60000);
    if (e != LKV_OK) {
        result_head("contend", argv[0], e, c);
        putchar('\n');
        lkv_lock_free(l);
        lkv_close(c);
        return EXIT_ERR;
    }
    uint64_t token = lkv_lock_token(l);
    append_line(argv[1], "start %s %" PRIu64 "\n", me, token);
    sleep_ms(hold);
    CHECK(lkv_lock_held(l) == 1, "the lock was lost while held");
    append_line(argv[1], "end %s %" PRIu64 "\n", me, token);
    e = lkv_lock_release(l);
    result_head("contend", argv[0], e, c);
    printf(" token=%" PRIu64 "\n", token);
    lkv_lock_free(l);
    lkv_close(c);
    return exit_for(e);
}

/* lock_hold KEY TTL HOLD_MS: acquires with ttl TTL and holds for HOLD_MS,
 * checking held every 50 ms and that renewals move the key's index
 * ("renewed index=I token=T"); prints "ready" and waits (up to 120 s) for
 * lkv_lock_held to become 0: "lost after_ms=MS"; then releases
 * ("release -> CODE", any code: the lock is gone). */
static int cmd_lock_hold(const struct run *r, char **argv)
{
    unsigned ttl = (unsigned)arg_long(argv[1], 1, 3600, "ttl");
    long hold = arg_long(argv[2], 0, 600000, "hold_ms");
    lkv *c = client(r), *cm = client(r);
    char me[32];
    int mlen = snprintf(me, sizeof me, "holder %ld", (long)getpid());
    lkv_lock *l = lkv_lock_new(c, argv[0], me, (size_t)mlen, ttl);
    CHECK(l != NULL, "lkv_lock_new returned NULL");
    lkv_err e = lkv_lock_acquire(l, 0);
    result_head("acquire", argv[0], e, c);
    uint64_t token = lkv_lock_token(l);
    printf(" token=%" PRIu64 "\n", token);
    CHECK(e == LKV_OK, "acquire failed");
    for (int64_t until = mono_ms() + hold; mono_ms() < until;) {
        CHECK(lkv_lock_held(l) == 1, "held became 0 while every partition was up");
        sleep_ms(50);
    }
    uint64_t now = holder(cm, argv[0], me);
    printf("renewed index=%" PRIu64 " token=%" PRIu64 " held=%d\n", now, lkv_lock_token(l),
           lkv_lock_held(l));
    CHECK(now > token, "no renewal in %ld ms with a ttl of %u s", hold, ttl);
    printf("ready\n");
    int64_t ready = mono_ms();
    while (lkv_lock_held(l) == 1 && mono_ms() - ready < 120000)
        sleep_ms(20);
    CHECK(lkv_lock_held(l) == 0, "still held 120 s after ready");
    printf("lost after_ms=%" PRId64 "\n", mono_ms() - ready);
    e = lkv_lock_release(l);
    result_head("release", NULL, e, c);
    putchar('\n');
    lkv_lock_free(l);
    lkv_close(cm);
    lkv_close(c);
    return 0;
}

/* ---- main ------------------------------------------------------------------------------ */

struct command {
    const char *name;
    int min_args, max_args;
    int (*fn)(const struct run *r, char **argv);
    const char *args;
};

static const struct command commands[] = {
    {"open", 0, 0, cmd_open, ""},
    {"strerror", 0, 0, cmd_strerror, ""},
    {"put", 2, 3, cmd_put, "KEY VALUE [TTL]"},
    {"put_ctype", 3, 4, cmd_put_ctype, "KEY VALUE CTYPE|- [TTL]"},
    {"health", 0, 0, cmd_health, ""},
    {"get", 1, 1, cmd_get, "KEY"},
    {"exists", 1, 1, cmd_exists, "KEY"},
    {"delete", 1, 1, cmd_delete, "KEY"},
    {"list", 1, 1, cmd_list, "PREFIX"},
    {"delete_tree", 1, 1, cmd_delete_tree, "PREFIX"},
    {"atomic_put", 3, 5, cmd_atomic_put, "KEY VALUE PREV|- [TTL [noout]]"},
    {"atomic_delete", 2, 2, cmd_atomic_delete, "KEY PREV"},
    {"fill", 3, 3, cmd_fill, "PREFIX N SIZE"},
    {"watch", 2, 2, cmd_watch, "KEY N"},
    {"watch_tree", 2, 2, cmd_watch_tree, "PREFIX N"},
    {"watch_stop", 1, 1, cmd_watch_stop, "KEY"},
    {"watch_tree_stop", 1, 1, cmd_watch_tree_stop, "PREFIX"},
    {"lock_basic", 1, 1, cmd_lock_basic, "KEY"},
    {"lock_try", 2, 2, cmd_lock_try, "KEY WAIT_MS"},
    {"contend", 3, 3, cmd_contend, "KEY FILE HOLD_MS"},
    {"lock_hold", 3, 3, cmd_lock_hold, "KEY TTL HOLD_MS"},
};

__attribute__((noreturn)) static void usage(void)
{
    fprintf(stderr, "usage: lkv_test ENDPOINTS [--timeout MS] [--lazy] [--token T] SUBCOMMAND "
                    "[ARGS]\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(stderr, "  %s %s\n", commands[i].name, commands[i].args);
    exit(EXIT_USAGE);
}

int main(int argc, char **argv)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc < 3)
        usage();
    struct run r;
    memset(&r, 0, sizeof r);
    r.endpoints = argv[1];
    int i = 2;
    for (; i < argc && strncmp(argv[i], "--", 2) == 0; i++) {
        if (strcmp(argv[i], "--timeout") == 0 && i + 1 < argc)
            r.opt.timeout_ms = arg_long(argv[++i], 1, 3600000, "--timeout");
        else if (strcmp(argv[i], "--lazy") == 0)
            r.opt.lazy = 1;
        else if (strcmp(argv[i], "--token") == 0 && i + 1 < argc)
            r.opt.token = argv[++i];
        else
            usage();
    }
    if (i >= argc)
        usage();
    for (size_t k = 0; k < sizeof commands / sizeof commands[0]; k++) {
        const struct command *cmd = &commands[k];
        if (strcmp(argv[i], cmd->name) != 0)
            continue;
        int n = argc - i - 1;
        if (n < cmd->min_args || n > cmd->max_args)
            usage_error("usage: %s %s", cmd->name, cmd->args);
        /* argv is NULL-terminated: optional arguments read as NULL */
        int rc = cmd->fn(&r, argv + i + 1);
        fflush(stdout);
        return rc;
    }
    usage();
}
