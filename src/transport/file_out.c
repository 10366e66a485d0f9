/* Save files are written the safe way: into a new temporary file next to
 * the target (O_EXCL | O_NOFOLLOW: never through a link, never over a file
 * someone else created), synced, and renamed over the target only when
 * complete. A save that fails half-way (disk full, cancelled) removes its
 * temporary file, and whatever was at the target stays as it was. */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "transport/transport.h"

/* The directory part of path ("." for a bare name), malloc'd. */
static char *dir_of(const char *path)
{
    char *copy = strdup(path);
    if (!copy)
        return NULL;
    char *d = strdup(dirname(copy));
    free(copy);
    return d;
}

int transport_open_file(const char *path, struct endpoint *ep, struct error *err)
{
    *ep = (struct endpoint){.fd = -1, .is_file = true};
    struct stat st;
    if (!*path)
        return error_set(err, "save needs a file name");
    if (lstat(path, &st) == 0) {
        if (S_ISLNK(st.st_mode))
            return error_set(err, "refusing to save to %s: it is a symbolic link", path);
        if (!S_ISREG(st.st_mode))
            return error_set(err, "refusing to save to %s: it exists and is not a regular file",
                             path);
    } else if (errno != ENOENT) {
        return error_set(err, "cannot save to %s: %s", path, strerror(errno));
    }
    char *dir = dir_of(path);
    size_t cap = strlen(path) + 64;
    ep->tmp_path = malloc(cap);
    ep->final_path = strdup(path);
    if (!dir || !ep->tmp_path || !ep->final_path) {
        free(dir);
        transport_close(ep);
        return error_set(err, "out of memory");
    }
    const char *base = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    for (int attempt = 0; attempt < 16 && ep->fd < 0; attempt++) {
        snprintf(ep->tmp_path, cap, "%s/.%s.%ld.%lx.tmp", dir, base, (long)getpid(),
                 (unsigned long)(ts.tv_nsec + attempt));
        ep->fd = open(ep->tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
        if (ep->fd < 0 && errno != EEXIST)
            break;
    }
    free(dir);
    if (ep->fd < 0) {
        int e = errno;
        free(ep->tmp_path);
        ep->tmp_path = NULL; /* nothing of ours to remove */
        transport_close(ep);
        return error_set(err, "cannot create %s: %s", path, strerror(e));
    }
    return 0;
}

int transport_commit(struct endpoint *ep, struct error *err)
{
    if (!ep->tmp_path)
        return 0;
    if (fsync(ep->fd) < 0)
        return error_set(err, "writing %s: %s", ep->final_path, strerror(errno));
    /* The file stays 0600: it holds all of the guest's memory. */
    if (rename(ep->tmp_path, ep->final_path) < 0)
        return error_set(err, "cannot put %s in place: %s", ep->final_path, strerror(errno));
    free(ep->tmp_path);
    ep->tmp_path = NULL;
    /* The rename itself must survive a crash too. */
    char *dir = dir_of(ep->final_path);
    int dfd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    free(dir);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}
