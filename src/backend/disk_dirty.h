/* A dirty-block log for a disk, as a filter around struct disk: every write
 * that reaches the image through it (the guest's, replication's commits and
 * re-applies) marks the blocks it touched, while a reader has the log
 * started. Storage migration (src/migrate/blockcopy.c) sends what the log
 * says changed since its last look, as pre-copy does with RAM pages.
 *
 * A block is marked after the write that changed it has completed: a reader
 * that harvests the mark and then reads the block either sees the new data
 * or finds the mark set again at its next harvest. Marks are atomic ORs, a
 * harvest atomic exchanges, so writers never wait for the reader. One
 * reader at a time (disk_dirty_start refuses a second). */
#ifndef FERRY_BACKEND_DISK_DIRTY_H
#define FERRY_BACKEND_DISK_DIRTY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "backend/disk.h"
#include "base/error.h"

/* 64 KiB: QEMU's mirror default granularity; a 1 GiB disk has 16384. */
#define DISK_DIRTY_BLOCK_SHIFT 16
#define DISK_DIRTY_BLOCK_SIZE (1u << DISK_DIRTY_BLOCK_SHIFT)

struct disk_dirty {
    struct disk disk;          /* first: the filter is a struct disk */
    struct disk *inner;        /* the backend */
    uint64_t nblocks;          /* the last one may be short */
    size_t words;              /* of the bitmap */
    _Atomic uint64_t *bitmap;
    atomic_bool logging;
};

/* Wraps `inner` (taking ownership, also on error). */
int disk_dirty_wrap(struct disk *inner, struct disk_dirty **out, struct error *err);

/* Starts the log (clearing it); fails if a reader has it already. */
int disk_dirty_start(struct disk_dirty *dd, struct error *err);
void disk_dirty_stop(struct disk_dirty *dd);
/* ORs the blocks marked since the last harvest into `out` (dd->words
 * words) and clears them; returns how many were newly set in out. */
uint64_t disk_dirty_harvest(struct disk_dirty *dd, uint64_t *out);

#endif
