/* virtio 1.x over MMIO (transport version 2) with split virtqueues.
 *
 * The transport runs on the harts' threads (MMIO register accesses, under
 * the machine's device lock: one hart at a time); devices process their
 * queues on their own I/O threads, so a slow disk or network never stalls
 * the guest. The two sides share the queue state under `lock`. An I/O
 * thread reports completions by setting interrupt bits and calling the
 * `wake` hook; the machine's main loop then updates the interrupt line
 * (virtio_sync_irq, also under the device lock). "vCPU thread" below means
 * whichever of these holds the device lock.
 *
 * Migratable state: struct virtio_mmio_state (transport and queue
 * registers, ring positions). The device's own state is separate. */
#ifndef FERRY_DEV_VIRTIO_H
#define FERRY_DEV_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "dev/irq.h"
#include "mem/bus.h"

#define VIRTIO_MAX_QUEUES 4
#define VIRTIO_QUEUE_MAX_SIZE 256
#define VIRTIO_F_VERSION_1 (1ull << 32)

#define VIRTIO_ID_NONE 0
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_RNG 4

#define VIRTIO_STATUS_ACKNOWLEDGE 1
#define VIRTIO_STATUS_DRIVER 2
#define VIRTIO_STATUS_DRIVER_OK 4
#define VIRTIO_STATUS_FEATURES_OK 8
#define VIRTIO_STATUS_NEEDS_RESET 64
#define VIRTIO_STATUS_FAILED 128

#define VIRTIO_INT_USED 1
#define VIRTIO_INT_CONFIG 2

struct virtq_state {
    uint32_t num;
    uint32_t ready;
    uint64_t desc, avail, used;   /* guest physical addresses */
    uint16_t last_avail;          /* next avail entry the device consumes */
    uint16_t used_idx;            /* next used index the device publishes */
};

struct virtio_mmio_state {
    uint32_t device_features_sel;
    uint32_t driver_features_sel;
    uint64_t driver_features;
    uint32_t queue_sel;
    uint32_t status;
    uint32_t interrupt_status;    /* updated atomically by I/O threads */
    uint32_t config_generation;
    struct virtq_state vq[VIRTIO_MAX_QUEUES];
};

struct virtio_dev;

struct virtio_device_ops {
    const char *name;
    uint32_t device_id;
    uint64_t features;            /* offered; VERSION_1 is added */
    unsigned num_queues;
    /* Device-specific configuration space (offset from 0x100). */
    uint64_t (*config_read)(struct virtio_dev *dev, uint64_t offset, unsigned size);
    void (*config_write)(struct virtio_dev *dev, uint64_t offset, uint64_t value, unsigned size);
    /* The driver kicked queue q (vCPU thread): wake the I/O thread. */
    void (*queue_notify)(struct virtio_dev *dev, unsigned q);
    /* The driver reset the device (vCPU thread, lock not held): stop
     * using the queues; the transport clears its state afterwards. */
    void (*reset)(struct virtio_dev *dev);
    /* Migration: finish in-flight requests, flush the backend and take no
     * new ones until resume (vCPU thread, lock not held). May be NULL. */
    void (*quiesce)(struct virtio_dev *dev);
    void (*resume)(struct virtio_dev *dev);
    /* Stops the I/O thread, closes backends, frees the device. */
    void (*destroy)(struct virtio_dev *dev);
    /* Replication's output commit, for a device whose output the outside
     * world sees (disk writes, frames); NULL for others. */
    const struct repl_hooks *repl;
};

/* A device's part in replication (docs/replication.md): while protected,
 * what it emits during epoch e is held until the standby acknowledged e. */
struct repl_hooks {
    /* on: later output is held, tagged with the epoch set last; off:
     * everything held goes out, and later output too. */
    void (*hold)(struct virtio_dev *dev, bool on);
    /* Later output belongs to this epoch. */
    void (*set_epoch)(struct virtio_dev *dev, uint64_t epoch);
    /* The standby holds epochs <= epoch: their output may go out. 0 or -errno. */
    int (*commit)(struct virtio_dev *dev, uint64_t epoch);
    /* Output of exactly `epoch` that travels inside its checkpoint (the
     * disk writes a failover re-applies); NULL if none. */
    int (*epoch_writes)(struct virtio_dev *dev, uint64_t epoch,
                        int (*fn)(void *opaque, uint64_t offset, const void *data, size_t len),
                        void *opaque);
    /* Output units waiting for an acknowledgement (status); NULL if none. */
    size_t (*held)(const struct virtio_dev *dev);
    /* Held frames of exactly `epoch` (a switchover's last checkpoint
     * carries them: the new host sends them after its announcement), and
     * forgetting them here instead of sending; NULL if none. */
    int (*epoch_frames)(struct virtio_dev *dev, uint64_t epoch,
                        int (*fn)(void *opaque, const uint8_t *frame, size_t len), void *opaque);
    void (*drop)(struct virtio_dev *dev, uint64_t epoch);
};

struct virtio_dev {
    struct virtio_mmio_state s;
    const struct virtio_device_ops *ops;  /* NULL: an empty slot */
    void *opaque;                          /* the device */
    struct bus *bus;
    struct irq_line irq;
    pthread_mutex_t lock;
    /* Called from any thread after interrupt_status gained bits. */
    void (*wake)(void *wake_opaque);
    void *wake_opaque;
};

void virtio_dev_init(struct virtio_dev *dev, const struct virtio_device_ops *ops, void *opaque,
                     struct bus *bus, struct irq_line irq);
void virtio_dev_destroy(struct virtio_dev *dev);
extern const struct mmio_ops virtio_mmio_ops;

/* vCPU thread: drives the interrupt line from interrupt_status. */
void virtio_sync_irq(struct virtio_dev *dev);

/* One buffer segment of a request: guest address, length, device-writable. */
struct virtq_seg {
    uint64_t addr;
    uint32_t len;
    bool write;
};

#define VIRTQ_MAX_SEGS 256 /* a 1 MiB request in 4 KiB pages plus header and status */
struct virtq_req {
    uint16_t head;
    unsigned nseg;
    struct virtq_seg seg[VIRTQ_MAX_SEGS];
};

/* I/O thread side. virtq_pop takes the next available request of queue q:
 * returns 1 with *req filled, 0 when the queue is empty or not ready, -1
 * when the driver handed over a malformed chain (the device is then marked
 * NEEDS_RESET and the error is logged). Every address is checked. */
int virtq_pop(struct virtio_dev *dev, unsigned q, struct virtq_req *req);
/* Publishes a completed request with `written` bytes and raises the used
 * interrupt, unless the driver asked for none (VRING_AVAIL_F_NO_INTERRUPT).
 * Writes to guest RAM go through the dirty log. */
void virtq_push(struct virtio_dev *dev, unsigned q, uint16_t head, uint32_t written);
/* The same for n requests, published together by one used-index update
 * (a received frame spread over several buffers must appear at once). */
struct virtq_used {
    uint16_t head;
    uint32_t written;
};
void virtq_push_batch(struct virtio_dev *dev, unsigned q, const struct virtq_used *done,
                      unsigned n);
/* Hands the last n popped, not yet pushed requests back: they are available
 * again, as if never taken. Only for the one thread that pops queue q. */
void virtq_unpop(struct virtio_dev *dev, unsigned q, unsigned n);

/* Copies between a request's segments and a host buffer, skipping `skip`
 * bytes of the chain; only readable (or only writable) segments count.
 * Return the bytes copied or -1 if a segment is not in RAM. */
ssize_t virtq_read(struct virtio_dev *dev, const struct virtq_req *req, size_t skip, void *buf,
                   size_t len);
ssize_t virtq_write(struct virtio_dev *dev, const struct virtq_req *req, size_t skip,
                    const void *buf, size_t len);
size_t virtq_readable_len(const struct virtq_req *req);
size_t virtq_writable_len(const struct virtq_req *req);

#endif
