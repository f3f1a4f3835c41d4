/*
 * blobceiling.c -- the large-value ceiling for `make bench` (issue 14): what
 * one MariaDB connection can take when a value is written and read as rows
 * of 1 MiB, the bytes already in memory. lazykvd's streamed POST and GET of
 * the same bytes are reported as a ratio to this.
 *
 * The table has the shape src/chunks.h gives `@T_chunks` (kh, version, n,
 * k, data; primary key (kh, version, n), kh = UNHEX(SHA2(k, 256)) computed
 * by the server), and the statements are the design's: one prepared,
 * autocommitted INSERT per chunk, then one prepared point SELECT per chunk,
 * in order. Every chunk is distinct (a PRNG fills it) and is compared with
 * what was written when it is read back.
 *
 * usage: blobceiling HOST PORT USER PASSWORD DB TABLE KEY VERSION MIB
 * Creates TABLE if it does not exist (the caller drops it); VERSION must be
 * new for KEY in TABLE. Prints
 * "blobceiling: bytes=N rows=R write_ms=T write_MBps=X read_ms=T read_MBps=Y"
 * (MB = 10^6 bytes); exit 1 on any error or a mismatch.
 */
#include <mysql.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK (1u << 20)

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void fill(unsigned char *p, size_t n, uint64_t seed)
{
    uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i + 8 <= n; i += 8) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        memcpy(p + i, &x, 8);
    }
}

static int fail(MYSQL *m, MYSQL_STMT *s, const char *what)
{
    fprintf(stderr, "blobceiling: %s: %s\n", what, s ? mysql_stmt_error(s) : mysql_error(m));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 10) {
        fprintf(stderr, "usage: blobceiling HOST PORT USER PASSWORD DB TABLE KEY VERSION MIB\n");
        return 2;
    }
    const char *table = argv[6], *key = argv[7];
    unsigned long long version = strtoull(argv[8], NULL, 10);
    unsigned rows = (unsigned)atoi(argv[9]);
    if (rows == 0 || strlen(table) > 64 || strchr(table, '`')) {
        fprintf(stderr, "blobceiling: bad MIB or TABLE\n");
        return 2;
    }
    MYSQL *m = mysql_init(NULL);
    if (m == NULL || !mysql_real_connect(m, argv[1], argv[3], argv[4], argv[5],
                                         (unsigned)atoi(argv[2]), NULL, 0))
        return fail(m, NULL, "connect");
    char sql[1024];
    snprintf(sql, sizeof(sql),
             "CREATE TABLE IF NOT EXISTS `%s` (kh BINARY(32) NOT NULL, version BIGINT UNSIGNED "
             "NOT NULL, n INT UNSIGNED NOT NULL, k VARBINARY(3072) NOT NULL, data MEDIUMBLOB "
             "NOT NULL, PRIMARY KEY (kh, version, n)) ENGINE=InnoDB ROW_FORMAT=DYNAMIC", table);
    if (mysql_query(m, sql) != 0)
        return fail(m, NULL, "create table");

    unsigned char *data = malloc((size_t)rows * CHUNK), *got = malloc(CHUNK);
    if (data == NULL || got == NULL) {
        free(data);
        free(got);
        fprintf(stderr, "blobceiling: out of memory\n");
        return 1;
    }
    for (unsigned i = 0; i < rows; i++)
        fill(data + (size_t)i * CHUNK, CHUNK, version * 100003u + i);
    unsigned long klen = (unsigned long)strlen(key), dlen = CHUNK, glen = 0;
    unsigned n = 0;

    /* write: one autocommitted INSERT per chunk */
    snprintf(sql, sizeof(sql), "INSERT INTO `%s` (kh, version, n, k, data) "
             "VALUES (UNHEX(SHA2(?, 256)), ?, ?, ?, ?)", table);
    MYSQL_STMT *w = mysql_stmt_init(m);
    if (w == NULL || mysql_stmt_prepare(w, sql, strlen(sql)) != 0)
        return fail(m, w, "prepare insert");
    MYSQL_BIND p[5];
    memset(p, 0, sizeof(p));
    p[0].buffer_type = MYSQL_TYPE_BLOB;
    p[0].buffer = (void *)key;
    p[0].length = &klen;
    p[1].buffer_type = MYSQL_TYPE_LONGLONG;
    p[1].buffer = &version;
    p[1].is_unsigned = 1;
    p[2].buffer_type = MYSQL_TYPE_LONG;
    p[2].buffer = &n;
    p[2].is_unsigned = 1;
    p[3] = p[0];
    p[4].buffer_type = MYSQL_TYPE_BLOB;
    p[4].length = &dlen;
    double t0 = now_s();
    for (n = 0; n < rows; n++) {
        p[4].buffer = data + (size_t)n * CHUNK;
        if (mysql_stmt_bind_param(w, p) != 0 || mysql_stmt_execute(w) != 0)
            return fail(m, w, "insert");
    }
    double tw = now_s() - t0;
    mysql_stmt_close(w);

    /* read: one point SELECT per chunk, in order */
    snprintf(sql, sizeof(sql), "SELECT data FROM `%s` WHERE kh = UNHEX(SHA2(?, 256)) "
             "AND version = ? AND n = ?", table);
    MYSQL_STMT *r = mysql_stmt_init(m);
    if (r == NULL || mysql_stmt_prepare(r, sql, strlen(sql)) != 0)
        return fail(m, r, "prepare select");
    MYSQL_BIND res;
    memset(&res, 0, sizeof(res));
    res.buffer_type = MYSQL_TYPE_BLOB;
    res.buffer = got;
    res.buffer_length = CHUNK;
    res.length = &glen;
    t0 = now_s();
    for (n = 0; n < rows; n++) {
        if (mysql_stmt_bind_param(r, p) != 0 || mysql_stmt_execute(r) != 0 ||
            mysql_stmt_bind_result(r, &res) != 0)
            return fail(m, r, "select");
        int f = mysql_stmt_fetch(r);
        if (f != 0 || glen != CHUNK || memcmp(got, data + (size_t)n * CHUNK, CHUNK) != 0) {
            fprintf(stderr, "blobceiling: chunk %u read back wrong (fetch %d, %lu bytes)\n", n, f,
                    glen);
            return 1;
        }
        mysql_stmt_free_result(r);
    }
    double tr = now_s() - t0;
    mysql_stmt_close(r);
    double bytes = (double)rows * CHUNK;
    printf("blobceiling: bytes=%.0f rows=%u write_ms=%.1f write_MBps=%.1f read_ms=%.1f "
           "read_MBps=%.1f\n", bytes, rows, tw * 1000, bytes / tw / 1e6, tr * 1000,
           bytes / tr / 1e6);
    free(data);
    free(got);
    mysql_close(m);
    return 0;
}
