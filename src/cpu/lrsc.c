/* LR/SC reservations published across harts (lrsc.h says why and how). */
#include "cpu/lrsc.h"

static unsigned lrsc_slot(const struct hart *h)
{
    return h->hartid % LRSC_MAX_HARTS;
}

/* Clears slot i if it still holds g; whoever takes a slot from non-zero
 * to zero (a breaker here, the owner in lrsc_release/drop) counts it out. */
static void lrsc_break_slot(struct lrsc_set *s, unsigned i, uintptr_t g)
{
    uintptr_t cur = g;
    if (__atomic_compare_exchange_n(&s->granule[i], &cur, 0, false, __ATOMIC_SEQ_CST,
                                    __ATOMIC_RELAXED))
        __atomic_fetch_sub(&s->live, 1, __ATOMIC_SEQ_CST);
}

void lrsc_break_others(struct hart *h, const void *host, unsigned size)
{
    struct lrsc_set *s = h->lrsc;
    uintptr_t first = lrsc_granule_of(host);
    uintptr_t last = lrsc_granule_of((const uint8_t *)host + (size ? size - 1 : 0));
    unsigned me = lrsc_slot(h);
    for (unsigned i = 0; i < LRSC_MAX_HARTS; i++) {
        if (i == me)
            continue; /* a hart's own stores need not break its reservation */
        uintptr_t g = __atomic_load_n(&s->granule[i], __ATOMIC_SEQ_CST);
        if (g && g >= first && g <= last)
            lrsc_break_slot(s, i, g);
    }
}

void lrsc_reserve(struct hart *h, const void *host)
{
    struct lrsc_set *s = h->lrsc;
    uintptr_t old = __atomic_exchange_n(&s->granule[lrsc_slot(h)], lrsc_granule_of(host),
                                        __ATOMIC_SEQ_CST);
    if (!old)
        __atomic_fetch_add(&s->live, 1, __ATOMIC_SEQ_CST);
}

bool lrsc_release(struct hart *h, const void *host)
{
    struct lrsc_set *s = h->lrsc;
    uintptr_t old = __atomic_exchange_n(&s->granule[lrsc_slot(h)], 0, __ATOMIC_SEQ_CST);
    if (!old)
        return false; /* broken by another hart's store, or never taken */
    __atomic_fetch_sub(&s->live, 1, __ATOMIC_SEQ_CST);
    return old == lrsc_granule_of(host);
}

void lrsc_drop(struct hart *h)
{
    /* Only this hart sets its slot, so a zero read here stays zero. */
    if (__atomic_load_n(&h->lrsc->granule[lrsc_slot(h)], __ATOMIC_RELAXED))
        (void)lrsc_release(h, 0);
}
