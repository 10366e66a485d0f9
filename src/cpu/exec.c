/* The interpreter: fetch, decode and execute, with TLB fast paths for
 * fetches, loads and stores. Compressed instructions are expanded first. */
#include <string.h>

#include "cpu/cpu_internal.h"
#include "cpu/rvc.h"
#include "machine/machine.h"
#include "mem/ram.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

/* Immediates are assembled as uint32_t and sign-extended once at the end:
 * mixing int32_t and uint32_t operands would zero-extend. */
static inline int64_t imm_i(uint32_t insn) { return (int32_t)insn >> 20; }
static inline int64_t imm_s(uint32_t insn)
{
    return (int32_t)(((uint32_t)((int32_t)insn >> 25) << 5) | ((insn >> 7) & 31));
}
static inline int64_t imm_b(uint32_t insn)
{
    return (int32_t)((uint32_t)((int32_t)(insn & 0x80000000) >> 19) | ((insn & 0x80) << 4) |
                     ((insn >> 20) & 0x7e0) | ((insn >> 7) & 0x1e));
}
static inline int64_t imm_j(uint32_t insn)
{
    return (int32_t)((uint32_t)((int32_t)(insn & 0x80000000) >> 11) | (insn & 0xff000) |
                     ((insn >> 9) & 0x800) | ((insn >> 20) & 0x7fe));
}

static inline bool load(struct hart *h, uint64_t va, unsigned size, uint64_t *v)
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
    return cpu_load(h, va, size, v);
}

static inline bool store(struct hart *h, uint64_t va, unsigned size, uint64_t v)
{
    struct tlb_entry *e = &h->tlb_write[(va >> 12) & (TLB_SIZE - 1)];
    if (likely(e->tag == ((va >> 12) | h->ctx_data) && (va & 0xfff) <= 4096 - size)) {
        memcpy((void *)(uintptr_t)(va + e->addend), &v, size); /* little-endian host */
        return true;
    }
    return cpu_store(h, va, size, v);
}

static inline bool fetch(struct hart *h, uint64_t pc, uint32_t *insn)
{
    struct tlb_entry *e = &h->tlb_fetch[(pc >> 12) & (TLB_SIZE - 1)];
    if (likely(e->tag == ((pc >> 12) | h->ctx_fetch) && (pc & 0xfff) <= 4092)) {
        memcpy(insn, (const void *)(uintptr_t)(pc + e->addend), 4);
        return true;
    }
    return cpu_fetch_slow(h, pc, insn);
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
        uint64_t v = 0;
        memcpy(&v, p, size);
        h->x[rd] = size == 4 ? sx32(v) : v;
        h->reservation = pa;
        h->reserved = true;
        return true;
    }
    if (f5 == 0x03) { /* SC */
        uint8_t *p = cpu_amo_ptr(h, va, size, &pa);
        if (!p)
            return false;
        if (h->reserved && h->reservation == pa) {
            memcpy(p, &src, size);
            h->x[rd] = 0;
        } else {
            h->x[rd] = 1;
        }
        h->reserved = false;
        return true;
    }
    uint8_t *p = cpu_amo_ptr(h, va, size, &pa);
    if (!p)
        return false;
    uint64_t old = 0;
    memcpy(&old, p, size);
    if (size == 4) {
        old = sx32(old);
        src = sx32(src);
    }
    uint64_t nv;
    switch (f5) {
    case 0x01: nv = src; break;
    case 0x00: nv = old + src; break;
    case 0x04: nv = old ^ src; break;
    case 0x0c: nv = old & src; break;
    case 0x08: nv = old | src; break;
    case 0x10: nv = (int64_t)old < (int64_t)src ? old : src; break;
    case 0x14: nv = (int64_t)old > (int64_t)src ? old : src; break;
    case 0x18: nv = old < src ? old : src; break;
    case 0x1c: nv = old > src ? old : src; break;
    default: illegal(h, insn); return false;
    }
    if (size == 4 && (f5 == 0x18 || f5 == 0x1c)) {
        /* Unsigned 32-bit compare on the low words. */
        uint32_t a = (uint32_t)old, b = (uint32_t)src;
        nv = sx32(f5 == 0x18 ? (a < b ? a : b) : (a > b ? a : b));
    }
    memcpy(p, &nv, size);
    h->x[rd] = old;
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
        /* The machine loop sleeps the host thread until an interrupt. */
        if (!hart_interrupt_pending(h))
            h->wfi = true;
        return true;
    default:
        illegal(h, insn);
        return false;
    }
}

uint64_t hart_run(struct hart *h, uint64_t budget)
{
    uint64_t n = 0;
    uint64_t *x = h->x;
    while (n < budget) {
        if (unlikely(h->interrupt_check))
            hart_take_interrupt(h);
        if (unlikely(h->wfi))
            break;
        uint64_t pc = h->pc;
        uint32_t insn;
        if (unlikely(!fetch(h, pc, &insn)))
            continue;
        n++;
        unsigned len = 4;
        uint32_t raw = insn;
        if ((insn & 3) != 3) {
            uint16_t c = (uint16_t)insn;
            insn = rvc_expand(c);
            len = 2;
            if (unlikely(!insn)) {
                illegal(h, c);
                continue;
            }
        }
        unsigned rd = (insn >> 7) & 31, rs1 = (insn >> 15) & 31, rs2 = (insn >> 20) & 31;
        unsigned f3 = (insn >> 12) & 7;
        uint64_t a = x[rs1], b = x[rs2], v;
        switch (insn & 0x7f) {
        case 0x37: x[rd] = (uint64_t)(int64_t)(int32_t)(insn & 0xfffff000); break; /* LUI */
        case 0x17: x[rd] = pc + (uint64_t)(int64_t)(int32_t)(insn & 0xfffff000); break;
        case 0x6f: /* JAL */
            x[rd] = pc + len;
            x[0] = 0;
            h->pc = pc + (uint64_t)imm_j(insn);
            h->instret++;
            continue;
        case 0x67: /* JALR */
            if (f3) goto illegal_insn;
            x[rd] = pc + len;
            x[0] = 0;
            h->pc = (a + (uint64_t)imm_i(insn)) & ~1ull;
            h->instret++;
            continue;
        case 0x63: { /* branches */
            bool taken;
            switch (f3) {
            case 0: taken = a == b; break;
            case 1: taken = a != b; break;
            case 4: taken = (int64_t)a < (int64_t)b; break;
            case 5: taken = (int64_t)a >= (int64_t)b; break;
            case 6: taken = a < b; break;
            case 7: taken = a >= b; break;
            default: goto illegal_insn;
            }
            if (taken) {
                h->pc = pc + (uint64_t)imm_b(insn);
                h->instret++;
                continue;
            }
            break;
        }
        case 0x03: { /* loads */
            uint64_t va = a + (uint64_t)imm_i(insn);
            static const uint8_t size_of[8] = {1, 2, 4, 8, 1, 2, 4, 0};
            unsigned size = size_of[f3];
            if (!size) goto illegal_insn;
            if (unlikely(!load(h, va, size, &v)))
                continue;
            switch (f3) {
            case 0: v = (uint64_t)(int64_t)(int8_t)v; break;
            case 1: v = (uint64_t)(int64_t)(int16_t)v; break;
            case 2: v = sx32(v); break;
            default: break;
            }
            x[rd] = v;
            break;
        }
        case 0x23: { /* stores */
            if (f3 > 3) goto illegal_insn;
            if (unlikely(!store(h, a + (uint64_t)imm_s(insn), 1u << f3, b)))
                continue;
            break;
        }
        case 0x13: { /* OP-IMM */
            uint64_t imm = (uint64_t)imm_i(insn);
            switch (f3) {
            case 0: v = a + imm; break;
            case 2: v = (int64_t)a < (int64_t)imm; break;
            case 3: v = a < imm; break;
            case 4: v = a ^ imm; break;
            case 6: v = a | imm; break;
            case 7: v = a & imm; break;
            case 1:
                if (insn >> 26) goto illegal_insn;
                v = a << (imm & 63);
                break;
            default: /* 5 */
                if ((insn >> 26) == 0) v = a >> (imm & 63);
                else if ((insn >> 26) == 0x10) v = (uint64_t)((int64_t)a >> (imm & 63));
                else goto illegal_insn;
                break;
            }
            x[rd] = v;
            break;
        }
        case 0x1b: { /* OP-IMM-32 */
            uint64_t imm = (uint64_t)imm_i(insn);
            unsigned sh = (insn >> 20) & 31;
            switch (f3) {
            case 0: v = sx32(a + imm); break;
            case 1:
                if (insn >> 25) goto illegal_insn;
                v = sx32((uint32_t)a << sh);
                break;
            case 5:
                if ((insn >> 25) == 0) v = sx32((uint32_t)a >> sh);
                else if ((insn >> 25) == 0x20) v = sx32((uint64_t)((int32_t)a >> sh));
                else goto illegal_insn;
                break;
            default: goto illegal_insn;
            }
            x[rd] = v;
            break;
        }
        case 0x33: { /* OP */
            unsigned f7 = insn >> 25;
            if (f7 == 0) {
                switch (f3) {
                case 0: v = a + b; break;
                case 1: v = a << (b & 63); break;
                case 2: v = (int64_t)a < (int64_t)b; break;
                case 3: v = a < b; break;
                case 4: v = a ^ b; break;
                case 5: v = a >> (b & 63); break;
                case 6: v = a | b; break;
                default: v = a & b; break;
                }
            } else if (f7 == 0x20) {
                if (f3 == 0) v = a - b;
                else if (f3 == 5) v = (uint64_t)((int64_t)a >> (b & 63));
                else goto illegal_insn;
            } else if (f7 == 1) {
                switch (f3) {
                case 0: v = a * b; break;
                case 1: v = mulh((int64_t)a, (int64_t)b); break;
                case 2: v = mulhsu((int64_t)a, b); break;
                case 3: v = mulhu(a, b); break;
                case 4: v = div_s((int64_t)a, (int64_t)b); break;
                case 5: v = div_u(a, b); break;
                case 6: v = rem_s((int64_t)a, (int64_t)b); break;
                default: v = rem_u(a, b); break;
                }
            } else {
                goto illegal_insn;
            }
            x[rd] = v;
            break;
        }
        case 0x3b: { /* OP-32 */
            unsigned f7 = insn >> 25;
            uint32_t a32 = (uint32_t)a, b32 = (uint32_t)b;
            if (f7 == 0) {
                if (f3 == 0) v = sx32(a32 + b32);
                else if (f3 == 1) v = sx32(a32 << (b & 31));
                else if (f3 == 5) v = sx32(a32 >> (b & 31));
                else goto illegal_insn;
            } else if (f7 == 0x20) {
                if (f3 == 0) v = sx32(a32 - b32);
                else if (f3 == 5) v = sx32((uint64_t)((int32_t)a32 >> (b & 31)));
                else goto illegal_insn;
            } else if (f7 == 1) {
                int32_t sa = (int32_t)a32, sb = (int32_t)b32;
                switch (f3) {
                case 0: v = sx32(a32 * b32); break;
                case 4:
                    v = sb == 0 ? UINT64_MAX
                        : (sa == INT32_MIN && sb == -1) ? sx32((uint32_t)sa) : sx32((uint32_t)(sa / sb));
                    break;
                case 5: v = b32 == 0 ? UINT64_MAX : sx32(a32 / b32); break;
                case 6:
                    v = sb == 0 ? sx32(a32) : (sa == INT32_MIN && sb == -1) ? 0 : sx32((uint32_t)(sa % sb));
                    break;
                case 7: v = b32 == 0 ? sx32(a32) : sx32(a32 % b32); break;
                default: goto illegal_insn;
                }
            } else {
                goto illegal_insn;
            }
            x[rd] = v;
            break;
        }
        case 0x0f: /* FENCE, FENCE.I: no reordering and no decoded-code cache here */
            if (f3 > 1) goto illegal_insn;
            break;
        case 0x2f:
            if (!exec_amo(h, insn))
                continue;
            break;
        case 0x73:
            if (!exec_system(h, insn)) {
                x[0] = 0;
                continue;
            }
            break;
        case 0x07: case 0x27: case 0x43: case 0x47: case 0x4b: case 0x4f: case 0x53:
            if (!fpu_exec(h, insn))
                continue;
            break;
        default:
            goto illegal_insn;
        }
        x[0] = 0;
        h->pc = pc + len;
        h->instret++;
        continue;
    illegal_insn:
        illegal(h, len == 2 ? (uint16_t)raw : raw);
    }
    return n;
}
