/* What a standby (ferry run --standby) publishes about itself while it
 * waits, for its control socket, and the operator's requests to it.
 *
 * One standby per process: the state is this module's, under its own lock,
 * written by the standby's thread (standby.c) at each record and read by
 * control clients. The control socket exists from the start, before any
 * machine does: nothing here touches the machine.
 *
 * Requests: `takeover` (a manual failover: the standby drops the link to
 * the primary and takes over as after losing it, fencing included) and
 * `quit` (the standby ends without running the guest). Both interrupt the
 * standby's read by shutting its connection down. */
#ifndef FERRY_MIGRATE_STANDBY_STATE_H
#define FERRY_MIGRATE_STANDBY_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"

enum standby_phase {
    STANDBY_OFF = 0,      /* no standby in this process (or it took over) */
    STANDBY_WAITING,      /* listening for the primary */
    STANDBY_SYNCING,      /* the initial copy, before a first checkpoint */
    STANDBY_PROTECTING,   /* holds an applied checkpoint */
    STANDBY_REFUSED,      /* refused a checkpoint: never takes over on its own */
    STANDBY_TAKING_OVER,  /* takeover under way (failover, switchover, manual) */
};

struct standby_state {
    enum standby_phase phase;
    char uri[256];                /* where it listens */
    char primary[80];             /* the primary's address, once connected */
    uint64_t epoch;               /* the applied checkpoint (0: none yet) */
    uint64_t epoch_age_ns;        /* since it was applied */
    uint64_t checkpoint_bytes;    /* records of the applied checkpoint */
    uint64_t staged_bytes;        /* of the checkpoint arriving now */
    uint64_t received_bytes;      /* record bytes from the primary in all */
    uint64_t heartbeat_age_ns;    /* since the primary's last record */
    uint64_t heartbeat_timeout_ns;
    uint64_t pending_writes;      /* disk writes to re-apply at a failover */
    bool fence;                   /* a fencing command is configured */
    char arbiter[300];            /* the arbiter, if any (etcd://...) */
    uint64_t fencing_token;       /* the arbiter's token once acquired */
    bool takeover_requested, quit_requested;
};

/* run.c, before serving the control socket: a standby begins. */
void standby_state_begin(const char *uri, uint64_t heartbeat_timeout_ns, bool fence,
                         const char *arbiter);
/* The standby's thread. */
void standby_state_connected(int fd);
void standby_state_phase(enum standby_phase phase);
/* A record arrived (bytes), with `staged` bytes of the current checkpoint. */
void standby_state_record(uint64_t bytes, uint64_t staged);
void standby_state_applied(uint64_t epoch, uint64_t bytes, uint64_t pending_writes);
void standby_state_token(uint64_t token);
/* The standby took over or ended: the control socket serves the VM (or
 * nothing) from now on. */
void standby_state_end(void);

/* Control clients. */
bool standby_state_active(void);
void standby_state_get(struct standby_state *out);
int standby_request_takeover(struct error *err);
int standby_request_quit(struct error *err);
/* The standby's thread, after its read failed: what the operator asked. */
bool standby_takeover_requested(void);
bool standby_quit_requested(void);

#endif
