/* RV64C: each 16-bit instruction is expanded to the 32-bit instruction it
 * stands for, so the executor has one implementation of every operation. */
#include "cpu/rvc.h"

static uint32_t enc_r(uint32_t op, uint32_t rd, uint32_t f3, uint32_t rs1, uint32_t rs2,
                      uint32_t f7)
{
    return f7 << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}

static uint32_t enc_i(uint32_t op, uint32_t rd, uint32_t f3, uint32_t rs1, int32_t imm)
{
    return ((uint32_t)imm & 0xfff) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | op;
}

static uint32_t enc_s(uint32_t op, uint32_t f3, uint32_t rs1, uint32_t rs2, int32_t imm)
{
    uint32_t u = (uint32_t)imm;
    return ((u >> 5) & 0x7f) << 25 | rs2 << 20 | rs1 << 15 | f3 << 12 | (u & 0x1f) << 7 | op;
}

static uint32_t enc_b(uint32_t f3, uint32_t rs1, uint32_t rs2, int32_t imm)
{
    uint32_t u = (uint32_t)imm;
    return ((u >> 12) & 1) << 31 | ((u >> 5) & 0x3f) << 25 | rs2 << 20 | rs1 << 15 |
           f3 << 12 | ((u >> 1) & 0xf) << 8 | ((u >> 11) & 1) << 7 | 0x63;
}

static uint32_t enc_j(uint32_t rd, int32_t imm)
{
    uint32_t u = (uint32_t)imm;
    return ((u >> 20) & 1) << 31 | ((u >> 1) & 0x3ff) << 21 | ((u >> 11) & 1) << 20 |
           ((u >> 12) & 0xff) << 12 | rd << 7 | 0x6f;
}

static int32_t sext(uint32_t v, int bits)
{
    return (int32_t)(v << (32 - bits)) >> (32 - bits);
}

enum { OP_LOAD = 0x03, OP_LOAD_FP = 0x07, OP_IMM = 0x13, OP_IMM32 = 0x1b, OP_STORE = 0x23,
       OP_STORE_FP = 0x27, OP_REG = 0x33, OP_LUI = 0x37, OP_REG32 = 0x3b, OP_JALR = 0x67 };

static uint32_t expand_q0(uint32_t c)
{
    uint32_t rd_ = 8 + ((c >> 2) & 7), rs1_ = 8 + ((c >> 7) & 7);
    uint32_t off_d = ((c >> 7) & 0x38) | ((c << 1) & 0xc0);
    uint32_t off_w = ((c >> 7) & 0x38) | ((c >> 4) & 4) | ((c << 1) & 0x40);
    switch (c >> 13) {
    case 0: { /* C.ADDI4SPN */
        uint32_t imm = ((c >> 7) & 0x30) | ((c >> 1) & 0x3c0) | ((c >> 4) & 4) | ((c >> 2) & 8);
        return imm ? enc_i(OP_IMM, rd_, 0, 2, (int32_t)imm) : 0;
    }
    case 1: return enc_i(OP_LOAD_FP, rd_, 3, rs1_, (int32_t)off_d);   /* C.FLD */
    case 2: return enc_i(OP_LOAD, rd_, 2, rs1_, (int32_t)off_w);      /* C.LW */
    case 3: return enc_i(OP_LOAD, rd_, 3, rs1_, (int32_t)off_d);      /* C.LD */
    case 5: return enc_s(OP_STORE_FP, 3, rs1_, rd_, (int32_t)off_d);  /* C.FSD */
    case 6: return enc_s(OP_STORE, 2, rs1_, rd_, (int32_t)off_w);     /* C.SW */
    case 7: return enc_s(OP_STORE, 3, rs1_, rd_, (int32_t)off_d);     /* C.SD */
    default: return 0;
    }
}

static uint32_t expand_q1(uint32_t c)
{
    uint32_t rd = (c >> 7) & 31;
    int32_t imm6 = sext(((c >> 7) & 0x20) | ((c >> 2) & 0x1f), 6);
    uint32_t rs1_ = 8 + ((c >> 7) & 7), rs2_ = 8 + ((c >> 2) & 7);
    switch (c >> 13) {
    case 0: return enc_i(OP_IMM, rd, 0, rd, imm6);                      /* C.ADDI / C.NOP */
    case 1: return rd ? enc_i(OP_IMM32, rd, 0, rd, imm6) : 0;           /* C.ADDIW */
    case 2: return enc_i(OP_IMM, rd, 0, 0, imm6);                       /* C.LI */
    case 3:
        if (rd == 2) { /* C.ADDI16SP */
            int32_t imm = sext(((c >> 3) & 0x200) | ((c >> 2) & 0x10) | ((c << 1) & 0x40) |
                               ((c << 4) & 0x180) | ((c << 3) & 0x20), 10);
            return imm ? enc_i(OP_IMM, 2, 0, 2, imm) : 0;
        }
        if (imm6 == 0 || rd == 0)
            return 0;
        return ((uint32_t)imm6 << 12) | rd << 7 | OP_LUI;              /* C.LUI */
    case 4: {
        uint32_t shamt = ((c >> 7) & 0x20) | ((c >> 2) & 0x1f);
        switch ((c >> 10) & 3) {
        case 0: return enc_i(OP_IMM, rs1_, 5, rs1_, (int32_t)shamt);          /* C.SRLI */
        case 1: return enc_i(OP_IMM, rs1_, 5, rs1_, (int32_t)(shamt | 0x400)); /* C.SRAI */
        case 2: return enc_i(OP_IMM, rs1_, 7, rs1_, imm6);                     /* C.ANDI */
        default:
            if (!(c & 0x1000)) {
                static const uint32_t f3[4] = {0, 4, 6, 7};
                uint32_t sel = (c >> 5) & 3;
                return enc_r(OP_REG, rs1_, f3[sel], rs1_, rs2_, sel == 0 ? 0x20 : 0);
            }
            switch ((c >> 5) & 3) {
            case 0: return enc_r(OP_REG32, rs1_, 0, rs1_, rs2_, 0x20);   /* C.SUBW */
            case 1: return enc_r(OP_REG32, rs1_, 0, rs1_, rs2_, 0);      /* C.ADDW */
            default: return 0;
            }
        }
    }
    case 5: { /* C.J */
        int32_t imm = sext(((c >> 1) & 0x800) | ((c >> 7) & 0x10) | ((c >> 1) & 0x300) |
                           ((c << 2) & 0x400) | ((c >> 1) & 0x40) | ((c << 1) & 0x80) |
                           ((c >> 2) & 0xe) | ((c << 3) & 0x20), 12);
        return enc_j(0, imm);
    }
    default: { /* C.BEQZ, C.BNEZ */
        int32_t imm = sext(((c >> 4) & 0x100) | ((c >> 7) & 0x18) | ((c << 1) & 0xc0) |
                           ((c >> 2) & 6) | ((c << 3) & 0x20), 9);
        return enc_b((c >> 13) == 6 ? 0 : 1, rs1_, 0, imm);
    }
    }
}

static uint32_t expand_q2(uint32_t c)
{
    uint32_t rd = (c >> 7) & 31, rs2 = (c >> 2) & 31;
    uint32_t off_d = ((c >> 7) & 0x20) | ((c >> 2) & 0x18) | ((c << 4) & 0x1c0);
    uint32_t off_w = ((c >> 7) & 0x20) | ((c >> 2) & 0x1c) | ((c << 4) & 0xc0);
    uint32_t soff_d = ((c >> 7) & 0x38) | ((c >> 1) & 0x1c0);
    uint32_t soff_w = ((c >> 7) & 0x3c) | ((c >> 1) & 0xc0);
    switch (c >> 13) {
    case 0: { /* C.SLLI */
        uint32_t shamt = ((c >> 7) & 0x20) | rs2;
        return enc_i(OP_IMM, rd, 1, rd, (int32_t)shamt);
    }
    case 1: return enc_i(OP_LOAD_FP, rd, 3, 2, (int32_t)off_d);          /* C.FLDSP */
    case 2: return rd ? enc_i(OP_LOAD, rd, 2, 2, (int32_t)off_w) : 0;    /* C.LWSP */
    case 3: return rd ? enc_i(OP_LOAD, rd, 3, 2, (int32_t)off_d) : 0;    /* C.LDSP */
    case 4:
        if (!(c & 0x1000)) {
            if (rs2 == 0)
                return rd ? enc_i(OP_JALR, 0, 0, rd, 0) : 0;           /* C.JR */
            return enc_r(OP_REG, rd, 0, 0, rs2, 0);                    /* C.MV */
        }
        if (rs2 == 0)
            return rd ? enc_i(OP_JALR, 1, 0, rd, 0) : 0x00100073;     /* C.JALR / C.EBREAK */
        return enc_r(OP_REG, rd, 0, rd, rs2, 0);                       /* C.ADD */
    case 5: return enc_s(OP_STORE_FP, 3, 2, rs2, (int32_t)soff_d);      /* C.FSDSP */
    case 6: return enc_s(OP_STORE, 2, 2, rs2, (int32_t)soff_w);         /* C.SWSP */
    default: return enc_s(OP_STORE, 3, 2, rs2, (int32_t)soff_d);        /* C.SDSP */
    }
}

uint32_t rvc_expand(uint16_t c)
{
    switch (c & 3) {
    case 0: return expand_q0(c);
    case 1: return expand_q1(c);
    case 2: return expand_q2(c);
    default: return 0;
    }
}
