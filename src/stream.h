/*
 * stream.h -- what upload.c and download.c need of the HTTP server: to
 * park a connection while a chunk is in flight and to wake it when the
 * chunk lands. server.c gives libmicrohttpd's suspend and resume.
 *
 * The order is what makes it safe: a connection is suspended before the
 * stream records it as parked (under the stream's lock), so the worker that
 * lands the chunk and finds it parked always resumes a suspended connection
 * (libmicrohttpd 0.9.75 drops a suspend that follows its resume, and the
 * connection would then wait for an event that never comes).
 */
#ifndef LKV_STREAM_H
#define LKV_STREAM_H

struct stream_hooks {
    void (*suspend)(void *conn);   /* on the connection's own thread */
    void (*resume)(void *conn);    /* from any thread */
};

#endif
