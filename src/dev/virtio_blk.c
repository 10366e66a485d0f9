/* Placeholder until the virtio-blk device lands: refuses --drive. */
#include "backend/disk.h"
#include "dev/virtio_devices.h"

int virtio_blk_attach(struct virtio_dev *slot, struct disk *disk, struct error *err)
{
    (void)slot;
    disk_close(disk);
    return error_set(err, "--drive: virtio-blk is not available in this build");
}
