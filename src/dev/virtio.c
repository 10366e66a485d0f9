#include "dev/virtio.h"

#include <stdio.h>
#include <string.h>
#include <sys/types.h>

#include "dev/virtio_mmio.h"
#include "migrate/vmstate.h"

#define VRING_DESC_F_NEXT 1
#define VRING_DESC_F_WRITE 2
#define VRING_DESC_F_INDIRECT 4
#define VRING_AVAIL_F_NO_INTERRUPT 1

void virtio_dev_init(struct virtio_dev *dev, const struct virtio_device_ops *ops, void *opaque,
                     struct bus *bus, struct irq_line irq)
{
    memset(dev, 0, sizeof *dev);
    dev->ops = ops;
    dev->opaque = opaque;
    dev->bus = bus;
    dev->irq = irq;
    pthread_mutex_init(&dev->lock, NULL);
}

void virtio_dev_destroy(struct virtio_dev *dev)
{
    if (dev->ops && dev->ops->destroy)
        dev->ops->destroy(dev);
    dev->ops = NULL;
    pthread_mutex_destroy(&dev->lock);
}

void virtio_sync_irq(struct virtio_dev *dev)
{
    irq_set(&dev->irq, __atomic_load_n(&dev->s.interrupt_status, __ATOMIC_ACQUIRE) != 0);
}

static void virtio_raise(struct virtio_dev *dev, uint32_t bits)
{
    __atomic_fetch_or(&dev->s.interrupt_status, bits, __ATOMIC_RELEASE);
    if (dev->wake)
        dev->wake(dev->wake_opaque);
}

static void virtio_reset(struct virtio_dev *dev)
{
    if (dev->ops && dev->ops->reset)
        dev->ops->reset(dev);
    pthread_mutex_lock(&dev->lock);
    uint32_t generation = dev->s.config_generation;
    memset(&dev->s, 0, sizeof dev->s);
    dev->s.config_generation = generation;
    pthread_mutex_unlock(&dev->lock);
    virtio_sync_irq(dev);
}

static uint64_t device_features(const struct virtio_dev *dev)
{
    return dev->ops ? dev->ops->features | VIRTIO_F_VERSION_1 : 0;
}

static uint64_t virtio_mmio_read(void *opaque, uint64_t offset, unsigned size)
{
    struct virtio_dev *dev = opaque;
    if (offset >= 0x100) {
        if (!dev->ops || !dev->ops->config_read)
            return 0;
        return dev->ops->config_read(dev, offset - 0x100, size);
    }
    if (size != 4)
        return 0;
    pthread_mutex_lock(&dev->lock);
    struct virtio_mmio_state *s = &dev->s;
    struct virtq_state *vq = &s->vq[s->queue_sel % VIRTIO_MAX_QUEUES];
    bool valid_queue = dev->ops && s->queue_sel < dev->ops->num_queues;
    uint64_t v = 0;
    switch (offset) {
    case 0x000: v = VIRTIO_MMIO_MAGIC; break;
    case 0x004: v = VIRTIO_MMIO_VERSION; break;
    case 0x008: v = dev->ops ? dev->ops->device_id : VIRTIO_ID_NONE; break;
    case 0x00c: v = VIRTIO_MMIO_VENDOR; break;
    case 0x010:
        v = s->device_features_sel < 2 ? (uint32_t)(device_features(dev) >> (32 * s->device_features_sel)) : 0;
        break;
    case 0x034: v = valid_queue ? VIRTIO_QUEUE_MAX_SIZE : 0; break;
    case 0x044: v = valid_queue ? vq->ready : 0; break;
    case 0x060: v = __atomic_load_n(&s->interrupt_status, __ATOMIC_ACQUIRE); break;
    case 0x070: v = s->status; break;
    case 0x080: v = (uint32_t)vq->desc; break;
    case 0x084: v = vq->desc >> 32; break;
    case 0x090: v = (uint32_t)vq->avail; break;
    case 0x094: v = vq->avail >> 32; break;
    case 0x0a0: v = (uint32_t)vq->used; break;
    case 0x0a4: v = vq->used >> 32; break;
    case 0x0fc: v = s->config_generation; break;
    default: v = 0; break;
    }
    pthread_mutex_unlock(&dev->lock);
    return v;
}

static void set_half(uint64_t *dst, bool high, uint64_t value)
{
    if (high)
        *dst = (*dst & 0xffffffffull) | (value << 32);
    else
        *dst = (*dst & ~0xffffffffull) | (uint32_t)value;
}

static void virtio_mmio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct virtio_dev *dev = opaque;
    if (!dev->ops)
        return;
    if (offset >= 0x100) {
        if (dev->ops->config_write)
            dev->ops->config_write(dev, offset - 0x100, value, size);
        return;
    }
    if (size != 4)
        return;
    unsigned notify = UINT32_MAX;
    pthread_mutex_lock(&dev->lock);
    struct virtio_mmio_state *s = &dev->s;
    bool valid_queue = s->queue_sel < dev->ops->num_queues;
    struct virtq_state *vq = &s->vq[s->queue_sel % VIRTIO_MAX_QUEUES];
    /* Queue layout may only change while the queue is not ready. */
    bool layout_ok = valid_queue && !vq->ready;
    switch (offset) {
    case 0x014: s->device_features_sel = (uint32_t)value; break;
    case 0x020:
        if (s->driver_features_sel < 2)
            set_half(&s->driver_features, s->driver_features_sel == 1, value & 0xffffffff);
        s->driver_features &= device_features(dev);
        break;
    case 0x024: s->driver_features_sel = (uint32_t)value; break;
    case 0x030: s->queue_sel = (uint32_t)value; break;
    case 0x038:
        /* Split queues need a power-of-two size. */
        if (layout_ok && value && value <= VIRTIO_QUEUE_MAX_SIZE && !(value & (value - 1)))
            vq->num = (uint32_t)value;
        break;
    case 0x044:
        if (valid_queue) {
            vq->ready = value & 1;
            if (vq->ready) {
                vq->last_avail = 0;
                vq->used_idx = 0;
            }
        }
        break;
    case 0x050:
        if (value < dev->ops->num_queues)
            notify = (unsigned)value;
        break;
    case 0x064:
        __atomic_fetch_and(&s->interrupt_status, ~(uint32_t)value, __ATOMIC_ACQ_REL);
        break;
    case 0x070:
        if (value == 0) {
            pthread_mutex_unlock(&dev->lock);
            virtio_reset(dev);
            return;
        }
        if ((value & VIRTIO_STATUS_FEATURES_OK) && !(s->driver_features & VIRTIO_F_VERSION_1))
            value &= ~(uint64_t)VIRTIO_STATUS_FEATURES_OK; /* legacy drivers are refused */
        s->status = (uint32_t)value;
        break;
    case 0x080: if (layout_ok) set_half(&vq->desc, false, value); break;
    case 0x084: if (layout_ok) set_half(&vq->desc, true, value); break;
    case 0x090: if (layout_ok) set_half(&vq->avail, false, value); break;
    case 0x094: if (layout_ok) set_half(&vq->avail, true, value); break;
    case 0x0a0: if (layout_ok) set_half(&vq->used, false, value); break;
    case 0x0a4: if (layout_ok) set_half(&vq->used, true, value); break;
    default: break;
    }
    pthread_mutex_unlock(&dev->lock);
    if (offset == 0x064)
        virtio_sync_irq(dev);
    if (notify != UINT32_MAX && dev->ops->queue_notify)
        dev->ops->queue_notify(dev, notify);
}

const struct mmio_ops virtio_mmio_ops = {.read = virtio_mmio_read, .write = virtio_mmio_write};

/* ---- split virtqueue, device side ---- */

static bool guest_read(struct virtio_dev *dev, uint64_t gpa, void *dst, size_t len)
{
    return bus_dma_read(dev->bus, gpa, dst, len, NULL) == 0;
}

static void virtio_fail(struct virtio_dev *dev, const char *why)
{
    fprintf(stderr, "ferry: %s: %s; device needs reset\n", dev->ops->name, why);
    dev->s.status |= VIRTIO_STATUS_NEEDS_RESET;
    virtio_raise(dev, VIRTIO_INT_CONFIG);
}

int virtq_pop(struct virtio_dev *dev, unsigned q, struct virtq_req *req)
{
    pthread_mutex_lock(&dev->lock);
    struct virtq_state *vq = &dev->s.vq[q];
    int rc = 0;
    if (!vq->ready || !vq->num || !(dev->s.status & VIRTIO_STATUS_DRIVER_OK) ||
        (dev->s.status & VIRTIO_STATUS_NEEDS_RESET))
        goto out;
    uint16_t avail_idx;
    if (bus_dma_read_u16(dev->bus, vq->avail + 2, &avail_idx, NULL) < 0) {   /* never torn */
        virtio_fail(dev, "available ring outside RAM");
        rc = -1;
        goto out;
    }
    if (avail_idx == vq->last_avail)
        goto out;
    if ((uint16_t)(avail_idx - vq->last_avail) > vq->num) {
        virtio_fail(dev, "available index ran ahead of the ring");
        rc = -1;
        goto out;
    }
    /* Read the ring entry only after seeing the index. */
    __atomic_thread_fence(__ATOMIC_ACQUIRE);
    uint16_t head;
    if (!guest_read(dev, vq->avail + 4 + 2ull * (vq->last_avail % vq->num), &head, 2) ||
        head >= vq->num) {
        virtio_fail(dev, "bad descriptor index in the available ring");
        rc = -1;
        goto out;
    }
    req->head = head;
    req->nseg = 0;
    uint16_t i = head;
    for (unsigned hops = 0;; hops++) {
        struct { uint64_t addr; uint32_t len; uint16_t flags; uint16_t next; } desc;
        if (hops >= vq->num || req->nseg >= VIRTQ_MAX_SEGS ||
            !guest_read(dev, vq->desc + 16ull * i, &desc, 16)) {
            virtio_fail(dev, "descriptor chain too long, looping or outside RAM");
            rc = -1;
            goto out;
        }
        if (desc.flags & VRING_DESC_F_INDIRECT) {
            virtio_fail(dev, "indirect descriptors were not negotiated");
            rc = -1;
            goto out;
        }
        if (!ram_contains(&dev->bus->ram, desc.addr, desc.len)) {
            virtio_fail(dev, "buffer outside RAM");
            rc = -1;
            goto out;
        }
        req->seg[req->nseg++] = (struct virtq_seg){desc.addr, desc.len,
                                                   (desc.flags & VRING_DESC_F_WRITE) != 0};
        if (!(desc.flags & VRING_DESC_F_NEXT))
            break;
        if (desc.next >= vq->num) {
            virtio_fail(dev, "descriptor chain points past the table");
            rc = -1;
            goto out;
        }
        i = desc.next;
    }
    vq->last_avail++;
    rc = 1;
out:
    pthread_mutex_unlock(&dev->lock);
    return rc;
}

void virtq_unpop(struct virtio_dev *dev, unsigned q, unsigned n)
{
    pthread_mutex_lock(&dev->lock);
    dev->s.vq[q].last_avail = (uint16_t)(dev->s.vq[q].last_avail - n);
    pthread_mutex_unlock(&dev->lock);
}

void virtq_push_batch(struct virtio_dev *dev, unsigned q, const struct virtq_used *done, unsigned n)
{
    pthread_mutex_lock(&dev->lock);
    struct virtq_state *vq = &dev->s.vq[q];
    if (!vq->ready || !vq->num || !n) {
        pthread_mutex_unlock(&dev->lock);
        return;
    }
    for (unsigned i = 0; i < n; i++) {
        uint32_t elem[2] = {done[i].head, done[i].written};
        uint64_t slot = vq->used + 4 + 8ull * ((uint16_t)(vq->used_idx + i) % vq->num);
        if (bus_dma_write(dev->bus, slot, elem, sizeof elem, NULL) < 0) {
            virtio_fail(dev, "used ring outside RAM");
            pthread_mutex_unlock(&dev->lock);
            return;
        }
    }
    /* The elements must be visible before the index that publishes them. */
    __atomic_thread_fence(__ATOMIC_RELEASE);
    vq->used_idx = (uint16_t)(vq->used_idx + n);
    bus_dma_write_u16(dev->bus, vq->used + 2, vq->used_idx, NULL);   /* never torn */
    /* A driver busy polling the ring (Linux's NAPI, virtblk_done) sets
     * NO_INTERRUPT in the available ring's flags. Read them only after the
     * index is out: the driver clears the flag and then rereads the used
     * index, so one of us always sees the other's write. */
    __atomic_thread_fence(__ATOMIC_SEQ_CST);
    uint16_t avail_flags = 0;
    bool quiet = bus_dma_read_u16(dev->bus, vq->avail, &avail_flags, NULL) == 0 &&
                 (avail_flags & VRING_AVAIL_F_NO_INTERRUPT);
    pthread_mutex_unlock(&dev->lock);
    if (!quiet)
        virtio_raise(dev, VIRTIO_INT_USED);
}

void virtq_push(struct virtio_dev *dev, unsigned q, uint16_t head, uint32_t written)
{
    struct virtq_used done = {head, written};
    virtq_push_batch(dev, q, &done, 1);
}

static ssize_t virtq_copy(struct virtio_dev *dev, const struct virtq_req *req, size_t skip,
                          void *buf, size_t len, bool to_guest)
{
    size_t done = 0;
    for (unsigned i = 0; i < req->nseg && done < len; i++) {
        const struct virtq_seg *sg = &req->seg[i];
        if (sg->write != to_guest)
            continue;
        if (skip >= sg->len) {
            skip -= sg->len;
            continue;
        }
        size_t n = sg->len - skip;
        if (n > len - done)
            n = len - done;
        int rc = to_guest ? bus_dma_write(dev->bus, sg->addr + skip, (uint8_t *)buf + done, n, NULL)
                          : bus_dma_read(dev->bus, sg->addr + skip, (uint8_t *)buf + done, n, NULL);
        if (rc < 0)
            return -1;
        done += n;
        skip = 0;
    }
    return (ssize_t)done;
}

ssize_t virtq_read(struct virtio_dev *dev, const struct virtq_req *req, size_t skip, void *buf,
                   size_t len)
{
    return virtq_copy(dev, req, skip, buf, len, false);
}

ssize_t virtq_write(struct virtio_dev *dev, const struct virtq_req *req, size_t skip,
                    const void *buf, size_t len)
{
    return virtq_copy(dev, req, skip, (void *)buf, len, true);
}

size_t virtq_readable_len(const struct virtq_req *req)
{
    size_t n = 0;
    for (unsigned i = 0; i < req->nseg; i++)
        if (!req->seg[i].write)
            n += req->seg[i].len;
    return n;
}

size_t virtq_writable_len(const struct virtq_req *req)
{
    size_t n = 0;
    for (unsigned i = 0; i < req->nseg; i++)
        if (req->seg[i].write)
            n += req->seg[i].len;
    return n;
}

/* ---- migratable state ---- */

static int virtio_state_check(const void *obj, struct error *err)
{
    const struct virtio_mmio_state *s = obj;
    for (unsigned q = 0; q < VIRTIO_MAX_QUEUES; q++) {
        uint32_t num = s->vq[q].num;
        if (num > VIRTIO_QUEUE_MAX_SIZE || (num & (num - 1)) || s->vq[q].ready > 1)
            return error_set(err, "queue %u has invalid size %u", q, num);
    }
    return 0;
}

static const struct vmfield virtio_fields[] = {
    VMFIELD(struct virtio_mmio_state, device_features_sel, 1),
    VMFIELD(struct virtio_mmio_state, driver_features_sel, 1),
    VMFIELD(struct virtio_mmio_state, driver_features, 1),
    VMFIELD(struct virtio_mmio_state, queue_sel, 1),
    VMFIELD(struct virtio_mmio_state, status, 1),
    VMFIELD(struct virtio_mmio_state, interrupt_status, 1),
    VMFIELD(struct virtio_mmio_state, config_generation, 1),
#define VQ_FIELD(member, width)                                                           \
    {"vq." #member, offsetof(struct virtio_mmio_state, vq[0].member), width, 1, 1},       \
    {"vq1." #member, offsetof(struct virtio_mmio_state, vq[1].member), width, 1, 1},      \
    {"vq2." #member, offsetof(struct virtio_mmio_state, vq[2].member), width, 1, 1},      \
    {"vq3." #member, offsetof(struct virtio_mmio_state, vq[3].member), width, 1, 1}
    VQ_FIELD(num, 4), VQ_FIELD(ready, 4), VQ_FIELD(desc, 8), VQ_FIELD(avail, 8),
    VQ_FIELD(used, 8), VQ_FIELD(last_avail, 2), VQ_FIELD(used_idx, 2),
#undef VQ_FIELD
    VMFIELD_END,
};

const struct vmstate virtio_mmio_vmstate = {
    .name = "virtio-mmio", .version = 1, .min_version = 1,
    .size = sizeof(struct virtio_mmio_state), .fields = virtio_fields,
    .check = virtio_state_check,
};
