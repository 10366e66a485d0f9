/* The frame filter's switchover support (backend/frame_hold.h): the held
 * frames of one epoch can be read out in order (for the last checkpoint)
 * and dropped without being sent (the new host sends them). */
#include <stdio.h>
#include <string.h>

#include "backend/frame_hold.h"
#include "backend/output_gate.h"
#include "check.h"

static char sent[64];
static size_t nsent;

static bool sink(void *opaque, const uint8_t *frame, size_t len, bool released)
{
    (void)opaque;
    (void)released;
    if (nsent < sizeof sent && len)
        sent[nsent++] = (char)frame[0];
    return true;
}

static bool gate_is_open;
static bool gate(void) { return gate_is_open; }

static char got[64];
static size_t ngot;

static int collect(void *opaque, const uint8_t *frame, size_t len)
{
    (void)opaque;
    if (ngot < sizeof got && len)
        got[ngot++] = (char)frame[0];
    return 0;
}

static int refuse(void *opaque, const uint8_t *frame, size_t len)
{
    (void)opaque;
    (void)frame;
    (void)len;
    return -5;
}

int main(void)
{
    struct frame_hold fh;
    frame_hold_init(&fh, sink, NULL, "test", 1 << 20);
    frame_hold_set(&fh, true);
    frame_hold_set_epoch(&fh, 1);
    frame_hold_output(&fh, (const uint8_t *)"a", 1);
    frame_hold_output(&fh, (const uint8_t *)"b", 1);
    frame_hold_set_epoch(&fh, 2);
    frame_hold_output(&fh, (const uint8_t *)"c", 1);
    frame_hold_output(&fh, (const uint8_t *)"d", 1);
    frame_hold_set_epoch(&fh, 3);
    frame_hold_output(&fh, (const uint8_t *)"e", 1);
    CHECK(nsent == 0 && frame_hold_frames(&fh) == 5, "held: %zu sent, %zu held", nsent,
          frame_hold_frames(&fh));

    /* Exactly epoch 2's frames, in order; nothing sent or dropped. */
    CHECK(frame_hold_epoch_frames(&fh, 2, collect, NULL) == 0 && ngot == 2 &&
              memcmp(got, "cd", 2) == 0, "epoch 2 frames: %.*s", (int)ngot, got);
    CHECK(frame_hold_frames(&fh) == 5 && nsent == 0, "reading them changed the FIFO");
    CHECK(frame_hold_epoch_frames(&fh, 3, refuse, NULL) == -5, "the callback's error is returned");

    /* Epoch 1 commits as usual; epoch 2 is dropped unsent; 3 stays. */
    frame_hold_release(&fh, 1);
    CHECK(nsent == 2 && memcmp(sent, "ab", 2) == 0, "release 1 sent %.*s", (int)nsent, sent);
    frame_hold_drop(&fh, 2);
    CHECK(nsent == 2 && frame_hold_frames(&fh) == 1, "drop sent something or kept too much: "
          "%zu sent, %zu held", nsent, frame_hold_frames(&fh));
    frame_hold_output(&fh, (const uint8_t *)"f", 1);
    frame_hold_set(&fh, false);
    CHECK(nsent == 4 && memcmp(sent, "abef", 4) == 0, "after hold off: %.*s", (int)nsent, sent);

    /* A closed output gate (the arbiter's lease) releases nothing and lets
     * nothing pass; once open, the held frames go out in order. */
    nsent = 0;
    output_gate_set(gate);
    gate_is_open = false;
    frame_hold_set(&fh, true);
    frame_hold_set_epoch(&fh, 4);
    frame_hold_output(&fh, (const uint8_t *)"g", 1);
    frame_hold_output(&fh, (const uint8_t *)"h", 1);
    frame_hold_release(&fh, 4);
    CHECK(nsent == 0 && frame_hold_frames(&fh) == 2, "released through a closed gate: %zu sent",
          nsent);
    gate_is_open = true;
    frame_hold_release(&fh, 4);
    CHECK(nsent == 2 && memcmp(sent, "gh", 2) == 0, "after opening: %.*s", (int)nsent, sent);
    frame_hold_set(&fh, false);
    gate_is_open = false;
    CHECK(!frame_hold_output(&fh, (const uint8_t *)"i", 1) && nsent == 2,
          "a frame passed a closed gate");
    output_gate_set(NULL);
    CHECK(frame_hold_output(&fh, (const uint8_t *)"j", 1) && nsent == 3, "no gate: open");
    frame_hold_destroy(&fh);
    printf("%s: %d checks, %d failures\n", __FILE__, checks, failures);
    return failures ? 1 : 0;
}
