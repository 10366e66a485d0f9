/* Storage migration in the migration stream (`--copy-storage`): the
 * source's local disks travel next to its RAM, so two hosts need no shared
 * storage. docs/migration-stream.md ("Storage") specifies the records.
 *
 * Source: each virtio-blk disk's dirty-block log (src/backend/disk_dirty.h)
 * is started with the copy; the first round sends every block, later
 * rounds (and the final copy, with the guest paused) what the log says
 * changed; all-zero blocks travel as a flag.
 *
 * Destination: the image named by its own --drive file=PATH is received
 * into PATH.partial (created sparse at the source's size), fsynced before
 * READY and renamed to PATH only when the guest is about to run there (GO,
 * or a standby's takeover). A failure at any point leaves PATH.partial,
 * which `ferry run --drive` refuses to open. Every slot, offset and length
 * from the peer is checked against the declared disks before anything is
 * written; memory use is bounded by the number of blocks. */
#ifndef FERRY_MIGRATE_BLOCKCOPY_H
#define FERRY_MIGRATE_BLOCKCOPY_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend/disk.h"
#include "base/error.h"
#include "migrate/stream.h"

struct machine;
struct machine_config;

#define BLOCK_ENTRY_ZERO 1ull
/* A BLOCKS record carries at most this many blocks (2 MiB at 64 KiB). */
#define BLOCKS_PER_RECORD 32
#define BLOCKS_MAX_PER_RECORD 1024     /* what a receiver accepts */
#define BLOCKCOPY_MIN_BLOCK 4096u
#define BLOCKCOPY_MAX_BLOCK (1u << 20)
/* A receiver keeps one bit per block (at most 2 MiB per disk). */
#define BLOCKCOPY_MAX_BLOCKS (1ull << 24)
#define BLOCKCOPY_PARTIAL_SUFFIX DISK_PARTIAL_SUFFIX

struct blockcopy_counters {
    uint64_t blocks, zero_blocks, bytes;   /* sent: all, as a flag, data bytes */
    unsigned disks;
};

/* ---- source ---- */
struct blockcopy_out;
/* All writable virtio-blk disks of m (read-only ones are the destination's
 * own, as without a storage copy); fails if there is none. */
int blockcopy_out_open(struct blockcopy_out **out, struct machine *m, struct error *err);
void blockcopy_out_free(struct blockcopy_out *bc);   /* stops the logs */
/* The STORAGE record (right after MACHINE, whose flags say it follows). */
int blockcopy_put_storage(struct blockcopy_out *bc, struct stream *s, struct error *err);
/* Starts every disk's log; every block is then due. */
int blockcopy_start(struct blockcopy_out *bc, struct error *err);
/* Adds the blocks written since the last harvest to those due; returns
 * the bytes due. */
uint64_t blockcopy_harvest(struct blockcopy_out *bc);
/* Sends every block due (BLOCKS records); none is due afterwards. At most
 * `bandwidth` bytes/s (0: no cap), measured from the call. */
int blockcopy_put_blocks(struct blockcopy_out *bc, struct stream *s, uint64_t bandwidth,
                         atomic_bool *cancel, struct error *err);
/* DISK_VERIFY records: each image's SHA-256 (guest paused, all sent). */
int blockcopy_put_verify(struct blockcopy_out *bc, struct stream *s, struct error *err);
/* Ends the logs (replication: held writes take over after the first
 * checkpoint). */
void blockcopy_stop(struct blockcopy_out *bc);
void blockcopy_stats(const struct blockcopy_out *bc, struct blockcopy_counters *out);
/* The disks' total size (0 for NULL): copy deadlines allow for it. */
uint64_t blockcopy_out_bytes(const struct blockcopy_out *bc);

/* ---- destination ---- */
struct blockcopy_in;
/* From the STORAGE record, before the machine is built: creates each
 * PATH.partial at the declared size and points cfg's --drive at it. */
int blockcopy_in_prepare(struct blockcopy_in **out, const uint8_t *body, size_t len,
                         struct machine_config *cfg, struct error *err);
void blockcopy_in_free(struct blockcopy_in *bi);   /* leaves the .partial files */
uint64_t blockcopy_in_bytes(const struct blockcopy_in *bi);
/* A BLOCKS record: checks everything, then (unless check_only) writes. */
int blockcopy_load(struct blockcopy_in *bi, struct machine *m, const uint8_t *body, size_t len,
                   bool check_only, struct error *err);
/* A DISK_VERIFY record: hashes the received image and compares. */
int blockcopy_check_verify(struct blockcopy_in *bi, struct machine *m, const uint8_t *body,
                           size_t len, struct error *err);
/* fsyncs the received images (before READY / an ACK). */
int blockcopy_in_flush(struct blockcopy_in *bi, struct machine *m, struct error *err);
/* Puts the images in place: PATH.partial -> PATH (the guest runs here). */
int blockcopy_in_commit(struct blockcopy_in *bi, struct error *err);

#endif
