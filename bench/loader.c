/*
 * loader.c -- the sync ceiling for `make bench`: copies rows of 1 KiB into a
 * MariaDB table with multi-row upserts in transactions, the same statement
 * shape as lazykv-sync applies (ON DUPLICATE KEY UPDATE with the version
 * rule), with the rows already in memory: what the database can take.
 *
 * usage: loader HOST PORT USER PASSWORD DB TABLE ROWS BATCH
 * Prints "loader: rows=N ms=T rows_per_s=R".
 */
#include <mysql.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CHUNK 50

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 9) {
        fprintf(stderr, "usage: loader HOST PORT USER PASSWORD DB TABLE ROWS BATCH\n");
        return 2;
    }
    int rows = atoi(argv[7]), batch = atoi(argv[8]);
    MYSQL *m = mysql_init(NULL);
    if (m == NULL || !mysql_real_connect(m, argv[1], argv[3], argv[4], argv[5],
                                         (unsigned)atoi(argv[2]), NULL, 0)) {
        fprintf(stderr, "loader: %s\n", m ? mysql_error(m) : "out of memory");
        return 1;
    }
    char sql[8192];
    int n = snprintf(sql, sizeof(sql), "INSERT INTO `%s` (k, v, ctype, version, deleted, seq) VALUES ",
                     argv[6]);
    for (int i = 0; i < CHUNK; i++)
        n += snprintf(sql + n, sizeof(sql) - (size_t)n, "%s(?, ?, '', ?, 0, 0)", i ? ", " : "");
    snprintf(sql + n, sizeof(sql) - (size_t)n,
             " ON DUPLICATE KEY UPDATE v = IF(VALUES(version) > version, VALUES(v), v),"
             " version = GREATEST(version, VALUES(version))");
    MYSQL_STMT *s = mysql_stmt_init(m);
    if (s == NULL || mysql_stmt_prepare(s, sql, strlen(sql)) != 0) {
        fprintf(stderr, "loader: prepare: %s\n", mysql_error(m));
        return 1;
    }
    static char keys[CHUNK][32], value[1024];
    static unsigned long klen[CHUNK], vlen[CHUNK];
    static unsigned long long version[CHUNK];
    MYSQL_BIND p[CHUNK * 3];
    memset(p, 0, sizeof(p));
    memset(value, 'v', sizeof(value));
    double t0 = now_s();
    int done = 0;
    while (done < rows) {
        mysql_query(m, "START TRANSACTION");
        for (int in_batch = 0; in_batch < batch && done < rows; in_batch += CHUNK) {
            for (int i = 0; i < CHUNK; i++) {
                klen[i] = (unsigned long)snprintf(keys[i], sizeof(keys[i]), "load/%09d", done + i);
                vlen[i] = sizeof(value);
                version[i] = (unsigned long long)(done + i + 1);
                p[i * 3].buffer_type = MYSQL_TYPE_BLOB;
                p[i * 3].buffer = keys[i];
                p[i * 3].length = &klen[i];
                p[i * 3 + 1].buffer_type = MYSQL_TYPE_BLOB;
                p[i * 3 + 1].buffer = value;
                p[i * 3 + 1].length = &vlen[i];
                p[i * 3 + 2].buffer_type = MYSQL_TYPE_LONGLONG;
                p[i * 3 + 2].buffer = &version[i];
                p[i * 3 + 2].is_unsigned = 1;
            }
            if (mysql_stmt_bind_param(s, p) != 0 || mysql_stmt_execute(s) != 0) {
                fprintf(stderr, "loader: %s\n", mysql_stmt_error(s));
                return 1;
            }
            done += CHUNK;
        }
        mysql_commit(m);
    }
    double t = now_s() - t0;
    printf("loader: rows=%d ms=%.0f rows_per_s=%.0f\n", done, t * 1000, done / t);
    mysql_stmt_close(s);
    mysql_close(m);
    return 0;
}
