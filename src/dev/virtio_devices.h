/* The virtio devices a machine can plug into its virtio-mmio slots. Each
 * attach function takes an empty slot, allocates the device, starts its
 * I/O thread and sets slot->ops; ops->destroy undoes it. Errors are one-line
 * messages (a missing image, a tap that cannot be opened...). */
#ifndef FERRY_DEV_VIRTIO_DEVICES_H
#define FERRY_DEV_VIRTIO_DEVICES_H

#include "base/error.h"
#include "dev/virtio.h"

struct disk;

/* virtio-blk on a disk backend; takes ownership of `disk` (also on error). */
int virtio_blk_attach(struct virtio_dev *slot, struct disk *disk, struct error *err);

/* virtio-net on a tap device: spec is "tap=NAME[,mac=52:54:00:12:34:56]". */
int virtio_net_attach(struct virtio_dev *slot, const char *spec, struct error *err);

/* virtio-rng fed from the host's getrandom(). */
int virtio_rng_attach(struct virtio_dev *slot, struct error *err);

#endif
