/* Raw image file backend: the guest's sector N is the file's bytes
 * [512*N, 512*N+512). A size that is not a multiple of 512 is rounded down
 * (the tail is never touched). Called from the virtio-blk I/O thread. */
#include "backend/disk.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

struct disk_file {
    struct disk d;  /* first: struct disk * converts to struct disk_file * */
    int fd;
};

static int file_fd(struct disk *d)
{
    return ((struct disk_file *)d)->fd;
}

static int file_read(struct disk *d, void *buf, size_t len, uint64_t offset)
{
    if (offset > d->size || len > d->size - offset)
        return -EINVAL;
    uint8_t *p = buf;
    while (len) {
        ssize_t n = pread(file_fd(d), p, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0) {
            /* The file shrank under us: the guest sees zeros, as past EOF. */
            memset(p, 0, len);
            return 0;
        }
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

static int file_write(struct disk *d, const void *buf, size_t len, uint64_t offset)
{
    if (d->readonly)
        return -EROFS;
    if (offset > d->size || len > d->size - offset)
        return -EINVAL;
    const uint8_t *p = buf;
    while (len) {
        ssize_t n = pwrite(file_fd(d), p, len, (off_t)offset);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -errno;
        }
        if (n == 0)
            return -EIO;
        p += n;
        len -= (size_t)n;
        offset += (uint64_t)n;
    }
    return 0;
}

static int file_flush(struct disk *d)
{
    if (d->readonly)
        return 0;
    while (fdatasync(file_fd(d)) < 0) {
        if (errno != EINTR)
            return -errno;
    }
    return 0;
}

static bool file_is_hole(struct disk *d, uint64_t offset, uint64_t len)
{
    /* The next data at or after offset lies past the range (or there is
     * none: ENXIO). Anything else, including errors, says "not known". */
    off_t data = lseek(file_fd(d), (off_t)offset, SEEK_DATA);
    if (data < 0)
        return errno == ENXIO;
    return (uint64_t)data >= offset + len;
}

static void file_close(struct disk *d)
{
    struct disk_file *f = (struct disk_file *)d;
    if (f->fd >= 0)
        close(f->fd);
    free(f);
}

static const struct disk_ops file_ops = {
    .read = file_read,
    .write = file_write,
    .flush = file_flush,
    .close = file_close,
    .is_hole = file_is_hole,
};

int disk_file_open(const char *path, bool readonly, struct disk **out, struct error *err)
{
    if (!*path)
        return error_set(err, "--drive: file= needs a path");
    /* O_NONBLOCK: opening a FIFO read-only must not wait for a writer (it
     * is refused below); it changes nothing for regular files. */
    int fd;
    do {
        fd = open(path, (readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | O_NONBLOCK);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return error_set(err, "--drive: cannot open %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0) {
        int e = errno;
        close(fd);
        return error_set(err, "--drive: cannot stat %s: %s", path, strerror(e));
    }
    if (!S_ISREG(st.st_mode)) {
        close(fd);
        return error_set(err, "--drive: %s is not a regular file", path);
    }
    uint64_t size = (uint64_t)st.st_size & ~511ull;
    if (size == 0) {
        close(fd);
        return error_set(err, "--drive: %s is smaller than one 512-byte sector", path);
    }
    struct disk_file *f = calloc(1, sizeof *f);
    if (!f) {
        close(fd);
        return error_set(err, "out of memory");
    }
    f->fd = fd;
    f->d.ops = &file_ops;
    f->d.size = size;
    f->d.readonly = readonly;
    snprintf(f->d.name, sizeof f->d.name, "%s", path);
    *out = &f->d;
    return 0;
}
