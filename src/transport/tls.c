#include "transport/tls.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "base/crc32c.h"

#define PSK_IDENTITY "ferry-migration"
#define PSK_MIN_BYTES 16
#define PSK_MAX_BYTES 64
#define CIPHERSUITES "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"
/* The server's "you are accepted" byte: in TLS 1.3 the client finishes its
 * handshake before the server has checked the client's certificate, so
 * without it a refused source would learn why only from a later read. */
#define ACCEPTED_BYTE 'K'
#define PUMP_BUF (64u * 1024)
#define CLOSE_FLUSH_MS 5000

struct tls_channel {
    SSL_CTX *ctx;
    SSL *ssl;
    int net;                  /* the TCP socket */
    int local;                /* the pump's end of the socket pair, or -1 */
    bool ktls;                /* the stream uses net directly */
    bool pump_started;
    pthread_t pump;
    uint8_t psk[PSK_MAX_BYTES];
    size_t psk_len;
    char describe[200];
};

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

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The most telling OpenSSL reason queued on this thread, then clears it. */
static const char *openssl_reason(char *buf, size_t cap)
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

static int read_psk(const char *path, uint8_t *key, size_t *len, struct error *err)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return error_set(err, "cannot open the pre-shared key %s: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) < 0 || (st.st_mode & 077)) {
        close(fd);
        return error_set(err, "the pre-shared key %s must be readable only by its owner "
                         "(chmod 600)", path);
    }
    char text[2 * PSK_MAX_BYTES + 8];
    ssize_t n = read(fd, text, sizeof text - 1);
    close(fd);
    if (n < 0)
        return error_set(err, "cannot read %s: %s", path, strerror(errno));
    while (n > 0 && isspace((unsigned char)text[n - 1]))
        n--;
    text[n] = '\0';
    if (n % 2 || n / 2 < PSK_MIN_BYTES || n / 2 > PSK_MAX_BYTES)
        return error_set(err, "the pre-shared key %s must hold %d to %d bytes in hex "
                         "(e.g. openssl rand -hex 32)", path, PSK_MIN_BYTES, PSK_MAX_BYTES);
    for (ssize_t i = 0; i < n / 2; i++) {
        unsigned v;
        if (!isxdigit((unsigned char)text[2 * i]) || !isxdigit((unsigned char)text[2 * i + 1]) ||
            sscanf(text + 2 * i, "%2x", &v) != 1)
            return error_set(err, "the pre-shared key %s is not hex", path);
        key[i] = (uint8_t)v;
    }
    *len = (size_t)n / 2;
    return 0;
}

/* The session that carries an external PSK: TLS 1.3, AES-256-GCM-SHA384. */
static SSL_SESSION *psk_session(SSL *ssl, const struct tls_channel *t)
{
    static const unsigned char aes256_sha384[2] = {0x13, 0x02};
    const SSL_CIPHER *cipher = SSL_CIPHER_find(ssl, aes256_sha384);
    SSL_SESSION *s = cipher ? SSL_SESSION_new() : NULL;
    if (s && SSL_SESSION_set1_master_key(s, t->psk, t->psk_len) &&
        SSL_SESSION_set_cipher(s, cipher) && SSL_SESSION_set_protocol_version(s, TLS1_3_VERSION))
        return s;
    SSL_SESSION_free(s);
    return NULL;
}

static int psk_use_session(SSL *ssl, const EVP_MD *md, const unsigned char **id, size_t *idlen,
                           SSL_SESSION **sess)
{
    const struct tls_channel *t = SSL_get_app_data(ssl);
    SSL_SESSION *s = psk_session(ssl, t);
    if (!s)
        return 0;
    if (md && md != SSL_CIPHER_get_handshake_digest(SSL_SESSION_get0_cipher(s))) {
        /* Asked again for a suite the key is not bound to: no PSK for it. */
        SSL_SESSION_free(s);
        *sess = NULL;
        *id = NULL;
        *idlen = 0;
        return 1;
    }
    *sess = s;
    *id = (const unsigned char *)PSK_IDENTITY;
    *idlen = strlen(PSK_IDENTITY);
    return 1;
}

static int psk_find_session(SSL *ssl, const unsigned char *id, size_t idlen, SSL_SESSION **sess)
{
    const struct tls_channel *t = SSL_get_app_data(ssl);
    *sess = NULL;
    if (idlen != strlen(PSK_IDENTITY) || memcmp(id, PSK_IDENTITY, idlen) != 0)
        return 1; /* not our identity: no PSK, and without a certificate no handshake */
    *sess = psk_session(ssl, t);
    return *sess ? 1 : 0;
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
        int rc = read_psk(c->psk, key, &len, err);
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
        rc = error_set(err, "TLS: %s", openssl_reason(why, sizeof why));
    else if (SSL_CTX_use_certificate_chain_file(ctx, c->cert) != 1)
        rc = error_set(err, "cannot load the certificate %s: %s", c->cert,
                       openssl_reason(why, sizeof why));
    else if (SSL_CTX_use_PrivateKey_file(ctx, c->key, SSL_FILETYPE_PEM) != 1)
        rc = strstr(openssl_reason(why, sizeof why), "mismatch")
                 ? error_set(err, "the private key %s does not belong to the certificate %s",
                             c->key, c->cert)
                 : error_set(err, "cannot load the private key %s: %s", c->key, why);
    else if (SSL_CTX_check_private_key(ctx) != 1)
        rc = error_set(err, "the private key %s does not belong to the certificate %s", c->key,
                       c->cert);
    else if (SSL_CTX_load_verify_locations(ctx, c->ca, NULL) != 1)
        rc = error_set(err, "cannot load the CA certificates %s: %s", c->ca,
                       openssl_reason(why, sizeof why));
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
        if (read_psk(c->psk, t->psk, &t->psk_len, err) < 0)
            goto fail;
        if (server)
            SSL_CTX_set_psk_find_session_callback(t->ctx, psk_find_session);
        else
            SSL_CTX_set_psk_use_session_callback(t->ctx, psk_use_session);
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
    error_set(err, "TLS set-up: %s", openssl_reason(why, sizeof why));
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
        uint64_t now = now_ms();
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
    openssl_reason(why, sizeof why);
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
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    for (;;) {
        ERR_clear_error();
        int r = server ? SSL_accept(t->ssl) : SSL_connect(t->ssl);
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
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
    uint8_t b = ACCEPTED_BYTE;
    for (;;) {
        ERR_clear_error();
        int r = server ? SSL_write(t->ssl, &b, 1) : SSL_read(t->ssl, &b, 1);
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

/* Moves bytes between the stream's socket pair and the TLS session. Runs
 * until either side ends: the stream closing its end (the session is then
 * closed after what it wrote is sent, within CLOSE_FLUSH_MS) or the peer
 * ending the session (the stream then reads what came, then end of file). */
static void *pump_run(void *arg)
{
    struct tls_channel *t = arg;
    uint8_t *up = malloc(PUMP_BUF), *down = malloc(PUMP_BUF);
    size_t up_len = 0, up_off = 0, down_len = 0, down_off = 0;
    bool local_eof = false, net_eof = false;
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
                local_eof = true;
                flush_deadline = now_ms() + CLOSE_FLUSH_MS;
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
                    openssl_reason(why, sizeof why);
                    break;
                }
            }
        }
        if (local_eof && up_len == 0)
            break; /* everything the stream wrote is in the session */
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
                    if (e != SSL_ERROR_ZERO_RETURN)
                        openssl_reason(why, sizeof why);
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
        if (net_eof && down_len == 0)
            break; /* the stream has everything the peer sent */
        if (progress)
            continue;
        /* A side with nothing to wait for is left out: a hung-up socket
         * would otherwise wake the poll at once, again and again. */
        struct pollfd p[2] = {{.fd = net_ev ? t->net : -1, .events = net_ev},
                              {.fd = local_ev ? t->local : -1, .events = local_ev}};
        int timeout = -1;
        if (local_eof) {
            uint64_t now = now_ms();
            if (now >= flush_deadline)
                break;
            timeout = (int)(flush_deadline - now);
        }
        if (poll(p, 2, timeout) < 0 && errno != EINTR)
            break;
    }
out:
    if (why[0])
        fprintf(stderr, "ferry: TLS channel ended: %s\n", why);
    if (local_eof && !why[0]) {
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
    int rc = pthread_create(&t->pump, NULL, pump_run, t);
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
    uint64_t deadline = now_ms() + PLAIN_REFUSAL_DRAIN_MS;
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
    uint64_t deadline = now_ms() + (uint64_t)timeout_ms;
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
        SSL_shutdown(t->ssl);
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
