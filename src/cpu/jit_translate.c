/* RV64GC -> x86-64 block translation.
 *
 * Guest registers live in struct hart (rbx points at it). Within a block
 * the most used ones are held in host registers (see `struct regalloc`):
 * loaded at the block's entry, written back before every exit and every
 * call into C (so helpers, traps and the next block see exact state), and
 * reloaded after a call. The others are loaded and stored per
 * instruction. Instructions compute in rax/rcx/rdx/rsi/rdi. A block runs from its first instruction to a branch, jump, untranslated
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
    uint32_t dirty;         /* guest registers to write back before the call */
    uint8_t *from[2];       /* jcc fields that branch here */
    uint8_t *resume;        /* where the fast path continues */
    unsigned done;          /* instructions completed before this one */
    int8_t value;           /* store: host register holding the value */
    uint8_t *slot_miss;     /* load: jcc taken when its slot's addend is stale */
    uint8_t *slot_hit;      /* where it continues once the slot is refreshed */
    int32_t slot_off;       /* offset of the slot in struct hart */
    int32_t tlb_off;        /* offset of the TLB array in struct hart */
    uint32_t info;
    uint64_t pc;
};

/* Host registers that hold guest registers within a block: the
 * callee-saved ones the entry stub saves, and caller-saved ones no emitted
 * sequence uses as scratch (every C call is followed by a reload). */
static const uint8_t alloc_regs[] = {RBP, R12, R13, R14, R15, R9, R10, R11};
#define NALLOC (sizeof alloc_regs)

struct tctx {
    struct emit e;
    struct jit *j;
    int8_t host[33];        /* host register holding guest x[r], or -1 */
    uint32_t allocated;     /* guest registers held in host registers */
    uint32_t dirty;         /* of those, written since the last write-back */
    uint64_t page;          /* virtual page of the block */
    uint64_t start;         /* guest pc of the block's first instruction */
    uint8_t *body;          /* code after the entry's register loads */
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

/* reg = x[r] */
static void ld_x(struct tctx *t, int reg, unsigned r)
{
    int hr = t->host[r];
    if (hr >= 0) {
        if (hr != reg)
            x_mov_rr(&t->e, reg, hr);
    } else if (r == 0) {
        x_zero(&t->e, reg);
    } else {
        x_load(&t->e, reg, RBX, XR(r));
    }
}

/* x[r] = reg (r = 32: x0 as destination, discarded) */
static void st_x(struct tctx *t, int reg, unsigned r)
{
    if (r == 0 || r == 32)
        return;
    int hr = t->host[r];
    if (hr >= 0) {
        if (hr != reg)
            x_mov_rr(&t->e, hr, reg);
        t->dirty |= 1u << r;
    } else {
        x_store(&t->e, reg, RBX, XR(r));
    }
}

/* The host register holding x[r]: its own, or `scratch` loaded. */
static int src_x(struct tctx *t, unsigned r, int scratch)
{
    if (t->host[r] >= 0)
        return t->host[r];
    ld_x(t, scratch, r);
    return scratch;
}

/* Where to compute a result for x[rd]: its own host register, or rax. */
static int dst_x(struct tctx *t, unsigned rd)
{
    return t->host[rd] >= 0 ? t->host[rd] : RAX;
}

/* Writes the held registers in `dirty` back to struct hart. */
static void emit_writeback(struct tctx *t, uint32_t dirty)
{
    for (unsigned r = 1; r < 32; r++)
        if (dirty & (1u << r))
            x_store(&t->e, t->host[r], RBX, XR(r));
}

/* Loads every held register from struct hart (block entry, after C). */
static void emit_reload(struct tctx *t)
{
    for (unsigned r = 1; r < 32; r++)
        if (t->allocated & (1u << r))
            x_load(&t->e, t->host[r], RBX, XR(r));
}

/* Before a call on the block's main path that may read or write guest
 * registers: write back; after it, emit_reload (and all are clean). */
static void emit_sync(struct tctx *t)
{
    emit_writeback(t, t->dirty);
    t->dirty = 0;
}

/* Leaves the block with h->pc and instret set: straight into the next
 * block if jit_next finds it, else back to the dispatcher. */
static void emit_exit_lookup(struct tctx *t)
{
    struct emit *e = &t->e;
    emit_writeback(t, t->dirty);
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
    if ((target & ~0xfffull) != t->page) {
        x_alu_mi(e, ALU_ADD, RBX, OFF(instret), (int32_t)count);
        /* emit_exit_lookup writes the registers back */
        x_mov_ri(e, RAX, target);
        x_store(e, RAX, RBX, OFF(pc));
        emit_exit_lookup(t);
        return;
    }
    emit_writeback(t, t->dirty);
    bool self = target == t->start; /* a loop on this block: past its loads */
    /* instret += count, compared from the register (no reload of the
     * store just made) */
    x_load(e, RAX, RBX, OFF(instret));
    x_alu_ri(e, ALU_ADD, true, RAX, (int32_t)count);
    x_store(e, RAX, RBX, OFF(instret));
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
        /* unchained: falls through to the exit */
        x_patch(slot, self ? t->body : out);
    }
    x_mov_ri(e, RAX, target);
    x_store(e, RAX, RBX, OFF(pc));
    if (self)
        x_zero(e, RAX);     /* no slot: the jump is already direct */
    else
        x_mov_ri(e, RAX, (uint64_t)(uintptr_t)slot);
    x_jmp_to(e, t->j->epilogue);
}

/* Computes the effective address rs1 + imm into rsi and looks up the TLB
 * (read or write) for a `size`-byte access: on a hit rax = the host
 * address less the guest one (the access is at [rax + rsi]); otherwise
 * jumps to a stub recorded in *st. */
static void emit_tlb_lookup(struct tctx *t, struct stub *st, unsigned rs1, int32_t imm,
                            unsigned size, bool write, bool slot)
{
    struct emit *e = &t->e;
    int32_t tlb = write ? OFF(tlb_write) : OFF(tlb_read);
    int base = src_x(t, rs1, RSI);
    if (imm)
        x_lea(e, RSI, base, imm);
    else if (base != RSI)
        x_mov_rr(e, RSI, base);
    /* The tag is compared with the page of the access's last byte, the
     * entry chosen by its first: an access crossing a page misses. */
    if (size > 1)
        x_lea(e, RCX, RSI, (int32_t)size - 1);
    else
        x_mov_rr(e, RCX, RSI);
    x_shift_ri(e, SH_SHR, true, RCX, 12);
    if (t->j->have_bmi2) {
        x_rorx32(e, RDX, RSI, 12 - 5);             /* entry index * 32, in bits 5..12 */
    } else {
        x_op_rr(e, 0x89, false, RSI, RDX);        /* mov edx, esi */
        x_shift_ri(e, SH_SHR, false, RDX, 12 - 5);
    }
    x_alu_ri(e, ALU_AND, false, RDX, (TLB_SIZE - 1) << 5);
    x_alu_rm(e, ALU_OR, true, RCX, RBX, OFF(ctx_data));
    st->slot_miss = NULL;
    if (slot) {
        /* The addend this load used last, loaded without waiting for the
         * address: the access below then depends on the address alone,
         * while the checks that it is still the TLB's run beside it. */
        st->slot_off = OFF(jit_load_slot) + 8 * (int32_t)(t->j->next_slot++ % JIT_LOAD_SLOTS);
        st->tlb_off = tlb;
        x_load(e, RAX, RBX, st->slot_off);
    }
    x_cmp_sib(e, RCX, RBX, RDX, tlb + (int32_t)offsetof(struct tlb_entry, tag));
    st->from[0] = x_jcc(e, CC_NE);
    st->from[1] = NULL;
    if (slot) {
        x_cmp_sib(e, RAX, RBX, RDX, tlb + (int32_t)offsetof(struct tlb_entry, addend));
        st->slot_miss = x_jcc(e, CC_NE);
        st->slot_hit = e->p;
    } else {
        x_load_sib(e, RAX, RBX, RDX, tlb + (int32_t)offsetof(struct tlb_entry, addend));
    }
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
    st->dirty = t->dirty;
    emit_tlb_lookup(t, st, d->rs1, d->imm, size, false, true);
    int dst = fp ? RAX : dst_x(t, d->rd);
    x_load_rax_rsi(&t->e, dst, size, !fp && sign[d->op - OP_LB]);
    if (fp) {
        if (d->op == OP_FLW) {
            x_mov_ri(&t->e, RCX, 0xffffffff00000000ull);
            x_alu_rr(&t->e, ALU_OR, true, RAX, RCX);
        }
        x_store(&t->e, RAX, RBX, FR(d->rd));
        x_alu_mi(&t->e, ALU_OR, RBX, OFF(mstatus), (int32_t)MSTATUS_FS);
    } else {
        st_x(t, dst, d->rd);
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
    st->dirty = t->dirty;
    int value = RDI;
    if (fp)
        x_load(&t->e, RDI, RBX, FR(d->rs2));
    else
        value = src_x(t, d->rs2, RDI);
    st->value = (int8_t)value;
    emit_tlb_lookup(t, st, d->rs1, d->imm, size, true, false);
    /* While any hart holds an LR reservation, stores take the slow path,
     * whose cpu_store breaks the reservations they hit (lrsc.h):
     * mov rcx, [rbx+lrsc]; cmp dword [rcx+live], 0; jne stub */
    x_load(&t->e, RCX, RBX, OFF(lrsc));
    x_u8(&t->e, 0x83);
    x_modrm_mem(&t->e, 7, RCX, (int32_t)offsetof(struct lrsc_set, live));
    x_u8(&t->e, 0);
    st->from[1] = x_jcc(&t->e, CC_NE);
    x_store_rax_rsi(&t->e, value, size);
    st->resume = t->e.p;
    return true;
}

static void emit_stubs(struct tctx *t)
{
    struct emit *e = &t->e;
    for (unsigned i = 0; i < t->nstubs; i++) {
        struct stub *st = &t->stubs[i];
        if (st->slot_miss) {
            /* A TLB hit with another addend: refresh the slot (rdx is
             * still the entry's offset) and do the access. */
            if (!e->overflow)
                x_patch(st->slot_miss, e->p);
            x_load_sib(e, RAX, RBX, RDX, st->tlb_off + (int32_t)offsetof(struct tlb_entry, addend));
            x_store(e, RAX, RBX, st->slot_off);
            x_jmp_to(e, st->slot_hit);
        }
        uint8_t *here = e->p;
        if (!e->overflow) {
            x_patch(st->from[0], here);
            if (st->from[1])
                x_patch(st->from[1], here);
        }
        emit_writeback(t, st->dirty);
        if (st->done)
            x_alu_mi(e, ALU_ADD, RBX, OFF(instret), (int32_t)st->done);
        if (st->kind == STUB_LOAD) {
            /* jit_load_slow(h, va = rsi, info, pc) */
            x_mov_rr(e, RDI, RBX);
            x_mov_ri(e, RDX, st->info);
            x_mov_ri(e, RCX, st->pc);
            x_call(e, (const void *)jit_load_slow);
        } else {
            /* jit_store_slow(h, va = rsi, value, info, pc) */
            x_mov_rr(e, RDX, st->value);
            x_mov_rr(e, RDI, RBX);
            x_mov_ri(e, RCX, st->info);
            x_mov_ri(e, R8, st->pc);
            x_call(e, (const void *)jit_store_slow);
        }
        x_test_eax(e);
        uint8_t *leave = x_jcc(e, CC_NE);
        if (st->done)
            x_alu_mi(e, ALU_SUB, RBX, OFF(instret), (int32_t)st->done);
        emit_reload(t); /* a load's helper wrote x[rd]; caller-saved ones are gone */
        x_jmp_to(e, st->resume);
        if (!e->overflow)
            x_patch(leave, t->bail);
    }
}

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
static bool emit_alu(struct tctx *t, const struct decoded *d)
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

/* One instruction through jit_fallback; the block continues if it
 * returns 0. */
static void emit_fallback(struct tctx *t, const struct decoded *d, uint32_t insn, uint64_t pc,
                          unsigned done)
{
    struct emit *e = &t->e;
    emit_sync(t);
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
    emit_reload(t);
}

/* frflags rd (csrrs rd, fflags, x0) and fsflags rd, rs (csrrw rd,
 * fflags, rs) inline while mstatus.FS is on (csr.c's rules: FS off is an
 * illegal instruction, a write makes FS dirty); anything else, or FS
 * off, through jit_fallback. */
static void emit_fflags_csr(struct tctx *t, const struct decoded *d, uint32_t insn, uint64_t pc,
                            unsigned done)
{
    struct emit *e = &t->e;
    unsigned f3 = (insn >> 12) & 7, rd = (insn >> 7) & 31, rs1 = (insn >> 15) & 31;
    if ((insn >> 20) != 1 || !(f3 == 1 || (f3 == 2 && rs1 == 0))) {
        emit_fallback(t, d, insn, pc, done);
        return;
    }
    x_u8(e, 0xf7);                                  /* test dword [mstatus], FS */
    x_modrm_mem(e, 0, RBX, OFF(mstatus));
    x_u32(e, (uint32_t)MSTATUS_FS);
    uint8_t *off = x_jcc(e, CC_E);
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
    emit_fallback(t, d, insn, pc, done);
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

/* True for the instructions translate_one ends a block with. */
static bool op_ends_block(unsigned op, uint32_t insn)
{
    switch (op) {
    case OP_JAL: case OP_JALR:
    case OP_BEQ: case OP_BNE: case OP_BLT: case OP_BGE: case OP_BLTU: case OP_BGEU:
    case OP_FENCE_I: case OP_ILLEGAL:
        return true;
    case OP_SYSTEM:
        return !jit_is_fp_csr(insn);
    default:
        return false;
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
        x_mov_ri(e, dst_x(t, d->rd), (uint64_t)(int64_t)d->imm);
        st_x(t, dst_x(t, d->rd), d->rd);
        break;
    case OP_AUIPC:
        x_mov_ri(e, dst_x(t, d->rd), cur + (uint64_t)(int64_t)d->imm);
        st_x(t, dst_x(t, d->rd), d->rd);
        break;
    case OP_JAL:
        x_mov_ri(e, RAX, next);
        st_x(t, RAX, d->rd);
        emit_exit(t, cur + (uint64_t)(int64_t)d->imm, count + 1);
        return true;
    case OP_JALR:
        /* Target first: rd may be rs1. */
        ld_x(t, RCX, d->rs1);
        if (d->imm)
            x_alu_ri(e, ALU_ADD, true, RCX, d->imm);
        x_alu_ri(e, ALU_AND, true, RCX, -2);
        x_store(e, RCX, RBX, OFF(pc));
        x_mov_ri(e, RAX, next);
        st_x(t, RAX, d->rd);
        x_alu_mi(e, ALU_ADD, RBX, OFF(instret), (int32_t)(count + 1));
        emit_exit_lookup(t);
        return true;
    case OP_BEQ: case OP_BNE: case OP_BLT: case OP_BGE: case OP_BLTU: case OP_BGEU: {
        int a = src_x(t, d->rs1, RAX), b = src_x(t, d->rs2, RCX);
        x_alu_rr(e, ALU_CMP, true, a, b);
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
        if (d->op == OP_SYSTEM && jit_is_fp_csr(insn)) {
            emit_fflags_csr(t, d, insn, cur, count);
            break;
        }
        emit_fallback(t, d, insn, cur, count);
        if (op_ends_block(d->op, insn)) {
            /* jit_fallback always leaves after these; the exit below
             * is never reached. */
            emit_exit(t, next, count + 1);
            return true;
        }
        break;
    }
    return false;
}

/* Chooses the guest registers held in host registers: the ones the
 * block's integer instructions name most often (at least twice), found by
 * decoding ahead the way jit_translate will. */
static void regalloc_block(struct tctx *t, uint64_t pc, const uint8_t *host_page)
{
    unsigned uses[32] = {0};
    uint64_t cur = pc;
    for (unsigned count = 0; count < JIT_MAX_INSNS; count++) {
        unsigned off = cur & 0xfff;
        uint16_t lo;
        memcpy(&lo, host_page + off, 2);
        uint32_t insn = lo;
        if ((lo & 3) == 3) {
            if (off == 0xffe)
                break;
            memcpy(&insn, host_page + off, 4);
        }
        struct decoded d;
        icache_decode(&d, insn);
        if (d.op != OP_FP && d.op != OP_FLW && d.op != OP_FLD && d.op != OP_AMO &&
            d.op != OP_SYSTEM) {
            uses[d.rs1 & 31]++;
            uses[d.rs2 & 31]++;
            uses[d.rd & 31]++;
        } else if (d.op == OP_FLW || d.op == OP_FLD) {
            uses[d.rs1 & 31]++;
        }
        cur += d.len;
        if (op_ends_block(d.op, insn) || (cur & ~0xfffull) != t->page)
            break;
    }
    uses[0] = 0;
    memset(t->host, -1, sizeof t->host);
    t->allocated = 0;
    t->dirty = 0;
    for (unsigned n = 0; n < NALLOC; n++) {
        unsigned best = 0;
        for (unsigned r = 1; r < 32; r++)
            if (uses[r] > uses[best])
                best = r;
        if (uses[best] < 2)
            break;
        t->host[best] = (int8_t)alloc_regs[n];
        t->allocated |= 1u << best;
        uses[best] = 0;
    }
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
    t->start = pc;
    regalloc_block(t, pc, host_page);
    emit_reload(t);
    t->body = e->p;

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
