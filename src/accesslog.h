/*
 * accesslog.h -- [server] access_log: one line per request in the combined
 * log format, plus the request time in microseconds and the partition that
 * answered:
 *
 *   HOST - USER [DD/Mon/YYYY:HH:MM:SS +0000] "REQUEST" STATUS BYTES "REFERER" "AGENT" US PART
 *
 * USER is the bearer token's NAME (never the token), '-' without one. Quoted
 * fields escape '"' and '\' with a backslash and any other byte outside
 * printable ASCII as \xHH, so a request cannot forge a line.
 *
 * Threads: each line is one write(2) to an O_APPEND descriptor, so lines of
 * concurrent requests never interleave. access_log_reopen() (SIGHUP, for
 * logrotate) opens the file anew and dup2()s it onto the same descriptor
 * number: a thread writing at that moment writes whole lines to the old
 * file or the new one, and nothing is ever locked.
 */
#ifndef LKV_ACCESSLOG_H
#define LKV_ACCESSLOG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <time.h>

struct access_log {
    int fd;        /* -1: off */
    char *path;    /* owned: NULL for standard output */
};

struct access_entry {
    const struct sockaddr *addr; /* the client, or NULL */
    const char *user;            /* token name, or NULL */
    const char *method;
    const char *target;          /* as sent */
    const char *version;         /* "HTTP/1.1" */
    unsigned status;
    uint64_t bytes;              /* body bytes of the response */
    const char *referer;         /* or NULL */
    const char *agent;           /* or NULL */
    time_t when;                 /* the request arrived */
    uint64_t micros;             /* it took */
    int partition;               /* answered it, or -1 */
};

/* spec: NULL (off), "-" (standard output) or a file name (opened for
 * appending, created 0640). 0, or -1 with one line in err. */
int access_log_open(struct access_log *l, const char *spec, char *err, size_t errlen);

/* Opens the file again (after logrotate moved it). 0, or -1 with err (the
 * old file stays in use). */
int access_log_reopen(struct access_log *l, char *err, size_t errlen);

void access_log_close(struct access_log *l);

/* Formats e as one line (pure; out is reset). 0, or -1 out of memory. */
struct buf;
int access_log_format(const struct access_entry *e, struct buf *out);

/* Writes e's line, if the log is on. A failed write is dropped: a full disk
 * must not stop the service. */
void access_log_write(struct access_log *l, const struct access_entry *e);

#endif
