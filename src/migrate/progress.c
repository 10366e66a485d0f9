/* Live progress of a migration within a round (see progress.h). */
#include "migrate/progress.h"

void progress_init(struct progress *p)
{
    *p = (struct progress){0};
    pthread_mutex_init(&p->lock, NULL);
}

void progress_destroy(struct progress *p)
{
    pthread_mutex_destroy(&p->lock);
}

void progress_round_begin(struct progress *p, uint32_t round, uint64_t pages, uint64_t now_ns)
{
    pthread_mutex_lock(&p->lock);
    p->bytes += p->round_bytes;
    p->round = round;
    p->round_pages = pages;
    p->round_sent = p->round_bytes = 0;
    if (!p->win_t[1]) {
        p->win_t[0] = p->win_t[1] = now_ns;
        p->win_bytes[0] = p->win_bytes[1] = p->bytes;
    }
    pthread_mutex_unlock(&p->lock);
}

void progress_pages(struct progress *p, uint64_t pages, uint64_t bytes, uint64_t now_ns)
{
    if (!p)
        return;
    pthread_mutex_lock(&p->lock);
    p->round_sent = pages;
    p->round_bytes = bytes;
    if (now_ns - p->win_t[1] >= PROGRESS_RATE_WINDOW_NS) {
        p->win_t[0] = p->win_t[1];
        p->win_bytes[0] = p->win_bytes[1];
        p->win_t[1] = now_ns;
        p->win_bytes[1] = p->bytes + bytes;
    }
    pthread_mutex_unlock(&p->lock);
}

void progress_snapshot(struct progress *p, uint64_t now_ns, struct progress_view *out)
{
    pthread_mutex_lock(&p->lock);
    uint64_t total = p->bytes + p->round_bytes;
    *out = (struct progress_view){p->round, p->round_pages, p->round_sent, 0, -1};
    /* From the older sample: a window of one to two periods, so a
     * record that just went out does not make the rate jump. */
    if (p->win_t[0] && now_ns > p->win_t[0])
        out->rate = (double)(total - p->win_bytes[0]) * 1e9 / (double)(now_ns - p->win_t[0]);
    if (out->rate > 0 && p->round_pages >= p->round_sent) {
        /* Bytes per page so far in this round (zero pages are nearly
         * free), a whole page before the first record. */
        double per_page = p->round_sent ? (double)p->round_bytes / (double)p->round_sent : 4096;
        out->eta_ns = (double)(p->round_pages - p->round_sent) * per_page / out->rate * 1e9;
    }
    pthread_mutex_unlock(&p->lock);
}
