/* Pre-copy's convergence policy, as a pure function: given what the round
 * just finished measured, go for another round, stop and copy, throttle
 * the guest, or give up. No sockets, no clock, no machine: unit-tested on
 * made-up rounds (tests/unit/test_converge.c).
 *
 * The downtime target is a cap: the policy never stops for a final copy
 * predicted to take longer. When the rounds do not converge it escalates
 * in the order the user allows: auto-converge (throttle the vCPUs, gently
 * first, more while the guest dirties more than half of what the round
 * sent, as QEMU does), then post-copy (if allowed: --postcopy, or at once
 * after --postcopy-after rounds), then failure with the source still
 * running and a message saying what would have converged
 * (converge_explain). */
#ifndef FERRY_MIGRATE_CONVERGE_H
#define FERRY_MIGRATE_CONVERGE_H

#include <stdbool.h>
#include <stddef.h>
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
/* A round that put less than this on the wire (a tail of a few pages, a
 * PING) measures the round trip, not the link: the bandwidth of the last
 * round that sent more stands. */
#define CONVERGE_MIN_MEASURE_BYTES (1u << 20)
/* Auto-converge: the first throttle and each step after it (QEMU's
 * cpu-throttle-initial and -increment defaults), once the guest dirtied
 * more than half of what a round sent in two rounds in a row. */
#define CONVERGE_THROTTLE_INITIAL 20
#define CONVERGE_THROTTLE_STEP 10
#define CONVERGE_THROTTLE_MAX 99

struct converge_params {
    uint64_t max_downtime_ns;   /* the target pause */
    uint64_t ram_pages;         /* the guest's RAM */
    uint64_t page_size;
    uint64_t device_bytes;      /* an upper bound of the final device state */
    bool auto_converge;         /* may throttle the vCPUs */
    unsigned max_throttle;      /* percent of time the vCPUs may sleep, <= 99 */
    bool postcopy;              /* may switch to post-copy instead of failing */
    uint32_t postcopy_after;    /* switch after this many rounds (0: only instead of failing) */
};

/* What one round measured. */
struct round_stats {
    uint32_t round;             /* 1, 2, ... */
    uint64_t sent_pages;        /* pages the round sent */
    uint64_t wire_bytes;        /* bytes it put on the wire */
    uint64_t duration_ns;       /* start to the destination's applied (PONG) */
    uint64_t dirty_pages;       /* dirtied meanwhile: the next round's work */
    uint64_t stop_ns;           /* how long the vCPU loop took to stop for the
                                 * round's dirty-log harvest: what a pause
                                 * will take (a busy vCPU thread on a loaded
                                 * host answers late) */
};

/* Carried from round to round; zero-initialise before the first. */
struct converge_state {
    bool started;
    uint64_t prev_dirty;
    unsigned stalled, extra;
    uint64_t total_pages;       /* sent by all rounds so far */
    unsigned hot;               /* rounds in a row dirtying over half the sent bytes */
    unsigned throttle;          /* percent now asked of the vCPUs */
    double bandwidth;           /* the last one measured on enough bytes */
    uint64_t prev_stop_ns;
};

enum converge_action {
    CONVERGE_NEXT_ROUND,        /* (at decision.throttle) */
    CONVERGE_STOP_AND_COPY,     /* the predicted pause meets the cap */
    CONVERGE_FAIL,              /* cannot meet the cap: give up, the guest runs on here */
    CONVERGE_POSTCOPY,          /* switch to post-copy: the pause sends no pages */
};

struct converge_decision {
    enum converge_action action;
    bool converged;             /* the predicted pause meets the target */
    double bandwidth;           /* bytes/s measured this round */
    double dirty_rate;          /* pages/s dirtied this round */
    double predicted_ns;        /* the pause if it stopped now */
    unsigned throttle;          /* percent of time the vCPUs sleep from now on */
};

struct converge_decision converge_decide(const struct converge_params *p,
                                         struct converge_state *s,
                                         const struct round_stats *r);

/* After CONVERGE_FAIL: why, in figures (dirty rate, bandwidth, predicted
 * pause), and what would have converged: a larger cap, a faster link,
 * auto-converge. */
void converge_explain(const struct converge_params *p, const struct converge_state *s,
                      const struct converge_decision *d, char *buf, size_t size);

#endif
