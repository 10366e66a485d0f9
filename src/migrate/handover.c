/* The end-of-stream exchanges (see handover.h). */
#include "migrate/handover.h"

#include "base/escape.h"
#include "machine/vclock.h"

int stream_expect(struct stream *s, uint32_t want, const struct peer *peer,
                  const uint8_t **body, size_t *len, struct error *err)
{
    for (;;) {
        uint32_t type;
        if (stream_get(s, &type, body, len, err) < 0)
            return error_prefix(err, "waiting for the %s", peer->name);
        if (type == want)
            return 0;
        if (type == REC_ERROR)
            /* Escaped and bounded: the text may carry terminal escapes. */
            return error_set(err, "%s: %s", peer->refused, peer_text(*body, *len).s);
        if (!(type & REC_OPTIONAL))
            return error_set(err, "%s sent unexpected record 0x%x (waiting for 0x%x)",
                             peer->name, type, want);
    }
}

static int handover_flush(struct stream *s, struct handover *h, struct error *err)
{
    return h->flush ? h->flush(h->opaque, s, err) : stream_flush(s, err);
}

int handover_wait_ready(struct stream *s, struct handover *h, struct error *err)
{
    const uint8_t *body;
    size_t len;
    for (;;) {
        if (stream_expect(s, h->ready_type, &h->peer, &body, &len, err) < 0)
            return -1;
        if (h->ready_type != REC_ACK)
            break;
        if (len == 8 && get_u64(body) == h->epoch)
            break;
        /* An older epoch's ACK: keep waiting for ours. */
    }
    h->t_ready = vclock_host_ns();
    h->ready_took_ns = h->ready_type == REC_READY && len >= 8 ? get_u64(body) : 0;
    return 0;
}

int handover_go(struct stream *s, struct handover *h, struct error *err)
{
    const uint8_t *body;
    size_t len;
    if (stream_put(s, REC_GO, NULL, 0, err) < 0 || handover_flush(s, h, err) < 0)
        return -1;
    h->t_go = vclock_host_ns();
    if (stream_expect(s, REC_RUNNING, &h->peer, &body, &len, err) < 0)
        return -1;
    h->t_running = vclock_host_ns();
    h->running_took_ns = len >= 8 ? get_u64(body) : 0;
    return 0;
}

int handover_await_go(struct stream *s, const struct peer *peer, struct error *err)
{
    const uint8_t *body;
    size_t len;
    return stream_expect(s, REC_GO, peer, &body, &len, err);
}

uint64_t handover_downtime_ns(const struct handover *h, uint64_t t_pause)
{
    if (!h->running_took_ns || h->t_go < t_pause || h->t_running < h->t_go)
        return 0;
    uint64_t rtt = h->t_running - h->t_go;
    rtt = rtt > h->running_took_ns ? rtt - h->running_took_ns : 0;
    return h->t_go - t_pause + rtt / 2 + h->running_took_ns;
}

const char *handover_bound_reason(uint64_t estimate, uint64_t handover)
{
    if (!estimate)
        return "the receiver reported no durations: pause to RUNNING heard back";
    if (estimate > handover)
        return "the estimate exceeded pause to RUNNING heard back (a late wakeup): that bounds it";
    return NULL;
}
