/* virtio-blk extras beyond the attach function in dev/virtio_devices.h:
 * the hooks live migration uses to get the disk into a consistent state.
 *
 * quiesce: the I/O thread stops taking new requests (kicks are remembered,
 * not lost), every request already taken is completed and published in the
 * used ring, and the backend is flushed; returns once all of that is done.
 * Calls nest: each quiesce needs a matching resume.
 * resume: undoes one quiesce; when none is left the I/O thread rescans the
 * queue (a request made available meanwhile, or on a migration destination
 * that never saw the kick, is picked up). While writes are held for
 * replication (below), quiesce does not flush. */
#ifndef FERRY_DEV_VIRTIO_BLK_H
#define FERRY_DEV_VIRTIO_BLK_H

#include "dev/virtio.h"

/* Linux's virtio_blk definitions we rely on (virtio 1.x spec, 5.2). */
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8

#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_ID_BYTES 20

/* dev must be a slot virtio_blk_attach() succeeded on. */
void virtio_blk_quiesce(struct virtio_dev *dev);
void virtio_blk_resume(struct virtio_dev *dev);

/* True if dev is a virtio-blk device. */
bool virtio_blk_is(const struct virtio_dev *dev);

/* ---- continuous replication (output commit for the disk) ----
 *
 * The disk is shared between primary and standby; the primary must not let
 * a write reach it before the standby has acknowledged the epoch that made
 * it. While writes are held:
 *   - a guest write is copied into memory, tagged with the current epoch
 *     (one held write per chunk of at most 1 MiB, in issue order), and
 *     completed at once; the backend is not touched;
 *   - a guest read sees the held writes over the backend, newest last
 *     (any overlap, across any number of epochs);
 *   - a guest FLUSH completes at once with OK: durability comes from
 *     virtio_blk_commit(), which flushes after writing an epoch's data;
 *   - quiesce does not flush the backend (nothing of the guest's reached
 *     it since the last commit, which flushed).
 * Held data is capped (VIRTIO_BLK_HOLD_LIMIT_DEFAULT bytes): while at or
 * over the cap the I/O thread takes no new request until a commit frees
 * space (a write is never dropped; a single request may take it past the
 * cap). The stall does not block quiesce.
 *
 * All functions are thread-safe against the I/O thread and each other;
 * they may be called with the device running or quiesced. Epoch numbers
 * must not decrease. */
#define VIRTIO_BLK_HOLD_LIMIT_DEFAULT (256ull << 20)

/* on: later guest writes are held. off: every held write is committed
 * (written to the backend in order, then flushed) first; later writes go
 * straight to the backend. Turning it on flushes the backend. */
void virtio_blk_hold_writes(struct virtio_dev *dev, bool on);

/* Later guest writes belong to `epoch` (0 until set). */
void virtio_blk_set_epoch(struct virtio_dev *dev, uint64_t epoch);

/* Calls fn for each held write of exactly `epoch`, in issue order (offset
 * in bytes, a multiple of 512). Stops at and returns the first nonzero
 * value fn returns; 0 otherwise. fn runs without the device's I/O locks
 * (guest I/O goes on) but must not call virtio_blk_commit or
 * virtio_blk_hold_writes on the same device. */
int virtio_blk_epoch_writes(struct virtio_dev *dev, uint64_t epoch,
                            int (*fn)(void *opaque, uint64_t offset, const void *data, size_t len),
                            void *opaque);

/* Epochs <= epoch are acknowledged: writes their held data to the backend
 * in issue order, flushes, forgets them. Returns 0 or -errno (then the
 * writes that failed, and all later ones, stay held). */
int virtio_blk_commit(struct virtio_dev *dev, uint64_t epoch);

/* Standby/failover: writes straight to the backend, bypassing (and not
 * visible through) held writes; offset and len multiples of 512 within the
 * disk. Idempotent re-apply of acknowledged epochs. Returns 0 or -errno. */
int virtio_blk_apply_write(struct virtio_dev *dev, uint64_t offset, const void *data, size_t len);
/* virtio_blk_apply_write's checks alone: 0, -EINVAL (not a disk, range
 * outside it or not sector-aligned) or -EROFS. */
int virtio_blk_check_write(const struct virtio_dev *dev, uint64_t offset, size_t len);
int virtio_blk_flush_backend(struct virtio_dev *dev);

/* Bytes currently held (status), and the cap (for tests; 0 = default). */
uint64_t virtio_blk_held_bytes(const struct virtio_dev *dev);
void virtio_blk_set_hold_limit(struct virtio_dev *dev, uint64_t bytes);

/* ---- storage migration ----
 * The disk's dirty-block log (src/backend/disk_dirty.h), which sits right
 * above the backend: its `inner` is the backend (reads see the image as
 * written, without held writes). NULL if dev is not a virtio-blk disk. */
struct disk_dirty;
struct disk_dirty *virtio_blk_dirty_log(struct virtio_dev *dev);

#endif
