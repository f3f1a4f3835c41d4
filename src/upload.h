/*
 * upload.h -- a large value's body written to its master as it arrives,
 * one chunk (chunks.h) at a time, so lazykvd never holds more than two
 * chunks of it: one in flight to the database and one filling.
 *
 * libmicrohttpd's thread feeds the body (upload_feed); when both chunks are
 * taken it suspends the connection and parks it (upload_park) until the
 * key's worker has written the chunk in flight and wakes it. Canonical
 * uploads tee each chunk to every other reachable partition (kv.h). The
 * chunks are a set nothing names until the write that switches the key's
 * main row to it (handlers.c, lane.c): an upload that stops half-way
 * leaves the old value whole, and its chunks to the collector.
 *
 * Ownership: the request holds one reference and every chunk in flight
 * another, so a client that goes away while a chunk is written leaves the
 * upload to the worker, which frees it when the chunk lands.
 */
#ifndef LKV_UPLOAD_H
#define LKV_UPLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "lkv.h"
#include "stream.h"

struct upload;
struct worker;

/* Starts the upload of key (copied) through worker w with its first chunk,
 * CHUNKS_SIZE bytes at first (taken: the upload frees it), which is
 * written at once. NULL when out of memory (first is freed then). */
struct upload *upload_start(struct worker *w, const char *key, size_t key_len, int canonical,
                            char *first, const struct stream_hooks *hooks);

/* Takes body bytes; returns how many (all of them once the upload has
 * failed: the rest of the body is discarded). Fewer than len means both
 * chunks are taken: the caller suspends the connection, then upload_park. */
size_t upload_feed(struct upload *up, const char *data, size_t len);

/* The body has ended: writes the last chunk. 1 when the upload is over
 * (every chunk written, or a failure: upload_status), 0 when the caller
 * must suspend the connection and upload_park, and ask again once woken. */
int upload_finish(struct upload *up);

/* conn is suspended: 1 when it is parked (the worker resumes it), 0 when
 * the upload can go on already (the caller resumes it). */
int upload_park(struct upload *up, void *conn);

/* LKV_OK, or the first failure (LKV_EUNAVAIL, LKV_ENOMEM, ...). */
enum lkv_status upload_status(struct upload *up);

/* After upload_finish said 1 with LKV_OK: the set's name and its chunks. */
uint64_t upload_set(const struct upload *up);
uint32_t upload_chunks(const struct upload *up);

/* The request is done with up (answered, or its client gone). */
void upload_release(struct upload *up);

#endif
