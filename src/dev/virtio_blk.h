/* virtio-blk extras beyond the attach function in dev/virtio_devices.h:
 * the hooks live migration uses to get the disk into a consistent state.
 *
 * quiesce: the I/O thread stops taking new requests (kicks are remembered,
 * not lost), every request already taken is completed and published in the
 * used ring, and the backend is flushed; returns once all of that is done.
 * Calls nest: each quiesce needs a matching resume.
 * resume: undoes one quiesce; when none is left the I/O thread rescans the
 * queue (a request made available meanwhile, or on a migration destination
 * that never saw the kick, is picked up). */
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

#endif
