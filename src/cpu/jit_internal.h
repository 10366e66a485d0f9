/* Shared between the translator's files (jit.c: cache and dispatch,
 * jit_translate.c, jit_alu.c, jit_fp.c: RV64 -> x86-64). */
#ifndef FERRY_CPU_JIT_INTERNAL_H
#define FERRY_CPU_JIT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "cpu/jit.h"

#define JIT_CODE_SIZE (16u << 20)   /* host code per hart; flushed when full */
#define JIT_MAX_BLOCKS 65536
#define JIT_BUCKETS 16384
#define JIT_FAST 32768              /* direct-mapped vpc -> block cache */
#define JIT_MAX_INSNS 128           /* guest instructions per block */
#define JIT_LOOP_INSNS 24           /* a longer loop is not one block */
#define JIT_BLOCK_ROOM (96u << 10)  /* more than the code of any one block */

/* One translated block: guest code from virtual pc `vpc`, found at
 * physical `ppc`, never crossing a guest page. Keyed by both: the code
 * embeds pc-relative values (virtual) and was read from `ppc` (physical). */
struct jit_block {
    uint64_t vpc, ppc;
    uint8_t *code;
    struct jit_block *next;     /* hash chain */
};

/* A hart's translation cache. The code buffer starts with the enter and
 * epilogue stubs; blocks follow. */
struct jit {
    /* Code is written through buf and run through buf + exec_delta: two
     * views of one memfd, one read-write, one read-execute (W^X); all
     * pointers kept here are in the writable view. exec_delta is 0 when
     * the fallback single RWX mapping is in use. */
    uint8_t *buf;
    intptr_t exec_delta;
    bool have_fma;              /* host has FMA3 (vfmadd231sd) */
    bool have_bmi2;             /* host has BMI2 (rorx) */
    unsigned next_slot;         /* next h->jit_load_slot for a translated load */
    unsigned next_site;         /* next h->jit_exit_site for a translated exit */
    struct hart *hart;          /* the owner (its exit sites go with the cache) */
    uint8_t *code_start, *code_ptr, *code_end;
    /* Enters generated code with rbx = h; returns the chain slot (rel32
     * field of a direct-jump exit) taken to leave, or NULL. */
    uint8_t *(*enter)(struct hart *h, const uint8_t *code);
    uint8_t *epilogue;
    struct jit_block *blocks;
    unsigned nblocks;
    struct jit_block *buckets[JIT_BUCKETS];
    struct jit_block *fast[JIT_FAST];
    uint64_t icache_epoch;      /* of h->icache when last flushed */
    uint64_t code_gen;          /* ram->jit_code_gen when last flushed */
    struct jit_stats stats;
};

enum jit_translate_result {
    JIT_OK,
    JIT_FULL,       /* out of code space or blocks: flush and retry */
    JIT_CROSSING,   /* the first instruction straddles the page end */
};

/* A CSR instruction on fflags, frm or fcsr (frflags, fsflags, ...: GCC
 * brackets every quiet FP comparison with a pair): it changes only FP
 * state, or traps, so its block may go on after it. */
static inline bool jit_is_fp_csr(uint32_t insn)
{
    unsigned f3 = (insn >> 12) & 7, csr = insn >> 20;
    return (insn & 0x7f) == 0x73 && f3 != 0 && f3 != 4 && csr >= 1 && csr <= 3;
}

/* Translates the block at pc (physical ppc; host_page maps its page). */
enum jit_translate_result jit_translate(struct jit *j, struct hart *h, uint64_t pc,
                                        uint64_t ppc, const uint8_t *host_page,
                                        struct jit_block **out);

/* Called from generated code (slow paths). Each returns 0 to continue the
 * block or 1 to leave it (h->pc and h->instret are then exact: the trap
 * handler's, or the next instruction's). */
const uint8_t *jit_next(struct hart *h, unsigned site);
int jit_load_slow(struct hart *h, uint64_t va, uint32_t info, uint64_t pc);
int jit_store_slow(struct hart *h, uint64_t va, uint64_t value, uint32_t info, uint64_t pc);
int jit_fallback(struct hart *h, uint32_t insn, uint64_t pc, uint32_t info, uint32_t raw);

/* The M extension with the spec's division rules (called from code). */
uint64_t jit_mulhsu(uint64_t a, uint64_t b);
uint64_t jit_div(uint64_t a, uint64_t b);
uint64_t jit_divu(uint64_t a, uint64_t b);
uint64_t jit_rem(uint64_t a, uint64_t b);
uint64_t jit_remu(uint64_t a, uint64_t b);
uint64_t jit_divw(uint64_t a, uint64_t b);
uint64_t jit_divuw(uint64_t a, uint64_t b);
uint64_t jit_remw(uint64_t a, uint64_t b);
uint64_t jit_remuw(uint64_t a, uint64_t b);

#endif
