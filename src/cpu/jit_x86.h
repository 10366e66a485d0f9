/* A small x86-64 instruction emitter for the translator: only the forms it
 * uses. Memory operands are always [base + disp32] with a base that is
 * neither rsp nor r12 (no SIB byte needed). */
#ifndef FERRY_CPU_JIT_X86_H
#define FERRY_CPU_JIT_X86_H

#include <stdbool.h>
#include <stdint.h>
#include <string.h>

enum x86_reg { RAX, RCX, RDX, RBX, RSP, RBP, RSI, RDI, R8, R9, R10, R11, R12, R13, R14, R15 };

/* Condition codes (the low nibble of Jcc / SETcc). */
enum x86_cc {
    CC_B = 0x2, CC_AE = 0x3, CC_E = 0x4, CC_NE = 0x5, CC_BE = 0x6, CC_A = 0x7,
    CC_P = 0xa, CC_L = 0xc, CC_GE = 0xd, CC_LE = 0xe, CC_G = 0xf,
};

/* Group-1 ALU operations: opcode extension for 81/83, and the "r, r/m"
 * opcode is ext*8+3, the "r/m, r" one ext*8+1. */
enum x86_alu { ALU_ADD = 0, ALU_OR = 1, ALU_AND = 4, ALU_SUB = 5, ALU_XOR = 6, ALU_CMP = 7 };
/* Group-2 shifts (C1 / D3 extension). */
enum x86_shift { SH_SHL = 4, SH_SHR = 5, SH_SAR = 7 };

struct emit {
    uint8_t *p, *end;
    bool overflow;       /* ran past end: the block is discarded */
};

static inline void x_u8(struct emit *e, uint8_t b)
{
    if (e->p < e->end)
        *e->p++ = b;
    else
        e->overflow = true;
}
static inline void x_u32(struct emit *e, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        x_u8(e, (uint8_t)(v >> (8 * i)));
}
static inline void x_u64(struct emit *e, uint64_t v)
{
    x_u32(e, (uint32_t)v);
    x_u32(e, (uint32_t)(v >> 32));
}

/* REX prefix; `force` for byte registers spl..dil. */
static inline void x_rex(struct emit *e, bool w, int reg, int base, bool force)
{
    uint8_t r = (uint8_t)(0x40 | (w ? 8 : 0) | ((reg & 8) ? 4 : 0) | ((base & 8) ? 1 : 0));
    if (r != 0x40 || force)
        x_u8(e, r);
}
static inline void x_modrm_mem(struct emit *e, int reg, int base, int32_t disp)
{
    x_u8(e, (uint8_t)(0x80 | ((reg & 7) << 3) | (base & 7)));
    x_u32(e, (uint32_t)disp);
}
static inline void x_modrm_rr(struct emit *e, int reg, int rm)
{
    x_u8(e, (uint8_t)(0xc0 | ((reg & 7) << 3) | (rm & 7)));
}

/* REX with an index register too. */
static inline void x_rex3(struct emit *e, bool w, int reg, int index, int base, bool force)
{
    uint8_t r = (uint8_t)(0x40 | (w ? 8 : 0) | ((reg & 8) ? 4 : 0) | ((index & 8) ? 2 : 0) |
                          ((base & 8) ? 1 : 0));
    if (r != 0x40 || force)
        x_u8(e, r);
}
/* ModRM (+SIB) for [base + disp] with any base, disp8 when it fits. */
static inline void x_modrm_base(struct emit *e, int reg, int base, int32_t disp)
{
    bool d8 = disp >= -128 && disp <= 127;
    x_u8(e, (uint8_t)((d8 ? 0x40 : 0x80) | ((reg & 7) << 3) | ((base & 7) == 4 ? 4 : (base & 7))));
    if ((base & 7) == 4)
        x_u8(e, 0x24);
    if (d8)
        x_u8(e, (uint8_t)disp);
    else
        x_u32(e, (uint32_t)disp);
}
/* ModRM + SIB for [base + index + disp32] (index not rsp). */
static inline void x_modrm_sib(struct emit *e, int reg, int base, int index, int32_t disp)
{
    x_u8(e, (uint8_t)(0x80 | ((reg & 7) << 3) | 4));
    x_u8(e, (uint8_t)(((index & 7) << 3) | (base & 7)));
    x_u32(e, (uint32_t)disp);
}
/* lea reg, [base + disp] (64-bit) */
static inline void x_lea(struct emit *e, int reg, int base, int32_t disp)
{
    x_rex(e, true, reg, base, false);
    x_u8(e, 0x8d);
    x_modrm_base(e, reg, base, disp);
}
/* mov reg, [base + index + disp32] (64-bit) */
static inline void x_load_sib(struct emit *e, int reg, int base, int index, int32_t disp)
{
    x_rex3(e, true, reg, index, base, false);
    x_u8(e, 0x8b);
    x_modrm_sib(e, reg, base, index, disp);
}
/* cmp reg, [base + index + disp32] (64-bit) */
static inline void x_cmp_sib(struct emit *e, int reg, int base, int index, int32_t disp)
{
    x_rex3(e, true, reg, index, base, false);
    x_u8(e, 0x3b);
    x_modrm_sib(e, reg, base, index, disp);
}
/* reg = `size` bytes at [rax + rsi], sign- or zero-extended to 64 bits. */
static inline void x_load_rax_rsi(struct emit *e, int reg, unsigned size, bool sign)
{
    bool w = sign || size == 8;
    if (size == 4 && sign) {
        x_rex3(e, true, reg, RSI, RAX, false);
        x_u8(e, 0x63);                                  /* movsxd */
    } else if (size >= 4) {
        x_rex3(e, w, reg, RSI, RAX, false);
        x_u8(e, 0x8b);
    } else {
        x_rex3(e, w, reg, RSI, RAX, false);
        x_u8(e, 0x0f);
        x_u8(e, (uint8_t)((sign ? 0xbe : 0xb6) + (size == 2)));
    }
    x_u8(e, (uint8_t)(((reg & 7) << 3) | 4));           /* [rax + rsi] */
    x_u8(e, (uint8_t)((RSI << 3) | RAX));
}
/* `size` bytes at [rax + rsi] = reg */
static inline void x_store_rax_rsi(struct emit *e, int reg, unsigned size)
{
    if (size == 2)
        x_u8(e, 0x66);
    x_rex3(e, size == 8, reg, RSI, RAX, size == 1);     /* REX: sil/dil/bpl */
    x_u8(e, size == 1 ? 0x88 : 0x89);
    x_u8(e, (uint8_t)(((reg & 7) << 3) | 4));
    x_u8(e, (uint8_t)((RSI << 3) | RAX));
}
/* rorx r32, rm32, imm (BMI2) */
static inline void x_rorx32(struct emit *e, int reg, int rm, uint8_t n)
{
    x_u8(e, 0xc4);
    x_u8(e, (uint8_t)(((reg & 8) ? 0 : 0x80) | 0x40 | ((rm & 8) ? 0 : 0x20) | 0x03));
    x_u8(e, 0x7b);
    x_u8(e, 0xf0);
    x_modrm_rr(e, reg, rm);
    x_u8(e, n);
}

/* opc reg, [base+disp] (or the store direction, by opcode). */
static inline void x_op_rm(struct emit *e, uint8_t opc, bool w, int reg, int base, int32_t disp)
{
    x_rex(e, w, reg, base, false);
    x_u8(e, opc);
    x_modrm_mem(e, reg, base, disp);
}
/* opc rm, reg: register to register. */
static inline void x_op_rr(struct emit *e, uint8_t opc, bool w, int reg, int rm)
{
    x_rex(e, w, reg, rm, false);
    x_u8(e, opc);
    x_modrm_rr(e, reg, rm);
}

static inline void x_load(struct emit *e, int reg, int base, int32_t disp)
{
    x_op_rm(e, 0x8b, true, reg, base, disp);
}
static inline void x_store(struct emit *e, int reg, int base, int32_t disp)
{
    x_op_rm(e, 0x89, true, reg, base, disp);
}
/* alu reg, [base+disp] */
static inline void x_alu_rm(struct emit *e, enum x86_alu op, bool w, int reg, int base, int32_t disp)
{
    x_op_rm(e, (uint8_t)(op * 8 + 3), w, reg, base, disp);
}
/* alu rm, reg */
static inline void x_alu_rr(struct emit *e, enum x86_alu op, bool w, int rm, int reg)
{
    x_op_rr(e, (uint8_t)(op * 8 + 1), w, reg, rm);
}
/* alu rm, imm32 (sign-extended) */
static inline void x_alu_ri(struct emit *e, enum x86_alu op, bool w, int rm, int32_t imm)
{
    x_rex(e, w, 0, rm, false);
    if (imm >= -128 && imm <= 127) {
        x_u8(e, 0x83);
        x_modrm_rr(e, op, rm);
        x_u8(e, (uint8_t)imm);
    } else {
        x_u8(e, 0x81);
        x_modrm_rr(e, op, rm);
        x_u32(e, (uint32_t)imm);
    }
}
/* alu qword [base+disp], imm32 */
static inline void x_alu_mi(struct emit *e, enum x86_alu op, int base, int32_t disp, int32_t imm)
{
    x_rex(e, true, 0, base, false);
    if (imm >= -128 && imm <= 127) {
        x_u8(e, 0x83);
        x_modrm_mem(e, op, base, disp);
        x_u8(e, (uint8_t)imm);
    } else {
        x_u8(e, 0x81);
        x_modrm_mem(e, op, base, disp);
        x_u32(e, (uint32_t)imm);
    }
}
static inline void x_mov_ri(struct emit *e, int reg, uint64_t imm)
{
    if (imm <= 0xffffffffull) {            /* mov r32, imm32 zero-extends */
        x_rex(e, false, 0, reg, false);
        x_u8(e, (uint8_t)(0xb8 + (reg & 7)));
        x_u32(e, (uint32_t)imm);
    } else if ((int64_t)imm == (int32_t)imm) { /* mov r/m64, simm32 */
        x_rex(e, true, 0, reg, false);
        x_u8(e, 0xc7);
        x_modrm_rr(e, 0, reg);
        x_u32(e, (uint32_t)imm);
    } else {
        x_rex(e, true, 0, reg, false);
        x_u8(e, (uint8_t)(0xb8 + (reg & 7)));
        x_u64(e, imm);
    }
}
static inline void x_mov_rr(struct emit *e, int dst, int src)
{
    x_op_rr(e, 0x89, true, src, dst);
}
static inline void x_shift_ri(struct emit *e, enum x86_shift op, bool w, int rm, uint8_t n)
{
    x_rex(e, w, 0, rm, false);
    x_u8(e, 0xc1);
    x_modrm_rr(e, op, rm);
    x_u8(e, n);
}
static inline void x_shift_cl(struct emit *e, enum x86_shift op, bool w, int rm)
{
    x_rex(e, w, 0, rm, false);
    x_u8(e, 0xd3);
    x_modrm_rr(e, op, rm);
}
/* movsxd reg, rm32 */
static inline void x_movsxd_rr(struct emit *e, int reg, int rm)
{
    x_op_rr(e, 0x63, true, reg, rm);
}
/* imul reg, rm (register form) */
static inline void x_imul_rr(struct emit *e, bool w, int reg, int rm)
{
    x_rex(e, w, reg, rm, false);
    x_u8(e, 0x0f);
    x_u8(e, 0xaf);
    x_modrm_rr(e, reg, rm);
}
/* F7 /ext rm: 3 = neg, 4 = mul, 5 = imul (rdx:rax = rax * rm), 6 = div,
 * 7 = idiv (rdx:rax / rm) */
static inline void x_f7_r(struct emit *e, int ext, bool w, int rm)
{
    x_rex(e, w, 0, rm, false);
    x_u8(e, 0xf7);
    x_modrm_rr(e, ext, rm);
}
/* test rm, reg */
static inline void x_test_rr(struct emit *e, bool w, int rm, int reg)
{
    x_op_rr(e, 0x85, w, reg, rm);
}
/* xor reg32, reg32: reg = 0 */
static inline void x_zero(struct emit *e, int reg)
{
    x_op_rr(e, 0x31, false, reg, reg);
}
/* setcc al; movzx eax, al */
static inline void x_setcc_rax(struct emit *e, enum x86_cc cc)
{
    x_u8(e, 0x0f);
    x_u8(e, (uint8_t)(0x90 + cc));
    x_u8(e, 0xc0);
    x_u8(e, 0x0f);
    x_u8(e, 0xb6);
    x_u8(e, 0xc0);
}

/* Jumps with a 32-bit displacement; the return value is the displacement
 * field, for x_patch. */
static inline uint8_t *x_jcc(struct emit *e, enum x86_cc cc)
{
    x_u8(e, 0x0f);
    x_u8(e, (uint8_t)(0x80 + cc));
    uint8_t *field = e->p;
    x_u32(e, 0);
    return field;
}
static inline uint8_t *x_jmp(struct emit *e)
{
    x_u8(e, 0xe9);
    uint8_t *field = e->p;
    x_u32(e, 0);
    return field;
}
/* Points the rel32 field at `target`. */
static inline void x_patch(uint8_t *field, const uint8_t *target)
{
    int32_t rel = (int32_t)(target - (field + 4));
    memcpy(field, &rel, 4);
}
static inline void x_jmp_to(struct emit *e, const uint8_t *target)
{
    uint8_t *f = x_jmp(e);
    if (!e->overflow)
        x_patch(f, target);
}
/* call an absolute address (through rax). */
static inline void x_call(struct emit *e, const void *fn)
{
    x_mov_ri(e, RAX, (uint64_t)(uintptr_t)fn);
    x_u8(e, 0xff);
    x_u8(e, 0xd0);
}
static inline void x_test_eax(struct emit *e)
{
    x_u8(e, 0x85);
    x_u8(e, 0xc0);
}

#endif
