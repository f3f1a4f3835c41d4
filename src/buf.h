/*
 * buf.h -- a growable byte buffer. Every append reports allocation failure
 * (-1) instead of aborting; the buffer is left unchanged on failure.
 *
 * Ownership: a struct buf owns its data. buf_free() releases it;
 * buf_steal() hands it to the caller (who frees it with free()).
 */
#ifndef LKV_BUF_H
#define LKV_BUF_H

#include <stddef.h>

struct buf {
    char  *data; /* owned; NUL-terminated when len > 0 or after any append */
    size_t len;  /* bytes used, not counting the terminating NUL */
    size_t cap;  /* bytes allocated */
};

#define BUF_INIT {NULL, 0, 0}

/* Makes room for at least extra more bytes (plus a NUL). 0 or -1. */
int buf_reserve(struct buf *b, size_t extra);
/* Appends len bytes. 0 or -1. */
int buf_append(struct buf *b, const void *data, size_t len);
/* Appends a NUL-terminated string. 0 or -1. */
int buf_puts(struct buf *b, const char *s);
/* Appends printf-formatted text. 0 or -1. */
int buf_printf(struct buf *b, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Returns the data (never NULL: an empty malloc'd string when empty, or NULL
 * if even that fails) and leaves b empty; the caller frees it. */
char *buf_steal(struct buf *b, size_t *len);
void buf_free(struct buf *b);

#endif
