/* Pre-copy's convergence policy (see converge.h). */
#include "migrate/converge.h"

struct converge_decision converge_decide(const struct converge_params *p,
                                         struct converge_state *s,
                                         const struct round_stats *r)
{
    struct converge_decision d = {.action = CONVERGE_NEXT_ROUND};
    double dur = r->duration_ns ? (double)r->duration_ns : 1.0;
    d.bandwidth = (double)r->wire_bytes * 1e9 / dur;
    d.dirty_rate = (double)r->dirty_pages * 1e9 / dur;
    /* The pause if we stopped now: the pages left plus the device state at
     * the bandwidth just measured. */
    d.predicted_ns = d.bandwidth > 0 ? ((double)r->dirty_pages * (double)p->page_size +
                                        (double)p->device_bytes) / d.bandwidth * 1e9
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
        return d;
    }
    /* Not converging: the dirty set stopped shrinking (by less than a
     * tenth, twice in a row), or the limits of rounds and volume were
     * reached. */
    bool stalled = !first && r->dirty_pages * 10 >= s->prev_dirty * 9;
    s->stalled = stalled ? s->stalled + 1 : 0;
    s->prev_dirty = r->dirty_pages;
    if (r->round >= CONVERGE_MAX_ROUNDS ||
        s->total_pages >= CONVERGE_MAX_RAM_MULTIPLE * p->ram_pages ||
        (r->round >= 3 && s->stalled >= 2))
        d.action = CONVERGE_STOP_AND_COPY;
    return d;
}
