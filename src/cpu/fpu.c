/* RISC-V F and D extensions (single and double precision).
 *
 * Arithmetic in RNE/RTZ/RDN/RUP runs on the host's IEEE hardware: the host
 * rounding mode is set, the host exception flags are cleared before and read
 * after the one operation, and mapped to fflags. Operands and results pass
 * through volatile objects so the compiler can neither fold the operation nor
 * move it out of the window where the host mode and flags are ours; the host
 * mode is always back to round-to-nearest when we return.
 *
 * RMM (ties to max magnitude) has no host equivalent; it goes through an
 * exact software implementation (integer significands, one rounding step)
 * that supports all five modes, which the unit tests cross-check against
 * the hardware path.
 *
 * Everything that is not a rounded operation (sign injection, min/max,
 * compares, classify, moves, float-to-integer conversions) is done on the
 * bit patterns, without the host FP environment.
 *
 * Fast path: reading and writing the host FP control/status register costs
 * more than the operation itself, so in RNE with NX already accrued (the
 * usual state of a program doing FP work) the operation runs natively with
 * no flag bookkeeping at all. If the result is finite and larger in
 * magnitude than the smallest normal, the operation cannot have raised NV
 * (which always yields NaN here), DZ or OF (infinity), or UF (a result above
 * 2^emin means the exact value was not tiny), and NX is already set, so the
 * flags are complete. Any other result is recomputed on the slow path.
 *
 * Host assumptions: binary32/binary64 floats, tininess detected after
 * rounding (x86 SSE, like RISC-V), and a host FP environment left at its
 * default (round to nearest, no flush-to-zero / denormals-are-zero) by the
 * rest of the process; this file only changes it inside a bracketed
 * operation and restores it before returning. */
#pragma GCC optimize("-frounding-math", "-fsignaling-nans", "-fno-math-errno", "-ffp-contract=off")

#include <math.h>
#include <string.h>

#include "cpu/fpu_internal.h"
#include "cpu/hart.h"

#define CANON_S 0x7fc00000u
#define CANON_D 0x7ff8000000000000ull
#define BOX_S 0xffffffff00000000ull
#define SIGN_S 0x80000000u
#define SIGN_D 0x8000000000000000ull

typedef unsigned __int128 u128;

/* ------------------------------------------------------------------ */
/* Bit-pattern helpers                                                 */

static inline float u2f(uint32_t u) { float f; memcpy(&f, &u, 4); return f; }
static inline uint32_t f2u(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }
static inline double u2d(uint64_t u) { double d; memcpy(&d, &u, 8); return d; }
static inline uint64_t d2u(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }

static inline bool nan_s(uint32_t x) { return (x & 0x7fffffffu) > 0x7f800000u; }
static inline bool snan_s(uint32_t x) { return nan_s(x) && !(x & 0x00400000u); }
static inline bool inf_s(uint32_t x) { return (x & 0x7fffffffu) == 0x7f800000u; }
static inline bool zero_s(uint32_t x) { return (x & 0x7fffffffu) == 0; }
static inline bool nan_d(uint64_t x) { return (x & ~SIGN_D) > 0x7ff0000000000000ull; }
static inline bool snan_d(uint64_t x) { return nan_d(x) && !(x & 0x0008000000000000ull); }
static inline bool inf_d(uint64_t x) { return (x & ~SIGN_D) == 0x7ff0000000000000ull; }
static inline bool zero_d(uint64_t x) { return (x & ~SIGN_D) == 0; }

static inline bool isnan_f(bool dbl, uint64_t x) { return dbl ? nan_d(x) : nan_s((uint32_t)x); }
static inline bool issnan_f(bool dbl, uint64_t x) { return dbl ? snan_d(x) : snan_s((uint32_t)x); }
static inline bool sign_f(bool dbl, uint64_t x) { return dbl ? x >> 63 : (x >> 31) & 1; }
/* Value of a non-NaN operand as a double (exact for binary32). */
static inline double tod(bool dbl, uint64_t x) { return dbl ? u2d(x) : (double)u2f((uint32_t)x); }
static inline uint64_t canon(bool dbl) { return dbl ? CANON_D : CANON_S; }

/* inf * 0 or 0 * inf */
static inline bool inf_times_zero(bool dbl, uint64_t a, uint64_t b)
{
    if (dbl)
        return (inf_d(a) && zero_d(b)) || (zero_d(a) && inf_d(b));
    return (inf_s((uint32_t)a) && zero_s((uint32_t)b)) ||
           (zero_s((uint32_t)a) && inf_s((uint32_t)b));
}

/* ------------------------------------------------------------------ */
/* Host FP environment                                                 */

#if defined(__x86_64__)
/* All exceptions masked, round to nearest, no FTZ/DAZ, flags clear. */
#define MXCSR_BASE 0x1f80u
static const uint32_t mxcsr_rc[4] = {
    [RM_RNE] = 0x0000, [RM_RTZ] = 0x6000, [RM_RDN] = 0x2000, [RM_RUP] = 0x4000,
};

static inline void host_begin(unsigned rm)
{
    uint32_t v = MXCSR_BASE | mxcsr_rc[rm];
    __asm__ volatile("ldmxcsr %0" : : "m"(v) : "memory");
}

static inline unsigned host_end(unsigned rm)
{
    uint32_t v;
    __asm__ volatile("stmxcsr %0" : "=m"(v) : : "memory");
    if (rm != RM_RNE) {
        uint32_t base = MXCSR_BASE;
        __asm__ volatile("ldmxcsr %0" : : "m"(base) : "memory");
    }
    /* IE(0)->NV, ZE(2)->DZ, OE(3)->OF, UE(4)->UF, PE(5)->NX; DE ignored. */
    return ((v & 0x01) << 4) | ((v & 0x04) << 1) | ((v & 0x08) >> 1) |
           ((v & 0x10) >> 3) | ((v & 0x20) >> 5);
}
#else
#include <fenv.h>
static const int fe_rc[4] = {
    [RM_RNE] = FE_TONEAREST, [RM_RTZ] = FE_TOWARDZERO,
    [RM_RDN] = FE_DOWNWARD, [RM_RUP] = FE_UPWARD,
};

static inline void host_begin(unsigned rm)
{
    feclearexcept(FE_ALL_EXCEPT);
    if (rm != RM_RNE)
        fesetround(fe_rc[rm]);
}

static inline unsigned host_end(unsigned rm)
{
    int e = fetestexcept(FE_ALL_EXCEPT);
    if (rm != RM_RNE)
        fesetround(FE_TONEAREST);
    return (e & FE_INVALID ? FFLAG_NV : 0) | (e & FE_DIVBYZERO ? FFLAG_DZ : 0) |
           (e & FE_OVERFLOW ? FFLAG_OF : 0) | (e & FE_UNDERFLOW ? FFLAG_UF : 0) |
           (e & FE_INEXACT ? FFLAG_NX : 0);
}
#endif

/* ------------------------------------------------------------------ */
/* Hardware path (rm 0..3)                                             */

/* Finite, and strictly above the smallest normal in magnitude. */
static inline bool fast_ok_d(uint64_t u)
{
    return (u & ~SIGN_D) - 0x0010000000000001ull < 0x7ff0000000000000ull - 0x0010000000000001ull;
}

static inline bool fast_ok_s(uint32_t u)
{
    return (u & ~SIGN_S) - 0x00800001u < 0x7f800000u - 0x00800001u;
}

/* RNE with NX already set: see the header comment. */
static inline bool fast_arith(unsigned op, bool dbl, uint64_t a, uint64_t b, uint64_t c,
                              uint64_t *res)
{
    if (dbl) {
        double x = u2d(a), y = u2d(b), r;
        switch (op) {
        case FPU_OP_ADD: r = x + y; break;
        case FPU_OP_SUB: r = x - y; break;
        case FPU_OP_MUL: r = x * y; break;
        case FPU_OP_DIV: r = x / y; break;
        case FPU_OP_SQRT: r = __builtin_sqrt(x); break;
        default: r = fma(x, y, u2d(c)); break;
        }
        *res = d2u(r);
        return fast_ok_d(*res);
    }
    float x = u2f((uint32_t)a), y = u2f((uint32_t)b), r;
    switch (op) {
    case FPU_OP_ADD: r = x + y; break;
    case FPU_OP_SUB: r = x - y; break;
    case FPU_OP_MUL: r = x * y; break;
    case FPU_OP_DIV: r = x / y; break;
    case FPU_OP_SQRT: r = __builtin_sqrtf(x); break;
    default: r = fmaf(x, y, u2f((uint32_t)c)); break;
    }
    *res = f2u(r);
    return fast_ok_s((uint32_t)*res);
}

static uint64_t hw_arith_d(unsigned op, uint64_t a, uint64_t b, uint64_t c,
                           unsigned rm, unsigned *fl)
{
    volatile double va = u2d(a), vb = u2d(b), vc = u2d(c);
    volatile double vr;
    double r;
    host_begin(rm);
    switch (op) {
    case FPU_OP_ADD: r = va + vb; break;
    case FPU_OP_SUB: r = va - vb; break;
    case FPU_OP_MUL: r = va * vb; break;
    case FPU_OP_DIV: r = va / vb; break;
    case FPU_OP_SQRT: r = __builtin_sqrt(va); break;
    default: r = fma(va, vb, vc); break;
    }
    vr = r;
    *fl |= host_end(rm);
    uint64_t u = d2u(vr);
    if (nan_d(u)) {
        /* RISC-V requires NV for inf*0 even when the addend is a qNaN. */
        if (op == FPU_OP_FMA && inf_times_zero(true, a, b))
            *fl |= FFLAG_NV;
        u = CANON_D;
    }
    return u;
}

static uint32_t hw_arith_s(unsigned op, uint32_t a, uint32_t b, uint32_t c,
                           unsigned rm, unsigned *fl)
{
    volatile float va = u2f(a), vb = u2f(b), vc = u2f(c);
    volatile float vr;
    float r;
    host_begin(rm);
    switch (op) {
    case FPU_OP_ADD: r = va + vb; break;
    case FPU_OP_SUB: r = va - vb; break;
    case FPU_OP_MUL: r = va * vb; break;
    case FPU_OP_DIV: r = va / vb; break;
    case FPU_OP_SQRT: r = __builtin_sqrtf(va); break;
    default: r = fmaf(va, vb, vc); break;
    }
    vr = r;
    *fl |= host_end(rm);
    uint32_t u = f2u(vr);
    if (nan_s(u)) {
        if (op == FPU_OP_FMA && inf_times_zero(false, a, b))
            *fl |= FFLAG_NV;
        u = CANON_S;
    }
    return u;
}

static uint32_t hw_cvt_s_d(uint64_t a, unsigned rm, unsigned *fl)
{
    volatile double va = u2d(a);
    volatile float vr;
    host_begin(rm);
    vr = (float)va;
    *fl |= host_end(rm);
    uint32_t u = f2u(vr);
    return nan_s(u) ? CANON_S : u;
}

/* Integer (kind: FPU_OP_CVT_W/WU/L/LU) to float. Only signed 64-bit
 * conversions are used (the compiler's unsigned ones may go through
 * sequences that are not correct in every rounding mode, e.g. giving -0 in
 * RDN): an unsigned value with the top bit set is halved keeping a sticky
 * bit, converted (one rounding; 63 bits keep enough to round 24 or 53 bits
 * correctly in every mode) and doubled exactly. */
static uint64_t hw_cvt_from_int(unsigned kind, bool dbl, uint64_t x,
                                unsigned rm, unsigned *fl)
{
    int64_t v;
    bool twice = false;
    switch (kind) {
    case FPU_OP_CVT_W: v = (int32_t)x; break;
    case FPU_OP_CVT_WU: v = (uint32_t)x; break;
    case FPU_OP_CVT_L: v = (int64_t)x; break;
    default:
        if (x >> 63) {
            x = (x >> 1) | (x & 1);
            twice = true;
        }
        v = (int64_t)x;
        break;
    }
    volatile int64_t vi = v;
    uint64_t r;
    if (dbl) {
        volatile double vd;
        host_begin(rm);
        vd = (double)vi;
        *fl |= host_end(rm);
        double d = vd;
        r = d2u(twice ? d + d : d);
    } else {
        volatile float vf;
        host_begin(rm);
        vf = (float)vi;
        *fl |= host_end(rm);
        float f = vf;
        r = f2u(twice ? f + f : f);
    }
    return r;
}

/* ------------------------------------------------------------------ */
/* Software path: exact significands, one rounding                     */

enum { C_ZERO, C_FIN, C_INF, C_QNAN, C_SNAN };

struct unp {
    int cls;
    int sign;
    int exp;      /* finite: value = sig * 2^exp */
    uint64_t sig;
};

static struct unp unpack(bool dbl, uint64_t x)
{
    struct unp u;
    uint64_t mant;
    int be;
    if (dbl) {
        u.sign = x >> 63;
        be = (x >> 52) & 0x7ff;
        mant = x & ((1ull << 52) - 1);
        if (be == 0x7ff) {
            u.cls = !mant ? C_INF : (mant >> 51) ? C_QNAN : C_SNAN;
        } else if (be == 0) {
            u.cls = mant ? C_FIN : C_ZERO;
            u.sig = mant;
            u.exp = -1074;
        } else {
            u.cls = C_FIN;
            u.sig = mant | (1ull << 52);
            u.exp = be - 1075;
        }
    } else {
        u.sign = (x >> 31) & 1;
        be = (x >> 23) & 0xff;
        mant = x & ((1u << 23) - 1);
        if (be == 0xff) {
            u.cls = !mant ? C_INF : (mant >> 22) ? C_QNAN : C_SNAN;
        } else if (be == 0) {
            u.cls = mant ? C_FIN : C_ZERO;
            u.sig = mant;
            u.exp = -149;
        } else {
            u.cls = C_FIN;
            u.sig = mant | (1u << 23);
            u.exp = be - 150;
        }
    }
    return u;
}

static inline int bitlen128(u128 m)
{
    uint64_t hi = (uint64_t)(m >> 64), lo = (uint64_t)m;
    if (hi)
        return 128 - __builtin_clzll(hi);
    return lo ? 64 - __builtin_clzll(lo) : 0;
}

static inline uint64_t pack_inf(bool dbl, int sign)
{
    return dbl ? ((uint64_t)sign << 63) | 0x7ff0000000000000ull
               : ((uint64_t)sign << 31) | 0x7f800000u;
}

static inline uint64_t pack_zero(bool dbl, int sign)
{
    return (uint64_t)sign << (dbl ? 63 : 31);
}

/* Whether rounding a magnitude toward +inf by one unit is required.
 * cmp: discarded part compared with half a unit (-1, 0, +1); lsb: last kept
 * bit; inexact: anything discarded. */
static inline bool round_incr(unsigned rm, int sign, bool lsb, int cmp, bool inexact)
{
    switch (rm) {
    case RM_RNE: return cmp > 0 || (cmp == 0 && lsb);
    case RM_RMM: return cmp >= 0;
    case RM_RDN: return inexact && sign;
    case RM_RUP: return inexact && !sign;
    default: return false; /* RTZ */
    }
}

/* Keeps m >> s (s >= 1) and reports the rounding of what is discarded, where
 * `sticky` stands for a nonzero amount below bit 0 of m. */
static inline u128 shift_round(u128 m, bool sticky, int s, unsigned rm, int sign,
                               bool *inexact)
{
    u128 kept, rem, half;
    int cmp;
    if (s >= 128) {
        kept = 0;
        cmp = -1; /* m < 2^127 <= half */
        *inexact = m != 0 || sticky;
    } else {
        kept = m >> s;
        rem = m & (((u128)1 << s) - 1);
        half = (u128)1 << (s - 1);
        cmp = rem > half ? 1 : rem < half ? -1 : sticky ? 1 : 0;
        *inexact = rem != 0 || sticky;
    }
    return kept + round_incr(rm, sign, kept & 1, cmp, *inexact);
}

/* Rounds sign * (m + sticky) * 2^exp to the format. m must be nonzero and
 * below 2^127; when sticky is set, m must have at least p+1 significant bits
 * (so the rounding point lies above the sticky part). */
static uint64_t round_pack(bool dbl, int sign, int exp, u128 m, bool sticky,
                           unsigned rm, unsigned *fl)
{
    const int p = dbl ? 53 : 24;
    const int emin = dbl ? -1022 : -126, emax = dbl ? 1023 : 127;
    const int bias = dbl ? 1023 : 127;
    int n = bitlen128(m);
    int sh = 127 - n;
    m <<= sh; /* leading bit at 126 */
    exp -= sh;
    int e = exp + 126; /* exponent of the leading bit */
    int q = e - (p - 1);
    if (q < emin - (p - 1))
        q = emin - (p - 1);
    bool inexact;
    u128 kept = shift_round(m, sticky, q - exp, rm, sign, &inexact);
    if (kept >> p) { /* carried to 2^p */
        kept >>= 1;
        q++;
    }
    unsigned flags = 0;
    if (inexact) {
        flags |= FFLAG_NX;
        /* Tiny after rounding: rounded to p bits with unbounded exponent,
         * the magnitude is still below 2^emin. */
        bool tiny = e < emin;
        if (e == emin - 1) {
            bool unused;
            u128 k = shift_round(m, sticky, e - (p - 1) - exp, rm, sign, &unused);
            tiny = !(k >> p);
        }
        if (tiny)
            flags |= FFLAG_UF;
    }
    uint64_t res;
    if (kept >> (p - 1)) {
        int ee = q + p - 1;
        if (ee > emax) {
            flags |= FFLAG_OF | FFLAG_NX;
            bool to_inf = rm == RM_RNE || rm == RM_RMM ||
                          (rm == RM_RDN && sign) || (rm == RM_RUP && !sign);
            if (to_inf) {
                res = pack_inf(dbl, sign);
            } else {
                res = dbl ? ((uint64_t)sign << 63) | 0x7fefffffffffffffull
                          : ((uint64_t)sign << 31) | 0x7f7fffffu;
            }
            *fl |= flags;
            return res;
        }
        res = ((uint64_t)(ee + bias) << (p - 1)) | ((uint64_t)kept & ((1ull << (p - 1)) - 1));
    } else {
        res = (uint64_t)kept; /* subnormal or zero */
    }
    *fl |= flags;
    return res | ((uint64_t)sign << (dbl ? 63 : 31));
}

static inline uint64_t pack_exact(bool dbl, const struct unp *u, unsigned *fl)
{
    return round_pack(dbl, u->sign, u->exp, u->sig, false, RM_RNE, fl);
}

/* Exact sum of two nonzero finite values (m < 2^107), rounded once. */
static uint64_t add_exact(bool dbl, int sa, int ea, u128 ma, int sb, int eb, u128 mb,
                          unsigned rm, unsigned *fl)
{
    int sha = 126 - bitlen128(ma), shb = 126 - bitlen128(mb);
    ma <<= sha; /* leading bits at 125 */
    ea -= sha;
    mb <<= shb;
    eb -= shb;
    if (ea < eb || (ea == eb && ma < mb)) {
        int ts = sa, te = ea;
        u128 tm = ma;
        sa = sb; ea = eb; ma = mb;
        sb = ts; eb = te; mb = tm;
    }
    int d = ea - eb;
    u128 kept;
    bool sticky;
    if (d >= 128) {
        kept = 0;
        sticky = true;
    } else {
        kept = mb >> d;
        sticky = d > 0 && (mb & (((u128)1 << d) - 1)) != 0;
    }
    u128 m;
    if (sa == sb) {
        m = ma + kept;
    } else {
        m = ma - kept - sticky; /* the borrow makes room for the sticky part */
        if (m == 0 && !sticky)
            return pack_zero(dbl, rm == RM_RDN);
    }
    return round_pack(dbl, sa, ea, m, sticky, rm, fl);
}

static uint64_t isqrt128(u128 n, bool *inexact)
{
    u128 x = n, r = 0, bit = (u128)1 << 126;
    while (bit > x)
        bit >>= 2;
    while (bit) {
        if (x >= r + bit) {
            x -= r + bit;
            r = (r >> 1) + bit;
        } else {
            r >>= 1;
        }
        bit >>= 2;
    }
    *inexact = x != 0;
    return (uint64_t)r;
}

uint64_t fpu_soft_op(unsigned op, bool dbl, uint64_t a, uint64_t b, uint64_t c,
                     unsigned rm, unsigned *fl)
{
    if (op >= FPU_OP_CVT_W) {
        int sign = 0;
        uint64_t mag;
        switch (op) {
        case FPU_OP_CVT_W: {
            int32_t v = (int32_t)a;
            sign = v < 0;
            mag = sign ? -(uint64_t)(int64_t)v : (uint64_t)v;
            break;
        }
        case FPU_OP_CVT_WU: mag = (uint32_t)a; break;
        case FPU_OP_CVT_L:
            sign = (int64_t)a < 0;
            mag = sign ? -a : a;
            break;
        default: mag = a; break;
        }
        if (!mag)
            return 0;
        return round_pack(dbl, sign, 0, mag, false, rm, fl);
    }
    if (op == FPU_OP_CVT_SD) {
        struct unp u = unpack(true, a);
        switch (u.cls) {
        case C_SNAN: *fl |= FFLAG_NV; /* fall through */
        case C_QNAN: return CANON_S;
        case C_INF: return pack_inf(false, u.sign);
        case C_ZERO: return pack_zero(false, u.sign);
        default: return round_pack(false, u.sign, u.exp, u.sig, false, rm, fl);
        }
    }

    struct unp A = unpack(dbl, a), B = unpack(dbl, b), C = unpack(dbl, c);
    if (op == FPU_OP_SUB) {
        B.sign ^= 1;
        op = FPU_OP_ADD;
    }
    int nops = op == FPU_OP_SQRT ? 1 : op == FPU_OP_FMA ? 3 : 2;
    bool anynan = A.cls >= C_QNAN || (nops > 1 && B.cls >= C_QNAN) ||
                  (nops > 2 && C.cls >= C_QNAN);
    if (anynan) {
        if (A.cls == C_SNAN || (nops > 1 && B.cls == C_SNAN) ||
            (nops > 2 && C.cls == C_SNAN) ||
            (op == FPU_OP_FMA && ((A.cls == C_INF && B.cls == C_ZERO) ||
                                  (A.cls == C_ZERO && B.cls == C_INF))))
            *fl |= FFLAG_NV;
        return canon(dbl);
    }

    switch (op) {
    case FPU_OP_ADD:
        if (A.cls == C_INF || B.cls == C_INF) {
            if (A.cls == C_INF && B.cls == C_INF && A.sign != B.sign) {
                *fl |= FFLAG_NV;
                return canon(dbl);
            }
            return pack_inf(dbl, A.cls == C_INF ? A.sign : B.sign);
        }
        if (A.cls == C_ZERO && B.cls == C_ZERO)
            return pack_zero(dbl, A.sign == B.sign ? A.sign : rm == RM_RDN);
        if (A.cls == C_ZERO)
            return pack_exact(dbl, &B, fl);
        if (B.cls == C_ZERO)
            return pack_exact(dbl, &A, fl);
        return add_exact(dbl, A.sign, A.exp, A.sig, B.sign, B.exp, B.sig, rm, fl);

    case FPU_OP_MUL: {
        int s = A.sign ^ B.sign;
        if (A.cls == C_INF || B.cls == C_INF) {
            if (A.cls == C_ZERO || B.cls == C_ZERO) {
                *fl |= FFLAG_NV;
                return canon(dbl);
            }
            return pack_inf(dbl, s);
        }
        if (A.cls == C_ZERO || B.cls == C_ZERO)
            return pack_zero(dbl, s);
        return round_pack(dbl, s, A.exp + B.exp, (u128)A.sig * B.sig, false, rm, fl);
    }

    case FPU_OP_DIV: {
        int s = A.sign ^ B.sign;
        if (A.cls == C_INF) {
            if (B.cls == C_INF) {
                *fl |= FFLAG_NV;
                return canon(dbl);
            }
            return pack_inf(dbl, s);
        }
        if (B.cls == C_INF)
            return pack_zero(dbl, s);
        if (B.cls == C_ZERO) {
            if (A.cls == C_ZERO) {
                *fl |= FFLAG_NV;
                return canon(dbl);
            }
            *fl |= FFLAG_DZ;
            return pack_inf(dbl, s);
        }
        if (A.cls == C_ZERO)
            return pack_zero(dbl, s);
        /* Normalize both significands to [2^63, 2^64): the quotient of
         * (ma << 63) / mb then has at least 63 bits. */
        int sha = __builtin_clzll(A.sig), shb = __builtin_clzll(B.sig);
        u128 num = (u128)(A.sig << sha) << 63;
        uint64_t den = B.sig << shb;
        u128 quo = num / den;
        bool sticky = num % den != 0;
        return round_pack(dbl, s, (A.exp - sha - 63) - (B.exp - shb), quo, sticky, rm, fl);
    }

    case FPU_OP_SQRT: {
        if (A.cls == C_ZERO)
            return pack_zero(dbl, A.sign);
        if (A.sign) {
            *fl |= FFLAG_NV;
            return canon(dbl);
        }
        if (A.cls == C_INF)
            return pack_inf(dbl, 0);
        /* Leading bit at 124 or 125 with an even exponent: the root has
         * 63 bits. */
        int sh = 125 - bitlen128(A.sig);
        int e = A.exp - sh;
        if (e & 1) {
            sh++;
            e--;
        }
        u128 m = (u128)A.sig << sh;
        bool inexact;
        uint64_t r = isqrt128(m, &inexact);
        return round_pack(dbl, 0, e / 2, r, inexact, rm, fl);
    }

    default: { /* FMA */
        int ps = A.sign ^ B.sign;
        if (A.cls == C_INF || B.cls == C_INF) {
            if (A.cls == C_ZERO || B.cls == C_ZERO ||
                (C.cls == C_INF && C.sign != ps)) {
                *fl |= FFLAG_NV;
                return canon(dbl);
            }
            return pack_inf(dbl, ps);
        }
        if (C.cls == C_INF)
            return pack_inf(dbl, C.sign);
        if (A.cls == C_ZERO || B.cls == C_ZERO) {
            if (C.cls == C_ZERO)
                return pack_zero(dbl, ps == C.sign ? ps : rm == RM_RDN);
            return pack_exact(dbl, &C, fl);
        }
        u128 pm = (u128)A.sig * B.sig;
        int pe = A.exp + B.exp;
        if (C.cls == C_ZERO)
            return round_pack(dbl, ps, pe, pm, false, rm, fl);
        return add_exact(dbl, ps, pe, pm, C.sign, C.exp, C.sig, rm, fl);
    }
    }
}

/* ------------------------------------------------------------------ */
/* Operations on bit patterns                                          */

/* Float (raw binary32 or binary64) to integer; kind 0..3 = W, WU, L, LU.
 * Results for W/WU are sign-extended to 64 bits. */
static uint64_t cvt_to_int(bool dbl, uint64_t x, unsigned kind, unsigned rm, unsigned *fl)
{
    static const uint64_t maxv[4] = {
        0x7fffffffull, 0xffffffffffffffffull, 0x7fffffffffffffffull, 0xffffffffffffffffull,
    };
    static const uint64_t minv[4] = {
        0xffffffff80000000ull, 0, 0x8000000000000000ull, 0,
    };
    struct unp u = unpack(dbl, x);
    switch (u.cls) {
    case C_QNAN:
    case C_SNAN:
        *fl |= FFLAG_NV;
        return maxv[kind];
    case C_INF:
        *fl |= FFLAG_NV;
        return u.sign ? minv[kind] : maxv[kind];
    case C_ZERO:
        return 0;
    default:
        break;
    }
    uint64_t mag = 0;
    bool inexact = false, big = false;
    if (u.exp >= 0) {
        if (64 - __builtin_clzll(u.sig) + u.exp > 64)
            big = true;
        else
            mag = u.sig << u.exp;
    } else {
        int s = -u.exp;
        uint64_t ip;
        int cmp;
        if (s >= 64) {
            ip = 0;
            cmp = -1; /* sig < 2^53 < half */
            inexact = true;
        } else {
            uint64_t rem = u.sig & ((1ull << s) - 1), half = 1ull << (s - 1);
            ip = u.sig >> s;
            cmp = rem > half ? 1 : rem < half ? -1 : 0;
            inexact = rem != 0;
        }
        mag = ip + round_incr(rm, u.sign, ip & 1, cmp, inexact);
    }
    uint64_t limit;
    switch (kind) {
    case 0: limit = u.sign ? 0x80000000ull : 0x7fffffffull; break;
    case 1: limit = u.sign ? 0 : 0xffffffffull; break;
    case 2: limit = u.sign ? 0x8000000000000000ull : 0x7fffffffffffffffull; break;
    default: limit = u.sign ? 0 : 0xffffffffffffffffull; break;
    }
    if (big || mag > limit) {
        *fl |= FFLAG_NV;
        return u.sign ? minv[kind] : maxv[kind];
    }
    if (inexact)
        *fl |= FFLAG_NX;
    uint64_t r = u.sign ? -mag : mag;
    if (kind < 2)
        r = (uint64_t)(int64_t)(int32_t)(uint32_t)r;
    return r;
}

static uint64_t fminmax(bool dbl, bool is_max, uint64_t a, uint64_t b, unsigned *fl)
{
    bool an = isnan_f(dbl, a), bn = isnan_f(dbl, b);
    if (an || bn) {
        if (issnan_f(dbl, a) || issnan_f(dbl, b))
            *fl |= FFLAG_NV;
        if (an && bn)
            return canon(dbl);
        return an ? b : a;
    }
    double da = tod(dbl, a), db = tod(dbl, b);
    if (da == db) /* equal values, or zeros: -0 < +0 */
        return (is_max ? !sign_f(dbl, a) : sign_f(dbl, a)) ? a : b;
    return ((da < db) != is_max) ? a : b;
}

/* funct3: 2 = FEQ, 1 = FLT, 0 = FLE */
static uint64_t fcompare(bool dbl, unsigned funct3, uint64_t a, uint64_t b, unsigned *fl)
{
    if (isnan_f(dbl, a) || isnan_f(dbl, b)) {
        if (funct3 != 2 || issnan_f(dbl, a) || issnan_f(dbl, b))
            *fl |= FFLAG_NV;
        return 0;
    }
    double da = tod(dbl, a), db = tod(dbl, b);
    switch (funct3) {
    case 2: return da == db;
    case 1: return da < db;
    default: return da <= db;
    }
}

static uint64_t fclass(bool dbl, uint64_t x)
{
    struct unp u = unpack(dbl, x);
    int sh;
    switch (u.cls) {
    case C_INF: sh = u.sign ? 0 : 7; break;
    case C_ZERO: sh = u.sign ? 3 : 4; break;
    case C_FIN: {
        bool sub = u.sig < (dbl ? (1ull << 52) : (1ull << 23));
        sh = u.sign ? (sub ? 2 : 1) : (sub ? 5 : 6);
        break;
    }
    case C_SNAN: sh = 8; break;
    default: sh = 9; break;
    }
    return 1ull << sh;
}

/* ------------------------------------------------------------------ */
/* Decode and execute                                                  */

static inline uint64_t rd_s(const struct hart *h, unsigned r)
{
    uint64_t v = h->f[r];
    return (v >> 32) == 0xffffffffu ? (uint32_t)v : CANON_S;
}

/* Reads an operand of format dbl: raw binary64 or unboxed binary32. */
static inline uint64_t rd_f(const struct hart *h, bool dbl, unsigned r)
{
    return dbl ? h->f[r] : rd_s(h, r);
}

static inline void wr_f(struct hart *h, bool dbl, unsigned r, uint64_t v)
{
    h->f[r] = dbl ? v : (BOX_S | (uint32_t)v);
    h->mstatus |= MSTATUS_FS;
}

static inline void accrue(struct hart *h, unsigned fl)
{
    if (fl) {
        h->fflags |= fl;
        h->mstatus |= MSTATUS_FS;
    }
}

/* Rounding mode for the rm field, or -1 if reserved. */
static inline int get_rm(const struct hart *h, uint32_t insn)
{
    unsigned rm = (insn >> 12) & 7;
    if (rm == RM_DYN)
        rm = h->frm;
    return rm <= RM_RMM ? (int)rm : -1;
}

static inline uint64_t arith(const struct hart *h, unsigned op, bool dbl, uint64_t a,
                             uint64_t b, uint64_t c, unsigned rm, unsigned *fl)
{
    uint64_t r;
    if (rm == RM_RNE && (h->fflags & FFLAG_NX) && fast_arith(op, dbl, a, b, c, &r))
        return r;
    if (rm == RM_RMM)
        return fpu_soft_op(op, dbl, a, b, c, rm, fl);
    return dbl ? hw_arith_d(op, a, b, c, rm, fl)
               : hw_arith_s(op, (uint32_t)a, (uint32_t)b, (uint32_t)c, rm, fl);
}

static bool illegal(struct hart *h, uint32_t insn)
{
    hart_raise_exception(h, CAUSE_ILLEGAL_INSN, insn);
    return false;
}

static bool exec_op_fp(struct hart *h, uint32_t insn)
{
    const unsigned rd = (insn >> 7) & 31, funct3 = (insn >> 12) & 7;
    const unsigned rs1 = (insn >> 15) & 31, rs2 = (insn >> 20) & 31;
    const unsigned funct7 = insn >> 25;
    const bool dbl = funct7 & 1;
    unsigned fl = 0;
    int rm;

    if (funct7 & 2) /* fmt H or Q */
        return illegal(h, insn);

    switch (funct7 >> 2) {
    case 0x00: /* FADD */
    case 0x01: /* FSUB */
    case 0x02: /* FMUL */
    case 0x03: /* FDIV */
    case 0x0b: { /* FSQRT */
        static const uint8_t ops[16] = {
            [0x00] = FPU_OP_ADD, [0x01] = FPU_OP_SUB, [0x02] = FPU_OP_MUL,
            [0x03] = FPU_OP_DIV, [0x0b] = FPU_OP_SQRT,
        };
        unsigned op = ops[funct7 >> 2];
        if ((rm = get_rm(h, insn)) < 0 || (op == FPU_OP_SQRT && rs2 != 0))
            return illegal(h, insn);
        uint64_t r = arith(h, op, dbl, rd_f(h, dbl, rs1), rd_f(h, dbl, rs2), 0, (unsigned)rm, &fl);
        wr_f(h, dbl, rd, r);
        accrue(h, fl);
        return true;
    }
    case 0x04: { /* FSGNJ, FSGNJN, FSGNJX */
        if (funct3 > 2)
            return illegal(h, insn);
        uint64_t a = rd_f(h, dbl, rs1), b = rd_f(h, dbl, rs2);
        uint64_t sm = dbl ? SIGN_D : SIGN_S;
        uint64_t s = funct3 == 0 ? b : funct3 == 1 ? ~b : a ^ b;
        wr_f(h, dbl, rd, (a & ~sm) | (s & sm));
        return true;
    }
    case 0x05: { /* FMIN, FMAX */
        if (funct3 > 1)
            return illegal(h, insn);
        uint64_t r = fminmax(dbl, funct3, rd_f(h, dbl, rs1), rd_f(h, dbl, rs2), &fl);
        wr_f(h, dbl, rd, r);
        accrue(h, fl);
        return true;
    }
    case 0x08: { /* FCVT.S.D (dbl=0, rs2=1), FCVT.D.S (dbl=1, rs2=0) */
        if (rs2 != (dbl ? 0u : 1u) || (rm = get_rm(h, insn)) < 0)
            return illegal(h, insn);
        uint64_t r;
        if (dbl) {
            uint32_t a = (uint32_t)rd_s(h, rs1);
            if (nan_s(a)) {
                if (snan_s(a))
                    fl |= FFLAG_NV;
                r = CANON_D;
            } else {
                r = d2u((double)u2f(a)); /* exact */
            }
        } else if (rm == RM_RMM) {
            r = fpu_soft_op(FPU_OP_CVT_SD, false, h->f[rs1], 0, 0, RM_RMM, &fl);
        } else {
            r = hw_cvt_s_d(h->f[rs1], (unsigned)rm, &fl);
        }
        wr_f(h, dbl, rd, r);
        accrue(h, fl);
        return true;
    }
    case 0x14: { /* FLE, FLT, FEQ */
        if (funct3 > 2)
            return illegal(h, insn);
        uint64_t r = fcompare(dbl, funct3, rd_f(h, dbl, rs1), rd_f(h, dbl, rs2), &fl);
        if (rd)
            h->x[rd] = r;
        accrue(h, fl);
        return true;
    }
    case 0x18: { /* FCVT.W/WU/L/LU.fmt */
        if (rs2 > 3 || (rm = get_rm(h, insn)) < 0)
            return illegal(h, insn);
        uint64_t r = cvt_to_int(dbl, rd_f(h, dbl, rs1), rs2, (unsigned)rm, &fl);
        if (rd)
            h->x[rd] = r;
        accrue(h, fl);
        return true;
    }
    case 0x1a: { /* FCVT.fmt.W/WU/L/LU */
        if (rs2 > 3 || (rm = get_rm(h, insn)) < 0)
            return illegal(h, insn);
        unsigned kind = FPU_OP_CVT_W + rs2;
        uint64_t x = h->x[rs1], r;
        if (rm == RM_RMM)
            r = fpu_soft_op(kind, dbl, x, 0, 0, RM_RMM, &fl);
        else
            r = hw_cvt_from_int(kind, dbl, x, (unsigned)rm, &fl);
        wr_f(h, dbl, rd, r);
        accrue(h, fl);
        return true;
    }
    case 0x1c: /* FMV.X.W/D (funct3 0), FCLASS (funct3 1) */
        if (rs2 != 0 || funct3 > 1)
            return illegal(h, insn);
        if (rd) {
            if (funct3 == 1)
                h->x[rd] = fclass(dbl, rd_f(h, dbl, rs1));
            else
                h->x[rd] = dbl ? h->f[rs1] : (uint64_t)(int64_t)(int32_t)(uint32_t)h->f[rs1];
        }
        return true;
    case 0x1e: /* FMV.W.X / FMV.D.X */
        if (rs2 != 0 || funct3 != 0)
            return illegal(h, insn);
        wr_f(h, dbl, rd, h->x[rs1]);
        return true;
    default:
        return illegal(h, insn);
    }
}

bool fpu_exec(struct hart *h, uint32_t insn)
{
    if (!(h->mstatus & MSTATUS_FS))
        return illegal(h, insn);

    const unsigned opcode = insn & 0x7f;
    const unsigned rd = (insn >> 7) & 31, funct3 = (insn >> 12) & 7;
    const unsigned rs1 = (insn >> 15) & 31, rs2 = (insn >> 20) & 31;

    switch (opcode) {
    case 0x53:
        return exec_op_fp(h, insn);

    case 0x07: { /* FLW, FLD */
        if (funct3 != 2 && funct3 != 3)
            return illegal(h, insn);
        uint64_t addr = h->x[rs1] + (uint64_t)(int64_t)((int32_t)insn >> 20);
        uint64_t v;
        if (funct3 == 2) {
            if (!cpu_load(h, addr, 4, &v))
                return false;
            h->f[rd] = BOX_S | (uint32_t)v;
        } else {
            if (!cpu_load(h, addr, 8, &v))
                return false;
            h->f[rd] = v;
        }
        h->mstatus |= MSTATUS_FS;
        return true;
    }

    case 0x27: { /* FSW, FSD */
        if (funct3 != 2 && funct3 != 3)
            return illegal(h, insn);
        int32_t imm = ((int32_t)(insn & 0xfe000000u) >> 20) | (int32_t)((insn >> 7) & 31);
        uint64_t addr = h->x[rs1] + (uint64_t)(int64_t)imm;
        if (funct3 == 2)
            return cpu_store(h, addr, 4, (uint32_t)h->f[rs2]);
        return cpu_store(h, addr, 8, h->f[rs2]);
    }

    case 0x43: /* FMADD */
    case 0x47: /* FMSUB */
    case 0x4b: /* FNMSUB */
    case 0x4f: { /* FNMADD */
        const unsigned fmt = (insn >> 25) & 3, rs3 = insn >> 27;
        int rm;
        if (fmt > 1 || (rm = get_rm(h, insn)) < 0)
            return illegal(h, insn);
        const bool dbl = fmt;
        const uint64_t sm = dbl ? SIGN_D : SIGN_S;
        uint64_t a = rd_f(h, dbl, rs1), b = rd_f(h, dbl, rs2), c = rd_f(h, dbl, rs3);
        if (opcode == 0x47 || opcode == 0x4f) /* subtract the addend */
            c ^= sm;
        if (opcode == 0x4b || opcode == 0x4f) /* negate the product */
            a ^= sm;
        unsigned fl = 0;
        uint64_t r = arith(h, FPU_OP_FMA, dbl, a, b, c, (unsigned)rm, &fl);
        wr_f(h, dbl, rd, r);
        accrue(h, fl);
        return true;
    }

    default:
        return illegal(h, insn);
    }
}
