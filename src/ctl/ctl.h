/* The control socket: one unix stream socket per VM (--control PATH),
 * speaking JSON lines (docs/control-protocol.md). A thread serves one
 * client at a time; each request line gets exactly one response line. */
#ifndef FERRY_CTL_CTL_H
#define FERRY_CTL_CTL_H

#include "base/error.h"

struct machine;
struct ctl_server;

int ctl_start(struct machine *m, const char *path, struct ctl_server **out, struct error *err);
/* ctl_start in two steps: create the socket and its thread (clients wait),
 * then serve machine m. A destination opens before the stream arrives, so
 * neither a bad path nor the set-up time falls into the guest's downtime. */
int ctl_open(const char *path, struct ctl_server **out, struct error *err);
void ctl_serve(struct ctl_server *srv, struct machine *m);
/* Stops serving; first waits up to linger_ms for a connected client to
 * hang up (so it can read a final migration report). */
void ctl_stop(struct ctl_server *srv, int linger_ms);

/* Handles one request line; returns a malloc'd JSON response (no newline).
 * Exposed for tests. */
char *ctl_handle(struct machine *m, const char *line);

#endif
