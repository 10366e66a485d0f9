/* Registered readers of the dirty log.
 *
 * A harvest swaps the log out: the pages it returns are gone for anyone
 * else. Two jobs harvesting the same log would each miss the pages the
 * other took (a migration racing a replication would send a stale copy).
 * So the log has one registered reader at a time, a job's: registering a
 * second is refused, and a harvest through a reader that is not the
 * registered one fails instead of handing it someone else's pages.
 * Harvests are serialized, so the machine's single request slot
 * (machine_dirty_sync_remote) is never shared. */
#ifndef FERRY_MACHINE_DIRTY_READER_H
#define FERRY_MACHINE_DIRTY_READER_H

#include <pthread.h>
#include <stdint.h>

#include "base/error.h"

struct machine;

struct dirty_reader {
    struct machine *m;
    const char *owner;    /* "migration", "replication": for messages */
};

/* The machine's registry (a field of struct machine). */
struct dirty_registry {
    pthread_mutex_t lock;           /* held across a harvest */
    struct dirty_reader *reader;    /* under lock */
};

void dirty_registry_init(struct dirty_registry *reg);
void dirty_registry_destroy(struct dirty_registry *reg);

/* Registers r as the log's reader; refused if another reader has it. */
int dirty_reader_open(struct machine *m, struct dirty_reader *r, const char *owner,
                      struct error *err);
/* Harvests into out (ram->dirty_words words): the pages dirtied since this
 * reader's previous harvest. Returns the page count, or -1 (err set) if r
 * is not the registered reader or the machine stopped. */
int64_t dirty_reader_harvest(struct dirty_reader *r, uint64_t *out, struct error *err);
/* Unregisters r (no-op if it is not registered). */
void dirty_reader_close(struct dirty_reader *r);

#endif
