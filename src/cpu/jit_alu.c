/* The translator's integer operations: RV64I/M register and immediate
 * forms, computed in the destination's host register where it has one
 * (jit_emit.h), division inline, Zb* through cpu_bitmanip. */
#include "cpu/jit_emit.h"

/* rd = f(x[rs1], x[rs2]) through a C helper (pure: reads and writes no
 * guest state, so only the caller-saved held registers need reloading). */
static void emit_call2(struct tctx *t, const struct decoded *d, uint64_t (*fn)(uint64_t, uint64_t))
{
    ld_x(t, RDI, d->rs1);
    ld_x(t, RSI, d->rs2);
    emit_sync(t);
    x_call(&t->e, (const void *)fn);
    emit_reload(t);
    st_x(t, RAX, d->rd);
}

/* Division inline, with the spec's results for a zero divisor (quotient
 * all ones, remainder the dividend) and for signed overflow (quotient the
 * dividend, remainder 0), which x86 would fault on. */
static void emit_div(struct tctx *t, const struct decoded *d)
{
    struct emit *e = &t->e;
    bool w = d->op == OP_DIVW || d->op == OP_DIVUW || d->op == OP_REMW || d->op == OP_REMUW;
    bool sign = d->op == OP_DIV || d->op == OP_REM || d->op == OP_DIVW || d->op == OP_REMW;
    bool rem = d->op == OP_REM || d->op == OP_REMU || d->op == OP_REMW || d->op == OP_REMUW;
    ld_x(t, RAX, d->rs1);
    ld_x(t, RCX, d->rs2);
    x_test_rr(e, !w, RCX, RCX);
    uint8_t *zero = x_jcc(e, CC_E);
    uint8_t *minus1_done = NULL;
    if (sign) {
        x_alu_ri(e, ALU_CMP, !w, RCX, -1);
        uint8_t *normal = x_jcc(e, CC_NE);
        if (rem)
            x_zero(e, RAX);
        else
            x_f7_r(e, 3, !w, RAX);              /* neg: the overflow case wraps */
        minus1_done = x_jmp(e);
        if (!e->overflow)
            x_patch(normal, e->p);
        if (!w)
            x_u8(e, 0x48);
        x_u8(e, 0x99);                          /* cqo / cdq */
        x_f7_r(e, 7, !w, RCX);                  /* idiv */
    } else {
        x_zero(e, RDX);
        x_f7_r(e, 6, !w, RCX);                  /* div */
    }
    if (rem)
        x_mov_rr(e, RAX, RDX);
    uint8_t *done = x_jmp(e);
    if (!e->overflow)
        x_patch(zero, e->p);
    if (!rem)
        x_mov_ri(e, RAX, UINT64_MAX);           /* remainder: rax is the dividend */
    if (!e->overflow) {
        x_patch(done, e->p);
        if (minus1_done)
            x_patch(minus1_done, e->p);
    }
    if (w)
        x_movsxd_rr(e, RAX, RAX);
    st_x(t, RAX, d->rd);
}

/* Zba/Zbb/Zbs/Zicond through cpu_bitmanip (pure). */
static void emit_bitmanip(struct tctx *t, const struct decoded *d)
{
    ld_x(t, RSI, d->rs1);
    ld_x(t, RDX, d->rs2);
    emit_sync(t);
    x_mov_ri(&t->e, RDI, d->op);
    x_mov_ri(&t->e, RCX, (uint64_t)(int64_t)d->imm);
    x_call(&t->e, (const void *)cpu_bitmanip);
    emit_reload(t);
    st_x(t, RAX, d->rd);
}

static enum x86_alu alu_of(unsigned op)
{
    switch (op) {
    case OP_ADDI: case OP_ADD: case OP_ADDW: case OP_ADDIW: return ALU_ADD;
    case OP_SUB: case OP_SUBW: return ALU_SUB;
    case OP_XORI: case OP_XOR: return ALU_XOR;
    case OP_ORI: case OP_OR: return ALU_OR;
    default: return ALU_AND;
    }
}

static enum x86_shift shift_of(unsigned op)
{
    switch (op) {
    case OP_SLLI: case OP_SLLIW: case OP_SLL: case OP_SLLW: return SH_SHL;
    case OP_SRLI: case OP_SRLIW: case OP_SRL: case OP_SRLW: return SH_SHR;
    default: return SH_SAR;
    }
}

/* x[rd] = x[rs1] op x[rs2], computed in rd's host register when it has
 * one (op: a group-1 ALU operation, or -1 for imul); 32-bit and
 * sign-extended when w. */
static void emit_binop(struct tctx *t, const struct decoded *d, int op, bool w)
{
    struct emit *e = &t->e;
    int dst = dst_x(t, d->rd);
    bool commutes = op != ALU_SUB;
    if (dst != RAX && dst == t->host[d->rs2] && d->rs1 != d->rs2) {
        if (!commutes) {
            dst = RAX;
        } else {
            /* rd = rs2: rd op= rs1 */
            int a = src_x(t, d->rs1, RCX);
            if (op < 0)
                x_imul_rr(e, !w, dst, a);
            else
                x_alu_rr(e, (enum x86_alu)op, !w, dst, a);
            goto done;
        }
    }
    ld_x(t, dst, d->rs1);
    int b = src_x(t, d->rs2, RCX);
    if (op < 0)
        x_imul_rr(e, !w, dst, b);
    else
        x_alu_rr(e, (enum x86_alu)op, !w, dst, b);
done:
    if (w)
        x_movsxd_rr(e, dst, dst);
    st_x(t, dst, d->rd);
}

/* Integer register-register and register-immediate operations, computed
 * in rax (rd's own host register when it has one and is no source the
 * operation still needs). Returns false for an operation this
 * translator does not handle. */
bool jit_emit_alu(struct tctx *t, const struct decoded *d)
{
    struct emit *e = &t->e;
    int32_t imm = d->imm;
    switch (d->op) {
    case OP_ADDI: case OP_XORI: case OP_ORI: case OP_ANDI: {
        enum x86_alu op = alu_of(d->op);
        if (d->op == OP_XORI && jit_test_mistranslate)
            imm ^= 1;
        int r = dst_x(t, d->rd);
        int a = src_x(t, d->rs1, r);
        if (op == ALU_ADD && a != r) {
            x_lea(e, r, a, imm);
        } else {
            if (a != r)
                x_mov_rr(e, r, a);
            if (imm || op == ALU_AND)
                x_alu_ri(e, op, true, r, imm);
        }
        st_x(t, r, d->rd);
        return true;
    }
    case OP_SLTI: case OP_SLTIU:
        ld_x(t, RCX, d->rs1);
        x_zero(e, RAX);                           /* before cmp */
        x_alu_ri(e, ALU_CMP, true, RCX, imm);
        x_u8(e, 0x0f); x_u8(e, (uint8_t)(0x90 + (d->op == OP_SLTI ? CC_L : CC_B))); x_u8(e, 0xc0);
        break;
    case OP_SLLI: case OP_SRLI: case OP_SRAI: {
        int r = dst_x(t, d->rd);
        ld_x(t, r, d->rs1);
        x_shift_ri(e, shift_of(d->op), true, r, (uint8_t)imm);
        st_x(t, r, d->rd);
        return true;
    }
    case OP_ADDIW: {
        int r = dst_x(t, d->rd);
        if (imm == 0) {                           /* sext.w */
            x_movsxd_rr(e, r, src_x(t, d->rs1, r));
        } else {
            ld_x(t, r, d->rs1);
            x_alu_ri(e, ALU_ADD, false, r, imm);
            x_movsxd_rr(e, r, r);
        }
        st_x(t, r, d->rd);
        return true;
    }
    case OP_SLLIW: case OP_SRLIW: case OP_SRAIW: {
        int r = dst_x(t, d->rd);
        ld_x(t, r, d->rs1);
        x_shift_ri(e, shift_of(d->op), false, r, (uint8_t)imm);
        x_movsxd_rr(e, r, r);
        st_x(t, r, d->rd);
        return true;
    }
    case OP_ADD: case OP_SUB: case OP_XOR: case OP_OR: case OP_AND:
        emit_binop(t, d, alu_of(d->op), false);
        return true;
    case OP_ADDW: case OP_SUBW:
        emit_binop(t, d, alu_of(d->op), true);
        return true;
    case OP_SLT: case OP_SLTU:
        ld_x(t, RCX, d->rs1);
        ld_x(t, RDX, d->rs2);
        x_zero(e, RAX);
        x_alu_rr(e, ALU_CMP, true, RCX, RDX);
        x_u8(e, 0x0f); x_u8(e, (uint8_t)(0x90 + (d->op == OP_SLT ? CC_L : CC_B))); x_u8(e, 0xc0);
        break;
    case OP_SLL: case OP_SRL: case OP_SRA:
    case OP_SLLW: case OP_SRLW: case OP_SRAW: {
        bool w = d->op == OP_SLL || d->op == OP_SRL || d->op == OP_SRA;
        int r = dst_x(t, d->rd);
        ld_x(t, RCX, d->rs2);     /* x86 masks the count to 63 (31) as RISC-V does */
        ld_x(t, r, d->rs1);       /* (may overwrite rs2's register: rd = rs2) */
        x_shift_cl(e, shift_of(d->op), w, r);
        if (!w)
            x_movsxd_rr(e, r, r);
        st_x(t, r, d->rd);
        return true;
    }
    case OP_MUL: case OP_MULW:
        emit_binop(t, d, -1, d->op == OP_MULW);
        return true;
    case OP_MULH: case OP_MULHU:
        ld_x(t, RAX, d->rs1);
        ld_x(t, RCX, d->rs2);
        x_f7_r(e, d->op == OP_MULH ? 5 : 4, true, RCX);
        x_mov_rr(e, RAX, RDX);
        break;
    case OP_MULHSU: emit_call2(t, d, jit_mulhsu); return true;
    case OP_DIV: case OP_DIVU: case OP_REM: case OP_REMU:
    case OP_DIVW: case OP_DIVUW: case OP_REMW: case OP_REMUW:
        emit_div(t, d);
        return true;
    default:
        if (d->op >= OP_BITMANIP_FIRST && d->op <= OP_BITMANIP_LAST) {
            emit_bitmanip(t, d);
            return true;
        }
        return false;
    }
    st_x(t, RAX, d->rd);
    return true;
}
