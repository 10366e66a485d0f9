/* Dirty-block log filter (see disk_dirty.h). */
#include "backend/disk_dirty.h"

#include <stdlib.h>
#include <string.h>

static struct disk_dirty *as_dirty(struct disk *d)
{
    return (struct disk_dirty *)d;
}

static int dirty_read(struct disk *d, void *buf, size_t len, uint64_t offset)
{
    struct disk *in = as_dirty(d)->inner;
    return in->ops->read(in, buf, len, offset);
}

static void mark(struct disk_dirty *dd, uint64_t offset, size_t len)
{
    if (!len || offset >= dd->disk.size)
        return;
    uint64_t first = offset >> DISK_DIRTY_BLOCK_SHIFT;
    uint64_t last = (offset + len - 1) >> DISK_DIRTY_BLOCK_SHIFT;
    if (last >= dd->nblocks)
        last = dd->nblocks - 1;
    for (uint64_t b = first; b <= last; b++)
        atomic_fetch_or(&dd->bitmap[b / 64], 1ull << (b % 64));
}

static int dirty_write(struct disk *d, const void *buf, size_t len, uint64_t offset)
{
    struct disk_dirty *dd = as_dirty(d);
    int rc = dd->inner->ops->write(dd->inner, buf, len, offset);
    /* After the write, and also when it failed part-way: the image may
     * have changed either way. */
    if (atomic_load(&dd->logging))
        mark(dd, offset, len);
    return rc;
}

static int dirty_flush(struct disk *d)
{
    struct disk *in = as_dirty(d)->inner;
    return in->ops->flush(in);
}

static void dirty_close(struct disk *d)
{
    struct disk_dirty *dd = as_dirty(d);
    disk_close(dd->inner);
    free(dd->bitmap);
    free(dd);
}

static const struct disk_ops dirty_ops = {
    .read = dirty_read,
    .write = dirty_write,
    .flush = dirty_flush,
    .close = dirty_close,
};

int disk_dirty_wrap(struct disk *inner, struct disk_dirty **out, struct error *err)
{
    struct disk_dirty *dd = calloc(1, sizeof *dd);
    uint64_t nblocks = (inner->size + DISK_DIRTY_BLOCK_SIZE - 1) >> DISK_DIRTY_BLOCK_SHIFT;
    size_t words = (size_t)((nblocks + 63) / 64);
    _Atomic uint64_t *bitmap = calloc(words ? words : 1, sizeof *bitmap);
    if (!dd || !bitmap) {
        free(dd);
        free(bitmap);
        disk_close(inner);
        return error_set(err, "out of memory for the dirty-block log");
    }
    dd->disk.ops = &dirty_ops;
    dd->disk.size = inner->size;
    dd->disk.readonly = inner->readonly;
    memcpy(dd->disk.name, inner->name, sizeof dd->disk.name);
    dd->inner = inner;
    dd->nblocks = nblocks;
    dd->words = words;
    dd->bitmap = bitmap;
    atomic_init(&dd->logging, false);
    *out = dd;
    return 0;
}

int disk_dirty_start(struct disk_dirty *dd, struct error *err)
{
    bool expected = false;
    if (!atomic_compare_exchange_strong(&dd->logging, &expected, true))
        return error_set(err, "disk %s: its dirty-block log has a reader already", dd->disk.name);
    /* Marks from before are moot: the reader copies everything first. */
    for (size_t i = 0; i < dd->words; i++)
        atomic_store(&dd->bitmap[i], 0);
    return 0;
}

void disk_dirty_stop(struct disk_dirty *dd)
{
    atomic_store(&dd->logging, false);
}

uint64_t disk_dirty_harvest(struct disk_dirty *dd, uint64_t *out)
{
    uint64_t added = 0;
    for (size_t i = 0; i < dd->words; i++) {
        if (!atomic_load_explicit(&dd->bitmap[i], memory_order_relaxed))
            continue;
        uint64_t w = atomic_exchange(&dd->bitmap[i], 0);
        added += (uint64_t)__builtin_popcountll(w & ~out[i]);
        out[i] |= w;
    }
    return added;
}
