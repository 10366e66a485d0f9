/* SIGTERM, SIGINT and SIGHUP end ferry in every state: a thread watches
 * for them (the handler only writes to a pipe), so neither a paused VM
 * nor a guest in a trap storm nor a blocked receive can keep it waiting.
 *   - a VM running or paused here: an outgoing migration is cancelled
 *     first (the destination then never runs the guest), then the VM stops;
 *   - no guest running here yet (waiting for a stream, a standby, a
 *     restore being read): the process exits at once, nothing is lost. */
#ifndef FERRY_MACHINE_SIGNALS_H
#define FERRY_MACHINE_SIGNALS_H

struct machine;

/* Installs the handlers and starts the watcher (once per process). */
int signals_watch(void);
/* Our control socket (NULL: none), removed when exiting without a VM. */
void signals_set_control_path(const char *path);
/* The machine a signal stops from now on (NULL: none runs here). */
void signals_set_machine(struct machine *m);

#endif
