#include "transport/transport.h"
#include "transport/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

int transport_parse_tcp(const char *uri, char *host, size_t host_cap, char *port, size_t port_cap,
                        struct error *err)
{
    if (strncmp(uri, "tcp:", 4) != 0 && strncmp(uri, "tls:", 4) != 0)
        return error_set(err, "'%s' is not tcp:HOST:PORT or tls:HOST:PORT", uri);
    const char *h = uri + 4;
    const char *colon = strrchr(h, ':');
    if (!colon || colon == h)
        return error_set(err, "'%s' is not tcp:HOST:PORT", uri);
    size_t hl = (size_t)(colon - h);
    if (hl >= host_cap)
        return error_set(err, "host name in '%s' is too long", uri);
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*(colon + 1) == '\0' || *end || p < 1 || p > 65535)
        return error_set(err, "port in '%s' must be a number from 1 to 65535", uri);
    memcpy(host, h, hl);
    host[hl] = '\0';
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') { /* [v6] */
        memmove(host, host + 1, hl - 2);
        host[hl - 2] = '\0';
    }
    snprintf(port, port_cap, "%ld", p);
    return 0;
}

void transport_tune_socket(int fd)
{
    /* Modest buffers: the send rate the source measures then tracks what
     * the destination has applied, so the final pause has little backlog. */
    int one = 1, buf = 1 << 20;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
}

#define TLS_HANDSHAKE_TIMEOUT_MS 10000

static bool is_tls(const char *uri) { return strncmp(uri, "tls:", 4) == 0; }

int transport_check_uri(const char *uri, bool allow_file, struct error *err)
{
    if (allow_file && strncmp(uri, "file:", 5) == 0)
        return uri[5] ? 0 : error_set(err, "'%s' names no file", uri);
    char host[256], port[16];
    return transport_parse_tcp(uri, host, sizeof host, port, sizeof port, err);
}

const char *transport_describe(const struct endpoint *ep)
{
    return ep->is_file ? "file" : tls_describe(ep->tls);
}

int transport_open_out(const char *uri, struct endpoint *ep, struct error *err)
{
    return transport_open_out_tls(uri, NULL, ep, err);
}

int transport_open_out_tls(const char *uri, const struct tls_config *tls, struct endpoint *ep,
                           struct error *err)
{
    *ep = (struct endpoint){.fd = -1};
    if (strncmp(uri, "file:", 5) == 0)
        return transport_open_file(uri + 5, ep, err);
    char host[256], port[16];
    if (transport_parse_tcp(uri, host, sizeof host, port, sizeof port, err) < 0)
        return -1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(host, port, &hints, &res);
    if (rc)
        return error_set(err, "cannot resolve %s: %s", host, gai_strerror(rc));
    int last = 0;
    for (struct addrinfo *ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (fd < 0)
            continue;
        /* Connect with a timeout: a black-holed address must not hang. */
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
            last = errno;
            close(fd);
            continue;
        }
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int soerr = 0;
        socklen_t sl = sizeof soerr;
        if (poll(&p, 1, 5000) != 1 || getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) < 0 ||
            soerr) {
            last = soerr ? soerr : ETIMEDOUT;
            close(fd);
            continue;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK);
        transport_tune_socket(fd);
        ep->fd = fd;
        break;
    }
    freeaddrinfo(res);
    if (ep->fd < 0)
        return error_set(err, "cannot connect to %s:%s: %s", host, port, strerror(last));
    if (is_tls(uri)) {
        int net = ep->fd;
        ep->fd = -1;
        if (tls_client(net, host, tls && !tls_config_empty(tls) ? tls : tls_get_default(),
                       TLS_HANDSHAKE_TIMEOUT_MS, &ep->tls, &ep->fd, err) < 0)
            return -1;
        fprintf(stderr, "ferry: connected to %s:%s over %s\n", host, port, tls_describe(ep->tls));
    }
    return 0;
}

int transport_listen(const char *uri, struct endpoint *ep, struct error *err)
{
    *ep = (struct endpoint){.fd = -1};
    ep->want_tls = is_tls(uri);
    if (ep->want_tls && tls_config_check(tls_get_default(), err) < 0)
        return -1;
    if (strncmp(uri, "file:", 5) == 0) {
        ep->fd = open(uri + 5, O_RDONLY | O_CLOEXEC);
        if (ep->fd < 0)
            return error_set(err, "cannot open %s: %s", uri + 5, strerror(errno));
        ep->is_file = true;
        return 0;
    }
    char host[256], port[16];
    if (transport_parse_tcp(uri, host, sizeof host, port, sizeof port, err) < 0)
        return -1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE}, *res;
    int rc = getaddrinfo(host[0] ? host : NULL, port, &hints, &res);
    if (rc)
        return error_set(err, "cannot resolve %s: %s", host, gai_strerror(rc));
    int fd = socket(res->ai_family, res->ai_socktype | SOCK_CLOEXEC, 0);
    int one = 1;
    if (fd >= 0)
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (fd < 0 || bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 8) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        freeaddrinfo(res);
        return error_set(err, "cannot listen on %s:%s: %s", host, port, strerror(e));
    }
    freeaddrinfo(res);
    ep->fd = fd;
    return 0;
}

void transport_close(struct endpoint *ep)
{
    if (ep->tls) {
        tls_close(ep->tls, ep->fd);
        ep->tls = NULL;
    } else if (ep->fd >= 0) {
        close(ep->fd);
    }
    ep->fd = -1;
    if (ep->tmp_path)
        unlink(ep->tmp_path); /* not committed: leave nothing behind */
    free(ep->tmp_path);
    free(ep->final_path);
    ep->tmp_path = ep->final_path = NULL;
}
