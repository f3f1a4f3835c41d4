/*
 * accesslog.c -- the access log. See accesslog.h.
 */
#include "accesslog.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"

static int open_file(const char *path, char *err, size_t errlen)
{
    int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0)
        snprintf(err, errlen, "[server] access_log: cannot open %s: %s", path, strerror(errno));
    return fd;
}

int access_log_open(struct access_log *l, const char *spec, char *err, size_t errlen)
{
    l->fd = -1;
    l->path = NULL;
    if (spec == NULL)
        return 0;
    if (strcmp(spec, "-") == 0) {
        l->fd = STDOUT_FILENO;
        return 0;
    }
    l->path = strdup(spec);
    if (l->path == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    l->fd = open_file(spec, err, errlen);
    if (l->fd < 0) {
        free(l->path);
        l->path = NULL;
        return -1;
    }
    return 0;
}

int access_log_reopen(struct access_log *l, char *err, size_t errlen)
{
    if (l->path == NULL)
        return 0;
    int fd = open_file(l->path, err, errlen);
    if (fd < 0)
        return -1;
    int rc = dup2(fd, l->fd) < 0 ? -1 : 0;
    if (rc != 0)
        snprintf(err, errlen, "[server] access_log: cannot reopen %s: %s", l->path,
                 strerror(errno));
    close(fd);
    return rc;
}

void access_log_close(struct access_log *l)
{
    if (l->path && l->fd >= 0)
        close(l->fd);
    free(l->path);
    l->path = NULL;
    l->fd = -1;
}

/* Appends s (or "-" when NULL or empty) escaped for a quoted field. */
static int put_escaped(struct buf *out, const char *s)
{
    if (s == NULL || *s == '\0')
        return buf_puts(out, "-");
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        int rc;
        if (*p == '"' || *p == '\\')
            rc = buf_printf(out, "\\%c", *p);
        else if (*p < 0x20 || *p >= 0x7f)
            rc = buf_printf(out, "\\x%02x", *p);
        else
            rc = buf_append(out, p, 1);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static void client_host(const struct sockaddr *sa, char *host, size_t len)
{
    snprintf(host, len, "-");
    if (sa && sa->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, host,
                  (socklen_t)len);
    else if (sa && sa->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, host,
                  (socklen_t)len);
}

int access_log_format(const struct access_entry *e, struct buf *out)
{
    char host[INET6_ADDRSTRLEN + 1], when[64], bytes[24];
    struct tm tm;
    client_host(e->addr, host, sizeof(host));
    gmtime_r(&e->when, &tm);
    strftime(when, sizeof(when), "%d/%b/%Y:%H:%M:%S +0000", &tm);
    if (e->bytes > 0)
        snprintf(bytes, sizeof(bytes), "%" PRIu64, e->bytes);
    else
        snprintf(bytes, sizeof(bytes), "-");
    out->len = 0;
    /* the user field is a token's NAME ([A-Za-z0-9._@-]): nothing to escape */
    if (buf_printf(out, "%s - %s [%s] \"", host, e->user && *e->user ? e->user : "-", when) ||
        put_escaped(out, e->method) || buf_puts(out, " ") || put_escaped(out, e->target) ||
        buf_puts(out, " ") || put_escaped(out, e->version) ||
        buf_printf(out, "\" %u %s \"", e->status, bytes) || put_escaped(out, e->referer) ||
        buf_puts(out, "\" \"") || put_escaped(out, e->agent) ||
        buf_printf(out, "\" %" PRIu64 " ", e->micros))
        return -1;
    if (e->partition >= 0)
        return buf_printf(out, "%d\n", e->partition);
    return buf_puts(out, "-\n");
}

void access_log_write(struct access_log *l, const struct access_entry *e)
{
    if (l->fd < 0)
        return;
    struct buf line = {0};
    if (access_log_format(e, &line) == 0) {
        ssize_t n = write(l->fd, line.data, line.len);
        (void)n; /* dropped on error: see accesslog.h */
    }
    buf_free(&line);
}
