/*
 * fpthreads: multi-threaded floating-point (and integer/atomic) self-check
 * for the ferry guest.
 *
 * Four pthreads each run the same deterministic workload (parameterised by
 * the thread number) while yielding often, so the kernel context-switches
 * and migrates them between harts with live FP registers, fcsr rounding
 * mode and exception flags. The main thread then
 *   1. recomputes every thread's workload single-threaded and requires
 *      bit-identical results, and
 *   2. checks results against expected constants that are known exactly:
 *      closed forms (sum of sqrt(i*i) for i < N is N(N-1)/2), IEEE 754
 *      correctly rounded values in each rounding mode, printf/strtod round
 *      trips of fixed strings, fma residuals, fmin/fmax NaN rules, RISC-V's
 *      canonical NaN, exception flags, exact small-integer matrix products.
 *
 * Output: exactly "fpthreads: OK" and exit 0, or one
 * "fpthreads: FAIL <details>" line per failed check and exit 1.
 * With -v every check is listed first as
 * "fpthreads: check thread=<t> <name> got=<hex> want=<hex|-> ok|BAD".
 *
 * Must be compiled without FP contraction (-ffp-contract=off) so the only
 * fused operations are the explicit fma() calls.
 */
#define _GNU_SOURCE
#include <fenv.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define NTHREADS 4
#define MAXCHECKS 160

struct check {
    const char *name;
    uint64_t got;
    uint64_t want;
    int has_want;      /* 0: no closed form, only compared across runs */
    char text[64];     /* produced string for printf checks */
};

struct results {
    int n;
    struct check c[MAXCHECKS];
};

/* Inputs are read through volatiles so the compiler cannot fold the
 * arithmetic at build time: the FPU under test must do it at run time. */
static volatile double v_zero = 0.0, v_one = 1.0, v_two = 2.0, v_three = 3.0;
static volatile double v_tenth = 0.1, v_ten = 10.0, v_seven = 7.0;
static volatile float vf_one = 1.0f, vf_three = 3.0f, vf_tenth = 0.1f, vf_ten = 10.0f;
static volatile float vf_zero = 0.0f, vf_five = 5.0f;

static uint64_t dbits(double d) { uint64_t u; memcpy(&u, &d, 8); return u; }
static uint64_t fbits(float f) { uint32_t u; memcpy(&u, &f, 4); return u; }

static void add(struct results *r, const char *name, uint64_t got, uint64_t want, int has_want)
{
    if (r->n >= MAXCHECKS) {
        fprintf(stderr, "fpthreads: too many checks\n");
        exit(2);
    }
    struct check *c = &r->c[r->n++];
    c->name = name;
    c->got = got;
    c->want = want;
    c->has_want = has_want;
    c->text[0] = 0;
}
#define EXPECT(r, name, got, want) add(r, name, (uint64_t)(got), (uint64_t)(want), 1)
#define RECORD(r, name, got) add(r, name, (uint64_t)(got), 0, 0)

static void expect_str(struct results *r, const char *name, const char *got, const char *want)
{
    add(r, name, strcmp(got, want) == 0, 1, 1);
    snprintf(r->c[r->n - 1].text, sizeof r->c[0].text, "%s", got);
}

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

/* ---- sums of sqrt: each sqrt(i*i) is exact, so is the sum (< 2^53) ---- */
static void sqrt_sums(int id, struct results *r)
{
    const int64_t n = 200000 + 1000 * id;
    double s = 0, sn = 0;
    for (int64_t i = 0; i < n; i++) {
        double x = (double)i * v_one;
        s += sqrt(x * x);
        sn += sqrt(x);              /* no closed form: cross-run check only */
        if ((i & 8191) == 0)
            sched_yield();
    }
    EXPECT(r, "sqrt_sum_d", dbits(s), dbits((double)(n * (n - 1) / 2)));
    RECORD(r, "sqrt_nonsquare_d", dbits(sn));

    const int32_t nf = 4000 + id;   /* i*i and the sum stay below 2^24 */
    float sf = 0;
    for (int32_t i = 0; i < nf; i++) {
        float x = (float)i * vf_one;
        sf += sqrtf(x * x);
    }
    EXPECT(r, "sqrt_sum_f", fbits(sf), fbits((float)(nf * (nf - 1) / 2)));
}

/* ---- divisions whose quotients are exact integers ---- */
static void divisions(int id, struct results *r)
{
    const int64_t n = 100000 + 100 * id;
    double s = 0, h = 0;
    int64_t bad = 0;
    for (int64_t i = 1; i <= n; i++) {
        double x = (double)i;
        s += (x * v_seven) / v_seven;
        if ((x * x) / x != x)
            bad++;
        h += v_one / x;             /* harmonic sum: cross-run check only */
        if ((i & 8191) == 0)
            sched_yield();
    }
    EXPECT(r, "div_exact_sum_d", dbits(s), dbits((double)(n * (n + 1) / 2)));
    EXPECT(r, "div_square_mismatches", bad, 0);
    RECORD(r, "harmonic_d", dbits(h));

    float sf = 0;
    for (int i = 1; i <= 3000 + id; i++)
        sf += ((float)i * vf_five) / vf_five;
    int nf = 3000 + id;
    EXPECT(r, "div_exact_sum_f", fbits(sf), fbits((float)(nf * (nf + 1) / 2)));
    EXPECT(r, "div_2_3_d", dbits(v_two / v_three), 0x3FE5555555555555ull);
}

/* ---- fused multiply-add: exact residuals ---- */
static void fused(int id, struct results *r)
{
    (void)id;
    /* 0.1 is slightly above 1/10, so 0.1*10 - 1 is exactly 2^-54 when fused,
     * while the separately rounded product is exactly 1.0. */
    EXPECT(r, "fma_0.1_10_-1", dbits(fma(v_tenth, v_ten, -v_one)), dbits(0x1p-54));
    volatile double prod = v_tenth * v_ten;
    EXPECT(r, "mul_then_sub", dbits(prod - v_one), dbits(0.0));
    EXPECT(r, "fmaf_0.1_10_-1", fbits(fmaf(vf_tenth, vf_ten, -vf_one)), fbits(0x1p-26f));

    /* x = y = 1 + 2^-30: x*y = 1 + 2^-29 + 2^-60, the product rounds away
     * 2^-60 and fma recovers it exactly (all four sign variants). */
    double x = v_one + 0x1p-30, p = x * x;
    EXPECT(r, "fma_residual", dbits(fma(x, x, -p)), dbits(0x1p-60));
    EXPECT(r, "fnmadd_residual", dbits(-fma(x, x, -p)), dbits(-0x1p-60));
    EXPECT(r, "fnmsub_residual", dbits(fma(-x, x, p)), dbits(-0x1p-60));
    EXPECT(r, "fmadd_plain", dbits(fma(x, v_two, v_one)), dbits(3.0 + 0x1p-29));
    /* -(x*x) - p = -(2 + 2^-28 + 2^-60), rounded to -(2 + 2^-28) */
    EXPECT(r, "fnmadd_plain", dbits(fma(-x, x, -p)), dbits(-(2.0 + 0x1p-28)));
    float xf = vf_one + 0x1p-13f, pf = xf * xf;
    EXPECT(r, "fmaf_residual", fbits(fmaf(xf, xf, -pf)), fbits(0x1p-26f));

    /* Accumulated residuals: a = 1 + k*2^-30 has a*a = 1 + k*2^-29 + k^2*2^-60;
     * the product is rounded to a multiple of 2^-52 (= 256 * 2^-60), so the
     * exact residual fma(a, a, -a*a) is 2^-60 * (k^2 - 256*round(k^2/256)),
     * i.e. k^2 mod 256 taken in [-128, 128) (no ties: k^2 is never 128 mod 256).
     * The sum stays a small multiple of 2^-60, so it is exact as well. */
    double acc = 0;
    int64_t units = 0;
    for (int k = 1; k <= 1000; k++) {
        double a = v_one + k * 0x1p-30;
        double q = a * a;
        acc += fma(a, a, -q);
        int64_t m = (int64_t)k * k % 256;
        units += m < 128 ? m : m - 256;
    }
    EXPECT(r, "fma_residual_sum", dbits(acc), dbits((double)units * 0x1p-60));
}

/* ---- printf / strtod round trips of known strings (round to nearest) ---- */
static void strings(int id, struct results *r)
{
    (void)id;
    char buf[64];
    snprintf(buf, sizeof buf, "%.17g", v_tenth);
    expect_str(r, "printf_0.1", buf, "0.10000000000000001");
    snprintf(buf, sizeof buf, "%.17g", strtod("1e23", NULL));
    expect_str(r, "printf_1e23", buf, "9.9999999999999992e+22");
    snprintf(buf, sizeof buf, "%.17g", ldexp(v_one, -1074));
    expect_str(r, "printf_denorm_min", buf, "4.9406564584124654e-324");
    snprintf(buf, sizeof buf, "%a", v_one / v_three);
    expect_str(r, "printf_a_third", buf, "0x1.5555555555555p-2");
    snprintf(buf, sizeof buf, "%.9g", (double)vf_tenth);
    expect_str(r, "printf_0.1f", buf, "0.100000001");
    snprintf(buf, sizeof buf, "%.2f %.0f %.0f %.0f", 2.675 * v_one, 0.5 * v_one, 1.5 * v_one, 2.5 * v_one);
    expect_str(r, "printf_fixed_ties", buf, "2.67 0 2 2");
    snprintf(buf, sizeof buf, "%.3e", v_two / v_three);
    expect_str(r, "printf_e", buf, "6.667e-01");

    EXPECT(r, "strtod_0.1", dbits(strtod("0.1", NULL)), 0x3FB999999999999Aull);
    EXPECT(r, "strtod_1e23", dbits(strtod("1e23", NULL)), 0x44B52D02C7E14AF6ull);
    EXPECT(r, "strtod_denorm", dbits(strtod("4.9406564584124654e-324", NULL)), 1);
    EXPECT(r, "strtod_pi", dbits(strtod("3.141592653589793", NULL)), 0x400921FB54442D18ull);
    EXPECT(r, "strtof_0.1", fbits(strtof("0.1", NULL)), 0x3DCCCCCDull);
    /* round trip of a computed value through %.17g */
    double h = v_one / v_three;
    snprintf(buf, sizeof buf, "%.17g", h);
    EXPECT(r, "roundtrip_third", dbits(strtod(buf, NULL)), dbits(h));
}

/* ---- fmin/fmax, NaN behaviour, comparisons, classification ---- */
static void nans(int id, struct results *r)
{
    (void)id;
    double qnan = v_zero / v_zero;
    EXPECT(r, "fmin_nan_1", dbits(fmin(qnan, v_one)), dbits(1.0));
    EXPECT(r, "fmax_1_nan", dbits(fmax(v_one, qnan)), dbits(1.0));
    EXPECT(r, "fmin_nan_nan_isnan", isnan(fmin(qnan, qnan)) != 0, 1);
    EXPECT(r, "fminf_nan_1", fbits(fminf(vf_zero / vf_zero, vf_one)), fbits(1.0f));
    EXPECT(r, "fmin_2_3", dbits(fmin(v_two, v_three)), dbits(2.0));
    EXPECT(r, "fmax_2_3", dbits(fmax(v_two, v_three)), dbits(3.0));
    EXPECT(r, "nan_lt", qnan < v_one, 0);
    EXPECT(r, "nan_eq_self", qnan == qnan, 0);
    EXPECT(r, "nan_ne_self", qnan != qnan, 1);
    EXPECT(r, "classify_subnormal", fpclassify(DBL_MIN / v_three) == FP_SUBNORMAL, 1);
    EXPECT(r, "classify_inf", isinf(v_one / v_zero) != 0, 1);
    EXPECT(r, "classify_zero", fpclassify(-v_zero) == FP_ZERO, 1);
    EXPECT(r, "signbit_negzero", signbit(-v_zero) != 0, 1);
    EXPECT(r, "copysign", dbits(copysign(v_three, -v_zero)), dbits(-3.0));
    EXPECT(r, "fabs", dbits(fabs(-v_three)), dbits(3.0));
#if defined(__riscv)
    /* RISC-V specifics: -0.0 < +0.0 for fmin/fmax, and every generated NaN
     * is the canonical quiet NaN (positive, no payload), unlike x86. */
    EXPECT(r, "fmin_negzero", signbit(fmin(-v_zero, v_zero)) != 0, 1);
    EXPECT(r, "fmax_negzero", signbit(fmax(-v_zero, v_zero)) != 0, 0);
    EXPECT(r, "canonical_nan_d", dbits(qnan), 0x7FF8000000000000ull);
    EXPECT(r, "canonical_nan_f", fbits(vf_zero / vf_zero), 0x7FC00000ull);
    EXPECT(r, "canonical_nan_sqrt", dbits(sqrt(-v_one)), 0x7FF8000000000000ull);
    uint64_t payload_bits = 0xFFF8000000000123ull;
    volatile double payload;
    memcpy((void *)&payload, &payload_bits, 8);
    EXPECT(r, "nan_no_payload_propagation", dbits(payload + v_one), 0x7FF8000000000000ull);
#endif
}

/* ---- accrued exception flags (fflags), per thread ---- */
static void excepts(int id, struct results *r)
{
    (void)id;
    volatile double d;
    const int all = FE_INEXACT | FE_DIVBYZERO | FE_INVALID | FE_OVERFLOW | FE_UNDERFLOW;
    feclearexcept(FE_ALL_EXCEPT);
    d = v_one + v_two;
    sched_yield();                  /* flags must survive a context switch */
    EXPECT(r, "flags_exact_add", fetestexcept(all), 0);
    d = v_one / v_three;
    sched_yield();
    EXPECT(r, "flags_inexact", fetestexcept(all), FE_INEXACT);
    feclearexcept(FE_ALL_EXCEPT);
    d = v_one / v_zero;
    EXPECT(r, "flags_divbyzero", fetestexcept(all), FE_DIVBYZERO);
    feclearexcept(FE_ALL_EXCEPT);
    d = v_zero / v_zero;
    EXPECT(r, "flags_invalid", fetestexcept(all), FE_INVALID);
    feclearexcept(FE_ALL_EXCEPT);
    d = DBL_MAX * v_two;
    EXPECT(r, "flags_overflow", fetestexcept(all), FE_OVERFLOW | FE_INEXACT);
    feclearexcept(FE_ALL_EXCEPT);
    d = DBL_MIN / v_three;
    EXPECT(r, "flags_underflow", fetestexcept(all), FE_UNDERFLOW | FE_INEXACT);
    feclearexcept(FE_ALL_EXCEPT);
    (void)d;
}

/* ---- small matrix products with exact (quarter-integer) entries ---- */
#define MD 6
static void matrix(int id, struct results *r)
{
    uint64_t seed = 0x9E3779B97F4A7C15ull ^ (uint64_t)(id + 1);
    int64_t ai[MD][MD], ci[MD][MD], ti[MD][MD];
    double a[MD][MD], c[MD][MD], t[MD][MD];
    /* entries k/2 for k in [-16, 16]: a = ai/2 */
    for (int i = 0; i < MD; i++)
        for (int j = 0; j < MD; j++) {
            ai[i][j] = (int64_t)(xorshift64(&seed) % 33) - 16;
            a[i][j] = (double)ai[i][j] * 0.5;
            ci[i][j] = ai[i][j];
            c[i][j] = a[i][j];
        }
    /* c = a^6 in floating point; ci holds 2^k * c in integers. Entries stay
     * far below 2^53, so every product and sum is exact. */
    int64_t scale = 2;
    for (int it = 0; it < 5; it++) {
        for (int i = 0; i < MD; i++)
            for (int j = 0; j < MD; j++) {
                double s = 0;
                int64_t si = 0;
                for (int k = 0; k < MD; k++) {
                    s += a[i][k] * c[k][j];
                    si += ai[i][k] * ci[k][j];
                }
                t[i][j] = s;
                ti[i][j] = si;
            }
        memcpy(c, t, sizeof c);
        memcpy(ci, ti, sizeof ci);
        scale *= 2;
        sched_yield();
    }
    int64_t bad = 0;
    uint64_t h = 0;
    for (int i = 0; i < MD; i++)
        for (int j = 0; j < MD; j++) {
            if (c[i][j] != (double)ci[i][j] / (double)scale)
                bad++;
            h = h * 31 + dbits(c[i][j]);
        }
    EXPECT(r, "matmul_d_mismatches", bad, 0);
    RECORD(r, "matmul_d_hash", h);

    /* float 4x4 squared twice with small integers (exact below 2^24) */
    float f[4][4], g[4][4];
    int32_t fi[4][4], gi[4][4];
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++) {
            fi[i][j] = (int32_t)(xorshift64(&seed) % 11) - 5;
            f[i][j] = (float)fi[i][j];
        }
    for (int it = 0; it < 2; it++) {
        for (int i = 0; i < 4; i++)
            for (int j = 0; j < 4; j++) {
                float s = 0;
                int32_t si = 0;
                for (int k = 0; k < 4; k++) {
                    s += f[i][k] * f[k][j];
                    si += fi[i][k] * fi[k][j];
                }
                g[i][j] = s;
                gi[i][j] = si;
            }
        memcpy(f, g, sizeof f);
        memcpy(fi, gi, sizeof fi);
    }
    bad = 0;
    for (int i = 0; i < 4; i++)
        for (int j = 0; j < 4; j++)
            if (f[i][j] != (float)fi[i][j] || (int32_t)f[i][j] != fi[i][j])
                bad++;
    EXPECT(r, "matmul_f_mismatches", bad, 0);
}

/* ---- conversions that do not depend on the rounding mode ---- */
static void conversions(int id, struct results *r)
{
    (void)id;
    volatile double m27 = -2.7, p25 = 2.5, m25 = -2.5;
    volatile float m399 = -3.99f;
    EXPECT(r, "cvt_trunc_neg", (int64_t)m27, -2);
    EXPECT(r, "cvt_f_to_int", (int32_t)m399, -3);
    EXPECT(r, "cvt_lu_1e19", (uint64_t)(1e19 * v_one), 10000000000000000000ull);
    EXPECT(r, "llround_2.5", llround(p25), 3);
    EXPECT(r, "llround_-2.5", llround(m25), -3);
    EXPECT(r, "round_2.5", dbits(round(p25)), dbits(3.0));
    EXPECT(r, "floor_-2.5", dbits(floor(m25)), dbits(-3.0));
    EXPECT(r, "ceil_-2.5", dbits(ceil(m25)), dbits(-2.0));
    EXPECT(r, "trunc_-2.5", dbits(trunc(m25)), dbits(-2.0));
    EXPECT(r, "cvt_int_to_d", dbits((double)(int64_t)(-123456789 * (int64_t)v_one)), dbits(-123456789.0));
    EXPECT(r, "cvt_d_to_f", fbits((float)(v_one / v_three)), 0x3EAAAAABull);
    EXPECT(r, "cvt_f_to_d", dbits((double)vf_tenth), 0x3FB99999A0000000ull);
}

/* ---- rounding modes: each thread starts in a different mode ---- */
static const int modes[4] = { FE_TONEAREST, FE_UPWARD, FE_DOWNWARD, FE_TOWARDZERO };

/* Expected results per mode (same order as modes[]). */
static const uint64_t want_third_d[4] = { 0x3FD5555555555555ull, 0x3FD5555555555556ull,
                                          0x3FD5555555555555ull, 0x3FD5555555555555ull };
static const uint64_t want_mthird_d[4] = { 0xBFD5555555555555ull, 0xBFD5555555555555ull,
                                           0xBFD5555555555556ull, 0xBFD5555555555555ull };
static const uint64_t want_third_f[4] = { 0x3EAAAAABull, 0x3EAAAAABull, 0x3EAAAAAAull, 0x3EAAAAAAull };
static const uint64_t want_sqrt2_d[4] = { 0x3FF6A09E667F3BCDull, 0x3FF6A09E667F3BCDull,
                                          0x3FF6A09E667F3BCCull, 0x3FF6A09E667F3BCCull };
/* (double)(2^53 + 1) and (float)(2^24 + 1) */
static const double want_i2d[4] = { 0x1p53, 0x1p53 + 2, 0x1p53, 0x1p53 };
static const float want_i2f[4] = { 0x1p24f, 0x1p24f + 2, 0x1p24f, 0x1p24f };
static const double lrint_in[6] = { 2.5, -2.5, 1.5, -1.5, 0.4, -0.6 };
static const long want_lrint[4][6] = {
    { 2, -2, 2, -2, 0, -1 },    /* to nearest, ties to even */
    { 3, -2, 2, -1, 1, 0 },     /* upward */
    { 2, -3, 1, -2, 0, -1 },    /* downward */
    { 2, -2, 1, -1, 0, 0 },     /* toward zero */
};
static const char *const lrint_names[4][6] = {
#define LN(m) { "lrint_" m "_2.5", "lrint_" m "_-2.5", "lrint_" m "_1.5", \
                "lrint_" m "_-1.5", "lrint_" m "_0.4", "lrint_" m "_-0.6" }
    LN("near"), LN("up"), LN("down"), LN("zero")
#undef LN
};
static const char *const third_names[4][6] = {
#define TN(m) { "third_d_" m, "mthird_d_" m, "third_f_" m, "sqrt2_" m, "i2d_" m, "i2f_" m }
    TN("near"), TN("up"), TN("down"), TN("zero")
#undef TN
};
static const char *const sum_names[4] = { "third_sum_near", "third_sum_up", "third_sum_down", "third_sum_zero" };
static const char *const keep_names[4] = { "mode_kept_near", "mode_kept_up", "mode_kept_down", "mode_kept_zero" };

static void rounding(int id, struct results *r)
{
    double sums[4];
    volatile double out;
    volatile float outf;
    volatile int64_t big = (1ll << 53) + 1;
    volatile int32_t bigf = (1 << 24) + 1;
    for (int step = 0; step < 4; step++) {
        int m = (id + step) % 4;
        fesetround(modes[m]);
        out = v_one / v_three;
        EXPECT(r, third_names[m][0], dbits(out), want_third_d[m]);
        out = -v_one / v_three;
        EXPECT(r, third_names[m][1], dbits(out), want_mthird_d[m]);
        outf = vf_one / vf_three;
        EXPECT(r, third_names[m][2], fbits(outf), want_third_f[m]);
        out = sqrt(v_two);
        EXPECT(r, third_names[m][3], dbits(out), want_sqrt2_d[m]);
        out = (double)big;
        EXPECT(r, third_names[m][4], dbits(out), dbits(want_i2d[m]));
        outf = (float)bigf;
        EXPECT(r, third_names[m][5], fbits(outf), fbits(want_i2f[m]));
        for (int k = 0; k < 6; k++) {
            volatile double in = lrint_in[k];
            EXPECT(r, lrint_names[m][k], lrint(in), want_lrint[m][k]);
        }
        /* A long accumulation in this mode with context switches in the
         * middle: the mode must stick to the thread. */
        double s = 0;
        for (int k = 0; k < 30000; k++) {
            s += v_one / v_three;
            if ((k & 1023) == 0)
                sched_yield();
        }
        sums[m] = s;
        RECORD(r, sum_names[m], dbits(s));
        EXPECT(r, keep_names[m], fegetround(), modes[m]);
    }
    fesetround(FE_TONEAREST);
    /* Positive terms: rounding down and toward zero agree, upward is largest. */
    EXPECT(r, "third_sum_up_ge_near", sums[1] >= sums[0], 1);
    EXPECT(r, "third_sum_near_ge_down", sums[0] >= sums[2], 1);
    EXPECT(r, "third_sum_up_gt_down", sums[1] > sums[2], 1);
    EXPECT(r, "third_sum_zero_eq_down", dbits(sums[3]), dbits(sums[2]));
}

/* ---- integer workload: division identities, high multiplies, 32-bit ops ---- */
static void integer(int id, struct results *r)
{
    uint64_t seed = 0xD1B54A32D192ED03ull + (uint64_t)id;
    int64_t bad_udiv = 0, bad_sdiv = 0, bad_mulhu = 0, bad_mulh = 0, bad_w = 0;
    uint64_t crc = 0;
    const int n = 200000;
    for (int i = 0; i < n; i++) {
        uint64_t a = xorshift64(&seed), b = xorshift64(&seed) >> (i & 63);
        if (b == 0)
            b = 1;
        if ((a / b) * b + a % b != a || a % b >= b)
            bad_udiv++;
        int64_t sa = (int64_t)a, sb = (int64_t)b;
        if (i & 1)
            sb = (int64_t)(0 - (uint64_t)sb);   /* negate without overflow UB */
        if (sb != -1 && ((sa / sb) * sb + sa % sb != sa || (sa % sb != 0 && (sa < 0) != (sa % sb < 0))))
            bad_sdiv++;
        /* 128-bit products against a 32-bit-limb schoolbook version */
        uint64_t hi = (uint64_t)(((unsigned __int128)a * b) >> 64);
        uint64_t al = a & 0xffffffff, ah = a >> 32, bl = b & 0xffffffff, bh = b >> 32;
        uint64_t ll = al * bl, lh = al * bh, hl = ah * bl, hh = ah * bh;
        uint64_t mid = (ll >> 32) + (lh & 0xffffffff) + (hl & 0xffffffff);
        uint64_t hi2 = hh + (lh >> 32) + (hl >> 32) + (mid >> 32);
        if (hi != hi2)
            bad_mulhu++;
        int64_t shi = (int64_t)(((__int128)sa * sb) >> 64);
        /* signed high = unsigned high - (a<0 ? b : 0) - (b<0 ? a : 0) */
        uint64_t uhi = (uint64_t)(((unsigned __int128)(uint64_t)sa * (uint64_t)sb) >> 64);
        uint64_t corr = uhi - (sa < 0 ? (uint64_t)sb : 0) - (sb < 0 ? (uint64_t)sa : 0);
        if ((uint64_t)shi != corr)
            bad_mulh++;
        /* 32-bit ops sign-extend their result (addw/mulw/divw...) */
        int32_t wa = (int32_t)a, wb = (int32_t)b | 1;
        int32_t wm = (int32_t)((uint32_t)wa * (uint32_t)wb);
        if ((int64_t)wm != (int64_t)(int32_t)(uint32_t)(a * ((uint64_t)(uint32_t)wb)))
            bad_w++;
        if (wb != -1 && (wa / wb) * wb + wa % wb != wa)
            bad_w++;
        crc = (crc << 7 | crc >> 57) ^ hi ^ (uint64_t)shi ^ (a % b) ^ (uint64_t)(uint32_t)wm;
        if ((i & 8191) == 0)
            sched_yield();
    }
    EXPECT(r, "int_udiv_identity", bad_udiv, 0);
    EXPECT(r, "int_sdiv_identity", bad_sdiv, 0);
    EXPECT(r, "int_mulhu", bad_mulhu, 0);
    EXPECT(r, "int_mulh", bad_mulh, 0);
    EXPECT(r, "int_32bit_ops", bad_w, 0);
    RECORD(r, "int_mix", crc);

    /* sum of i^2 for i < N modulo 2^64 against the closed form */
    const uint64_t nn = 1000000 + (uint64_t)id;
    uint64_t sq = 0;
    for (uint64_t i = 0; i < nn; i++)
        sq += i * i;
    unsigned __int128 f = (unsigned __int128)nn * (nn - 1) * (2 * nn - 1) / 6;
    EXPECT(r, "int_sum_squares", sq, (uint64_t)f);
}

/* ---- shared counters: AMOs, LR/SC compare-and-swap, futex mutex ---- */
#define COUNT_ITERS 100000
static atomic_ulong amo_counter;
static unsigned long cas_counter;
static unsigned long mutex_counter;
static pthread_mutex_t counter_lock = PTHREAD_MUTEX_INITIALIZER;

static void counters(void)
{
    for (int i = 0; i < COUNT_ITERS; i++) {
        atomic_fetch_add_explicit(&amo_counter, 1, memory_order_relaxed);
        unsigned long old = __atomic_load_n(&cas_counter, __ATOMIC_RELAXED);
        while (!__atomic_compare_exchange_n(&cas_counter, &old, old + 1, 1,
                                            __ATOMIC_ACQ_REL, __ATOMIC_RELAXED))
            ;
        if ((i & 15) == 0) {
            pthread_mutex_lock(&counter_lock);
            mutex_counter++;
            pthread_mutex_unlock(&counter_lock);
        }
    }
}

static void workload(int id, struct results *r)
{
    r->n = 0;
    fesetround(FE_TONEAREST);
    sqrt_sums(id, r);
    divisions(id, r);
    fused(id, r);
    strings(id, r);
    nans(id, r);
    excepts(id, r);
    matrix(id, r);
    conversions(id, r);
    rounding(id, r);
    integer(id, r);
}

struct thread_arg {
    int id;
    struct results res;
};

static void *thread_main(void *p)
{
    struct thread_arg *a = p;
    workload(a->id, &a->res);
    counters();
    return NULL;
}

static struct thread_arg args[NTHREADS];
static struct results ref;

int main(int argc, char **argv)
{
    int verbose = argc > 1 && strcmp(argv[1], "-v") == 0;
    int failures = 0;
    pthread_t th[NTHREADS];

    for (int t = 0; t < NTHREADS; t++) {
        args[t].id = t;
        if (pthread_create(&th[t], NULL, thread_main, &args[t]) != 0) {
            printf("fpthreads: FAIL pthread_create %d\n", t);
            return 1;
        }
    }
    for (int t = 0; t < NTHREADS; t++)
        pthread_join(th[t], NULL);

#define FAIL(...) do { if (failures++ < 40) { printf("fpthreads: FAIL " __VA_ARGS__); } } while (0)
    for (int t = 0; t < NTHREADS; t++) {
        workload(t, &ref);   /* single-threaded recomputation */
        struct results *r = &args[t].res;
        if (r->n != ref.n) {
            FAIL("thread=%d check count %d, single-threaded %d\n", t, r->n, ref.n);
            continue;
        }
        for (int i = 0; i < r->n; i++) {
            struct check *c = &r->c[i], *rc = &ref.c[i];
            int ok_const = !c->has_want || c->got == c->want;
            int ok_ref = c->got == rc->got;
            if (verbose) {
                printf("fpthreads: check thread=%d %s got=%016" PRIx64, t, c->name, c->got);
                if (c->has_want)
                    printf(" want=%016" PRIx64, c->want);
                else
                    printf(" want=-");
                if (c->text[0])
                    printf(" text=\"%s\"", c->text);
                printf(" %s\n", ok_const && ok_ref ? "ok" : "BAD");
            }
            if (!ok_const)
                FAIL("thread=%d %s got=%016" PRIx64 " want=%016" PRIx64 "%s%s%s\n", t, c->name,
                     c->got, c->want, c->text[0] ? " text=\"" : "", c->text, c->text[0] ? "\"" : "");
            if (!ok_ref)
                FAIL("thread=%d %s got=%016" PRIx64 " single-threaded=%016" PRIx64 "\n", t, c->name,
                     c->got, rc->got);
            /* the single-threaded run must also meet the constants */
            if (rc->has_want && rc->got != rc->want)
                FAIL("single-threaded(%d) %s got=%016" PRIx64 " want=%016" PRIx64 "\n", t, rc->name,
                     rc->got, rc->want);
        }
    }
    unsigned long want_count = (unsigned long)NTHREADS * COUNT_ITERS;
    unsigned long want_mutex = (unsigned long)NTHREADS * ((COUNT_ITERS + 15) / 16);
    if (atomic_load(&amo_counter) != want_count)
        FAIL("amo_counter got=%lu want=%lu\n", (unsigned long)atomic_load(&amo_counter), want_count);
    if (cas_counter != want_count)
        FAIL("cas_counter got=%lu want=%lu\n", cas_counter, want_count);
    if (mutex_counter != want_mutex)
        FAIL("mutex_counter got=%lu want=%lu\n", mutex_counter, want_mutex);
    if (verbose)
        printf("fpthreads: counters amo=%lu cas=%lu mutex=%lu\n",
               (unsigned long)atomic_load(&amo_counter), cas_counter, mutex_counter);

    if (failures) {
        if (failures > 40)
            printf("fpthreads: FAIL (%d failures in total)\n", failures);
        return 1;
    }
    printf("fpthreads: OK\n");
    return 0;
}
