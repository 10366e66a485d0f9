/* The user-space half of a TLS channel when the kernel cannot encrypt
 * (no kTLS): a thread moving bytes between the stream's socket pair and the
 * TLS session, so the stream code reads and writes a plain fd either way. */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>

#include "transport/tls_internal.h"

#define PUMP_BUF (64u * 1024)
#define CLOSE_FLUSH_MS 5000

/* Moves bytes between the stream's socket pair and the TLS session, each
 * direction until its end of file:
 * - the stream closes its fd: what it wrote is sent (within CLOSE_FLUSH_MS),
 *   then close_notify, and the pump ends;
 * - the stream shuts down its writing only: what it wrote is sent, then
 *   close_notify, and the other direction goes on;
 * - the peer ends the session (close_notify): the stream reads what came,
 *   then end of file, and may go on writing until it closes;
 * - the connection fails: the stream reads what came, then end of file; its
 *   writes fail. */
void *tls_pump_run(void *arg)
{
    struct tls_channel *t = arg;
    /* For the thread's life: a SIGPIPE raised by a write to a dead peer
     * stays pending here (and goes with the thread) instead of ending the
     * process; the write itself fails with EPIPE. */
    sigset_t pipe;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, NULL);
    uint8_t *up = malloc(PUMP_BUF), *down = malloc(PUMP_BUF);
    size_t up_len = 0, up_off = 0, down_len = 0, down_off = 0;
    bool local_eof = false, local_gone = false, net_eof = false, net_failed = false;
    bool sent_close = false, told_eof = false;
    uint64_t flush_deadline = 0;
    char why[160];
    why[0] = '\0';
    if (!up || !down) {
        snprintf(why, sizeof why, "out of memory");
        goto out;
    }
    for (;;) {
        bool progress = false;
        short net_ev = 0, local_ev = 0;
        if (!local_eof && up_len == 0) {
            ssize_t n = recv(t->local, up, PUMP_BUF, MSG_DONTWAIT);
            if (n > 0) {
                up_len = (size_t)n;
                up_off = 0;
                progress = true;
            } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
                /* Closed (both ways hung up) or only shut for writing? */
                struct pollfd h = {.fd = t->local, .events = 0};
                local_eof = true;
                local_gone = n != 0 || (poll(&h, 1, 0) == 1 && (h.revents & (POLLHUP | POLLERR)));
                flush_deadline = tls_now_ms() + CLOSE_FLUSH_MS;
                progress = true;
            } else {
                local_ev |= POLLIN;
            }
        }
        if (up_off < up_len) {
            ERR_clear_error();
            int n = SSL_write(t->ssl, up + up_off, (int)(up_len - up_off));
            if (n > 0) {
                up_off += (size_t)n;
                if (up_off == up_len)
                    up_len = up_off = 0;
                progress = true;
            } else {
                int e = SSL_get_error(t->ssl, n);
                if (e == SSL_ERROR_WANT_WRITE)
                    net_ev |= POLLOUT;
                else if (e == SSL_ERROR_WANT_READ)
                    net_ev |= POLLIN;
                else {
                    tls_openssl_reason(why, sizeof why);
                    break;
                }
            }
        }
        if (local_eof && up_len == 0) {
            /* Everything the stream wrote is in the session. */
            if (local_gone || net_eof)
                break;
            if (!sent_close) {
                ERR_clear_error();
                SSL_shutdown(t->ssl); /* close_notify: our direction ends */
                sent_close = true;
            }
        }
        if (!net_eof && down_len == 0) {
            ERR_clear_error();
            int n = SSL_read(t->ssl, down, PUMP_BUF);
            if (n > 0) {
                down_len = (size_t)n;
                down_off = 0;
                progress = true;
            } else {
                int e = SSL_get_error(t->ssl, n);
                if (e == SSL_ERROR_WANT_READ)
                    net_ev |= POLLIN;
                else if (e == SSL_ERROR_WANT_WRITE)
                    net_ev |= POLLOUT;
                else {
                    if (e != SSL_ERROR_ZERO_RETURN) {
                        tls_openssl_reason(why, sizeof why);
                        net_failed = true;
                    }
                    net_eof = true;
                    progress = true;
                }
            }
        }
        if (down_off < down_len) {
            ssize_t n = send(t->local, down + down_off, down_len - down_off,
                             MSG_DONTWAIT | MSG_NOSIGNAL);
            if (n > 0) {
                down_off += (size_t)n;
                if (down_off == down_len)
                    down_len = down_off = 0;
                progress = true;
            } else if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
                local_ev |= POLLOUT;
            } else {
                break; /* the stream closed its end */
            }
        }
        if (net_eof && down_len == 0) {
            /* The stream has everything the peer sent. */
            if (net_failed || local_eof)
                break;
            if (!told_eof) {
                shutdown(t->local, SHUT_WR);
                told_eof = true;
            }
        }
        if (progress)
            continue;
        /* A side with nothing to wait for is left out: a hung-up socket
         * would otherwise wake the poll at once, again and again. The
         * stream's end is watched after it shut its writing, for it to
         * close. */
        bool watch_local = local_ev || (local_eof && !local_gone);
        struct pollfd p[2] = {{.fd = net_ev ? t->net : -1, .events = net_ev},
                              {.fd = watch_local ? t->local : -1, .events = local_ev}};
        int timeout = -1;
        if (local_gone) {
            uint64_t now = tls_now_ms();
            if (now >= flush_deadline)
                break;
            timeout = (int)(flush_deadline - now);
        }
        if (poll(p, 2, timeout) < 0 && errno != EINTR)
            break;
        if (local_eof && !local_gone && (p[1].revents & (POLLHUP | POLLERR)) && !down_len)
            break; /* the stream closed after shutting its writing */
    }
out:
    if (why[0])
        fprintf(stderr, "ferry: TLS channel ended: %s\n", why);
    if (local_eof && !why[0] && !sent_close) {
        ERR_clear_error();
        SSL_shutdown(t->ssl); /* close_notify; the peer's answer is not awaited */
    }
    /* The stream reads what is queued, then end of file; its writes fail. */
    shutdown(t->net, SHUT_RDWR);
    close(t->local);
    t->local = -1;
    free(up);
    free(down);
    return NULL;
}

