/* LR/SC reservations across harts on their own host threads.
 *
 * SC is a host compare-and-swap against the value LR loaded (exec.c), which
 * catches every store that changes the reserved word. What a CAS cannot see
 * is a store by another hart that writes the value already there, or one
 * to the other bytes of the reservation granule: the spec says such an SC
 * must fail too (no store from another hart to the reservation set may be
 * observed between the LR and the SC). So each hart also publishes its
 * reserved granule (the host address of the aligned LRSC_GRANULE bytes) in
 * a machine-wide set, with a count of live reservations; every CPU store
 * path calls lrsc_store_check() before it writes guest RAM, which costs one
 * relaxed load and a not-taken branch while no hart holds a reservation,
 * and otherwise breaks the other harts' reservations on the granules the
 * store touches. Linux clears dangling reservations on every trap return
 * (an SC in its exit path) and a trap drops this hart's (hart_trap), so the
 * count is zero most of the time.
 *
 * The remaining window, and why it is acceptable: a store's check and the
 * store itself are two steps, as are an LR's publication and its load. A
 * store whose check runs before an LR publishes, and whose write lands
 * after the LR loaded, does not break that reservation; likewise a store
 * landing between an SC's own check of its slot and its CAS. The window is
 * a few host instructions wide; a store in it that changes the reserved
 * word still fails the SC through the CAS, so only a same-value store (or
 * one to the granule's other bytes) racing the LR or the SC to within
 * nanoseconds can go unseen, and then the outcome is the one the guest
 * would get had that store been ordered just before the LR. Closing it
 * would need a full fence after every guest store. Device DMA does not
 * break reservations (the spec speaks of harts' stores); the CAS still
 * catches a DMA write that changes the word.
 *
 * Every engine that stores to guest RAM (the interpreter's inline TLB-hit
 * store, the slow path, AMOs, SC, cbo.zero, and a JIT's inline stores) must
 * call lrsc_store_check() before the write. */
#ifndef FERRY_CPU_LRSC_H
#define FERRY_CPU_LRSC_H

#include <stdbool.h>
#include <stdint.h>

#include "cpu/hart.h"

#define LRSC_GRANULE 8u  /* bytes: the reservation set of an LR.D, or of
                            an LR.W and the word next to it */
#define LRSC_MAX_HARTS 8

/* One per machine (harts without a machine share a static one). */
struct lrsc_set {
    unsigned live;                       /* non-zero slots; atomic */
    uintptr_t granule[LRSC_MAX_HARTS];   /* host address of each hart's
                                            reserved granule, 0 = none;
                                            atomic */
};

static inline uintptr_t lrsc_granule_of(const void *host)
{
    return (uintptr_t)host & ~(uintptr_t)(LRSC_GRANULE - 1);
}

/* Breaks other harts' reservations on the granules of [host, host+size). */
void lrsc_break_others(struct hart *h, const void *host, unsigned size);

/* Call before any store of `size` bytes to guest RAM at host address
 * `host` made for hart h's instructions. */
static inline void lrsc_store_check(struct hart *h, const void *host, unsigned size)
{
    if (__builtin_expect(__atomic_load_n(&h->lrsc->live, __ATOMIC_RELAXED) != 0, 0))
        lrsc_break_others(h, host, size);
}

/* LR: publishes h's reservation on the granule holding `host` (before the
 * LR's load, so that a store checking after it breaks it). */
void lrsc_reserve(struct hart *h, const void *host);

/* Withdraws h's published reservation; true if it was still on the
 * granule holding `host` (no other hart's store has broken it). */
bool lrsc_release(struct hart *h, const void *host);

/* Withdraws h's published reservation, if any (trap, reset, state load:
 * the SC that follows fails, as it may at any time). */
void lrsc_drop(struct hart *h);

#endif
