#include "fuzz.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/crc32c.h"

uint8_t *fuzz_fix_crcs(const uint8_t *data, size_t size, size_t offset)
{
    uint8_t *buf = malloc(size ? size : 1);
    if (!buf)
        abort();
    memcpy(buf, data, size);
    while (offset + 8 <= size) {
        uint32_t len = get_u32(buf + offset + 4);
        if ((uint64_t)offset + 12 + len > size)
            break;
        put_u32(buf + offset + 8 + len, crc32c(0, buf + offset, 8 + (size_t)len));
        offset += 12 + (size_t)len;
    }
    return buf;
}

void fuzz_config(struct machine_config *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->console = "none";
    cfg->append = "";
    cfg->max_ram_size = FUZZ_MAX_RAM;
}

void fuzz_report(bool accepted, const struct error *err)
{
    static int verbose = -1;
    if (verbose < 0)
        verbose = getenv("FERRY_FUZZ_VERBOSE") != NULL;
    if (verbose)
        fprintf(stderr, "fuzz: %s%s\n", accepted ? "accepted" : "refused: ",
                accepted ? "" : err->msg);
}

struct fuzz_feeder {
    pthread_t thread;
    int fd;
    const uint8_t *data;
    size_t size;
};

static void *feed_thread(void *arg)
{
    struct fuzz_feeder *f = arg;
    size_t off = 0;
    while (off < f->size) {
        ssize_t n = send(f->fd, f->data + off, f->size - off, MSG_NOSIGNAL);
        if (n <= 0)
            break;
        off += (size_t)n;
    }
    shutdown(f->fd, SHUT_WR);
    char sink[4096];
    while (read(f->fd, sink, sizeof sink) > 0) {
    }
    return NULL;
}

int fuzz_feed_start(struct fuzz_feeder **out, const uint8_t *data, size_t size)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        abort();
    struct fuzz_feeder *f = calloc(1, sizeof *f);
    if (!f)
        abort();
    f->fd = sv[1];
    f->data = data;
    f->size = size;
    if (pthread_create(&f->thread, NULL, feed_thread, f) != 0)
        abort();
    *out = f;
    return sv[0];
}

void fuzz_feed_join(struct fuzz_feeder *f)
{
    pthread_join(f->thread, NULL);
    close(f->fd);
    free(f);
}
