#include "mem/ram.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

int ram_init(struct ram *ram, uint64_t base, uint64_t size, struct error *err)
{
    memset(ram, 0, sizeof *ram);
    if (size == 0 || size % RAM_PAGE_SIZE)
        return error_set(err, "RAM size %llu is not a positive multiple of 4 KiB",
                         (unsigned long long)size);
    /* MAP_NORESERVE: untouched guest pages cost nothing on the host. */
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED)
        return error_set(err, "cannot map %llu bytes of guest RAM: %s",
                         (unsigned long long)size, strerror(errno));
    ram->host = p;
    ram->base = base;
    ram->size = size;
    ram->npages = size >> RAM_PAGE_SHIFT;
    ram->dirty_words = (ram->npages + 63) / 64;
    ram->dirty = calloc(ram->dirty_words, sizeof *ram->dirty);
    ram->touched = calloc(ram->dirty_words, sizeof *ram->touched);
    if (!ram->dirty || !ram->touched) {
        free(ram->dirty);
        free(ram->touched);
        munmap(p, size);
        return error_set(err, "out of memory for the dirty bitmap");
    }
    return 0;
}

void ram_destroy(struct ram *ram)
{
    if (ram->host)
        munmap(ram->host, ram->size);
    free(ram->dirty);
    free(ram->touched);
    free(ram->jit_code);
    memset(ram, 0, sizeof *ram);
}

void ram_mark_dirty(struct ram *ram, uint64_t gpa, uint64_t len)
{
    if (len == 0)
        return;
    uint64_t first = (gpa - ram->base) >> RAM_PAGE_SHIFT;
    uint64_t last = (gpa - ram->base + len - 1) >> RAM_PAGE_SHIFT;
    for (uint64_t p = first; p <= last; p++)
        ram_mark_dirty_page(ram, p);
    ram_note_code_write(ram, gpa, len);
}

bool ram_page_is_dirty(const struct ram *ram, uint64_t page)
{
    return (__atomic_load_n(&ram->dirty[page >> 6], __ATOMIC_RELAXED) >> (page & 63)) & 1;
}

uint64_t ram_dirty_harvest(struct ram *ram, uint64_t *out)
{
    uint64_t count = 0;
    for (size_t i = 0; i < ram->dirty_words; i++) {
        /* Most words are clean: a plain read is far cheaper than the
         * exchange, and a bit set just after it waits for the next
         * harvest, as it would after the exchange. */
        if (!__atomic_load_n(&ram->dirty[i], __ATOMIC_RELAXED)) {
            out[i] = 0;
            continue;
        }
        out[i] = __atomic_exchange_n(&ram->dirty[i], 0, __ATOMIC_SEQ_CST);
        count += (uint64_t)__builtin_popcountll(out[i]);
    }
    return count;
}

uint64_t ram_dirty_count(const struct ram *ram)
{
    uint64_t count = 0;
    for (size_t i = 0; i < ram->dirty_words; i++)
        count += (uint64_t)__builtin_popcountll(__atomic_load_n(&ram->dirty[i], __ATOMIC_RELAXED));
    return count;
}

void ram_dirty_clear_all(struct ram *ram)
{
    for (size_t i = 0; i < ram->dirty_words; i++)
        __atomic_store_n(&ram->dirty[i], 0, __ATOMIC_SEQ_CST);
}
