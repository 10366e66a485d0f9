/* The machine's state as stream records: the machine description, RAM
 * pages, every device's and hart's state, and the clock. Shared by live
 * migration, save/restore and replication. */
#ifndef FERRY_MIGRATE_MSTATE_H
#define FERRY_MIGRATE_MSTATE_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "migrate/stream.h"

struct machine;
struct machine_config;

/* The most virtio slots a MACHINE record may describe. */
#define MSTATE_MAX_SLOTS 16

/* What a MACHINE record says. */
struct mstate_desc {
    uint64_t ram_base, ram_size;
    uint32_t nharts;
    uint32_t flags;          /* MDESC_* */
    uint64_t tohost_addr;
    uint32_t nslots;
    uint32_t device_id[MSTATE_MAX_SLOTS]; /* virtio device id per slot (0 = empty) */
};
#define MDESC_SBI 1u
#define MDESC_TOHOST 2u
#define MDESC_STORAGE 4u  /* a STORAGE record follows (--copy-storage, blockcopy.h) */

int mstate_put_machine(struct stream *s, const struct machine *m, struct error *err);
/* The same with flags added (MDESC_STORAGE). */
int mstate_put_machine_flags(struct stream *s, const struct machine *m, uint32_t flags,
                             struct error *err);
int mstate_parse_machine(const uint8_t *body, size_t len, struct mstate_desc *d,
                         struct error *err);
/* Checks that a machine built from local options matches the stream's
 * description (devices in the same slots), then applies the flags. */
int mstate_apply_machine(struct machine *m, const struct mstate_desc *d, struct error *err);

/* Sends the pages whose bit is set in `bitmap` (ram->dirty_words words),
 * in PAGES records; zero pages travel as flags. Adds to the counters. */
struct progress;
struct page_counters {
    uint64_t pages, zero_pages, bytes;
    struct progress *progress;  /* optional: told after each record (progress.h) */
};
int mstate_put_pages(struct stream *s, struct machine *m, const uint64_t *bitmap,
                     struct page_counters *c, uint64_t bandwidth_limit, atomic_bool *cancel,
                     struct error *err);
/* Writes a PAGES record into RAM, checking every entry first. */
int mstate_load_pages(struct machine *m, const uint8_t *body, size_t len, struct error *err);
/* Only the checks of mstate_load_pages: would this record load? */
int mstate_check_pages(struct machine *m, const uint8_t *body, size_t len, struct error *err);

/* Device and hart state, clock. `version` is the stream version (an older
 * one only to write compatibility fixtures). */
int mstate_put_devices(struct stream *s, struct machine *m, uint32_t version, struct error *err);
int mstate_load_device(struct machine *m, const uint8_t *body, size_t len, struct error *err);
/* Only the checks of mstate_load_device (the device exists, the version,
 * length and values are acceptable). */
int mstate_check_device(struct machine *m, const uint8_t *body, size_t len, struct error *err);

/* A DEVICE record's identity. */
struct mstate_device_id {
    const char *name;       /* not terminated: name_len bytes */
    size_t name_len;
    uint32_t instance, version;
};
int mstate_device_id(const uint8_t *body, size_t len, struct mstate_device_id *id,
                     struct error *err);

/* The (name, instance) device records a receiver expects: one for every
 * hart ("cpu" 0..n-1) and device of the machine, each exactly once. */
#define MSTATE_MAX_DEVICES 32
struct mstate_expected {
    const char *name;
    uint32_t instance;
    bool seen;
};
struct mstate_expect {
    unsigned n;
    struct mstate_expected dev[MSTATE_MAX_DEVICES];
};
void mstate_expect_init(struct mstate_expect *e, struct machine *m);
/* Marks id seen; refuses a device the machine lacks or one seen before. */
int mstate_expect_device(struct mstate_expect *e, const struct mstate_device_id *id,
                         struct error *err);
/* Fails naming the first device without a record. */
int mstate_expect_complete(const struct mstate_expect *e, struct error *err);
int mstate_load_clock(struct machine *m, const uint8_t *body, size_t len, struct error *err);
#define MSTATE_MAX_CLOCK_NS (1ull << 62)

/* XXH3 of all RAM plus the serialized device state (for --verify). Fails
 * (rather than leave a device out) when memory runs out. */
int mstate_hash(struct machine *m, uint64_t *out, struct error *err);
/* The same without RAM: device state and clock only (post-copy's verify
 * hashes RAM page by page as it arrives, see postcopy.h). */
int mstate_hash_devices(struct machine *m, uint64_t *out, struct error *err);

#endif
