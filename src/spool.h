/*
 * spool.h -- a request body kept on local disk while it arrives, for a body
 * that cannot go to the database yet: a content-addressed write
 * (POST ?key=sha256) learns its key, and so its master, only at its last
 * byte. Kept in memory, a 1 GiB body would cost 1 GiB of lazykvd; spooled,
 * it costs a file descriptor, and is then written to the master one chunk
 * at a time (kv.c), as a streamed upload is.
 *
 * The file is unnamed (O_TMPFILE, or created and unlinked at once where
 * the file system has no O_TMPFILE), in $TMPDIR or else /var/tmp: nothing
 * is left behind when the request ends, nor when lazykvd is killed. Reads
 * and writes are ordinary blocking calls; they go to the page cache, as
 * libmicrohttpd's own socket reads go to the kernel.
 */
#ifndef LKV_SPOOL_H
#define LKV_SPOOL_H

#include <stddef.h>
#include <stdint.h>

struct spool;

/* A new empty spool in dir (NULL: $TMPDIR, or /var/tmp when unset or
 * empty). NULL with errno set when it cannot be made. */
struct spool *spool_open(const char *dir);

/* Appends n bytes. 0, or -1 with errno set (ENOSPC: the disk is full). */
int spool_append(struct spool *sp, const void *data, size_t n);

/* Reads n bytes from offset off, which must lie within what was appended.
 * 0, or -1 with errno set (EIO also for a short file). */
int spool_read(const struct spool *sp, uint64_t off, void *buf, size_t n);

/* Bytes appended so far. */
uint64_t spool_length(const struct spool *sp);

/* Closes and frees sp (the file goes with it). NULL is allowed. */
void spool_free(struct spool *sp);

#endif
