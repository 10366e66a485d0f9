/* Where a migration stream goes: a TCP connection or a file.
 *   tcp:HOST:PORT   connect (source) / listen on and accept one (destination)
 *   file:PATH       write a save file / read it back */
#ifndef FERRY_TRANSPORT_TRANSPORT_H
#define FERRY_TRANSPORT_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>

#include "base/error.h"

struct endpoint {
    int fd;
    bool is_file;   /* no return path */
};

int transport_open_out(const char *uri, struct endpoint *ep, struct error *err);
/* Destination: binds before returning from transport_listen so the caller
 * can report readiness; transport_accept then waits for the peer. */
int transport_listen(const char *uri, struct endpoint *ep, struct error *err);
int transport_accept(struct endpoint *ep, int timeout_ms, struct error *err);
void transport_close(struct endpoint *ep);

/* Parses tcp:HOST:PORT into host and port strings. */
int transport_parse_tcp(const char *uri, char *host, size_t host_cap, char *port, size_t port_cap,
                        struct error *err);

#endif
