/* Where a migration stream goes: a TCP connection or a file.
 *   tcp:HOST:PORT   connect (source) / listen, and accept the one that sends a
 *                   stream header (destination)
 *   tls:HOST:PORT   the same, inside TLS 1.3 with mutual authentication
 *                   (transport/tls.h); the stream sees a plain fd either way
 *   file:PATH       write a save file / read it back */
#ifndef FERRY_TRANSPORT_TRANSPORT_H
#define FERRY_TRANSPORT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

struct tls_channel;
struct tls_config;

struct endpoint {
    int fd;
    bool is_file;   /* no return path */
    bool want_tls;  /* listening on a tls: URI */
    struct tls_channel *tls;  /* the session once a tls: peer is connected */
    char *tmp_path;   /* file being written, renamed to final_path on commit */
    char *final_path;
};

int transport_open_out(const char *uri, struct endpoint *ep, struct error *err);
/* The same with the credentials for a tls: URI (NULL: the process's
 * defaults, tls_set_default). */
int transport_open_out_tls(const char *uri, const struct tls_config *tls, struct endpoint *ep,
                           struct error *err);
/* Checks a URI's scheme and form (tcp:, tls:, and file: if allow_file). */
int transport_check_uri(const char *uri, bool allow_file, struct error *err);
/* "plain TCP", or the TLS session's description (transport/tls.h). */
const char *transport_describe(const struct endpoint *ep);
/* Destination: binds before returning from transport_listen so the caller
 * can report readiness; transport_accept_stream then waits for the peer. */
int transport_listen(const char *uri, struct endpoint *ep, struct error *err);
void transport_close(struct endpoint *ep);

/* Destination (src/transport/accept.c): waits up to timeout_ms for the
 * peer. Anyone can connect, so a connection counts only once its first
 * `n` bytes (n <= 64) begin with `magic` (magic_len bytes); until then
 * the listener keeps accepting. Connections that send
 * something else, hang up, or stay silent for `header_ms` are logged and
 * closed without ending the wait. The n bytes read go to head. */
int transport_accept_stream(struct endpoint *ep, int timeout_ms, int header_ms,
                            const char *magic, size_t magic_len, uint8_t *head, size_t n,
                            struct error *err);

/* A file endpoint written through a temporary file: transport_commit
 * syncs it and renames it into place; transport_close before that removes
 * it, so a failed save leaves nothing behind. */
int transport_commit(struct endpoint *ep, struct error *err);
/* Socket options for a migration connection. */
void transport_tune_socket(int fd);
/* transport_open_out for file:PATH (src/transport/file_out.c). */
int transport_open_file(const char *path, struct endpoint *ep, struct error *err);

/* Parses tcp:HOST:PORT (or tls:HOST:PORT) into host and port strings. */
int transport_parse_tcp(const char *uri, char *host, size_t host_cap, char *port, size_t port_cap,
                        struct error *err);

#endif
