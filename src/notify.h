/*
 * notify.h -- tells the service manager where lazykvd's life stands:
 * systemd's Type=notify readiness protocol, without libsystemd.
 *
 * systemd (or any supervisor speaking the same protocol) passes the path of
 * an AF_UNIX datagram socket in $NOTIFY_SOCKET; a service sends it
 * newline-separated "VARIABLE=value" assignments: READY=1 once it serves,
 * RELOADING=1 while it reloads, STOPPING=1 when it begins to shut down. A
 * path starting with '@' names a socket in the abstract namespace (the '@'
 * stands for a leading NUL byte). The protocol is one sendto() a message,
 * so it is written here in a few lines instead of linking libsystemd.
 *
 * Without $NOTIFY_SOCKET every call is a no-op: lazykvd run by hand, by
 * the tests or by another supervisor behaves exactly as before. A failure
 * to notify is returned, never fatal: systemd then times the start out and
 * says so, which is the right place for the error to show.
 */
#ifndef LKV_NOTIFY_H
#define LKV_NOTIFY_H

/* Sends state (e.g. "READY=1\nSTATUS=listening") to $NOTIFY_SOCKET as one
 * datagram. Returns 1 when sent, 0 when $NOTIFY_SOCKET is unset or empty
 * (nothing to do), -1 when it is set but unusable (not an absolute path or
 * '@' name, too long for sockaddr_un) or the send failed (errno says why).
 * Reads the environment each call and keeps no descriptor; safe from any
 * thread (but not from a signal handler: it may call getenv). */
int notify_send(const char *state);

/* notify_send("READY=1\nSTATUS=<status>"): the service is ready. status
 * (a single line, may be NULL) shows in `systemctl status`. */
int notify_ready(const char *status);

/* notify_send("RELOADING=1\nMONOTONIC_USEC=<now>"): a reload begins; send
 * notify_ready() when it is done. */
int notify_reloading(void);

/* notify_send("STOPPING=1"): shutdown begins. */
int notify_stopping(void);

#endif
