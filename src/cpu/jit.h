/* The translating CPU: RV64GC guest code translated into x86-64 host code.
 *
 * jit_run() has hart_run()'s contract (runs up to about `budget`
 * instructions, returns how many ran, stops at WFI, honours h->kick, takes
 * interrupts at block boundaries) so the machine loop can call either
 * engine. Each hart owns its translation cache (struct jit): no locks on
 * the hot path and no cross-thread unlinking when harts run on their own
 * threads. What harts share is the per-RAM-page "holds translated code"
 * map in struct ram: a store that reaches such a page (stores to it never
 * hit the write TLB, see mmu.c) bumps ram->jit_code_gen and every hart
 * drops its translations at its next block boundary. FENCE.I (the icache
 * epoch) drops them too. The cache is a host cache: never migrated,
 * flushed when full, rebuilt after a state load.
 *
 * On hosts other than x86-64, jit_run() runs the interpreter. */
#ifndef FERRY_CPU_JIT_H
#define FERRY_CPU_JIT_H

#include <stdbool.h>
#include <stdint.h>

#include "cpu/hart.h"
#include "mem/ram.h"

uint64_t jit_run(struct hart *h, uint64_t budget);

/* Drops every translation of this hart (next jit_run rebuilds). Only from
 * the hart's own thread, outside jit_run. */
void jit_flush(struct hart *h);
/* Frees the hart's cache. */
void jit_free(struct hart *h);

struct jit_stats {
    uint64_t blocks;        /* blocks translated */
    uint64_t flushes;       /* whole-cache flushes (fence.i, code writes, full) */
    uint64_t code_writes;   /* flushes caused by stores into translated pages */
    uint64_t translate_ns;  /* CPU time (the hart thread's) spent translating */
};
/* Adds this hart's counters into *s. */
void jit_stats_add(const struct hart *h, struct jit_stats *s);

/* Test-only: when non-zero the translator deliberately mistranslates XORI
 * (flips bit 0 of the immediate), so the differential tester can show it
 * catches a wrong translation. */
extern int jit_test_mistranslate;

/* ---- used by the MMU's slow paths ---- */

/* True when page `page` (0-based from ram->base) may hold translated code:
 * stores must not get a write-TLB entry for it. */
static inline bool jit_page_has_code(const struct ram *ram, uint64_t page)
{
    const uint8_t *map = __atomic_load_n(&ram->jit_code, __ATOMIC_ACQUIRE);
    return map && __atomic_load_n(&map[page], __ATOMIC_RELAXED);
}

#endif
