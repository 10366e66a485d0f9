/* Held output frames (see frame_hold.h). */
#include "backend/frame_hold.h"

#include "backend/output_gate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* One held frame, as the sink will get it. */
struct held_frame {
    struct held_frame *next;
    uint64_t epoch;
    size_t len;
    uint8_t data[];
};

void frame_hold_init(struct frame_hold *fh, bool (*send)(void *, const uint8_t *, size_t, bool),
                     void *opaque, const char *name, uint64_t limit)
{
    memset(fh, 0, sizeof *fh);
    fh->send = send;
    fh->opaque = opaque;
    fh->name = name;
    fh->limit = limit;
    pthread_mutex_init(&fh->mu, NULL);
}

void frame_hold_destroy(struct frame_hold *fh)
{
    if (fh->frames)
        fprintf(stderr, "ferry: virtio-net %s: %zu unacknowledged frames discarded\n",
                fh->name, fh->frames);
    for (struct held_frame *h = fh->head, *next; h; h = next) {
        next = h->next;
        free(h);
    }
    fh->head = fh->tail = NULL;
    fh->frames = 0;
    pthread_mutex_destroy(&fh->mu);
}

bool frame_hold_output(struct frame_hold *fh, const uint8_t *frame, size_t len)
{
    pthread_mutex_lock(&fh->mu);
    if (!fh->holding) {
        /* A closed gate (the arbiter's lease may have ended) drops it. */
        bool sent = output_gate_open() && fh->send(fh->opaque, frame, len, false);
        pthread_mutex_unlock(&fh->mu);
        return sent;
    }
    struct held_frame *h = NULL;
    if (fh->bytes + len <= fh->limit)
        h = malloc(sizeof *h + len);
    if (!h) {
        if (!fh->drop_logged)
            fprintf(stderr, "ferry: virtio-net %s: %zu frames (%llu bytes) held for the "
                    "standby's acknowledgement: dropping new output until it comes\n",
                    fh->name, fh->frames, (unsigned long long)fh->bytes);
        fh->drop_logged = true;
        pthread_mutex_unlock(&fh->mu);
        return false;
    }
    h->next = NULL;
    h->epoch = __atomic_load_n(&fh->epoch, __ATOMIC_ACQUIRE);
    h->len = len;
    memcpy(h->data, frame, len);
    if (fh->tail)
        fh->tail->next = h;
    else
        fh->head = h;
    fh->tail = h;
    fh->frames++;
    fh->bytes += len;
    pthread_mutex_unlock(&fh->mu);
    return true;
}

/* Sends (send) or forgets the held frames of epochs <= epoch, in order.
 * Called with mu. */
static void unlink_locked(struct frame_hold *fh, uint64_t epoch, bool send)
{
    struct held_frame **link = &fh->head, *prev = NULL;
    for (struct held_frame *h = fh->head, *next; h; h = next) {
        next = h->next;
        if (h->epoch > epoch) {
            prev = h;
            link = &h->next;
            continue;
        }
        if (send && !output_gate_open())
            break; /* the rest stays held */
        if (send)
            fh->send(fh->opaque, h->data, h->len, true);
        *link = next;
        if (fh->tail == h)
            fh->tail = prev;
        fh->frames--;
        fh->bytes -= h->len;
        free(h);
    }
    if (fh->bytes < fh->limit)
        fh->drop_logged = false;
}

static void release_locked(struct frame_hold *fh, uint64_t epoch)
{
    unlink_locked(fh, epoch, true);
}

void frame_hold_drop(struct frame_hold *fh, uint64_t epoch)
{
    pthread_mutex_lock(&fh->mu);
    unlink_locked(fh, epoch, false);
    pthread_mutex_unlock(&fh->mu);
}

int frame_hold_epoch_frames(struct frame_hold *fh, uint64_t epoch,
                            int (*fn)(void *opaque, const uint8_t *frame, size_t len),
                            void *opaque)
{
    int rc = 0;
    pthread_mutex_lock(&fh->mu);
    for (struct held_frame *h = fh->head; h && rc == 0; h = h->next)
        if (h->epoch == epoch)
            rc = fn(opaque, h->data, h->len);
    pthread_mutex_unlock(&fh->mu);
    return rc;
}

void frame_hold_set(struct frame_hold *fh, bool on)
{
    pthread_mutex_lock(&fh->mu);
    if (!on)
        release_locked(fh, UINT64_MAX);
    fh->holding = on;
    pthread_mutex_unlock(&fh->mu);
}

void frame_hold_set_epoch(struct frame_hold *fh, uint64_t epoch)
{
    __atomic_store_n(&fh->epoch, epoch, __ATOMIC_RELEASE);
}

void frame_hold_release(struct frame_hold *fh, uint64_t epoch)
{
    pthread_mutex_lock(&fh->mu);
    release_locked(fh, epoch);
    pthread_mutex_unlock(&fh->mu);
}

size_t frame_hold_frames(struct frame_hold *fh)
{
    pthread_mutex_lock(&fh->mu);
    size_t frames = fh->frames;
    pthread_mutex_unlock(&fh->mu);
    return frames;
}

void frame_hold_set_limit(struct frame_hold *fh, uint64_t limit)
{
    pthread_mutex_lock(&fh->mu);
    fh->limit = limit;
    pthread_mutex_unlock(&fh->mu);
}
