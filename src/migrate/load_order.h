/* The order and completeness rules a receiver enforces on the state part
 * of a stream (docs/migration-stream.md, "Order and completeness"):
 *
 *   PAGES*  DEVICE*  CLOCK  [VERIFY]  [DISK_VERIFY*]  END   (migration, save)
 *   CHECKPOINT PAGES*  DEVICE*  CLOCK  DISK_WRITE*  END   (replication)
 *
 * BLOCKS records (--copy-storage) go where PAGES records may.
 *
 * with exactly one DEVICE record for every hart ("cpu" 0..n-1) and device
 * of the machine, all before the CLOCK. Optional records (ROUND, HEARTBEAT)
 * may come anywhere; a PING only among the pages. A record out of place,
 * a duplicate, a device the machine lacks or a missing one is refused with
 * a message naming it, before anything of that record is applied. */
#ifndef FERRY_MIGRATE_LOAD_ORDER_H
#define FERRY_MIGRATE_LOAD_ORDER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "migrate/mstate.h"

struct machine;

enum load_phase {
    LOAD_PAGES = 0,   /* pages (and pre-copy rounds) */
    LOAD_DEVICES,     /* device records */
    LOAD_CLOCKED,     /* the clock came: device state complete */
    LOAD_VERIFIED,    /* migration: the hash came */
    LOAD_DISK,        /* replication: disk writes of the epoch */
    LOAD_ENDED,
};

struct load_order {
    enum load_phase phase;
    bool checkpoint;          /* a replication checkpoint's rules */
    bool discarded;           /* post-copy dropped pages: no PAGES may follow */
    struct mstate_expect expect;
};

void load_order_begin(struct load_order *o, struct machine *m, bool checkpoint);
/* Checks that a record of `type` may come now (DEVICE: its identity too)
 * and advances. Call before applying the record. */
int load_order_record(struct load_order *o, uint32_t type, const uint8_t *body, size_t len,
                      struct error *err);

#endif
