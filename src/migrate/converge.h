/* Pre-copy's convergence policy, as a pure function: given what the round
 * just finished measured, go for another round or stop and copy. No
 * sockets, no clock, no machine: unit-tested on made-up rounds
 * (tests/unit/test_converge.c). */
#ifndef FERRY_MIGRATE_CONVERGE_H
#define FERRY_MIGRATE_CONVERGE_H

#include <stdbool.h>
#include <stdint.h>

/* Pre-copy gives up converging after this many rounds, or after sending
 * this many times the guest's RAM (the Xen anchors' limits). */
#define CONVERGE_MAX_ROUNDS 30
#define CONVERGE_MAX_RAM_MULTIPLE 3
/* Half the target: the send rate measured runs ahead of what the
 * destination has applied (socket buffers), and the stop itself costs a
 * pause and a round trip. */
#define CONVERGE_DOWNTIME_SAFETY 0.5
/* Once the target is met: at most this many more rounds, and none for a
 * dirty set this small (64 KiB: tens of microseconds on a LAN). */
#define CONVERGE_MAX_EXTRA_ROUNDS 3
#define CONVERGE_TAIL_PAGES 16

struct converge_params {
    uint64_t max_downtime_ns;   /* the target pause */
    uint64_t ram_pages;         /* the guest's RAM */
    uint64_t page_size;
    uint64_t device_bytes;      /* an upper bound of the final device state */
};

/* What one round measured. */
struct round_stats {
    uint32_t round;             /* 1, 2, ... */
    uint64_t sent_pages;        /* pages the round sent */
    uint64_t wire_bytes;        /* bytes it put on the wire */
    uint64_t duration_ns;       /* start to the destination's applied (PONG) */
    uint64_t dirty_pages;       /* dirtied meanwhile: the next round's work */
};

/* Carried from round to round; zero-initialise before the first. */
struct converge_state {
    bool started;
    uint64_t prev_dirty;
    unsigned stalled, extra;
    uint64_t total_pages;       /* sent by all rounds so far */
};

enum converge_action { CONVERGE_NEXT_ROUND, CONVERGE_STOP_AND_COPY };

struct converge_decision {
    enum converge_action action;
    bool converged;             /* the predicted pause meets the target */
    double bandwidth;           /* bytes/s measured this round */
    double dirty_rate;          /* pages/s dirtied this round */
    double predicted_ns;        /* the pause if it stopped now */
};

struct converge_decision converge_decide(const struct converge_params *p,
                                         struct converge_state *s,
                                         const struct round_stats *r);

#endif
