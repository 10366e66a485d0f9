/* virtio-blk (virtio 1.x, 5.2) on a disk backend.
 *
 * One request queue, served by one I/O thread per device: the vCPU thread
 * only records the kick and signals the thread, which pops requests until
 * the queue is empty, does the backend I/O through a bounce buffer and
 * publishes each completion. All guest memory is reached through
 * virtq_read/virtq_write, so device writes land in the dirty log.
 *
 * A request is a chain: a 16-byte header {le32 type, le32 reserved, le64
 * sector} in driver-readable buffers, then the data (readable for OUT,
 * writable for IN and GET_ID), then one status byte: the last writable
 * byte of the chain. Nothing in it is trusted: lengths, sector ranges and
 * the chain's shape are checked before the backend is touched.
 *
 * Nothing here is migrated: every request taken from the ring is finished
 * before the thread goes idle, so after virtio_blk_quiesce() the transport
 * state (struct virtio_mmio_state) describes the whole device.
 *
 * Replication (virtio_blk_hold_writes, see the header): the device reads
 * and writes through a disk_hold filter (src/backend/disk_hold.h) that
 * holds, overlays and commits the guest's writes; the device only stops
 * taking requests while the filter says it is full. */
#include "dev/virtio_blk.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/disk.h"
#include "backend/disk_dirty.h"
#include "backend/disk_hold.h"
#include "dev/virtio_devices.h"

#define SECTOR_SIZE 512u
#define BOUNCE_SIZE (1u << 20)
/* A chain is the header, the data segments and the status byte; virtq_pop
 * takes at most VIRTQ_MAX_SEGS descriptors. */
#define BLK_SEG_MAX (VIRTQ_MAX_SEGS - 2)
#define CONFIG_SIZE 64

struct blk {
    struct virtio_dev *vdev;
    struct disk *disk;             /* the filter below, as a struct disk */
    struct disk_hold *hold;        /* replication's held writes, around the log */
    struct disk_dirty *dirty;      /* storage migration's dirty-block log, around the backend */
    uint64_t capacity;             /* sectors */
    uint8_t config[CONFIG_SIZE];   /* struct virtio_blk_config, little-endian */
    uint8_t id[VIRTIO_BLK_ID_BYTES];
    uint8_t *bounce;
    bool io_error_logged;

    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mu;
    pthread_cond_t wake;           /* to the thread: kick, resume or stop */
    pthread_cond_t idle;           /* from the thread: busy went false */
    bool kicked;                   /* the queue may hold new requests */
    bool busy;                     /* the thread is between pops */
    bool stop;
    unsigned paused;               /* quiesce/reset nesting */

};

struct blk_header {
    uint32_t type;
    uint32_t reserved;
    uint64_t sector;
};

static void put_le(uint8_t *p, uint64_t v, unsigned bytes)
{
    for (unsigned i = 0; i < bytes; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_le(const uint8_t *p, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

/* ---- request handling (I/O thread) ---- */

static void blk_log_error(struct blk *b, const char *what, uint64_t sector, int rc)
{
    /* Once per device: a dying disk must not flood the terminal. */
    if (b->io_error_logged)
        return;
    b->io_error_logged = true;
    fprintf(stderr, "ferry: virtio-blk %s: %s at sector %llu failed: %s (reported to the guest "
            "as an I/O error; further errors not shown)\n", b->disk->name, what,
            (unsigned long long)sector, strerror(-rc));
}

/* Checks that [sector, sector + len bytes) lies on the disk; len is a
 * multiple of the sector size. */
static bool blk_in_range(const struct blk *b, uint64_t sector, size_t len)
{
    if (len % SECTOR_SIZE)
        return false;
    return sector <= b->capacity && len / SECTOR_SIZE <= b->capacity - sector;
}

/* IN: disk -> guest. *written counts the bytes put into the chain. */
static uint8_t blk_read(struct blk *b, const struct virtq_req *req, uint64_t sector,
                        size_t len, uint32_t *written)
{
    if (!blk_in_range(b, sector, len))
        return VIRTIO_BLK_S_IOERR;
    for (size_t done = 0; done < len;) {
        size_t n = len - done < BOUNCE_SIZE ? len - done : BOUNCE_SIZE;
        uint64_t off = sector * SECTOR_SIZE + done;
        int rc = b->disk->ops->read(b->disk, b->bounce, n, off);
        if (rc < 0) {
            blk_log_error(b, "read", sector, rc);
            return VIRTIO_BLK_S_IOERR;
        }
        if (virtq_write(b->vdev, req, done, b->bounce, n) != (ssize_t)n)
            return VIRTIO_BLK_S_IOERR;
        done += n;
        /* Overlapping segments can make a chain longer than 4 GiB. */
        *written = done < UINT32_MAX ? (uint32_t)done : UINT32_MAX - 1;
    }
    return VIRTIO_BLK_S_OK;
}

/* OUT: guest -> disk; the data follows the header in the readable part. */
static uint8_t blk_write(struct blk *b, const struct virtq_req *req, uint64_t sector, size_t len)
{
    if (b->disk->readonly || !blk_in_range(b, sector, len))
        return VIRTIO_BLK_S_IOERR;
    for (size_t done = 0; done < len;) {
        size_t n = len - done < BOUNCE_SIZE ? len - done : BOUNCE_SIZE;
        uint64_t off = sector * SECTOR_SIZE + done;
        size_t skip = sizeof(struct blk_header) + done;
        if (virtq_read(b->vdev, req, skip, b->bounce, n) != (ssize_t)n)
            return VIRTIO_BLK_S_IOERR;
        /* Held for replication, or written to the backend. */
        int rc = b->disk->ops->write(b->disk, b->bounce, n, off);
        if (rc < 0) {
            blk_log_error(b, "write", sector, rc);
            return VIRTIO_BLK_S_IOERR;
        }
        done += n;
    }
    return VIRTIO_BLK_S_OK;
}

static void blk_handle(struct blk *b, const struct virtq_req *req)
{
    struct virtio_dev *dev = b->vdev;
    /* The status byte is the last byte of the chain, which must be writable. */
    if (req->nseg == 0 || !req->seg[req->nseg - 1].write || req->seg[req->nseg - 1].len == 0) {
        virtq_push(dev, 0, req->head, 0);
        return;
    }
    size_t wlen = virtq_writable_len(req) - 1;   /* without the status byte */
    size_t rlen = virtq_readable_len(req);
    uint32_t written = 0;
    uint8_t status;
    uint8_t raw[sizeof(struct blk_header)];
    if (rlen < sizeof raw || virtq_read(dev, req, 0, raw, sizeof raw) != (ssize_t)sizeof raw) {
        status = VIRTIO_BLK_S_IOERR;
    } else {
        uint32_t type = (uint32_t)get_le(raw, 4);
        uint64_t sector = get_le(raw + 8, 8);
        switch (type) {
        case VIRTIO_BLK_T_IN:
            status = blk_read(b, req, sector, wlen, &written);
            break;
        case VIRTIO_BLK_T_OUT:
            status = blk_write(b, req, sector, rlen - sizeof raw);
            break;
        case VIRTIO_BLK_T_FLUSH: {
            /* While writes are held the filter completes it at once: the
             * commit flushes once the epoch is acknowledged. */
            int rc = b->disk->ops->flush(b->disk);
            if (rc < 0)
                blk_log_error(b, "flush", 0, rc);
            status = rc < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
            break;
        }
        case VIRTIO_BLK_T_GET_ID: {
            size_t n = wlen < sizeof b->id ? wlen : sizeof b->id;
            ssize_t put = virtq_write(dev, req, 0, b->id, n);
            written = put > 0 ? (uint32_t)put : 0;
            status = put == (ssize_t)n ? VIRTIO_BLK_S_OK : VIRTIO_BLK_S_IOERR;
            break;
        }
        default:
            status = VIRTIO_BLK_S_UNSUPP;
            break;
        }
    }
    /* The used length counts the bytes written: the data, then the status. */
    if (virtq_write(dev, req, wlen, &status, 1) == 1)
        written++;
    virtq_push(dev, 0, req->head, written);
}

/* Pops and completes requests until the queue is empty or the device is
 * paused or stopped. Called without b->mu. */
static void blk_drain(struct blk *b)
{
    struct virtq_req req;
    for (;;) {
        pthread_mutex_lock(&b->mu);
        /* Too much held: take nothing new until a commit frees space (or
         * holding ends); quiesce and stop still get through. */
        while (disk_hold_full(b->hold) && !b->paused && !b->stop)
            pthread_cond_wait(&b->wake, &b->mu);
        bool hold = b->paused || b->stop;
        if (hold)
            b->kicked = true; /* look again on resume */
        pthread_mutex_unlock(&b->mu);
        if (hold)
            return;
        int rc = virtq_pop(b->vdev, 0, &req);
        if (rc != 1)
            return; /* empty, not ready, or broken (the device then needs a reset) */
        blk_handle(b, &req);
    }
}

static void *blk_thread(void *arg)
{
    struct blk *b = arg;
    pthread_mutex_lock(&b->mu);
    for (;;) {
        while (!b->stop && (!b->kicked || b->paused))
            pthread_cond_wait(&b->wake, &b->mu);
        if (b->stop)
            break;
        b->kicked = false;
        b->busy = true;
        pthread_mutex_unlock(&b->mu);
        blk_drain(b);
        pthread_mutex_lock(&b->mu);
        b->busy = false;
        pthread_cond_broadcast(&b->idle);
    }
    pthread_mutex_unlock(&b->mu);
    return NULL;
}

/* Called with b->mu held: stop taking requests and wait for the one in
 * flight, if any. */
static void blk_pause_locked(struct blk *b)
{
    b->paused++;
    pthread_cond_broadcast(&b->wake); /* out of a held-writes stall */
    while (b->busy)
        pthread_cond_wait(&b->idle, &b->mu);
}

static void blk_resume_locked(struct blk *b)
{
    if (b->paused)
        b->paused--;
    if (b->paused == 0) {
        /* Rescan: a migration destination resumes with requests the driver
         * queued (and kicked) on the source. */
        b->kicked = true;
        pthread_cond_signal(&b->wake);
    }
}

/* ---- virtio_device_ops (vCPU thread) ---- */

static uint64_t blk_config_read(struct virtio_dev *dev, uint64_t offset, unsigned size)
{
    struct blk *b = dev->opaque;
    if (size == 0 || size > 8 || offset >= CONFIG_SIZE || size > CONFIG_SIZE - offset)
        return 0;
    return get_le(b->config + offset, size);
}

static void blk_config_write(struct virtio_dev *dev, uint64_t offset, uint64_t value,
                             unsigned size)
{
    /* Nothing is driver-writable without VIRTIO_BLK_F_CONFIG_WCE. */
}

static void blk_queue_notify(struct virtio_dev *dev, unsigned q)
{
    struct blk *b = dev->opaque;
    pthread_mutex_lock(&b->mu);
    b->kicked = true;
    pthread_cond_signal(&b->wake);
    pthread_mutex_unlock(&b->mu);
}

static void blk_reset(struct virtio_dev *dev)
{
    struct blk *b = dev->opaque;
    pthread_mutex_lock(&b->mu);
    blk_pause_locked(b);
    /* The transport clears the queues next: nothing left to look at. */
    b->kicked = false;
    b->paused--;
    pthread_mutex_unlock(&b->mu);
}

static void blk_free(struct blk *b)
{
    if (b->thread_started) {
        pthread_mutex_lock(&b->mu);
        b->stop = true;
        pthread_cond_signal(&b->wake);
        pthread_mutex_unlock(&b->mu);
        pthread_join(b->thread, NULL);
    }
    disk_close(b->disk); /* the filter: discards what is still held, closes the backend */
    pthread_cond_destroy(&b->idle);
    pthread_cond_destroy(&b->wake);
    pthread_mutex_destroy(&b->mu);
    free(b->bounce);
    free(b);
}

static void blk_destroy(struct virtio_dev *dev)
{
    struct blk *b = dev->opaque;
    if (b)
        blk_free(b);
    dev->opaque = NULL;
}

static const struct repl_hooks blk_repl = {
    .hold = virtio_blk_hold_writes,
    .set_epoch = virtio_blk_set_epoch,
    .commit = virtio_blk_commit,
    .epoch_writes = virtio_blk_epoch_writes,
};

static const struct virtio_device_ops blk_ops = {
    .name = "virtio-blk",
    .device_id = VIRTIO_ID_BLOCK,
    .features = (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) |
                (1ull << VIRTIO_BLK_F_FLUSH),
    .num_queues = 1,
    .config_read = blk_config_read,
    .config_write = blk_config_write,
    .queue_notify = blk_queue_notify,
    .reset = blk_reset,
    .quiesce = virtio_blk_quiesce,
    .resume = virtio_blk_resume,
    .destroy = blk_destroy,
    .repl = &blk_repl,
};

/* Same as blk_ops, plus VIRTIO_BLK_F_RO. */
static const struct virtio_device_ops blk_ro_ops = {
    .name = "virtio-blk",
    .device_id = VIRTIO_ID_BLOCK,
    .features = (1ull << VIRTIO_BLK_F_SEG_MAX) | (1ull << VIRTIO_BLK_F_BLK_SIZE) |
                (1ull << VIRTIO_BLK_F_FLUSH) | (1ull << VIRTIO_BLK_F_RO),
    .num_queues = 1,
    .config_read = blk_config_read,
    .config_write = blk_config_write,
    .queue_notify = blk_queue_notify,
    .reset = blk_reset,
    .quiesce = virtio_blk_quiesce,
    .resume = virtio_blk_resume,
    .destroy = blk_destroy,
    .repl = &blk_repl,
};

static bool is_blk(const struct virtio_dev *dev)
{
    return dev->opaque && (dev->ops == &blk_ops || dev->ops == &blk_ro_ops);
}

void virtio_blk_quiesce(struct virtio_dev *dev)
{
    if (!is_blk(dev))
        return;
    struct blk *b = dev->opaque;
    pthread_mutex_lock(&b->mu);
    blk_pause_locked(b);
    pthread_mutex_unlock(&b->mu);
    /* While writes are held the filter's flush does nothing: the guest's
     * writes are in memory and the last commit flushed the backend. */
    int rc = b->disk->ops->flush(b->disk);
    if (rc < 0)
        fprintf(stderr, "ferry: virtio-blk %s: flush failed: %s\n", b->disk->name, strerror(-rc));
}

void virtio_blk_resume(struct virtio_dev *dev)
{
    if (!is_blk(dev))
        return;
    struct blk *b = dev->opaque;
    pthread_mutex_lock(&b->mu);
    blk_resume_locked(b);
    pthread_mutex_unlock(&b->mu);
}

/* The 20-byte serial number (GET_ID): the image's file name, or the tail
 * of it when longer; zero-padded. */
static void blk_make_id(struct blk *b)
{
    const char *name = b->disk->name;
    const char *slash = strrchr(name, '/');
    if (slash && slash[1])
        name = slash + 1;
    size_t len = strlen(name);
    if (len > sizeof b->id)
        name += len - sizeof b->id, len = sizeof b->id;
    memset(b->id, 0, sizeof b->id);
    memcpy(b->id, name, len);
}

/* The filter freed space (or stopped holding): out of a stall. */
static void blk_space(void *opaque)
{
    struct blk *b = opaque;
    pthread_mutex_lock(&b->mu);
    pthread_cond_broadcast(&b->wake);
    pthread_mutex_unlock(&b->mu);
}

int virtio_blk_attach(struct virtio_dev *slot, struct disk *disk, struct error *err)
{
    struct blk *b = calloc(1, sizeof *b);
    uint8_t *bounce = malloc(BOUNCE_SIZE);
    if (!b || !bounce) {
        free(b);
        free(bounce);
        disk_close(disk);
        return error_set(err, "out of memory");
    }
    /* Below the hold: held writes are logged when they reach the image. */
    if (disk_dirty_wrap(disk, &b->dirty, err) < 0 ||
        disk_hold_wrap(&b->dirty->disk, VIRTIO_BLK_HOLD_LIMIT_DEFAULT, &b->hold, err) < 0) {
        free(b);
        free(bounce);
        return -1;
    }
    b->hold->space = blk_space;
    b->hold->space_opaque = b;
    b->vdev = slot;
    b->disk = &b->hold->disk;
    b->bounce = bounce;
    b->capacity = disk->size / SECTOR_SIZE;
    put_le(b->config + 0, b->capacity, 8);      /* capacity */
    put_le(b->config + 12, BLK_SEG_MAX, 4);     /* seg_max */
    put_le(b->config + 20, SECTOR_SIZE, 4);     /* blk_size */
    blk_make_id(b);
    pthread_mutex_init(&b->mu, NULL);
    pthread_cond_init(&b->wake, NULL);
    pthread_cond_init(&b->idle, NULL);

    /* The thread blocks every signal: they are the vCPU loop's to handle. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&b->thread, NULL, blk_thread, b);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        char name[sizeof disk->name];
        snprintf(name, sizeof name, "%s", disk->name);
        blk_free(b);
        return error_set(err, "virtio-blk %s: cannot start the I/O thread: %s", name,
                         strerror(rc));
    }
    b->thread_started = true;
    pthread_setname_np(b->thread, "ferry-blk");
    slot->opaque = b;
    slot->ops = disk->readonly ? &blk_ro_ops : &blk_ops;
    return 0;
}

/* ---- replication ---- */

bool virtio_blk_is(const struct virtio_dev *dev)
{
    return dev && is_blk(dev);
}

void virtio_blk_hold_writes(struct virtio_dev *dev, bool on)
{
    if (virtio_blk_is(dev))
        disk_hold_set(((struct blk *)dev->opaque)->hold, on);
}

void virtio_blk_set_epoch(struct virtio_dev *dev, uint64_t epoch)
{
    if (virtio_blk_is(dev))
        disk_hold_set_epoch(((struct blk *)dev->opaque)->hold, epoch);
}

int virtio_blk_epoch_writes(struct virtio_dev *dev, uint64_t epoch,
                            int (*fn)(void *opaque, uint64_t offset, const void *data, size_t len),
                            void *opaque)
{
    if (!virtio_blk_is(dev))
        return -EINVAL;
    return disk_hold_epoch_writes(((struct blk *)dev->opaque)->hold, epoch, fn, opaque);
}

int virtio_blk_commit(struct virtio_dev *dev, uint64_t epoch)
{
    if (!virtio_blk_is(dev))
        return -EINVAL;
    return disk_hold_commit(((struct blk *)dev->opaque)->hold, epoch);
}

int virtio_blk_check_write(const struct virtio_dev *dev, uint64_t offset, size_t len)
{
    if (!virtio_blk_is(dev))
        return -EINVAL;
    const struct blk *b = dev->opaque;
    if (b->disk->readonly)
        return -EROFS;
    if (offset % SECTOR_SIZE || len % SECTOR_SIZE || offset > b->disk->size ||
        len > b->disk->size - offset)
        return -EINVAL;
    return 0;
}

int virtio_blk_apply_write(struct virtio_dev *dev, uint64_t offset, const void *data, size_t len)
{
    int rc = virtio_blk_check_write(dev, offset, len);
    if (rc < 0)
        return rc;
    struct blk *b = dev->opaque;
    if (len == 0)
        return 0;
    /* Straight to the backend, past (and not visible through) held writes. */
    return b->hold->inner->ops->write(b->hold->inner, data, len, offset);
}

int virtio_blk_flush_backend(struct virtio_dev *dev)
{
    if (!virtio_blk_is(dev))
        return -EINVAL;
    struct blk *b = dev->opaque;
    return b->hold->inner->ops->flush(b->hold->inner);
}

uint64_t virtio_blk_held_bytes(const struct virtio_dev *dev)
{
    if (!virtio_blk_is(dev))
        return 0;
    return disk_hold_held_bytes(((struct blk *)dev->opaque)->hold);
}

void virtio_blk_set_hold_limit(struct virtio_dev *dev, uint64_t bytes)
{
    if (!virtio_blk_is(dev))
        return;
    disk_hold_set_limit(((struct blk *)dev->opaque)->hold,
                        bytes ? bytes : VIRTIO_BLK_HOLD_LIMIT_DEFAULT);
}

struct disk_dirty *virtio_blk_dirty_log(struct virtio_dev *dev)
{
    return virtio_blk_is(dev) ? ((struct blk *)dev->opaque)->dirty : NULL;
}
