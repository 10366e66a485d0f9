/* The translator's F/D operations: binary64 arithmetic, compares, sign
 * injection and moves inline on the FPU's own fast-path conditions,
 * everything else through fpu_exec; FP loads and stores; frflags and
 * fsflags. */
#include "cpu/jit_emit.h"

/* test dword [rbx+mstatus], MSTATUS_FS; the returned jz goes to `off`. */
static uint8_t *emit_fs_off_check(struct emit *e)
{
    x_u8(e, 0xf7);
    x_modrm_mem(e, 0, RBX, OFF(mstatus));
    x_u32(e, (uint32_t)MSTATUS_FS);
    return x_jcc(e, CC_E);
}

/* frflags rd (csrrs rd, fflags, x0) and fsflags rd, rs (csrrw rd,
 * fflags, rs) inline while mstatus.FS is on (csr.c's rules: FS off is an
 * illegal instruction, a write makes FS dirty); anything else, or FS
 * off, through jit_fallback. */
void jit_emit_fflags_csr(struct tctx *t, const struct decoded *d, uint32_t insn, uint64_t pc,
                         unsigned done)
{
    struct emit *e = &t->e;
    unsigned f3 = (insn >> 12) & 7, rd = (insn >> 7) & 31, rs1 = (insn >> 15) & 31;
    if ((insn >> 20) != 1 || !(f3 == 1 || (f3 == 2 && rs1 == 0))) {
        jit_emit_fallback(t, d, insn, pc, done);
        return;
    }
    uint8_t *off = emit_fs_off_check(e);
    if (f3 == 1)
        ld_x(t, RCX, rs1);
    x_u8(e, 0x0f); x_u8(e, 0xb6);                   /* movzx eax, byte [fflags] */
    x_modrm_mem(e, RAX, RBX, OFF(fflags));
    if (f3 == 1) {
        x_alu_ri(e, ALU_AND, false, RCX, 0x1f);
        x_op_rm(e, 0x88, false, RCX, RBX, OFF(fflags));   /* mov [fflags], cl */
        x_alu_mi(e, ALU_OR, RBX, OFF(mstatus), (int32_t)MSTATUS_FS);
    }
    st_x(t, RAX, rd);
    uint8_t *done_jmp = x_jmp(e);
    if (!e->overflow)
        x_patch(off, e->p);
    /* FS off: the interpreter raises the trap (and the block is left). A
     * side path: the registers stay marked dirty. */
    uint32_t dirty = t->dirty;
    jit_emit_fallback(t, d, insn, pc, done);
    t->dirty = dirty;
    if (!e->overflow)
        x_patch(done_jmp, e->p);
}

/* An F/D operation: a direct call of fpu_exec (it cannot redirect pc,
 * raise an interrupt or write memory); a trap leaves the block. */
static void emit_fp_direct(struct tctx *t, const struct decoded *d, uint64_t pc, unsigned done)
{
    struct emit *e = &t->e;
    /* FMV.D.X, FCVT read x[rs1]. Only a write-back, the registers stay
     * marked dirty: this may be a side path (the FP fast paths'). */
    emit_writeback(t, t->dirty);
    x_mov_ri(e, RAX, pc);
    x_store(e, RAX, RBX, OFF(pc));          /* a trap reports this pc */
    x_mov_rr(e, RDI, RBX);
    x_mov_ri(e, RSI, d->raw);
    x_call(e, (const void *)fpu_exec);
    /* mov qword [rbx+x0], 0: fmv.x/fcvt/fcmp may have written x0 */
    x_rex(e, true, 0, RBX, false);
    x_u8(e, 0xc7);
    x_modrm_mem(e, 0, RBX, XR(0));
    x_u32(e, 0);
    x_u8(e, 0x84); x_u8(e, 0xc0);            /* test al, al */
    uint8_t *ok = x_jcc(e, CC_NE);
    /* Trapped: counted, as hart_run counts it; pc is the handler's. */
    x_alu_mi(e, ALU_ADD, RBX, OFF(instret), (int32_t)(done + 1));
    emit_bail(t);
    if (!e->overflow)
        x_patch(ok, e->p);
    emit_reload(t);                         /* FMV.X.D, FCVT, compares write x[rd] */
}

/* SSE2 scalar double op xmm0, [rbx+disp] (F2 0F opc). */
static void emit_sse_sd(struct emit *e, uint8_t opc, int32_t disp)
{
    x_u8(e, 0xf2);
    x_u8(e, 0x0f);
    x_u8(e, opc);
    x_modrm_mem(e, 0, RBX, disp);
}

/* The FPU's fast-path conditions: FS on, NX already set, rounding to
 * nearest (static, or dynamic with frm = RNE). Failing jumps go in slow[]. */
static void emit_fast_guards(struct tctx *t, unsigned rm, uint8_t **slow, unsigned *nslow)
{
    struct emit *e = &t->e;
    slow[(*nslow)++] = emit_fs_off_check(e);
    x_u8(e, 0xf6);                                  /* test byte [rbx+fflags], NX */
    x_modrm_mem(e, 0, RBX, OFF(fflags));
    x_u8(e, FFLAG_NX);
    slow[(*nslow)++] = x_jcc(e, CC_E);
    if (rm == RM_DYN) {
        x_u8(e, 0x80);                              /* cmp byte [rbx+frm], RNE */
        x_modrm_mem(e, 7, RBX, OFF(frm));
        x_u8(e, RM_RNE);
        slow[(*nslow)++] = x_jcc(e, CC_NE);
    }
}

/* The result in rax is kept when normal and finite (no flag can be
 * raised then), else the slow path recomputes it. */
static void emit_fast_result(struct tctx *t, unsigned rd, uint8_t **slow, unsigned *nslow)
{
    struct emit *e = &t->e;
    /* (|r| - minnormal - 1) below (inf - minnormal - 1), unsigned */
    x_mov_rr(e, RCX, RAX);
    x_shift_ri(e, SH_SHL, true, RCX, 1);
    x_shift_ri(e, SH_SHR, true, RCX, 1);
    x_mov_ri(e, RDX, 0x0010000000000001ull);
    x_alu_rr(e, ALU_SUB, true, RCX, RDX);
    x_mov_ri(e, RDX, 0x7fdfffffffffffffull);
    x_alu_rr(e, ALU_CMP, true, RCX, RDX);
    slow[(*nslow)++] = x_jcc(e, CC_AE);
    x_store(e, RAX, RBX, FR(rd));
    x_alu_mi(e, ALU_OR, RBX, OFF(mstatus), (int32_t)MSTATUS_FS);
}

/* Binary64 operations inline, the rest through the FPU:
 *  - FADD/FSUB/FMUL/FDIV/FSQRT.D and the four FMAs in round-to-nearest
 *    with NX already set and a normal finite result: exactly the FPU's own fast path (no flag
 *    can change); anything else runs fpu_exec;
 *  - FSGNJ[N|X].D, FMV.X.D, FMV.D.X: bit moves.
 * Returns false when the operation is not one of these. */
static bool emit_fp_native(struct tctx *t, const struct decoded *d, uint64_t pc, unsigned done)
{
    struct emit *e = &t->e;
    uint32_t raw = d->raw;
    unsigned f7 = raw >> 25, f3 = (raw >> 12) & 7;
    unsigned rd = (raw >> 7) & 31, rs1 = (raw >> 15) & 31, rs2 = (raw >> 20) & 31;
    uint8_t *slow[4];
    unsigned nslow = 0;
    unsigned opc = raw & 0x7f;
    if (opc == 0x43 || opc == 0x47 || opc == 0x4b || opc == 0x4f) {
        /* FMADD/FMSUB/FNMSUB/FNMADD.D: a * b + c with one rounding on
         * the host's FMA unit (the FPU's fast path uses fma() alike). */
        unsigned rs3 = raw >> 27;
        if (!t->j->have_fma || ((raw >> 25) & 3) != 1 || (f3 != RM_RNE && f3 != RM_DYN))
            return false;
        emit_fast_guards(t, f3, slow, &nslow);
        x_load(e, RAX, RBX, FR(rs1));
        x_load(e, RCX, RBX, FR(rs2));
        x_load(e, RDX, RBX, FR(rs3));
        x_mov_ri(e, RSI, 0x8000000000000000ull);
        if (opc == 0x4b || opc == 0x4f)                 /* negate the product */
            x_alu_rr(e, ALU_XOR, true, RAX, RSI);
        if (opc == 0x47 || opc == 0x4f)                 /* subtract the addend */
            x_alu_rr(e, ALU_XOR, true, RDX, RSI);
        static const uint8_t seq[] = {
            0x66, 0x48, 0x0f, 0x6e, 0xc0,   /* movq xmm0, rax */
            0x66, 0x48, 0x0f, 0x6e, 0xc9,   /* movq xmm1, rcx */
            0x66, 0x48, 0x0f, 0x6e, 0xd2,   /* movq xmm2, rdx */
            0xc4, 0xe2, 0xf9, 0xb9, 0xd1,   /* vfmadd231sd xmm2, xmm0, xmm1 */
            0x66, 0x48, 0x0f, 0x7e, 0xd0,   /* movq rax, xmm2 */
        };
        for (size_t i = 0; i < sizeof seq; i++)
            x_u8(e, seq[i]);
        emit_fast_result(t, rd, slow, &nslow);
    } else if (opc != 0x53) {
        return false;
    } else switch (f7) {
    case 0x01: case 0x05: case 0x09: case 0x0d: case 0x2d: {
        static const uint8_t sse[] = {[0x01 >> 2] = 0x58, [0x05 >> 2] = 0x5c, [0x09 >> 2] = 0x59,
                                      [0x0d >> 2] = 0x5e, [0x2d >> 2] = 0x51};
        if ((f3 != RM_RNE && f3 != RM_DYN) || (f7 == 0x2d && rs2 != 0))
            return false;
        emit_fast_guards(t, f3, slow, &nslow);
        if (f7 == 0x2d) {
            emit_sse_sd(e, 0x51, FR(rs1));          /* sqrtsd xmm0, [rs1] */
        } else {
            emit_sse_sd(e, 0x10, FR(rs1));          /* movsd xmm0, [rs1] */
            emit_sse_sd(e, sse[f7 >> 2], FR(rs2));
        }
        x_u8(e, 0x66); x_u8(e, 0x48); x_u8(e, 0x0f); x_u8(e, 0x7e); x_u8(e, 0xc0); /* movq rax, xmm0 */
        emit_fast_result(t, rd, slow, &nslow);
        break;
    }
    case 0x11: /* FSGNJ.D, FSGNJN.D, FSGNJX.D */
        if (f3 > 2)
            return false;
        slow[nslow++] = emit_fs_off_check(e);
        x_load(e, RAX, RBX, FR(rs1));
        x_shift_ri(e, SH_SHL, true, RAX, 1);
        x_shift_ri(e, SH_SHR, true, RAX, 1);        /* |a| */
        x_load(e, RCX, RBX, FR(rs2));
        if (f3 == 1)
            x_u8(e, 0x48), x_u8(e, 0xf7), x_u8(e, 0xd1);  /* not rcx */
        else if (f3 == 2)
            x_alu_rm(e, ALU_XOR, true, RCX, RBX, FR(rs1));
        x_shift_ri(e, SH_SHR, true, RCX, 63);
        x_shift_ri(e, SH_SHL, true, RCX, 63);       /* the sign */
        x_alu_rr(e, ALU_OR, true, RAX, RCX);
        x_store(e, RAX, RBX, FR(rd));
        x_alu_mi(e, ALU_OR, RBX, OFF(mstatus), (int32_t)MSTATUS_FS);
        break;
    case 0x51: /* FLE.D, FLT.D, FEQ.D: ordered operands raise no flag */
        if (f3 > 2)
            return false;
        slow[nslow++] = emit_fs_off_check(e);
        emit_sse_sd(e, 0x10, FR(rs1));              /* movsd xmm0, [rs1] */
        x_u8(e, 0x66); x_u8(e, 0x0f); x_u8(e, 0x2e);  /* ucomisd xmm0, [rs2] */
        x_modrm_mem(e, 0, RBX, FR(rs2));
        slow[nslow++] = x_jcc(e, CC_P);             /* a NaN: the FPU decides the flags */
        x_setcc_rax(e, f3 == 2 ? CC_E : f3 == 1 ? CC_B : CC_BE);
        st_x(t, RAX, rd);
        break;
    case 0x71: /* FMV.X.D */
        if (rs2 != 0 || f3 != 0)
            return false;
        slow[nslow++] = emit_fs_off_check(e);
        x_load(e, RAX, RBX, FR(rs1));
        st_x(t, RAX, rd);
        break;
    case 0x79: /* FMV.D.X */
        if (rs2 != 0 || f3 != 0)
            return false;
        slow[nslow++] = emit_fs_off_check(e);
        ld_x(t, RAX, rs1);
        x_store(e, RAX, RBX, FR(rd));
        x_alu_mi(e, ALU_OR, RBX, OFF(mstatus), (int32_t)MSTATUS_FS);
        break;
    default:
        return false;
    }
    uint8_t *done_jmp = x_jmp(e);
    for (unsigned i = 0; i < nslow && !e->overflow; i++)
        x_patch(slow[i], e->p);
    emit_fp_direct(t, d, pc, done);
    if (!e->overflow)
        x_patch(done_jmp, e->p);
    return true;
}

/* FLW/FLD/FSW/FSD inline when mstatus.FS is on; otherwise through the FPU,
 * which raises illegal instruction. */
void jit_emit_fp_mem(struct tctx *t, const struct decoded *d, uint64_t pc, unsigned done)
{
    struct emit *e = &t->e;
    /* test dword [rbx+mstatus], MSTATUS_FS */
    x_u8(e, 0xf7);
    x_modrm_mem(e, 0, RBX, OFF(mstatus));
    x_u32(e, (uint32_t)MSTATUS_FS);
    uint8_t *on = x_jcc(e, CC_NE);
    emit_fp_direct(t, d, pc, done);
    uint8_t *after = x_jmp(e);
    if (!e->overflow)
        x_patch(on, e->p);
    if (d->op == OP_FLW || d->op == OP_FLD)
        jit_emit_load(t, d, pc, done);
    else
        jit_emit_store(t, d, pc, done);
    if (!e->overflow)
        x_patch(after, e->p);
}

/* An F/D operation: inline when emit_fp_native knows it, else fpu_exec. */
void jit_emit_fp(struct tctx *t, const struct decoded *d, uint64_t pc, unsigned done)
{
    if (!emit_fp_native(t, d, pc, done))
        emit_fp_direct(t, d, pc, done);
}
