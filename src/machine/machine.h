/* The whole virtual machine: RAM and bus, harts, platform devices, clock and
 * the event loop that runs the harts in slices between device events. */
#ifndef FERRY_MACHINE_MACHINE_H
#define FERRY_MACHINE_MACHINE_H

#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>

#include "backend/console.h"
#include "base/error.h"
#include "cpu/hart.h"
#include "cpu/icache.h"
#include "dev/aclint.h"
#include "dev/plic.h"
#include "dev/syscon.h"
#include "dev/uart.h"
#include "dev/virtio.h"
#include "machine/memmap.h"
#include "machine/vclock.h"
#include "mem/bus.h"

#define MACHINE_MAX_HARTS 8
#define MACHINE_MAX_DRIVES 4
#define MACHINE_MAX_NETS 2

struct migration;
struct migration_in;
struct replication;

struct machine_config {
    uint64_t ram_size;
    unsigned nharts;
    const char *kernel;     /* Linux Image (NULL with bios) */
    const char *initrd;     /* optional */
    const char *append;     /* kernel command line */
    const char *bios;       /* bare-metal M-mode ELF instead of a kernel */
    const char *console;    /* console spec, see console_open() */
    const char *drives[MACHINE_MAX_DRIVES]; /* --drive specs, see disk_open() */
    unsigned ndrives;
    const char *nets[MACHINE_MAX_NETS];     /* --net specs, "tap=NAME[,mac=..]" */
    unsigned nnets;
    bool no_rng;            /* leave out the virtio-rng device */
    bool no_boot;           /* state comes from a stream: load no images */
    bool jit;               /* --cpu jit: run harts with the translating CPU */
};

enum machine_stop {
    MACHINE_RUNNING = 0,
    MACHINE_POWEROFF,       /* guest powered off: exit_code says how */
    MACHINE_REBOOT,
    MACHINE_QUIT,           /* host asked to quit (Ctrl-A x, signal) */
    MACHINE_MIGRATED,       /* the guest now runs elsewhere (or was saved) */
};

struct machine {
    struct machine_config cfg;
    struct bus bus;
    struct hart harts[MACHINE_MAX_HARTS];
    unsigned nharts;
    struct vclock clock;
    struct icache icache;   /* decoded code, shared by all harts */

    struct aclint aclint;
    struct plic plic;
    struct uart uart;
    struct syscon syscon;
    struct console console;
    struct virtio_dev virtio[MEMMAP_VIRTIO_SLOTS];
    int wake_fd;            /* eventfd: I/O threads wake the vCPU loop */
    int kick;               /* set with each wake: ends the running slice */
    uint64_t last_wake_ns;  /* of the last wake (vclock_host_ns), atomic */
    uint8_t bootrom[0x1000];

    /* Linux mode: SBI is implemented by the emulator and harts start in S.
     * Bare-metal (--bios) mode: harts start in M and ecalls trap normally. */
    bool sbi;
    bool has_tohost;        /* HTIF: the bios ELF has a `tohost` symbol */
    uint64_t tohost_addr;

    bool trace;             /* FERRY_TRACE set: log every pc (debugging) */
    volatile int stop;      /* enum machine_stop */
    int exit_code;

    /* Requests from other threads (migration, control socket), served by
     * the vCPU loop between slices. */
    pthread_mutex_t ctl_lock;
    pthread_cond_t ctl_cond;
    int requests;           /* REQ_* bits, read atomically by the loop */
    bool paused;            /* parked: harts stopped, devices quiet, clock frozen */
    bool loop_done;         /* machine_run returned */
    uint64_t *sync_out;
    uint64_t sync_count;

    struct migration *migration;     /* outgoing migration, if any */
    struct replication *replication; /* continuous replication, if any */
    struct migration_in *incoming;   /* return path after receiving */
    uint64_t resumed_at_ns; /* a received guest resumed here (CLOCK_MONOTONIC), 0: none */
};

#define REQ_PAUSE 1
#define REQ_SYNC 2

/* Builds the machine from cfg: RAM, devices, device tree, boot images. */
int machine_init(struct machine *m, const struct machine_config *cfg, struct error *err);
void machine_destroy(struct machine *m);

/* Runs until the guest powers off or the host quits; returns the process
 * exit code (0 for a clean poweroff). */
int machine_run(struct machine *m);

/* Called by devices and SBI to end the run. */
void machine_request_stop(struct machine *m, enum machine_stop why, int exit_code);

/* Current guest time in timebase ticks (the `time` CSR, mtime). */
uint64_t machine_time_ticks(const struct machine *m);

/* Re-evaluates timer interrupts for one hart (after set_timer). */
void machine_update_hart_timer(struct machine *m, struct hart *h);

/* SBI HSM hart_start: the hart begins in S-mode at addr with a0 = hartid,
 * a1 = arg. */
void machine_start_hart(struct machine *m, struct hart *h, uint64_t addr, uint64_t arg);

/* Total instructions executed by all harts. */
uint64_t machine_instructions(const struct machine *m);

/* Sends a supervisor software interrupt (SBI IPI) / remote fence requests. */
void machine_send_ipi(struct machine *m, unsigned hartid);

/* Thread-safe: makes the event loop look at device completions now. */
void machine_wake(void *machine);

/* FENCE.I on any hart (or SBI remote fence.i): drop decoded code. */
void machine_fence_i(struct machine *m);

/* Cross-thread control, safe to call while machine_run runs on another
 * thread. machine_pause returns once the guest is parked at an instruction
 * boundary with in-flight device I/O finished and the clock frozen (-1 if
 * the machine stopped instead). While paused, the caller may read and
 * write guest state. */
int machine_pause(struct machine *m);
void machine_resume(struct machine *m);
/* machine_dirty_sync from another thread (runs it on the vCPU loop, or
 * directly when paused). Returns the number of dirty pages or -1. */
int64_t machine_dirty_sync_remote(struct machine *m, uint64_t *out);

/* Swaps out the dirty log into `out` and drops every hart's write-TLB
 * entries, so the next store to each page marks it again. Must be called
 * with the harts stopped at a slice boundary (from the vCPU thread). */
uint64_t machine_dirty_sync(struct machine *m, uint64_t *out);

#endif
