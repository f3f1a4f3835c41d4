/*
 * notify.c -- the sd_notify protocol in one sendto(). See notify.h.
 */
#include "notify.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

int notify_send(const char *state)
{
    const char *path = getenv("NOTIFY_SOCKET");
    if (path == NULL || path[0] == '\0')
        return 0;
    struct sockaddr_un sa;
    memset(&sa, 0, sizeof(sa));
    sa.sun_family = AF_UNIX;
    size_t len = strlen(path);
    /* A filesystem path needs its NUL inside sun_path; an abstract name
     * (leading '@' read as NUL) is exactly len bytes long, no NUL after. */
    if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path) ||
        (path[0] == '@' && len < 2)) {
        errno = EINVAL;
        return -1;
    }
    memcpy(sa.sun_path, path, len);
    if (path[0] == '@')
        sa.sun_path[0] = '\0';
    socklen_t salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len +
                                  (path[0] == '/' ? 1 : 0));
    int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    size_t n = strlen(state);
    ssize_t sent;
    do
        sent = sendto(fd, state, n, MSG_NOSIGNAL, (const struct sockaddr *)&sa, salen);
    while (sent < 0 && errno == EINTR);
    int saved = errno;
    close(fd);
    if (sent < 0 || (size_t)sent != n) {
        errno = sent < 0 ? saved : EMSGSIZE;
        return -1;
    }
    return 1;
}

int notify_ready(const char *status)
{
    char msg[512];
    if (status == NULL)
        return notify_send("READY=1");
    /* STATUS is one line (the protocol separates assignments by newlines);
     * a longer one is cut, which only shortens what systemctl shows. */
    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%.*s", (int)strcspn(status, "\n"), status);
    return notify_send(msg);
}

int notify_reloading(void)
{
    /* MONOTONIC_USEC lets systemd >= 253 (Type=notify-reload) tell this
     * reload from an earlier one; older versions ignore it. */
    struct timespec ts;
    char msg[64];
    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
    return notify_send(msg);
}

int notify_stopping(void)
{
    return notify_send("STOPPING=1");
}
