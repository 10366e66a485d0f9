/* TLS 1.3 with mutual authentication for migration and replication
 * streams (tls:HOST:PORT), with OpenSSL.
 *
 * Both sides authenticate each other, either with certificates (each side
 * presents its own, signed by a CA the other side trusts) or with an
 * external pre-shared key (two hosts without a CA). A destination started
 * with TLS refuses a plain or unauthenticated peer during the handshake,
 * before any state is read.
 *
 * The stream code above is unchanged: after the handshake the endpoint's
 * fd is either the TCP socket itself, when the kernel does the record
 * encryption (kTLS, both directions), or one end of a socket pair whose
 * other end a pump thread connects to the TLS session in user space. */
#ifndef FERRY_TRANSPORT_TLS_H
#define FERRY_TRANSPORT_TLS_H

#include <stdbool.h>

#include "base/error.h"

#define TLS_PATH_MAX 512

/* Either cert + key + ca, or psk. Paths; the files are read at each
 * connection, so renewed certificates apply to the next migration. */
struct tls_config {
    char cert[TLS_PATH_MAX];  /* our certificate (PEM, may hold the chain) */
    char key[TLS_PATH_MAX];   /* its private key (PEM) */
    char ca[TLS_PATH_MAX];    /* CA certificate(s) that sign the peer's */
    char psk[TLS_PATH_MAX];   /* file with the pre-shared key in hex */
};

struct tls_channel;

bool tls_config_empty(const struct tls_config *c);
/* Checks that the options form one complete mode and that the files load
 * (so a typo fails the command, not a later connection). */
int tls_config_check(const struct tls_config *c, struct error *err);
/* Process-wide credentials (from `ferry run --tls-...`): used by tls: URIs
 * whose caller brings none. */
void tls_set_default(const struct tls_config *c);
const struct tls_config *tls_get_default(void);

/* Handshake on a connected TCP socket (owned by the channel from then on,
 * success or failure). host is what the URI named: the peer's certificate
 * must be issued for it. On success *app_fd is the fd the stream uses. */
int tls_client(int net_fd, const char *host, const struct tls_config *c, int timeout_ms,
               struct tls_channel **out, int *app_fd, struct error *err);
/* Destination side of the same; refuses a plain ferry stream or any peer
 * that does not authenticate. */
int tls_server(int net_fd, const struct tls_config *c, int timeout_ms, struct tls_channel **out,
               int *app_fd, struct error *err);
/* Closes the stream's fd, flushes what is pending (bounded), ends the
 * session and frees the channel. */
void tls_close(struct tls_channel *t, int app_fd);
/* One line for reports: protocol, cipher, authentication and where the
 * encryption runs ("kernel (kTLS)" or "user space"). */
const char *tls_describe(const struct tls_channel *t);
bool tls_is_ktls(const struct tls_channel *t);

#endif
