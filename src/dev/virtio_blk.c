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
 * Replication (virtio_blk_hold_writes, see the header): held writes are a
 * singly linked list in issue order, each a copy of at most BOUNCE_SIZE
 * bytes tagged with its epoch. A read copies the backend's data into the
 * bounce buffer, then every overlapping held write over it, oldest first,
 * so the newest wins. Locks, taken in this order:
 *   rep_mu  serializes commit, hold on/off and epoch_writes: only they
 *           unlink or free held writes, so while it is held every node
 *           stays put and only the tail's `next` changes (the I/O thread
 *           appends);
 *   ov_mu   the list and `holding`; the I/O thread holds it over a whole
 *           read chunk (backend read + overlay) and a whole write chunk;
 *   mu      the thread control; `holding` and `held_bytes` are written
 *           under both ov_mu and mu, so the stall check needs only mu.
 * A commit writes its epochs' data to the backend without ov_mu (guest
 * I/O goes on) and only then unlinks them under ov_mu: a read that
 * overlaps the commit either still applies the held copy over whatever
 * the backend gave, or starts after the unlink, when the backend has the
 * data. Both backends (file, NBD) are safe to call from two threads. */
#include "dev/virtio_blk.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/disk.h"
#include "dev/virtio_devices.h"

#define SECTOR_SIZE 512u
#define BOUNCE_SIZE (1u << 20)
/* A chain is the header, the data segments and the status byte; virtq_pop
 * takes at most VIRTQ_MAX_SEGS descriptors. */
#define BLK_SEG_MAX (VIRTQ_MAX_SEGS - 2)
#define CONFIG_SIZE 64

/* One held write: `len` bytes at byte `offset`, made during `epoch`. */
struct held {
    struct held *next;
    uint64_t epoch;
    uint64_t offset;
    size_t len;
    uint8_t data[];
};

struct blk {
    struct virtio_dev *vdev;
    struct disk *disk;
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

    /* Replication: see the top of the file for the locking. */
    pthread_mutex_t rep_mu;
    pthread_mutex_t ov_mu;
    struct held *held_head, *held_tail;
    bool holding;
    uint64_t held_bytes;
    uint64_t hold_limit;           /* under mu */
    uint64_t epoch;                /* atomic */
    bool alloc_error_logged;       /* I/O thread */
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

/* Copies the held writes that overlap [off, off + n) over buf, oldest
 * first. Called with ov_mu. */
static void blk_overlay(struct blk *b, uint8_t *buf, size_t n, uint64_t off)
{
    for (const struct held *h = b->held_head; h; h = h->next) {
        uint64_t lo = off > h->offset ? off : h->offset;
        uint64_t end = off + n, hend = h->offset + h->len;
        uint64_t hi = end < hend ? end : hend;
        if (lo < hi)
            memcpy(buf + (lo - off), h->data + (lo - h->offset), hi - lo);
    }
}

/* Appends a held write. Called with ov_mu; takes mu. */
static void blk_append_held(struct blk *b, struct held *h)
{
    h->next = NULL;
    if (b->held_tail)
        b->held_tail->next = h;
    else
        b->held_head = h;
    b->held_tail = h;
    pthread_mutex_lock(&b->mu);
    b->held_bytes += h->len;
    pthread_mutex_unlock(&b->mu);
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
        pthread_mutex_lock(&b->ov_mu);
        int rc = b->disk->ops->read(b->disk, b->bounce, n, off);
        if (rc == 0)
            blk_overlay(b, b->bounce, n, off);
        pthread_mutex_unlock(&b->ov_mu);
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
        int rc = 0;
        /* ov_mu over the whole chunk: `holding` cannot change under us, so
         * a direct write never overtakes a held one being committed. */
        pthread_mutex_lock(&b->ov_mu);
        if (b->holding) {
            struct held *h = malloc(sizeof *h + n);
            if (!h) {
                pthread_mutex_unlock(&b->ov_mu);
                if (!b->alloc_error_logged)
                    fprintf(stderr, "ferry: virtio-blk %s: out of memory holding a write "
                            "(reported to the guest as an I/O error)\n", b->disk->name);
                b->alloc_error_logged = true;
                return VIRTIO_BLK_S_IOERR;
            }
            if (virtq_read(b->vdev, req, skip, h->data, n) != (ssize_t)n) {
                pthread_mutex_unlock(&b->ov_mu);
                free(h);
                return VIRTIO_BLK_S_IOERR;
            }
            h->epoch = __atomic_load_n(&b->epoch, __ATOMIC_ACQUIRE);
            h->offset = off;
            h->len = n;
            blk_append_held(b, h);
        } else {
            if (virtq_read(b->vdev, req, skip, b->bounce, n) != (ssize_t)n) {
                pthread_mutex_unlock(&b->ov_mu);
                return VIRTIO_BLK_S_IOERR;
            }
            rc = b->disk->ops->write(b->disk, b->bounce, n, off);
        }
        pthread_mutex_unlock(&b->ov_mu);
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
            /* While holding, nothing of the guest's is in the backend yet:
             * the flush is done by virtio_blk_commit once the epoch is
             * acknowledged. */
            pthread_mutex_lock(&b->mu);
            bool holding = b->holding;
            pthread_mutex_unlock(&b->mu);
            int rc = holding ? 0 : b->disk->ops->flush(b->disk);
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
        while (b->holding && b->held_bytes >= b->hold_limit && !b->paused && !b->stop)
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
    if (b->held_head)
        fprintf(stderr, "ferry: virtio-blk %s: %llu bytes of unacknowledged writes "
                "discarded\n", b->disk->name, (unsigned long long)b->held_bytes);
    for (struct held *h = b->held_head, *next; h; h = next) {
        next = h->next;
        free(h);
    }
    disk_close(b->disk);
    pthread_mutex_destroy(&b->ov_mu);
    pthread_mutex_destroy(&b->rep_mu);
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
    bool holding = b->holding;
    pthread_mutex_unlock(&b->mu);
    /* While holding, the guest's writes are in memory and the last commit
     * flushed the backend. */
    if (holding)
        return;
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
    b->vdev = slot;
    b->disk = disk;
    b->bounce = bounce;
    b->capacity = disk->size / SECTOR_SIZE;
    put_le(b->config + 0, b->capacity, 8);      /* capacity */
    put_le(b->config + 12, BLK_SEG_MAX, 4);     /* seg_max */
    put_le(b->config + 20, SECTOR_SIZE, 4);     /* blk_size */
    blk_make_id(b);
    b->hold_limit = VIRTIO_BLK_HOLD_LIMIT_DEFAULT;
    pthread_mutex_init(&b->mu, NULL);
    pthread_mutex_init(&b->rep_mu, NULL);
    pthread_mutex_init(&b->ov_mu, NULL);
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

static void blk_log_flush_error(struct blk *b, int rc)
{
    fprintf(stderr, "ferry: virtio-blk %s: flush failed: %s\n", b->disk->name, strerror(-rc));
}

/* Writes the held writes of epochs <= epoch from `first` up to `last`
 * (snapshots of the head and tail taken under ov_mu) to the backend in
 * order. Called with rep_mu, and with or without ov_mu: see the top of the
 * file. */
static int blk_write_held(struct blk *b, uint64_t epoch, const struct held *first,
                          const struct held *last)
{
    for (const struct held *h = first; h; h = h == last ? NULL : h->next) {
        if (h->epoch > epoch)
            continue;
        int rc = b->disk->ops->write(b->disk, h->data, h->len, h->offset);
        if (rc < 0) {
            fprintf(stderr, "ferry: virtio-blk %s: committing %zu bytes at offset %llu failed: "
                    "%s (the write stays held)\n", b->disk->name, h->len,
                    (unsigned long long)h->offset, strerror(-rc));
            return rc;
        }
    }
    return 0;
}

/* Unlinks and frees the held writes of epochs <= epoch from the head up to
 * `last`. Called with rep_mu and ov_mu; takes mu. */
static void blk_forget_held(struct blk *b, uint64_t epoch, struct held *last)
{
    uint64_t freed = 0;
    struct held **link = &b->held_head, *prev = NULL;
    for (struct held *h = b->held_head, *next; h; h = next) {
        bool at_last = h == last;
        next = at_last ? NULL : h->next;
        if (h->epoch <= epoch) {
            *link = h->next;
            if (b->held_tail == h)
                b->held_tail = prev;
            freed += h->len;
            free(h);
        } else {
            prev = h;
            link = &h->next;
        }
    }
    pthread_mutex_lock(&b->mu);
    b->held_bytes -= freed;
    pthread_cond_broadcast(&b->wake); /* out of a stall */
    pthread_mutex_unlock(&b->mu);
}

void virtio_blk_hold_writes(struct virtio_dev *dev, bool on)
{
    if (!virtio_blk_is(dev))
        return;
    struct blk *b = dev->opaque;
    pthread_mutex_lock(&b->rep_mu);
    pthread_mutex_lock(&b->ov_mu);
    bool was = b->holding;
    if (on == was) {
        pthread_mutex_unlock(&b->ov_mu);
        pthread_mutex_unlock(&b->rep_mu);
        return;
    }
    int rc = 0;
    if (!on) {
        /* Everything held reaches the backend before any later write:
         * ov_mu keeps the I/O thread out meanwhile. */
        rc = blk_write_held(b, UINT64_MAX, b->held_head, b->held_tail);
        if (rc == 0)
            blk_forget_held(b, UINT64_MAX, b->held_tail);
    }
    if (rc == 0) {
        pthread_mutex_lock(&b->mu);
        b->holding = on;
        pthread_cond_broadcast(&b->wake);
        pthread_mutex_unlock(&b->mu);
    }
    pthread_mutex_unlock(&b->ov_mu);
    if (rc < 0)
        fprintf(stderr, "ferry: virtio-blk %s: writes stay held\n", b->disk->name);
    else if ((rc = b->disk->ops->flush(b->disk)) < 0)
        blk_log_flush_error(b, rc);
    pthread_mutex_unlock(&b->rep_mu);
}

void virtio_blk_set_epoch(struct virtio_dev *dev, uint64_t epoch)
{
    if (!virtio_blk_is(dev))
        return;
    struct blk *b = dev->opaque;
    __atomic_store_n(&b->epoch, epoch, __ATOMIC_RELEASE);
}

int virtio_blk_epoch_writes(struct virtio_dev *dev, uint64_t epoch,
                            int (*fn)(void *opaque, uint64_t offset, const void *data, size_t len),
                            void *opaque)
{
    if (!virtio_blk_is(dev))
        return -EINVAL;
    struct blk *b = dev->opaque;
    pthread_mutex_lock(&b->rep_mu);
    pthread_mutex_lock(&b->ov_mu);
    const struct held *h = b->held_head, *last = b->held_tail;
    pthread_mutex_unlock(&b->ov_mu);
    /* rep_mu: nothing up to `last` is unlinked or freed, and the I/O
     * thread only changes last->next. */
    int rc = 0;
    for (; h && rc == 0; h = h == last ? NULL : h->next)
        if (h->epoch == epoch)
            rc = fn(opaque, h->offset, h->data, h->len);
    pthread_mutex_unlock(&b->rep_mu);
    return rc;
}

int virtio_blk_commit(struct virtio_dev *dev, uint64_t epoch)
{
    if (!virtio_blk_is(dev))
        return -EINVAL;
    struct blk *b = dev->opaque;
    pthread_mutex_lock(&b->rep_mu);
    pthread_mutex_lock(&b->ov_mu);
    const struct held *first = b->held_head;
    struct held *last = b->held_tail;
    bool any = false;
    for (const struct held *h = b->held_head; h && !any; h = h->next)
        any = h->epoch <= epoch;
    pthread_mutex_unlock(&b->ov_mu);
    int rc = 0;
    if (any) {
        /* Without ov_mu: guest reads still see the held copies until they
         * are unlinked below, after the backend has the data. */
        rc = blk_write_held(b, epoch, first, last);
        if (rc == 0 && (rc = b->disk->ops->flush(b->disk)) < 0)
            blk_log_flush_error(b, rc);
        if (rc == 0) {
            pthread_mutex_lock(&b->ov_mu);
            blk_forget_held(b, epoch, last);
            pthread_mutex_unlock(&b->ov_mu);
        }
    }
    pthread_mutex_unlock(&b->rep_mu);
    return rc;
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
    return b->disk->ops->write(b->disk, data, len, offset);
}

int virtio_blk_flush_backend(struct virtio_dev *dev)
{
    if (!virtio_blk_is(dev))
        return -EINVAL;
    struct blk *b = dev->opaque;
    return b->disk->ops->flush(b->disk);
}

uint64_t virtio_blk_held_bytes(const struct virtio_dev *dev)
{
    if (!virtio_blk_is(dev))
        return 0;
    struct blk *b = dev->opaque;
    pthread_mutex_lock(&b->mu);
    uint64_t n = b->held_bytes;
    pthread_mutex_unlock(&b->mu);
    return n;
}

void virtio_blk_set_hold_limit(struct virtio_dev *dev, uint64_t bytes)
{
    if (!virtio_blk_is(dev))
        return;
    struct blk *b = dev->opaque;
    pthread_mutex_lock(&b->mu);
    b->hold_limit = bytes ? bytes : VIRTIO_BLK_HOLD_LIMIT_DEFAULT;
    pthread_cond_broadcast(&b->wake);
    pthread_mutex_unlock(&b->mu);
}
