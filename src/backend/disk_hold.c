/* Held disk writes (see disk_hold.h). */
#include "backend/disk_hold.h"

#include "backend/output_gate.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One held write: `len` bytes at byte `offset`, made during `epoch`. */
struct held_write {
    struct held_write *next;
    uint64_t epoch;
    uint64_t offset;
    size_t len;
    uint8_t data[];
};

static struct disk_hold *hold_of(struct disk *d)
{
    return (struct disk_hold *)d;
}

static void tell_space(struct disk_hold *dh)
{
    if (dh->space)
        dh->space(dh->space_opaque);
}

/* Copies the held writes that overlap [off, off + n) over buf, oldest
 * first. Called with ov_mu. */
static void overlay(struct disk_hold *dh, uint8_t *buf, size_t n, uint64_t off)
{
    for (const struct held_write *h = dh->head; h; h = h->next) {
        uint64_t lo = off > h->offset ? off : h->offset;
        uint64_t end = off + n, hend = h->offset + h->len;
        uint64_t hi = end < hend ? end : hend;
        if (lo < hi)
            memcpy(buf + (lo - off), h->data + (lo - h->offset), hi - lo);
    }
}

static int hold_read(struct disk *d, void *buf, size_t len, uint64_t offset)
{
    struct disk_hold *dh = hold_of(d);
    pthread_mutex_lock(&dh->ov_mu);
    int rc = dh->inner->ops->read(dh->inner, buf, len, offset);
    if (rc == 0)
        overlay(dh, buf, len, offset);
    pthread_mutex_unlock(&dh->ov_mu);
    return rc;
}

static int hold_write(struct disk *d, const void *buf, size_t len, uint64_t offset)
{
    struct disk_hold *dh = hold_of(d);
    int rc = 0;
    /* ov_mu over the whole write: `holding` cannot change under us, so a
     * direct write never overtakes a held one being committed. */
    pthread_mutex_lock(&dh->ov_mu);
    if (!dh->holding) {
        rc = dh->inner->ops->write(dh->inner, buf, len, offset);
    } else {
        struct held_write *h = malloc(sizeof *h + len);
        if (!h) {
            if (!dh->alloc_error_logged)
                fprintf(stderr, "ferry: virtio-blk %s: out of memory holding a write "
                        "(reported to the guest as an I/O error)\n", dh->disk.name);
            dh->alloc_error_logged = true;
            rc = -ENOMEM;
        } else {
            memcpy(h->data, buf, len);
            h->next = NULL;
            h->epoch = __atomic_load_n(&dh->epoch, __ATOMIC_ACQUIRE);
            h->offset = offset;
            h->len = len;
            if (dh->tail)
                dh->tail->next = h;
            else
                dh->head = h;
            dh->tail = h;
            pthread_mutex_lock(&dh->mu);
            dh->held_bytes += len;
            pthread_mutex_unlock(&dh->mu);
        }
    }
    pthread_mutex_unlock(&dh->ov_mu);
    return rc;
}

static int hold_flush(struct disk *d)
{
    struct disk_hold *dh = hold_of(d);
    /* While holding, nothing of the guest's is in the backend yet: the
     * flush is done by the commit once the epoch is acknowledged. */
    if (disk_hold_holding(dh))
        return 0;
    return dh->inner->ops->flush(dh->inner);
}

static void hold_close(struct disk *d)
{
    struct disk_hold *dh = hold_of(d);
    if (dh->head)
        fprintf(stderr, "ferry: virtio-blk %s: %llu bytes of unacknowledged writes "
                "discarded\n", dh->disk.name, (unsigned long long)dh->held_bytes);
    for (struct held_write *h = dh->head, *next; h; h = next) {
        next = h->next;
        free(h);
    }
    disk_close(dh->inner);
    pthread_mutex_destroy(&dh->mu);
    pthread_mutex_destroy(&dh->ov_mu);
    pthread_mutex_destroy(&dh->rep_mu);
    free(dh);
}

static const struct disk_ops hold_ops = {
    .read = hold_read, .write = hold_write, .flush = hold_flush, .close = hold_close,
};

int disk_hold_wrap(struct disk *inner, uint64_t limit, struct disk_hold **out,
                   struct error *err)
{
    struct disk_hold *dh = calloc(1, sizeof *dh);
    if (!dh) {
        disk_close(inner);
        return error_set(err, "out of memory");
    }
    dh->disk.ops = &hold_ops;
    dh->disk.size = inner->size;
    dh->disk.readonly = inner->readonly;
    snprintf(dh->disk.name, sizeof dh->disk.name, "%s", inner->name);
    dh->inner = inner;
    dh->limit = limit;
    pthread_mutex_init(&dh->rep_mu, NULL);
    pthread_mutex_init(&dh->ov_mu, NULL);
    pthread_mutex_init(&dh->mu, NULL);
    *out = dh;
    return 0;
}

bool disk_hold_full(struct disk_hold *dh)
{
    pthread_mutex_lock(&dh->mu);
    bool full = dh->holding && dh->held_bytes >= dh->limit;
    pthread_mutex_unlock(&dh->mu);
    return full;
}

bool disk_hold_holding(struct disk_hold *dh)
{
    pthread_mutex_lock(&dh->mu);
    bool holding = dh->holding;
    pthread_mutex_unlock(&dh->mu);
    return holding;
}

static void log_flush_error(struct disk_hold *dh, int rc)
{
    fprintf(stderr, "ferry: virtio-blk %s: flush failed: %s\n", dh->disk.name, strerror(-rc));
}

/* Writes the held writes of epochs <= epoch from `first` up to `last`
 * (snapshots of the head and tail taken under ov_mu) to the backend in
 * order. Called with rep_mu, and with or without ov_mu. */
static int write_held(struct disk_hold *dh, uint64_t epoch, const struct held_write *first,
                      const struct held_write *last)
{
    for (const struct held_write *h = first; h; h = h == last ? NULL : h->next) {
        if (h->epoch > epoch)
            continue;
        if (!output_gate_open()) {
            fprintf(stderr, "ferry: virtio-blk %s: the output gate closed (replication's arbiter): "
                    "held writes stay held\n", dh->disk.name);
            return -EPERM;
        }
        int rc = dh->inner->ops->write(dh->inner, h->data, h->len, h->offset);
        if (rc < 0) {
            fprintf(stderr, "ferry: virtio-blk %s: committing %zu bytes at offset %llu failed: "
                    "%s (the write stays held)\n", dh->disk.name, h->len,
                    (unsigned long long)h->offset, strerror(-rc));
            return rc;
        }
    }
    return 0;
}

/* Unlinks and frees the held writes of epochs <= epoch from the head up to
 * `last`. Called with rep_mu and ov_mu. */
static void forget_held(struct disk_hold *dh, uint64_t epoch, struct held_write *last)
{
    uint64_t freed = 0;
    struct held_write **link = &dh->head, *prev = NULL;
    for (struct held_write *h = dh->head, *next; h; h = next) {
        bool at_last = h == last;
        next = at_last ? NULL : h->next;
        if (h->epoch <= epoch) {
            *link = h->next;
            if (dh->tail == h)
                dh->tail = prev;
            freed += h->len;
            free(h);
        } else {
            prev = h;
            link = &h->next;
        }
    }
    pthread_mutex_lock(&dh->mu);
    dh->held_bytes -= freed;
    pthread_mutex_unlock(&dh->mu);
    tell_space(dh); /* out of a stall */
}

void disk_hold_set(struct disk_hold *dh, bool on)
{
    pthread_mutex_lock(&dh->rep_mu);
    pthread_mutex_lock(&dh->ov_mu);
    if (on == dh->holding) {
        pthread_mutex_unlock(&dh->ov_mu);
        pthread_mutex_unlock(&dh->rep_mu);
        return;
    }
    int rc = 0;
    if (!on) {
        /* Everything held reaches the backend before any later write:
         * ov_mu keeps writers out meanwhile. */
        rc = write_held(dh, UINT64_MAX, dh->head, dh->tail);
        if (rc == 0)
            forget_held(dh, UINT64_MAX, dh->tail);
    }
    if (rc == 0) {
        pthread_mutex_lock(&dh->mu);
        dh->holding = on;
        pthread_mutex_unlock(&dh->mu);
        tell_space(dh);
    }
    pthread_mutex_unlock(&dh->ov_mu);
    if (rc < 0)
        fprintf(stderr, "ferry: virtio-blk %s: writes stay held\n", dh->disk.name);
    else if ((rc = dh->inner->ops->flush(dh->inner)) < 0)
        log_flush_error(dh, rc);
    pthread_mutex_unlock(&dh->rep_mu);
}

void disk_hold_set_epoch(struct disk_hold *dh, uint64_t epoch)
{
    __atomic_store_n(&dh->epoch, epoch, __ATOMIC_RELEASE);
}

int disk_hold_epoch_writes(struct disk_hold *dh, uint64_t epoch,
                           int (*fn)(void *opaque, uint64_t offset, const void *data, size_t len),
                           void *opaque)
{
    pthread_mutex_lock(&dh->rep_mu);
    pthread_mutex_lock(&dh->ov_mu);
    const struct held_write *h = dh->head, *last = dh->tail;
    pthread_mutex_unlock(&dh->ov_mu);
    /* rep_mu: nothing up to `last` is unlinked or freed, and writers only
     * change last->next. */
    int rc = 0;
    for (; h && rc == 0; h = h == last ? NULL : h->next)
        if (h->epoch == epoch)
            rc = fn(opaque, h->offset, h->data, h->len);
    pthread_mutex_unlock(&dh->rep_mu);
    return rc;
}

int disk_hold_commit(struct disk_hold *dh, uint64_t epoch)
{
    pthread_mutex_lock(&dh->rep_mu);
    pthread_mutex_lock(&dh->ov_mu);
    const struct held_write *first = dh->head;
    struct held_write *last = dh->tail;
    bool any = false;
    for (const struct held_write *h = dh->head; h && !any; h = h->next)
        any = h->epoch <= epoch;
    pthread_mutex_unlock(&dh->ov_mu);
    int rc = 0;
    if (any) {
        /* Without ov_mu: guest reads still see the held copies until they
         * are unlinked below, after the backend has the data. */
        rc = write_held(dh, epoch, first, last);
        if (rc == 0 && (rc = dh->inner->ops->flush(dh->inner)) < 0)
            log_flush_error(dh, rc);
        if (rc == 0) {
            pthread_mutex_lock(&dh->ov_mu);
            forget_held(dh, epoch, last);
            pthread_mutex_unlock(&dh->ov_mu);
        }
    }
    pthread_mutex_unlock(&dh->rep_mu);
    return rc;
}

uint64_t disk_hold_held_bytes(struct disk_hold *dh)
{
    pthread_mutex_lock(&dh->mu);
    uint64_t n = dh->held_bytes;
    pthread_mutex_unlock(&dh->mu);
    return n;
}

void disk_hold_set_limit(struct disk_hold *dh, uint64_t limit)
{
    pthread_mutex_lock(&dh->mu);
    dh->limit = limit;
    pthread_mutex_unlock(&dh->mu);
    tell_space(dh);
}
