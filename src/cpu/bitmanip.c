/* Zba (address generation), Zbb (basic bit manipulation), Zbs (single-bit
 * operations) and Zicond (conditional zero): register-to-register
 * operations without traps or memory, decoded in icache.c and executed
 * here by both the cached and the uncached paths. Compilers emit them only
 * when told to (-march=..._zba_zbb...), so they are not on the hot path. */
#include "cpu/icache.h"

static uint64_t sx32(uint64_t v) { return (uint64_t)(int64_t)(int32_t)v; }

static uint64_t rotl64(uint64_t v, unsigned n)
{
    n &= 63;
    return n ? (v << n) | (v >> (64 - n)) : v;
}

static uint32_t rotr32(uint32_t v, unsigned n)
{
    n &= 31;
    return n ? (v >> n) | (v << (32 - n)) : v;
}

static uint64_t rotr64(uint64_t v, unsigned n) { return rotl64(v, 64 - (n & 63)); }

/* orc.b: each byte becomes 0xff if any of its bits is set, else 0. */
static uint64_t orc_b(uint64_t v)
{
    uint64_t r = 0;
    for (unsigned i = 0; i < 64; i += 8)
        if ((v >> i) & 0xff)
            r |= 0xffull << i;
    return r;
}

uint64_t cpu_bitmanip(unsigned op, uint64_t a, uint64_t b, int64_t imm)
{
    unsigned sh = (unsigned)imm & 63;
    switch (op) {
    /* Zba */
    case OP_SH1ADD: return (a << 1) + b;
    case OP_SH2ADD: return (a << 2) + b;
    case OP_SH3ADD: return (a << 3) + b;
    case OP_ADD_UW: return (uint64_t)(uint32_t)a + b;
    case OP_SH1ADD_UW: return ((uint64_t)(uint32_t)a << 1) + b;
    case OP_SH2ADD_UW: return ((uint64_t)(uint32_t)a << 2) + b;
    case OP_SH3ADD_UW: return ((uint64_t)(uint32_t)a << 3) + b;
    case OP_SLLI_UW: return (uint64_t)(uint32_t)a << sh;
    /* Zbb */
    case OP_ANDN: return a & ~b;
    case OP_ORN: return a | ~b;
    case OP_XNOR: return ~(a ^ b);
    case OP_CLZ: return a ? (uint64_t)__builtin_clzll(a) : 64;
    case OP_CLZW: return (uint32_t)a ? (uint64_t)__builtin_clz((uint32_t)a) : 32;
    case OP_CTZ: return a ? (uint64_t)__builtin_ctzll(a) : 64;
    case OP_CTZW: return (uint32_t)a ? (uint64_t)__builtin_ctz((uint32_t)a) : 32;
    case OP_CPOP: return (uint64_t)__builtin_popcountll(a);
    case OP_CPOPW: return (uint64_t)__builtin_popcount((uint32_t)a);
    case OP_MAX: return (int64_t)a > (int64_t)b ? a : b;
    case OP_MAXU: return a > b ? a : b;
    case OP_MIN: return (int64_t)a < (int64_t)b ? a : b;
    case OP_MINU: return a < b ? a : b;
    case OP_SEXT_B: return (uint64_t)(int64_t)(int8_t)a;
    case OP_SEXT_H: return (uint64_t)(int64_t)(int16_t)a;
    case OP_ZEXT_H: return (uint16_t)a;
    case OP_ROL: return rotl64(a, (unsigned)b);
    case OP_ROLW: return sx32(rotr32((uint32_t)a, 32 - ((unsigned)b & 31)));
    case OP_ROR: return rotr64(a, (unsigned)b);
    case OP_RORI: return rotr64(a, sh);
    case OP_RORW: return sx32(rotr32((uint32_t)a, (unsigned)b));
    case OP_RORIW: return sx32(rotr32((uint32_t)a, sh));
    case OP_ORC_B: return orc_b(a);
    case OP_REV8: return __builtin_bswap64(a);
    /* Zbs: the bit index is rs2 or the immediate, modulo 64 */
    case OP_BCLR: return a & ~(1ull << (b & 63));
    case OP_BCLRI: return a & ~(1ull << sh);
    case OP_BEXT: return (a >> (b & 63)) & 1;
    case OP_BEXTI: return (a >> sh) & 1;
    case OP_BINV: return a ^ (1ull << (b & 63));
    case OP_BINVI: return a ^ (1ull << sh);
    case OP_BSET: return a | (1ull << (b & 63));
    case OP_BSETI: return a | (1ull << sh);
    /* Zicond */
    case OP_CZERO_EQZ: return b == 0 ? 0 : a;
    default: return b != 0 ? 0 : a; /* OP_CZERO_NEZ */
    }
}
