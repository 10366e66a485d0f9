/* Post-copy's destination side, the memory half: guest RAM whose missing
 * pages are fetched on demand (userfaultfd).
 *
 * The destination resumes the guest before all of its pages arrived. The
 * pages still missing are dropped from the RAM mapping (lazy_ram_discard)
 * and the mapping is registered with userfaultfd in MISSING mode: whoever
 * touches such a page - a vCPU, a device thread's DMA, even the kernel
 * copying into it for a read() - sleeps until the page is installed. The
 * fault thread turns each first fault on a page into a request (the
 * caller's callback: put it on the return path to the source); the pages
 * the source sends, on request or pushed in the background, are installed
 * atomically with lazy_ram_install, which wakes the sleepers. The page is
 * never visible half-written, and a page that is already there is never
 * overwritten (the request and the background push can both deliver it).
 *
 * Tested on its own (tests/unit/test_lazy_ram.c); post-copy uses it
 * (postcopy.h, postcopy_recv.c). The plan it was built for:
 *  - policy: a CONVERGE_POSTCOPY action in converge_decide (--postcopy as
 *    the escalation after auto-converge, --postcopy-after N rounds);
 *  - stream: after the pause, a record with the bitmap of pages the
 *    destination must not use (lazy_ram_discard), the devices and END with
 *    no VERIFY (the hash cannot be taken before the pages arrive), the
 *    usual READY/GO/RUNNING; then PAGES pushed in the background and page
 *    requests on the return path served first, small records so a request
 *    does not queue behind a 2 MiB one; the receiver's order rules
 *    (load_order.c) must accept the new phase;
 *  - destination: open and discard before GO, a receiver thread installing
 *    pages (and marking them touched in struct ram, or a later save skips
 *    them as zero), lazy_ram_close when none is missing;
 *  - recovery: both sides keep their state on a broken connection
 *    (postcopy-paused; the destination parks the harts, which would fault
 *    anyway), `ferry migrate --resume SOCK URI` reconnects, the destination
 *    resends its missing bitmap, the source resumes the push;
 *  - the report's post-copy figures (lazy_ram_stats gives the on-demand
 *    count and latency median/p99/max). */
#ifndef FERRY_MIGRATE_LAZY_RAM_H
#define FERRY_MIGRATE_LAZY_RAM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"

#define LAZY_RAM_PAGE 4096ull

/* Called on the fault thread, once per missing page that something
 * touched. Must not touch guest RAM. */
typedef void (*lazy_ram_request_fn)(void *opaque, uint64_t page);

struct lazy_ram {
    int uffd;
    int stop_fd;                /* eventfd: ends the fault thread */
    uint8_t *host;
    uint64_t size, npages;
    uint64_t *present;          /* bit per page, atomic: installed or never missing */
    uint64_t missing;           /* pages still missing, atomic */
    uint64_t *asked_at;         /* per page: when first requested (ns), 0: not asked */
    lazy_ram_request_fn request;
    void *opaque;
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t lock;       /* the latency samples */
    uint64_t *lat_ns;
    size_t nlat, lat_cap;
    uint64_t on_demand;         /* pages installed while something waited for them */
};

struct lazy_ram_stats {
    uint64_t missing;           /* still */
    uint64_t on_demand;         /* pages fetched because something faulted on them */
    uint64_t median_ns, p99_ns, max_ns;  /* request to installed */
};

/* Registers host[0..size) (page-aligned, anonymous private memory) with a
 * new userfaultfd. Fails with the reason when userfaultfd is not allowed
 * (CONFIG_USERFAULTFD, vm.unprivileged_userfaultfd, seccomp). */
int lazy_ram_open(struct lazy_ram *l, uint8_t *host, uint64_t size, lazy_ram_request_fn request,
                  void *opaque, struct error *err);
/* Before anything runs on it: drop the pages whose bit is set in `missing`
 * (npages bits) and that are not missing already; the next touch of each
 * faults. May be called again with more pages. */
int lazy_ram_discard(struct lazy_ram *l, const uint64_t *missing, struct error *err);
/* Starts the fault thread. */
int lazy_ram_start(struct lazy_ram *l, struct error *err);
/* Installs a page (data, or zeroes when data is NULL) if it is still
 * missing and wakes whoever waits for it. Returns 1 if installed, 0 if it
 * was already there, -1 on error. Any thread. */
int lazy_ram_install(struct lazy_ram *l, uint64_t page, const void *data, struct error *err);
bool lazy_ram_is_present(const struct lazy_ram *l, uint64_t page);
/* Calls fn for every page requested and still missing (to ask again over
 * a new connection: the old one may have lost the requests). */
void lazy_ram_for_each_asked(struct lazy_ram *l, void (*fn)(void *opaque, uint64_t page),
                             void *opaque);
void lazy_ram_stats(struct lazy_ram *l, struct lazy_ram_stats *out);
/* Stops the fault thread and unregisters the range (pages still missing
 * then read as zeroes: call it when none is). */
void lazy_ram_close(struct lazy_ram *l);

#endif
