/* F/D extension: every rounding mode (RMM included) on the hard cases,
 * flags, NaN boxing and canonical NaNs, min/max and compare corner cases,
 * the float-to-integer saturation table, fclass, FP loads/stores, mstatus.FS
 * handling and illegal encodings; plus a randomized cross-check of the
 * hardware path (RNE/RTZ/RDN/RUP) against the exact software path that also
 * implements RMM. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cpu/fpu_internal.h"
#include "cpu/hart.h"
#include "mem/bus.h"

#include "check.h"

/* ---- encoding ---- */

enum {
    OP_LOAD_FP = 0x07, OP_STORE_FP = 0x27, OP_FMADD = 0x43, OP_FMSUB = 0x47,
    OP_FNMSUB = 0x4b, OP_FNMADD = 0x4f, OP_FP = 0x53,
};
/* funct7 for fmt S; OR 1 for D */
enum {
    F_ADD = 0x00, F_SUB = 0x04, F_MUL = 0x08, F_DIV = 0x0c, F_SQRT = 0x2c,
    F_SGNJ = 0x10, F_MINMAX = 0x14, F_CVT_FF = 0x20, F_CMP = 0x50,
    F_CVT_IF = 0x60, F_CVT_FI = 0x68, F_MVX = 0x70, F_MVF = 0x78,
};
enum { RNE = 0, RTZ = 1, RDN = 2, RUP = 3, RMM = 4, DYN = 7 };
enum { NX = 0x01, UF = 0x02, OF = 0x04, DZ = 0x08, NV = 0x10 };

static uint32_t r_type(unsigned f7, unsigned rs2, unsigned rs1, unsigned f3, unsigned rd,
                       unsigned opc)
{
    return f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | opc;
}

static uint32_t r4_type(unsigned opc, unsigned fmt, unsigned rs3, unsigned rs2, unsigned rs1,
                        unsigned rm, unsigned rd)
{
    return rs3 << 27 | fmt << 25 | rs2 << 20 | rs1 << 15 | rm << 12 | rd << 7 | opc;
}

static uint32_t i_type(int imm, unsigned rs1, unsigned f3, unsigned rd, unsigned opc)
{
    return ((uint32_t)imm & 0xfff) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | opc;
}

static uint32_t s_type(int imm, unsigned rs2, unsigned rs1, unsigned f3, unsigned opc)
{
    uint32_t u = (uint32_t)imm & 0xfff;
    return (u >> 5) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (u & 31) << 7 | opc;
}

/* ---- values ---- */

static uint64_t D(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }
static uint32_t S(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static uint64_t box(uint32_t s) { return 0xffffffff00000000ull | s; }

#define CANON_S 0x7fc00000u
#define CANON_D 0x7ff8000000000000ull
#define QNAN_D  0x7ff8000000000123ull  /* quiet, with payload */
#define SNAN_D  0x7ff0000000000001ull
#define QNAN_S  0x7fc00123u
#define SNAN_S  0x7f800001u
#define INF_D   0x7ff0000000000000ull
#define NINF_D  0xfff0000000000000ull
#define INF_S   0x7f800000u
#define NINF_S  0xff800000u
#define DMAX    0x7fefffffffffffffull
#define SMAX    0x7f7fffffu

/* ---- hart ---- */

static struct hart h;

static void set_fs(unsigned v) { h.mstatus = (h.mstatus & ~(3ull << 13)) | (uint64_t)v << 13; }
static unsigned fs(void) { return (h.mstatus >> 13) & 3; }

/* A hart in M-mode with FS = Initial, traps going to 0x1000. */
static void reset_bus(struct bus *bus)
{
    hart_init(&h, 0, NULL, bus);
    set_fs(1);
    h.priv = PRIV_M;
    h.mtvec = 0x1000;
    h.pc = 0x2000;
}

static void reset(void) { reset_bus(NULL); }

/* Runs an instruction with rd = f3/x3, rs1 = 1, rs2 = 2, rs3 = 4 already set.
 * Returns the written register value (f or x per `xdest`) and the flags;
 * a trap gives result ~0 and flags 0xff. */
static void exec(uint32_t insn, bool xdest, uint64_t *res, unsigned *fl)
{
    h.fflags = 0;
    h.f[3] = 0x5555;
    h.x[3] = 0x5555;
    if (!fpu_exec(&h, insn)) {
        *res = ~0ull;
        *fl = 0xff;
        return;
    }
    *res = xdest ? h.x[3] : h.f[3];
    *fl = h.fflags;
}

static void op2(unsigned f7, unsigned rs2field, unsigned rm, uint64_t a, uint64_t b,
                bool xdest, uint64_t *res, unsigned *fl)
{
    h.f[1] = a;
    h.f[2] = b;
    exec(r_type(f7, rs2field, 1, rm, 3, OP_FP), xdest, res, fl);
}

/* Binary op with register rs2 = f2. */
#define BIN(f7, rm, a, b, want, wfl)                                                   \
    do {                                                                               \
        uint64_t r_;                                                                   \
        unsigned fl_;                                                                  \
        op2((f7), 2, (rm), (a), (b), false, &r_, &fl_);                                \
        CHECK_EQ(r_, (want));                                                          \
        CHECK_EQ(fl_, (wfl));                                                          \
    } while (0)
#define BIN_D(f7, rm, a, b, want, wfl) BIN((f7) | 1, rm, a, b, want, wfl)
#define BIN_S(f7, rm, a, b, want, wfl) BIN(f7, rm, box(a), box(b), box(want), wfl)

/* Unary op where the rs2 field selects a variant; destination f or x. */
#define UN(f7, rs2f, rm, a, xdest, want, wfl)                                          \
    do {                                                                               \
        uint64_t r_;                                                                   \
        unsigned fl_;                                                                  \
        op2((f7), (rs2f), (rm), (a), 0, (xdest), &r_, &fl_);                           \
        CHECK_EQ(r_, (want));                                                          \
        CHECK_EQ(fl_, (wfl));                                                          \
    } while (0)

static void fma_run(unsigned opc, bool dbl, unsigned rm, uint64_t a, uint64_t b, uint64_t c,
                    uint64_t *res, unsigned *fl)
{
    h.f[1] = a;
    h.f[2] = b;
    h.f[4] = c;
    exec(r4_type(opc, dbl, 4, 2, 1, rm, 3), false, res, fl);
}

#define FMA_D(opc, rm, a, b, c, want, wfl)                                             \
    do {                                                                               \
        uint64_t r_;                                                                   \
        unsigned fl_;                                                                  \
        fma_run((opc), true, (rm), (a), (b), (c), &r_, &fl_);                          \
        CHECK_EQ(r_, (want));                                                          \
        CHECK_EQ(fl_, (wfl));                                                          \
    } while (0)
#define FMA_S(opc, rm, a, b, c, want, wfl)                                             \
    do {                                                                               \
        uint64_t r_;                                                                   \
        unsigned fl_;                                                                  \
        fma_run((opc), false, (rm), box(a), box(b), box(c), &r_, &fl_);                \
        CHECK_EQ(r_, box(want));                                                       \
        CHECK_EQ(fl_, (wfl));                                                          \
    } while (0)

/* ---- rounding ---- */

static void test_add_rounding(void)
{
    reset();
    /* 1 + 2^-53: exact tie, even neighbour below. */
    uint64_t one = D(1.0), up = D(1.0 + 0x1p-52);
    BIN_D(F_ADD, RNE, one, D(0x1p-53), one, NX);
    BIN_D(F_ADD, RTZ, one, D(0x1p-53), one, NX);
    BIN_D(F_ADD, RDN, one, D(0x1p-53), one, NX);
    BIN_D(F_ADD, RUP, one, D(0x1p-53), up, NX);
    BIN_D(F_ADD, RMM, one, D(0x1p-53), up, NX);
    /* Negative tie. */
    BIN_D(F_ADD, RNE, D(-1.0), D(-0x1p-53), D(-1.0), NX);
    BIN_D(F_ADD, RTZ, D(-1.0), D(-0x1p-53), D(-1.0), NX);
    BIN_D(F_ADD, RDN, D(-1.0), D(-0x1p-53), D(-1.0 - 0x1p-52), NX);
    BIN_D(F_ADD, RUP, D(-1.0), D(-0x1p-53), D(-1.0), NX);
    BIN_D(F_ADD, RMM, D(-1.0), D(-0x1p-53), D(-1.0 - 0x1p-52), NX);
    /* Tie with odd neighbour below: RNE and RMM both go up. */
    BIN_D(F_ADD, RNE, up, D(0x1p-53), D(1.0 + 0x1p-51), NX);
    BIN_D(F_ADD, RMM, up, D(0x1p-53), D(1.0 + 0x1p-51), NX);
    /* Below and above the tie. */
    BIN_D(F_ADD, RMM, one, D(0x1p-54), one, NX);
    BIN_D(F_ADD, RMM, one, D(0x1.8p-53), up, NX);
    BIN_D(F_ADD, RNE, one, D(0x1.8p-53), up, NX);
    BIN_D(F_ADD, RTZ, one, D(0x1.8p-53), one, NX);
    /* Subtraction and exact results. */
    BIN_D(F_SUB, RMM, D(3.0), D(1.0), D(2.0), 0);
    BIN_D(F_SUB, RMM, one, D(0x1p-53), D(1.0 - 0x1p-53), 0);
    BIN_D(F_SUB, RMM, one, D(0x1p-54), one, NX);
    BIN_D(F_SUB, RTZ, one, D(0x1p-54), D(1.0 - 0x1p-53), NX);
    /* x - x: +0, except -0 in RDN. */
    BIN_D(F_SUB, RNE, D(1.5), D(1.5), D(0.0), 0);
    BIN_D(F_SUB, RMM, D(1.5), D(1.5), D(0.0), 0);
    BIN_D(F_SUB, RDN, D(1.5), D(1.5), D(-0.0), 0);
    BIN_D(F_ADD, RDN, D(0.0), D(-0.0), D(-0.0), 0);
    BIN_D(F_ADD, RMM, D(0.0), D(-0.0), D(0.0), 0);
    BIN_D(F_ADD, RMM, D(-0.0), D(-0.0), D(-0.0), 0);

    /* Single: 1 + 2^-24. */
    BIN_S(F_ADD, RNE, S(1.0f), S(0x1p-24f), S(1.0f), NX);
    BIN_S(F_ADD, RTZ, S(1.0f), S(0x1p-24f), S(1.0f), NX);
    BIN_S(F_ADD, RDN, S(1.0f), S(0x1p-24f), S(1.0f), NX);
    BIN_S(F_ADD, RUP, S(1.0f), S(0x1p-24f), S(1.0f + 0x1p-23f), NX);
    BIN_S(F_ADD, RMM, S(1.0f), S(0x1p-24f), S(1.0f + 0x1p-23f), NX);
    BIN_S(F_SUB, RMM, S(-1.0f), S(0x1p-24f), S(-1.0f - 0x1p-23f), NX);
    BIN_S(F_SUB, RDN, S(2.0f), S(2.0f), S(-0.0f), 0);
    BIN_S(F_ADD, RMM, S(1.0f), S(2.0f), S(3.0f), 0);

    /* Dynamic rounding mode comes from frm. */
    h.frm = RMM;
    BIN_D(F_ADD, DYN, one, D(0x1p-53), up, NX);
    h.frm = RUP;
    BIN_S(F_ADD, DYN, S(1.0f), S(0x1p-24f), S(1.0f + 0x1p-23f), NX);
    h.frm = RNE;
    BIN_D(F_ADD, DYN, one, D(0x1p-53), one, NX);
}

static void test_mul_rounding(void)
{
    reset();
    /* (1+2^-26)(1+2^-27) = 1 + 2^-26 + 2^-27 + 2^-53: tie, even below. */
    uint64_t a = D(1.0 + 0x1p-26), b = D(1.0 + 0x1p-27);
    uint64_t lo = D(1.0 + 0x1p-26 + 0x1p-27), hi = D(1.0 + 0x1p-26 + 0x1p-27 + 0x1p-52);
    BIN_D(F_MUL, RNE, a, b, lo, NX);
    BIN_D(F_MUL, RTZ, a, b, lo, NX);
    BIN_D(F_MUL, RDN, a, b, lo, NX);
    BIN_D(F_MUL, RUP, a, b, hi, NX);
    BIN_D(F_MUL, RMM, a, b, hi, NX);
    BIN_D(F_MUL, RMM, a ^ (1ull << 63), b, hi ^ (1ull << 63), NX);
    BIN_D(F_MUL, RDN, a ^ (1ull << 63), b, hi ^ (1ull << 63), NX);
    BIN_D(F_MUL, RMM, D(3.0), D(-0.5), D(-1.5), 0);
    /* Single: (1+2^-12)^2 = 1 + 2^-11 + 2^-24: tie. */
    uint32_t sa = S(1.0f + 0x1p-12f);
    BIN_S(F_MUL, RNE, sa, sa, S(1.0f + 0x1p-11f), NX);
    BIN_S(F_MUL, RTZ, sa, sa, S(1.0f + 0x1p-11f), NX);
    BIN_S(F_MUL, RUP, sa, sa, S(1.0f + 0x1p-11f + 0x1p-23f), NX);
    BIN_S(F_MUL, RMM, sa, sa, S(1.0f + 0x1p-11f + 0x1p-23f), NX);

    /* Overflow per mode. */
    BIN_D(F_MUL, RNE, DMAX, D(2.0), INF_D, OF | NX);
    BIN_D(F_MUL, RMM, DMAX, D(2.0), INF_D, OF | NX);
    BIN_D(F_MUL, RTZ, DMAX, D(2.0), DMAX, OF | NX);
    BIN_D(F_MUL, RDN, DMAX, D(2.0), DMAX, OF | NX);
    BIN_D(F_MUL, RUP, DMAX, D(2.0), INF_D, OF | NX);
    BIN_D(F_MUL, RDN, DMAX, D(-2.0), NINF_D, OF | NX);
    BIN_D(F_MUL, RUP, DMAX, D(-2.0), DMAX | (1ull << 63), OF | NX);
    BIN_D(F_MUL, RMM, DMAX, D(-2.0), NINF_D, OF | NX);
    BIN_S(F_MUL, RMM, SMAX, S(2.0f), INF_S, OF | NX);
    BIN_S(F_MUL, RTZ, SMAX, S(-2.0f), SMAX | 0x80000000u, OF | NX);

    /* Underflow: exact tiny results raise nothing; inexact ones UF|NX. */
    BIN_D(F_MUL, RNE, D(0x1p-1022), D(0.5), D(0x1p-1023), 0);
    BIN_D(F_MUL, RMM, D(0x1p-1022), D(0.5), D(0x1p-1023), 0);
    BIN_D(F_MUL, RNE, D(0x1p-1074), D(0.5), D(0.0), UF | NX);
    BIN_D(F_MUL, RMM, D(0x1p-1074), D(0.5), D(0x1p-1074), UF | NX);
    BIN_D(F_MUL, RUP, D(0x1p-1074), D(0.5), D(0x1p-1074), UF | NX);
    BIN_D(F_MUL, RMM, D(0x1p-1074), D(0.25), D(0.0), UF | NX);
    BIN_D(F_MUL, RMM, D(-0x1p-1074), D(0.75), D(-0x1p-1074), UF | NX);
    BIN_D(F_MUL, RMM, D(0x1p-1074), D(1.5), D(0x1p-1073), UF | NX);
    BIN_D(F_MUL, RNE, D(0x1p-1074), D(1.5), D(0x1p-1073), UF | NX);
    BIN_S(F_MUL, RMM, S(0x1p-149f), S(0.5f), S(0x1p-149f), UF | NX);
    BIN_S(F_MUL, RNE, S(0x1p-149f), S(0.5f), S(0.0f), UF | NX);
    BIN_S(F_MUL, RDN, S(-0x1p-149f), S(0.5f), S(-0x1p-149f), UF | NX);
}

static void test_div_sqrt_rounding(void)
{
    reset();
    /* 1/3 (below the midpoint) in double, above it in single. */
    for (unsigned rm = 0; rm <= 4; rm++) {
        uint64_t want = rm == RUP ? 0x3fd5555555555556ull : 0x3fd5555555555555ull;
        BIN_D(F_DIV, rm, D(1.0), D(3.0), want, NX);
        uint32_t ws = (rm == RNE || rm == RUP || rm == RMM) ? 0x3eaaaaabu : 0x3eaaaaaau;
        BIN_S(F_DIV, rm, S(1.0f), S(3.0f), ws, NX);
        /* -1/3: RDN goes away from zero. */
        want = rm == RDN ? 0xbfd5555555555556ull : 0xbfd5555555555555ull;
        BIN_D(F_DIV, rm, D(-1.0), D(3.0), want, NX);
    }
    /* Division ties only exist among subnormals: 2^-1074 / 2. */
    BIN_D(F_DIV, RNE, D(0x1p-1074), D(2.0), D(0.0), UF | NX);
    BIN_D(F_DIV, RMM, D(0x1p-1074), D(2.0), D(0x1p-1074), UF | NX);
    BIN_D(F_DIV, RTZ, D(0x1p-1074), D(2.0), D(0.0), UF | NX);
    BIN_D(F_DIV, RUP, D(0x1p-1074), D(2.0), D(0x1p-1074), UF | NX);
    BIN_D(F_DIV, RMM, D(0x1.8p-1073), D(2.0), D(0x1p-1073), UF | NX); /* 1.5 units */
    BIN_D(F_DIV, RMM, D(0x1p-1073), D(-4.0), D(-0x1p-1074), UF | NX);
    BIN_S(F_DIV, RMM, S(0x1p-149f), S(2.0f), S(0x1p-149f), UF | NX);
    BIN_S(F_DIV, RNE, S(0x1p-149f), S(2.0f), S(0.0f), UF | NX);
    BIN_D(F_DIV, RMM, D(6.0), D(4.0), D(1.5), 0);
    /* Divide by zero and invalid. */
    BIN_D(F_DIV, RNE, D(1.0), D(0.0), INF_D, DZ);
    BIN_D(F_DIV, RMM, D(-1.0), D(0.0), NINF_D, DZ);
    BIN_D(F_DIV, RMM, D(1.0), D(-0.0), NINF_D, DZ);
    BIN_S(F_DIV, RTZ, S(1.0f), S(-0.0f), NINF_S, DZ);
    BIN_D(F_DIV, RNE, D(0.0), D(0.0), CANON_D, NV);
    BIN_D(F_DIV, RMM, D(0.0), D(0.0), CANON_D, NV);
    BIN_S(F_DIV, RMM, INF_S, NINF_S, CANON_S, NV);
    BIN_D(F_DIV, RMM, INF_D, D(0.0), INF_D, 0);
    BIN_D(F_DIV, RMM, D(-1.0), INF_D, D(-0.0), 0);

    /* sqrt(2) (true value lies below the double, above the single). */
    for (unsigned rm = 0; rm <= 4; rm++) {
        uint64_t want = (rm == RTZ || rm == RDN) ? 0x3ff6a09e667f3bccull : 0x3ff6a09e667f3bcdull;
        UN(F_SQRT | 1, 0, rm, D(2.0), false, want, NX);
        uint32_t ws = rm == RUP ? 0x3fb504f4u : 0x3fb504f3u;
        UN(F_SQRT, 0, rm, box(S(2.0f)), false, box(ws), NX);
    }
    UN(F_SQRT | 1, 0, RMM, D(2.25), false, D(1.5), 0);
    UN(F_SQRT | 1, 0, RMM, D(0x1p-1074), false, D(0x1p-537), 0);
    UN(F_SQRT | 1, 0, RMM, D(0x1p-1073), false, D(0x1.6a09e667f3bcdp-537), NX);
    UN(F_SQRT | 1, 0, RNE, D(-0.0), false, D(-0.0), 0);
    UN(F_SQRT | 1, 0, RMM, D(-0.0), false, D(-0.0), 0);
    UN(F_SQRT | 1, 0, RNE, D(-1.0), false, CANON_D, NV);
    UN(F_SQRT | 1, 0, RMM, D(-1.0), false, CANON_D, NV);
    UN(F_SQRT | 1, 0, RMM, NINF_D, false, CANON_D, NV);
    UN(F_SQRT | 1, 0, RMM, INF_D, false, INF_D, 0);
    UN(F_SQRT, 0, RNE, box(S(-4.0f)), false, box(CANON_S), NV);
    UN(F_SQRT, 0, RMM, box(S(-4.0f)), false, box(CANON_S), NV);
    UN(F_SQRT, 0, RMM, box(S(16.0f)), false, box(S(4.0f)), 0);
}

static void test_fma(void)
{
    reset();
    /* fma(1, 1, 2^-53): a tie. */
    for (unsigned rm = 0; rm <= 4; rm++) {
        uint64_t want = (rm == RUP || rm == RMM) ? D(1.0 + 0x1p-52) : D(1.0);
        FMA_D(OP_FMADD, rm, D(1.0), D(1.0), D(0x1p-53), want, NX);
        uint32_t ws = (rm == RUP || rm == RMM) ? S(1.0f + 0x1p-23f) : S(1.0f);
        FMA_S(OP_FMADD, rm, S(1.0f), S(1.0f), S(0x1p-24f), ws, NX);
    }
    /* (1+2^-52)^2 - 1 = 2^-51 + 2^-104: a tie only a fused op sees. */
    uint64_t e = D(1.0 + 0x1p-52);
    FMA_D(OP_FMADD, RNE, e, e, D(-1.0), D(0x1p-51), NX);
    FMA_D(OP_FMADD, RTZ, e, e, D(-1.0), D(0x1p-51), NX);
    FMA_D(OP_FMADD, RUP, e, e, D(-1.0), D(0x1p-51 + 0x1p-103), NX);
    FMA_D(OP_FMADD, RMM, e, e, D(-1.0), D(0x1p-51 + 0x1p-103), NX);
    FMA_D(OP_FMSUB, RMM, e, e, D(1.0), D(0x1p-51 + 0x1p-103), NX);
    FMA_D(OP_FNMADD, RMM, e, e, D(-1.0), D(-0x1p-51 - 0x1p-103), NX);
    FMA_D(OP_FNMADD, RDN, e, e, D(-1.0), D(-0x1p-51 - 0x1p-103), NX);
    FMA_D(OP_FNMADD, RUP, e, e, D(-1.0), D(-0x1p-51), NX);
    /* Single: (1+2^-23)^2 - 1 = 2^-22 + 2^-46: tie. */
    uint32_t es = S(1.0f + 0x1p-23f);
    FMA_S(OP_FMADD, RNE, es, es, S(-1.0f), S(0x1p-22f), NX);
    FMA_S(OP_FMADD, RMM, es, es, S(-1.0f), S(0x1p-22f + 0x1p-45f), NX);
    FMA_S(OP_FNMSUB, RMM, es, es, S(1.0f), S(-0x1p-22f - 0x1p-45f), NX);

    /* Variants: fmadd = a*b+c, fmsub = a*b-c, fnmsub = -a*b+c, fnmadd = -a*b-c. */
    FMA_D(OP_FMADD, RNE, D(2.0), D(3.0), D(1.0), D(7.0), 0);
    FMA_D(OP_FMSUB, RNE, D(2.0), D(3.0), D(1.0), D(5.0), 0);
    FMA_D(OP_FNMSUB, RNE, D(2.0), D(3.0), D(1.0), D(-5.0), 0);
    FMA_D(OP_FNMADD, RNE, D(2.0), D(3.0), D(1.0), D(-7.0), 0);
    FMA_S(OP_FMADD, RMM, S(2.0f), S(3.0f), S(1.0f), S(7.0f), 0);
    FMA_S(OP_FMSUB, RMM, S(2.0f), S(3.0f), S(1.0f), S(5.0f), 0);
    FMA_S(OP_FNMSUB, RMM, S(2.0f), S(3.0f), S(1.0f), S(-5.0f), 0);
    FMA_S(OP_FNMADD, RMM, S(2.0f), S(3.0f), S(1.0f), S(-7.0f), 0);
    /* Signs of zero: fnmadd(1, 0, 0) = -(1*0) - 0 = -0; fmsub(1,0,0) = +0
     * (RDN: -0). */
    for (unsigned rm = 0; rm <= 4; rm++) {
        FMA_D(OP_FNMADD, rm, D(1.0), D(0.0), D(0.0), D(-0.0), 0);
        FMA_D(OP_FMSUB, rm, D(1.0), D(0.0), D(0.0), rm == RDN ? D(-0.0) : D(0.0), 0);
        FMA_S(OP_FMSUB, rm, S(1.0f), S(0.0f), S(0.0f), rm == RDN ? S(-0.0f) : S(0.0f), 0);
    }
    /* inf*0 + qNaN is invalid in RISC-V; inf*0 and inf-inf too. */
    for (unsigned rm = 0; rm <= 4; rm += 4) {
        FMA_D(OP_FMADD, rm, INF_D, D(0.0), QNAN_D, CANON_D, NV);
        FMA_D(OP_FMADD, rm, D(-0.0), INF_D, QNAN_D, CANON_D, NV);
        FMA_S(OP_FMADD, rm, INF_S, S(0.0f), QNAN_S, CANON_S, NV);
        FMA_D(OP_FMADD, rm, INF_D, D(0.0), D(1.0), CANON_D, NV);
        FMA_D(OP_FMADD, rm, INF_D, D(1.0), NINF_D, CANON_D, NV);
        FMA_D(OP_FMSUB, rm, INF_D, D(1.0), INF_D, CANON_D, NV);
        FMA_D(OP_FMADD, rm, QNAN_D, D(1.0), D(1.0), CANON_D, 0);
        FMA_D(OP_FMADD, rm, D(1.0), D(1.0), SNAN_D, CANON_D, NV);
        FMA_S(OP_FMADD, rm, S(1.0f), SNAN_S, S(1.0f), CANON_S, NV);
        FMA_D(OP_FMADD, rm, INF_D, D(2.0), D(1.0), INF_D, 0);
        FMA_D(OP_FMADD, rm, D(2.0), D(2.0), NINF_D, NINF_D, 0);
    }
    /* Tininess is detected after rounding: 2^-1022 - 2^-1076 rounds (RNE)
     * to 2^-1022 at unbounded exponent, so no UF; RTZ stays tiny. */
    FMA_D(OP_FMADD, RNE, D(-0x1p-54), D(0x1p-1022), D(0x1p-1022), D(0x1p-1022), NX);
    FMA_D(OP_FMADD, RMM, D(-0x1p-54), D(0x1p-1022), D(0x1p-1022), D(0x1p-1022), NX);
    FMA_D(OP_FMADD, RTZ, D(-0x1p-54), D(0x1p-1022), D(0x1p-1022), 0x000fffffffffffffull, UF | NX);
    FMA_S(OP_FMADD, RNE, S(-0x1p-25f), S(0x1p-126f), S(0x1p-126f), S(0x1p-126f), NX);
    FMA_S(OP_FMADD, RMM, S(-0x1p-25f), S(0x1p-126f), S(0x1p-126f), S(0x1p-126f), NX);
    FMA_S(OP_FMADD, RDN, S(-0x1p-25f), S(0x1p-126f), S(0x1p-126f), 0x007fffffu, UF | NX);
    /* ... while 2^-1022 - 2^-1075 is exact at unbounded exponent (so tiny),
     * yet as a subnormal it is a tie that RNE rounds up to 2^-1022: UF|NX
     * although the result is normal. */
    FMA_D(OP_FMADD, RNE, D(-0x1p-53), D(0x1p-1022), D(0x1p-1022), D(0x1p-1022), UF | NX);
}

/* ---- NaNs ---- */

static void test_nan(void)
{
    reset();
    /* Canonical NaN results, NV only for signalling inputs. */
    BIN_D(F_ADD, RNE, QNAN_D, D(1.0), CANON_D, 0);
    BIN_D(F_ADD, RNE, D(1.0), QNAN_D | (1ull << 63), CANON_D, 0);
    BIN_D(F_MUL, RNE, SNAN_D, D(1.0), CANON_D, NV);
    BIN_D(F_MUL, RMM, SNAN_D, D(1.0), CANON_D, NV);
    BIN_D(F_SUB, RMM, QNAN_D, D(1.0), CANON_D, 0);
    BIN_D(F_ADD, RNE, INF_D, NINF_D, CANON_D, NV);
    BIN_D(F_SUB, RMM, INF_D, INF_D, CANON_D, NV);
    BIN_D(F_MUL, RNE, INF_D, D(0.0), CANON_D, NV);
    BIN_D(F_MUL, RMM, D(-0.0), INF_D, CANON_D, NV);
    BIN_S(F_ADD, RNE, QNAN_S, S(1.0f), CANON_S, 0);
    BIN_S(F_ADD, RNE, S(1.0f), SNAN_S, CANON_S, NV);
    BIN_S(F_DIV, RMM, SNAN_S, S(1.0f), CANON_S, NV);
    BIN_S(F_ADD, RDN, INF_S, NINF_S, CANON_S, NV);
    BIN_D(F_ADD, RUP, INF_D, D(1.0), INF_D, 0);

    /* NaN boxing: an operand not NaN-boxed reads as the canonical NaN. */
    BIN(F_ADD, RNE, S(1.0f), box(S(1.0f)), box(CANON_S), 0);
    BIN(F_ADD, RNE, 0xfffffffe3f800000ull, box(S(1.0f)), box(CANON_S), 0);
    BIN(F_ADD, RNE, box(S(1.0f)), box(S(2.0f)), box(S(3.0f)), 0);
    BIN(F_MUL, RMM, 0x000000003f800000ull, box(S(1.0f)), box(CANON_S), 0);
    /* Single results are boxed; double results of single inputs are not. */
    BIN(F_ADD | 1, RNE, box(S(1.0f)), D(1.0), CANON_D, 0); /* boxed single is a NaN double */
    /* sign injection of an unboxed operand injects into the canonical NaN */
    BIN(F_SGNJ, 0, S(1.0f), box(S(-1.0f)), box(0xffc00000u), 0);
    BIN(F_SGNJ, 2, box(S(1.0f)), S(1.0f), box(S(1.0f)), 0); /* x ^ canon sign(0) */

    /* FCVT between formats. */
    UN(F_CVT_FF | 1, 0, RNE, box(SNAN_S), false, CANON_D, NV);
    UN(F_CVT_FF | 1, 0, RNE, box(QNAN_S), false, CANON_D, 0);
    UN(F_CVT_FF | 1, 0, RMM, box(S(0.1f)), false, D((double)0.1f), 0);
    UN(F_CVT_FF | 1, 0, RNE, box(S(0x1p-149f)), false, D(0x1p-149), 0);
    UN(F_CVT_FF | 1, 0, RNE, S(1.0f), false, CANON_D, 0); /* unboxed */
    UN(F_CVT_FF, 1, RNE, SNAN_D, false, box(CANON_S), NV);
    UN(F_CVT_FF, 1, RMM, QNAN_D, false, box(CANON_S), 0);
    UN(F_CVT_FF, 1, RMM, SNAN_D, false, box(CANON_S), NV);
    UN(F_CVT_FF, 1, RNE, D(1.0 + 0x1p-24), false, box(S(1.0f)), NX);
    UN(F_CVT_FF, 1, RMM, D(1.0 + 0x1p-24), false, box(S(1.0f + 0x1p-23f)), NX);
    UN(F_CVT_FF, 1, RUP, D(1.0 + 0x1p-52), false, box(S(1.0f + 0x1p-23f)), NX);
    UN(F_CVT_FF, 1, RMM, D(-1.0 - 0x1p-24), false, box(S(-1.0f - 0x1p-23f)), NX);
    UN(F_CVT_FF, 1, RNE, DMAX, false, box(INF_S), OF | NX);
    UN(F_CVT_FF, 1, RMM, DMAX, false, box(INF_S), OF | NX);
    UN(F_CVT_FF, 1, RTZ, DMAX, false, box(SMAX), OF | NX);
    UN(F_CVT_FF, 1, RMM, D(0x1p-150), false, box(S(0x1p-149f)), UF | NX);
    UN(F_CVT_FF, 1, RNE, D(0x1p-150), false, box(0), UF | NX);
    UN(F_CVT_FF, 1, RNE, D(0x1p-149), false, box(S(0x1p-149f)), 0);
    UN(F_CVT_FF, 1, RMM, NINF_D, false, box(NINF_S), 0);
    UN(F_CVT_FF, 1, RMM, D(-0.0), false, box(0x80000000u), 0);
}

static void test_sgnj_minmax(void)
{
    reset();
    /* Sign injection keeps NaN payloads and raises nothing. */
    BIN_D(F_SGNJ, 0, SNAN_D, D(-1.0), SNAN_D | (1ull << 63), 0);
    BIN_D(F_SGNJ, 1, SNAN_D, D(-1.0), SNAN_D, 0);
    BIN_D(F_SGNJ, 2, D(-2.0), D(-1.0), D(2.0), 0);
    BIN_D(F_SGNJ, 2, D(-2.0), D(1.0), D(-2.0), 0);
    BIN_D(F_SGNJ, 1, D(3.0), D(3.0), D(-3.0), 0);
    BIN_S(F_SGNJ, 0, S(3.0f), S(-0.0f), S(-3.0f), 0);
    BIN_S(F_SGNJ, 1, S(-3.0f), S(-0.0f), S(3.0f), 0);
    BIN_S(F_SGNJ, 2, S(-3.0f), S(-1.0f), S(3.0f), 0);
    BIN_S(F_SGNJ, 0, SNAN_S, S(-1.0f), SNAN_S | 0x80000000u, 0);

    /* FMIN (funct3 0) / FMAX (funct3 1). */
    BIN_D(F_MINMAX, 0, D(-0.0), D(0.0), D(-0.0), 0);
    BIN_D(F_MINMAX, 0, D(0.0), D(-0.0), D(-0.0), 0);
    BIN_D(F_MINMAX, 1, D(-0.0), D(0.0), D(0.0), 0);
    BIN_D(F_MINMAX, 1, D(0.0), D(-0.0), D(0.0), 0);
    BIN_D(F_MINMAX, 0, D(1.0), D(2.0), D(1.0), 0);
    BIN_D(F_MINMAX, 0, D(2.0), D(1.0), D(1.0), 0);
    BIN_D(F_MINMAX, 1, D(1.0), D(2.0), D(2.0), 0);
    BIN_D(F_MINMAX, 1, D(-1.0), D(-2.0), D(-1.0), 0);
    BIN_D(F_MINMAX, 0, NINF_D, D(1.0), NINF_D, 0);
    BIN_D(F_MINMAX, 1, NINF_D, INF_D, INF_D, 0);
    BIN_D(F_MINMAX, 0, QNAN_D, D(1.0), D(1.0), 0);
    BIN_D(F_MINMAX, 1, D(1.0), QNAN_D, D(1.0), 0);
    BIN_D(F_MINMAX, 0, SNAN_D, D(1.0), D(1.0), NV);
    BIN_D(F_MINMAX, 1, D(-3.0), SNAN_D, D(-3.0), NV);
    BIN_D(F_MINMAX, 0, QNAN_D, QNAN_D, CANON_D, 0);
    BIN_D(F_MINMAX, 1, SNAN_D, QNAN_D, CANON_D, NV);
    BIN_S(F_MINMAX, 0, S(-0.0f), S(0.0f), S(-0.0f), 0);
    BIN_S(F_MINMAX, 1, S(-0.0f), S(0.0f), S(0.0f), 0);
    BIN_S(F_MINMAX, 1, S(0.0f), S(-0.0f), S(0.0f), 0);
    BIN_S(F_MINMAX, 0, S(5.0f), S(-7.0f), S(-7.0f), 0);
    BIN_S(F_MINMAX, 1, S(5.0f), S(-7.0f), S(5.0f), 0);
    BIN_S(F_MINMAX, 0, QNAN_S, S(2.0f), S(2.0f), 0);
    BIN_S(F_MINMAX, 1, SNAN_S, S(2.0f), S(2.0f), NV);
    BIN_S(F_MINMAX, 0, SNAN_S, SNAN_S, CANON_S, NV);
    BIN(F_MINMAX, 1, S(9.0f), box(S(2.0f)), box(S(2.0f)), 0); /* unboxed = qNaN */
    BIN(F_MINMAX, 0, S(9.0f), S(1.0f), box(CANON_S), 0);
    /* Subnormals compare correctly. */
    BIN_D(F_MINMAX, 0, D(0x1p-1074), D(0x1p-1073), D(0x1p-1074), 0);
    BIN_S(F_MINMAX, 1, S(0x1p-149f), S(0x1p-148f), S(0x1p-148f), 0);
}

static void test_compare(void)
{
    reset();
    /* funct3: 2 = FEQ, 1 = FLT, 0 = FLE; results in x3. */
#define CMP(f7, f3, a, b, want, wfl)                                                   \
    do {                                                                               \
        uint64_t r_;                                                                   \
        unsigned fl_;                                                                  \
        op2((f7), 2, (f3), (a), (b), true, &r_, &fl_);                                 \
        CHECK_EQ(r_, (want));                                                          \
        CHECK_EQ(fl_, (wfl));                                                          \
    } while (0)
    for (int dbl = 0; dbl <= 1; dbl++) {
        unsigned f7 = F_CMP | (unsigned)dbl;
        uint64_t qn = dbl ? QNAN_D : box(QNAN_S), sn = dbl ? SNAN_D : box(SNAN_S);
        uint64_t one = dbl ? D(1.0) : box(S(1.0f)), two = dbl ? D(2.0) : box(S(2.0f));
        uint64_t pz = dbl ? D(0.0) : box(S(0.0f)), nz = dbl ? D(-0.0) : box(S(-0.0f));
        CMP(f7, 2, qn, one, 0, 0);
        CMP(f7, 2, one, qn, 0, 0);
        CMP(f7, 2, sn, one, 0, NV);
        CMP(f7, 2, one, sn, 0, NV);
        CMP(f7, 1, qn, one, 0, NV);
        CMP(f7, 1, one, qn, 0, NV);
        CMP(f7, 0, qn, one, 0, NV);
        CMP(f7, 0, sn, sn, 0, NV);
        CMP(f7, 2, qn, qn, 0, 0);
        CMP(f7, 2, one, one, 1, 0);
        CMP(f7, 2, nz, pz, 1, 0);
        CMP(f7, 1, nz, pz, 0, 0);
        CMP(f7, 0, nz, pz, 1, 0);
        CMP(f7, 1, one, two, 1, 0);
        CMP(f7, 1, two, one, 0, 0);
        CMP(f7, 1, one, one, 0, 0);
        CMP(f7, 0, one, one, 1, 0);
        CMP(f7, 0, two, one, 0, 0);
        CMP(f7, 0, one, two, 1, 0);
        CMP(f7, 2, one, two, 0, 0);
    }
    /* Unboxed single operands are (quiet) NaNs. */
    CMP(F_CMP, 2, S(1.0f), box(S(1.0f)), 0, 0);
    CMP(F_CMP, 0, S(1.0f), box(S(1.0f)), 0, NV);
    /* rd = x0 is never written, but flags still accrue. */
    h.f[1] = D(1.0);
    h.f[2] = QNAN_D;
    h.fflags = 0;
    CHECK(fpu_exec(&h, r_type(F_CMP | 1, 2, 1, 1, 0, OP_FP)));
    CHECK_EQ(h.x[0], 0);
    CHECK_EQ(h.fflags, NV);
    h.f[2] = D(1.0);
    CHECK(fpu_exec(&h, r_type(F_CMP | 1, 2, 1, 2, 0, OP_FP)));
    CHECK_EQ(h.x[0], 0);
    /* Flags accrue (OR) into fflags. */
    h.fflags = NX;
    h.f[2] = SNAN_D;
    CHECK(fpu_exec(&h, r_type(F_CMP | 1, 2, 1, 2, 5, OP_FP)));
    CHECK_EQ(h.fflags, NX | NV);
#undef CMP
}

/* ---- conversions ---- */

/* FCVT.int.fmt: rs2 selects W (0), WU (1), L (2), LU (3). */
#define CVT_D2I(kind, rm, a, want, wfl) UN(F_CVT_IF | 1, kind, rm, a, true, want, wfl)
#define CVT_S2I(kind, rm, a, want, wfl) UN(F_CVT_IF, kind, rm, box(a), true, want, wfl)

static void test_cvt_to_int(void)
{
    reset();
    enum { W = 0, WU = 1, L = 2, LU = 3 };
    const uint64_t maxw = 0x7fffffff, minw = 0xffffffff80000000ull;
    const uint64_t maxwu = ~0ull; /* 0xffffffff sign-extended */
    const uint64_t maxl = 0x7fffffffffffffffull, minl = 0x8000000000000000ull;
    const uint64_t maxlu = ~0ull;
    for (int dbl = 0; dbl <= 1; dbl++) {
        uint64_t qn = dbl ? QNAN_D : box(QNAN_S), sn = dbl ? SNAN_D : box(SNAN_S);
        uint64_t pinf = dbl ? INF_D : box(INF_S), ninf = dbl ? NINF_D : box(NINF_S);
        uint64_t nqn = dbl ? (QNAN_D | (1ull << 63)) : box(QNAN_S | 0x80000000u);
        unsigned f7 = F_CVT_IF | (unsigned)dbl;
        for (unsigned rm = 0; rm <= 4; rm++) {
            UN(f7, W, rm, qn, true, maxw, NV);
            UN(f7, W, rm, nqn, true, maxw, NV);
            UN(f7, W, rm, sn, true, maxw, NV);
            UN(f7, W, rm, pinf, true, maxw, NV);
            UN(f7, W, rm, ninf, true, minw, NV);
            UN(f7, WU, rm, qn, true, maxwu, NV);
            UN(f7, WU, rm, pinf, true, maxwu, NV);
            UN(f7, WU, rm, ninf, true, 0, NV);
            UN(f7, L, rm, nqn, true, maxl, NV);
            UN(f7, L, rm, pinf, true, maxl, NV);
            UN(f7, L, rm, ninf, true, minl, NV);
            UN(f7, LU, rm, sn, true, maxlu, NV);
            UN(f7, LU, rm, pinf, true, maxlu, NV);
            UN(f7, LU, rm, ninf, true, 0, NV);
        }
    }
    /* Out of range, double. */
    CVT_D2I(W, RNE, D(2147483648.0), maxw, NV);
    CVT_D2I(W, RNE, D(2147483647.0), maxw, 0);
    CVT_D2I(W, RTZ, D(2147483647.5), maxw, NX);
    CVT_D2I(W, RNE, D(2147483647.5), maxw, NV); /* rounds to 2^31 */
    CVT_D2I(W, RNE, D(-2147483648.0), minw, 0);
    CVT_D2I(W, RTZ, D(-2147483648.9), minw, NX);
    CVT_D2I(W, RDN, D(-2147483648.1), minw, NV);
    CVT_D2I(W, RNE, D(-2147483649.0), minw, NV);
    CVT_D2I(W, RNE, D(1e300), maxw, NV);
    CVT_D2I(W, RNE, D(-1e300), minw, NV);
    CVT_D2I(WU, RNE, D(4294967295.0), 0xffffffffffffffffull, 0);
    CVT_D2I(WU, RNE, D(4294967296.0), maxwu, NV);
    CVT_D2I(WU, RNE, D(3e9), 0xffffffffb2d05e00ull, 0); /* sign-extended */
    CVT_D2I(WU, RNE, D(-1e300), 0, NV);
    CVT_D2I(WU, RTZ, D(-0.9), 0, NX);
    CVT_D2I(WU, RNE, D(-0.9), 0, NV); /* rounds to -1 */
    CVT_D2I(WU, RNE, D(-0.5), 0, NX); /* rounds to -0 */
    CVT_D2I(WU, RMM, D(-0.5), 0, NV); /* rounds to -1 */
    CVT_D2I(WU, RUP, D(-0.9), 0, NX);
    CVT_D2I(WU, RDN, D(-0.1), 0, NV);
    CVT_D2I(WU, RNE, D(-1.0), 0, NV);
    CVT_D2I(WU, RTZ, D(-1.0), 0, NV);
    CVT_D2I(WU, RNE, D(-0.0), 0, 0);
    CVT_D2I(L, RNE, D(0x1p63), maxl, NV);
    CVT_D2I(L, RNE, D(-0x1p63), minl, 0);
    CVT_D2I(L, RNE, D(-0x1p64), minl, NV);
    CVT_D2I(L, RNE, D(0x1.fffffffffffffp62), 0x7ffffffffffffc00ull, 0);
    CVT_D2I(LU, RNE, D(0x1p64), maxlu, NV);
    CVT_D2I(LU, RNE, D(0x1.fffffffffffffp63), 0xfffffffffffff800ull, 0);
    CVT_D2I(LU, RNE, D(0x1p63), 0x8000000000000000ull, 0);
    CVT_D2I(LU, RTZ, D(-0.9), 0, NX);
    CVT_D2I(LU, RNE, D(-1.0), 0, NV);
    CVT_D2I(LU, RNE, D(-0x1p70), 0, NV);
    /* Out of range, single. */
    CVT_S2I(W, RNE, S(0x1p31f), maxw, NV);
    CVT_S2I(W, RNE, S(-0x1p31f), minw, 0);
    CVT_S2I(W, RNE, S(-1.0f), ~0ull, 0); /* sign-extended */
    CVT_S2I(WU, RNE, S(0x1p32f), maxwu, NV);
    CVT_S2I(WU, RNE, S(0x1.fffffep31f), 0xffffffffffffff00ull, 0);
    CVT_S2I(WU, RTZ, S(-0.9f), 0, NX);
    CVT_S2I(WU, RNE, S(-1.0f), 0, NV);
    CVT_S2I(L, RNE, S(0x1p63f), maxl, NV);
    CVT_S2I(L, RNE, S(-0x1p63f), minl, 0);
    CVT_S2I(LU, RNE, S(0x1p64f), maxlu, NV);
    CVT_S2I(LU, RNE, S(0x1.fffffep63f), 0xffffff0000000000ull, 0);
    CVT_S2I(LU, RNE, S(-3.0f), 0, NV);
    /* Rounding modes on halfway and other values. */
    static const struct { double v; int64_t r[5]; } tab[] = {
        /*            RNE  RTZ  RDN  RUP  RMM */
        { 2.5,      {  2,   2,   2,   3,   3 } },
        { -2.5,     { -2,  -2,  -3,  -2,  -3 } },
        { 1.5,      {  2,   1,   1,   2,   2 } },
        { -1.5,     { -2,  -1,  -2,  -1,  -2 } },
        { 0.5,      {  0,   0,   0,   1,   1 } },
        { -0.5,     {  0,   0,  -1,   0,  -1 } },
        { 2.4,      {  2,   2,   2,   3,   2 } },
        { -2.6,     { -3,  -2,  -3,  -2,  -3 } },
        { 0x1p-1074,{  0,   0,   0,   1,   0 } },
        { -0x1p-1074,{ 0,   0,  -1,   0,   0 } },
        { 7.0,      {  7,   7,   7,   7,   7 } },
    };
    for (size_t i = 0; i < sizeof tab / sizeof tab[0]; i++) {
        for (unsigned rm = 0; rm <= 4; rm++) {
            unsigned nx = tab[i].v == (double)(int64_t)tab[i].v ? 0 : NX;
            CVT_D2I(W, rm, D(tab[i].v), (uint64_t)tab[i].r[rm], nx);
            CVT_D2I(L, rm, D(tab[i].v), (uint64_t)tab[i].r[rm], nx);
            if ((double)(float)tab[i].v == tab[i].v)
                CVT_S2I(W, rm, S((float)tab[i].v), (uint64_t)tab[i].r[rm], nx);
            if (tab[i].r[rm] >= 0 && tab[i].v > -1.0) {
                CVT_D2I(WU, rm, D(tab[i].v), (uint64_t)tab[i].r[rm], nx);
                CVT_D2I(LU, rm, D(tab[i].v), (uint64_t)tab[i].r[rm], nx);
            }
        }
    }
    /* frm supplies the dynamic mode. */
    h.frm = RMM;
    CVT_D2I(W, DYN, D(2.5), 3, NX);
    h.frm = RDN;
    CVT_S2I(W, DYN, S(-2.25f), (uint64_t)-3, NX);
    /* Large exact values. */
    CVT_D2I(L, RNE, D(-9007199254740993.0), (uint64_t)-9007199254740992ll, 0);
    CVT_D2I(L, RNE, D(123456789012.0), 123456789012ull, 0);
    /* Writes to x0 are dropped (flags still accrue). */
    h.f[1] = D(-1.0);
    h.fflags = 0;
    CHECK(fpu_exec(&h, r_type(F_CVT_IF | 1, 1, 1, RNE, 0, OP_FP)));
    CHECK_EQ(h.x[0], 0);
    CHECK_EQ(h.fflags, NV);
}

static void test_cvt_from_int(void)
{
    reset();
    enum { W = 0, WU = 1, L = 2, LU = 3 };
#define I2F(dbl, kind, rm, ival, want, wfl)                                               \
    do {                                                                               \
        uint64_t r_;                                                                   \
        unsigned fl_;                                                                  \
        h.x[1] = (ival);                                                               \
        exec(r_type(F_CVT_FI | (dbl), (kind), 1, (rm), 3, OP_FP), false, &r_, &fl_);   \
        CHECK_EQ(r_, (want));                                                          \
        CHECK_EQ(fl_, (wfl));                                                          \
    } while (0)
    /* 2^24 + 1 to single: a tie. */
    for (unsigned rm = 0; rm <= 4; rm++) {
        bool upw = rm == RUP || rm == RMM;
        I2F(0, L, rm, 16777217, box(upw ? 0x4b800001u : 0x4b800000u), NX);
        I2F(0, W, rm, 16777217, box(upw ? 0x4b800001u : 0x4b800000u), NX);
        I2F(0, WU, rm, 16777217, box(upw ? 0x4b800001u : 0x4b800000u), NX);
        I2F(0, LU, rm, 16777217, box(upw ? 0x4b800001u : 0x4b800000u), NX);
        /* -(2^24 + 1): RDN and RMM go away from zero. */
        bool dnw = rm == RDN || rm == RMM;
        I2F(0, W, rm, (uint64_t)-16777217ll, box(dnw ? 0xcb800001u : 0xcb800000u), NX);
        I2F(0, L, rm, (uint64_t)-16777217ll, box(dnw ? 0xcb800001u : 0xcb800000u), NX);
        /* 2^53 + 1 to double. */
        I2F(1, L, rm, (1ull << 53) + 1, upw ? 0x4340000000000001ull : 0x4340000000000000ull, NX);
        I2F(1, LU, rm, (1ull << 53) + 1, upw ? 0x4340000000000001ull : 0x4340000000000000ull, NX);
        /* 2^53 + 3: above the tie with an odd neighbour: RNE goes up too. */
        I2F(1, L, rm, (1ull << 53) + 3,
            (rm == RTZ || rm == RDN) ? 0x4340000000000001ull : 0x4340000000000002ull, NX);
        /* UINT64_MAX. */
        I2F(1, LU, rm, ~0ull, (rm == RTZ || rm == RDN) ? 0x43efffffffffffffull : 0x43f0000000000000ull, NX);
        I2F(0, LU, rm, ~0ull, box((rm == RTZ || rm == RDN) ? 0x5f7fffffu : 0x5f800000u), NX);
        I2F(0, WU, rm, ~0ull, box((rm == RTZ || rm == RDN) ? 0x4f7fffffu : 0x4f800000u), NX);
        /* Exact conversions. */
        I2F(1, W, rm, 0xffffffffull, D(-1.0), 0);           /* low 32 bits, signed */
        I2F(1, WU, rm, ~0ull, D(4294967295.0), 0);          /* low 32 bits, unsigned */
        I2F(1, L, rm, 0x8000000000000000ull, D(-0x1p63), 0);
        I2F(1, LU, rm, 0x8000000000000000ull, D(0x1p63), 0);
        I2F(0, W, rm, 0x80000000ull, box(S(-0x1p31f)), 0);
        I2F(0, L, rm, 0, box(0), 0);
        I2F(1, LU, rm, 0, 0, 0);
        I2F(1, L, rm, (uint64_t)-3ll, D(-3.0), 0);
    }
    I2F(0, L, RMM, 0xbfffffc000000000ull, box(0xde800001u), NX); /* -(2^62 + 2^38): tie */
    I2F(0, L, RNE, 0xbfffffc000000000ull, box(0xde800000u), NX);
    I2F(0, L, RDN, 0xbfffffc000000000ull, box(0xde800001u), NX);
    I2F(0, LU, RMM, 0x8000008000000000ull, box(0x5f000001u), NX);
    I2F(0, LU, RNE, 0x8000008000000000ull, box(0x5f000000u), NX);
#undef I2F
}

static void test_fclass_moves(void)
{
    reset();
    static const struct { uint64_t d; uint32_t s; unsigned bit; } cls[] = {
        { NINF_D, NINF_S, 0 },
        { 0xbff0000000000000ull, 0xbf800000u, 1 },
        { 0x800fffffffffffffull, 0x807fffffu, 2 },
        { 0x8000000000000001ull, 0x80000001u, 2 },
        { 0x8000000000000000ull, 0x80000000u, 3 },
        { 0, 0, 4 },
        { 0x0000000000000001ull, 0x00000001u, 5 },
        { 0x0010000000000000ull, 0x00800000u, 6 },
        { DMAX, SMAX, 6 },
        { INF_D, INF_S, 7 },
        { SNAN_D, SNAN_S, 8 },
        { 0xfff7ffffffffffffull, 0xffbfffffu, 8 },
        { CANON_D, CANON_S, 9 },
        { 0xfff8000000000000ull, 0xffc00000u, 9 },
    };
    for (size_t i = 0; i < sizeof cls / sizeof cls[0]; i++) {
        UN(F_MVX | 1, 0, 1, cls[i].d, true, 1ull << cls[i].bit, 0);
        UN(F_MVX, 0, 1, box(cls[i].s), true, 1ull << cls[i].bit, 0);
    }
    UN(F_MVX, 0, 1, 0x3f800000ull, true, 1u << 9, 0); /* unboxed: canonical NaN */
    UN(F_MVX, 0, 1, 0xffffffff00000000ull, true, 1u << 4, 0);

    /* FMV.X.W sign-extends the low 32 bits, boxed or not. */
    UN(F_MVX, 0, 0, box(0x80000000u), true, 0xffffffff80000000ull, 0);
    UN(F_MVX, 0, 0, 0x123456787fc00001ull, true, 0x7fc00001ull, 0);
    UN(F_MVX | 1, 0, 0, SNAN_D, true, SNAN_D, 0);
    /* FMV.W.X boxes; FMV.D.X copies. */
    h.x[1] = 0xdeadbeefcafef00dull;
    uint64_t r;
    unsigned fl;
    exec(r_type(F_MVF, 0, 1, 0, 3, OP_FP), false, &r, &fl);
    CHECK_EQ(r, 0xffffffffcafef00dull);
    exec(r_type(F_MVF | 1, 0, 1, 0, 3, OP_FP), false, &r, &fl);
    CHECK_EQ(r, 0xdeadbeefcafef00dull);
    CHECK_EQ(fl, 0);
    /* x0 stays zero. */
    h.f[1] = D(1.0);
    CHECK(fpu_exec(&h, r_type(F_MVX | 1, 0, 1, 0, 0, OP_FP)));
    CHECK(fpu_exec(&h, r_type(F_MVX | 1, 0, 1, 1, 0, OP_FP)));
    CHECK_EQ(h.x[0], 0);
}

/* ---- FS, illegal encodings, memory ---- */

static void expect_illegal(uint32_t insn, int line)
{
    uint64_t f3 = h.f[3], x3 = h.x[3];
    uint8_t ff = h.fflags;
    uint64_t ms = h.mstatus;
    h.pc = 0x2000;
    h.mcause = 0;
    h.mtval = 0;
    bool ok = fpu_exec(&h, insn);
    checks++;
    if (ok || h.mcause != CAUSE_ILLEGAL_INSN || h.mtval != insn || h.pc != h.mtvec ||
        h.f[3] != f3 || h.x[3] != x3 || h.fflags != ff ||
        (h.mstatus & MSTATUS_FS) != (ms & MSTATUS_FS)) {
        failures++;
        fprintf(stderr, "%s:%d: insn %#x not an illegal-instruction trap (ok=%d cause=%llu)\n",
                __FILE__, line, insn, ok, (unsigned long long)h.mcause);
    }
}
#define ILLEGAL(insn) expect_illegal((insn), __LINE__)

static void test_fs_and_illegal(void)
{
    reset();
    h.f[1] = D(1.0);
    h.f[2] = D(2.0);
    h.f[3] = 7;
    h.x[3] = 7;
    uint32_t fadd = r_type(F_ADD | 1, 2, 1, RNE, 3, OP_FP);

    /* FS = Off: everything traps. */
    set_fs(0);
    ILLEGAL(fadd);
    ILLEGAL(r_type(F_MVF | 1, 0, 1, 0, 3, OP_FP));
    ILLEGAL(r_type(F_MVX | 1, 0, 1, 0, 3, OP_FP));
    ILLEGAL(r4_type(OP_FMADD, 1, 2, 2, 1, RNE, 3));
    ILLEGAL(i_type(0, 1, 3, 3, OP_LOAD_FP));
    ILLEGAL(s_type(0, 1, 1, 3, OP_STORE_FP));
    CHECK_EQ(h.mstatus & MSTATUS_FS, 0);

    /* FS Initial -> Dirty after writing an f register. */
    set_fs(1);
    CHECK(fpu_exec(&h, fadd));
    CHECK_EQ(h.f[3], D(3.0));
    CHECK_EQ(fs(), 3);
    /* Clean -> Dirty for FMV.D.X, sign injection. */
    set_fs(2);
    CHECK(fpu_exec(&h, r_type(F_MVF | 1, 0, 1, 0, 4, OP_FP)));
    CHECK_EQ(fs(), 3);
    set_fs(2);
    CHECK(fpu_exec(&h, r_type(F_SGNJ | 1, 2, 1, 0, 4, OP_FP)));
    CHECK_EQ(fs(), 3);
    /* Only integer results and no flags: FS unchanged. */
    set_fs(2);
    CHECK(fpu_exec(&h, r_type(F_MVX | 1, 0, 1, 0, 5, OP_FP)));
    CHECK(fpu_exec(&h, r_type(F_MVX | 1, 0, 1, 1, 5, OP_FP)));
    CHECK(fpu_exec(&h, r_type(F_CMP | 1, 2, 1, 2, 5, OP_FP)));
    CHECK(fpu_exec(&h, r_type(F_CVT_IF | 1, 0, 1, RNE, 5, OP_FP)));
    CHECK_EQ(fs(), 2);
    /* ... but setting a flag dirties it. */
    h.f[1] = D(1.5);
    CHECK(fpu_exec(&h, r_type(F_CVT_IF | 1, 0, 1, RNE, 5, OP_FP)));
    CHECK_EQ(h.fflags & NX, NX);
    CHECK_EQ(fs(), 3);
    set_fs(2);
    h.f[2] = QNAN_D;
    CHECK(fpu_exec(&h, r_type(F_CMP | 1, 2, 1, 1, 5, OP_FP)));
    CHECK_EQ(fs(), 3);

    /* Reserved rounding modes. */
    set_fs(1);
    h.f[1] = D(1.0);
    h.f[2] = D(2.0);
    h.f[3] = 7;
    h.fflags = 0;
    ILLEGAL(r_type(F_ADD | 1, 2, 1, 5, 3, OP_FP));
    ILLEGAL(r_type(F_MUL, 2, 1, 6, 3, OP_FP));
    ILLEGAL(r4_type(OP_FMADD, 1, 2, 2, 1, 5, 3));
    ILLEGAL(r_type(F_CVT_IF | 1, 0, 1, 6, 3, OP_FP));
    ILLEGAL(r_type(F_CVT_FI | 1, 0, 1, 5, 3, OP_FP));
    ILLEGAL(r_type(F_CVT_FF, 1, 1, 5, 3, OP_FP));
    for (unsigned frm = 5; frm <= 7; frm++) {
        h.frm = (uint8_t)frm;
        ILLEGAL(r_type(F_ADD | 1, 2, 1, DYN, 3, OP_FP));
        ILLEGAL(r_type(F_SQRT, 0, 1, DYN, 3, OP_FP));
        ILLEGAL(r4_type(OP_FNMADD, 0, 2, 2, 1, DYN, 3));
        ILLEGAL(r_type(F_CVT_IF, 0, 1, DYN, 3, OP_FP));
        /* Instructions without a rounding mode ignore frm. */
        CHECK(fpu_exec(&h, r_type(F_MINMAX | 1, 2, 1, 0, 4, OP_FP)));
    }
    h.frm = RMM;
    CHECK(fpu_exec(&h, r_type(F_ADD | 1, 2, 1, DYN, 4, OP_FP)));
    CHECK_EQ(h.f[4], D(3.0));
    h.frm = 0;
    /* Other reserved encodings. */
    ILLEGAL(r_type(F_ADD | 2, 2, 1, RNE, 3, OP_FP));        /* fmt H */
    ILLEGAL(r_type(F_ADD | 3, 2, 1, RNE, 3, OP_FP));        /* fmt Q */
    ILLEGAL(r4_type(OP_FMADD, 2, 2, 2, 1, RNE, 3));
    ILLEGAL(r4_type(OP_FMSUB, 3, 2, 2, 1, RNE, 3));
    ILLEGAL(r_type(F_SQRT | 1, 1, 1, RNE, 3, OP_FP));       /* rs2 != 0 */
    ILLEGAL(r_type(F_SGNJ, 2, 1, 3, 3, OP_FP));
    ILLEGAL(r_type(F_MINMAX | 1, 2, 1, 2, 3, OP_FP));
    ILLEGAL(r_type(F_CMP, 2, 1, 3, 3, OP_FP));
    ILLEGAL(r_type(F_CVT_FF, 0, 1, RNE, 3, OP_FP));         /* FCVT.S.S */
    ILLEGAL(r_type(F_CVT_FF | 1, 1, 1, RNE, 3, OP_FP));     /* FCVT.D.D */
    ILLEGAL(r_type(F_CVT_FF, 2, 1, RNE, 3, OP_FP));         /* FCVT.S.H */
    ILLEGAL(r_type(F_CVT_IF, 4, 1, RNE, 3, OP_FP));
    ILLEGAL(r_type(F_CVT_FI | 1, 5, 1, RNE, 3, OP_FP));
    ILLEGAL(r_type(F_MVX, 0, 1, 2, 3, OP_FP));
    ILLEGAL(r_type(F_MVX, 1, 1, 0, 3, OP_FP));
    ILLEGAL(r_type(F_MVF, 0, 1, 1, 3, OP_FP));
    ILLEGAL(r_type(F_MVF | 1, 1, 1, 0, 3, OP_FP));
    ILLEGAL(r_type(0x7c, 0, 1, 0, 3, OP_FP));
    ILLEGAL(r_type(0x24, 0, 1, 0, 3, OP_FP));
    ILLEGAL(i_type(0, 1, 1, 3, OP_LOAD_FP));                 /* FLH */
    ILLEGAL(i_type(0, 1, 4, 3, OP_LOAD_FP));                 /* FLQ */
    ILLEGAL(s_type(0, 1, 1, 0, OP_STORE_FP));
    ILLEGAL(s_type(0, 1, 1, 4, OP_STORE_FP));
    ILLEGAL(0x0000000b);                                     /* not an FP opcode */
}

static void test_memory(void)
{
    static struct bus bus;
    struct error err;
    const uint64_t base = 0x80000000ull;
    memset(&bus, 0, sizeof bus);
    if (ram_init(&bus.ram, base, 4 * RAM_PAGE_SIZE, &err) < 0) {
        fprintf(stderr, "ram_init: %s\n", err.msg);
        failures++;
        return;
    }
    reset_bus(&bus);
    uint8_t *mem = ram_host(&bus.ram, base);
    const uint64_t w = 0x3fc00000u, dv = 0x400921fb54442d18ull;
    memcpy(mem + 0x100, &w, 4);
    memcpy(mem + 0x108, &dv, 8);
    h.x[5] = base + 0x110;

    /* FLW f3, -16(x5): boxed. */
    CHECK(fpu_exec(&h, i_type(-16, 5, 2, 3, OP_LOAD_FP)));
    CHECK_EQ(h.f[3], box(0x3fc00000u));
    CHECK_EQ(fs(), 3);
    /* FLD f4, -8(x5) */
    CHECK(fpu_exec(&h, i_type(-8, 5, 3, 4, OP_LOAD_FP)));
    CHECK_EQ(h.f[4], dv);
    /* FSW stores the low 32 bits even when not boxed; FS unchanged. */
    set_fs(2);
    h.f[6] = 0x1122334455667788ull;
    CHECK(fpu_exec(&h, s_type(0x20, 6, 5, 2, OP_STORE_FP)));
    uint64_t got = 0;
    memcpy(&got, mem + 0x130, 8);
    CHECK_EQ(got, 0x55667788ull);
    CHECK_EQ(fs(), 2);
    /* FSD with a negative offset. */
    CHECK(fpu_exec(&h, s_type(-0x10, 4, 5, 3, OP_STORE_FP)));
    memcpy(&got, mem + 0x100, 8);
    CHECK_EQ(got, dv);
    /* A faulting load stops without touching state. */
    h.x[7] = 0x1000;
    h.f[8] = 0x77;
    set_fs(2);
    h.pc = 0x2000;
    CHECK(!fpu_exec(&h, i_type(0, 7, 3, 8, OP_LOAD_FP)));
    CHECK_EQ(h.f[8], 0x77);
    CHECK_EQ(fs(), 2);
    CHECK(h.pc != 0x2000);
    CHECK(!fpu_exec(&h, i_type(4, 7, 2, 8, OP_LOAD_FP)));
    CHECK_EQ(h.f[8], 0x77);
    h.pc = 0x2000;
    CHECK(!fpu_exec(&h, s_type(8, 4, 7, 3, OP_STORE_FP)));
    CHECK(h.pc != 0x2000);
    ram_destroy(&bus.ram);
    h.bus = NULL;
}

/* ---- host state ---- */

static void test_host_mode_restored(void)
{
    reset();
    BIN_D(F_ADD, RUP, D(1.0), D(0x1p-53), D(1.0 + 0x1p-52), NX);
    volatile double one = 1.0, tiny = 0x1p-53;
    CHECK_EQ(D(one + tiny), D(1.0));
    BIN_D(F_SUB, RDN, D(1.0), D(1.0), D(-0.0), 0);
    volatile double m1 = -1.0;
    CHECK_EQ(D(m1 - tiny), D(-1.0));
    BIN_S(F_DIV, RTZ, S(1.0f), S(3.0f), 0x3eaaaaaau, NX);
    volatile float fone = 1.0f, fthree = 3.0f;
    CHECK_EQ(S(fone / fthree), 0x3eaaaaabu);
}

/* ---- randomized cross-check: hardware path vs software path ---- */

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rnd(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return rng_state;
}

/* Random values biased toward edges: extreme exponents, short or saturated
 * significands, specials. */
static uint64_t rnd_float(bool dbl)
{
    int ebits = dbl ? 11 : 8, mbits = dbl ? 52 : 23;
    uint64_t emax = (1ull << ebits) - 1, bias = emax >> 1;
    uint64_t r = rnd();
    uint64_t e, m;
    switch (r & 7) {
    case 0: e = r >> 8 & 3; break;                         /* subnormal/min */
    case 1: e = emax - 1 - (r >> 8 & 3); break;            /* near max */
    case 2: e = (r >> 8 & 1) ? emax : 0; break;            /* inf/NaN/zero/sub */
    case 3: e = bias + (uint64_t)((int)(r >> 8 & 63) - 32); break;
    default: e = rnd() & emax; break;
    }
    switch (r >> 16 & 7) {
    case 0: m = 0; break;
    case 1: m = (1ull << mbits) - 1 - (rnd() & 7); break;
    case 2: m = rnd() & 0xff; break;
    case 3: m = (rnd() & 7) << (mbits - 3); break;
    default: m = rnd() & ((1ull << mbits) - 1); break;
    }
    uint64_t s = r >> 30 & 1;
    return dbl ? s << 63 | e << 52 | m : s << 31 | e << 23 | m;
}

static uint64_t rnd_int(void)
{
    uint64_t r = rnd();
    switch (r & 3) {
    case 0: return rnd() >> (rnd() & 63);
    case 1: return (uint64_t)-(int64_t)(rnd() >> (rnd() & 63));
    case 2: return rnd() & ~((1ull << (rnd() & 63)) - 1); /* trailing zeros */
    default: return rnd();
    }
}

static void test_cross_check(void)
{
    reset();
    long mismatches = 0, runs = 0;
    const int N = 6000;
    for (unsigned op = FPU_OP_ADD; op <= FPU_OP_CVT_LU; op++) {
        for (int dbl = 0; dbl <= 1; dbl++) {
            if (op == FPU_OP_CVT_SD && dbl)
                continue;
            for (unsigned rm = 0; rm <= 3; rm++) {
                for (int i = 0; i < N; i++) {
                    uint64_t a = rnd_float(dbl), b = rnd_float(dbl), c = rnd_float(dbl);
                    uint32_t insn;
                    unsigned want_fl = 0;
                    uint64_t sa = a;
                    if (op >= FPU_OP_CVT_W)
                        sa = rnd_int();
                    else if (op == FPU_OP_CVT_SD)
                        sa = rnd_float(true);
                    /* Alternate the FMA variants; feed the soft path the
                     * equivalent sign-flipped operands. */
                    unsigned fvar = i & 3;
                    uint64_t sm = dbl ? 1ull << 63 : 1ull << 31;
                    uint64_t fa = a, fc = c;
                    if (fvar == 1 || fvar == 3)
                        fc ^= sm;
                    if (fvar == 2 || fvar == 3)
                        fa ^= sm;
                    uint64_t want;
                    if (op == FPU_OP_FMA)
                        want = fpu_soft_op(op, dbl, fa, b, fc, rm, &want_fl);
                    else
                        want = fpu_soft_op(op, dbl, sa, b, c, rm, &want_fl);
                    if (!dbl)
                        want = box((uint32_t)want);
                    h.f[1] = dbl ? a : box((uint32_t)a);
                    h.f[2] = dbl ? b : box((uint32_t)b);
                    h.f[4] = dbl ? c : box((uint32_t)c);
                    switch (op) {
                    case FPU_OP_ADD: insn = r_type(F_ADD | dbl, 2, 1, rm, 3, OP_FP); break;
                    case FPU_OP_SUB: insn = r_type(F_SUB | dbl, 2, 1, rm, 3, OP_FP); break;
                    case FPU_OP_MUL: insn = r_type(F_MUL | dbl, 2, 1, rm, 3, OP_FP); break;
                    case FPU_OP_DIV: insn = r_type(F_DIV | dbl, 2, 1, rm, 3, OP_FP); break;
                    case FPU_OP_SQRT: insn = r_type(F_SQRT | dbl, 0, 1, rm, 3, OP_FP); break;
                    case FPU_OP_FMA: {
                        static const unsigned opc[4] = { OP_FMADD, OP_FMSUB, OP_FNMSUB, OP_FNMADD };
                        insn = r4_type(opc[fvar], dbl, 4, 2, 1, rm, 3);
                        break;
                    }
                    case FPU_OP_CVT_SD:
                        h.f[1] = sa;
                        insn = r_type(F_CVT_FF, 1, 1, rm, 3, OP_FP);
                        break;
                    default:
                        h.x[1] = sa;
                        insn = r_type(F_CVT_FI | dbl, op - FPU_OP_CVT_W, 1, rm, 3, OP_FP);
                        break;
                    }
                    /* With NX already accrued, RNE may take the native
                     * fast path: it must give the same result and flags. */
                    uint8_t pre = (i & 4) ? NX : 0;
                    h.fflags = pre;
                    want_fl |= pre;
                    bool ok = fpu_exec(&h, insn);
                    runs++;
                    if (!ok || h.f[3] != want || h.fflags != want_fl) {
                        if (mismatches++ < 20)
                            fprintf(stderr,
                                    "cross-check op %u dbl %d rm %u: a=%#llx b=%#llx c=%#llx "
                                    "var %u: hw %#llx/%#x soft %#llx/%#x\n",
                                    op, dbl, rm, (unsigned long long)sa,
                                    (unsigned long long)b, (unsigned long long)c, fvar,
                                    (unsigned long long)h.f[3], h.fflags,
                                    (unsigned long long)want, want_fl);
                    }
                }
            }
        }
    }
    checks++;
    if (mismatches) {
        failures++;
        fprintf(stderr, "cross-check: %ld of %ld differ\n", mismatches, runs);
    }
}

int main(void)
{
    test_add_rounding();
    test_mul_rounding();
    test_div_sqrt_rounding();
    test_fma();
    test_nan();
    test_sgnj_minmax();
    test_compare();
    test_cvt_to_int();
    test_cvt_from_int();
    test_fclass_moves();
    test_fs_and_illegal();
    test_memory();
    test_host_mode_restored();
    test_cross_check();
    if (failures) {
        fprintf(stderr, "test_fpu: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("test_fpu: %d checks passed\n", checks);
    return 0;
}
