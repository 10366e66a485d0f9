/* Network block device (NBD) client backend: nbd://HOST:PORT/EXPORT.
 *
 * Handshake: fixed newstyle negotiation with NBD_OPT_GO (asking for
 * NBD_INFO_EXPORT); a server that answers NBD_REP_ERR_UNSUP to GO gets the
 * older NBD_OPT_EXPORT_NAME instead. Transmission uses simple replies only
 * (structured replies are never negotiated), one request in flight at a
 * time under a mutex, reads and writes split into chunks of at most
 * NBD_CHUNK bytes.
 *
 * Failure model: every socket operation has a deadline (NBD_IO_TIMEOUT_MS
 * without progress), so no request blocks forever. A transport failure or a
 * protocol violation (short read, bad reply magic, unexpected handle) leaves
 * the stream out of sync: the connection is marked lost, one line
 * `ferry: nbd://...: connection lost: REASON` goes to stderr, the request
 * returns -EIO, and every later request returns -EIO at once. There is no
 * reconnect: a write whose reply never came may or may not have reached the
 * disk, so the guest must see the failure and the disk stays failed until
 * ferry restarts. An error reply from the server (the server is fine, the
 * request failed) fails that request alone with -EIO; the first such reply
 * is reported on stderr, later ones are counted silently.
 *
 * Sockets use MSG_NOSIGNAL throughout: a closed peer never raises SIGPIPE. */
#include "backend/disk.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

/* Protocol constants (NBD protocol document, doc/proto.md). */
#define NBD_MAGIC               0x4e42444d41474943ULL   /* "NBDMAGIC" */
#define NBD_OPTS_MAGIC          0x49484156454f5054ULL   /* "IHAVEOPT" */
#define NBD_OLDSTYLE_MAGIC      0x0000420281861253ULL
#define NBD_REP_MAGIC           0x0003e889045565a9ULL
#define NBD_REQUEST_MAGIC       0x25609513u
#define NBD_SIMPLE_REPLY_MAGIC  0x67446698u
#define NBD_STRUCT_REPLY_MAGIC  0x668e33efu

#define NBD_FLAG_FIXED_NEWSTYLE (1u << 0)   /* handshake flags (server) */
#define NBD_FLAG_NO_ZEROES      (1u << 1)
#define NBD_FLAG_C_FIXED_NEWSTYLE (1u << 0) /* client flags */
#define NBD_FLAG_C_NO_ZEROES    (1u << 1)

#define NBD_OPT_EXPORT_NAME     1
#define NBD_OPT_GO              7

#define NBD_REP_ACK             1
#define NBD_REP_INFO            3
#define NBD_REP_FLAG_ERROR      (1u << 31)
#define NBD_REP_ERR_UNSUP       (NBD_REP_FLAG_ERROR | 1)
#define NBD_REP_ERR_POLICY      (NBD_REP_FLAG_ERROR | 2)
#define NBD_REP_ERR_INVALID     (NBD_REP_FLAG_ERROR | 3)
#define NBD_REP_ERR_PLATFORM    (NBD_REP_FLAG_ERROR | 4)
#define NBD_REP_ERR_TLS_REQD    (NBD_REP_FLAG_ERROR | 5)
#define NBD_REP_ERR_UNKNOWN     (NBD_REP_FLAG_ERROR | 6)
#define NBD_REP_ERR_SHUTDOWN    (NBD_REP_FLAG_ERROR | 7)
#define NBD_REP_ERR_BLOCK_SIZE_REQD (NBD_REP_FLAG_ERROR | 8)
#define NBD_REP_ERR_TOO_BIG     (NBD_REP_FLAG_ERROR | 9)

#define NBD_INFO_EXPORT         0

#define NBD_FLAG_HAS_FLAGS      (1u << 0)   /* transmission flags */
#define NBD_FLAG_READ_ONLY      (1u << 1)
#define NBD_FLAG_SEND_FLUSH     (1u << 2)

#define NBD_CMD_READ            0
#define NBD_CMD_WRITE           1
#define NBD_CMD_DISC            2
#define NBD_CMD_FLUSH           3

#define NBD_MAX_STRING          4096        /* export names, messages */
#define NBD_MAX_OPT_REPLY       (64 * 1024) /* larger option replies: bogus */
#define NBD_CHUNK               (1u << 20)  /* bytes per READ/WRITE request */

#define NBD_CONNECT_TIMEOUT_MS  5000
#define NBD_IO_TIMEOUT_MS       10000       /* per socket op, without progress */
#define NBD_DISC_TIMEOUT_MS     1000

struct nbd_disk {
    struct disk disk;
    pthread_mutex_t lock;
    int fd;                  /* -1 once the connection is lost */
    uint16_t tflags;         /* transmission flags from the server */
    uint64_t next_handle;
    unsigned server_errors;  /* error replies after the first (not logged) */
};

/* ---------------------------------------------------------------------- */
/* Byte order helpers: the wire is big-endian.                            */

static void put16(uint8_t *p, uint16_t v) { p[0] = (uint8_t)(v >> 8); p[1] = (uint8_t)v; }
static void put32(uint8_t *p, uint32_t v) { put16(p, (uint16_t)(v >> 16)); put16(p + 2, (uint16_t)v); }
static void put64(uint8_t *p, uint64_t v) { put32(p, (uint32_t)(v >> 32)); put32(p + 4, (uint32_t)v); }
static uint16_t get16(const uint8_t *p) { return (uint16_t)(p[0] << 8 | p[1]); }
static uint32_t get32(const uint8_t *p) { return (uint32_t)get16(p) << 16 | get16(p + 2); }
static uint64_t get64(const uint8_t *p) { return (uint64_t)get32(p) << 32 | get32(p + 4); }

/* ---------------------------------------------------------------------- */
/* Socket I/O with deadlines. Each returns 0, or -1 with a reason in why. */

static int wait_fd(int fd, short events, int timeout_ms)
{
    struct pollfd p = {.fd = fd, .events = events};
    for (;;) {
        int n = poll(&p, 1, timeout_ms);
        if (n >= 0)
            return n;
        if (errno != EINTR)
            return -1;
    }
}

/* Sends all of buf; gives up after timeout_ms without progress. */
static int send_all(int fd, const void *buf, size_t len, int timeout_ms, int more,
                    char *why, size_t whylen)
{
    const uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT | (more ? MSG_MORE : 0));
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            int r = wait_fd(fd, POLLOUT, timeout_ms);
            if (r == 0) {
                snprintf(why, whylen, "no progress sending for %d s", timeout_ms / 1000);
                return -1;
            }
            if (r < 0) {
                snprintf(why, whylen, "poll: %s", strerror(errno));
                return -1;
            }
            continue;
        }
        snprintf(why, whylen, "send: %s", n < 0 ? strerror(errno) : "no progress");
        return -1;
    }
    return 0;
}

/* Receives exactly len bytes; gives up after timeout_ms without progress. */
static int recv_all(int fd, void *buf, size_t len, int timeout_ms, char *why, size_t whylen)
{
    uint8_t *p = buf;
    while (len > 0) {
        ssize_t n = recv(fd, p, len, MSG_DONTWAIT);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
            continue;
        }
        if (n == 0) {
            snprintf(why, whylen, "server closed the connection");
            return -1;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            int r = wait_fd(fd, POLLIN, timeout_ms);
            if (r == 0) {
                snprintf(why, whylen, "no answer from the server for %d s", timeout_ms / 1000);
                return -1;
            }
            if (r < 0) {
                snprintf(why, whylen, "poll: %s", strerror(errno));
                return -1;
            }
            continue;
        }
        snprintf(why, whylen, "recv: %s", strerror(errno));
        return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------------- */
/* URL parsing.                                                            */

struct nbd_url {
    char host[256];
    char port[6];
    char export_name[NBD_MAX_STRING + 1];
};

#define URL_FORM "expected nbd://HOST:PORT/EXPORT"

static int parse_url(const char *url, struct nbd_url *u, struct error *err)
{
    if (strncmp(url, "nbd://", 6) != 0)
        return error_set(err, "--drive %s: not an NBD URL (" URL_FORM ")", url);
    const char *p = url + 6, *host, *host_end;
    for (const char *c = p; *c; c++)
        if ((unsigned char)*c <= ' ' || *c == 0x7f)
            return error_set(err, "--drive: NBD URL contains a space or control character (" URL_FORM ")");
    if (*p == '[') {        /* [IPv6 address] */
        host = p + 1;
        host_end = strchr(host, ']');
        if (!host_end)
            return error_set(err, "--drive %s: unterminated '[' in host (" URL_FORM ")", url);
        p = host_end + 1;
    } else {
        host = p;
        while (*p && *p != ':' && *p != '/')
            p++;
        host_end = p;
    }
    size_t hlen = (size_t)(host_end - host);
    if (hlen == 0)
        return error_set(err, "--drive %s: no host (" URL_FORM ")", url);
    if (hlen >= sizeof u->host)
        return error_set(err, "--drive %s: host name too long", url);
    for (const char *c = host; c < host_end; c++)
        if (*c == '@' || *c == '?' || *c == '#' || *c == '/' || *c == '[')
            return error_set(err, "--drive %s: bad character '%c' in host (" URL_FORM ")", url, *c);
    memcpy(u->host, host, hlen);
    u->host[hlen] = '\0';

    if (*p != ':')
        return error_set(err, "--drive %s: no port (" URL_FORM ")", url);
    p++;
    const char *port = p;
    unsigned long pv = 0;
    while (*p >= '0' && *p <= '9') {
        pv = pv * 10 + (unsigned long)(*p - '0');
        if (pv > 65535)
            break;
        p++;
    }
    if (p == port || pv < 1 || pv > 65535 || (*p && *p != '/'))
        return error_set(err, "--drive %s: port must be a number from 1 to 65535", url);
    snprintf(u->port, sizeof u->port, "%lu", pv);

    /* Export name: everything after the '/', possibly empty (the server's
     * default export); "nbd://HOST:PORT" without a slash means the same. */
    const char *name = *p == '/' ? p + 1 : p;
    size_t nlen = strlen(name);
    if (nlen > NBD_MAX_STRING)
        return error_set(err, "--drive %.60s...: export name longer than %d bytes", url,
                         NBD_MAX_STRING);
    memcpy(u->export_name, name, nlen + 1);
    return 0;
}

/* ---------------------------------------------------------------------- */
/* Connecting.                                                             */

static int connect_timeout(const struct nbd_url *u, const char *url, struct error *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICSERV};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(u->host, u->port, &hints, &res);
    if (rc != 0)
        return error_set(err, "--drive %s: cannot resolve host '%s': %s", url, u->host,
                         rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
    char last[160] = "no usable address";
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK,
                        ai->ai_protocol);
        if (fd < 0) {
            snprintf(last, sizeof last, "socket: %s", strerror(errno));
            continue;
        }
        int e = 0;
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
            e = errno;
            if (e == EINPROGRESS || e == EINTR) {
                int r = wait_fd(fd, POLLOUT, NBD_CONNECT_TIMEOUT_MS);
                socklen_t sl = sizeof e;
                if (r == 0)
                    e = ETIMEDOUT;
                else if (r < 0)
                    e = errno;
                else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &sl) < 0)
                    e = errno;
            }
        }
        if (e != 0) {
            if (e == ETIMEDOUT)
                snprintf(last, sizeof last, "no answer within %d s", NBD_CONNECT_TIMEOUT_MS / 1000);
            else
                snprintf(last, sizeof last, "%s", strerror(e));
            close(fd);
            continue;
        }
        /* The socket stays non-blocking: every transfer polls with a
         * deadline (send_all/recv_all). */
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        freeaddrinfo(res);
        return fd;
    }
    freeaddrinfo(res);
    return error_set(err, "--drive %s: cannot connect to %s port %s: %s", url, u->host, u->port,
                     last);
}

/* ---------------------------------------------------------------------- */
/* Handshake.                                                              */

static const char *rep_err_name(uint32_t type)
{
    switch (type) {
    case NBD_REP_ERR_UNSUP: return "option not supported";
    case NBD_REP_ERR_POLICY: return "forbidden by server policy";
    case NBD_REP_ERR_INVALID: return "invalid request";
    case NBD_REP_ERR_PLATFORM: return "not supported on the server's platform";
    case NBD_REP_ERR_TLS_REQD: return "server requires TLS";
    case NBD_REP_ERR_UNKNOWN: return "no such export";
    case NBD_REP_ERR_SHUTDOWN: return "server is shutting down";
    case NBD_REP_ERR_BLOCK_SIZE_REQD: return "server requires block size negotiation";
    case NBD_REP_ERR_TOO_BIG: return "request too big";
    default: return "error";
    }
}

/* Copies a server-supplied string into out, replacing anything that is not
 * printable ASCII, so a message can never break our one-line errors. */
static void sanitize(char *out, size_t cap, const uint8_t *in, size_t len)
{
    size_t j = 0;
    while (len > 0 && (in[len - 1] <= ' ' || in[len - 1] == 0x7f))
        len--;
    for (size_t i = 0; i < len && j + 1 < cap; i++)
        out[j++] = (in[i] >= 0x20 && in[i] < 0x7f) ? (char)in[i] : '?';
    out[j] = '\0';
}

/* Handshake failure helper: "--drive URL: MSG". */
static int hs_fail(struct error *err, const char *url, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int hs_fail(struct error *err, const char *url, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return error_set(err, "--drive %s: %s", url, msg);
}

/* NBD_OPT_EXPORT_NAME, for servers without NBD_OPT_GO. */
static int handshake_export_name(int fd, const char *url, const char *name, bool no_zeroes,
                                 uint64_t *size, uint16_t *tflags, struct error *err)
{
    char why[160];
    size_t nlen = strlen(name);
    uint8_t hdr[16];
    put64(hdr, NBD_OPTS_MAGIC);
    put32(hdr + 8, NBD_OPT_EXPORT_NAME);
    put32(hdr + 12, (uint32_t)nlen);
    if (send_all(fd, hdr, sizeof hdr, NBD_IO_TIMEOUT_MS, 1, why, sizeof why) < 0 ||
        send_all(fd, name, nlen, NBD_IO_TIMEOUT_MS, 0, why, sizeof why) < 0)
        return hs_fail(err, url, "handshake failed: %s", why);
    uint8_t rep[10 + 124];
    size_t want = no_zeroes ? 10 : sizeof rep;
    if (recv_all(fd, rep, want, NBD_IO_TIMEOUT_MS, why, sizeof why) < 0)
        return hs_fail(err, url, "server refused export '%s' (%s)", name, why);
    *size = get64(rep);
    *tflags = get16(rep + 8);
    return 0;
}

static int handshake(int fd, const char *url, const char *name, uint64_t *size,
                     uint16_t *tflags, struct error *err)
{
    char why[160];
    uint8_t greet[18];
    if (recv_all(fd, greet, 16, NBD_IO_TIMEOUT_MS, why, sizeof why) < 0)
        return hs_fail(err, url, "handshake failed: %s", why);
    if (get64(greet) != NBD_MAGIC)
        return hs_fail(err, url, "not an NBD server (bad greeting)");
    uint64_t kind = get64(greet + 8);
    if (kind == NBD_OLDSTYLE_MAGIC)
        return hs_fail(err, url, "server speaks the old-style NBD handshake, which is not supported");
    if (kind != NBD_OPTS_MAGIC)
        return hs_fail(err, url, "not an NBD server (unknown handshake magic 0x%016llx)",
                       (unsigned long long)kind);
    if (recv_all(fd, greet + 16, 2, NBD_IO_TIMEOUT_MS, why, sizeof why) < 0)
        return hs_fail(err, url, "handshake failed: %s", why);
    uint16_t sflags = get16(greet + 16);
    if (!(sflags & NBD_FLAG_FIXED_NEWSTYLE))
        return hs_fail(err, url, "server does not support the fixed newstyle handshake");
    bool no_zeroes = (sflags & NBD_FLAG_NO_ZEROES) != 0;
    uint8_t cflags[4];
    put32(cflags, NBD_FLAG_C_FIXED_NEWSTYLE | (no_zeroes ? NBD_FLAG_C_NO_ZEROES : 0));
    if (send_all(fd, cflags, sizeof cflags, NBD_IO_TIMEOUT_MS, 0, why, sizeof why) < 0)
        return hs_fail(err, url, "handshake failed: %s", why);

    /* NBD_OPT_GO: name length, name, one info request (NBD_INFO_EXPORT). */
    size_t nlen = strlen(name);
    uint8_t hdr[20];
    put64(hdr, NBD_OPTS_MAGIC);
    put32(hdr + 8, NBD_OPT_GO);
    put32(hdr + 12, (uint32_t)(4 + nlen + 2 + 2));
    put32(hdr + 16, (uint32_t)nlen);
    uint8_t tail[4];
    put16(tail, 1);
    put16(tail + 2, NBD_INFO_EXPORT);
    if (send_all(fd, hdr, sizeof hdr, NBD_IO_TIMEOUT_MS, 1, why, sizeof why) < 0 ||
        send_all(fd, name, nlen, NBD_IO_TIMEOUT_MS, 1, why, sizeof why) < 0 ||
        send_all(fd, tail, sizeof tail, NBD_IO_TIMEOUT_MS, 0, why, sizeof why) < 0)
        return hs_fail(err, url, "handshake failed: %s", why);

    bool have_info = false;
    for (;;) {
        uint8_t rh[20];
        if (recv_all(fd, rh, sizeof rh, NBD_IO_TIMEOUT_MS, why, sizeof why) < 0)
            return hs_fail(err, url, "handshake failed: %s", why);
        uint64_t magic = get64(rh);
        uint32_t opt = get32(rh + 8), type = get32(rh + 12), len = get32(rh + 16);
        if (magic != NBD_REP_MAGIC)
            return hs_fail(err, url, "handshake failed: bad option reply magic 0x%016llx",
                           (unsigned long long)magic);
        if (opt != NBD_OPT_GO)
            return hs_fail(err, url, "handshake failed: reply for option %u, expected %u",
                           opt, NBD_OPT_GO);
        if (len > NBD_MAX_OPT_REPLY)
            return hs_fail(err, url, "handshake failed: option reply of %u bytes", len);
        uint8_t *data = NULL;
        if (len > 0) {
            data = malloc(len);
            if (!data)
                return hs_fail(err, url, "out of memory");
            if (recv_all(fd, data, len, NBD_IO_TIMEOUT_MS, why, sizeof why) < 0) {
                free(data);
                return hs_fail(err, url, "handshake failed: %s", why);
            }
        }
        if (type & NBD_REP_FLAG_ERROR) {
            char msg[200];
            sanitize(msg, sizeof msg, data, len);
            free(data);
            if (type == NBD_REP_ERR_UNSUP)   /* server predates NBD_OPT_GO */
                return handshake_export_name(fd, url, name, no_zeroes, size, tflags, err);
            return hs_fail(err, url, "server refused export '%s': %s%s%s", name,
                           rep_err_name(type), msg[0] ? ": " : "", msg);
        }
        if (type == NBD_REP_INFO) {
            if (len >= 2 && get16(data) == NBD_INFO_EXPORT) {
                if (len != 12) {
                    free(data);
                    return hs_fail(err, url, "handshake failed: NBD_INFO_EXPORT of %u bytes", len);
                }
                *size = get64(data + 2);
                *tflags = get16(data + 10);
                have_info = true;
            }
            /* Other information (name, description, block sizes): unused. */
            free(data);
            continue;
        }
        free(data);
        if (type == NBD_REP_ACK) {
            if (!have_info)
                return hs_fail(err, url, "handshake failed: server sent no export size");
            return 0;
        }
        /* Any other reply type: ignore, as the protocol allows. */
    }
}

/* ---------------------------------------------------------------------- */
/* Transmission.                                                           */

/* Called with the lock held: drops the connection and reports it once. */
static void conn_lost(struct nbd_disk *n, const char *why)
{
    if (n->fd < 0)
        return;
    fprintf(stderr, "ferry: %s: connection lost: %s\n", n->disk.name, why);
    close(n->fd);
    n->fd = -1;
}

/* One request and its simple reply, with the lock held. For READ, the
 * reply's payload goes to rbuf (len bytes). Returns 0 or -EIO. */
static int do_request(struct nbd_disk *n, uint16_t cmd, uint64_t offset, uint32_t len,
                      const void *wbuf, void *rbuf)
{
    if (n->fd < 0)
        return -EIO;
    char why[200];
    uint64_t handle = n->next_handle++;
    uint8_t req[28];
    put32(req, NBD_REQUEST_MAGIC);
    put16(req + 4, 0);
    put16(req + 6, cmd);
    put64(req + 8, handle);
    put64(req + 16, offset);
    put32(req + 24, len);
    bool with_data = cmd == NBD_CMD_WRITE && len > 0;
    if (send_all(n->fd, req, sizeof req, NBD_IO_TIMEOUT_MS, with_data, why, sizeof why) < 0 ||
        (with_data && send_all(n->fd, wbuf, len, NBD_IO_TIMEOUT_MS, 0, why, sizeof why) < 0)) {
        conn_lost(n, why);
        return -EIO;
    }
    uint8_t rep[16];
    if (recv_all(n->fd, rep, sizeof rep, NBD_IO_TIMEOUT_MS, why, sizeof why) < 0) {
        conn_lost(n, why);
        return -EIO;
    }
    uint32_t magic = get32(rep), error = get32(rep + 4);
    uint64_t got = get64(rep + 8);
    if (magic != NBD_SIMPLE_REPLY_MAGIC) {
        snprintf(why, sizeof why, magic == NBD_STRUCT_REPLY_MAGIC
                 ? "server sent a structured reply, which was not negotiated"
                 : "bad reply magic 0x%08x", magic);
        conn_lost(n, why);
        return -EIO;
    }
    if (got != handle) {
        snprintf(why, sizeof why, "reply for handle %llu, expected %llu",
                 (unsigned long long)got, (unsigned long long)handle);
        conn_lost(n, why);
        return -EIO;
    }
    if (error != 0) {
        static const char *const cmds[] = {"read", "write", "disconnect", "flush"};
        if (n->server_errors++ == 0)
            fprintf(stderr, "ferry: %s: server failed a %s of %u bytes at offset %llu: %s "
                    "(further errors not reported)\n", n->disk.name,
                    cmd < 4 ? cmds[cmd] : "request", len, (unsigned long long)offset,
                    strerror((int)error));
        return -EIO;   /* no payload follows an error reply */
    }
    if (cmd == NBD_CMD_READ && len > 0 &&
        recv_all(n->fd, rbuf, len, NBD_IO_TIMEOUT_MS, why, sizeof why) < 0) {
        conn_lost(n, why);
        return -EIO;
    }
    return 0;
}

static struct nbd_disk *nbd_of(struct disk *d) { return (struct nbd_disk *)d; }

static int check_range(struct disk *d, size_t len, uint64_t offset)
{
    if (offset > d->size || len > d->size - offset)
        return -EINVAL;
    return 0;
}

static int nbd_read(struct disk *d, void *buf, size_t len, uint64_t offset)
{
    struct nbd_disk *n = nbd_of(d);
    int rc = check_range(d, len, offset);
    if (rc)
        return rc;
    pthread_mutex_lock(&n->lock);
    uint8_t *p = buf;
    while (rc == 0 && len > 0) {
        uint32_t chunk = len < NBD_CHUNK ? (uint32_t)len : NBD_CHUNK;
        rc = do_request(n, NBD_CMD_READ, offset, chunk, NULL, p);
        p += chunk;
        offset += chunk;
        len -= chunk;
    }
    pthread_mutex_unlock(&n->lock);
    return rc;
}

static int nbd_write(struct disk *d, const void *buf, size_t len, uint64_t offset)
{
    struct nbd_disk *n = nbd_of(d);
    if (d->readonly)
        return -EROFS;
    int rc = check_range(d, len, offset);
    if (rc)
        return rc;
    pthread_mutex_lock(&n->lock);
    const uint8_t *p = buf;
    while (rc == 0 && len > 0) {
        uint32_t chunk = len < NBD_CHUNK ? (uint32_t)len : NBD_CHUNK;
        rc = do_request(n, NBD_CMD_WRITE, offset, chunk, p, NULL);
        p += chunk;
        offset += chunk;
        len -= chunk;
    }
    pthread_mutex_unlock(&n->lock);
    return rc;
}

static int nbd_flush(struct disk *d)
{
    struct nbd_disk *n = nbd_of(d);
    pthread_mutex_lock(&n->lock);
    int rc;
    if (n->fd < 0)
        rc = -EIO;
    else if (!(n->tflags & NBD_FLAG_SEND_FLUSH))
        rc = 0;   /* server has no volatile cache to flush */
    else
        rc = do_request(n, NBD_CMD_FLUSH, 0, 0, NULL, NULL);
    pthread_mutex_unlock(&n->lock);
    return rc;
}

static void nbd_close(struct disk *d)
{
    struct nbd_disk *n = nbd_of(d);
    pthread_mutex_lock(&n->lock);
    if (n->fd >= 0) {
        /* NBD_CMD_DISC has no reply; a failure to send it changes nothing. */
        char why[160];
        uint8_t req[28];
        put32(req, NBD_REQUEST_MAGIC);
        put16(req + 4, 0);
        put16(req + 6, NBD_CMD_DISC);
        put64(req + 8, n->next_handle++);
        put64(req + 16, 0);
        put32(req + 24, 0);
        (void)send_all(n->fd, req, sizeof req, NBD_DISC_TIMEOUT_MS, 0, why, sizeof why);
        shutdown(n->fd, SHUT_WR);
        close(n->fd);
        n->fd = -1;
    }
    pthread_mutex_unlock(&n->lock);
    pthread_mutex_destroy(&n->lock);
    free(n);
}

static const struct disk_ops nbd_ops = {
    .read = nbd_read,
    .write = nbd_write,
    .flush = nbd_flush,
    .close = nbd_close,
};

int disk_nbd_open(const char *url, bool readonly, struct disk **out, struct error *err)
{
    struct nbd_url *u = malloc(sizeof *u);
    if (!u)
        return error_set(err, "out of memory");
    int rc = -1;
    if (parse_url(url, u, err) < 0)
        goto out;
    int fd = connect_timeout(u, url, err);
    if (fd < 0)
        goto out;
    uint64_t size = 0;
    uint16_t tflags = 0;
    if (handshake(fd, url, u->export_name, &size, &tflags, err) < 0) {
        close(fd);
        goto out;
    }
    if (size > INT64_MAX) {
        close(fd);
        error_set(err, "--drive %s: server reports an impossible size %llu", url,
                  (unsigned long long)size);
        goto out;
    }
    struct nbd_disk *n = calloc(1, sizeof *n);
    if (!n) {
        close(fd);
        error_set(err, "out of memory");
        goto out;
    }
    pthread_mutex_init(&n->lock, NULL);
    n->fd = fd;
    n->tflags = tflags;
    n->next_handle = 1;
    n->disk.ops = &nbd_ops;
    n->disk.size = size;
    n->disk.readonly = readonly || (tflags & NBD_FLAG_READ_ONLY);
    snprintf(n->disk.name, sizeof n->disk.name, "%s", url);
    *out = &n->disk;
    rc = 0;
out:
    free(u);
    return rc;
}
