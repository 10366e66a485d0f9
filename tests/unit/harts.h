/* A machine with RAM and harts but no devices, for unit tests that run
 * guest code on harts directly (hart_run / jit_run): test_lrsc, test_fence.
 * Also the few RV64 encoders they share. */
#ifndef FERRY_TESTS_UNIT_HARTS_H
#define FERRY_TESTS_UNIT_HARTS_H

#include <stdint.h>
#include <stdio.h>

#include "base/error.h"
#include "cpu/hart.h"
#include "machine/machine.h"
#include "machine/memmap.h"

/* RAM at MEMMAP_RAM_BASE, nharts harts reset, the guest clock running.
 * Returns -1 (printed) if the RAM cannot be had. */
static inline int unit_harts_init(struct machine *m, unsigned nharts, uint64_t ram_size)
{
    struct error err;
    if (ram_init(&m->bus.ram, MEMMAP_RAM_BASE, ram_size, &err) < 0) {
        printf("FAIL: %s\n", err.msg);
        return -1;
    }
    m->nharts = nharts;
    vclock_init(&m->clock);
    for (unsigned i = 0; i < nharts; i++)
        hart_init(&m->harts[i], i, m, &m->bus);
    return 0;
}

static inline uint32_t enc_i(uint32_t op, uint32_t rd, uint32_t f3, uint32_t rs1, int32_t imm)
{
    return ((uint32_t)imm & 0xfff) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}

static inline uint32_t enc_s(uint32_t op, uint32_t f3, uint32_t rs1, uint32_t rs2, int32_t imm)
{
    uint32_t u = (uint32_t)imm;
    return ((u >> 5) & 0x7f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (u & 0x1f) << 7 | op;
}

#endif
