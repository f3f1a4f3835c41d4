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
 * is left behind when the request ends, nor when lazykvd is killed. It
 * costs disk space (the body, until its chunks are written) and one file
 * descriptor.
 *
 * Reads and writes are ordinary blocking calls, made on libmicrohttpd's
 * threads (appends) and the workers' (reads). They go to the page cache,
 * so they cost a copy; they sleep only when the kernel throttles a writer
 * with too many dirty pages, or reads back a page it evicted. The worker
 * asks for the next chunk ahead (spool_will_read) so that its read finds
 * it in memory. A file system in memory (tmpfs) for $TMPDIR would hold
 * bodies in RAM: use a disk.
 */
#ifndef LKV_SPOOL_H
#define LKV_SPOOL_H

#include <stddef.h>
#include <stdint.h>

struct spool;

/* The directory spools go to when none is named: $TMPDIR, or /var/tmp
 * when unset or empty. */
const char *spool_default_dir(void);

/* A new empty spool in dir (NULL: spool_default_dir()). NULL with errno
 * set when it cannot be made. */
struct spool *spool_open(const char *dir);

/* Appends n bytes. 0, or -1 with errno set (ENOSPC: the disk is full, or
 * would be left with less than 5 % of it free, at most 1 GiB: spooled
 * bodies never fill a disk that others write to). */
int spool_append(struct spool *sp, const void *data, size_t n);

/* Whether dir (NULL: spool_default_dir()) has room for n bytes more, as
 * spool_append counts it: to refuse a body by its Content-Length before
 * reading it. 1 also when that cannot be told. */
int spool_room(const char *dir, uint64_t n);

/* Reads n bytes from offset off, which must lie within what was appended.
 * 0, or -1 with errno set (EIO also for a short file). */
int spool_read(const struct spool *sp, uint64_t off, void *buf, size_t n);

/* Asks the kernel to read n bytes from offset off into the page cache
 * now, for a spool_read to come (posix_fadvise WILLNEED; advice only). */
void spool_will_read(const struct spool *sp, uint64_t off, size_t n);

/* Bytes appended so far. */
uint64_t spool_length(const struct spool *sp);

/* Closes and frees sp (the file goes with it). NULL is allowed. */
void spool_free(struct spool *sp);

#endif
