#include "cpu/icache.h"

#include <stdlib.h>
#include <string.h>

#include "cpu/rvc.h"

static unsigned bucket_of(const struct icache *c, uint64_t ppage)
{
    return (unsigned)((ppage >> 12) * 0x9E3779B97F4A7C15ull >> 40) & (c->nbuckets - 1);
}

struct code_page *icache_page(struct icache *c, uint64_t ppage)
{
    if (!c->buckets) {
        c->nbuckets = 4096;
        c->buckets = calloc(c->nbuckets, sizeof *c->buckets);
        if (!c->buckets)
            return NULL;
    }
    unsigned b = bucket_of(c, ppage);
    for (struct code_page *p = c->buckets[b]; p; p = p->next) {
        if (p->ppage == ppage) {
            if (p->epoch != c->epoch) {
                memset(p->slots, 0, ICACHE_SLOTS * sizeof p->slots[0]);
                p->epoch = c->epoch;
            }
            return p;
        }
    }
    if (c->npages >= ICACHE_MAX_PAGES) {
        c->flush_pending = true;
        return NULL;
    }
    struct code_page *p = calloc(1, sizeof *p);
    if (!p)
        return NULL;
    p->ppage = ppage;
    p->epoch = c->epoch;
    p->slots[ICACHE_SLOTS].op = OP_PAGE_END;
    p->slots[ICACHE_SLOTS + 1].op = OP_PAGE_END;
    p->next = c->buckets[b];
    c->buckets[b] = p;
    c->npages++;
    return p;
}

void icache_invalidate(struct icache *c)
{
    c->epoch++;
}

void icache_free(struct icache *c)
{
    for (unsigned b = 0; b < c->nbuckets; b++) {
        struct code_page *p = c->buckets[b];
        while (p) {
            struct code_page *next = p->next;
            free(p);
            p = next;
        }
    }
    free(c->buckets);
    uint64_t epoch = c->epoch;
    memset(c, 0, sizeof *c);
    c->epoch = epoch + 1;
}

static int32_t imm_i(uint32_t insn) { return (int32_t)insn >> 20; }
static int32_t imm_s(uint32_t insn)
{
    return (int32_t)(((uint32_t)((int32_t)insn >> 25) << 5) | ((insn >> 7) & 31));
}
static int32_t imm_b(uint32_t insn)
{
    return (int32_t)((uint32_t)((int32_t)(insn & 0x80000000) >> 19) | ((insn & 0x80) << 4) |
                     ((insn >> 20) & 0x7e0) | ((insn >> 7) & 0x1e));
}
static int32_t imm_j(uint32_t insn)
{
    return (int32_t)((uint32_t)((int32_t)(insn & 0x80000000) >> 11) | (insn & 0xff000) |
                     ((insn >> 9) & 0x800) | ((insn >> 20) & 0x7fe));
}

/* Zba/Zbb/Zbs/Zicond encodings in OP, OP-32, OP-IMM and OP-IMM-32 that
 * the base decoder does not claim, or OP_ILLEGAL. The caller has put an
 * immediate form's shift amount in imm. */
static uint8_t decode_bitmanip(uint32_t insn)
{
    unsigned f3 = (insn >> 12) & 7, f7 = insn >> 25, top6 = insn >> 26, imm12 = insn >> 20;
    unsigned rs2 = (insn >> 20) & 31;
    switch (insn & 0x7f) {
    case 0x13: /* OP-IMM */
        if (f3 == 1) {
            switch (top6) {
            case 0x12: return OP_BCLRI;
            case 0x0a: return OP_BSETI;
            case 0x1a: return OP_BINVI;
            default: break;
            }
            switch (imm12) {
            case 0x600: return OP_CLZ;
            case 0x601: return OP_CTZ;
            case 0x602: return OP_CPOP;
            case 0x604: return OP_SEXT_B;
            case 0x605: return OP_SEXT_H;
            default: return OP_ILLEGAL;
            }
        }
        if (f3 == 5) {
            if (imm12 == 0x287) return OP_ORC_B;
            if (imm12 == 0x6b8) return OP_REV8;
            if (top6 == 0x12) return OP_BEXTI;
            if (top6 == 0x18) return OP_RORI;
        }
        return OP_ILLEGAL;
    case 0x1b: /* OP-IMM-32 */
        if (f3 == 1) {
            switch (imm12) {
            case 0x600: return OP_CLZW;
            case 0x601: return OP_CTZW;
            case 0x602: return OP_CPOPW;
            default: return OP_ILLEGAL;
            }
        }
        return f3 == 5 && f7 == 0x30 ? OP_RORIW : OP_ILLEGAL;
    case 0x33: /* OP */
        switch (f7) {
        case 0x10:
            return f3 == 2 ? OP_SH1ADD : f3 == 4 ? OP_SH2ADD : f3 == 6 ? OP_SH3ADD : OP_ILLEGAL;
        case 0x20:
            return f3 == 7 ? OP_ANDN : f3 == 6 ? OP_ORN : f3 == 4 ? OP_XNOR : OP_ILLEGAL;
        case 0x05: {
            static const uint8_t ops[8] = {OP_ILLEGAL, OP_ILLEGAL, OP_ILLEGAL, OP_ILLEGAL,
                                           OP_MIN, OP_MINU, OP_MAX, OP_MAXU};
            return ops[f3];
        }
        case 0x30: return f3 == 1 ? OP_ROL : f3 == 5 ? OP_ROR : OP_ILLEGAL;
        case 0x24: return f3 == 1 ? OP_BCLR : f3 == 5 ? OP_BEXT : OP_ILLEGAL;
        case 0x34: return f3 == 1 ? OP_BINV : OP_ILLEGAL;
        case 0x14: return f3 == 1 ? OP_BSET : OP_ILLEGAL;
        case 0x07: return f3 == 5 ? OP_CZERO_EQZ : f3 == 7 ? OP_CZERO_NEZ : OP_ILLEGAL;
        default: return OP_ILLEGAL;
        }
    case 0x3b: /* OP-32 */
        switch (f7) {
        case 0x04:
            if (f3 == 0) return OP_ADD_UW;
            return f3 == 4 && rs2 == 0 ? OP_ZEXT_H : OP_ILLEGAL;
        case 0x10:
            return f3 == 2 ? OP_SH1ADD_UW : f3 == 4 ? OP_SH2ADD_UW
                 : f3 == 6 ? OP_SH3ADD_UW : OP_ILLEGAL;
        case 0x30: return f3 == 1 ? OP_ROLW : f3 == 5 ? OP_RORW : OP_ILLEGAL;
        default: return OP_ILLEGAL;
        }
    default:
        return OP_ILLEGAL;
    }
}

/* Whether a FENCE orders earlier stores (or device output) before later
 * loads (or device input): `fence rw,rw` (Linux's smp_mb and virtio_mb),
 * `fence w,r`, `fence iorw,iorw`... The host (x86) keeps every other order
 * by itself but lets a load pass an earlier store, so these need a real
 * barrier now that harts and devices run on threads of their own: a guest
 * that clears a ring's "no interrupt" flag, fences and rereads the used
 * index could otherwise miss a completion the device published meanwhile
 * (and wait for an interrupt that never comes). FENCE.TSO (fm = 1000)
 * orders no store before a load. */
static bool fence_orders_store_load(uint32_t insn)
{
    unsigned fm = insn >> 28, pred = (insn >> 24) & 15, succ = (insn >> 20) & 15;
    enum { FENCE_I = 8, FENCE_O = 4, FENCE_R = 2, FENCE_W = 1 };
    return fm != 8 && (pred & (FENCE_O | FENCE_W)) && (succ & (FENCE_I | FENCE_R));
}

/* The operation of a 32-bit instruction, or OP_ILLEGAL. Operations that
 * only write rd become OP_NOP when rd is x0. */
static uint8_t decode_op(uint32_t insn, int32_t *imm)
{
    unsigned f3 = (insn >> 12) & 7, f7 = insn >> 25;
    switch (insn & 0x7f) {
    case 0x37: *imm = (int32_t)(insn & 0xfffff000); return OP_LUI;
    case 0x17: *imm = (int32_t)(insn & 0xfffff000); return OP_AUIPC;
    case 0x6f: *imm = imm_j(insn); return OP_JAL;
    case 0x67: *imm = imm_i(insn); return f3 ? OP_ILLEGAL : OP_JALR;
    case 0x63: {
        static const uint8_t ops[8] = {OP_BEQ, OP_BNE, OP_ILLEGAL, OP_ILLEGAL,
                                       OP_BLT, OP_BGE, OP_BLTU, OP_BGEU};
        *imm = imm_b(insn);
        return ops[f3];
    }
    case 0x03: {
        static const uint8_t ops[8] = {OP_LB, OP_LH, OP_LW, OP_LD,
                                       OP_LBU, OP_LHU, OP_LWU, OP_ILLEGAL};
        *imm = imm_i(insn);
        return ops[f3];
    }
    case 0x23: {
        static const uint8_t ops[8] = {OP_SB, OP_SH, OP_SW, OP_SD,
                                       OP_ILLEGAL, OP_ILLEGAL, OP_ILLEGAL, OP_ILLEGAL};
        *imm = imm_s(insn);
        return ops[f3];
    }
    case 0x13:
        *imm = imm_i(insn);
        switch (f3) {
        case 0: return OP_ADDI;
        case 2: return OP_SLTI;
        case 3: return OP_SLTIU;
        case 4: return OP_XORI;
        case 6: return OP_ORI;
        case 7: return OP_ANDI;
        case 1: *imm &= 63; return (insn >> 26) ? decode_bitmanip(insn) : OP_SLLI;
        default:
            *imm &= 63;
            if ((insn >> 26) == 0) return OP_SRLI;
            if ((insn >> 26) == 0x10) return OP_SRAI;
            return decode_bitmanip(insn);
        }
    case 0x1b:
        *imm = imm_i(insn);
        switch (f3) {
        case 0: return OP_ADDIW;
        case 1:
            if ((insn >> 26) == 0x02) { /* slli.uw: a 6-bit shift amount */
                *imm &= 63;
                return OP_SLLI_UW;
            }
            *imm &= 31;
            return f7 ? decode_bitmanip(insn) : OP_SLLIW;
        case 5:
            *imm &= 31;
            if (f7 == 0) return OP_SRLIW;
            if (f7 == 0x20) return OP_SRAIW;
            return decode_bitmanip(insn);
        default: return OP_ILLEGAL;
        }
    case 0x33: {
        static const uint8_t base[8] = {OP_ADD, OP_SLL, OP_SLT, OP_SLTU,
                                        OP_XOR, OP_SRL, OP_OR, OP_AND};
        static const uint8_t muldiv[8] = {OP_MUL, OP_MULH, OP_MULHSU, OP_MULHU,
                                          OP_DIV, OP_DIVU, OP_REM, OP_REMU};
        if (f7 == 0) return base[f3];
        if (f7 == 1) return muldiv[f3];
        if (f7 == 0x20 && f3 == 0) return OP_SUB;
        if (f7 == 0x20 && f3 == 5) return OP_SRA;
        return decode_bitmanip(insn);
    }
    case 0x3b:
        if (f7 == 0) return f3 == 0 ? OP_ADDW : f3 == 1 ? OP_SLLW : f3 == 5 ? OP_SRLW : OP_ILLEGAL;
        if (f7 == 0x20) return f3 == 0 ? OP_SUBW : f3 == 5 ? OP_SRAW : OP_ILLEGAL;
        if (f7 == 1) {
            static const uint8_t ops[8] = {OP_MULW, OP_ILLEGAL, OP_ILLEGAL, OP_ILLEGAL,
                                           OP_DIVW, OP_DIVUW, OP_REMW, OP_REMUW};
            return ops[f3];
        }
        return decode_bitmanip(insn);
    case 0x0f:
        if (f3 == 2) {
            /* cbo.inval/clean/flush (Zicbom), cbo.zero (Zicboz) */
            unsigned fn = insn >> 20;
            bool cbo = ((insn >> 7) & 31) == 0 && (fn == 0 || fn == 1 || fn == 2 || fn == 4);
            return cbo ? OP_CBO : OP_ILLEGAL;
        }
        if (f3 == 0)
            return fence_orders_store_load(insn) ? OP_FENCE : OP_NOP;
        return f3 == 1 ? OP_FENCE_I : OP_ILLEGAL;
    case 0x2f: return OP_AMO;
    case 0x73: return OP_SYSTEM;
    case 0x07:
        *imm = imm_i(insn);
        return f3 == 2 ? OP_FLW : f3 == 3 ? OP_FLD : OP_FP;
    case 0x27:
        *imm = imm_s(insn);
        return f3 == 2 ? OP_FSW : f3 == 3 ? OP_FSD : OP_FP;
    case 0x43: case 0x47: case 0x4b: case 0x4f: case 0x53: return OP_FP;
    default: return OP_ILLEGAL;
    }
}

void icache_decode(struct decoded *d, uint32_t insn)
{
    uint32_t full = insn;
    d->len = 4;
    if ((insn & 3) != 3) {
        d->len = 2;
        full = rvc_expand((uint16_t)insn);
        if (!full) {
            d->op = OP_ILLEGAL;
            d->raw = (uint16_t)insn;
            return;
        }
    }
    int32_t imm = 0;
    uint8_t op = decode_op(full, &imm);
    d->raw = op == OP_ILLEGAL && d->len == 2 ? (uint16_t)insn : full;
    d->imm = imm;
    d->rd = (full >> 7) & 31;
    d->rs1 = (full >> 15) & 31;
    d->rs2 = (full >> 20) & 31;
    if (d->rd == 0 && op != OP_FLW && op != OP_FLD) {
        /* Pure register writes to x0 do nothing; jumps and loads keep their
         * effects and write into the discard slot. */
        if ((op >= OP_ADDI && op <= OP_REMUW) ||
            (op >= OP_BITMANIP_FIRST && op <= OP_BITMANIP_LAST))
            op = OP_NOP;
        else if (op == OP_LUI || op == OP_AUIPC)
            op = OP_NOP;
        d->rd = 32;
    }
    d->op = op;
}
