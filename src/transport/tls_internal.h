/* Shared by the parts of the TLS transport (tls.c: configuration and
 * handshakes; tls_psk.c: external pre-shared keys; tls_pump.c: the
 * user-space record pump). Not for use outside src/transport. */
#ifndef FERRY_TRANSPORT_TLS_INTERNAL_H
#define FERRY_TRANSPORT_TLS_INTERNAL_H

#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <openssl/ssl.h>

#include "base/error.h"

/* The identity both sides use with an external PSK. */
#define PSK_IDENTITY "ferry-migration"
#define PSK_MIN_BYTES 16
#define PSK_MAX_BYTES 64
#define CIPHERSUITES "TLS_AES_256_GCM_SHA384:TLS_CHACHA20_POLY1305_SHA256:TLS_AES_128_GCM_SHA256"

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

uint64_t tls_now_ms(void);
/* The most telling OpenSSL reason queued on this thread, then clears it. */
const char *tls_openssl_reason(char *buf, size_t cap);
/* Reads a key file (hex, owner-only) into key (PSK_MAX_BYTES). */
int tls_read_psk(const char *path, uint8_t *key, size_t *len, struct error *err);
/* Sets the PSK callbacks of the side; the key is the channel's (app data). */
void tls_psk_install(SSL_CTX *ctx, bool server);
/* OpenSSL writes to the socket with write(2): a peer that went away would
 * raise SIGPIPE and end the process. Calls that may write hold SIGPIPE
 * blocked on their thread and drop one raised meanwhile. */
struct sigpipe_guard {
    sigset_t old;
    bool was_pending;
};
void tls_sigpipe_block(struct sigpipe_guard *g);
void tls_sigpipe_restore(struct sigpipe_guard *g);
/* The pump thread (arg: the channel). */
void *tls_pump_run(void *arg);

#endif
