/* Decoded-instruction cache, keyed by guest physical page.
 *
 * Each hart has its own, touched only by its thread (or by another thread
 * while the hart is parked: machine_fence_i), so decoding and lookups need
 * no locks. Each executed RAM page gets one slot per 2-byte offset holding
 * the instruction decoded once (operation, registers, immediate), so the
 * interpreter skips fetch decoding and RVC expansion on every later run.
 * Keying by physical address means sfence.vma and satp changes need not
 * touch it; FENCE.I (local or remote) invalidates it, which is exactly
 * when the ISA says modified code becomes visible. A derived cache: it is
 * never migrated and starts empty after a state load. */
#ifndef FERRY_CPU_ICACHE_H
#define FERRY_CPU_ICACHE_H

#include <stdbool.h>
#include <stdint.h>

#define ICACHE_SLOTS 2048       /* one per 2 bytes of a 4 KiB page */
#define ICACHE_MAX_PAGES 4096   /* 128 MiB of slots at most, then start over */

struct decoded {
    uint8_t op;     /* enum decoded_op; 0 = not decoded yet */
    uint8_t rd;     /* 32 = discard (x0 as destination) */
    uint8_t rs1, rs2;
    int32_t imm;
    uint32_t raw;   /* the 32-bit instruction (RVC expanded), or the original
                       16 bits for an illegal compressed one */
    uint8_t len;    /* 2 or 4 */
};

struct code_page {
    uint64_t ppage;
    uint64_t epoch;
    struct code_page *next;
    /* Two sentinel slots past the end (OP_PAGE_END) stop sequential
     * execution at the page boundary without a check per instruction. */
    struct decoded slots[ICACHE_SLOTS + 2];
};

/* Zero-initialised is a valid empty cache. */
struct icache {
    struct code_page **buckets;
    unsigned nbuckets;
    unsigned npages;
    uint64_t epoch;
    bool flush_pending;  /* full: the hart's thread frees it after the slice */
};

/* The page's decoded slots (stale ones cleared), or NULL when the cache is
 * full or out of memory: the caller then executes without it. */
struct code_page *icache_page(struct icache *c, uint64_t ppage);
/* Invalidates every page lazily (FENCE.I). Callers also drop fetch TLB
 * entries, which hold page pointers. */
void icache_invalidate(struct icache *c);
/* Frees everything; only when no hart holds a page pointer. */
void icache_free(struct icache *c);

/* Decodes one instruction (16 or 32 bits) into a slot. */
void icache_decode(struct decoded *d, uint32_t insn);

enum decoded_op {
    OP_UNDECODED = 0,
    OP_ILLEGAL, OP_NOP, OP_CROSS, OP_PAGE_END,
    OP_LUI, OP_AUIPC, OP_JAL, OP_JALR,
    OP_BEQ, OP_BNE, OP_BLT, OP_BGE, OP_BLTU, OP_BGEU,
    OP_LB, OP_LH, OP_LW, OP_LD, OP_LBU, OP_LHU, OP_LWU,
    OP_SB, OP_SH, OP_SW, OP_SD,
    OP_ADDI, OP_SLTI, OP_SLTIU, OP_XORI, OP_ORI, OP_ANDI, OP_SLLI, OP_SRLI, OP_SRAI,
    OP_ADDIW, OP_SLLIW, OP_SRLIW, OP_SRAIW,
    OP_ADD, OP_SUB, OP_SLL, OP_SLT, OP_SLTU, OP_XOR, OP_SRL, OP_SRA, OP_OR, OP_AND,
    OP_MUL, OP_MULH, OP_MULHSU, OP_MULHU, OP_DIV, OP_DIVU, OP_REM, OP_REMU,
    OP_ADDW, OP_SUBW, OP_SLLW, OP_SRLW, OP_SRAW,
    OP_MULW, OP_DIVW, OP_DIVUW, OP_REMW, OP_REMUW,
    OP_FENCE_I, OP_AMO, OP_SYSTEM, OP_FP,
    OP_FLW, OP_FLD, OP_FSW, OP_FSD,   /* FP loads/stores: no rounding, fast path */
    OP_CBO,                           /* Zicbom/Zicboz cbo.*: exec_generic */
    OP_FENCE,                         /* a FENCE ordering stores before later loads */
    /* Zba, Zbb, Zbs, Zicond: pure register writes, all executed by
     * cpu_bitmanip() (imm is the shift amount of the immediate forms). */
    OP_SH1ADD, OP_SH2ADD, OP_SH3ADD, OP_ADD_UW, OP_SH1ADD_UW, OP_SH2ADD_UW, OP_SH3ADD_UW,
    OP_SLLI_UW,
    OP_ANDN, OP_ORN, OP_XNOR, OP_CLZ, OP_CLZW, OP_CTZ, OP_CTZW, OP_CPOP, OP_CPOPW,
    OP_MAX, OP_MAXU, OP_MIN, OP_MINU, OP_SEXT_B, OP_SEXT_H, OP_ZEXT_H,
    OP_ROL, OP_ROLW, OP_ROR, OP_RORI, OP_RORW, OP_RORIW, OP_ORC_B, OP_REV8,
    OP_BCLR, OP_BCLRI, OP_BEXT, OP_BEXTI, OP_BINV, OP_BINVI, OP_BSET, OP_BSETI,
    OP_CZERO_EQZ, OP_CZERO_NEZ,
    OP_COUNT
};

#define OP_BITMANIP_FIRST OP_SH1ADD
#define OP_BITMANIP_LAST OP_CZERO_NEZ

/* The result of a Zba/Zbb/Zbs/Zicond operation (op in OP_BITMANIP_FIRST..
 * OP_BITMANIP_LAST) on rs1 = a, rs2 = b, or the decoded immediate. */
uint64_t cpu_bitmanip(unsigned op, uint64_t a, uint64_t b, int64_t imm);

#endif
