/* The destination's listener: any process that can reach the port can
 * connect, so the first connection is not trusted to be the source. The
 * listener keeps accepting and watches every pending connection until one
 * presents a stream header; the others are logged and dropped. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "machine/vclock.h"
#include "transport/tls.h"
#include "transport/transport.h"

#define PENDING_MAX 8

struct pending {
    int fd;
    size_t got;
    uint64_t since;
    uint8_t head[64];
    char peer[80];
};

static void describe_peer(int fd, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[64] = "?";
    unsigned port = 0;
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET) {
            struct sockaddr_in *a = (struct sockaddr_in *)&ss;
            inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
            port = ntohs(a->sin_port);
        } else if (ss.ss_family == AF_INET6) {
            struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
            inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
            port = ntohs(a->sin6_port);
        }
    }
    snprintf(out, cap, "%s port %u", host, port);
}

static void drop(struct pending *p, const char *why)
{
    fprintf(stderr, "ferry: dropped a connection from %s: %s; still waiting\n", p->peer, why);
    close(p->fd);
    p->fd = -1;
}

/* Reads exactly n bytes from fd within timeout_ms; false on anything else. */
static bool read_head(int fd, uint8_t *head, size_t n, int timeout_ms)
{
    uint64_t until = vclock_host_ns() + (uint64_t)timeout_ms * 1000000ull;
    size_t got = 0;
    while (got < n) {
        uint64_t now = vclock_host_ns();
        if (now >= until)
            return false;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int r = poll(&p, 1, (int)((until - now + 999999) / 1000000));
        if (r < 0 && errno != EINTR)
            return false;
        if (r <= 0)
            continue;
        ssize_t k = recv(fd, head + got, n - got, MSG_DONTWAIT);
        if (k < 0 && (errno == EAGAIN || errno == EINTR))
            continue;
        if (k <= 0)
            return false;
        got += (size_t)k;
    }
    return true;
}

/* The TLS listener: the stream header travels inside the session, so each
 * connection is taken in turn: handshake (which refuses plain and
 * unauthenticated peers), then the header, each bounded; a connection that
 * fails either is logged and dropped, and the wait goes on. One at a time
 * is enough here: a silent connection delays the real source by at most
 * the handshake's limit, while the kernel queues it. */
static int accept_tls_stream(struct endpoint *ep, int timeout_ms, int header_ms,
                             const char *magic, size_t magic_len, uint8_t *head, size_t n,
                             struct error *err)
{
    uint64_t deadline = vclock_host_ns() + (uint64_t)timeout_ms * 1000000ull;
    for (;;) {
        uint64_t now = vclock_host_ns();
        if (now >= deadline)
            return error_set(err, "no migration stream arrived within %d s", timeout_ms / 1000);
        struct pollfd lp = {.fd = ep->fd, .events = POLLIN};
        int r = poll(&lp, 1, (int)((deadline - now + 999999) / 1000000));
        if (r <= 0)
            continue;
        int fd = accept4(ep->fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        struct pending p = {.fd = fd};
        describe_peer(fd, p.peer, sizeof p.peer);
        transport_tune_socket(fd);
        struct tls_channel *tls = NULL;
        int app_fd = -1;
        struct error terr = {0};
        if (tls_server(fd, tls_get_default(), header_ms, &tls, &app_fd, &terr) < 0) {
            fprintf(stderr, "ferry: dropped a connection from %s: %s; still waiting\n", p.peer,
                    terr.msg);
            continue; /* tls_server owns (and has closed) fd */
        }
        if (!read_head(app_fd, head, n, header_ms) || memcmp(head, magic, magic_len) != 0) {
            fprintf(stderr, "ferry: dropped a connection from %s: no ferry stream header over "
                    "TLS; still waiting\n", p.peer);
            tls_close(tls, app_fd);
            continue;
        }
        fprintf(stderr, "ferry: accepted a peer over %s\n", tls_describe(tls));
        close(ep->fd);
        ep->fd = app_fd;
        ep->tls = tls;
        return 0;
    }
}

int transport_accept_stream(struct endpoint *ep, int timeout_ms, int header_ms,
                            const char *magic, size_t magic_len, uint8_t *head, size_t n,
                            struct error *err)
{
    if (ep->is_file)
        return 0;
    if (ep->want_tls)
        return accept_tls_stream(ep, timeout_ms, header_ms, magic, magic_len, head, n, err);
    if (n > sizeof ((struct pending *)0)->head || magic_len > n)
        return error_set(err, "transport_accept_stream: bad header size");
    struct pending pend[PENDING_MAX];
    for (int i = 0; i < PENDING_MAX; i++)
        pend[i].fd = -1;
    uint64_t deadline = vclock_host_ns() + (uint64_t)timeout_ms * 1000000ull;
    int chosen = -1;
    while (chosen < 0) {
        uint64_t now = vclock_host_ns();
        if (now >= deadline) {
            error_set(err, "no migration stream arrived within %d s", timeout_ms / 1000);
            break;
        }
        /* Wake for the listener, any pending connection, or the earliest
         * header deadline. */
        struct pollfd fds[1 + PENDING_MAX];
        int map[1 + PENDING_MAX], nfds = 0;
        uint64_t wake = deadline;
        fds[nfds] = (struct pollfd){.fd = ep->fd, .events = POLLIN};
        map[nfds++] = -1;
        for (int i = 0; i < PENDING_MAX; i++) {
            if (pend[i].fd < 0)
                continue;
            uint64_t until = pend[i].since + (uint64_t)header_ms * 1000000ull;
            if (until <= now) {
                drop(&pend[i], "no stream header in time");
                continue;
            }
            if (until < wake)
                wake = until;
            fds[nfds] = (struct pollfd){.fd = pend[i].fd, .events = POLLIN};
            map[nfds++] = i;
        }
        int wait_ms = (int)((wake - now + 999999) / 1000000);
        int r = poll(fds, (nfds_t)nfds, wait_ms);
        if (r < 0 && errno != EINTR) {
            error_set(err, "poll: %s", strerror(errno));
            break;
        }
        if (r <= 0)
            continue;
        for (int k = 1; k < nfds && chosen < 0; k++) {
            if (!fds[k].revents)
                continue;
            struct pending *p = &pend[map[k]];
            ssize_t got = recv(p->fd, p->head + p->got, n - p->got, MSG_DONTWAIT);
            if (got < 0 && (errno == EAGAIN || errno == EINTR))
                continue;
            if (got <= 0) {
                drop(p, got == 0 ? "closed before sending a stream header"
                                 : "error before sending a stream header");
                continue;
            }
            p->got += (size_t)got;
            size_t cmp = p->got < magic_len ? p->got : magic_len;
            if (memcmp(p->head, magic, cmp) != 0)
                drop(p, "not a ferry migration stream");
            else if (p->got == n)
                chosen = map[k];
        }
        if (chosen < 0 && (fds[0].revents & POLLIN)) {
            int fd = accept4(ep->fd, NULL, NULL, SOCK_CLOEXEC);
            if (fd < 0)
                continue;
            int slot = -1;
            for (int i = 0; i < PENDING_MAX && slot < 0; i++)
                if (pend[i].fd < 0)
                    slot = i;
            if (slot < 0) {
                /* All slots taken by silent connections: the oldest goes. */
                slot = 0;
                for (int i = 1; i < PENDING_MAX; i++)
                    if (pend[i].since < pend[slot].since)
                        slot = i;
                drop(&pend[slot], "too many connections without a stream header");
            }
            pend[slot] = (struct pending){.fd = fd, .since = vclock_host_ns()};
            describe_peer(fd, pend[slot].peer, sizeof pend[slot].peer);
        }
    }
    for (int i = 0; i < PENDING_MAX; i++)
        if (pend[i].fd >= 0 && i != chosen)
            drop(&pend[i], "another connection is the migration stream");
    if (chosen < 0)
        return -1;
    close(ep->fd);
    transport_tune_socket(pend[chosen].fd);
    ep->fd = pend[chosen].fd;
    memcpy(head, pend[chosen].head, n);
    return 0;
}
