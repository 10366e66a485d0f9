/* The log-dirty bitmap: after a guest writes a known set of pages, exactly
 * those pages are marked — for plain stores (TLB slow and fast paths),
 * misaligned stores across a page boundary, AMOs, SC, and device DMA — and
 * after a harvest the next store to an already-cached page marks it again. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/hart.h"
#include "machine/machine.h"
#include "mem/bus.h"
#include "check.h"

/* Minimal RV64 encoders for the handful of instructions the test needs. */
static uint32_t enc_i(uint32_t op, uint32_t rd, uint32_t f3, uint32_t rs1, int32_t imm)
{
    return ((uint32_t)imm & 0xfff) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}
static uint32_t enc_s(uint32_t f3, uint32_t rs1, uint32_t rs2, int32_t imm)
{
    uint32_t u = (uint32_t)imm;
    return ((u >> 5) & 0x7f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (u & 0x1f) << 7 | 0x23;
}
static uint32_t enc_lui(uint32_t rd, uint32_t imm20) { return imm20 << 12 | rd << 7 | 0x37; }
static uint32_t enc_add(uint32_t rd, uint32_t rs1, uint32_t rs2)
{
    return rs2 << 20 | rs1 << 15 | rd << 7 | 0x33;
}
static uint32_t enc_amo(uint32_t f5, uint32_t f3, uint32_t rd, uint32_t rs1, uint32_t rs2)
{
    return f5 << 27 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | 0x2f;
}
#define JAL_SELF 0x0000006fu /* jal x0, 0: park the hart */
enum { A0 = 10, T0 = 5, T1 = 6, T2 = 7 };

static struct machine m;
static uint64_t harvested[64];

#define RAM_SIZE (1u << 20)
#define CODE_PAGE 0          /* the program itself: never written */
#define DATA_BASE 0x10000ull /* page 16 of RAM: a0 points here */

static void load_program(const uint32_t *code, size_t n)
{
    memcpy(m.bus.ram.host, code, n * 4);
    machine_fence_i(&m); /* new code is visible only after a FENCE.I */
}

/* Runs the hart until it parks on `jal x0, 0`. */
static void run_program(void)
{
    struct hart *h = &m.harts[0];
    h->pc = m.bus.ram.base;
    h->x[A0] = m.bus.ram.base + DATA_BASE;
    hart_run(h, 1000);
}

/* Compares the harvested bitmap with the expected page list. */
static void expect_pages(const char *what, const unsigned *pages, size_t n)
{
    uint64_t count = machine_dirty_sync(&m, harvested);
    CHECK(count == n, "%s: %llu pages dirty, expected %zu", what, (unsigned long long)count, n);
    for (uint64_t p = 0; p < m.bus.ram.npages; p++) {
        bool want = false;
        for (size_t i = 0; i < n; i++)
            want |= pages[i] == p;
        bool got = (harvested[p / 64] >> (p % 64)) & 1;
        CHECK(got == want, "%s: page %llu is %s", what, (unsigned long long)p,
              got ? "dirty but was not written" : "clean but was written");
    }
}

int main(void)
{
    struct error err;
    if (ram_init(&m.bus.ram, MEMMAP_RAM_BASE, RAM_SIZE, &err) < 0) {
        printf("FAIL: %s\n", err.msg);
        return 1;
    }
    m.nharts = 1;
    vclock_init(&m.clock);
    hart_init(&m.harts[0], 0, &m, &m.bus);
    m.harts[0].mstatus |= 1ull << 13; /* FS = Initial */

    /* Round 1: pages 16 (two stores: slow then fast path), 19, 21+22
     * (misaligned doubleword across the boundary), 25 (AMO), 27 (LR/SC). */
    const uint32_t prog1[] = {
        enc_s(3, A0, 0, 0),                 /* sd x0, 0(a0)        page 16 */
        enc_s(3, A0, 0, 8),                 /* sd x0, 8(a0)        page 16 again */
        enc_lui(T0, 3), enc_add(T1, A0, T0),
        enc_s(2, T1, 0, 0x10),              /* sw x0, 0x10(a0+0x3000) page 19 */
        enc_lui(T0, 6), enc_add(T1, A0, T0),
        enc_s(3, T1, 0, -4),                /* sd at a0+0x5ffc: pages 21 and 22 */
        enc_lui(T0, 9), enc_add(T1, A0, T0),
        enc_amo(0x00, 3, T2, T1, A0),       /* amoadd.d t2, a0, (a0+0x9000) page 25 */
        enc_lui(T0, 11), enc_add(T1, A0, T0),
        enc_amo(0x02, 3, T2, T1, 0),        /* lr.d t2, (a0+0xb000) */
        enc_amo(0x03, 3, T2, T1, A0),       /* sc.d t2, a0, (a0+0xb000) page 27 */
        JAL_SELF,
    };
    ram_dirty_clear_all(&m.bus.ram);
    load_program(prog1, sizeof prog1 / 4);
    ram_dirty_clear_all(&m.bus.ram); /* the loader's own writes are not the guest's */
    run_program();
    CHECK(m.harts[0].x[T2] == 0, "sc.d should have succeeded");
    const unsigned want1[] = {16, 19, 21, 22, 25, 27};
    expect_pages("round 1", want1, 6);

    /* Round 2: the same first store again. Page 16's write-TLB entry was
     * dropped by the harvest, so the store must mark it once more. Loads
     * mark nothing. */
    const uint32_t prog2[] = {
        enc_s(3, A0, 0, 16),                /* sd x0, 16(a0)  page 16 */
        enc_i(0x03, T2, 3, A0, 0),          /* ld t2, 0(a0)   load only */
        enc_lui(T0, 4), enc_add(T1, A0, T0),
        enc_i(0x03, T2, 3, T1, 0),          /* ld from page 20: load only */
        JAL_SELF,
    };
    load_program(prog2, sizeof prog2 / 4);
    ram_dirty_clear_all(&m.bus.ram);
    run_program();
    const unsigned want2[] = {16};
    expect_pages("round 2 (after harvest)", want2, 1);

    /* Zicboz cbo.zero writes a 64-byte block (page 30, rs1 unaligned):
     * it marks the page, twice in a row across a harvest; cbo.clean and
     * cbo.flush (page 31) write nothing. */
    const uint32_t prog_cbo[] = {
        enc_lui(T0, 14), enc_add(T1, A0, T0),
        enc_i(0x13, T1, 0, T1, 13),         /* rs1 inside the block, not at its start */
        enc_i(0x0f, 0, 2, T1, 4),           /* cbo.zero (a0+0xe00d): page 30 */
        enc_lui(T0, 15), enc_add(T1, A0, T0),
        enc_i(0x0f, 0, 2, T1, 1),           /* cbo.clean (a0+0xf000): page 31 */
        enc_i(0x0f, 0, 2, T1, 2),           /* cbo.flush, same block */
        JAL_SELF,
    };
    const unsigned want_cbo[] = {30};
    for (int round = 0; round < 2; round++) {
        uint8_t *block = m.bus.ram.host + DATA_BASE + 0xe000;
        memset(block, 0xa5, 128);
        load_program(prog_cbo, sizeof prog_cbo / 4);
        ram_dirty_clear_all(&m.bus.ram);
        run_program();
        CHECK(block[0] == 0 && block[63] == 0 && block[64] == 0xa5,
              "cbo.zero must clear exactly the 64-byte block");
        expect_pages(round ? "cbo.zero again (after harvest)" : "cbo.zero", want_cbo, 1);
    }

    /* Device DMA marks exactly the pages it wrote (here 40 and 41). */
    uint8_t buf[100] = {1};
    CHECK(bus_dma_write(&m.bus, m.bus.ram.base + 41 * 4096 - 50, buf, sizeof buf, &err) == 0,
          "dma write failed");
    CHECK(bus_dma_write(&m.bus, m.bus.ram.base + RAM_SIZE - 10, buf, sizeof buf, &err) < 0,
          "dma write past the end of RAM must fail");
    const unsigned want3[] = {40, 41};
    expect_pages("DMA", want3, 2);

    /* Nothing written: nothing dirty. */
    expect_pages("idle", NULL, 0);

    ram_destroy(&m.bus.ram);
    if (failures) {
        printf("test_dirty: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("test_dirty: %d checks passed\n", checks);
    return 0;
}
