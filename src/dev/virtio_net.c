/* Placeholder until the virtio-net device lands: refuses --net. */
#include "dev/virtio_devices.h"

int virtio_net_attach(struct virtio_dev *slot, const char *spec, struct error *err)
{
    (void)slot;
    (void)spec;
    return error_set(err, "--net: virtio-net is not available in this build");
}
