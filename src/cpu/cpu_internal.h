/* Shared between the CPU's own files (executor, MMU, CSRs, SBI, FPU). */
#ifndef FERRY_CPU_INTERNAL_H
#define FERRY_CPU_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "cpu/hart.h"

/* Guest RAM accesses made for the guest's instructions. Harts on several
 * threads load and store guest memory without host synchronization, as
 * hardware harts do: the guest's own races (and its locks built from AMOs
 * and plain stores) are the guest's business, not data races of ferry.
 * The ThreadSanitizer build does not instrument the functions that make
 * them (the interpreter loop, the load/store slow paths, the page walker,
 * AMOs); ferry's own shared state is kept out of those accesses. */
#if defined(__SANITIZE_THREAD__)
#define GUEST_MEMORY_ACCESS __attribute__((no_sanitize_thread))
#else
#define GUEST_MEMORY_ACCESS
#endif

/* Guest RAM reads and writes of 1 to 8 bytes, little-endian (host moves or
 * a byte loop for the odd sizes of page-crossing halves; never a call into
 * the C library, which the sanitizers intercept). */
GUEST_MEMORY_ACCESS
static inline uint64_t guest_ram_get(const uint8_t *p, unsigned size)
{
    switch (size) {
    case 1: return *p;
    case 2: { uint16_t t; __builtin_memcpy(&t, p, 2); return t; }
    case 4: { uint32_t t; __builtin_memcpy(&t, p, 4); return t; }
    case 8: { uint64_t t; __builtin_memcpy(&t, p, 8); return t; }
    default: {
        uint64_t v = 0;
        for (unsigned i = 0; i < size; i++)
            v |= (uint64_t)p[i] << (8 * i);
        return v;
    }
    }
}

GUEST_MEMORY_ACCESS
static inline void guest_ram_put(uint8_t *p, uint64_t v, unsigned size)
{
    switch (size) {
    case 1: *p = (uint8_t)v; break;
    case 2: { uint16_t t = (uint16_t)v; __builtin_memcpy(p, &t, 2); break; }
    case 4: { uint32_t t = (uint32_t)v; __builtin_memcpy(p, &t, 4); break; }
    case 8: __builtin_memcpy(p, &v, 8); break;
    default:
        for (unsigned i = 0; i < size; i++)
            p[i] = (uint8_t)(v >> (8 * i));
        break;
    }
}

/* TLB tags are (vaddr >> 12) | context; a context occupies bits 52 and up,
 * which a virtual page number (at most 52 bits) never reaches. */
#define TLB_CTX_SHIFT 52

enum access { ACCESS_READ = 0, ACCESS_WRITE = 1, ACCESS_FETCH = 2 };

void hart_update_ctx(struct hart *h);
bool hart_take_interrupt(struct hart *h);
void hart_mret(struct hart *h);
void hart_sret(struct hart *h);

/* Translates vaddr for one access that does not cross a page. On success
 * returns true with the physical address; on failure raises nothing and
 * returns false with the exception cause in *cause. */
bool mmu_translate(struct hart *h, uint64_t vaddr, enum access access, uint64_t *paddr,
                   uint64_t *cause);

/* One instruction through the interpreter without its code cache:
 * hart_step fetches it at h->pc, hart_exec_insn is given its bits. Both
 * advance pc and instret or take the instruction's trap. */
void hart_step(struct hart *h);
void hart_exec_insn(struct hart *h, uint32_t insn);
/* The interpreter's executor for AMO, F/D, SYSTEM, FENCE.I and illegal
 * instructions: false when it trapped or redirected pc; pc and instret
 * are the caller's business, as in hart_run. */
bool hart_exec_generic(struct hart *h, uint32_t insn);

/* Slow-path instruction fetch (TLB miss, MMIO, page-crossing). Raises the
 * exception itself and returns false on failure. */
bool cpu_fetch_slow(struct hart *h, uint64_t pc, uint32_t *insn);

/* Host pointer to `size` bytes at vaddr for a read-modify-write (AMO, SC),
 * which must be naturally aligned and in RAM. Returns NULL after raising an
 * exception. Marks the page dirty. *paddr receives the physical address. */
uint8_t *cpu_amo_ptr(struct hart *h, uint64_t vaddr, unsigned size, uint64_t *paddr);
/* Host pointer for LR (read access), or NULL after raising an exception. */
uint8_t *cpu_lr_ptr(struct hart *h, uint64_t vaddr, unsigned size, uint64_t *paddr);

static inline uint64_t hart_mstatus_read(const struct hart *h)
{
    uint64_t s = h->mstatus & ~MSTATUS_SD;
    if ((s & MSTATUS_FS) == MSTATUS_FS)
        s |= MSTATUS_SD;
    return s;
}

static inline void hart_fs_dirty(struct hart *h)
{
    h->mstatus |= MSTATUS_FS;
}

#endif
