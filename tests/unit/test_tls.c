/* The TLS transport without a guest (src/transport/tls*.c): a client and a
 * server on loopback with a pre-shared key move 8 MiB each way at once
 * through their app fds and get exactly what the other sent; closing one
 * side's fd gives the other end of file after all data; a different key,
 * and a plain peer, are refused by the server during the handshake; the
 * bytes between them never contain the plain data. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "transport/tls.h"
#include "check.h"

#define DATA (8u << 20)

static char dir[] = "/tmp/ferry-tls-unit-XXXXXX";

static void write_key(const char *name, const char *hex)
{
    char path[128];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    fprintf(f, "%s\n", hex);
    fclose(f);
    chmod(path, 0600);
}

static struct tls_config psk_config(const char *name)
{
    struct tls_config c;
    memset(&c, 0, sizeof c);
    snprintf(c.psk, sizeof c.psk, "%s/%s", dir, name);
    return c;
}

/* A listening socket on 127.0.0.1 and a connected pair through it. */
static void tcp_pair(int *client, int *server)
{
    int l = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t al = sizeof a;
    bind(l, (struct sockaddr *)&a, sizeof a);
    listen(l, 1);
    getsockname(l, (struct sockaddr *)&a, &al);
    *client = socket(AF_INET, SOCK_STREAM, 0);
    connect(*client, (struct sockaddr *)&a, sizeof a);
    *server = accept(l, NULL, NULL);
    close(l);
}

struct side {
    bool server;
    int net;
    struct tls_config cfg;
    struct tls_channel *t;
    int app;
    int rc;
    struct error err;
};

static void *handshake_thread(void *arg)
{
    struct side *s = arg;
    s->rc = s->server ? tls_server(s->net, &s->cfg, 5000, &s->t, &s->app, &s->err)
                      : tls_client(s->net, "127.0.0.1", &s->cfg, 5000, &s->t, &s->app, &s->err);
    return NULL;
}

static void handshake_both(struct side *c, struct side *s)
{
    pthread_t tc, ts;
    pthread_create(&tc, NULL, handshake_thread, c);
    pthread_create(&ts, NULL, handshake_thread, s);
    pthread_join(tc, NULL);
    pthread_join(ts, NULL);
}

struct xfer {
    int fd;
    const uint8_t *out;
    uint8_t *in;
    size_t got;
    bool eof;
};

/* Writes all of out while reading into in until end of file. */
static void *xfer_thread(void *arg)
{
    struct xfer *x = arg;
    size_t sent = 0;
    bool shut = false;
    while (!x->eof) {
        struct pollfd p = {.fd = x->fd, .events = POLLIN | (sent < DATA ? POLLOUT : 0)};
        if (poll(&p, 1, 10000) <= 0)
            break;
        if (p.revents & POLLOUT && sent < DATA) {
            ssize_t n = send(x->fd, x->out + sent, DATA - sent, MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
        }
        if (sent == DATA && !shut) {
            shutdown(x->fd, SHUT_WR); /* the pump flushes, then ends the session */
            shut = true;
        }
        if (p.revents & (POLLIN | POLLHUP)) {
            ssize_t n = recv(x->fd, x->in + x->got, DATA + 1 - x->got, MSG_DONTWAIT);
            if (n > 0)
                x->got += (size_t)n;
            else if (n == 0)
                x->eof = true;
        }
    }
    return NULL;
}

/* A relay that records what passes, to look for plain data on the wire. */
struct tap {
    int a, b;
    uint8_t *seen;
    size_t len, cap;
    pthread_mutex_t lock;
};

static void *tap_dir(struct tap *t, int from, int to)
{
    uint8_t buf[65536];
    for (;;) {
        ssize_t n = recv(from, buf, sizeof buf, 0);
        if (n <= 0)
            break;
        pthread_mutex_lock(&t->lock);
        if (t->len + (size_t)n <= t->cap) {
            memcpy(t->seen + t->len, buf, (size_t)n);
            t->len += (size_t)n;
        }
        pthread_mutex_unlock(&t->lock);
        if (send(to, buf, (size_t)n, MSG_NOSIGNAL) != n)
            break;
    }
    shutdown(to, SHUT_WR);
    return NULL;
}
static void *tap_ab(void *arg) { struct tap *t = arg; return tap_dir(t, t->a, t->b); }
static void *tap_ba(void *arg) { struct tap *t = arg; return tap_dir(t, t->b, t->a); }

static void test_transfer(void)
{
    static uint8_t c_out[DATA], s_out[DATA], c_in[DATA + 1], s_in[DATA + 1];
    for (size_t i = 0; i < DATA; i++) {
        c_out[i] = (uint8_t)("client says hello "[i % 18]);
        s_out[i] = (uint8_t)("server answers "[i % 15]);
    }
    /* client <-> [tap] <-> server */
    int c_net, tap_c, tap_s, s_net;
    tcp_pair(&c_net, &tap_c);
    tcp_pair(&tap_s, &s_net);
    struct tap tap = {tap_c, tap_s, malloc(3 * DATA), 0, 3 * DATA, PTHREAD_MUTEX_INITIALIZER};
    pthread_t t1, t2;
    pthread_create(&t1, NULL, tap_ab, &tap);
    pthread_create(&t2, NULL, tap_ba, &tap);

    struct side c = {.server = false, .net = c_net, .cfg = psk_config("key")};
    struct side s = {.server = true, .net = s_net, .cfg = psk_config("key")};
    handshake_both(&c, &s);
    CHECK(c.rc == 0, "client handshake: %s", c.err.msg);
    CHECK(s.rc == 0, "server handshake: %s", s.err.msg);
    if (c.rc || s.rc)
        return;
    CHECK(strstr(tls_describe(c.t), "TLSv1.3") && strstr(tls_describe(c.t), "pre-shared key"),
          "description: %s", tls_describe(c.t));
    struct xfer xc = {c.app, c_out, c_in, 0, false}, xs = {s.app, s_out, s_in, 0, false};
    pthread_t a, b;
    pthread_create(&a, NULL, xfer_thread, &xc);
    pthread_create(&b, NULL, xfer_thread, &xs);
    pthread_join(a, NULL);
    pthread_join(b, NULL);
    CHECK(xc.eof && xs.eof, "end of file: client %d, server %d", xc.eof, xs.eof);
    CHECK(xs.got == DATA && memcmp(s_in, c_out, DATA) == 0, "server got %zu bytes of %u%s",
          xs.got, DATA, xs.got == DATA ? ", different" : "");
    CHECK(xc.got == DATA && memcmp(c_in, s_out, DATA) == 0, "client got %zu bytes of %u%s",
          xc.got, DATA, xc.got == DATA ? ", different" : "");
    tls_close(c.t, c.app);
    tls_close(s.t, s.app);
    pthread_join(t1, NULL);
    pthread_join(t2, NULL);
    CHECK(tap.len > 2 * DATA, "only %zu bytes went through the tap", tap.len);
    CHECK(!memmem(tap.seen, tap.len, "client says hello client", 24) &&
              !memmem(tap.seen, tap.len, "server answers server", 21),
          "plain data readable on the wire");
    free(tap.seen);
    close(tap_c);
    close(tap_s);
}

static void test_wrong_key(void)
{
    int c_net, s_net;
    tcp_pair(&c_net, &s_net);
    struct side c = {.server = false, .net = c_net, .cfg = psk_config("other")};
    struct side s = {.server = true, .net = s_net, .cfg = psk_config("key")};
    handshake_both(&c, &s);
    CHECK(s.rc < 0 && strstr(s.err.msg, "pre-shared keys differ"), "server: %d %s", s.rc,
          s.err.msg);
    CHECK(c.rc < 0 && strstr(c.err.msg, "refused"), "client: %d %s", c.rc, c.err.msg);
    if (!c.rc)
        tls_close(c.t, c.app);
    if (!s.rc)
        tls_close(s.t, s.app);
}

static void test_plain_peer(void)
{
    int c_net, s_net;
    tcp_pair(&c_net, &s_net);
    const char header[16] = "FERRYMIG\3\0\0\0\0\0\0";
    CHECK(send(c_net, header, sizeof header, 0) == sizeof header, "send");
    struct side s = {.server = true, .net = s_net, .cfg = psk_config("key")};
    shutdown(c_net, SHUT_WR); /* the server's drain ends at once */
    handshake_thread(&s);
    CHECK(s.rc < 0 && strstr(s.err.msg, "plain (unencrypted)"), "server: %d %s", s.rc, s.err.msg);
    /* The plain peer got an ERROR record (type 0x103) saying why. */
    uint8_t rec[256];
    ssize_t n = recv(c_net, rec, sizeof rec, 0);
    CHECK(n > 12 && rec[0] == 0x03 && rec[1] == 0x01 && memmem(rec + 8, (size_t)n - 8, "TLS", 3),
          "the plain peer's answer (%zd bytes)", n);
    close(c_net);
}

int main(void)
{
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    write_key("key", "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff");
    write_key("other", "ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100");
    test_transfer();
    test_wrong_key();
    test_plain_peer();
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0)
        printf("note: could not remove %s\n", dir);
    printf("%s: %d checks, %d failures\n", failures ? "FAIL" : "PASS", checks, failures);
    return failures ? 1 : 0;
}
