/* virtio-rng: fills the guest's buffers from the host's getrandom(). The
 * work is a few microseconds per request, so it runs right in the queue
 * notification instead of on an I/O thread; getrandom never blocks once
 * the host pool is initialised, and GRND_NONBLOCK guards the rest. */
#include <errno.h>
#include <stdlib.h>
#include <sys/random.h>

#include "dev/virtio_devices.h"

static void rng_notify(struct virtio_dev *dev, unsigned q)
{
    struct virtq_req req;
    int rc;
    while ((rc = virtq_pop(dev, q, &req)) == 1) {
        uint8_t buf[4096];
        size_t want = virtq_writable_len(&req);
        if (want > sizeof buf)
            want = sizeof buf;
        ssize_t got = getrandom(buf, want, GRND_NONBLOCK);
        if (got < 0)
            got = 0; /* an empty answer; the driver asks again */
        ssize_t put = virtq_write(dev, &req, 0, buf, (size_t)got);
        virtq_push(dev, q, req.head, put < 0 ? 0 : (uint32_t)put);
    }
}

static void rng_destroy(struct virtio_dev *dev)
{
    (void)dev;
}

static const struct virtio_device_ops rng_ops = {
    .name = "virtio-rng",
    .device_id = VIRTIO_ID_RNG,
    .features = 0,
    .num_queues = 1,
    .queue_notify = rng_notify,
    .destroy = rng_destroy,
};

int virtio_rng_attach(struct virtio_dev *slot, struct error *err)
{
    (void)err;
    slot->ops = &rng_ops;
    slot->opaque = NULL;
    return 0;
}
