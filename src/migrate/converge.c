/* Pre-copy's convergence policy (see converge.h). */
#include <stdio.h>

#include "migrate/converge.h"

/* Not converging: throttle harder if allowed and it still helps, give up
 * at the limits, or try another round. */
static enum converge_action converge_escalate(const struct converge_params *p,
                                              struct converge_state *s,
                                              const struct round_stats *r, bool first)
{
    /* The dirty set stopped shrinking (by less than a tenth, twice in a
     * row); the guest dirtied more than half of what the round sent. */
    bool stalled = !first && r->dirty_pages * 10 >= s->prev_dirty * 9;
    s->stalled = stalled ? s->stalled + 1 : 0;
    s->hot = (double)r->dirty_pages * (double)p->page_size * 2 > (double)r->wire_bytes
                 ? s->hot + 1 : 0;
    s->prev_dirty = r->dirty_pages;
    unsigned max_throttle = p->max_throttle < CONVERGE_THROTTLE_MAX ? p->max_throttle
                                                                     : CONVERGE_THROTTLE_MAX;
    bool can_throttle = p->auto_converge && s->throttle < max_throttle;
    bool gave_up = r->round >= 3 && s->stalled >= 2;
    if (r->round >= CONVERGE_MAX_ROUNDS)
        return CONVERGE_FAIL;
    /* Once throttling started, the volume limit waits for it to work. */
    if (!can_throttle && s->throttle == 0 && s->total_pages >= CONVERGE_MAX_RAM_MULTIPLE *
                                                                   p->ram_pages)
        return CONVERGE_FAIL;
    if (can_throttle && (gave_up || (s->throttle == 0 ? s->hot >= 2 : s->hot >= 1))) {
        /* Gently first, then a step per round while it is not enough;
         * the counters start over so the new share gets its rounds. */
        unsigned t = s->throttle ? s->throttle + CONVERGE_THROTTLE_STEP : CONVERGE_THROTTLE_INITIAL;
        s->throttle = t < max_throttle ? t : max_throttle;
        s->stalled = s->hot = 0;
        return CONVERGE_NEXT_ROUND;
    }
    if (gave_up && !can_throttle)
        return CONVERGE_FAIL;
    return CONVERGE_NEXT_ROUND;
}

struct converge_decision converge_decide(const struct converge_params *p,
                                         struct converge_state *s,
                                         const struct round_stats *r)
{
    struct converge_decision d = {.action = CONVERGE_NEXT_ROUND};
    double dur = r->duration_ns ? (double)r->duration_ns : 1.0;
    d.bandwidth = (double)r->wire_bytes * 1e9 / dur;
    if (r->wire_bytes < CONVERGE_MIN_MEASURE_BYTES && s->bandwidth > 0)
        d.bandwidth = s->bandwidth;
    else
        s->bandwidth = d.bandwidth;
    d.dirty_rate = (double)r->dirty_pages * 1e9 / dur;
    /* Stopping the vCPUs takes as long as the harvest took to stop them;
     * one slow answer (the loop's thread preempted once) is not the rule,
     * two in a row are. */
    uint64_t stop_ns = s->started && s->prev_stop_ns < r->stop_ns ? s->prev_stop_ns : r->stop_ns;
    s->prev_stop_ns = r->stop_ns;
    /* The pause if we stopped now: stopping, then the pages left plus the
     * device state at the bandwidth measured. */
    d.predicted_ns = d.bandwidth > 0 ? ((double)r->dirty_pages * (double)p->page_size +
                                        (double)p->device_bytes) / d.bandwidth * 1e9 +
                                           (double)stop_ns
                                     : 1e18;
    s->total_pages += r->sent_pages;
    bool first = !s->started;
    s->started = true;
    if (d.predicted_ns <= (double)p->max_downtime_ns * CONVERGE_DOWNTIME_SAFETY) {
        d.converged = true;
        /* Target met. Another round still pays while the dirty set shrinks
         * fast (a round over a quarter of the pages leaves about a quarter
         * as many behind) and is not already a tail: it costs a little
         * total time, the pause less. */
        bool shrinking = r->dirty_pages * 4 <= r->sent_pages;
        if (r->dirty_pages <= CONVERGE_TAIL_PAGES || !shrinking ||
            s->extra >= CONVERGE_MAX_EXTRA_ROUNDS || r->round >= CONVERGE_MAX_ROUNDS)
            d.action = CONVERGE_STOP_AND_COPY;
        else
            s->extra++;
        s->prev_dirty = r->dirty_pages;
        s->hot = 0;
        d.throttle = s->throttle;
        return d;
    }
    d.action = converge_escalate(p, s, r, first);
    /* Post-copy: after the rounds the user asked for, or as the last step
     * instead of giving up. Its pause sends no pages, so it meets the cap. */
    if ((p->postcopy_after && r->round >= p->postcopy_after) ||
        (p->postcopy && d.action == CONVERGE_FAIL))
        d.action = CONVERGE_POSTCOPY;
    d.throttle = s->throttle;
    return d;
}

void converge_explain(const struct converge_params *p, const struct converge_state *s,
                      const struct converge_decision *d, char *buf, size_t size)
{
    double dirty_mb = d->dirty_rate * (double)p->page_size / 1e6, bw_mb = d->bandwidth / 1e6;
    /* The cap that the last prediction meets with the policy's margin. */
    double cap_ms = d->predicted_ns / CONVERGE_DOWNTIME_SAFETY / 1e6;
    char how[160];
    if (!p->auto_converge)
        snprintf(how, sizeof how, "auto-converge (--auto-converge)");
    else
        snprintf(how, sizeof how, "a guest that dirties less (auto-converge reached %u %%)",
                 s->throttle);
    snprintf(buf, size,
             "pre-copy cannot meet the %g ms downtime cap: the guest dirties %.1f MB/s, the "
             "link carries %.1f MB/s, the final copy would take %.1f ms; it would converge with "
             "a cap of %.0f ms or more (--max-downtime), a link faster than %.0f MB/s, or %s",
             (double)p->max_downtime_ns / 1e6, dirty_mb, bw_mb, d->predicted_ns / 1e6,
             cap_ms + 0.5, 2 * dirty_mb > bw_mb ? 2 * dirty_mb : bw_mb * 2, how);
}
