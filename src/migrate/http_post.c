/* A bounded HTTP/1.1 POST (see http_post.h). */
#include "migrate/http_post.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "machine/vclock.h"

/* Milliseconds left until deadline (ns), at least 0. */
static int left_ms(uint64_t deadline)
{
    uint64_t now = vclock_host_ns();
    return now >= deadline ? 0 : (int)((deadline - now + 999999) / 1000000);
}

static int connect_deadline(const char *host, const char *port, uint64_t deadline,
                            struct error *err)
{
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_NUMERICHOST | AI_NUMERICSERV};
    struct addrinfo *ai;
    int rc = getaddrinfo(host, port, &hints, &ai);
    if (rc != 0)
        return error_set(err, "etcd endpoint %s:%s: %s", host, port, gai_strerror(rc));
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        freeaddrinfo(ai);
        return error_set(err, "socket: %s", strerror(errno));
    }
    rc = connect(fd, ai->ai_addr, ai->ai_addrlen);
    freeaddrinfo(ai);
    if (rc < 0 && errno != EINPROGRESS) {
        error_set(err, "connect to %s:%s: %s", host, port, strerror(errno));
        close(fd);
        return -1;
    }
    if (rc < 0) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n;
        do
            n = poll(&p, 1, left_ms(deadline));
        while (n < 0 && errno == EINTR);
        int so = 0;
        socklen_t sl = sizeof so;
        if (n <= 0 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &so, &sl) < 0 || so != 0) {
            error_set(err, "connect to %s:%s: %s", host, port,
                      n == 0 ? "timed out" : strerror(so ? so : errno));
            close(fd);
            return -1;
        }
    }
    return fd;
}

static int send_all(int fd, const char *buf, size_t len, uint64_t deadline, struct error *err)
{
    while (len) {
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int n = poll(&p, 1, left_ms(deadline));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return error_set(err, "sending the request: %s", n == 0 ? "timed out" : strerror(errno));
        ssize_t w = send(fd, buf, len, MSG_NOSIGNAL);
        if (w < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (w <= 0)
            return error_set(err, "sending the request: %s", strerror(errno));
        buf += w;
        len -= (size_t)w;
    }
    return 0;
}

int http_dechunk(char *buf, size_t len, size_t *out_len)
{
    size_t in = 0, out = 0;
    for (;;) {
        /* chunk-size in hex, optional extensions, CRLF */
        size_t size = 0;
        int digits = 0;
        while (in < len) {
            char c = buf[in];
            int v = c >= '0' && c <= '9' ? c - '0'
                    : c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
            if (v < 0)
                break;
            if (++digits > 8)
                return -1;
            size = size * 16 + (size_t)v;
            in++;
        }
        if (!digits)
            return -1;
        while (in < len && buf[in] != '\n')
            in++;
        if (in >= len)
            return -1;
        in++;
        if (size == 0)
            break; /* trailers ignored */
        if (size > len - in)
            return -1;
        memmove(buf + out, buf + in, size);
        out += size;
        in += size;
        if (in + 2 > len || buf[in] != '\r' || buf[in + 1] != '\n')
            return -1;
        in += 2;
    }
    *out_len = out;
    return 0;
}

/* A header's value (case-insensitive name) in the NUL-terminated header
 * block, copied into out; 0 if absent. */
static int header_value(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *line = strchr(head, '\n'); line && line[1]; line = strchr(line + 1, '\n')) {
        const char *h = line + 1;
        if (strncasecmp(h, name, nl) == 0 && h[nl] == ':') {
            h += nl + 1;
            while (*h == ' ' || *h == '\t')
                h++;
            size_t n = strcspn(h, "\r\n");
            if (n >= cap)
                n = cap - 1;
            memcpy(out, h, n);
            out[n] = '\0';
            return 1;
        }
    }
    return 0;
}

/* Whether got bytes in buf (room for one more) hold a whole answer: the
 * header and its Content-Length of body, or a chunked body's last chunk. */
static bool answer_complete(char *buf, size_t got)
{
    buf[got] = '\0';
    char *end = strstr(buf, "\r\n\r\n");
    if (!end)
        return false;
    *end = '\0';
    char te[64], cl[32];
    bool chunked = header_value(buf, "Transfer-Encoding", te, sizeof te);
    bool has_cl = !chunked && header_value(buf, "Content-Length", cl, sizeof cl);
    *end = '\r';
    size_t body = got - (size_t)(end + 4 - buf);
    if (chunked)
        return body >= 5 && memcmp(buf + got - 5, "0\r\n\r\n", 5) == 0;
    if (has_cl) {
        char *e;
        unsigned long long want = strtoull(cl, &e, 10);
        return !*e && e != cl && body >= want;
    }
    return false;
}

int http_parse_answer(char *buf, size_t got, struct http_answer *out, struct error *err)
{
    buf[got] = '\0';
    if (memchr(buf, '\0', got)) {
        error_set(err, "answer holds a NUL byte");
        return -1;
    }
    char *end = strstr(buf, "\r\n\r\n");
    if (!end || (size_t)(end - buf) > HTTP_MAX_HEADER) {
        error_set(err, "answer without a complete header");
        return -1;
    }
    *end = '\0';
    char *bodyp = end + 4;
    size_t body_len = got - (size_t)(bodyp - buf);
    int major, minor, status;
    if (sscanf(buf, "HTTP/%d.%d %3d", &major, &minor, &status) != 3 || major != 1 ||
        status < 100 || status > 599) {
        error_set(err, "not an HTTP/1 answer");
        return -1;
    }
    char te[64], cl[32];
    if (header_value(buf, "Transfer-Encoding", te, sizeof te)) {
        if (strcasecmp(te, "chunked") != 0 || http_dechunk(bodyp, body_len, &body_len) < 0) {
            error_set(err, "malformed chunked answer");
            return -1;
        }
    } else if (header_value(buf, "Content-Length", cl, sizeof cl)) {
        char *e;
        unsigned long long want = strtoull(cl, &e, 10);
        if (*e || e == cl || want > body_len) {
            error_set(err, "answer shorter than its Content-Length");
            return -1;
        }
        body_len = (size_t)want;
    }
    if (body_len > HTTP_MAX_BODY) {
        error_set(err, "answer body larger than %d bytes", HTTP_MAX_BODY);
        return -1;
    }
    out->status = status;
    out->len = body_len;
    memcpy(out->body, bodyp, body_len);
    out->body[body_len] = '\0';
    return 0;
}

int http_post_json(const char *host, const char *port, const char *path, const char *body,
                   int timeout_ms, struct http_answer *out, struct error *err)
{
    uint64_t deadline = vclock_host_ns() + (uint64_t)timeout_ms * 1000000;
    size_t blen = strlen(body);
    char req[1024];
    int n = snprintf(req, sizeof req,
                     "POST %s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
                     "Content-Length: %zu\r\nConnection: close\r\n\r\n", path, host, port, blen);
    if (n < 0 || (size_t)n >= sizeof req)
        return error_set(err, "request header too long");
    int fd = connect_deadline(host, port, deadline, err);
    if (fd < 0)
        return -1;
    const size_t cap = HTTP_MAX_HEADER + HTTP_MAX_BODY + 64;
    char *buf = malloc(cap + 1);
    int rc = -1;
    if (!buf) {
        error_set(err, "out of memory");
        goto out;
    }
    if (send_all(fd, req, (size_t)n, deadline, err) < 0 || send_all(fd, body, blen, deadline, err) < 0)
        goto out;
    size_t got = 0;
    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, left_ms(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            error_set(err, "waiting for the answer: %s", r == 0 ? "timed out" : strerror(errno));
            goto out;
        }
        if (got == cap) {
            error_set(err, "answer larger than %zu bytes", cap);
            goto out;
        }
        ssize_t k = recv(fd, buf + got, cap - got, 0);
        if (k < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (k < 0) {
            error_set(err, "reading the answer: %s", strerror(errno));
            goto out;
        }
        if (k == 0)
            break;
        got += (size_t)k;
        if (answer_complete(buf, got))
            break; /* a server that keeps the connection open is not waited for */
    }
    rc = http_parse_answer(buf, got, out, err);
out:
    free(buf);
    close(fd);
    return rc;
}
