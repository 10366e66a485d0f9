/* CLINT-compatible ACLINT: MSWI (msip per hart at +0) and MTIMER (mtimecmp
 * per hart at +0x4000, mtime at +0xbff8), driving MSIP and MTIP. */
#ifndef FERRY_DEV_ACLINT_H
#define FERRY_DEV_ACLINT_H

#include <stdint.h>

#include "mem/bus.h"

struct hart;
struct vclock;

#define ACLINT_MAX_HARTS 8

struct aclint_state {
    uint64_t mtimecmp[ACLINT_MAX_HARTS];
    uint32_t msip[ACLINT_MAX_HARTS];
};

struct aclint {
    struct aclint_state s;
    struct hart *harts;
    unsigned nharts;
    struct vclock *clock;
    /* Called after a guest write moved a deadline (mtimecmp, mtime): the
     * thread that sleeps until the next deadline must look again. */
    void (*deadline_changed)(void *opaque);
    void *opaque;
};

void aclint_init(struct aclint *a, struct hart *harts, unsigned nharts, struct vclock *clock);
/* Re-evaluates MTIP for every hart against the current time. */
void aclint_update(struct aclint *a);
/* Earliest mtimecmp (in ticks) of any hart, UINT64_MAX if none is armed. */
uint64_t aclint_next_deadline(const struct aclint *a);
extern const struct mmio_ops aclint_mmio_ops;

#endif
