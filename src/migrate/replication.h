/* Continuous replication (Remus-style): a standby on another host holds a
 * copy of the VM that is at most one checkpoint behind. The primary runs
 * in epochs; at each epoch's end it pauses briefly, stages the dirtied
 * pages, device state and held disk writes, resumes, and sends the
 * checkpoint in the background. Network output and disk writes of an epoch
 * reach the outside world only after the standby acknowledged that epoch
 * (output commit), so a failover never contradicts what anyone saw. */
#ifndef FERRY_MIGRATE_REPLICATION_H
#define FERRY_MIGRATE_REPLICATION_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "transport/tls.h"

struct machine;
struct machine_config;

struct replication_params {
    char uri[256];            /* tcp:HOST:PORT or tls:HOST:PORT of the standby */
    struct tls_config tls;    /* for tls: (empty: the process's defaults) */
    uint64_t interval_ns;     /* epoch length */
    bool copy_storage;        /* the standby keeps its own disks (blockcopy.h) */
};

enum replication_state {
    REPL_NONE = 0, REPL_SYNCING, REPL_PROTECTED, REPL_SWITCHING, REPL_SWITCHED,
    REPL_STOPPED, REPL_UNPROTECTED,
};

struct replication_status {
    enum replication_state state;
    char uri[256];
    uint64_t epoch;               /* last checkpoint sent */
    uint64_t acked_epoch;         /* last checkpoint the standby applied */
    uint64_t interval_ns;         /* requested */
    double achieved_interval_ms;  /* average over the last checkpoints */
    double checkpoints_per_s;
    uint64_t last_checkpoint_bytes;
    uint64_t last_pause_ns;       /* how long the guest was paused to stage */
    uint64_t max_pause_ns;
    uint64_t last_ack_age_ns;
    uint64_t held_frames;         /* network output waiting for an ack */
    uint64_t switchover_downtime_ns;
    uint64_t switchover_handover_ns;  /* pause to RUNNING heard back */
    char switchover_downtime_bound[160]; /* empty: measured; else why it is a bound */
    char error[512];
};

/* Starts the replication job; refused while another job (migrate, save,
 * replicate) runs. */
int replication_start(struct machine *m, const struct replication_params *p, struct error *err);
int replication_stop(struct machine *m, struct error *err);
/* Planned move to the standby: one last checkpoint, then the standby runs
 * the guest and this VM ends. Blocks until done or failed. */
int replication_switchover(struct machine *m, struct error *err);
void replication_get_status(struct machine *m, struct replication_status *out);

/* Standby side (ferry run --standby tcp:ADDR:PORT): receives checkpoints
 * until the primary dies (failover: after `fence` succeeds, if given) or
 * switches over; returns 0 with the machine ready to run the last
 * acknowledged checkpoint, or -1 (the process exits non-zero). */
struct arbiter;
struct standby_params {
    const char *uri;
    const char *fence;            /* shell command run before taking over */
    uint64_t heartbeat_timeout_ns;
    struct arbiter *arbiter;      /* take its key before taking over (NULL: none) */
};
int standby_run(struct machine *m, struct machine_config *cfg, const struct standby_params *p,
                struct error *err);
/* standby_run after the connection and machine description (for the
 * fuzzers: in comes from receive_handshake). */
struct migration_in;
int standby_serve(struct migration_in *in, struct machine *m, const struct standby_params *p,
                  struct error *err);

#endif
