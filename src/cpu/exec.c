/* The interpreter. Instructions are decoded once into the per-page slots
 * of the decoded-instruction cache (icache.c; RVC expanded there) and run
 * by threaded dispatch (computed goto) while execution stays in the page;
 * loads and stores hit the TLB's host-pointer addends. Everything unusual
 * (CSRs, traps, AMOs, most FP, MMIO, page crossings) takes slow paths. */
#include <string.h>

#include "cpu/cpu_internal.h"
#include "cpu/icache.h"
#include "cpu/lrsc.h"
#include "cpu/rvc.h"
#include "machine/machine.h"
#include "mem/ram.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Loads and stores: a TLB hit is a host memory access; a miss sets h->pc
 * (so a fault reports the right instruction) and takes the slow path. */
GUEST_MEMORY_ACCESS
static inline bool load(struct hart *h, uint64_t va, unsigned size, uint64_t *v, uint64_t pc)
{
    struct tlb_entry *e = &h->tlb_read[(va >> 12) & (TLB_SIZE - 1)];
    if (likely(e->tag == ((va >> 12) | h->ctx_data) && (va & 0xfff) <= 4096 - size)) {
        const void *p = (const void *)(uintptr_t)(va + e->addend);
        switch (size) {
        case 1: *v = *(const uint8_t *)p; break;
        case 2: { uint16_t t; memcpy(&t, p, 2); *v = t; break; }
        case 4: { uint32_t t; memcpy(&t, p, 4); *v = t; break; }
        default: memcpy(v, p, 8); break;
        }
        return true;
    }
    h->pc = pc;
    return cpu_load(h, va, size, v);
}

GUEST_MEMORY_ACCESS
static inline bool store(struct hart *h, uint64_t va, unsigned size, uint64_t v, uint64_t pc)
{
    struct tlb_entry *e = &h->tlb_write[(va >> 12) & (TLB_SIZE - 1)];
    if (likely(e->tag == ((va >> 12) | h->ctx_data) && (va & 0xfff) <= 4096 - size)) {
        void *p = (void *)(uintptr_t)(va + e->addend);
        lrsc_store_check(h, p, size);
        memcpy(p, &v, size); /* little-endian host */
        return true;
    }
    h->pc = pc;
    return cpu_store(h, va, size, v);
}

static void illegal(struct hart *h, uint32_t insn)
{
    hart_raise_exception(h, CAUSE_ILLEGAL_INSN, insn);
}

/* M extension helpers with the spec's division-by-zero and overflow rules. */
static uint64_t mulh(int64_t a, int64_t b) { return (uint64_t)(((__int128)a * b) >> 64); }
static uint64_t mulhu(uint64_t a, uint64_t b)
{
    return (uint64_t)(((unsigned __int128)a * b) >> 64);
}
static uint64_t mulhsu(int64_t a, uint64_t b)
{
    return (uint64_t)(((__int128)a * (unsigned __int128)b) >> 64);
}
static uint64_t div_s(int64_t a, int64_t b)
{
    if (b == 0) return UINT64_MAX;
    if (a == INT64_MIN && b == -1) return (uint64_t)a;
    return (uint64_t)(a / b);
}
static uint64_t rem_s(int64_t a, int64_t b)
{
    if (b == 0) return (uint64_t)a;
    if (a == INT64_MIN && b == -1) return 0;
    return (uint64_t)(a % b);
}
static uint64_t div_u(uint64_t a, uint64_t b) { return b ? a / b : UINT64_MAX; }
static uint64_t rem_u(uint64_t a, uint64_t b) { return b ? a % b : a; }
static uint64_t sx32(uint64_t v) { return (uint64_t)(int64_t)(int32_t)v; }
static uint64_t divw(uint64_t a, uint64_t b)
{
    int32_t sa = (int32_t)a, sb = (int32_t)b;
    if (sb == 0) return UINT64_MAX;
    if (sa == INT32_MIN && sb == -1) return sx32((uint32_t)sa);
    return sx32((uint32_t)(sa / sb));
}
static uint64_t divuw(uint64_t a, uint64_t b)
{
    return (uint32_t)b == 0 ? UINT64_MAX : sx32((uint32_t)a / (uint32_t)b);
}
static uint64_t remw(uint64_t a, uint64_t b)
{
    int32_t sa = (int32_t)a, sb = (int32_t)b;
    if (sb == 0) return sx32((uint32_t)sa);
    if (sa == INT32_MIN && sb == -1) return 0;
    return sx32((uint32_t)(sa % sb));
}
static uint64_t remuw(uint64_t a, uint64_t b)
{
    return (uint32_t)b == 0 ? sx32(a) : sx32((uint32_t)a % (uint32_t)b);
}

/* ALU operations for the uncached path (the cached path inlines them). */
static uint64_t alu_op(unsigned op, uint64_t a, uint64_t b, int64_t imm)
{
    switch (op) {
    case OP_ADDI: return a + (uint64_t)imm;
    case OP_SLTI: return (int64_t)a < imm;
    case OP_SLTIU: return a < (uint64_t)imm;
    case OP_XORI: return a ^ (uint64_t)imm;
    case OP_ORI: return a | (uint64_t)imm;
    case OP_ANDI: return a & (uint64_t)imm;
    case OP_SLLI: return a << imm;
    case OP_SRLI: return a >> imm;
    case OP_SRAI: return (uint64_t)((int64_t)a >> imm);
    case OP_ADDIW: return sx32(a + (uint64_t)imm);
    case OP_SLLIW: return sx32((uint32_t)a << imm);
    case OP_SRLIW: return sx32((uint32_t)a >> imm);
    case OP_SRAIW: return sx32((uint64_t)((int32_t)a >> imm));
    case OP_ADD: return a + b;
    case OP_SUB: return a - b;
    case OP_SLL: return a << (b & 63);
    case OP_SLT: return (int64_t)a < (int64_t)b;
    case OP_SLTU: return a < b;
    case OP_XOR: return a ^ b;
    case OP_SRL: return a >> (b & 63);
    case OP_SRA: return (uint64_t)((int64_t)a >> (b & 63));
    case OP_OR: return a | b;
    case OP_AND: return a & b;
    case OP_MUL: return a * b;
    case OP_MULH: return mulh((int64_t)a, (int64_t)b);
    case OP_MULHSU: return mulhsu((int64_t)a, b);
    case OP_MULHU: return mulhu(a, b);
    case OP_DIV: return div_s((int64_t)a, (int64_t)b);
    case OP_DIVU: return div_u(a, b);
    case OP_REM: return rem_s((int64_t)a, (int64_t)b);
    case OP_REMU: return rem_u(a, b);
    case OP_ADDW: return sx32(a + b);
    case OP_SUBW: return sx32(a - b);
    case OP_SLLW: return sx32((uint32_t)a << (b & 31));
    case OP_SRLW: return sx32((uint32_t)a >> (b & 31));
    case OP_SRAW: return sx32((uint64_t)((int32_t)a >> (b & 31)));
    case OP_MULW: return sx32(a * b);
    case OP_DIVW: return divw(a, b);
    case OP_DIVUW: return divuw(a, b);
    case OP_REMW: return remw(a, b);
    case OP_BITMANIP_FIRST ... OP_BITMANIP_LAST: return cpu_bitmanip(op, a, b, imm);
    default: return remuw(a, b); /* OP_REMUW */
    }
}

/* AMO<op> on the host: one atomic read-modify-write of the guest word, so
 * harts on other threads see it whole (aq/rl: every AMO is seq_cst).
 * Returns the old value (sign-extended for .W). */
GUEST_MEMORY_ACCESS
static uint64_t amo_apply(uint8_t *p, unsigned size, unsigned f5, uint64_t src, bool *ok)
{
    *ok = true;
    if (size == 4) {
        uint32_t *q = (uint32_t *)p, s = (uint32_t)src, old;
        switch (f5) {
        case 0x01: return sx32(__atomic_exchange_n(q, s, __ATOMIC_SEQ_CST));
        case 0x00: return sx32(__atomic_fetch_add(q, s, __ATOMIC_SEQ_CST));
        case 0x04: return sx32(__atomic_fetch_xor(q, s, __ATOMIC_SEQ_CST));
        case 0x0c: return sx32(__atomic_fetch_and(q, s, __ATOMIC_SEQ_CST));
        case 0x08: return sx32(__atomic_fetch_or(q, s, __ATOMIC_SEQ_CST));
        case 0x10: case 0x14: case 0x18: case 0x1c:
            old = __atomic_load_n(q, __ATOMIC_RELAXED);
            for (;;) {
                uint32_t nv;
                if (f5 == 0x10) nv = (int32_t)old < (int32_t)s ? old : s;
                else if (f5 == 0x14) nv = (int32_t)old > (int32_t)s ? old : s;
                else if (f5 == 0x18) nv = old < s ? old : s;
                else nv = old > s ? old : s;
                if (__atomic_compare_exchange_n(q, &old, nv, false, __ATOMIC_SEQ_CST,
                                                __ATOMIC_RELAXED))
                    return sx32(old);
            }
        default: *ok = false; return 0;
        }
    }
    uint64_t *q = (uint64_t *)p, old;
    switch (f5) {
    case 0x01: return __atomic_exchange_n(q, src, __ATOMIC_SEQ_CST);
    case 0x00: return __atomic_fetch_add(q, src, __ATOMIC_SEQ_CST);
    case 0x04: return __atomic_fetch_xor(q, src, __ATOMIC_SEQ_CST);
    case 0x0c: return __atomic_fetch_and(q, src, __ATOMIC_SEQ_CST);
    case 0x08: return __atomic_fetch_or(q, src, __ATOMIC_SEQ_CST);
    case 0x10: case 0x14: case 0x18: case 0x1c:
        old = __atomic_load_n(q, __ATOMIC_RELAXED);
        for (;;) {
            uint64_t nv;
            if (f5 == 0x10) nv = (int64_t)old < (int64_t)src ? old : src;
            else if (f5 == 0x14) nv = (int64_t)old > (int64_t)src ? old : src;
            else if (f5 == 0x18) nv = old < src ? old : src;
            else nv = old > src ? old : src;
            if (__atomic_compare_exchange_n(q, &old, nv, false, __ATOMIC_SEQ_CST,
                                            __ATOMIC_RELAXED))
                return old;
        }
    default: *ok = false; return 0;
    }
}

/* LR/SC across host threads: LR publishes its reservation (lrsc.h) and
 * remembers the value it loaded; SC succeeds only if the reservation is
 * still this hart's, no other hart's store has broken it (every store path
 * checks the published reservations), and a host compare-and-swap finds
 * the value LR loaded, storing the new one in the same atomic step. The
 * CAS catches any change of the word, including one in the tiny window
 * lrsc.h describes where a store's check misses a reservation being taken. */
GUEST_MEMORY_ACCESS
static bool exec_amo(struct hart *h, uint32_t insn)
{
    unsigned f3 = (insn >> 12) & 7, f5 = insn >> 27;
    unsigned rd = (insn >> 7) & 31;
    if (f3 != 2 && f3 != 3) {
        illegal(h, insn);
        return false;
    }
    unsigned size = f3 == 2 ? 4 : 8;
    uint64_t va = h->x[(insn >> 15) & 31], src = h->x[(insn >> 20) & 31], pa;
    if (f5 == 0x02) { /* LR */
        if ((insn >> 20) & 31) { illegal(h, insn); return false; }
        uint8_t *p = cpu_lr_ptr(h, va, size, &pa);
        if (!p)
            return false;
        lrsc_reserve(h, p); /* published before the load: see lrsc.h */
        uint64_t v = size == 4 ? __atomic_load_n((uint32_t *)p, __ATOMIC_SEQ_CST)
                               : __atomic_load_n((uint64_t *)p, __ATOMIC_SEQ_CST);
        h->x[rd] = size == 4 ? sx32(v) : v;
        h->reservation = pa;
        h->reserved_value = v;
        h->reserved = true;
        return true;
    }
    if (f5 == 0x03) { /* SC */
        uint8_t *p = cpu_amo_ptr(h, va, size, &pa);
        if (!p)
            return false;
        bool stored = false;
        bool intact = lrsc_release(h, p);
        if (h->reserved && h->reservation == pa && intact) {
            lrsc_store_check(h, p, size);
            if (size == 4) {
                uint32_t expected = (uint32_t)h->reserved_value;
                stored = __atomic_compare_exchange_n((uint32_t *)p, &expected, (uint32_t)src,
                                                     false, __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
            } else {
                uint64_t expected = h->reserved_value;
                stored = __atomic_compare_exchange_n((uint64_t *)p, &expected, src, false,
                                                     __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST);
            }
        }
        h->x[rd] = stored ? 0 : 1;
        h->reserved = false;
        return true;
    }
    switch (f5) {
    case 0x01: case 0x00: case 0x04: case 0x0c: case 0x08:
    case 0x10: case 0x14: case 0x18: case 0x1c:
        break;
    default:
        illegal(h, insn);
        return false;
    }
    uint8_t *p = cpu_amo_ptr(h, va, size, &pa);
    if (!p)
        return false;
    bool ok;
    lrsc_store_check(h, p, size);
    uint64_t old = amo_apply(p, size, f5, src, &ok);
    (void)ok; /* f5 was checked above */
    h->x[rd] = old;
    return true;
}

/* Zicbom/Zicboz permission: below M, menvcfg must enable the operation,
 * and in U-mode senvcfg too; `field` is the CBCFE or CBZE bit, or CBIE. */
static bool cbo_allowed(const struct hart *h, uint64_t field)
{
    if (h->priv == PRIV_M)
        return true;
    if (!(h->menvcfg & field))
        return false;
    return h->priv == PRIV_S || (h->senvcfg & field);
}

/* cbo.clean/flush/inval (Zicbom) and cbo.zero (Zicboz) on the 64-byte block
 * holding rs1. There are no caches to manage: clean, flush and inval only
 * check that a load or a store to the block would be permitted (else a
 * store fault, with tval = rs1 as for every CBO fault). cbo.zero writes
 * zeros through the store path, which marks the page dirty; on anything
 * but RAM it raises a store access fault. */
static bool exec_cbo(struct hart *h, uint32_t insn)
{
    unsigned fn = insn >> 20;
    uint64_t rs1 = h->x[(insn >> 15) & 31];
    uint64_t block = rs1 & ~(uint64_t)(CACHE_BLOCK_SIZE - 1);
    uint64_t pa, cause;
    if (!cbo_allowed(h, fn == 4 ? ENVCFG_CBZE : fn == 0 ? ENVCFG_CBIE : ENVCFG_CBCFE)) {
        illegal(h, insn);
        return false;
    }
    if (fn != 4) {
        if (!mmu_translate(h, block, ACCESS_READ, &pa, &cause) &&
            !mmu_translate(h, block, ACCESS_WRITE, &pa, &cause)) {
            hart_raise_exception(h, cause, rs1);
            return false;
        }
        return true;
    }
    if (!mmu_translate(h, block, ACCESS_WRITE, &pa, &cause)) {
        hart_raise_exception(h, cause, rs1);
        return false;
    }
    if (!ram_contains(&h->bus->ram, pa, CACHE_BLOCK_SIZE)) {
        hart_raise_exception(h, CAUSE_STORE_ACCESS, rs1);
        return false;
    }
    for (unsigned off = 0; off < CACHE_BLOCK_SIZE; off += 8)
        if (!cpu_store(h, block + off, 8, 0))
            return false; /* not reached: the block's page translated */
    return true;
}

static bool exec_csr(struct hart *h, uint32_t insn)
{
    unsigned f3 = (insn >> 12) & 7, rd = (insn >> 7) & 31, rs1 = (insn >> 15) & 31;
    uint32_t csr = insn >> 20;
    uint64_t operand = (f3 & 4) ? rs1 : h->x[rs1];
    unsigned op = f3 & 3; /* 1 = write, 2 = set, 3 = clear */
    bool do_read = op != 1 || rd != 0;
    bool do_write = op == 1 || rs1 != 0;
    uint64_t old = 0;
    if (do_read && !csr_read(h, csr, &old)) {
        illegal(h, insn);
        return false;
    }
    if (do_write) {
        uint64_t nv = op == 1 ? operand : op == 2 ? old | operand : old & ~operand;
        if (!csr_write(h, csr, nv)) {
            illegal(h, insn);
            return false;
        }
    }
    h->x[rd] = old;
    return true;
}

/* Returns false when the instruction trapped or changed pc itself. */
static bool exec_system(struct hart *h, uint32_t insn)
{
    if ((insn >> 12) & 3)
        return exec_csr(h, insn);
    if ((insn >> 12) & 7) { /* funct3 4 is reserved */
        illegal(h, insn);
        return false;
    }
    if ((insn >> 25) == 0x09 && ((insn >> 7) & 31) == 0) { /* SFENCE.VMA */
        if (h->priv == PRIV_U || (h->priv == PRIV_S && (h->mstatus & MSTATUS_TVM))) {
            illegal(h, insn);
            return false;
        }
        hart_tlb_flush(h);
        return true;
    }
    switch (insn) {
    case 0x00000073: /* ECALL */
        if (h->priv == PRIV_S && h->machine->sbi && sbi_ecall(h))
            return true;
        hart_raise_exception(h, h->priv == PRIV_U ? CAUSE_ECALL_U
                                : h->priv == PRIV_S ? CAUSE_ECALL_S : CAUSE_ECALL_M, 0);
        return false;
    case 0x00100073: /* EBREAK */
        hart_raise_exception(h, CAUSE_BREAKPOINT, h->pc);
        return false;
    case 0x10200073: /* SRET */
        if (h->priv < PRIV_S || (h->priv == PRIV_S && (h->mstatus & MSTATUS_TSR))) {
            illegal(h, insn);
            return false;
        }
        hart_sret(h);
        return false;
    case 0x30200073: /* MRET */
        if (h->priv != PRIV_M) {
            illegal(h, insn);
            return false;
        }
        hart_mret(h);
        return false;
    case 0x10500073: /* WFI */
        if (h->priv == PRIV_U || (h->priv == PRIV_S && (h->mstatus & MSTATUS_TW))) {
            illegal(h, insn);
            return false;
        }
        /* The hart's thread parks until an interrupt is pending (vcpu.c). */
        if (!hart_interrupt_pending(h))
            h->wfi = true;
        return true;
    default:
        illegal(h, insn);
        return false;
    }
}


/* Fills the fetch TLB entry for pc. Returns the entry, or NULL when pc is
 * not in RAM (the boot ROM) or the code cache is full: the caller then
 * executes one instruction uncached. *faulted is set when an exception was
 * raised instead. */
static struct tlb_entry *fetch_fill(struct hart *h, uint64_t pc, bool *faulted)
{
    uint64_t paddr, cause;
    *faulted = false;
    if (!mmu_translate(h, pc, ACCESS_FETCH, &paddr, &cause)) {
        hart_raise_exception(h, cause, pc);
        *faulted = true;
        return NULL;
    }
    struct ram *ram = &h->bus->ram;
    uint64_t ppage = paddr & ~0xfffull;
    if (!ram_contains(ram, ppage, RAM_PAGE_SIZE))
        return NULL;
    struct code_page *cp = icache_page(h->icache, ppage);
    if (!cp)
        return NULL;
    struct tlb_entry *e = &h->tlb_fetch[(pc >> 12) & (TLB_SIZE - 1)];
    e->tag = (pc >> 12) | h->ctx_fetch;
    e->addend = (uintptr_t)ram_host(ram, ppage) - (pc & ~0xfffull);
    e->paddr_page = ppage;
    e->code = cp;
    return e;
}

/* Instructions the fast path hands to the general executors. Returns false
 * when the instruction trapped or redirected pc itself. */
static bool exec_generic(struct hart *h, const struct decoded *d)
{
    bool ok;
    switch (d->op) {
    case OP_AMO: ok = exec_amo(h, d->raw); break;
    case OP_CBO: ok = exec_cbo(h, d->raw); break;
    case OP_FP: case OP_FLW: case OP_FLD: case OP_FSW: case OP_FSD:
        ok = fpu_exec(h, d->raw);
        break;
    case OP_SYSTEM: ok = exec_system(h, d->raw); break;
    case OP_FENCE_I:
        /* Every hart's decoded code, as SBI remote fence.i does: a guest
         * that skips the remote fence still sees its new code. */
        machine_fence_i(h->machine);
        ok = true;
        break;
    default: illegal(h, d->raw); ok = false; break;
    }
    h->x[0] = 0;
    return ok;
}

/* Executes the instruction `insn` found at h->pc: advances pc and instret,
 * or takes its trap. Also the translating CPU's fallback (jit.c). */
void hart_exec_insn(struct hart *h, uint32_t insn)
{
    struct decoded d;
    icache_decode(&d, insn);
    uint64_t pc = h->pc, *x = h->x;
    uint64_t a = x[d.rs1], b = x[d.rs2], v = 0;
    int64_t imm = d.imm;
    uint64_t next = pc + d.len;
    switch (d.op) {
    case OP_NOP: break;
    case OP_FENCE: __atomic_thread_fence(__ATOMIC_SEQ_CST); break;
    case OP_LUI: x[d.rd] = (uint64_t)imm; break;
    case OP_AUIPC: x[d.rd] = pc + (uint64_t)imm; break;
    case OP_JAL: x[d.rd] = next; next = pc + (uint64_t)imm; break;
    case OP_JALR: x[d.rd] = next; next = (a + (uint64_t)imm) & ~1ull; break;
    case OP_BEQ: if (a == b) next = pc + (uint64_t)imm; break;
    case OP_BNE: if (a != b) next = pc + (uint64_t)imm; break;
    case OP_BLT: if ((int64_t)a < (int64_t)b) next = pc + (uint64_t)imm; break;
    case OP_BGE: if ((int64_t)a >= (int64_t)b) next = pc + (uint64_t)imm; break;
    case OP_BLTU: if (a < b) next = pc + (uint64_t)imm; break;
    case OP_BGEU: if (a >= b) next = pc + (uint64_t)imm; break;
    case OP_LB: case OP_LH: case OP_LW: case OP_LD: case OP_LBU: case OP_LHU: case OP_LWU: {
        static const uint8_t size[] = {1, 2, 4, 8, 1, 2, 4};
        unsigned k = d.op - OP_LB;
        if (!cpu_load(h, a + (uint64_t)imm, size[k], &v))
            return;
        if (k == 0) v = (uint64_t)(int64_t)(int8_t)v;
        else if (k == 1) v = (uint64_t)(int64_t)(int16_t)v;
        else if (k == 2) v = sx32(v);
        x[d.rd] = v;
        break;
    }
    case OP_SB: case OP_SH: case OP_SW: case OP_SD:
        if (!cpu_store(h, a + (uint64_t)imm, 1u << (d.op - OP_SB), b))
            return;
        break;
    case OP_AMO: case OP_FP: case OP_SYSTEM: case OP_FENCE_I: case OP_ILLEGAL:
    case OP_FLW: case OP_FLD: case OP_FSW: case OP_FSD: case OP_CBO:
        if (!exec_generic(h, &d))
            return;
        break;
    default:
        x[d.rd] = alu_op(d.op, a, b, imm);
        break;
    }
    h->x[0] = 0;
    h->pc = next;
    h->instret++;
}

/* Executes one instruction without the code cache (boot ROM, MMIO, a full
 * cache, a 32-bit instruction straddling two pages). */
static void exec_uncached(struct hart *h)
{
    uint32_t insn;
    if (cpu_fetch_slow(h, h->pc, &insn))
        hart_exec_insn(h, insn);
}

void hart_step(struct hart *h)
{
    exec_uncached(h);
}

bool hart_exec_generic(struct hart *h, uint32_t insn)
{
    struct decoded d;
    icache_decode(&d, insn);
    return exec_generic(h, &d);
}

GUEST_MEMORY_ACCESS
uint64_t hart_run(struct hart *h, uint64_t budget)
{
    static const void *const labels[OP_COUNT] = {
#define L(op) [OP_##op] = &&do_##op
        L(UNDECODED), L(ILLEGAL), L(NOP), L(CROSS), L(PAGE_END), L(LUI), L(AUIPC), L(JAL), L(JALR),
        L(BEQ), L(BNE), L(BLT), L(BGE), L(BLTU), L(BGEU),
        L(LB), L(LH), L(LW), L(LD), L(LBU), L(LHU), L(LWU), L(SB), L(SH), L(SW), L(SD),
        L(ADDI), L(SLTI), L(SLTIU), L(XORI), L(ORI), L(ANDI), L(SLLI), L(SRLI), L(SRAI),
        L(ADDIW), L(SLLIW), L(SRLIW), L(SRAIW),
        L(ADD), L(SUB), L(SLL), L(SLT), L(SLTU), L(XOR), L(SRL), L(SRA), L(OR), L(AND),
        L(MUL), L(MULH), L(MULHSU), L(MULHU), L(DIV), L(DIVU), L(REM), L(REMU),
        L(ADDW), L(SUBW), L(SLLW), L(SRLW), L(SRAW),
        L(MULW), L(DIVW), L(DIVUW), L(REMW), L(REMUW),
        L(FENCE_I), L(AMO), L(SYSTEM), L(FP), L(FLW), L(FLD), L(FSW), L(FSD), L(CBO), L(FENCE),
        [OP_BITMANIP_FIRST ... OP_BITMANIP_LAST] = &&do_BITMANIP,
#undef L
    };
    uint64_t *x = h->x;
    uint64_t n = 0;
    uint64_t instret0 = h->instret;
    const int *kick = h->kick;

/* A trap retires no instruction but costs the slice one step: a guest in
 * a trap storm (a handler address that faults itself: stvec unmapped, a
 * restored VM whose page tables are gone) then still leaves hart_run and
 * lets the caller see signals, the console, timers and the control socket.
 * instret0 moves down with n so that instret counts only retired ones. */
#define CHARGE_TRAP() do { n++; instret0--; } while (0)

    while (n < budget) {
        if (unlikely(__atomic_load_n(kick, __ATOMIC_RELAXED)))
            break;
        if (unlikely(__atomic_load_n(&h->interrupt_check, __ATOMIC_RELAXED)) &&
            hart_take_interrupt(h))
            CHARGE_TRAP();
        if (unlikely(h->wfi))
            break;
        uint64_t pc = h->pc;
        struct tlb_entry *e = &h->tlb_fetch[(pc >> 12) & (TLB_SIZE - 1)];
        if (unlikely(e->tag != ((pc >> 12) | h->ctx_fetch))) {
            bool faulted;
            e = fetch_fill(h, pc, &faulted);
            if (!e) {
                if (faulted) {
                    CHARGE_TRAP();
                } else {
                    h->instret = instret0 + n;
                    exec_uncached(h);
                    instret0 = h->instret - ++n;
                }
                continue;
            }
        }
        struct code_page *cp = e->code;
        const uint8_t *host_page = (const uint8_t *)(uintptr_t)((pc & ~0xfffull) + e->addend);
        uint64_t page = pc & ~0xfffull;
        struct decoded *d;
        uint64_t a, b;
        int64_t imm;

/* Sequential execution walks the slots; the sentinels past the page's end
 * stop it. Taken jumps stay in the loop while the slice lasts, no other
 * thread kicked the loop (h->kick) and the target's page has a cached
 * translation. Interrupts can only become pending through slow paths
 * (MMIO, CSRs, SBI), which check for them themselves. */
#define DISPATCH()                                                           \
    do {                                                                     \
        n++;                                                                 \
        a = x[d->rs1];                                                       \
        b = x[d->rs2];                                                       \
        imm = d->imm;                                                        \
        goto *labels[d->op];                                                 \
    } while (0)
#define NEXT()                                                               \
    do {                                                                     \
        pc += d->len;                                                        \
        d += d->len >> 1;                                                    \
        DISPATCH();                                                          \
    } while (0)
#define JUMP(target)                                                         \
    do {                                                                     \
        pc = (target);                                                       \
        if (unlikely(n >= budget || __atomic_load_n(kick, __ATOMIC_RELAXED))) \
            goto leave;                                                      \
        if (unlikely((pc & ~0xfffull) != page)) {                            \
            /* Calls and returns: follow a cached translation here; a     \
             * miss or a pending interrupt check takes the outer loop. */    \
            struct tlb_entry *je = &h->tlb_fetch[(pc >> 12) & (TLB_SIZE - 1)]; \
            if (je->tag != ((pc >> 12) | h->ctx_fetch) ||                  \
                __atomic_load_n(&h->interrupt_check, __ATOMIC_RELAXED))      \
                goto leave;                                                  \
            cp = je->code;                                                   \
            page = pc & ~0xfffull;                                           \
            host_page = (const uint8_t *)(uintptr_t)(page + je->addend);     \
        }                                                                    \
        d = &cp->slots[(pc & 0xfff) >> 1];                                   \
        DISPATCH();                                                          \
    } while (0)
/* The instruction trapped: pc is the handler's, set by the trap. */
#define TRAPPED() do { pc = h->pc; goto leave; } while (0)
/* After a slow-path access (MMIO may raise an interrupt). */
#define CHECK_IRQ()                                                          \
    do {                                                                     \
        if (unlikely(__atomic_load_n(&h->interrupt_check, __ATOMIC_RELAXED))) { \
            pc += d->len;                                                    \
            goto leave;                                                      \
        }                                                                    \
    } while (0)

        d = &cp->slots[(pc & 0xfff) >> 1];
        DISPATCH();

    do_UNDECODED: {
        unsigned off = pc & 0xfff;
        uint16_t lo;
        memcpy(&lo, host_page + off, 2);
        if ((lo & 3) == 3 && off == 0xffe) {
            d->op = OP_CROSS; /* the other half is on the next page */
        } else {
            uint32_t insn = lo;
            if ((lo & 3) == 3)
                memcpy(&insn, host_page + off, 4);
            icache_decode(d, insn);
        }
        n--; /* DISPATCH counts it again, now decoded */
        DISPATCH();
    }
    do_PAGE_END:
        n--; /* not an instruction: pc is the next page's first */
        goto leave;
    do_CROSS:
        h->pc = pc;
        n--;
        h->instret = instret0 + n;
        exec_uncached(h);
        n++;
        instret0 = h->instret - n;
        pc = h->pc;
        goto leave;
    do_ILLEGAL:
        h->pc = pc;
        illegal(h, d->raw);
        TRAPPED();
    do_NOP: NEXT();
    do_FENCE: __atomic_thread_fence(__ATOMIC_SEQ_CST); NEXT();   /* icache.c: why */
    do_LUI: x[d->rd] = (uint64_t)imm; NEXT();
    do_AUIPC: x[d->rd] = pc + (uint64_t)imm; NEXT();
    do_JAL: x[d->rd] = pc + d->len; JUMP(pc + (uint64_t)imm);
    do_JALR: x[d->rd] = pc + d->len; JUMP((a + (uint64_t)imm) & ~1ull);
    do_BEQ: if (a == b) JUMP(pc + (uint64_t)imm); NEXT();
    do_BNE: if (a != b) JUMP(pc + (uint64_t)imm); NEXT();
    do_BLT: if ((int64_t)a < (int64_t)b) JUMP(pc + (uint64_t)imm); NEXT();
    do_BGE: if ((int64_t)a >= (int64_t)b) JUMP(pc + (uint64_t)imm); NEXT();
    do_BLTU: if (a < b) JUMP(pc + (uint64_t)imm); NEXT();
    do_BGEU: if (a >= b) JUMP(pc + (uint64_t)imm); NEXT();

#define LOAD_OP(name, size, conv)                                            \
    do_##name: {                                                             \
        uint64_t v;                                                          \
        if (!load(h, a + (uint64_t)imm, size, &v, pc))                       \
            TRAPPED();                                                       \
        x[d->rd] = conv;                                                     \
        CHECK_IRQ();                                                         \
        NEXT();                                                              \
    }
    LOAD_OP(LB, 1, (uint64_t)(int64_t)(int8_t)v)
    LOAD_OP(LH, 2, (uint64_t)(int64_t)(int16_t)v)
    LOAD_OP(LW, 4, sx32(v))
    LOAD_OP(LD, 8, v)
    LOAD_OP(LBU, 1, v)
    LOAD_OP(LHU, 2, v)
    LOAD_OP(LWU, 4, v)
#define STORE_OP(name, size)                                                 \
    do_##name:                                                               \
        if (!store(h, a + (uint64_t)imm, size, b, pc))                       \
            TRAPPED();                                                       \
        CHECK_IRQ();                                                         \
        NEXT();
    STORE_OP(SB, 1)
    STORE_OP(SH, 2)
    STORE_OP(SW, 4)
    STORE_OP(SD, 8)

    do_ADDI: x[d->rd] = a + (uint64_t)imm; NEXT();
    do_SLTI: x[d->rd] = (int64_t)a < imm; NEXT();
    do_SLTIU: x[d->rd] = a < (uint64_t)imm; NEXT();
    do_XORI: x[d->rd] = a ^ (uint64_t)imm; NEXT();
    do_ORI: x[d->rd] = a | (uint64_t)imm; NEXT();
    do_ANDI: x[d->rd] = a & (uint64_t)imm; NEXT();
    do_SLLI: x[d->rd] = a << imm; NEXT();
    do_SRLI: x[d->rd] = a >> imm; NEXT();
    do_SRAI: x[d->rd] = (uint64_t)((int64_t)a >> imm); NEXT();
    do_ADDIW: x[d->rd] = sx32(a + (uint64_t)imm); NEXT();
    do_SLLIW: x[d->rd] = sx32((uint32_t)a << imm); NEXT();
    do_SRLIW: x[d->rd] = sx32((uint32_t)a >> imm); NEXT();
    do_SRAIW: x[d->rd] = sx32((uint64_t)((int32_t)a >> imm)); NEXT();
    do_ADD: x[d->rd] = a + b; NEXT();
    do_SUB: x[d->rd] = a - b; NEXT();
    do_SLL: x[d->rd] = a << (b & 63); NEXT();
    do_SLT: x[d->rd] = (int64_t)a < (int64_t)b; NEXT();
    do_SLTU: x[d->rd] = a < b; NEXT();
    do_XOR: x[d->rd] = a ^ b; NEXT();
    do_SRL: x[d->rd] = a >> (b & 63); NEXT();
    do_SRA: x[d->rd] = (uint64_t)((int64_t)a >> (b & 63)); NEXT();
    do_OR: x[d->rd] = a | b; NEXT();
    do_AND: x[d->rd] = a & b; NEXT();
    do_MUL: x[d->rd] = a * b; NEXT();
    do_MULH: x[d->rd] = mulh((int64_t)a, (int64_t)b); NEXT();
    do_MULHSU: x[d->rd] = mulhsu((int64_t)a, b); NEXT();
    do_MULHU: x[d->rd] = mulhu(a, b); NEXT();
    do_DIV: x[d->rd] = div_s((int64_t)a, (int64_t)b); NEXT();
    do_DIVU: x[d->rd] = div_u(a, b); NEXT();
    do_REM: x[d->rd] = rem_s((int64_t)a, (int64_t)b); NEXT();
    do_REMU: x[d->rd] = rem_u(a, b); NEXT();
    do_ADDW: x[d->rd] = sx32(a + b); NEXT();
    do_SUBW: x[d->rd] = sx32(a - b); NEXT();
    do_SLLW: x[d->rd] = sx32((uint32_t)a << (b & 31)); NEXT();
    do_SRLW: x[d->rd] = sx32((uint32_t)a >> (b & 31)); NEXT();
    do_SRAW: x[d->rd] = sx32((uint64_t)((int32_t)a >> (b & 31))); NEXT();
    do_MULW: x[d->rd] = sx32(a * b); NEXT();
    do_DIVW: x[d->rd] = divw(a, b); NEXT();
    do_DIVUW: x[d->rd] = divuw(a, b); NEXT();
    do_REMW: x[d->rd] = remw(a, b); NEXT();
    do_REMUW: x[d->rd] = remuw(a, b); NEXT();

    /* FP loads and stores only move bits: NaN-box singles, mark FS dirty.
     * With FS off they go to the FPU, which raises illegal instruction. */
    do_FLW:
    do_FLD: {
        uint64_t v;
        if (unlikely(!(h->mstatus & MSTATUS_FS)))
            goto do_FP;
        if (!load(h, a + (uint64_t)imm, d->op == OP_FLD ? 8 : 4, &v, pc))
            TRAPPED();
        h->f[d->rd] = d->op == OP_FLD ? v : v | 0xffffffff00000000ull;
        h->mstatus |= MSTATUS_FS;
        CHECK_IRQ();
        NEXT();
    }
    do_FSW:
    do_FSD:
        if (unlikely(!(h->mstatus & MSTATUS_FS)))
            goto do_FP;
        if (!store(h, a + (uint64_t)imm, d->op == OP_FSD ? 8 : 4, h->f[d->rs2], pc))
            TRAPPED();
        CHECK_IRQ();
        NEXT();
    do_BITMANIP: x[d->rd] = cpu_bitmanip(d->op, a, b, imm); NEXT();
    do_AMO:
    do_CBO:
    do_FP:
        h->pc = pc;
        if (!exec_generic(h, d))
            TRAPPED();
        CHECK_IRQ();
        NEXT();
    do_FENCE_I:
    do_SYSTEM:
        /* May change privilege, translation, interrupts or the code cache:
         * always go back through the outer loop. */
        h->pc = pc;
        /* instret as CSRs see it: the instructions before this one. */
        h->instret = instret0 + n - 1;
        if (exec_generic(h, d))
            h->pc = pc + d->len;
        instret0 = h->instret + 1 - n;
        continue;
    leave:
        h->pc = pc;
#undef DISPATCH
#undef NEXT
#undef JUMP
#undef TRAPPED
#undef CHECK_IRQ
    }
#undef CHARGE_TRAP
    h->instret = instret0 + n;
    return n;
}
