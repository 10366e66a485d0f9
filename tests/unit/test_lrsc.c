/* LR/SC reservations across harts (cpu/lrsc.h): hart 0 takes a reservation
 * with lr.d, hart 1 executes one instruction, hart 0 tries sc.d. Every kind
 * of store by hart 1 into the reserved granule must make the SC fail, even
 * one that leaves the word's value unchanged (which a compare-and-swap
 * against the value LR loaded cannot see); stores elsewhere, loads, and
 * hart 0's own stores must not. The harts are stepped one instruction at a
 * time on this thread, so each case has one exact interleaving. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/hart.h"
#include "cpu/jit.h"
#include "cpu/lrsc.h"
#include "machine/machine.h"
#include "mem/bus.h"
#include "check.h"
#include "harts.h"

static uint32_t enc_amo(uint32_t f5, uint32_t f3, uint32_t rd, uint32_t rs1, uint32_t rs2)
{
    return f5 << 27 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | 0x2f;
}
enum { A0 = 10, A1 = 11, A2 = 12, A3 = 13 };
#define OP_STORE 0x23
#define OP_STORE_FP 0x27
#define CBO_ZERO(rs1) enc_i(0x0f, 0, 2, rs1, 4)
#define NOP enc_i(0x13, 0, 0, 0, 0)

static struct machine m;

#define RAM_SIZE (1u << 20)
#define CODE0 0x0000ull   /* hart 0: lr.d a0,(a1); <own store>; sc.d a2,a3,(a1) */
#define CODE1 0x1000ull   /* hart 1: the other hart's instruction */
#define DATA 0x8000ull    /* the reserved doubleword (64-byte aligned) */
#define INITIAL 0x1234ull
static uint64_t initial = INITIAL; /* the reserved word's value before LR */

static uint64_t *data_word(unsigned off)
{
    return (uint64_t *)(m.bus.ram.host + DATA + off);
}

static void put_code(uint64_t at, const uint32_t *code, size_t n)
{
    memcpy(m.bus.ram.host + at, code, n * 4);
}

/* Each instruction of a program is followed by `jal x0, 0`: the
 * interpreter checks its budget on taken jumps, so a run of budget 1 ends
 * parked on that jump, and the next step starts after it. */
#define JAL_SELF 0x0000006fu
/* The engine the harts run on: the interpreter, then the translator
 * (whose inline stores must check reservations as the interpreter's do). */
static bool use_jit;
static void step(struct hart *h)
{
    use_jit ? jit_run(h, 1) : hart_run(h, 1);
    h->pc += 4;
}

/* Hart 0: lr.d, then `own` (hart 0's own instruction between LR and SC, or
 * a nop), while hart 1 runs `other` (with a1 = data + other_off, a3 the
 * value it stores, f0 the same); returns sc.d's result (0 = stored). */
static uint64_t lr_other_sc(uint32_t own, uint32_t other, int other_off, uint64_t stored)
{
    struct hart *h0 = &m.harts[0], *h1 = &m.harts[1];
    memset(m.bus.ram.host + DATA, 0, 64);
    *data_word(0) = initial;
    const uint32_t code0[] = {enc_amo(0x02, 3, A0, A1, 0), JAL_SELF, own, JAL_SELF,
                              enc_amo(0x03, 3, A2, A1, A3), JAL_SELF};
    const uint32_t code1[] = {other, JAL_SELF};
    put_code(CODE0, code0, 6);
    put_code(CODE1, code1, 2);
    machine_fence_i(&m);
    h0->pc = m.bus.ram.base + CODE0;
    h0->x[A1] = m.bus.ram.base + DATA;
    h0->x[A3] = 0x5555;
    h1->pc = m.bus.ram.base + CODE1;
    h1->x[A1] = m.bus.ram.base + DATA + (uint64_t)(int64_t)other_off;
    h1->x[A3] = stored;
    h1->f[0] = stored;
    if (use_jit) {
        /* Once before the LR, so hart 1's write TLB holds the data page
         * and its store below takes the translator's inline path. */
        step(h1);
        h1->pc = m.bus.ram.base + CODE1;
        memset(m.bus.ram.host + DATA, 0, 64);
        *data_word(0) = initial;
    }
    step(h0); /* lr.d */
    CHECK(h0->x[A0] == initial, "lr.d loaded %#llx", (unsigned long long)h0->x[A0]);
    step(h0); /* own */
    step(h1); /* other */
    step(h0); /* sc.d */
    CHECK(h0->pc == m.bus.ram.base + CODE0 + 24 && h1->pc == m.bus.ram.base + CODE1 + 8,
          "a step trapped (pc %#llx, %#llx)", (unsigned long long)h0->pc,
          (unsigned long long)h1->pc);
    CHECK(__atomic_load_n(&m.lrsc.live, __ATOMIC_RELAXED) == 0,
          "%u reservations still live after the SC", m.lrsc.live);
    return h0->x[A2];
}

static void expect(const char *what, uint64_t sc, uint64_t want)
{
    CHECK(sc == want, "%s: sc.d returned %llu, expected %llu (%s)", what,
          (unsigned long long)sc, (unsigned long long)want, want ? "fail" : "success");
}

/* Every case, on the engine use_jit selects. */
static void run_cases(void)
{
    printf("test_lrsc: %s\n", use_jit ? "translator" : "interpreter");
    expect("nothing in between", lr_other_sc(NOP, NOP, 0, 0), 0);
    CHECK(*data_word(0) == 0x5555, "sc.d did not store");
    expect("other hart loads the word", lr_other_sc(NOP, enc_i(0x03, A2, 3, A1, 0), 0, 0), 0);
    expect("other hart stores a new value",
           lr_other_sc(NOP, enc_s(OP_STORE, 3, A1, A3, 0), 0, 7), 1);
    expect("other hart stores the same value",
           lr_other_sc(NOP, enc_s(OP_STORE, 3, A1, A3, 0), 0, INITIAL), 1);
    expect("other hart stores one byte of the word, same value",
           lr_other_sc(NOP, enc_s(OP_STORE, 0, A1, A3, 0), 0, INITIAL & 0xff), 1);
    expect("other hart stores the same value with fsd",
           lr_other_sc(NOP, enc_s(OP_STORE_FP, 3, A1, 0, 0), 0, INITIAL), 1);
    expect("other hart's amoswap of the same value",
           lr_other_sc(NOP, enc_amo(0x01, 3, A2, A1, A3), 0, INITIAL), 1);
    expect("other hart's amoor of 0",
           lr_other_sc(NOP, enc_amo(0x08, 3, A2, A1, A3), 0, 0), 1);
    /* Its upper half writes the word's low half again. */
    expect("other hart's misaligned sd ending in the granule, same bytes",
           lr_other_sc(NOP, enc_s(OP_STORE, 3, A1, A3, 0), -4, INITIAL << 32), 1);
    expect("other hart stores to the next granule",
           lr_other_sc(NOP, enc_s(OP_STORE, 3, A1, A3, 0), 8, INITIAL), 0);
    /* cbo.zero of the block while the word is 0 still breaks it. */
    initial = 0;
    expect("other hart's cbo.zero of a zero word", lr_other_sc(NOP, CBO_ZERO(A1), 0, 0), 1);
    initial = INITIAL;
    /* A hart's own store between its LR and SC need not break it. */
    expect("own store of the same value", lr_other_sc(enc_s(OP_STORE, 3, A1, A0, 0), NOP, 0, 0),
           0);
    /* Another hart's SC (without a reservation: it fails) stores nothing. */
    expect("other hart's failing sc.d", lr_other_sc(NOP, enc_amo(0x03, 3, A2, A1, A3), 0, 0), 0);
}

int main(void)
{
    if (unit_harts_init(&m, 2, RAM_SIZE) < 0)
        return 1;
    for (unsigned i = 0; i < 2; i++)
        m.harts[i].mstatus |= 1ull << 13; /* FS = Initial: fsd allowed */

    for (int engine = 0; engine < 2; engine++) {
        use_jit = engine == 1;
        run_cases();
    }
    use_jit = false;

    /* A trap drops the reservation (and its publication). */
    struct hart *h0 = &m.harts[0];
    const uint32_t lr_then_illegal[] = {enc_amo(0x02, 3, A0, A1, 0), JAL_SELF, 0};
    const uint32_t handler[] = {JAL_SELF};
    put_code(CODE0, lr_then_illegal, 3);
    put_code(CODE1, handler, 1);
    machine_fence_i(&m);
    h0->pc = m.bus.ram.base + CODE0;
    h0->mtvec = m.bus.ram.base + CODE1;
    h0->x[A1] = m.bus.ram.base + DATA;
    step(h0);
    CHECK(m.lrsc.live == 1, "lr.d published no reservation");
    step(h0);
    CHECK(m.lrsc.live == 0 && !h0->reserved, "a trap kept the reservation");

    if (failures) {
        printf("test_lrsc: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    for (unsigned i = 0; i < 2; i++)
        jit_free(&m.harts[i]);
    printf("test_lrsc: %d checks passed\n", checks);
    return 0;
}
