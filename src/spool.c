/* spool.c -- a request body on local disk (spool.h). */
#include "spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/statvfs.h>
#include <unistd.h>

struct spool {
    int fd;             /* owned: the unnamed file */
    uint64_t len;       /* bytes appended */
};

const char *spool_default_dir(void)
{
    const char *tmp = getenv("TMPDIR");
    return tmp && tmp[0] ? tmp : "/var/tmp";
}

/* An unnamed file in dir: O_TMPFILE where the file system has it, else a
 * named one unlinked at once. -1 with errno set. */
static int unnamed_file(const char *dir)
{
    int fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
    if (fd >= 0 || (errno != EOPNOTSUPP && errno != EISDIR && errno != EINVAL))
        return fd;
    char path[4096];
    if (snprintf(path, sizeof(path), "%s/lazykv-spool-XXXXXX", dir) >= (int)sizeof(path)) {
        errno = ENAMETOOLONG;
        return -1;
    }
    fd = mkostemp(path, O_CLOEXEC);
    if (fd < 0)
        return -1;
    if (unlink(path) != 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    return fd;
}

struct spool *spool_open(const char *dir)
{
    struct spool *sp = malloc(sizeof(*sp));
    if (sp == NULL)
        return NULL;
    sp->fd = unnamed_file(dir && dir[0] ? dir : spool_default_dir());
    sp->len = 0;
    if (sp->fd < 0) {
        int e = errno;
        free(sp);
        errno = e;
        return NULL;
    }
    return sp;
}

/* Bytes a spool leaves free on its file system: 5 % of it, at most 1 GiB
 * (as ext4 keeps 5 % for root), so that bodies being spooled never fill a
 * disk that others (a MariaDB on the same host) write to. */
static uint64_t free_floor(const struct statvfs *vfs)
{
    uint64_t total = (uint64_t)vfs->f_blocks * vfs->f_frsize;
    uint64_t floor = total / 20;
    return floor < (1ULL << 30) ? floor : 1ULL << 30;
}

/* Whether n more bytes leave the floor free on fd's file system (1 when
 * that cannot be told). */
static int room_for(int fd, uint64_t n)
{
    struct statvfs vfs;
    if (fstatvfs(fd, &vfs) != 0)
        return 1;
    uint64_t avail = (uint64_t)vfs.f_bavail * vfs.f_frsize;
    return avail >= n && avail - n >= free_floor(&vfs);
}

int spool_room(const char *dir, uint64_t n)
{
    int fd = open(dir && dir[0] ? dir : spool_default_dir(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return 1; /* spool_open says what is wrong */
    int room = room_for(fd, n);
    close(fd);
    return room;
}

int spool_append(struct spool *sp, const void *data, size_t n)
{
    if (!room_for(sp->fd, n)) {
        errno = ENOSPC;
        return -1;
    }
    const char *p = data;
    while (n > 0) {
        ssize_t w = pwrite(sp->fd, p, n, (off_t)sp->len);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += w;
        n -= (size_t)w;
        sp->len += (uint64_t)w;
    }
    return 0;
}

int spool_read(const struct spool *sp, uint64_t off, void *buf, size_t n)
{
    if (off > sp->len || n > sp->len - off) {
        errno = EINVAL;
        return -1;
    }
    char *p = buf;
    while (n > 0) {
        ssize_t r = pread(sp->fd, p, n, (off_t)off);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0) { /* the file is shorter than what was written to it */
            errno = EIO;
            return -1;
        }
        p += r;
        off += (uint64_t)r;
        n -= (size_t)r;
    }
    return 0;
}

void spool_will_read(const struct spool *sp, uint64_t off, size_t n)
{
    if (off < sp->len)
        (void)posix_fadvise(sp->fd, (off_t)off, (off_t)n, POSIX_FADV_WILLNEED);
}

uint64_t spool_length(const struct spool *sp)
{
    return sp->len;
}

void spool_free(struct spool *sp)
{
    if (sp == NULL)
        return;
    close(sp->fd);
    free(sp);
}
