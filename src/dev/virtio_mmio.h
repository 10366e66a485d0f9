/* virtio-mmio transport slots on the `virt` map. Until a device is plugged
 * into a slot, the slot answers as the spec's "no device" (device ID 0),
 * which is what Linux probes for at each virtio,mmio node. */
#ifndef FERRY_DEV_VIRTIO_MMIO_H
#define FERRY_DEV_VIRTIO_MMIO_H

#include "mem/bus.h"

#define VIRTIO_MMIO_MAGIC 0x74726976 /* "virt" */
#define VIRTIO_MMIO_VERSION 2
#define VIRTIO_MMIO_VENDOR 0x79727266 /* "ferr" */

extern const struct mmio_ops virtio_mmio_empty_ops;

#endif
