/* Guest RAM: one anonymous host mapping plus a log-dirty bitmap.
 *
 * Every write into guest RAM — CPU stores, atomics, page-table A/D updates,
 * device DMA — must end in ram_mark_dirty() for the pages it touched. Live
 * migration reads the bitmap with ram_dirty_harvest(); a write that skips the
 * marking is silently lost on the destination.
 *
 * Concurrency: bits are set with atomic OR from any thread and harvested
 * with atomic exchange, so a page written after its bit was harvested is
 * marked again and sent in the next round. */
#ifndef FERRY_MEM_RAM_H
#define FERRY_MEM_RAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define RAM_PAGE_SHIFT 12
#define RAM_PAGE_SIZE (1ull << RAM_PAGE_SHIFT)

struct ram {
    uint8_t *host;     /* host address of guest physical `base` */
    uint64_t base;     /* guest physical address of the first byte */
    uint64_t size;     /* bytes, a multiple of RAM_PAGE_SIZE */
    uint64_t npages;
    uint64_t *dirty;   /* one bit per page; access only through the functions below */
    uint64_t *touched; /* one bit per page ever written; never cleared */
    size_t dirty_words;
    /* Translating CPU: one byte per page, non-zero while some hart may hold
     * translated code from it (allocated by the first translation, freed
     * with the RAM); jit_code_gen counts writes that hit such a page. */
    uint8_t *jit_code;
    uint64_t jit_code_gen;
};

int ram_init(struct ram *ram, uint64_t base, uint64_t size, struct error *err);
void ram_destroy(struct ram *ram);

static inline bool ram_contains(const struct ram *ram, uint64_t gpa, uint64_t len)
{
    return gpa >= ram->base && len <= ram->size && gpa - ram->base <= ram->size - len;
}

/* Host pointer for a guest physical address already checked with ram_contains. */
static inline uint8_t *ram_host(const struct ram *ram, uint64_t gpa)
{
    return ram->host + (gpa - ram->base);
}

/* Marks page number `page` (0-based from ram->base). Call it after the data
 * is written: the seq_cst OR orders the data before the bit, so a harvest
 * that sees the bit also sees the data, and one that does not will see the
 * bit next round. The CPU calls this only when it fills a write-TLB entry,
 * so its cost stays off the store fast path. */
static inline void ram_mark_dirty_page(struct ram *ram, uint64_t page)
{
    uint64_t bit = 1ull << (page & 63);
    /* `touched` only ever gains bits, so the relaxed pre-check is safe; it
     * lets migration send never-written pages as zero without reading. */
    if (!(__atomic_load_n(&ram->touched[page >> 6], __ATOMIC_RELAXED) & bit))
        __atomic_fetch_or(&ram->touched[page >> 6], bit, __ATOMIC_SEQ_CST);
    __atomic_fetch_or(&ram->dirty[page >> 6], bit, __ATOMIC_SEQ_CST);
}

/* True if the page was ever written (by the guest, a device or a loader):
 * a page that was not is all zeros. */
static inline bool ram_page_touched(const struct ram *ram, uint64_t page)
{
    return (__atomic_load_n(&ram->touched[page >> 6], __ATOMIC_ACQUIRE) >> (page & 63)) & 1;
}

/* A write to [gpa, gpa+len) that hit a page holding translated code:
 * clears the page's mark and bumps jit_code_gen, so every hart drops its
 * translations (src/cpu/jit.h). ram_mark_dirty calls it: each writer of
 * guest RAM (CPU slow paths, AMOs, DMA, loaders) ends there. */
static inline void ram_note_code_write(struct ram *ram, uint64_t gpa, uint64_t len)
{
    uint8_t *map = __atomic_load_n(&ram->jit_code, __ATOMIC_ACQUIRE);
    if (!map || len == 0)
        return;
    uint64_t first = (gpa - ram->base) >> RAM_PAGE_SHIFT;
    uint64_t last = (gpa + len - 1 - ram->base) >> RAM_PAGE_SHIFT;
    for (uint64_t p = first; p <= last; p++) {
        if (__atomic_load_n(&map[p], __ATOMIC_RELAXED)) {
            __atomic_store_n(&map[p], 0, __ATOMIC_RELAXED);
            __atomic_fetch_add(&ram->jit_code_gen, 1, __ATOMIC_SEQ_CST);
        }
    }
}

/* Marks every page overlapping [gpa, gpa+len); gpa/len must be inside RAM. */
void ram_mark_dirty(struct ram *ram, uint64_t gpa, uint64_t len);

bool ram_page_is_dirty(const struct ram *ram, uint64_t page);

/* Atomically fetches and clears the whole bitmap into `out` (ram->dirty_words
 * words). Returns the number of dirty pages harvested. Callers that cache
 * "page already dirty" facts (the CPU's write TLB) must drop them at the same
 * time; see machine_dirty_sync(). */
uint64_t ram_dirty_harvest(struct ram *ram, uint64_t *out);

uint64_t ram_dirty_count(const struct ram *ram);
void ram_dirty_clear_all(struct ram *ram);

#endif
