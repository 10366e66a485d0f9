#include "dev/virtio_mmio.h"

static uint64_t empty_read(void *opaque, uint64_t offset, unsigned size)
{
    (void)opaque;
    if (size != 4)
        return 0;
    switch (offset) {
    case 0x000: return VIRTIO_MMIO_MAGIC;
    case 0x004: return VIRTIO_MMIO_VERSION;
    case 0x00c: return VIRTIO_MMIO_VENDOR;
    default: return 0; /* device ID 0: nothing here */
    }
}

static void empty_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    (void)opaque; (void)offset; (void)value; (void)size;
}

const struct mmio_ops virtio_mmio_empty_ops = {.read = empty_read, .write = empty_write};
