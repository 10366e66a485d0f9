/* RV64GC -> x86-64 block translation.
 *
 * Guest registers live in struct hart (rbx points at it); each instruction
 * loads its operands, computes in rax/rcx/rdx/rsi/rdi and stores rd back.
 * A block runs from its first instruction to a branch, jump, untranslated
 * SYSTEM/FENCE.I instruction, the page's end, or JIT_MAX_INSNS.
 *
 * instret: inside a block h->instret still holds its value at block entry;
 * each exit adds the instructions completed. A slow path adds the count so
 * far before calling C (so a trap or a CSR read sees the exact value) and
 * takes it back if the block continues.
 *
 * Loads and stores inline the TLB lookup; a miss, a page-crossing access or
 * a write to a page without a write-TLB entry (clean for the dirty log, or
 * holding code) calls jit_load_slow/jit_store_slow, which use cpu_load and
 * cpu_store exactly as the interpreter does. Instructions not translated
 * here (CSRs, SYSTEM, AMO, F/D, FENCE.I, anything new) call jit_fallback:
 * the interpreter, one instruction. */
#include <stddef.h>

#include "cpu/cpu_internal.h"
#include "cpu/icache.h"
#include "cpu/jit_internal.h"
#include "cpu/jit_x86.h"
#include "cpu/lrsc.h"

_Static_assert(sizeof(struct tlb_entry) == 32, "TLB index scaling assumes 32-byte entries");
_Static_assert(TLB_SIZE == 256, "TLB index mask assumes 256 entries");

#define OFF(field) ((int32_t)offsetof(struct hart, field))
#define XR(r) (OFF(x) + 8 * (int32_t)(r))
#define FR(r) (OFF(f) + 8 * (int32_t)(r))

enum stub_kind { STUB_LOAD, STUB_STORE };

/* A slow path emitted after the block's straight-line code. */
struct stub {
    enum stub_kind kind;
    uint8_t *from[2];       /* jcc fields that branch here */
    uint8_t *resume;        /* where the fast path continues */
    unsigned done;          /* instructions completed before this one */
    uint32_t info;
    uint64_t pc;
};

struct tctx {
    struct emit e;
    struct jit *j;
    uint64_t page;          /* virtual page of the block */
    uint8_t *bail;          /* xor eax, eax; jmp epilogue (0 = no chain slot) */
    struct stub stubs[JIT_MAX_INSNS];
    unsigned nstubs;
};

static void emit_bail(struct tctx *t)
{
    /* rax = 0: no chain slot; h->pc and instret were set by the helper. */
    x_u8(&t->e, 0x31);
    x_u8(&t->e, 0xc0);
    x_jmp_to(&t->e, t->j->epilogue);
}

/* Leaves the block with h->pc and instret set: straight into the next
 * block if jit_next finds it, else back to the dispatcher. */
static void emit_exit_lookup(struct tctx *t)
{
    struct emit *e = &t->e;
    x_mov_rr(e, RDI, RBX);
    x_call(e, (const void *)jit_next);
    x_alu_rr(e, ALU_OR, true, RAX, RAX);     /* test: NULL -> epilogue with rax = 0 */
    uint8_t *none = x_jcc(e, CC_E);
    if (!e->overflow)
        x_patch(none, t->j->epilogue);
    x_u8(e, 0xff);
    x_u8(e, 0xe0);                           /* jmp rax */
}

/* Leaves the block for guest pc `target` after `count` instructions. A
 * target in the block's page gets a chain slot the dispatcher can patch to
 * jump straight to the target's block; the inline checks keep the budget,
 * pending interrupts and kicks in force along chains. */
static void emit_exit(struct tctx *t, uint64_t target, unsigned count)
{
    struct emit *e = &t->e;
    x_alu_mi(e, ALU_ADD, RBX, OFF(instret), (int32_t)count);
    if ((target & ~0xfffull) != t->page) {
        x_mov_ri(e, RAX, target);
        x_store(e, RAX, RBX, OFF(pc));
        emit_exit_lookup(t);
        return;
    }
    x_load(e, RAX, RBX, OFF(instret));
    x_alu_rm(e, ALU_CMP, true, RAX, RBX, OFF(jit_limit));
    uint8_t *out1 = x_jcc(e, CC_AE);
    /* cmp byte [rbx+interrupt_check], 0 */
    x_u8(e, 0x80);
    x_modrm_mem(e, 7, RBX, OFF(interrupt_check));
    x_u8(e, 0);
    uint8_t *out2 = x_jcc(e, CC_NE);
    x_load(e, RAX, RBX, OFF(kick));
    x_u8(e, 0x83); x_u8(e, 0x38); x_u8(e, 0x00); /* cmp dword [rax], 0 */
    uint8_t *out3 = x_jcc(e, CC_NE);
    uint8_t *slot = x_jmp(e);
    uint8_t *out = e->p;
    if (!e->overflow) {
        x_patch(out1, out);
        x_patch(out2, out);
        x_patch(out3, out);
        x_patch(slot, out); /* unchained: falls through to the exit */
    }
    x_mov_ri(e, RAX, target);
    x_store(e, RAX, RBX, OFF(pc));
    x_mov_ri(e, RAX, (uint64_t)(uintptr_t)slot);
    x_jmp_to(e, t->j->epilogue);
}

/* Computes the effective address rs1 + imm into rsi and looks up the TLB
 * (read or write) for a `size`-byte access: on a hit rax = host address;
 * otherwise jumps to a stub recorded in *st. */
static void emit_tlb_lookup(struct tctx *t, struct stub *st, unsigned rs1, int32_t imm,
                            unsigned size, bool write)
{
    struct emit *e = &t->e;
    int32_t tlb = write ? OFF(tlb_write) : OFF(tlb_read);
    x_load(e, RSI, RBX, XR(rs1));
    if (imm)
        x_alu_ri(e, ALU_ADD, true, RSI, imm);
    /* The tag is compared with the page of the access's last byte, the
     * entry chosen by its first: an access crossing a page misses. */
    if (size > 1) {
        x_rex(e, true, RCX, RSI, false);           /* lea rcx, [rsi + size - 1] */
        x_u8(e, 0x8d);
        x_u8(e, (uint8_t)(0x40 | (RCX << 3) | RSI));
        x_u8(e, (uint8_t)(size - 1));
    } else {
        x_mov_rr(e, RCX, RSI);
    }
    x_shift_ri(e, SH_SHR, true, RCX, 12);
    x_op_rr(e, 0x89, false, RSI, RDX);            /* mov edx, esi */
    x_shift_ri(e, SH_SHR, false, RDX, 12 - 5);    /* entry index * 32 */
    x_alu_ri(e, ALU_AND, false, RDX, (TLB_SIZE - 1) << 5);
    x_alu_rr(e, ALU_ADD, true, RDX, RBX);
    x_alu_rm(e, ALU_OR, true, RCX, RBX, OFF(ctx_data));
    x_alu_rm(e, ALU_CMP, true, RCX, RDX, tlb + (int32_t)offsetof(struct tlb_entry, tag));
    st->from[0] = x_jcc(e, CC_NE);
    st->from[1] = NULL;
    x_load(e, RAX, RDX, tlb + (int32_t)offsetof(struct tlb_entry, addend));
    x_alu_rr(e, ALU_ADD, true, RAX, RSI);
}

/* Integer loads, and FLW/FLD (NaN-boxed into f[rd], FS made dirty). */
static bool emit_load(struct tctx *t, const struct decoded *d, uint64_t pc, unsigned done)
{
    static const uint8_t sizes[] = {1, 2, 4, 8, 1, 2, 4};
    static const bool sign[] = {true, true, true, false, false, false, false};
    bool fp = d->op == OP_FLW || d->op == OP_FLD;
    unsigned size = fp ? (d->op == OP_FLD ? 8 : 4) : sizes[d->op - OP_LB];
    struct stub *st = &t->stubs[t->nstubs++];
    st->kind = STUB_LOAD;
    st->done = done;
    st->pc = pc;
    st->info = d->rd | (uint32_t)d->op << 8 | (uint32_t)d->len << 16;
    emit_tlb_lookup(t, st, d->rs1, d->imm, size, false);
    x_load_rax_from_rax(&t->e, size, !fp && sign[d->op - OP_LB]);
    if (fp) {
        if (d->op == OP_FLW) {
            x_mov_ri(&t->e, RCX, 0xffffffff00000000ull);
            x_alu_rr(&t->e, ALU_OR, true, RAX, RCX);
        }
        x_store(&t->e, RAX, RBX, FR(d->rd));
        x_alu_mi(&t->e, ALU_OR, RBX, OFF(mstatus), (int32_t)MSTATUS_FS);
    } else {
        x_store(&t->e, RAX, RBX, XR(d->rd));
    }
    st->resume = t->e.p;
    return true;
}

/* Integer stores, and FSW/FSD (the low bits of f[rs2]). */
static bool emit_store(struct tctx *t, const struct decoded *d, uint64_t pc, unsigned done)
{
    bool fp = d->op == OP_FSW || d->op == OP_FSD;
    unsigned size = fp ? (d->op == OP_FSD ? 8 : 4) : 1u << (d->op - OP_SB);
    struct stub *st = &t->stubs[t->nstubs++];
    st->kind = STUB_STORE;
    st->done = done;
    st->pc = pc;
    st->info = size | (uint32_t)d->len << 16;
    x_load(&t->e, RDI, RBX, fp ? FR(d->rs2) : XR(d->rs2));
    emit_tlb_lookup(t, st, d->rs1, d->imm, size, true);
    /* While any hart holds an LR reservation, stores take the slow path,
     * whose cpu_store breaks the reservations they hit (lrsc.h):
     * mov rcx, [rbx+lrsc]; cmp dword [rcx+live], 0; jne stub */
    x_load(&t->e, RCX, RBX, OFF(lrsc));
    x_u8(&t->e, 0x83);
    x_modrm_mem(&t->e, 7, RCX, (int32_t)offsetof(struct lrsc_set, live));
    x_u8(&t->e, 0);
    st->from[1] = x_jcc(&t->e, CC_NE);
    x_store_rdi_to_rax(&t->e, size);
    st->resume = t->e.p;
    return true;
}

static void emit_stubs(struct tctx *t)
{
    struct emit *e = &t->e;
    for (unsigned i = 0; i < t->nstubs; i++) {
        struct stub *st = &t->stubs[i];
        uint8_t *here = e->p;
        if (!e->overflow) {
            x_patch(st->from[0], here);
            if (st->from[1])
                x_patch(st->from[1], here);
        }
        if (st->done)
            x_alu_mi(e, ALU_ADD, RBX, OFF(instret), (int32_t)st->done);
        if (st->kind == STUB_LOAD) {
            /* jit_load_slow(h, va = rsi, info, pc) */
            x_mov_rr(e, RDI, RBX);
            x_mov_ri(e, RDX, st->info);
            x_mov_ri(e, RCX, st->pc);
            x_call(e, (const void *)jit_load_slow);
        } else {
            /* jit_store_slow(h, va = rsi, value = rdi, info, pc) */
            x_mov_rr(e, RDX, RDI);
            x_mov_rr(e, RDI, RBX);
            x_mov_ri(e, RCX, st->info);
            x_mov_ri(e, R8, st->pc);
            x_call(e, (const void *)jit_store_slow);
        }
        x_test_eax(e);
        uint8_t *leave = x_jcc(e, CC_NE);
        if (st->done)
            x_alu_mi(e, ALU_SUB, RBX, OFF(instret), (int32_t)st->done);
        x_jmp_to(e, st->resume);
        if (!e->overflow)
            x_patch(leave, t->bail);
    }
}

/* rd = f(x[rs1], x[rs2]) through a C helper. */
static void emit_call2(struct tctx *t, const struct decoded *d, uint64_t (*fn)(uint64_t, uint64_t))
{
    x_load(&t->e, RDI, RBX, XR(d->rs1));
    x_load(&t->e, RSI, RBX, XR(d->rs2));
    x_call(&t->e, (const void *)fn);
    x_store(&t->e, RAX, RBX, XR(d->rd));
}

/* Integer register-register and register-immediate operations. Returns
 * false for an operation this translator does not handle. */
static bool emit_alu(struct tctx *t, const struct decoded *d)
{
    struct emit *e = &t->e;
    int32_t imm = d->imm;
    int32_t a = XR(d->rs1), b = XR(d->rs2);
    switch (d->op) {
    case OP_ADDI: case OP_XORI: case OP_ORI: case OP_ANDI: {
        enum x86_alu op = d->op == OP_ADDI ? ALU_ADD : d->op == OP_XORI ? ALU_XOR
                        : d->op == OP_ORI ? ALU_OR : ALU_AND;
        if (d->op == OP_XORI && jit_test_mistranslate)
            imm ^= 1;
        x_load(e, RAX, RBX, a);
        if (imm || op == ALU_AND)
            x_alu_ri(e, op, true, RAX, imm);
        break;
    }
    case OP_SLTI: case OP_SLTIU:
        x_load(e, RCX, RBX, a);
        x_u8(e, 0x31); x_u8(e, 0xc0);            /* xor eax, eax (before cmp) */
        x_alu_ri(e, ALU_CMP, true, RCX, imm);
        x_u8(e, 0x0f); x_u8(e, (uint8_t)(0x90 + (d->op == OP_SLTI ? CC_L : CC_B))); x_u8(e, 0xc0);
        break;
    case OP_SLLI: case OP_SRLI: case OP_SRAI:
        x_load(e, RAX, RBX, a);
        x_shift_ri(e, d->op == OP_SLLI ? SH_SHL : d->op == OP_SRLI ? SH_SHR : SH_SAR, true, RAX,
                   (uint8_t)imm);
        break;
    case OP_ADDIW:
        x_load(e, RAX, RBX, a);
        x_alu_ri(e, ALU_ADD, false, RAX, imm);
        x_movsxd_rr(e, RAX, RAX);
        break;
    case OP_SLLIW: case OP_SRLIW: case OP_SRAIW:
        x_load(e, RAX, RBX, a);
        x_shift_ri(e, d->op == OP_SLLIW ? SH_SHL : d->op == OP_SRLIW ? SH_SHR : SH_SAR, false,
                   RAX, (uint8_t)imm);
        x_movsxd_rr(e, RAX, RAX);
        break;
    case OP_ADD: case OP_SUB: case OP_XOR: case OP_OR: case OP_AND:
        x_load(e, RAX, RBX, a);
        x_alu_rm(e, d->op == OP_ADD ? ALU_ADD : d->op == OP_SUB ? ALU_SUB : d->op == OP_XOR ? ALU_XOR
                    : d->op == OP_OR ? ALU_OR : ALU_AND, true, RAX, RBX, b);
        break;
    case OP_ADDW: case OP_SUBW:
        x_load(e, RAX, RBX, a);
        x_alu_rm(e, d->op == OP_ADDW ? ALU_ADD : ALU_SUB, false, RAX, RBX, b);
        x_movsxd_rr(e, RAX, RAX);
        break;
    case OP_SLT: case OP_SLTU:
        x_load(e, RCX, RBX, a);
        x_u8(e, 0x31); x_u8(e, 0xc0);            /* xor eax, eax */
        x_alu_rm(e, ALU_CMP, true, RCX, RBX, b);
        x_u8(e, 0x0f); x_u8(e, (uint8_t)(0x90 + (d->op == OP_SLT ? CC_L : CC_B))); x_u8(e, 0xc0);
        break;
    case OP_SLL: case OP_SRL: case OP_SRA:
    case OP_SLLW: case OP_SRLW: case OP_SRAW: {
        bool w = d->op == OP_SLL || d->op == OP_SRL || d->op == OP_SRA;
        enum x86_shift sh = (d->op == OP_SLL || d->op == OP_SLLW) ? SH_SHL
                          : (d->op == OP_SRL || d->op == OP_SRLW) ? SH_SHR : SH_SAR;
        x_load(e, RAX, RBX, a);
        x_load(e, RCX, RBX, b);     /* x86 masks the count to 63 (31) as RISC-V does */
        x_shift_cl(e, sh, w, RAX);
        if (!w)
            x_movsxd_rr(e, RAX, RAX);
        break;
    }
    case OP_MUL: case OP_MULW:
        x_load(e, RAX, RBX, a);
        x_imul_rm(e, d->op == OP_MUL, RAX, RBX, b);
        if (d->op == OP_MULW)
            x_movsxd_rr(e, RAX, RAX);
        break;
    case OP_MULH: case OP_MULHU:
        x_load(e, RAX, RBX, a);
        x_mul_m(e, d->op == OP_MULH ? 5 : 4, RBX, b);
        x_mov_rr(e, RAX, RDX);
        break;
    case OP_MULHSU: emit_call2(t, d, jit_mulhsu); return true;
    case OP_DIV: emit_call2(t, d, jit_div); return true;
    case OP_DIVU: emit_call2(t, d, jit_divu); return true;
    case OP_REM: emit_call2(t, d, jit_rem); return true;
    case OP_REMU: emit_call2(t, d, jit_remu); return true;
    case OP_DIVW: emit_call2(t, d, jit_divw); return true;
    case OP_DIVUW: emit_call2(t, d, jit_divuw); return true;
    case OP_REMW: emit_call2(t, d, jit_remw); return true;
    case OP_REMUW: emit_call2(t, d, jit_remuw); return true;
    default:
        return false;
    }
    x_store(e, RAX, RBX, XR(d->rd));
    return true;
}

/* One instruction through jit_fallback; the block continues if it
 * returns 0. */
static void emit_fallback(struct tctx *t, const struct decoded *d, uint32_t insn, uint64_t pc,
                          unsigned done)
{
    struct emit *e = &t->e;
    if (done)
        x_alu_mi(e, ALU_ADD, RBX, OFF(instret), (int32_t)done);
    x_mov_rr(e, RDI, RBX);
    x_mov_ri(e, RSI, insn);
    x_mov_ri(e, RDX, pc);
    x_mov_ri(e, RCX, d->len | (uint32_t)d->op << 8);
    x_mov_ri(e, R8, d->raw);
    x_call(e, (const void *)jit_fallback);
    x_test_eax(e);
    uint8_t *leave = x_jcc(e, CC_NE);
    if (!e->overflow)
        x_patch(leave, t->bail);
    /* Completed and continuing: instret is back at its block-entry value. */
    x_alu_mi(e, ALU_SUB, RBX, OFF(instret), (int32_t)(done + 1));
}

/* An F/D operation: a direct call of fpu_exec (it cannot redirect pc,
 * raise an interrupt or write memory); a trap leaves the block. */
static void emit_fp_direct(struct tctx *t, const struct decoded *d, uint64_t pc, unsigned done)
{
    struct emit *e = &t->e;
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
}

/* test dword [rbx+mstatus], MSTATUS_FS; the returned jz goes to `off`. */
static uint8_t *emit_fs_off_check(struct emit *e)
{
    x_u8(e, 0xf7);
    x_modrm_mem(e, 0, RBX, OFF(mstatus));
    x_u32(e, (uint32_t)MSTATUS_FS);
    return x_jcc(e, CC_E);
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
    case 0x71: /* FMV.X.D */
        if (rs2 != 0 || f3 != 0)
            return false;
        slow[nslow++] = emit_fs_off_check(e);
        if (rd) {
            x_load(e, RAX, RBX, FR(rs1));
            x_store(e, RAX, RBX, XR(rd));
        }
        break;
    case 0x79: /* FMV.D.X */
        if (rs2 != 0 || f3 != 0)
            return false;
        slow[nslow++] = emit_fs_off_check(e);
        x_load(e, RAX, RBX, XR(rs1));
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
static void emit_fp_mem(struct tctx *t, const struct decoded *d, uint64_t pc, unsigned done)
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
        emit_load(t, d, pc, done);
    else
        emit_store(t, d, pc, done);
    if (!e->overflow)
        x_patch(after, e->p);
}

static enum x86_cc branch_cc(unsigned op)
{
    switch (op) {
    case OP_BEQ: return CC_E;
    case OP_BNE: return CC_NE;
    case OP_BLT: return CC_L;
    case OP_BGE: return CC_GE;
    case OP_BLTU: return CC_B;
    default: return CC_AE; /* OP_BGEU */
    }
}

/* Emits one instruction at guest pc `cur`, after `count` instructions of
 * the block. Returns true when it ends the block. */
static bool translate_one(struct tctx *t, const struct decoded *d, uint32_t insn, uint64_t cur,
                          unsigned count)
{
    struct emit *e = &t->e;
    uint64_t next = cur + d->len;
    switch (d->op) {
    case OP_NOP:
        break;
    case OP_LUI:
        x_mov_ri(e, RAX, (uint64_t)(int64_t)d->imm);
        x_store(e, RAX, RBX, XR(d->rd));
        break;
    case OP_AUIPC:
        x_mov_ri(e, RAX, cur + (uint64_t)(int64_t)d->imm);
        x_store(e, RAX, RBX, XR(d->rd));
        break;
    case OP_JAL:
        x_mov_ri(e, RAX, next);
        x_store(e, RAX, RBX, XR(d->rd));
        emit_exit(t, cur + (uint64_t)(int64_t)d->imm, count + 1);
        return true;
    case OP_JALR:
        /* Target first: rd may be rs1. */
        x_load(e, RCX, RBX, XR(d->rs1));
        if (d->imm)
            x_alu_ri(e, ALU_ADD, true, RCX, d->imm);
        x_alu_ri(e, ALU_AND, true, RCX, -2);
        x_store(e, RCX, RBX, OFF(pc));
        x_mov_ri(e, RAX, next);
        x_store(e, RAX, RBX, XR(d->rd));
        x_alu_mi(e, ALU_ADD, RBX, OFF(instret), (int32_t)(count + 1));
        emit_exit_lookup(t);
        return true;
    case OP_BEQ: case OP_BNE: case OP_BLT: case OP_BGE: case OP_BLTU: case OP_BGEU: {
        x_load(e, RAX, RBX, XR(d->rs1));
        x_alu_rm(e, ALU_CMP, true, RAX, RBX, XR(d->rs2));
        uint8_t *taken = x_jcc(e, branch_cc(d->op));
        emit_exit(t, next, count + 1);
        if (!e->overflow)
            x_patch(taken, e->p);
        emit_exit(t, cur + (uint64_t)(int64_t)d->imm, count + 1);
        return true;
    }
    case OP_LB: case OP_LH: case OP_LW: case OP_LD: case OP_LBU: case OP_LHU: case OP_LWU:
        emit_load(t, d, cur, count);
        break;
    case OP_SB: case OP_SH: case OP_SW: case OP_SD:
        emit_store(t, d, cur, count);
        break;
    case OP_FP:
        if (!emit_fp_native(t, d, cur, count))
            emit_fp_direct(t, d, cur, count);
        break;
    case OP_FLW: case OP_FLD: case OP_FSW: case OP_FSD:
        emit_fp_mem(t, d, cur, count);
        break;
    default:
        if (emit_alu(t, d))
            break;
        emit_fallback(t, d, insn, cur, count);
        if (d->op == OP_SYSTEM || d->op == OP_FENCE_I || d->op == OP_ILLEGAL) {
            /* jit_fallback always leaves after these; the exit below
             * is never reached. */
            emit_exit(t, next, count + 1);
            return true;
        }
        break;
    }
    return false;
}

enum jit_translate_result jit_translate(struct jit *j, struct hart *h, uint64_t pc,
                                        uint64_t ppc, const uint8_t *host_page,
                                        struct jit_block **out)
{
    /* Room for the largest block (128 instructions and their stubs): a
     * block cut short at its start would be empty and loop on itself. */
    if (j->nblocks >= JIT_MAX_BLOCKS || j->code_end - j->code_ptr < JIT_BLOCK_ROOM)
        return JIT_FULL;
    static __thread struct tctx tc;
    struct tctx *t = &tc;
    t->j = j;
    (void)h; /* code does not depend on the hart's state at translation */
    t->page = pc & ~0xfffull;
    t->nstubs = 0;
    t->e = (struct emit){.p = j->code_ptr, .end = j->code_end};
    struct emit *e = &t->e;

    /* The shared bail-out sequence comes first; the block's entry follows. */
    t->bail = e->p;
    emit_bail(t);
    uint8_t *entry = e->p;

    unsigned count = 0;
    uint64_t cur = pc;
    bool ended = false;
    while (!ended) {
        unsigned off = cur & 0xfff;
        if (count == JIT_MAX_INSNS || e->overflow) {
            emit_exit(t, cur, count);
            break;
        }
        uint16_t lo;
        memcpy(&lo, host_page + off, 2);
        uint32_t insn = lo;
        if ((lo & 3) == 3) {
            if (off == 0xffe) {     /* the other half is on the next page */
                if (count == 0)
                    return JIT_CROSSING;
                emit_exit(t, cur, count);
                break;
            }
            memcpy(&insn, host_page + off, 4);
        }
        struct decoded d;
        icache_decode(&d, insn);
        ended = translate_one(t, &d, insn, cur, count);
        count++;
        cur += d.len;
        if (!ended && (cur & ~0xfffull) != t->page) {
            emit_exit(t, cur, count);   /* ran off the page's end */
            ended = true;
        }
    }
    emit_stubs(t);
    if (e->overflow)
        return JIT_FULL;
    struct jit_block *b = &j->blocks[j->nblocks++];
    b->vpc = pc;
    b->ppc = ppc;
    b->code = entry;
    b->next = NULL;
    j->code_ptr = e->p;
    *out = b;
    return JIT_OK;
}
