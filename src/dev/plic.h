/* SiFive-compatible PLIC as on QEMU `virt`: 96 sources (1..95 usable), two
 * contexts per hart (2*i = M-mode external, 2*i+1 = S-mode external). */
#ifndef FERRY_DEV_PLIC_H
#define FERRY_DEV_PLIC_H

#include <stdint.h>

#include "mem/bus.h"

struct hart;

#define PLIC_SOURCES 96
#define PLIC_WORDS ((PLIC_SOURCES + 31) / 32)
#define PLIC_MAX_CONTEXTS 16

/* Migratable state. `level` is the current input line level (sources are
 * level-triggered); `pending` and `claimed` follow the PLIC gateway rules. */
struct plic_state {
    uint32_t priority[PLIC_SOURCES];
    uint32_t level[PLIC_WORDS];
    uint32_t pending[PLIC_WORDS];
    uint32_t claimed[PLIC_WORDS];
    uint32_t enable[PLIC_MAX_CONTEXTS][PLIC_WORDS];
    uint32_t threshold[PLIC_MAX_CONTEXTS];
};

struct plic {
    struct plic_state s;
    struct hart *harts;
    unsigned nharts;
};

void plic_init(struct plic *p, struct hart *harts, unsigned nharts);
/* irq_line callback: controller is the struct plic. */
void plic_set_irq(void *plic, unsigned irq, int level);
/* Recomputes MEIP/SEIP of every hart (after a state load). */
void plic_update(struct plic *p);
extern const struct mmio_ops plic_mmio_ops;

#endif
