/* Replication's output commit for frames, as a filter in front of a frame
 * sink (the tap): while holding, every frame is copied into a FIFO tagged
 * with the current epoch instead of being sent; frame_hold_release(N)
 * sends the held frames of epochs <= N, in order, once the standby has
 * acknowledged N. Not holding, frames pass straight through. The device
 * (virtio-net) just hands its frames to the filter and knows nothing of
 * epochs.
 *
 * Held frames are capped (`limit` bytes): beyond it the newest frame is
 * dropped, with one log line per overflow (TCP retransmits it). All
 * functions are thread-safe; a frame passing straight through is sent
 * under the same lock as releases, so turning holding off (release
 * everything, then stop holding) can never let a newer frame overtake a
 * held one. Epoch numbers must not decrease. */
#ifndef FERRY_BACKEND_FRAME_HOLD_H
#define FERRY_BACKEND_FRAME_HOLD_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct held_frame;

struct frame_hold {
    /* The sink: sends one frame; false if it was lost. `released` says
     * whether it comes out of the FIFO (for the sink's error logging). */
    bool (*send)(void *opaque, const uint8_t *frame, size_t len, bool released);
    void *opaque;
    const char *name;             /* for log lines */

    pthread_mutex_t mu;           /* everything below; epoch is atomic */
    bool holding;
    uint64_t epoch;
    struct held_frame *head, *tail;
    size_t frames;
    uint64_t bytes, limit;
    bool drop_logged;             /* this overflow was logged */
};

void frame_hold_init(struct frame_hold *fh, bool (*send)(void *, const uint8_t *, size_t, bool),
                     void *opaque, const char *name, uint64_t limit);
/* Drops (and counts in the log line) whatever is still held. */
void frame_hold_destroy(struct frame_hold *fh);

/* One outgoing frame: sent now, or held. False if it was lost (the sink
 * refused it, or the FIFO is full). */
bool frame_hold_output(struct frame_hold *fh, const uint8_t *frame, size_t len);

void frame_hold_set(struct frame_hold *fh, bool on);
void frame_hold_set_epoch(struct frame_hold *fh, uint64_t epoch);
void frame_hold_release(struct frame_hold *fh, uint64_t epoch);
size_t frame_hold_frames(struct frame_hold *fh);
/* Calls fn for each held frame of exactly `epoch`, in order (a switchover
 * carries them to the host where the guest will run); stops at fn's
 * first error and returns it. */
int frame_hold_epoch_frames(struct frame_hold *fh, uint64_t epoch,
                            int (*fn)(void *opaque, const uint8_t *frame, size_t len),
                            void *opaque);
/* Forgets the held frames of epochs <= epoch without sending them (the
 * standby sends them). */
void frame_hold_drop(struct frame_hold *fh, uint64_t epoch);
void frame_hold_set_limit(struct frame_hold *fh, uint64_t limit);

#endif
