/* Moving a running machine: live pre-copy migration, non-live migration and
 * save-to-file on the source side; receiving on the destination side.
 *
 * The engine sees the machine through a narrow surface: guest RAM and its
 * dirty log (machine_dirty_sync_remote), pause/resume, and the described
 * device state (mstate). It never touches the CPU interpreter directly, so
 * another CPU backend with its own dirty log could plug in. */
#ifndef FERRY_MIGRATE_MIGRATION_H
#define FERRY_MIGRATE_MIGRATION_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "migrate/blockcopy.h"
#include "migrate/pagecodec.h"
#include "transport/tls.h"

struct job;
struct machine;
struct machine_config;

struct migration_params {
    char uri[256];              /* tcp:HOST:PORT, tls:HOST:PORT or file:PATH */
    struct tls_config tls;      /* for tls: (empty: the process's defaults) */
    enum compress_mode compress; /* pages: deltas and zstd (pagecodec.h) */
    bool live;                  /* false: pause first, then copy */
    uint64_t max_downtime_ns;   /* target for the final pause */
    uint64_t bandwidth;         /* bytes/s cap, 0 = unlimited */
    bool verify;                /* send a hash of the paused state */
    uint32_t stream_version;    /* 0 = current */
    bool keep_running;          /* save: resume the guest after writing */
    bool auto_converge;         /* may throttle the vCPUs to meet max_downtime_ns */
    unsigned max_throttle;      /* percent of time they may sleep, <= 99 */
    bool postcopy;              /* may switch to post-copy rather than fail (postcopy.h) */
    uint32_t postcopy_after;    /* switch after this many rounds (0: only rather than fail) */
    bool copy_storage;          /* send the local disks too (blockcopy.h) */
};

enum migration_state {
    MIG_NONE = 0, MIG_SETUP, MIG_ACTIVE, MIG_COMPLETING, MIG_COMPLETED, MIG_FAILED,
    MIG_CANCELLED,
    MIG_POSTCOPY,               /* the guest runs on the destination; pages still go */
    MIG_POSTCOPY_PAUSED,        /* post-copy's connection broke: waiting for --resume */
};

#define MIG_MAX_ROUNDS 64

struct migration_round {
    uint32_t round;
    uint64_t pages, zero_pages, bytes;  /* sent this round */
    uint64_t duration_ns;
    uint64_t dirtied;                   /* pages dirtied while it ran */
    double dirty_rate;                  /* pages/s */
    double bandwidth;                   /* bytes/s on the wire */
    unsigned throttle;                  /* percent the vCPUs slept during it */
};

struct migration_status {
    enum migration_state state;
    bool live;
    bool converged;             /* pre-copy met the downtime target */
    uint32_t rounds;
    struct migration_round round[MIG_MAX_ROUNDS];
    uint64_t remaining_pages;   /* dirty pages waiting for the next round */
    double dirty_rate, bandwidth;
    uint64_t total_ns;          /* start to end */
    uint64_t downtime_ns;       /* source pause to destination resume, measured */
    uint64_t handover_ns;       /* source pause to RUNNING heard back */
    /* Empty: downtime_ns was measured. Otherwise it is an upper bound
     * (the handover time) and this says why it could not be measured. */
    char downtime_bound[160];
    uint64_t paused_at_ns;      /* when the guest paused here (CLOCK_MONOTONIC) */
    uint64_t predicted_downtime_ns;
    uint64_t wire_bytes;
    uint64_t pages, zero_pages;
    uint64_t ram_pages;
    uint64_t max_downtime_ns;
    bool verified;
    bool auto_converge;
    unsigned throttle;          /* percent of time the vCPUs sleep now */
    unsigned throttle_max;      /* the highest it reached */
    /* Within the round now running (progress.h). */
    uint32_t progress_round;
    uint64_t round_pages, round_sent;
    double rate;                /* bytes/s, last quarter to half second */
    double round_eta_ns;        /* -1: unknown */
    char error[512];
    char uri[256];
    char channel[200];          /* plain TCP, or the TLS session's description */
    enum compress_mode compress;
    struct pagecodec_stats codec; /* with compress != none */
    /* Post-copy (postcopy.h). */
    bool postcopy;              /* switched to post-copy */
    uint64_t postcopy_ns;       /* GO to the destination's DONE (or so far) */
    uint64_t postcopy_pages;    /* pages the destination lacked at the switch */
    uint64_t postcopy_sent;     /* of them sent so far */
    uint64_t postcopy_requested; /* sent because the destination asked */
    uint64_t postcopy_pauses;   /* connection breaks recovered from */
    uint64_t fault_pages;       /* pages the destination's guest or devices waited for */
    uint64_t fault_median_ns, fault_p99_ns, fault_max_ns;
    bool copy_storage;
    struct blockcopy_counters storage; /* with copy_storage */
    uint64_t storage_remaining;   /* disk bytes due for the next round */
};

/* Source side: starts a migration (or, for a file: URI, save) job. Fails
 * at once if another job (migrate, save, replicate) runs, the guest is
 * paused or not running, or the parameters are bad. */
int migration_start(struct machine *m, const struct migration_params *p, struct error *err);
/* FERRY_MIGRATION_TRACE=1 prints each step of the final copy on stderr with
 * the time since `since_ns` (vclock_host_ns), on both sides. */
void migration_trace(const char *step, uint64_t since_ns);
void migration_trace_flush(void);
void migration_get_status(struct machine *m, struct migration_status *out);
void migration_cancel(struct machine *m);
/* `ferry migrate --resume`: a post-copy paused by a broken connection
 * reconnects to uri (empty: the same) and goes on. */
int migration_resume_postcopy(struct machine *m, const char *uri, struct error *err);
/* The running or latest migration/save job, referenced (job_put it), or
 * NULL; and the status of such a job. */
struct job *migration_job(struct machine *m);
void migration_job_status(struct job *j, struct migration_status *out);
/* Waits until a running migration or save has finished (no-op if none). */
void migration_join(struct machine *m);

/* Destination side: receives a stream (tcp:ADDR:PORT to listen on, or
 * file:PATH) into a machine built from the stream's description and the
 * local backend options in cfg, completes the handshake, and leaves the
 * machine ready for machine_run. On failure the process must exit non-zero
 * with the message. */
int migration_receive(struct machine *m, struct machine_config *cfg, const char *uri,
                      struct error *err);
/* After machine_run has begun running the guest: tell the source. */
void migration_receive_started(struct machine *m);
/* After machine_run returned, before machine_destroy: stops what still
 * receives (a post-copy's pages). */
void migration_receive_stop(struct machine *m);

#endif
