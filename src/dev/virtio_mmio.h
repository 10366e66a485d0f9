/* virtio-mmio register-level constants. A slot without a device answers
 * as the spec's "no device" (device ID 0), which is what Linux expects at
 * each virtio,mmio node it probes. */
#ifndef FERRY_DEV_VIRTIO_MMIO_H
#define FERRY_DEV_VIRTIO_MMIO_H

#define VIRTIO_MMIO_MAGIC 0x74726976 /* "virt" */
#define VIRTIO_MMIO_VERSION 2
#define VIRTIO_MMIO_VENDOR 0x79727266 /* "ferr" */

#endif
