/* Differential test of the translating CPU against the interpreter.
 *
 * Generates random RV64 instruction sequences (integer and M operations,
 * a few compressed ones, loads and stores including misaligned,
 * page-crossing and faulting ones, forward branches and jumps, stores
 * that rewrite later code, and a sprinkling of instructions the
 * translator hands to the interpreter: CSR accesses, AMOs, FP), runs
 * each from the same random state under hart_run and jit_run, and
 * compares the architectural state and RAM afterwards. Half run in M-mode
 * without translation, half in S-mode under Sv39 with scattered, partly
 * unmapped or read-only data pages. Every sequence ends in WFI; traps go
 * to an M-mode handler that is a WFI too.
 *
 * Also checks that the tester catches a deliberately wrong translation
 * (jit_test_mistranslate).
 *
 *   test_jit_diff                 fixed seed, bounded count (make test)
 *   test_jit_diff SEED [COUNT]    another seed, longer
 *   test_jit_diff SEED COUNT N    only sequence N (with its listing) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/cpu_internal.h"
#include "cpu/icache.h"
#include "cpu/jit.h"
#include "mem/bus.h"

#define RAM_BASE 0x80000000ull
#define RAM_PAGES 24
#define CODE_PAGE 0         /* code occupies pages 0..2 */
#define HANDLER_PAGE 3
#define DATA_PAGE 8         /* data: virtual pages 8..15 */
#define PT_PAGE 16          /* Sv39 tables: physical pages 16..18 */
#define MAX_INSNS 160

static struct bus bus;
static struct icache icache;
static struct hart h, start;
static uint8_t *mem;
static uint8_t ram_start[RAM_PAGES * 4096], ram_interp[RAM_PAGES * 4096];

static uint64_t rng;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}
static unsigned below(unsigned n) { return (unsigned)(rnd() % n); }

/* ---- encoders ---- */
static uint32_t r_type(unsigned f7, unsigned rs2, unsigned rs1, unsigned f3, unsigned rd, unsigned op)
{
    return f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}
static uint32_t i_type(int32_t imm, unsigned rs1, unsigned f3, unsigned rd, unsigned op)
{
    return (uint32_t)(imm & 0xfff) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}
static uint32_t s_type(int32_t imm, unsigned rs2, unsigned rs1, unsigned f3, unsigned op)
{
    uint32_t u = (uint32_t)imm;
    return ((u >> 5) & 0x7f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (u & 31) << 7 | op;
}
static uint32_t b_type(int32_t imm, unsigned rs2, unsigned rs1, unsigned f3)
{
    uint32_t u = (uint32_t)imm;
    return ((u >> 12) & 1) << 31 | ((u >> 5) & 0x3f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 |
           ((u >> 1) & 0xf) << 8 | ((u >> 11) & 1) << 7 | 0x63;
}
static uint32_t j_type(int32_t imm, unsigned rd)
{
    uint32_t u = (uint32_t)imm;
    return ((u >> 20) & 1) << 31 | ((u >> 1) & 0x3ff) << 21 | ((u >> 11) & 1) << 20 |
           ((u >> 12) & 0xff) << 12 | rd << 7 | 0x6f;
}

/* One generated instruction; branches and jumps get their offsets once
 * every instruction's address is known. */
enum fix { FIX_NONE, FIX_BRANCH, FIX_JAL, FIX_JALR_PAIR, FIX_SMC_STORE };
struct gen {
    uint32_t bits;
    unsigned len;
    enum fix fix;
    unsigned target;        /* instruction index */
    uint64_t addr;
    bool cont;              /* continues a group: not a jump target */
};
static struct gen seq[MAX_INSNS + 8];
static unsigned nseq;

static unsigned reg(void) { return 1 + below(31); }
/* Destinations avoid x1..x3 and x31, which some generated groups use as
 * scratch (data pointers stay in x4..x7 most of the time). */
static unsigned dreg(void) { return below(8) == 0 ? 0 : 8 + below(23); }
static unsigned ptr_reg(void) { return 4 + below(4); }

static void add(uint32_t bits, unsigned len)
{
    seq[nseq++] = (struct gen){.bits = bits, .len = len};
}

static int32_t simm(unsigned bits)
{
    int32_t v = (int32_t)(rnd() & ((1u << bits) - 1));
    return v - (1 << (bits - 1));
}

/* Marks everything after the group's first instruction. */
static void group_end(unsigned first)
{
    for (unsigned i = first + 1; i < nseq; i++)
        seq[i].cont = true;
}

static void gen_alu(void)
{
    static const unsigned imm_f3[] = {0, 2, 3, 4, 6, 7};
    switch (below(7)) {
    case 6: { /* Zba/Zbb/Zbs/Zicond: sh1add, andn, min, rol, czero.eqz, bset, clz, rori */
        static const uint16_t f7f3[] = {0x10 << 3 | 2, 0x20 << 3 | 7, 0x05 << 3 | 4,
                                        0x30 << 3 | 1, 0x07 << 3 | 5, 0x14 << 3 | 1};
        unsigned k = below(8);
        if (k < 6)
            add(r_type(f7f3[k] >> 3, reg(), reg(), f7f3[k] & 7, dreg(), 0x33), 4);
        else if (k == 6)
            add(i_type(0x600, reg(), 1, dreg(), 0x13), 4);
        else
            add(i_type((int32_t)(0x600 | below(64)), reg(), 5, dreg(), 0x13), 4);
        break;
    }
    case 0: /* OP-IMM */
        add(i_type(simm(12), reg(), imm_f3[below(6)], dreg(), 0x13), 4);
        break;
    case 1: { /* shifts by immediate */
        unsigned f3 = below(2) ? 1 : 5, sh = below(64);
        uint32_t hi = (f3 == 5 && below(2)) ? 0x400u : 0;
        add(i_type((int32_t)(hi | sh), reg(), f3, dreg(), 0x13), 4);
        break;
    }
    case 2: { /* OP-IMM-32 */
        unsigned k = below(4);
        if (k == 0)
            add(i_type(simm(12), reg(), 0, dreg(), 0x1b), 4);
        else
            add(i_type((int32_t)((k == 3 ? 0x400u : 0) | below(32)), reg(), k == 1 ? 1 : 5,
                       dreg(), 0x1b), 4);
        break;
    }
    case 3: { /* OP and M */
        static const unsigned f7[] = {0, 0, 0, 0, 0, 0, 0, 0, 1, 0x20};
        unsigned s = f7[below(10)], f3 = below(8);
        if (s == 0x20)
            f3 = below(2) ? 0 : 5;
        add(r_type(s, reg(), reg(), f3, dreg(), 0x33), 4);
        break;
    }
    case 4: { /* OP-32 and M-32 */
        static const unsigned ok0[] = {0, 1, 5}, ok1[] = {0, 4, 5, 6, 7};
        unsigned k = below(3);
        if (k == 0)
            add(r_type(0, reg(), reg(), ok0[below(3)], dreg(), 0x3b), 4);
        else if (k == 1)
            add(r_type(0x20, reg(), reg(), below(2) ? 0 : 5, dreg(), 0x3b), 4);
        else
            add(r_type(1, reg(), reg(), ok1[below(5)], dreg(), 0x3b), 4);
        break;
    }
    default: /* LUI / AUIPC */
        add((uint32_t)(rnd() & 0xfffff000u) | dreg() << 7 | (below(2) ? 0x37 : 0x17), 4);
        break;
    }
}

static void gen_rvc(void)
{
    unsigned rd = 8 + below(23);
    uint32_t imm = below(64);
    switch (below(5)) {
    case 0: add(0x0001 | ((imm >> 5) & 1) << 12 | rd << 7 | (imm & 31) << 2, 2); break; /* c.addi */
    case 1: add(0x4001 | ((imm >> 5) & 1) << 12 | rd << 7 | (imm & 31) << 2, 2); break; /* c.li */
    case 2: add(0x0002 | ((imm >> 5) & 1) << 12 | rd << 7 | (imm & 31) << 2, 2); break; /* c.slli */
    case 3: add(0x8002 | rd << 7 | reg() << 2, 2); break;                               /* c.mv */
    default: add(0x9002 | rd << 7 | reg() << 2, 2); break;                              /* c.add */
    }
}

static void gen_mem(void)
{
    unsigned f3;
    /* Mostly near the base pointers (which sit near page ends), sometimes
     * through a register holding garbage (faults). */
    unsigned base = below(10) == 0 ? reg() : ptr_reg();
    int32_t off = below(4) == 0 ? simm(12) : simm(4);
    if (below(2)) {
        f3 = below(7);
        add(i_type(off, base, f3, dreg(), 0x03), 4);
    } else {
        f3 = below(4);
        add(s_type(off, reg(), base, f3, 0x23), 4);
    }
}

/* Half the sequences run in S-mode under Sv39 with data pages scattered
 * over physical memory (so an access crossing a virtual page boundary
 * touches two unrelated physical pages), one of them maybe unmapped and
 * one read-only; the rest in M-mode without translation. */
static bool sv39;

static void gen_fallback(void)
{
    switch (below(8)) {
    case 7: { /* frflags/fsflags/frrm/fsrm/fcsr accesses (the block goes on
               * after them), register and immediate forms */
        static const unsigned f3[] = {1, 2, 3, 5, 6, 7};
        unsigned k = f3[below(6)];
        add(i_type((int32_t)(1 + below(3)), k >= 5 ? below(8) : reg(), k, dreg(), 0x73), 4);
        break;
    }
    case 6: /* integer <-> binary64 conversions and a compare: the FPU
             * reads and writes integer registers */
        if (below(2))
            add(r_type(0x69, 2, reg(), below(2) ? 7 : 1, below(32), 0x53), 4); /* fcvt.d.l */
        else if (below(2))
            add(r_type(0x61, 2, below(32), below(2) ? 7 : 1, dreg(), 0x53), 4); /* fcvt.l.d */
        else {  /* fle/flt/feq.d, sometimes of a register with itself (equal or NaN) */
            unsigned a = below(32);
            add(r_type(0x51, below(4) ? below(32) : a, a, below(3), dreg(), 0x53), 4);
        }
        break;
    case 5: { /* fused multiply-add, binary64 (sometimes binary32) */
        static const unsigned opc[] = {0x43, 0x47, 0x4b, 0x4f};
        unsigned rm = below(2) ? 7 : below(2) ? 0 : below(5);
        add(below(32) << 27 | (below(8) ? 1u : 0u) << 25 | below(32) << 20 | below(32) << 15 |
            rm << 12 | below(32) << 7 | opc[below(4)], 4);
        add(r_type(0x71, 0, below(32), 0, dreg(), 0x53), 4);
        break;
    }
    case 0: /* csrrw/csrrs on mscratch (sscratch in S-mode) */
        add(i_type(sv39 ? 0x140 : 0x340, reg(), below(2) ? 1 : 2, dreg(), 0x73), 4);
        break;
    case 1: /* csrr minstret (instret in S-mode): exact instret mid-block */
        add(i_type(sv39 ? 0xc02 : 0xb02, 0, 2, dreg(), 0x73), 4);
        break;
    case 2: { /* AMO (aligned: the pointer's low bits are cleared first) */
        unsigned p = ptr_reg();
        add(i_type(-8, p, 7, 1, 0x13), 4);                  /* andi x1, p, -8 */
        static const unsigned f5[] = {0x00, 0x01, 0x04, 0x08, 0x0c, 0x10, 0x14, 0x18, 0x1c};
        add(r_type(f5[below(9)] << 2, reg(), 1, below(2) ? 2 : 3, dreg(), 0x2f), 4);
        break;
    }
    case 3: { /* binary64 arithmetic in various rounding modes, sign
               * injection, then fmv.x.d */
        static const unsigned f7[] = {0x01, 0x05, 0x09, 0x0d, 0x2d, 0x11, 0x00, 0x03};
        unsigned op = f7[below(8)];
        unsigned rm = op == 0x11 ? below(3) : below(2) ? 7 : below(2) ? 0 : below(5);
        add(r_type(op, op == 0x2d ? 0 : below(32), below(32), rm, below(32), 0x53), 4);
        add(r_type(0x71, 0, below(32), 0, dreg(), 0x53), 4);
        break;
    }
    default: /* fmv.d.x then fld/fsd through a pointer */
        add(r_type(0x79, 0, reg(), 0, below(32), 0x53), 4);
        if (below(2)) /* flw / fld */
            add(i_type(simm(5), ptr_reg(), 2 + below(2), below(32), 0x07), 4);
        else          /* fsw / fsd */
            add(s_type(simm(5), below(32), ptr_reg(), 2 + below(2), 0x27), 4);
        break;
    }
}

/* Rewrites a later ADDI: x2 = auipc; x3 = new instruction; sw x3, off(x2). */
static void gen_smc(unsigned later_room)
{
    if (later_room < 3)
        return;
    uint32_t newinsn = i_type(simm(12), reg(), 0, dreg(), 0x13);
    uint32_t lo = newinsn & 0xfff, hi = (newinsn + 0x800) & 0xfffff000u;
    add(0x17 | 2u << 7, 4);                                        /* auipc x2, 0 */
    add(hi | 3u << 7 | 0x37, 4);                                   /* lui x3, hi */
    add(i_type((int32_t)(lo << 20) >> 20, 3, 0, 3, 0x1b), 4);      /* addiw x3, x3, lo */
    add(0, 4);                                                     /* sw x3, ?(x2) */
    seq[nseq - 1].fix = FIX_SMC_STORE;
    seq[nseq - 1].target = nseq + 1 + below(2); /* an ADDI placed below */
    add(i_type(simm(12), reg(), 0, dreg(), 0x13), 4);
    add(i_type(simm(12), reg(), 0, dreg(), 0x13), 4);
    add(i_type(simm(12), reg(), 0, dreg(), 0x13), 4);
}

/* A counted loop whose body is one block that branches to itself:
 * x31 = 1..8; loop: 1..4 ALU operations, loads and stores, instructions
 * through C (minstret reads among them: the loop holds instret in a host
 * register) or conditional branches out of the loop (side exits);
 * x31 -= 1; bnez x31, loop. */
static void gen_loop(void)
{
    add(i_type((int32_t)(1 + below(8)), 0, 0, 31, 0x13), 4);      /* addi x31, x0, n */
    unsigned head = nseq, exits[4], nexits = 0;
    static const unsigned bf3[] = {0, 1, 4, 5, 6, 7};
    for (unsigned i = 1 + below(4); i > 0; i--) {
        switch (below(6)) {
        case 0: case 1: gen_alu(); break;
        case 2: case 3: gen_mem(); break;
        case 4: gen_fallback(); break;
        default:        /* to just past the loop, fixed below */
            exits[nexits++] = nseq;
            seq[nseq++] = (struct gen){.len = 4, .fix = FIX_BRANCH,
                                       .bits = b_type(0, reg(), reg(), bf3[below(6)])};
            break;
        }
    }
    add(i_type(-1, 31, 0, 31, 0x13), 4);                           /* addi x31, x31, -1 */
    int32_t back = 0;
    for (unsigned i = head; i < nseq; i++)
        back -= (int32_t)seq[i].len;
    add(b_type(back, 0, 31, 1), 4);                                /* bne x31, x0, head */
    for (unsigned i = 0; i < nexits; i++)
        seq[exits[i]].target = nseq;
}

static void gen_control(unsigned n)
{
    unsigned room = n - nseq;
    if (room < 2)
        return;
    unsigned target = nseq + 1 + below(room < 12 ? room : 12);
    static const unsigned bf3[] = {0, 1, 4, 5, 6, 7};
    switch (below(4)) {
    case 0: case 1:
        seq[nseq++] = (struct gen){.len = 4, .fix = FIX_BRANCH, .target = target,
                                   .bits = b_type(0, reg(), reg(), bf3[below(6)])};
        break;
    case 2:
        seq[nseq++] = (struct gen){.len = 4, .fix = FIX_JAL, .target = target,
                                   .bits = j_type(0, dreg())};
        break;
    default: /* auipc x1; jalr rd, off(x1) */
        seq[nseq++] = (struct gen){.len = 4, .fix = FIX_JALR_PAIR, .target = target + 1,
                                   .bits = 0x17 | 1u << 7};
        seq[nseq++] = (struct gen){.len = 4, .bits = i_type(0, 1, 0, dreg(), 0x67)};
        break;
    }
}

/* Builds a program of about n instructions at `code` and returns its
 * address. */
static uint64_t generate(unsigned n)
{
    nseq = 0;
    while (nseq < n) {
        unsigned first = nseq;
        unsigned k = below(100);
        if (k < 40) gen_alu();
        else if (k < 50) gen_rvc();
        else if (k < 72) gen_mem();
        else if (k < 88) gen_control(n);
        else if (k < 92) gen_fallback();
        else if (k < 96) gen_loop();
        else gen_smc(n - nseq);
        group_end(first);
    }
    add(0x10500073, 4); /* wfi */
    /* Start anywhere in the first code page, so sequences cross into the
     * next one (with 32-bit instructions straddling the boundary). */
    uint64_t addr = RAM_BASE + CODE_PAGE * 4096 + 2 * below(2048);
    uint64_t start_addr = addr;
    for (unsigned i = 0; i < nseq; i++) {
        seq[i].addr = addr;
        addr += seq[i].len;
    }
    for (unsigned i = 0; i < nseq; i++) {
        struct gen *g = &seq[i];
        if (g->fix != FIX_NONE && g->fix != FIX_SMC_STORE) {
            /* Jump targets: forward, to the start of a group. */
            if (g->target >= nseq)
                g->target = nseq - 1;
            while (seq[g->target].cont)
                g->target++;
        }
        if (g->fix == FIX_BRANCH) {
            g->bits = b_type((int32_t)(seq[g->target].addr - g->addr), 0, 0, 0) |
                      (g->bits & 0x01fff000u);
        } else if (g->fix == FIX_JAL) {
            g->bits = j_type((int32_t)(seq[g->target].addr - g->addr), (g->bits >> 7) & 31);
        } else if (g->fix == FIX_JALR_PAIR) {
            int32_t off = (int32_t)(seq[g->target].addr - g->addr);
            seq[i + 1].bits = (seq[i + 1].bits & 0x000fffffu) | (uint32_t)(off & 0xfff) << 20;
        } else if (g->fix == FIX_SMC_STORE) {
            /* sw x3, off(x2), x2 = the auipc's address (3 instructions up) */
            int32_t off = (int32_t)(seq[g->target].addr - seq[i - 3].addr);
            g->bits = s_type(off, 3, 2, 2, 0x23);
        }
        memcpy(mem + (g->addr - RAM_BASE), &g->bits, g->len);
    }
    return start_addr;
}

static void set_pte(unsigned table_page, unsigned index, uint64_t pte)
{
    memcpy(mem + table_page * 4096 + index * 8, &pte, 8);
}

/* Code and handler pages map to themselves; data pages to a random
 * choice of physical pages 8..15 and 19..23. Returns satp. */
static uint64_t build_page_tables(void)
{
    memset(mem + PT_PAGE * 4096, 0, 3 * 4096);
    uint64_t base_ppn = RAM_BASE >> 12;
    set_pte(PT_PAGE, 2, (base_ppn + PT_PAGE + 1) << 10 | PTE_V);      /* 0x80000000: VPN2 = 2 */
    set_pte(PT_PAGE + 1, 0, (base_ppn + PT_PAGE + 2) << 10 | PTE_V);
    for (unsigned v = 0; v <= HANDLER_PAGE; v++)
        set_pte(PT_PAGE + 2, v, (base_ppn + v) << 10 | PTE_V | PTE_R | PTE_W | PTE_X | PTE_A | PTE_D);
    unsigned pool[13], npool = 0;
    for (unsigned p = 8; p < 16; p++)
        pool[npool++] = p;
    for (unsigned p = 19; p < 24; p++)
        pool[npool++] = p;
    unsigned unmapped = below(3) == 0 ? DATA_PAGE + below(8) : 0;
    unsigned readonly = below(3) == 0 ? DATA_PAGE + below(8) : 0;
    for (unsigned v = DATA_PAGE; v < DATA_PAGE + 8; v++) {
        unsigned k = below(npool), p = pool[k];
        pool[k] = pool[--npool];
        if (v == unmapped)
            continue;
        uint64_t flags = PTE_V | PTE_R | (v == readonly ? 0 : PTE_W);
        if (below(2))
            flags |= PTE_A | (below(2) ? PTE_D : 0); /* else the MMU sets them */
        set_pte(PT_PAGE + 2, v, (base_ppn + p) << 10 | flags);
    }
    return (uint64_t)SATP_MODE_SV39 << SATP_MODE_SHIFT | (base_ppn + PT_PAGE);
}

static void set_start_state(uint64_t entry)
{
    hart_init(&start, 0, NULL, &bus);
    start.icache = &icache;
    start.priv = PRIV_M;
    if (sv39) {
        start.priv = PRIV_S;
        start.satp = build_page_tables();
        start.mcounteren = 7;
    }
    start.mtvec = RAM_BASE + HANDLER_PAGE * 4096;
    if (below(8)) /* FS = Initial; sometimes Off (F/D then trap) */
        start.mstatus |= 1ull << 13;
    start.pc = entry;
    for (unsigned r = 1; r < 32; r++) {
        switch (below(4)) {
        case 0: start.x[r] = rnd(); break;
        case 1: {
            /* small values, and division's corner cases */
            static const uint64_t corner[] = {0, ~0ull, 1ull << 63, 0xffffffff80000000ull,
                                              0x80000000ull, 0xffffffffull};
            start.x[r] = below(4) ? (uint64_t)simm(8) : corner[below(6)];
            break;
        }
        default: start.x[r] = RAM_BASE + (DATA_PAGE + below(8)) * 4096ull + 4096 - 16 + below(32);
        }
        /* Raw bits (NaNs, denormals...) or ordinary doubles. */
        if (below(2)) {
            start.f[r] = rnd();
        } else {
            double v = (double)(int64_t)(rnd() >> below(64)) / (double)(1 + below(1000));
            memcpy(&start.f[r], &v, 8);
        }
    }
    start.fflags = below(2) ? FFLAG_NX : (uint8_t)below(32);
    start.frm = below(2) ? RM_RNE : (uint8_t)below(5);
    for (unsigned r = 4; r < 8; r++) /* data pointers, near page ends */
        start.x[r] = RAM_BASE + (DATA_PAGE + below(7)) * 4096ull + 4096 - 12 + below(24);
    if (below(4) == 0)
        start.x[4 + below(4)] = 0x40000000ull + below(4096); /* no RAM or device: faults */
    start.f[0] = rnd();
}

static void run_engine(bool jit)
{
    icache_invalidate(&icache);
    struct jit *j = h.jit;
    h = start;
    h.jit = j;
    hart_tlb_flush(&h);
    hart_update_ctx(&h);
    jit_flush(&h);
    for (unsigned i = 0; i < 1000 && !h.wfi; i++)
        jit ? jit_run(&h, 1000) : hart_run(&h, 1000);
}

static bool quiet; /* the mistranslation check expects differences */

static bool compare(const struct hart *a, const struct hart *b, const uint8_t *ram_a, unsigned seqno)
{
    bool same = true;
    unsigned r = 0;
#define FIELD(f)                                                                           \
    if (a->f != b->f) {                                                                    \
        if (!quiet)                                                                        \
            fprintf(stderr, "seq %u: %s [%u]: interp %#llx jit %#llx\n", seqno, #f, r,          \
                (unsigned long long)a->f, (unsigned long long)b->f);                       \
        same = false;                                                                      \
    }
    for (r = 0; r < 32; r++) {
        FIELD(x[r]);
        FIELD(f[r]);
    }
    r = 0;
    FIELD(pc); FIELD(priv); FIELD(instret); FIELD(mstatus); FIELD(mcause); FIELD(mepc);
    FIELD(mtval); FIELD(mscratch); FIELD(sscratch); FIELD(fflags); FIELD(wfi); FIELD(reserved);
#undef FIELD
    if (memcmp(ram_a, mem, sizeof ram_start) != 0) {
        for (unsigned i = 0; i < sizeof ram_start; i++)
            if (ram_a[i] != mem[i]) {
                if (!quiet)
                    fprintf(stderr, "seq %u: RAM differs at %#llx: interp %02x jit %02x\n", seqno,
                        (unsigned long long)(RAM_BASE + i), ram_a[i], mem[i]);
                break;
            }
        same = false;
    }
    return same;
}

static void dump(void)
{
    for (unsigned i = 0; i < nseq; i++)
        fprintf(stderr, "  %#llx: %0*x\n", (unsigned long long)seq[i].addr,
                seq[i].len == 2 ? 4 : 8, seq[i].bits);
}

/* Runs `count` sequences; returns how many differed. */
static long only = -1; /* debugging: run just this sequence */
static unsigned skipped;

/* True when the run wrote into the code pages other than the intended
 * patches of gen_smc (a random store through a register that happened to
 * hold a code address). Without FENCE.I the ISA lets each engine see such
 * a write or not, so the sequence proves nothing either way. */
static bool stray_code_write(const uint8_t *before, const uint8_t *after)
{
    for (unsigned i = CODE_PAGE * 4096; i < HANDLER_PAGE * 4096 + 4096; i++) {
        if (before[i] == after[i])
            continue;
        bool intended = false;
        for (unsigned k = 0; k < nseq && !intended; k++)
            if (seq[k].fix == FIX_SMC_STORE)
                intended = i - (seq[seq[k].target].addr - RAM_BASE) < 4;
        if (!intended)
            return true;
    }
    return false;
}

static unsigned run_sequences(uint64_t seed, unsigned count, bool verbose)
{
    unsigned differ = 0;
    rng = seed * 0x9E3779B97F4A7C15ull + 1;
    for (unsigned s = 0; s < count; s++) {
        for (unsigned i = 0; i < sizeof ram_start; i += 8) {
            uint64_t v = rnd();
            memcpy(mem + i, &v, 8);
        }
        uint32_t wfi = 0x10500073;
        memcpy(mem + HANDLER_PAGE * 4096, &wfi, 4);
        sv39 = below(2);
        uint64_t entry = generate(8 + below(MAX_INSNS - 8));
        set_start_state(entry);
        memcpy(ram_start, mem, sizeof ram_start);
        if (only >= 0 && s != (unsigned long)only)
            continue;

        run_engine(false);
        struct hart interp = h;
        memcpy(ram_interp, mem, sizeof ram_interp);
        if (stray_code_write(ram_start, ram_interp)) {
            skipped++;
            continue;
        }
        memcpy(mem, ram_start, sizeof ram_start);
        run_engine(true);
        if (!compare(&interp, &h, ram_interp, s)) {
            if (verbose && differ < 3)
                dump();
            differ++;
        }
    }
    return differ;
}

int main(int argc, char **argv)
{
    uint64_t seed = argc > 1 ? strtoull(argv[1], NULL, 0) : 1;
    unsigned count = argc > 2 ? (unsigned)strtoul(argv[2], NULL, 0) : 3000;
    if (argc > 3)
        only = strtol(argv[3], NULL, 0);
    struct error err;
    if (ram_init(&bus.ram, RAM_BASE, RAM_PAGES * 4096, &err) < 0) {
        fprintf(stderr, "ram_init: %s\n", err.msg);
        return 1;
    }
    mem = ram_host(&bus.ram, RAM_BASE);
    int failures = 0;

    unsigned differ = run_sequences(seed, count, true);
    printf("jit_diff: seed %llu: %u sequences, %u differ, %u skipped (stray code writes)\n",
           (unsigned long long)seed, count, differ, skipped);
    if (differ)
        failures++;

    /* The tester must catch a wrong translation (XORI's immediate off by
     * one bit). */
    jit_test_mistranslate = 1;
    quiet = true;
    unsigned caught = run_sequences(seed + 1, 200, false);
    jit_test_mistranslate = 0;
    printf("jit_diff: deliberate mistranslation: %u of 200 sequences differ\n", caught);
    if (caught == 0) {
        fprintf(stderr, "the deliberately wrong translation was not caught\n");
        failures++;
    }
    jit_free(&h);
    icache_free(&icache);
    ram_destroy(&bus.ram);
    printf("%s\n", failures ? "FAIL" : "ok");
    return failures ? 1 : 0;
}
