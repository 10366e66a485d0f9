/* Post-copy migration: the guest moves before all of its memory.
 *
 * When pre-copy cannot meet the downtime cap (--postcopy, after
 * auto-converge) or after --postcopy-after N rounds, the source first sends
 * the pages the last round left dirty as POSTCOPY_DISCARD and waits (PING)
 * until the destination dropped them: freeing tens of MB of pages takes
 * milliseconds, which must not be downtime. Then it pauses the guest and
 * sends, instead of the pages still dirty, a POSTCOPY record with their
 * bitmap (the destination drops those it still has), then the devices, the clock and END as usual; READY, GO and
 * RUNNING follow, so the pause costs what a converged stop-and-copy costs.
 * The destination drops those pages from guest RAM and registers it with
 * userfaultfd (lazy_ram.h): whatever touches a missing page - a vCPU, a
 * device thread's DMA, the kernel on behalf of a read() - sleeps until the
 * page is installed. Each first fault becomes a PAGE_REQ on the return
 * path; the source sends requested pages first and pushes the rest in the
 * background, then POSTCOPY_END; the destination answers POSTCOPY_DONE with
 * its fault figures once no page is missing.
 *
 * The source keeps its (paused) copy of everything until DONE. If the
 * connection breaks meanwhile, both sides enter postcopy-paused and keep
 * what they have; `ferry migrate --resume SOCK URI` connects to the
 * destination (listening again on its --incoming address) with
 * POSTCOPY_RESUME, the destination answers with the bitmap of pages it still
 * lacks (POSTCOPY_MISSING) and the push goes on. The source never runs the
 * guest again once GO was sent: the destination ran it, so the state is
 * split. The risk that remains: if the source host dies during post-copy,
 * the pages only it had are lost, and with them the VM (docs/postcopy.md).
 *
 * --verify: the hash of a post-copy is the device state plus the sum of a
 * per-page hash (XXH3 seeded with the page number) over all pages, so the
 * destination can add pages in any order as they arrive; the source sends
 * it with POSTCOPY_END, computed from its frozen copy. */
#ifndef FERRY_MIGRATE_POSTCOPY_H
#define FERRY_MIGRATE_POSTCOPY_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "migrate/lazy_ram.h"
#include "migrate/stream.h"

struct machine;
struct migration_in;

/* Record types: REC_POSTCOPY_* and REC_PAGE_REQ in stream.h. */
#define POSTCOPY_FLAG_VERIFY 1u

/* Pages per background record: small, so that a requested page never
 * waits behind much. */
#define POSTCOPY_PUSH_PAGES 16

/* What the destination measured, sent back in POSTCOPY_DONE. */
struct postcopy_figures {
    uint64_t on_demand;              /* pages something faulted on */
    uint64_t median_ns, p99_ns, max_ns; /* fault to installed */
    uint64_t verified;               /* 1: hash matched, 2: mismatch, 0: not asked */
    uint64_t paused;                 /* connection breaks survived */
};

/* One page's share of the post-copy hash. */
uint64_t postcopy_page_hash(const void *data, uint64_t page);

/* ---- Source (postcopy_send.c) ---- */

struct postcopy_send {
    struct machine *m;
    uint64_t *todo;             /* bit per page still to send; owned */
    uint64_t npages;
    uint64_t total;             /* pages missing at the switch */
    atomic_uint_fast64_t sent;  /* of them sent (pushed or requested) */
    atomic_uint_fast64_t requested; /* sent because the destination asked */
    uint64_t bandwidth;         /* bytes/s, 0: unlimited */
    bool verify;
    struct postcopy_figures fig; /* from DONE */
    uint64_t cursor;            /* next page the background push looks at */
};

/* Before the pause: POSTCOPY_DISCARD for the pages the last round left
 * dirty, and a PING the destination answers once it dropped them. */
int postcopy_send_discard(struct machine *m, struct stream *s, const uint64_t *bitmap,
                          struct error *err);
/* Sends the POSTCOPY record for `bitmap` (the pages still dirty) and takes
 * a copy of it as the work to do. */
int postcopy_send_switch(struct postcopy_send *ps, struct machine *m, struct stream *s,
                         const uint64_t *bitmap, uint64_t bandwidth, bool verify,
                         struct error *err);
/* After RUNNING: serves requests and pushes every missing page, then END,
 * and waits for DONE. Returns 0 when done, -1 when the connection failed
 * (the pages not confirmed stay in todo). */
int postcopy_send_run(struct postcopy_send *ps, struct stream *s, atomic_bool *cancel,
                      struct error *err);
/* On a new connection (header written): RESUME, then the destination's
 * MISSING bitmap becomes the work to do. */
int postcopy_send_reconnect(struct postcopy_send *ps, struct stream *s, struct error *err);
void postcopy_send_free(struct postcopy_send *ps);

/* ---- Destination (postcopy_recv.c) ---- */

/* The receiver's hooks, called from incoming.c. */
int postcopy_recv_advise(struct migration_in *in, struct machine *m, const uint8_t *body,
                         size_t len, struct error *err);
/* POSTCOPY_DISCARD: drop those pages (the fault thread starts with the
 * first). */
int postcopy_recv_discard(struct migration_in *in, struct machine *m, const uint8_t *body,
                          size_t len, struct error *err);
/* The POSTCOPY record: drop the missing pages, start the fault thread. */
int postcopy_recv_switch(struct migration_in *in, struct machine *m, const uint8_t *body,
                         size_t len, struct error *err);
bool postcopy_recv_switched(const struct migration_in *in);
/* At END: with verify, the hash of what is here (before anything runs). */
int postcopy_recv_loaded(struct migration_in *in, struct machine *m, struct error *err);
/* After RUNNING was sent: a thread receives the rest (and recovers from a
 * broken connection by listening on in->uri again); it owns `in` from here.
 * Returns false if this was not a post-copy. */
bool postcopy_recv_start(struct migration_in *in, struct machine *m);
/* Frees the post-copy part of `in` (a failed migration, or the end). */
void postcopy_recv_free(struct migration_in *in);
/* Before the machine is destroyed: stops and joins the receiver. */
void postcopy_recv_stop_all(void);
/* For the status: pages still missing and missing at the switch; false
 * if no post-copy was received. */
bool postcopy_recv_progress(uint64_t *missing, uint64_t *total);

#endif
