/* Live progress of a migration within a round, for a display that updates
 * several times a second: the migration thread reports pages as each
 * record goes out, a status reader takes a snapshot with the current rate
 * (over the last quarter to half second) and the time left in the round. */
#ifndef FERRY_MIGRATE_PROGRESS_H
#define FERRY_MIGRATE_PROGRESS_H

#include <pthread.h>
#include <stdint.h>

/* The rate is measured over a window that starts between one and two of
 * these ago. */
#define PROGRESS_RATE_WINDOW_NS 250000000ull

struct progress {
    pthread_mutex_t lock;
    uint32_t round;             /* 0: none yet */
    uint64_t round_pages;       /* pages the round sends */
    uint64_t round_sent;        /* of them, sent */
    uint64_t round_bytes;       /* bytes the round put on the wire so far */
    uint64_t bytes;             /* bytes of all rounds */
    uint64_t win_t[2], win_bytes[2];    /* samples: [0] older, [1] newer */
};

struct progress_view {
    uint32_t round;
    uint64_t round_pages, round_sent;
    double rate;                /* bytes/s over the last window */
    double eta_ns;              /* to the end of the round at that rate, -1: unknown */
};

void progress_init(struct progress *p);
void progress_destroy(struct progress *p);
/* The migration thread: a round of `pages` pages starts at time now_ns. */
void progress_round_begin(struct progress *p, uint32_t round, uint64_t pages, uint64_t now_ns);
/* The migration thread, after each record: the round has sent `pages`
 * pages in `bytes` bytes so far. NULL p: nothing to report. */
void progress_pages(struct progress *p, uint64_t pages, uint64_t bytes, uint64_t now_ns);
/* Any thread. */
void progress_snapshot(struct progress *p, uint64_t now_ns, struct progress_view *out);

#endif
