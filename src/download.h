/*
 * download.h -- a chunked value (chunks.h) sent as its chunks are read: one
 * chunk being sent and one read ahead, and the next read asked for only
 * when the client has taken the one before, so a client that stops
 * reading stops the reads and lazykvd holds at most two chunks for it.
 *
 * libmicrohttpd's thread pulls the bytes (download_read, its content
 * reader); when the next chunk has not landed yet it suspends the
 * connection and parks it until the worker that reads the chunk wakes it.
 * The chunks read are those of the set the main row named when it was
 * read, and chunk rows never change, so a download never mixes two
 * versions; a chunk that is gone (the value was replaced and its set
 * collected) cuts the response short instead.
 *
 * Ownership: the response holds one reference and the read in flight
 * another; the worker frees a download whose response went away while a
 * chunk was being read.
 */
#ifndef LKV_DOWNLOAD_H
#define LKV_DOWNLOAD_H

#include <stdint.h>
#include <sys/types.h>

#include "store.h"
#include "stream.h"

struct download;
struct worker;

/* Starts sending bytes [first, last] (a satisfiable range, or the whole
 * value) of rec, a chunked value, read from partition through worker w:
 * the first chunk is asked for at once. NULL when out of memory. */
struct download *download_start(struct worker *w, const struct record *rec, int partition,
                                uint64_t first, uint64_t last, const struct stream_hooks *hooks);

/* The connection the bytes go to (before the first download_read). */
void download_attach(struct download *d, void *conn);

/* libmicrohttpd's content reader: bytes from pos (relative to first) into
 * buf; 0 after parking the connection; -1 when the value cannot be sent
 * whole (the connection is then closed, short of Content-Length). */
ssize_t download_read(struct download *d, uint64_t pos, char *buf, size_t max);

/* The response is done with d. */
void download_release(struct download *d);

#endif
