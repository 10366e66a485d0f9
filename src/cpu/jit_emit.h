/* The translator's shared state and register helpers (jit_translate.c:
 * blocks, control flow, memory; jit_alu.c: integer operations; jit_fp.c:
 * F/D operations and FP CSRs). */
#ifndef FERRY_CPU_JIT_EMIT_H
#define FERRY_CPU_JIT_EMIT_H

#include <stddef.h>

#include "cpu/cpu_internal.h"
#include "cpu/icache.h"
#include "cpu/jit_internal.h"
#include "cpu/jit_x86.h"

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

struct tctx {
    struct emit e;
    struct jit *j;
    int8_t host[33];        /* host register holding guest x[r], or -1 */
    uint32_t allocated;     /* guest registers held in host registers */
    uint32_t dirty;         /* of those, written since the last write-back */
    uint64_t page;          /* virtual page of the block */
    uint64_t start;         /* guest pc of the block's first instruction */
    uint64_t loop_end;      /* pc of the jump back to start ending a loop, or 0 */
    uint32_t loop_written;  /* guest registers the loop may write */
    int8_t instret_reg;     /* a loop's host register holding h->instret, or -1 */
    uint8_t *body;          /* code after the entry's register loads */
    uint8_t *bail;          /* xor eax, eax; jmp epilogue (0 = no chain slot) */
    struct stub stubs[JIT_MAX_INSNS];
    unsigned nstubs;
};

static inline void emit_bail(struct tctx *t)
{
    /* rax = 0: no chain slot; h->pc and instret were set by the helper. */
    x_u8(&t->e, 0x31);
    x_u8(&t->e, 0xc0);
    x_jmp_to(&t->e, t->j->epilogue);
}

/* reg = x[r] */
static inline void ld_x(struct tctx *t, int reg, unsigned r)
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
static inline void st_x(struct tctx *t, int reg, unsigned r)
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
static inline int src_x(struct tctx *t, unsigned r, int scratch)
{
    if (t->host[r] >= 0)
        return t->host[r];
    ld_x(t, scratch, r);
    return scratch;
}

/* Where to compute a result for x[rd]: its own host register, or rax. */
static inline int dst_x(struct tctx *t, unsigned rd)
{
    return t->host[rd] >= 0 ? t->host[rd] : RAX;
}

/* Writes the held registers in `dirty` back to struct hart, and a loop's
 * instret (which only its register holds while the loop runs). */
static inline void emit_writeback(struct tctx *t, uint32_t dirty)
{
    if (t->instret_reg >= 0)
        x_store(&t->e, t->instret_reg, RBX, OFF(instret));
    for (unsigned r = 1; r < 32; r++)
        if (dirty & (1u << r))
            x_store(&t->e, t->host[r], RBX, XR(r));
}

/* Loads every held register from struct hart (block entry, after C), and
 * a loop's copy of instret. */
static inline void emit_reload(struct tctx *t)
{
    for (unsigned r = 1; r < 32; r++)
        if (t->allocated & (1u << r))
            x_load(&t->e, t->host[r], RBX, XR(r));
    if (t->instret_reg >= 0)
        x_load(&t->e, t->instret_reg, RBX, OFF(instret));
}

/* Before a call on the block's main path that may read or write guest
 * registers: write back; after it, emit_reload (and all are clean). */
static inline void emit_sync(struct tctx *t)
{
    emit_writeback(t, t->dirty);
    t->dirty = 0;
}

/* Emitters shared between the files (each documented where defined). */
bool jit_emit_alu(struct tctx *t, const struct decoded *d);
bool jit_emit_load(struct tctx *t, const struct decoded *d, uint64_t pc, unsigned done);
bool jit_emit_store(struct tctx *t, const struct decoded *d, uint64_t pc, unsigned done);
void jit_emit_fallback(struct tctx *t, const struct decoded *d, uint32_t insn, uint64_t pc,
                       unsigned done);
void jit_emit_fp(struct tctx *t, const struct decoded *d, uint64_t pc, unsigned done);
void jit_emit_fp_mem(struct tctx *t, const struct decoded *d, uint64_t pc, unsigned done);
void jit_emit_fflags_csr(struct tctx *t, const struct decoded *d, uint32_t insn, uint64_t pc,
                         unsigned done);

#endif
