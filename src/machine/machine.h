/* The whole virtual machine: RAM and bus, harts (each on a host thread of
 * its own, src/machine/vcpu.c), platform devices, clock and the event loop
 * that serves timers, device completions and requests from other threads. */
#ifndef FERRY_MACHINE_MACHINE_H
#define FERRY_MACHINE_MACHINE_H

#include <stdbool.h>
#include <pthread.h>
#include <stdint.h>

#include "backend/console.h"
#include "base/error.h"
#include "cpu/hart.h"
#include "cpu/hart_wire.h"
#include "cpu/icache.h"
#include "cpu/lrsc.h"
#include "dev/aclint.h"
#include "dev/plic.h"
#include "dev/syscon.h"
#include "dev/uart.h"
#include "dev/virtio.h"
#include "machine/devreg.h"
#include "machine/dirty_reader.h"
#include "machine/job.h"
#include "machine/memmap.h"
#include "machine/runstate.h"
#include "machine/throttle.h"
#include "machine/vclock.h"
#include "mem/bus.h"

#define MACHINE_MAX_HARTS 8
_Static_assert(MACHINE_MAX_HARTS <= LRSC_MAX_HARTS, "a reservation slot per hart");
#define MACHINE_MAX_DRIVES 4
#define MACHINE_MAX_NETS 2

struct migration_in;

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
    uint64_t max_ram_size;  /* largest RAM a stream may describe (0: half the host's) */
    bool jit;               /* --cpu jit: run harts with the translating CPU */
};

enum machine_stop {
    MACHINE_RUNNING = 0,
    MACHINE_POWEROFF,       /* guest powered off: exit_code says how */
    MACHINE_REBOOT,
    MACHINE_QUIT,           /* host asked to quit (Ctrl-A x, signal) */
    MACHINE_MIGRATED,       /* the guest now runs elsewhere (or was saved) */
};

/* A hart's host thread and what it alone owns (src/machine/vcpu.c). */
enum vcpu_state {
    VCPU_PARKED = 0,    /* between instructions, outside hart_run (or no thread) */
    VCPU_EXECUTING,     /* inside a slice: owns its TLBs and decoded code */
    VCPU_BLOCKED,       /* mid-instruction, waiting to own an exclusive section */
};

struct vcpu {
    pthread_t thread;
    bool thread_started;    /* atomic */
    uint64_t instret;       /* atomic: the hart's count after its last slice */
    int kick;               /* atomic: leave hart_run at the next check */
    int state;              /* enum vcpu_state; written under cpu_lock, read atomically */
    pthread_cond_t cond;    /* the parked hart waits here */
    struct icache icache;   /* this hart's decoded code: never shared */
};

struct machine {
    struct machine_config cfg;
    struct bus bus;
    struct hart harts[MACHINE_MAX_HARTS];
    unsigned nharts;
    struct vclock clock;
    struct vcpu vcpus[MACHINE_MAX_HARTS];
    struct lrsc_set lrsc;   /* the harts' published LR reservations */

    struct aclint aclint;
    struct plic plic;
    struct uart uart;
    struct syscon syscon;
    struct console console;
    struct virtio_dev virtio[MEMMAP_VIRTIO_SLOTS];
    int wake_fd;            /* eventfd: I/O threads and harts wake the main loop */
    int kick;               /* atomic: set with each wake, ends the loop's halt polling */
    uint64_t last_wake_ns;  /* of the last device wake (vclock_host_ns), atomic */
    uint8_t bootrom[0x1000];

    /* Linux mode: SBI is implemented by the emulator and harts start in S.
     * Bare-metal (--bios) mode: harts start in M and ecalls trap normally. */
    bool sbi;
    bool has_tohost;        /* HTIF: the bios ELF has a `tohost` symbol */
    uint64_t tohost_addr;

    bool trace;             /* FERRY_TRACE set: log every pc (debugging) */
    int stop;               /* enum machine_stop, atomic (machine_stop_reason) */
    int exit_code;

    /* Device lock: every MMIO access from a hart and every device service
     * by the main loop (timers, interrupt lines, console input) holds it, so
     * the platform devices see one thread at a time, as they always did. */
    pthread_mutex_t io_lock;

    /* Hart threads (vcpu.c): cpu_lock guards each vcpu's state and the
     * flags below; requesters wait on cpu_cond for harts to park. */
    pthread_mutex_t cpu_lock;
    pthread_cond_t cpu_cond;
    bool harts_hold;        /* pause: harts park at their next boundary */
    bool excl_active;       /* an exclusive section is owned or being set up */
    bool harts_exit;        /* machine_run is ending: hart threads return */
    unsigned cpu_waiters;   /* threads waiting on cpu_cond for harts to park */

    /* Requests from other threads (migration, control socket), served by
     * the main loop. */
    pthread_mutex_t ctl_lock;
    pthread_cond_t ctl_cond;
    int requests;           /* REQ_* bits, atomic */
    bool paused;            /* parked: harts stopped, devices quiet, clock frozen */
    bool loop_done;         /* machine_run returned */

    struct migration_in *incoming;   /* return path after receiving */
    uint64_t resumed_at_ns; /* a received guest resumed here (CLOCK_MONOTONIC), 0: none; atomic */

    /* ---- Control plane (runstate.c, job.c, dirty_reader.c) ----
     * Who may pause and run the guest, which job runs, who reads the
     * dirty log. Only those files change these; the vCPU loop never
     * touches them. */
    struct runstate rs;                  /* run state and pause holds */
    struct job_slot jobs;                /* at most one migrate/save/replicate */
    struct dirty_registry dirty_readers; /* the dirty log's one reader */
    struct devreg devices;               /* migratable state, in stream order */
    struct hart_wire hart_wire[MACHINE_MAX_HARTS]; /* the harts' migrated state */

    /* Auto-converge: a migration sets the share of time harts sleep; each
     * hart's thread pays its debt in its own wait (vcpu.c, throttle.h). */
    struct throttle throttle;
};

#define REQ_PAUSE 1

/* Builds the machine from cfg: RAM, devices, device tree, boot images. */
int machine_init(struct machine *m, const struct machine_config *cfg, struct error *err);
void machine_destroy(struct machine *m);

/* Runs until the guest powers off or the host quits; returns the process
 * exit code (0 for a clean poweroff). */
int machine_run(struct machine *m);

/* Called by devices and SBI to end the run. */
void machine_request_stop(struct machine *m, enum machine_stop why, int exit_code);
/* Why the machine stopped (MACHINE_RUNNING while it runs); any thread. */
enum machine_stop machine_stop_reason(const struct machine *m);
/* True while paused (machine_pause returned, no resume yet); any thread. */
bool machine_is_paused(const struct machine *m);

/* HTIF (bare-metal mode): ends the run when the program wrote tohost. */
void machine_check_tohost(struct machine *m);

/* Current guest time in timebase ticks (the `time` CSR, mtime). */
uint64_t machine_time_ticks(const struct machine *m);

/* A hart's own timer (SBI set_timer), handled on the hart's thread: the one
 * place that decides whether its timer interrupt (STIP) is pending at `now`
 * (timebase ticks), and the time (ticks) at which it next becomes pending,
 * UINT64_MAX for never, which a parked hart sleeps until. */
bool machine_hart_timer_due(const struct machine *m, const struct hart *h, uint64_t now);
uint64_t machine_hart_timer_deadline(const struct machine *m, const struct hart *h);
/* Re-evaluates STIP from the hart's timer (its own thread, or paused). */
void machine_update_hart_timer(struct machine *m, struct hart *h);

/* SBI set_timer and stimecmp writes: arm h's timer and re-evaluates STIP (from h's thread). */
void machine_set_hart_timer(struct machine *m, struct hart *h, uint64_t timecmp);

/* SBI HSM hart_start: the hart begins in S-mode at addr with a0 = hartid,
 * a1 = arg, and its thread runs it. Returns false if it was not stopped. */
bool machine_start_hart(struct machine *m, struct hart *h, uint64_t addr, uint64_t arg);
/* SBI HSM hart_stop, from the hart's own thread: it parks after this
 * instruction until another hart starts it again. */
void machine_stop_hart(struct machine *m, struct hart *h);
/* HSM state of any hart, from any thread. */
unsigned machine_hart_status(const struct machine *m, const struct hart *h);

/* Total instructions executed by all harts (any thread; while the harts
 * run, as of their last slices). */
uint64_t machine_instructions(const struct machine *m);

/* Sends a supervisor software interrupt (SBI IPI) / remote fence requests. */
void machine_send_ipi(struct machine *m, unsigned hartid);

/* Thread-safe: makes the event loop look at device completions now. */
void machine_wake(void *machine);

/* FENCE.I on any hart (or SBI remote fence.i): drop every hart's decoded
 * code; when it returns no hart executes a stale decode. Any thread. */
void machine_fence_i(struct machine *m);
/* SBI remote sfence.vma: flushes the TLBs of the harts in `mask` (bit i =
 * hart i); when it returns, none of them uses an old translation. */
void machine_remote_sfence(struct machine *m, uint64_t mask);

/* ---- hart threads (src/machine/vcpu.c) ---- */

/* A hart's interrupt state changed (hart_set_pending): wake that hart if it
 * is parked in WFI, or make it look at once if it is executing. */
void machine_hart_notify(struct machine *m, struct hart *h);
/* Makes hart_run return at its next check (from any thread). */
void machine_hart_kick(struct machine *m, struct hart *h);
/* Wakes every parked hart to re-evaluate why it parks (its timer deadline
 * moved with the clock); they park again if nothing changed. */
void machine_harts_recheck(struct machine *m);

/* Exclusive section ("safe work"): returns once every other hart is
 * parked between instructions or blocked in its own exclusive_begin, and
 * keeps them so until machine_exclusive_end. The caller may then touch any
 * hart's TLBs and decoded code. Callable from any thread; on a hart's
 * thread only from an instruction whose executor returns to hart_run's
 * outer loop (SYSTEM and FENCE.I do), since other harts may flush its
 * caches meanwhile. Sections do not nest. */
void machine_exclusive_begin(struct machine *m);
void machine_exclusive_end(struct machine *m);

/* The protocol a hart thread follows (vcpu.c's loop; a test may drive
 * harts with it): machine_hart_enter blocks while the hart must not run
 * (pause, an exclusive section, WFI without interrupt, HSM stopped) and
 * returns false once the machine ends; between enter and leave the hart
 * executes and owns its caches. */
bool machine_hart_enter(struct machine *m, struct hart *h);
void machine_hart_leave(struct machine *m, struct hart *h);
/* Starts / joins one host thread per hart (machine_run does this). */
int machine_harts_start(struct machine *m, struct error *err);
void machine_harts_join(struct machine *m);
/* Pause's half for the harts: returns once every hart is parked between
 * instructions (not executing, not mid-instruction); they stay parked
 * until machine_harts_release. */
void machine_harts_hold(struct machine *m);
void machine_harts_release(struct machine *m);

/* Cross-thread control, safe to call while machine_run runs on another
 * thread. machine_pause returns once the guest is parked at an instruction
 * boundary with in-flight device I/O finished and the clock frozen (-1 if
 * the machine stopped instead). While paused, the caller may read and
 * write guest state. */
int machine_pause(struct machine *m);
void machine_resume(struct machine *m);
/* machine_dirty_sync from any thread that is not a hart's: runs it in an
 * exclusive section. Returns the number of dirty pages or -1. Jobs harvest
 * through their registered reader (machine/dirty_reader.h), which calls
 * this: never call it beside a reader, it would take its pages. */
int64_t machine_dirty_sync_remote(struct machine *m, uint64_t *out);

/* Swaps out the dirty log into `out` and drops every hart's write-TLB
 * entries, so the next store to each page marks it again. Must be called
 * with no hart executing (inside an exclusive section, or paused). */
uint64_t machine_dirty_sync(struct machine *m, uint64_t *out);

#endif
