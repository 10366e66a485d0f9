/* RV64GC -> x86-64 block translation: blocks, control flow, loads and
 * stores (integer operations: jit_alu.c; F/D: jit_fp.c).
 *
 * Guest registers live in struct hart (rbx points at it). Within a block
 * the most used ones are held in host registers (regalloc_block): loaded
 * at the block's entry, written back before every exit and every call
 * into C (so helpers, traps and the next block see exact state), and
 * reloaded after a call. The others are loaded and stored per
 * instruction. Scratch: rax/rcx/rdx/rsi/rdi. A block runs from its first
 * instruction to a branch, jump, SYSTEM instruction other than an FP CSR
 * access, FENCE.I, the page's end, or JIT_MAX_INSNS; but when a branch or
 * jump further on goes back to the block's first instruction (a loop),
 * the conditional branches before it are side exits and the block is the
 * whole loop, which jumps back to its own start without leaving generated
 * code.
 *
 * instret: inside a block h->instret still holds its value at block entry
 * (in a loop, a host register holds it, stored with the registers);
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
#include "cpu/jit_emit.h"
#include "cpu/lrsc.h"

_Static_assert(sizeof(struct tlb_entry) == 32, "TLB index scaling assumes 32-byte entries");
_Static_assert(TLB_SIZE == 256, "TLB index mask assumes 256 entries");

/* Host registers that hold guest registers within a block: the
 * callee-saved ones the entry stub saves, and caller-saved ones no emitted
 * sequence uses as scratch (every C call is followed by a reload). */
static const uint8_t alloc_regs[] = {RBP, R12, R13, R14, R15, R9, R10, R11};
#define NALLOC (sizeof alloc_regs)

/* Leaves the block for guest pc rcx (h->pc and instret set, registers
 * written back): straight to
 * the block this exit went to last (its site) while the fetch TLB still
 * maps the target's page to the same physical page and the run goes on
 * (instret below jit_limit, which a kick or a pending interrupt sets to 0:
 * hart_end_jit_run); else through jit_next, which
 * looks the block up (and fills the site), or back to the dispatcher. */
static void emit_exit_lookup(struct tctx *t)
{
    struct emit *e = &t->e;
    unsigned k = t->j->next_site++ % JIT_EXIT_SITES;
    int32_t site = OFF(jit_exit_site) + (int32_t)(k * sizeof(struct jit_exit_site));
    int32_t fetch = OFF(tlb_fetch);
    uint8_t *miss[4];
    x_alu_rm(e, ALU_CMP, true, RCX, RBX, site + (int32_t)offsetof(struct jit_exit_site, vpc));
    miss[0] = x_jcc(e, CC_NE);
    x_mov_rr(e, RAX, RCX);
    x_shift_ri(e, SH_SHR, true, RAX, 12);
    x_op_rr(e, 0x89, false, RAX, RDX);            /* mov edx, eax */
    x_alu_ri(e, ALU_AND, false, RDX, TLB_SIZE - 1);
    x_shift_ri(e, SH_SHL, false, RDX, 5);         /* entry index * 32 */
    x_alu_rm(e, ALU_OR, true, RAX, RBX, OFF(ctx_fetch));
    x_cmp_sib(e, RAX, RBX, RDX, fetch + (int32_t)offsetof(struct tlb_entry, tag));
    miss[1] = x_jcc(e, CC_NE);
    x_load_sib(e, RAX, RBX, RDX, fetch + (int32_t)offsetof(struct tlb_entry, paddr_page));
    x_alu_rm(e, ALU_CMP, true, RAX, RBX, site + (int32_t)offsetof(struct jit_exit_site, ppage));
    miss[2] = x_jcc(e, CC_NE);
    x_load(e, RAX, RBX, OFF(instret));
    x_alu_rm(e, ALU_CMP, true, RAX, RBX, OFF(jit_limit));
    miss[3] = x_jcc(e, CC_AE);
    x_u8(e, 0xff);                                /* jmp qword [site.code] */
    x_modrm_mem(e, 4, RBX, site + (int32_t)offsetof(struct jit_exit_site, code));
    for (unsigned i = 0; i < 4 && !e->overflow; i++)
        x_patch(miss[i], e->p);
    x_mov_rr(e, RDI, RBX);
    x_mov_ri(e, RSI, k);
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
 * jump straight to the target's block; the inline compare with jit_limit
 * keeps the budget, pending interrupts and kicks in force along chains. */
static void emit_exit(struct tctx *t, uint64_t target, unsigned count)
{
    struct emit *e = &t->e;
    if ((target & ~0xfffull) != t->page) {
        emit_writeback(t, t->dirty);     /* first: it may store instret */
        x_alu_mi(e, ALU_ADD, RBX, OFF(instret), (int32_t)count);
        x_mov_ri(e, RCX, target);
        x_store(e, RCX, RBX, OFF(pc));
        emit_exit_lookup(t);
        return;
    }
    bool self = target == t->start; /* a loop on this block: past its loads */
    /* Around a loop the held registers stay where they are: the ones the
     * loop writes count as dirty throughout (regalloc_block), so every
     * other exit and slow path writes them back. */
    bool loop = self && t->loop_end;
    if (!loop)
        emit_writeback(t, t->dirty);
    /* instret += count, compared from the register (no reload of the
     * store just made); a loop keeps it in a register of its own, stored
     * only when the loop is left (emit_writeback). */
    int count_reg = loop ? t->instret_reg : RAX;
    if (!loop)
        x_load(e, RAX, RBX, OFF(instret));
    x_alu_ri(e, ALU_ADD, true, count_reg, (int32_t)count);
    if (!loop)
        x_store(e, RAX, RBX, OFF(instret));
    x_alu_rm(e, ALU_CMP, true, count_reg, RBX, OFF(jit_limit));
    uint8_t *slot = NULL;
    if (self) {
        uint8_t *again = x_jcc(e, CC_B);    /* the jump is direct: no slot */
        if (!e->overflow)
            x_patch(again, t->body);
    } else {
        uint8_t *out1 = x_jcc(e, CC_AE);
        slot = x_jmp(e);
        if (!e->overflow) {
            x_patch(out1, e->p);
            x_patch(slot, e->p);    /* unchained: falls through to the exit */
        }
    }
    if (loop)
        emit_writeback(t, t->dirty);
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
bool jit_emit_load(struct tctx *t, const struct decoded *d, uint64_t pc, unsigned done)
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
bool jit_emit_store(struct tctx *t, const struct decoded *d, uint64_t pc, unsigned done)
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

/* One instruction through jit_fallback; the block continues if it
 * returns 0. */
void jit_emit_fallback(struct tctx *t, const struct decoded *d, uint32_t insn, uint64_t pc,
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
    case OP_FENCE:      /* a store-to-load barrier (icache.c) */
        x_u8(e, 0x0f); x_u8(e, 0xae); x_u8(e, 0xf0);   /* mfence */
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
        emit_writeback(t, t->dirty);     /* first: it may store instret */
        x_alu_mi(e, ALU_ADD, RBX, OFF(instret), (int32_t)(count + 1));
        emit_exit_lookup(t);   /* rcx: the target */
        return true;
    case OP_BEQ: case OP_BNE: case OP_BLT: case OP_BGE: case OP_BLTU: case OP_BGEU: {
        int a = src_x(t, d->rs1, RAX), b = src_x(t, d->rs2, RCX);
        x_alu_rr(e, ALU_CMP, true, a, b);
        if (cur < t->loop_end) {
            /* Inside a loop: a side exit, the loop goes on. */
            uint8_t *stay = x_jcc(e, (enum x86_cc)(branch_cc(d->op) ^ 1));  /* the opposite */
            emit_exit(t, cur + (uint64_t)(int64_t)d->imm, count + 1);
            if (!e->overflow)
                x_patch(stay, e->p);
            return false;
        }
        uint8_t *taken = x_jcc(e, branch_cc(d->op));
        emit_exit(t, next, count + 1);
        if (!e->overflow)
            x_patch(taken, e->p);
        emit_exit(t, cur + (uint64_t)(int64_t)d->imm, count + 1);
        return true;
    }
    case OP_LB: case OP_LH: case OP_LW: case OP_LD: case OP_LBU: case OP_LHU: case OP_LWU:
        jit_emit_load(t, d, cur, count);
        break;
    case OP_SB: case OP_SH: case OP_SW: case OP_SD:
        jit_emit_store(t, d, cur, count);
        break;
    case OP_FP:
        jit_emit_fp(t, d, cur, count);
        break;
    case OP_FLW: case OP_FLD: case OP_FSW: case OP_FSD:
        jit_emit_fp_mem(t, d, cur, count);
        break;
    default:
        if (jit_emit_alu(t, d))
            break;
        if (d->op == OP_SYSTEM && jit_is_fp_csr(insn)) {
            jit_emit_fflags_csr(t, d, insn, cur, count);
            break;
        }
        jit_emit_fallback(t, d, insn, cur, count);
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

static bool op_is_branch(unsigned op)
{
    return op == OP_BEQ || op == OP_BNE || op == OP_BLT || op == OP_BGE || op == OP_BLTU ||
           op == OP_BGEU;
}

/* Decodes the instruction at cur of the block's page; false if its second
 * half is on the next page. */
static bool fetch_decode(const uint8_t *host_page, uint64_t cur, uint32_t *insn,
                         struct decoded *d)
{
    unsigned off = cur & 0xfff;
    uint16_t lo;
    memcpy(&lo, host_page + off, 2);
    *insn = lo;
    if ((lo & 3) == 3) {
        if (off == 0xffe)
            return false;
        memcpy(insn, host_page + off, 4);
    }
    icache_decode(d, *insn);
    return true;
}

/* The pc of the last branch or jump back to pc along the fall-through path
 * from pc (within the page and JIT_LOOP_INSNS), the end of a loop that
 * starts at pc; 0 if there is none. Only small loops: a large one gains
 * little from staying in generated code, and translating an outer loop
 * with its inner ones copies their code (F/D code is long): the hot code
 * then outgrows the host's instruction cache (the 5-body loop of cpubench's
 * fp phase ran 1.5x slower with loops up to JIT_MAX_INSNS). */
static uint64_t find_loop_end(struct tctx *t, uint64_t pc, const uint8_t *host_page)
{
    uint64_t cur = pc, end = 0;
    uint32_t written = 0;
    t->loop_written = 0;
    for (unsigned count = 0; count < JIT_LOOP_INSNS; count++) {
        uint32_t insn;
        struct decoded d;
        if (!fetch_decode(host_page, cur, &insn, &d))
            break;
        written |= 1u << (d.rd & 31);     /* any rd field: a superset is harmless */
        if ((op_is_branch(d.op) || d.op == OP_JAL) && cur + (uint64_t)(int64_t)d.imm == pc) {
            end = cur;
            t->loop_written = written;
        }
        if ((op_ends_block(d.op, insn) && !op_is_branch(d.op)) ||
            ((cur += d.len) & ~0xfffull) != t->page)
            break;
    }
    return end;
}

/* Chooses the guest registers held in host registers: the ones the
 * block's integer instructions name most often (at least twice, or once in
 * a loop), found by decoding ahead the way jit_translate will. */
static void regalloc_block(struct tctx *t, uint64_t pc, const uint8_t *host_page)
{
    unsigned uses[32] = {0};
    uint64_t cur = pc;
    for (unsigned count = 0; count < JIT_MAX_INSNS; count++) {
        uint32_t insn;
        struct decoded d;
        if (!fetch_decode(host_page, cur, &insn, &d))
            break;
        if (d.op != OP_FP && d.op != OP_FLW && d.op != OP_FLD && d.op != OP_AMO &&
            d.op != OP_SYSTEM) {
            uses[d.rs1 & 31]++;
            uses[d.rs2 & 31]++;
            uses[d.rd & 31]++;
        } else if (d.op == OP_FLW || d.op == OP_FLD) {
            uses[d.rs1 & 31]++;
        }
        bool side_exit = op_is_branch(d.op) && cur < t->loop_end;
        cur += d.len;
        if ((op_ends_block(d.op, insn) && !side_exit) || (cur & ~0xfffull) != t->page)
            break;
    }
    uses[0] = 0;
    memset(t->host, -1, sizeof t->host);
    t->allocated = 0;
    t->dirty = 0;
    /* A loop keeps instret in the last register (emit_exit). */
    unsigned nalloc = t->loop_end ? NALLOC - 1 : NALLOC;
    t->instret_reg = t->loop_end ? (int8_t)alloc_regs[NALLOC - 1] : -1;
    for (unsigned n = 0; n < nalloc; n++) {
        unsigned best = 0;
        for (unsigned r = 1; r < 32; r++)
            if (uses[r] > uses[best])
                best = r;
        /* In a loop one use already pays: the load happens once. */
        if (uses[best] < (t->loop_end ? 1u : 2u))
            break;
        t->host[best] = (int8_t)alloc_regs[n];
        t->allocated |= 1u << best;
        uses[best] = 0;
    }
}

/* Where the block's body starts (after emit_reload): the held registers a
 * loop writes are dirty from here on (see emit_exit). */
static void start_body(struct tctx *t)
{
    t->body = t->e.p;
    t->dirty = t->loop_end ? t->loop_written & t->allocated : 0;
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
    t->loop_end = find_loop_end(t, pc, host_page);
    regalloc_block(t, pc, host_page);
    emit_reload(t);
    start_body(t);

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
