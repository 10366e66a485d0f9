/* Replication's output commit for a disk, as a filter around struct disk:
 * the device reads and writes through it like any backend. Not holding,
 * everything passes through. While holding:
 *   - a write is copied into memory, tagged with the current epoch, and
 *     completes at once; the backend is not touched;
 *   - a read sees the held writes over the backend, newest last;
 *   - a flush completes at once: durability comes from disk_hold_commit(),
 *     which flushes after writing an epoch's data.
 * disk_hold_commit(N) writes the held data of epochs <= N to the backend in
 * issue order, flushes, and forgets it. Held data is capped (`limit`):
 * disk_hold_full() tells the device to take no new request until a commit
 * frees space (a write is never dropped); `space` is called whenever that
 * may have changed.
 *
 * Locks, taken in this order:
 *   rep_mu  serializes commit, hold on/off and epoch_writes: only they
 *           unlink or free held writes, so while it is held every node
 *           stays put and only the tail's `next` changes (writes append);
 *   ov_mu   the list and `holding`; held over a whole read (backend read +
 *           overlay) and a whole write;
 *   mu      `holding`, `held_bytes` and `limit` for disk_hold_full (a leaf).
 * A commit writes its epochs' data to the backend without ov_mu (guest
 * I/O goes on) and only then unlinks them under ov_mu: a read that
 * overlaps the commit either still applies the held copy over whatever the
 * backend gave, or starts after the unlink, when the backend has the data.
 * `space` is called with rep_mu and ov_mu held, never mu. */
#ifndef FERRY_BACKEND_DISK_HOLD_H
#define FERRY_BACKEND_DISK_HOLD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/disk.h"
#include "base/error.h"

struct held_write;

struct disk_hold {
    struct disk disk;              /* first: the filter is a struct disk */
    struct disk *inner;            /* the backend */
    void (*space)(void *opaque);   /* see above; may be NULL */
    void *space_opaque;

    pthread_mutex_t rep_mu, ov_mu, mu;
    struct held_write *head, *tail;  /* under ov_mu (see rep_mu) */
    bool holding;                  /* written under ov_mu and mu */
    uint64_t held_bytes, limit;    /* under mu */
    uint64_t epoch;                /* atomic */
    bool alloc_error_logged;
};

/* Wraps `inner` (taking ownership, also on error); *out is the filter's
 * struct disk, closed with disk_close(). */
int disk_hold_wrap(struct disk *inner, uint64_t limit, struct disk_hold **out,
                   struct error *err);

bool disk_hold_full(struct disk_hold *dh);
bool disk_hold_holding(struct disk_hold *dh);
/* on: later writes are held. off: everything held is committed first. */
void disk_hold_set(struct disk_hold *dh, bool on);
void disk_hold_set_epoch(struct disk_hold *dh, uint64_t epoch);
int disk_hold_epoch_writes(struct disk_hold *dh, uint64_t epoch,
                           int (*fn)(void *opaque, uint64_t offset, const void *data, size_t len),
                           void *opaque);
int disk_hold_commit(struct disk_hold *dh, uint64_t epoch);
uint64_t disk_hold_held_bytes(struct disk_hold *dh);
void disk_hold_set_limit(struct disk_hold *dh, uint64_t limit);

#endif
