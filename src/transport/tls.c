#include "transport/tls.h"
#include "transport/tls_internal.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/crc32c.h"

/* The server's "you are accepted" byte: in TLS 1.3 the client finishes its
 * handshake before the server has checked the client's certificate, so
 * without it a refused source would learn why only from a later read. */
#define ACCEPTED_BYTE 'K'

void tls_sigpipe_block(struct sigpipe_guard *g)
{
    sigset_t pipe, pending;
    sigemptyset(&pipe);
    sigaddset(&pipe, SIGPIPE);
    sigpending(&pending);
    g->was_pending = sigismember(&pending, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &g->old);
}

void tls_sigpipe_restore(struct sigpipe_guard *g)
{
    if (!g->was_pending) {
        sigset_t pipe, pending;
        sigemptyset(&pipe);
        sigaddset(&pipe, SIGPIPE);
        sigpending(&pending);
        if (sigismember(&pending, SIGPIPE)) {
            struct timespec zero = {0, 0};
            sigtimedwait(&pipe, NULL, &zero);
        }
    }
    pthread_sigmask(SIG_SETMASK, &g->old, NULL);
}

static struct tls_config default_config;
static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;

bool tls_config_empty(const struct tls_config *c)
{
    return !c || (!c->cert[0] && !c->key[0] && !c->ca[0] && !c->psk[0]);
}

void tls_set_default(const struct tls_config *c)
{
    pthread_mutex_lock(&default_lock);
    default_config = *c;
    pthread_mutex_unlock(&default_lock);
}

const struct tls_config *tls_get_default(void)
{
    return &default_config; /* set once at start-up, before any job */
}

uint64_t tls_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The most telling OpenSSL reason queued on this thread, then clears it. */
const char *tls_openssl_reason(char *buf, size_t cap)
{
    unsigned long e, last = 0;
    while ((e = ERR_get_error()) != 0)
        last = e;
    if (!last) {
        snprintf(buf, cap, "connection closed during the handshake");
        return buf;
    }
    const char *r = ERR_reason_error_string(last);
    if (r)
        snprintf(buf, cap, "%s", r);
    else
        ERR_error_string_n(last, buf, cap);
    return buf;
}

static bool is_set(const char *s) { return s && s[0]; }

int tls_config_check(const struct tls_config *c, struct error *err)
{
    bool certs = is_set(c->cert) || is_set(c->key) || is_set(c->ca);
    if (certs && is_set(c->psk))
        return error_set(err, "--tls-psk does not combine with --tls-cert/--tls-key/--tls-ca");
    if (!certs && !is_set(c->psk))
        return error_set(err, "tls: needs credentials: --tls-cert, --tls-key and --tls-ca, "
                         "or --tls-psk FILE");
    if (is_set(c->psk)) {
        uint8_t key[PSK_MAX_BYTES];
        size_t len;
        int rc = tls_read_psk(c->psk, key, &len, err);
        OPENSSL_cleanse(key, sizeof key);
        return rc;
    }
    if (!is_set(c->cert) || !is_set(c->key) || !is_set(c->ca))
        return error_set(err, "certificate authentication needs all of --tls-cert, --tls-key "
                         "and --tls-ca (both sides verify the peer)");
    SSL_CTX *ctx = SSL_CTX_new(TLS_method());
    char why[160];
    int rc = 0;
    if (!ctx)
        rc = error_set(err, "TLS: %s", tls_openssl_reason(why, sizeof why));
    else if (SSL_CTX_use_certificate_chain_file(ctx, c->cert) != 1)
        rc = error_set(err, "cannot load the certificate %s: %s", c->cert,
                       tls_openssl_reason(why, sizeof why));
    else if (SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1)
        rc = strstr(tls_openssl_reason(why, sizeof why), "mismatch")
                 ? error_set(err, "the private key %s does not belong to the certificate %s",
                             c->key, c->cert)
                 : error_set(err, "cannot load the private key %s: %s", c->key, why);
    else if (SSL_CTX_check_private_key(ctx) != 1)
        rc = error_set(err, "the private key %s does not belong to the certificate %s", c->key,
                       c->cert);
    else if (SSL_CTX_load_verify_locations(ctx, c->ca, NULL) != 1)
        rc = error_set(err, "cannot load the CA certificates %s: %s", c->ca,
                       tls_openssl_reason(why, sizeof why));
    SSL_CTX_free(ctx);
    return rc;
}

static struct tls_channel *channel_new(int net_fd, const struct tls_config *c, bool server,
                                       struct error *err)
{
    char why[160];
    if (tls_config_check(c, err) < 0)
        return NULL;
    struct tls_channel *t = calloc(1, sizeof *t);
    if (!t) {
        error_set(err, "out of memory");
        return NULL;
    }
    t->net = net_fd;
    t->local = -1;
    t->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (!t->ctx)
        goto ssl_fail;
    SSL_CTX_set_min_proto_version(t->ctx, TLS1_3_VERSION);
    SSL_CTX_set_max_proto_version(t->ctx, TLS1_3_VERSION);
    if (SSL_CTX_set_ciphersuites(t->ctx, CIPHERSUITES) != 1)
        goto ssl_fail;
    /* One connection per migration: no session tickets to resume with
     * (they would also be records a kTLS receiver could not pass on). */
    SSL_CTX_set_num_tickets(t->ctx, 0);
    SSL_CTX_set_session_cache_mode(t->ctx, SSL_SESS_CACHE_OFF);
    SSL_CTX_set_options(t->ctx, SSL_OP_ENABLE_KTLS | SSL_OP_NO_TICKET);
    SSL_CTX_set_mode(t->ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (is_set(c->psk)) {
        if (tls_read_psk(c->psk, t->psk, &t->psk_len, err) < 0)
            goto fail;
        tls_psk_install(t->ctx, server);
    } else {
        if (SSL_CTX_use_certificate_chain_file(t->ctx, c->cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(t->ctx, c->key, SSL_FILETYPE_PEM) != 1 ||
            SSL_CTX_load_verify_locations(t->ctx, c->ca, NULL) != 1)
            goto ssl_fail;
        SSL_CTX_set_verify(t->ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
    }
    t->ssl = SSL_new(t->ctx);
    if (!t->ssl || SSL_set_fd(t->ssl, net_fd) != 1)
        goto ssl_fail;
    SSL_set_app_data(t->ssl, t);
    return t;
ssl_fail:
    error_set(err, "TLS set-up: %s", tls_openssl_reason(why, sizeof why));
fail:
    OPENSSL_cleanse(t->psk, sizeof t->psk);
    SSL_free(t->ssl);
    SSL_CTX_free(t->ctx);
    free(t);
    return NULL;
}

static void channel_free(struct tls_channel *t)
{
    if (t->local >= 0)
        close(t->local);
    SSL_free(t->ssl);
    SSL_CTX_free(t->ctx);
    if (t->net >= 0)
        close(t->net);
    OPENSSL_cleanse(t->psk, sizeof t->psk);
    free(t);
}

static int wait_until(int fd, short events, uint64_t deadline)
{
    for (;;) {
        uint64_t now = tls_now_ms();
        if (now >= deadline)
            return -1;
        struct pollfd p = {.fd = fd, .events = events};
        int n = poll(&p, 1, (int)(deadline - now));
        if (n > 0)
            return 0;
        if (n < 0 && errno != EINTR)
            return -1;
    }
}

/* Why a handshake failed, in the operator's words where we can. */
static int handshake_error(struct tls_channel *t, bool server, const char *peer,
                           struct error *err)
{
    char why[160];
    long v = SSL_get_verify_result(t->ssl);
    tls_openssl_reason(why, sizeof why);
    if (v != X509_V_OK)
        return error_set(err, "%s %s: its certificate did not verify: %s",
                         server ? "refused the peer" : "refused the destination", peer,
                         X509_verify_cert_error_string(v));
    if (server && strstr(why, "did not return a certificate"))
        return error_set(err, "refused the peer %s: it presented no certificate (TLS with "
                         "mutual authentication is required)", peer);
    if (strstr(why, "binder") || strstr(why, "decrypt error"))
        return error_set(err, "%s %s: the pre-shared keys differ (%s)",
                         server ? "refused the peer" : "the destination refused us", peer, why);
    if (strstr(why, "alert"))
        return error_set(err, "the %s %s refused our credentials (%s)",
                         server ? "peer" : "destination", peer, why);
    return error_set(err, "TLS handshake with %s failed: %s", peer, why);
}

static int handshake(struct tls_channel *t, bool server, const char *peer, int timeout_ms,
                     struct error *err)
{
    uint64_t deadline = tls_now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        ERR_clear_error();
        struct sigpipe_guard g;
        tls_sigpipe_block(&g);
        int r = server ? SSL_accept(t->ssl) : SSL_connect(t->ssl);
        tls_sigpipe_restore(&g);
        if (r == 1)
            return 0;
        int e = SSL_get_error(t->ssl, r);
        short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
        if (!ev)
            return handshake_error(t, server, peer, err);
        if (wait_until(t->net, ev, deadline) < 0)
            return error_set(err, "TLS handshake with %s did not complete within %d s", peer,
                             timeout_ms / 1000);
    }
}

/* One byte of application data, each way of the confirmation. */
static int confirm(struct tls_channel *t, bool server, const char *peer, int timeout_ms,
                   struct error *err)
{
    uint64_t deadline = tls_now_ms() + (uint64_t)timeout_ms;
    uint8_t b = ACCEPTED_BYTE;
    for (;;) {
        ERR_clear_error();
        struct sigpipe_guard g;
        tls_sigpipe_block(&g);
        int r = server ? SSL_write(t->ssl, &b, 1) : SSL_read(t->ssl, &b, 1);
        tls_sigpipe_restore(&g);
        if (r == 1)
            break;
        int e = SSL_get_error(t->ssl, r);
        short ev = e == SSL_ERROR_WANT_READ ? POLLIN : e == SSL_ERROR_WANT_WRITE ? POLLOUT : 0;
        if (!ev)
            return handshake_error(t, server, peer, err);
        if (wait_until(t->net, ev, deadline) < 0)
            return error_set(err, "%s did not confirm the TLS session within %d s", peer,
                             timeout_ms / 1000);
    }
    if (!server && b != ACCEPTED_BYTE)
        return error_set(err, "%s sent an unexpected TLS confirmation", peer);
    return 0;
}

static void set_blocking(int fd, bool blocking)
{
    int fl = fcntl(fd, F_GETFL);
    fcntl(fd, F_SETFL, blocking ? fl & ~O_NONBLOCK : fl | O_NONBLOCK);
}

static void describe(struct tls_channel *t, bool psk)
{
    bool ksend = BIO_get_ktls_send(SSL_get_wbio(t->ssl));
    bool krecv = BIO_get_ktls_recv(SSL_get_rbio(t->ssl));
    const char *where = ksend && krecv ? "in the kernel (kTLS)"
                        : ksend ? "kernel (kTLS) for sending, user space for receiving"
                                : "in user space (no kTLS in this kernel)";
    snprintf(t->describe, sizeof t->describe, "%s %s, %s, encryption %s", SSL_get_version(t->ssl),
             SSL_CIPHER_get_name(SSL_get_current_cipher(t->ssl)),
             psk ? "pre-shared key" : "certificates verified both ways", where);
    t->ktls = ksend && krecv;
}

/* After the handshake: hands the stream its fd. */
static int channel_start(struct tls_channel *t, bool psk, int *app_fd, struct error *err)
{
    describe(t, psk);
    if (t->ktls) {
        set_blocking(t->net, true);
        *app_fd = t->net;
        return 0;
    }
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
        return error_set(err, "socketpair: %s", strerror(errno));
    int buf = 1 << 20;
    for (int i = 0; i < 2; i++) {
        setsockopt(sv[i], SOL_SOCKET, SO_SNDBUF, &buf, sizeof buf);
        setsockopt(sv[i], SOL_SOCKET, SO_RCVBUF, &buf, sizeof buf);
    }
    t->local = sv[1];
    int rc = pthread_create(&t->pump, NULL, tls_pump_run, t);
    if (rc) {
        close(sv[0]);
        return error_set(err, "cannot start the TLS thread: %s", strerror(rc));
    }
    t->pump_started = true;
    *app_fd = sv[0];
    return 0;
}

/* A plain ferry source cannot read TLS: tell it in its own language, one
 * ERROR record of the stream (docs/migration-stream.md: u32 type, u32
 * length, text, u32 CRC-32C), then read and drop what it sends for a
 * moment, so that its pre-copy round can end and it reads the reason
 * instead of a reset connection. Bounded in time and bytes. */
#define PLAIN_REFUSAL_ERROR_TYPE 0x103
#define PLAIN_REFUSAL_DRAIN_MS 3000
#define PLAIN_REFUSAL_DRAIN_BYTES (256u << 20)
static void refuse_plain_peer(int fd, const char *msg)
{
    uint8_t rec[256];
    size_t len = strlen(msg) < sizeof rec - 12 ? strlen(msg) : sizeof rec - 12;
    for (int i = 0; i < 4; i++) {
        rec[i] = (uint8_t)(PLAIN_REFUSAL_ERROR_TYPE >> (8 * i));
        rec[4 + i] = (uint8_t)(len >> (8 * i));
    }
    memcpy(rec + 8, msg, len);
    uint32_t crc = crc32c(0, rec, 8 + len);
    for (int i = 0; i < 4; i++)
        rec[8 + len + i] = (uint8_t)(crc >> (8 * i));
    if (send(fd, rec, 12 + len, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)(12 + len))
        return;
    shutdown(fd, SHUT_WR);
    uint64_t deadline = tls_now_ms() + PLAIN_REFUSAL_DRAIN_MS;
    size_t drained = 0;
    static uint8_t sink[65536];
    while (drained < PLAIN_REFUSAL_DRAIN_BYTES && wait_until(fd, POLLIN, deadline) == 0) {
        ssize_t n = recv(fd, sink, sizeof sink, MSG_DONTWAIT);
        if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
            break;
        if (n > 0)
            drained += (size_t)n;
    }
}

static void peer_name(int fd, char *buf, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    if (getpeername(fd, (struct sockaddr *)&ss, &sl) == 0) {
        if (ss.ss_family == AF_INET)
            inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, sizeof host);
        else if (ss.ss_family == AF_INET6)
            inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, sizeof host);
    }
    snprintf(buf, cap, "%s", host);
}

int tls_client(int net_fd, const char *host, const struct tls_config *c, int timeout_ms,
               struct tls_channel **out, int *app_fd, struct error *err)
{
    struct tls_channel *t = channel_new(net_fd, c, false, err);
    if (!t) {
        close(net_fd);
        return -1;
    }
    set_blocking(net_fd, false);
    if (!is_set(c->psk)) {
        /* The destination's certificate must be issued for the name (or
         * address) the URI gave. */
        X509_VERIFY_PARAM *vp = SSL_get0_param(t->ssl);
        struct in6_addr a6;
        struct in_addr a4;
        bool ip = inet_pton(AF_INET, host, &a4) == 1 || inet_pton(AF_INET6, host, &a6) == 1;
        if (ip ? X509_VERIFY_PARAM_set1_ip_asc(vp, host) != 1
               : SSL_set1_host(t->ssl, host) != 1) {
            channel_free(t);
            return error_set(err, "TLS: cannot check the destination's name %s", host);
        }
        if (!ip)
            SSL_set_tlsext_host_name(t->ssl, host);
    }
    if (handshake(t, false, host, timeout_ms, err) < 0 ||
        confirm(t, false, host, timeout_ms, err) < 0 ||
        channel_start(t, is_set(c->psk), app_fd, err) < 0) {
        channel_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

int tls_server(int net_fd, const struct tls_config *c, int timeout_ms, struct tls_channel **out,
               int *app_fd, struct error *err)
{
    char peer[INET6_ADDRSTRLEN + 8];
    peer_name(net_fd, peer, sizeof peer);
    struct tls_channel *t = channel_new(net_fd, c, true, err);
    if (!t) {
        close(net_fd);
        return -1;
    }
    set_blocking(net_fd, false);
    /* A TLS connection starts with a handshake record (type 22); a plain
     * ferry source starts with the stream's magic. Tell them apart before
     * anything else, so the message says what happened. */
    uint8_t first[8];
    uint64_t deadline = tls_now_ms() + (uint64_t)timeout_ms;
    ssize_t n;
    for (;;) {
        n = recv(net_fd, first, sizeof first, MSG_PEEK);
        if (n >= 0 || (errno != EAGAIN && errno != EINTR))
            break;
        if (wait_until(net_fd, POLLIN, deadline) < 0) {
            channel_free(t);
            return error_set(err, "refused the peer %s: it sent nothing within %d s", peer,
                             timeout_ms / 1000);
        }
    }
    if (n > 0 && first[0] != 22) {
        if (n >= 4 && memcmp(first, "FERRYMIG", (size_t)n < 8 ? (size_t)n : 8) == 0) {
            refuse_plain_peer(net_fd, "this destination accepts only TLS (tls:HOST:PORT with "
                              "credentials); a plain stream is refused");
            channel_free(t);
            return error_set(err, "refused a plain (unencrypted) migration stream from %s: this "
                             "destination accepts only tls: peers", peer);
        }
        channel_free(t);
        return error_set(err, "refused the peer %s: it does not speak TLS", peer);
    }
    if (handshake(t, true, peer, timeout_ms, err) < 0 ||
        confirm(t, true, peer, timeout_ms, err) < 0 ||
        channel_start(t, is_set(c->psk), app_fd, err) < 0) {
        channel_free(t);
        return -1;
    }
    *out = t;
    return 0;
}

void tls_close(struct tls_channel *t, int app_fd)
{
    if (!t)
        return;
    if (t->ktls) {
        ERR_clear_error();
        set_blocking(t->net, false); /* close_notify, if there is room: never wait */
        struct sigpipe_guard g;
        tls_sigpipe_block(&g);
        SSL_shutdown(t->ssl);
        tls_sigpipe_restore(&g);
        channel_free(t); /* app_fd is t->net */
        return;
    }
    if (app_fd >= 0)
        close(app_fd);
    if (t->pump_started)
        pthread_join(t->pump, NULL);
    channel_free(t);
}

const char *tls_describe(const struct tls_channel *t) { return t ? t->describe : "plain TCP"; }

bool tls_is_ktls(const struct tls_channel *t) { return t && t->ktls; }
