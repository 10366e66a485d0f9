/* Internals of the F/D unit, exposed for unit tests only.
 *
 * The FPU runs RNE/RTZ/RDN/RUP on the host's IEEE hardware and everything in
 * RMM (which the host lacks) through an exact software path. The software
 * path implements all five rounding modes, so tests can cross-check it
 * against the hardware path. */
#ifndef FERRY_CPU_FPU_INTERNAL_H
#define FERRY_CPU_FPU_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

enum fpu_soft_op {
    FPU_OP_ADD,     /* a + b */
    FPU_OP_SUB,     /* a - b */
    FPU_OP_MUL,     /* a * b */
    FPU_OP_DIV,     /* a / b */
    FPU_OP_SQRT,    /* sqrt(a) */
    FPU_OP_FMA,     /* a * b + c, one rounding */
    FPU_OP_CVT_SD,  /* binary64 a -> binary32 (dbl must be false) */
    FPU_OP_CVT_W,   /* int32 in a -> float */
    FPU_OP_CVT_WU,  /* uint32 in a -> float */
    FPU_OP_CVT_L,   /* int64 in a -> float */
    FPU_OP_CVT_LU,  /* uint64 in a -> float */
};

/* Computes `op` in binary64 (dbl) or binary32 (!dbl; operands and result are
 * raw 32-bit encodings, not NaN-boxed) with RISC-V rounding mode rm (0..4).
 * NaN results are canonical. RISC-V fflags bits are ORed into *flags. */
uint64_t fpu_soft_op(unsigned op, bool dbl, uint64_t a, uint64_t b, uint64_t c,
                     unsigned rm, unsigned *flags);

#endif
