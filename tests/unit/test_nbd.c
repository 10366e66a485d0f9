/* NBD client backend (src/backend/disk_nbd.c) against a small fake NBD
 * server running in a thread on a loopback socket: handshake (NBD_OPT_GO
 * and the NBD_OPT_EXPORT_NAME fallback), size and flags, read/write round
 * trips, chunking, flush, refused exports, a server that drops the
 * connection or answers with a wrong handle, bad URLs. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "backend/disk.h"

#include "check.h"

/* ---------------------------------------------------------------------- */
/* The fake server: one connection per instance, served by a thread.      */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)(v >> 32)); put32(p + 4, (uint32_t)v); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) << 32 | get32(p + 4); }

struct fake {
    /* configuration */
    uint64_t size;
    const char *export_name;   /* the only name the server accepts */
    uint16_t tflags;           /* transmission flags */
    int no_go;                 /* answer NBD_OPT_GO with ERR_UNSUP */
    int close_at;              /* close the connection on request #k (1-based) */
    int bad_handle_at;         /* answer request #k with a wrong handle */
    int error_at;              /* answer request #k with EIO */
    /* state */
    uint8_t *mem;
    int lfd, port;
    pthread_t thread;
    /* observations */
    uint32_t client_flags;
    int requests, flushes, discs, writes;
    uint32_t max_len;
    int refused;
};

static int rd_full(int fd, void *buf, size_t len)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, 0);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int wr_full(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

static int opt_reply(int fd, uint32_t opt, uint32_t type, const void *data, uint32_t len)
{
    uint8_t h[20];
    put64(h, 0x0003e889045565a9ULL);
    put32(h + 8, opt);
    put32(h + 12, type);
    put32(h + 16, len);
    if (wr_full(fd, h, sizeof h) < 0)
        return -1;
    return len ? wr_full(fd, data, len) : 0;
}

#define ERR(n) (0x80000000u | (n))

/* Option haggling; returns 0 when transmission starts, -1 to hang up. */
static int serve_handshake(struct fake *f, int fd)
{
    uint8_t g[18];
    put64(g, 0x4e42444d41474943ULL);
    put64(g + 8, 0x49484156454f5054ULL);
    put16(g + 16, 3);   /* FIXED_NEWSTYLE | NO_ZEROES */
    uint8_t cf[4];
    if (wr_full(fd, g, sizeof g) < 0 || rd_full(fd, cf, 4) < 0)
        return -1;
    f->client_flags = get32(cf);
    for (;;) {
        uint8_t h[16];
        if (rd_full(fd, h, sizeof h) < 0 || get64(h) != 0x49484156454f5054ULL)
            return -1;
        uint32_t opt = get32(h + 8), len = get32(h + 12);
        if (len > 65536)
            return -1;
        uint8_t *data = malloc(len + 1);
        if (rd_full(fd, data, len) < 0) {
            free(data);
            return -1;
        }
        data[len] = 0;
        if (opt == 7 && !f->no_go) {   /* NBD_OPT_GO */
            uint32_t nlen = len >= 4 ? get32(data) : 0;
            int ok = len >= 4 + nlen + 2 && nlen == strlen(f->export_name) &&
                     memcmp(data + 4, f->export_name, nlen) == 0;
            if (ok) {
                uint16_t ninfo = get16(data + 4 + nlen);
                int asked_export = 0;
                for (uint16_t i = 0; i < ninfo && 4 + nlen + 2 + 2u * i + 2 <= len; i++)
                    asked_export |= get16(data + 4 + nlen + 2 + 2 * i) == 0;
                free(data);
                /* An unrequested NBD_INFO_NAME first: clients must skip it. */
                uint8_t nm[2 + 5] = {0, 1, 'h', 'e', 'l', 'l', 'o'};
                uint8_t info[12];
                put16(info, 0);
                put64(info + 2, f->size);
                put16(info + 10, f->tflags);
                (void)asked_export;
                return opt_reply(fd, 7, 3, nm, sizeof nm) < 0 ||
                       opt_reply(fd, 7, 3, info, sizeof info) < 0 ||
                       opt_reply(fd, 7, 1, NULL, 0) < 0 ? -1 : 0;
            }
            free(data);
            f->refused++;
            const char *msg = "export not found\n";   /* newline: must be sanitized */
            if (opt_reply(fd, 7, ERR(6), msg, (uint32_t)strlen(msg)) < 0)
                return -1;
            continue;
        }
        if (opt == 1) {   /* NBD_OPT_EXPORT_NAME */
            int ok = len == strlen(f->export_name) && memcmp(data, f->export_name, len) == 0;
            free(data);
            if (!ok) {
                f->refused++;
                return -1;
            }
            uint8_t r[10 + 124] = {0};
            put64(r, f->size);
            put16(r + 8, f->tflags);
            return wr_full(fd, r, (f->client_flags & 2) ? 10 : sizeof r);
        }
        free(data);
        if (opt_reply(fd, opt, ERR(1), NULL, 0) < 0)
            return -1;
    }
}

static void serve_transmission(struct fake *f, int fd)
{
    for (;;) {
        uint8_t q[28];
        if (rd_full(fd, q, sizeof q) < 0 || get32(q) != 0x25609513u)
            return;
        uint16_t type = get16(q + 6);
        uint64_t handle = get64(q + 8), off = get64(q + 16);
        uint32_t len = get32(q + 24);
        int n = ++f->requests;
        if (len > f->max_len)
            f->max_len = len;
        if (n == f->close_at)
            return;
        if (type == 2) {   /* DISC */
            f->discs++;
            return;
        }
        uint32_t error = 0;
        uint8_t *buf = NULL;
        if (type == 1) {   /* WRITE: the payload always follows */
            buf = malloc(len ? len : 1);
            if (rd_full(fd, buf, len) < 0) {
                free(buf);
                return;
            }
            f->writes++;
            if (off > f->size || len > f->size - off)
                error = 22;
            else
                memcpy(f->mem + off, buf, len);
        } else if (type == 0) {
            if (off > f->size || len > f->size - off)
                error = 22;
        } else if (type == 3) {
            f->flushes++;
        } else {
            error = 22;
        }
        if (n == f->error_at)
            error = 5;
        uint8_t r[16];
        put32(r, 0x67446698u);
        put32(r + 4, error);
        put64(r + 8, n == f->bad_handle_at ? handle + 1000 : handle);
        int bad = wr_full(fd, r, sizeof r) < 0;
        if (!bad && type == 0 && error == 0)
            bad = wr_full(fd, f->mem + off, len) < 0;
        free(buf);
        if (bad)
            return;
    }
}

static void *fake_main(void *arg)
{
    struct fake *f = arg;
    int fd = accept(f->lfd, NULL, NULL);
    if (fd < 0)
        return NULL;
    if (serve_handshake(f, fd) == 0)
        serve_transmission(f, fd);
    close(fd);
    return NULL;
}

static void fake_start(struct fake *f)
{
    f->mem = calloc(1, f->size ? f->size : 1);
    for (uint64_t i = 0; i < f->size; i++)
        f->mem[i] = (uint8_t)(i * 7 + i / 4096);
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    if (f->lfd < 0 || bind(f->lfd, (struct sockaddr *)&a, sizeof a) < 0 || listen(f->lfd, 4) < 0 ||
        getsockname(f->lfd, (struct sockaddr *)&a, &al) < 0) {
        perror("test_nbd: fake server socket");
        exit(1);
    }
    f->port = ntohs(a.sin_port);
    pthread_create(&f->thread, NULL, fake_main, f);
}

static void fake_stop(struct fake *f)
{
    pthread_join(f->thread, NULL);
    close(f->lfd);
    free(f->mem);
}

static char *url_of(const struct fake *f, const char *name, char *buf, size_t len)
{
    snprintf(buf, len, "nbd://127.0.0.1:%d/%s", f->port, name);
    return buf;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Runs with stderr going to a temporary file; returns what was written. */
struct capture {
    int saved;
    FILE *tmp;
};

static void capture_begin(struct capture *c)
{
    fflush(stderr);
    c->tmp = tmpfile();
    c->saved = dup(2);
    dup2(fileno(c->tmp), 2);
}

static void capture_end(struct capture *c, char *out, size_t len)
{
    fflush(stderr);
    dup2(c->saved, 2);
    close(c->saved);
    rewind(c->tmp);
    size_t n = fread(out, 1, len - 1, c->tmp);
    out[n] = '\0';
    fclose(c->tmp);
}

static int count_substr(const char *s, const char *sub)
{
    int n = 0;
    for (const char *p = s; (p = strstr(p, sub)) != NULL; p += strlen(sub))
        n++;
    return n;
}

/* ---------------------------------------------------------------------- */
/* Tests.                                                                  */

static void test_round_trips(void)
{
    struct fake f = {.size = (4 << 20) + 4096, .export_name = "data", .tflags = 1 | 4};
    fake_start(&f);
    char url[128];
    struct disk *d = NULL;
    struct error err = {{0}};
    int rc = disk_open(url_of(&f, "data", url, sizeof url), &d, &err);
    CHECK_EQ(rc, 0);
    if (rc < 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        fake_stop(&f);
        return;
    }
    CHECK_EQ(d->size, f.size);
    CHECK(!d->readonly);
    CHECK(strcmp(d->name, url) == 0);
    CHECK_EQ(f.client_flags, 3);   /* FIXED_NEWSTYLE | NO_ZEROES */

    /* Reads see the server's pattern. */
    uint8_t *buf = malloc(3 << 20), *want = malloc(3 << 20);
    CHECK_EQ(d->ops->read(d, buf, 512, 0), 0);
    CHECK(memcmp(buf, f.mem, 512) == 0);
    CHECK_EQ(d->ops->read(d, buf, 4096, 1 << 20), 0);
    CHECK(memcmp(buf, f.mem + (1 << 20), 4096) == 0);
    CHECK_EQ(d->ops->read(d, buf, 512, f.size - 512), 0);
    CHECK(memcmp(buf, f.mem + f.size - 512, 512) == 0);

    /* A 3 MiB read goes out in chunks of at most 1 MiB. */
    CHECK_EQ(d->ops->read(d, buf, 3 << 20, 512), 0);
    CHECK(memcmp(buf, f.mem + 512, 3 << 20) == 0);
    CHECK(f.max_len <= (1u << 20));
    CHECK(f.max_len > 0);

    /* Writes at various offsets land and read back. */
    static const uint64_t offs[] = {0, 512, 4096 * 3 + 512, (2 << 20) - 512, (4 << 20)};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        for (int j = 0; j < 4096; j++)
            want[j] = (uint8_t)(j ^ (int)i ^ 0x5a);
        size_t len = offs[i] == (4 << 20) ? 4096 : 1024;
        CHECK_EQ(d->ops->write(d, want, len, offs[i]), 0);
        CHECK(memcmp(f.mem + offs[i], want, len) == 0);
        memset(buf, 0, len);
        CHECK_EQ(d->ops->read(d, buf, len, offs[i]), 0);
        CHECK(memcmp(buf, want, len) == 0);
    }
    /* A big write is chunked too. */
    for (size_t j = 0; j < (3u << 20); j++)
        want[j] = (uint8_t)(j * 13 + 1);
    f.max_len = 0;
    CHECK_EQ(d->ops->write(d, want, 3 << 20, 1 << 20), 0);
    CHECK(memcmp(f.mem + (1 << 20), want, 3 << 20) == 0);
    CHECK(f.max_len <= (1u << 20));

    /* Out of range requests fail without reaching the server. */
    int before = f.requests;
    CHECK(d->ops->read(d, buf, 1024, f.size - 512) < 0);
    CHECK(d->ops->write(d, want, 512, f.size) < 0);
    CHECK_EQ(f.requests, before);

    /* Flush reaches the server (it advertised SEND_FLUSH). */
    CHECK_EQ(d->ops->flush(d), 0);
    CHECK_EQ(d->ops->flush(d), 0);
    CHECK_EQ(f.flushes, 2);

    disk_close(d);
    fake_stop(&f);
    CHECK_EQ(f.discs, 1);   /* close sends NBD_CMD_DISC */
    free(buf);
    free(want);
}

static void test_readonly_and_no_flush(void)
{
    /* READ_ONLY from the server; no SEND_FLUSH: flush is a local no-op. */
    struct fake f = {.size = 1 << 20, .export_name = "", .tflags = 1 | 2};
    fake_start(&f);
    char url[128];
    snprintf(url, sizeof url, "nbd://localhost:%d", f.port);   /* default export, no slash */
    struct disk *d = NULL;
    struct error err = {{0}};
    int rc = disk_nbd_open(url, false, &d, &err);
    CHECK_EQ(rc, 0);
    if (rc < 0) {
        fprintf(stderr, "open: %s\n", err.msg);
        fake_stop(&f);
        return;
    }
    CHECK(d->readonly);
    uint8_t buf[512] = {1};
    CHECK(d->ops->write(d, buf, 512, 0) < 0);
    CHECK_EQ(f.writes, 0);
    CHECK_EQ(d->ops->flush(d), 0);
    CHECK_EQ(d->ops->read(d, buf, 512, 512), 0);
    CHECK(memcmp(buf, f.mem + 512, 512) == 0);
    disk_close(d);
    fake_stop(&f);
    CHECK_EQ(f.flushes, 0);
}

static void test_readonly_option(void)
{
    struct fake f = {.size = 1 << 20, .export_name = "x", .tflags = 1 | 4};
    fake_start(&f);
    char url[160], spec[200];
    snprintf(spec, sizeof spec, "%s,readonly=on", url_of(&f, "x", url, sizeof url));
    struct disk *d = NULL;
    struct error err = {{0}};
    CHECK_EQ(disk_open(spec, &d, &err), 0);
    if (d) {
        CHECK(d->readonly);
        uint8_t buf[512] = {0};
        CHECK(d->ops->write(d, buf, 512, 0) < 0);
        CHECK_EQ(f.writes, 0);
        disk_close(d);
    }
    fake_stop(&f);
}

static void test_export_name_fallback(void)
{
    /* A server without NBD_OPT_GO: the client falls back to EXPORT_NAME. */
    struct fake f = {.size = 65536, .export_name = "old", .tflags = 1, .no_go = 1};
    fake_start(&f);
    char url[128];
    struct disk *d = NULL;
    struct error err = {{0}};
    int rc = disk_nbd_open(url_of(&f, "old", url, sizeof url), false, &d, &err);
    CHECK_EQ(rc, 0);
    if (rc == 0) {
        CHECK_EQ(d->size, 65536);
        uint8_t buf[1024];
        CHECK_EQ(d->ops->read(d, buf, 1024, 2048), 0);
        CHECK(memcmp(buf, f.mem + 2048, 1024) == 0);
        disk_close(d);
    } else {
        fprintf(stderr, "open: %s\n", err.msg);
    }
    fake_stop(&f);
}

static void test_refused_export(void)
{
    struct fake f = {.size = 65536, .export_name = "data", .tflags = 1};
    fake_start(&f);
    char url[128];
    struct disk *d = NULL;
    struct error err = {{0}};
    int rc = disk_nbd_open(url_of(&f, "nosuch", url, sizeof url), false, &d, &err);
    fake_stop(&f);
    CHECK_EQ(rc, -1);
    CHECK_EQ(f.refused, 1);
    CHECK(strstr(err.msg, "server refused export 'nosuch'") != NULL);
    CHECK(strstr(err.msg, "no such export") != NULL);
    CHECK(strstr(err.msg, "export not found") != NULL);   /* the server's message */
    CHECK(strchr(err.msg, '\n') == NULL);
    if (rc == -1)
        printf("  refused: %s\n", err.msg);

    /* Same through the EXPORT_NAME fallback, where refusal is a hang-up. */
    struct fake g = {.size = 65536, .export_name = "data", .tflags = 1, .no_go = 1};
    fake_start(&g);
    memset(&err, 0, sizeof err);
    rc = disk_nbd_open(url_of(&g, "nosuch", url, sizeof url), false, &d, &err);
    fake_stop(&g);
    CHECK_EQ(rc, -1);
    CHECK(strstr(err.msg, "server refused export 'nosuch'") != NULL);
}

static void test_connection_lost(void)
{
    /* The server closes the connection on the 3rd request. */
    struct fake f = {.size = 1 << 20, .export_name = "data", .tflags = 1 | 4, .close_at = 3};
    fake_start(&f);
    char url[128];
    struct disk *d = NULL;
    struct error err = {{0}};
    int rc = disk_nbd_open(url_of(&f, "data", url, sizeof url), false, &d, &err);
    CHECK_EQ(rc, 0);
    if (rc < 0) {
        fake_stop(&f);
        return;
    }
    uint8_t buf[4096];
    struct capture c;
    char log[4096];
    capture_begin(&c);
    int r1 = d->ops->read(d, buf, 4096, 0);
    int r2 = d->ops->write(d, buf, 4096, 8192);
    double t0 = now();
    int r3 = d->ops->read(d, buf, 4096, 0);
    double t1 = now();
    int r4 = d->ops->read(d, buf, 512, 0);
    int r5 = d->ops->write(d, buf, 512, 0);
    int r6 = d->ops->flush(d);
    double t2 = now();
    capture_end(&c, log, sizeof log);
    CHECK_EQ(r1, 0);
    CHECK_EQ(r2, 0);
    CHECK_EQ(r3, -EIO);
    CHECK(t1 - t0 < 2.0);   /* EOF is noticed at once, not after a timeout */
    CHECK_EQ(r4, -EIO);
    CHECK_EQ(r5, -EIO);
    CHECK_EQ(r6, -EIO);
    CHECK(t2 - t1 < 0.5);   /* later requests fail fast */
    CHECK_EQ(count_substr(log, "connection lost"), 1);
    CHECK(strstr(log, "ferry: nbd://127.0.0.1:") != NULL);
    printf("  lost: %s", log);
    disk_close(d);
    fake_stop(&f);
    CHECK_EQ(f.requests, 3);   /* nothing was sent after the loss (read once the server is joined) */
}

static void test_bad_handle(void)
{
    struct fake f = {.size = 1 << 20, .export_name = "data", .tflags = 1, .bad_handle_at = 2};
    fake_start(&f);
    char url[128];
    struct disk *d = NULL;
    struct error err = {{0}};
    int rc = disk_nbd_open(url_of(&f, "data", url, sizeof url), false, &d, &err);
    CHECK_EQ(rc, 0);
    if (rc < 0) {
        fake_stop(&f);
        return;
    }
    uint8_t buf[512];
    struct capture c;
    char log[4096];
    capture_begin(&c);
    int r1 = d->ops->read(d, buf, 512, 0);
    int r2 = d->ops->read(d, buf, 512, 0);
    int r3 = d->ops->read(d, buf, 512, 0);
    capture_end(&c, log, sizeof log);
    CHECK_EQ(r1, 0);
    CHECK_EQ(r2, -EIO);
    CHECK_EQ(r3, -EIO);
    CHECK_EQ(count_substr(log, "connection lost"), 1);
    CHECK(strstr(log, "handle") != NULL);
    disk_close(d);
    fake_stop(&f);
}

static void test_server_error_reply(void)
{
    /* An error reply fails that request alone; the connection stays. */
    struct fake f = {.size = 1 << 20, .export_name = "data", .tflags = 1, .error_at = 2};
    fake_start(&f);
    char url[128];
    struct disk *d = NULL;
    struct error err = {{0}};
    int rc = disk_nbd_open(url_of(&f, "data", url, sizeof url), false, &d, &err);
    CHECK_EQ(rc, 0);
    if (rc < 0) {
        fake_stop(&f);
        return;
    }
    uint8_t buf[512];
    struct capture c;
    char log[4096];
    capture_begin(&c);
    int r1 = d->ops->read(d, buf, 512, 0);
    int r2 = d->ops->read(d, buf, 512, 512);
    int r3 = d->ops->read(d, buf, 512, 1024);
    capture_end(&c, log, sizeof log);
    CHECK_EQ(r1, 0);
    CHECK_EQ(r2, -EIO);
    CHECK_EQ(r3, 0);
    CHECK(memcmp(buf, f.mem + 1024, 512) == 0);
    CHECK_EQ(count_substr(log, "connection lost"), 0);
    CHECK_EQ(count_substr(log, "server failed a read"), 1);
    disk_close(d);
    fake_stop(&f);
}

static void test_bad_urls(void)
{
    static const char *const bad[] = {
        "nbd://", "nbd://host", "nbd://1.2.3.4:99999/x", "nbd://:10809/x", "nbd://h:0/x",
        "nbd://h:12a/x", "nbd://h:/x", "nbd://[::1/x", "nbd://h:-1/x", "nbd://a b:1/x",
        "nbd://host/x", "nbd://u@h:1/x", "nbd:/h:1/x",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct disk *d = NULL;
        struct error err = {{0}};
        int rc = disk_nbd_open(bad[i], false, &d, &err);
        CHECK_EQ(rc, -1);
        CHECK(err.msg[0] != '\0');
        CHECK(strchr(err.msg, '\n') == NULL);
        CHECK(d == NULL);
        if (rc != -1)
            fprintf(stderr, "  accepted bad URL %s\n", bad[i]);
    }
    /* An export name over 4096 bytes. */
    char *longu = malloc(5000);
    snprintf(longu, 5000, "nbd://127.0.0.1:1/%04500d", 0);
    struct error err = {{0}};
    struct disk *d = NULL;
    CHECK_EQ(disk_nbd_open(longu, false, &d, &err), -1);
    CHECK(strstr(err.msg, "export name") != NULL);
    free(longu);
}

static void test_nothing_listening(void)
{
    /* A port that was just free: connection refused, at once. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(s, (struct sockaddr *)&a, sizeof a);
    getsockname(s, (struct sockaddr *)&a, &al);
    int port = ntohs(a.sin_port);
    close(s);
    char url[64];
    snprintf(url, sizeof url, "nbd://127.0.0.1:%d/data", port);
    struct disk *d = NULL;
    struct error err = {{0}};
    double t0 = now();
    CHECK_EQ(disk_nbd_open(url, false, &d, &err), -1);
    CHECK(now() - t0 < 3.0);
    CHECK(strstr(err.msg, "cannot connect") != NULL);
    CHECK(strstr(err.msg, url) != NULL);

    /* A name that does not resolve. */
    memset(&err, 0, sizeof err);
    CHECK_EQ(disk_nbd_open("nbd://no-such-host.invalid:10809/x", false, &d, &err), -1);
    CHECK(strstr(err.msg, "no-such-host.invalid") != NULL);
}

static void *not_nbd_main(void *arg)
{
    int c = accept(*(int *)arg, NULL, NULL);
    if (c >= 0) {
        const char *hello = "SSH-2.0-OpenSSH_9.2\r\nxxxxxxxxxxxxxxxxxxxxxxxx";
        (void)!write(c, hello, strlen(hello));
        char b[64];
        while (read(c, b, sizeof b) > 0)   /* until the client hangs up */
            ;
        close(c);
    }
    return NULL;
}

static void test_not_nbd(void)
{
    /* Something that is not an NBD server answers: rejected cleanly. */
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(l, (struct sockaddr *)&a, sizeof a);
    listen(l, 1);
    getsockname(l, (struct sockaddr *)&a, &al);
    char url[64];
    snprintf(url, sizeof url, "nbd://127.0.0.1:%d/data", ntohs(a.sin_port));
    pthread_t t;
    pthread_create(&t, NULL, not_nbd_main, &l);
    struct disk *d = NULL;
    struct error err = {{0}};
    CHECK_EQ(disk_nbd_open(url, false, &d, &err), -1);
    CHECK(strstr(err.msg, "not an NBD server") != NULL);
    pthread_join(t, NULL);
    close(l);
}

int main(void)
{
    test_round_trips();
    test_readonly_and_no_flush();
    test_readonly_option();
    test_export_name_fallback();
    test_refused_export();
    test_connection_lost();
    test_bad_handle();
    test_server_error_reply();
    test_bad_urls();
    test_nothing_listening();
    test_not_nbd();
    if (failures) {
        printf("test_nbd: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("test_nbd: %d checks passed\n", checks);
    return 0;
}
