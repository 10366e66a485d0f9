/* The exchanges every stream ends with, in one place:
 *
 *  - stream_expect(): wait for one record type, turning an ERROR record
 *    into a message and refusing anything else mandatory;
 *  - the commit handshake that hands a paused guest to its new host,
 *    shared by migration and replication's switchover:
 *
 *      sender                                receiver
 *      ... final state, END       ------->   checks and loads it
 *                                 <-------   READY  (switchover: ACK of the
 *      commit point: from here the guest       last checkpoint)
 *      never runs here again unless the
 *      receiver surely does not run it
 *      GO                         ------->   resumes the guest
 *                                 <-------   RUNNING
 *
 * READY and RUNNING carry the receiver's own durations (u64 ns) so the
 * sender can measure downtime without a shared clock (empty from older
 * receivers and standbys: 0). */
#ifndef FERRY_MIGRATE_HANDOVER_H
#define FERRY_MIGRATE_HANDOVER_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"
#include "migrate/stream.h"

/* Who is at the other end, for messages. */
struct peer {
    const char *name;      /* "destination", "standby", "source" */
    const char *refused;   /* prefix for its ERROR text: "destination refused the stream" */
};

/* Reads records until one of type `want`; returns its body. Optional
 * records are skipped; ERROR becomes "<refused>: <text>"; another
 * mandatory record is an error naming it and the peer. */
int stream_expect(struct stream *s, uint32_t want, const struct peer *peer,
                  const uint8_t **body, size_t *len, struct error *err);

struct handover {
    struct peer peer;
    uint32_t ready_type;        /* REC_READY, or REC_ACK (switchover) */
    uint64_t epoch;             /* with REC_ACK: the epoch it must name */
    /* Sends what is buffered on the stream (default stream_flush): the
     * replication primary sends under its heartbeat lock. */
    int (*flush)(void *opaque, struct stream *s, struct error *err);
    void *opaque;
    /* Filled in: vclock_host_ns times and the receiver's durations. */
    uint64_t t_ready, t_go, t_running;
    uint64_t ready_took_ns, running_took_ns;
};

/* Waits for READY (or the ACK of h->epoch, skipping older ACKs). */
int handover_wait_ready(struct stream *s, struct handover *h, struct error *err);
/* After the commit point: sends GO and waits for RUNNING. A failure here
 * leaves the handover uncertain: the receiver may be running the guest. */
int handover_go(struct stream *s, struct handover *h, struct error *err);

/* Downtime (pause to the receiver resuming the guest) from GO's round
 * trip: pause to GO sent (our clock), half of GO -> RUNNING less the
 * receiver's own work, and the receiver's GO -> resumed. 0 when the
 * receiver reported no duration. */
uint64_t handover_downtime_ns(const struct handover *h, uint64_t t_pause);
/* NULL when `estimate` is a measured downtime to report; otherwise why the
 * handover time (pause to RUNNING heard, `handover` ns) is reported instead,
 * as an upper bound. */
const char *handover_bound_reason(uint64_t estimate, uint64_t handover);

/* Receiving side of a migration: waits for GO after READY was sent. */
int handover_await_go(struct stream *s, const struct peer *peer, struct error *err);

#endif
