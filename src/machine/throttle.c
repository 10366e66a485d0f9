/* vCPU throttle for auto-converge (see throttle.h). */
#include "machine/throttle.h"

#include <time.h>

uint64_t throttle_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void throttle_set(struct throttle *t, unsigned percent)
{
    if (percent > THROTTLE_MAX_PERCENT)
        percent = THROTTLE_MAX_PERCENT;
    __atomic_store_n(&t->percent, percent, __ATOMIC_RELEASE);
}

unsigned throttle_get(const struct throttle *t)
{
    return __atomic_load_n(&t->percent, __ATOMIC_ACQUIRE);
}

void throttle_charge(const struct throttle *t, struct throttle_debt *d, uint64_t ran_ns)
{
    unsigned p = throttle_get(t);
    if (p == 0) {
        d->owed_ns = 0;
        return;
    }
    /* Sleeping s after running r gives a run share of r / (r + s); for a
     * sleep share p: s = r * p / (100 - p). A slice is ~0.1 ms, so no
     * overflow: even 99 % makes 99 times it. */
    uint64_t cost = ran_ns * p / (100 - p);
    uint64_t paid = cost < d->credit_ns ? cost : d->credit_ns;
    d->credit_ns -= paid;
    d->owed_ns += cost - paid;
}

uint64_t throttle_wait_ns(const struct throttle *t, struct throttle_debt *d, uint64_t now_ns)
{
    if (throttle_get(t) == 0) {
        /* Released: no one waits out a sleep the migration no longer wants. */
        *d = (struct throttle_debt){0};
        return 0;
    }
    if (d->until_ns == 0) {
        if (d->owed_ns < THROTTLE_MIN_SLEEP_NS)
            return 0;
        d->until_ns = now_ns + d->owed_ns;
        d->owed_ns = 0;
    }
    if (now_ns >= d->until_ns) {
        uint64_t late = now_ns - d->until_ns;
        d->credit_ns = late < THROTTLE_MAX_CREDIT_NS ? late : THROTTLE_MAX_CREDIT_NS;
        d->until_ns = 0;
        return 0;
    }
    return d->until_ns - now_ns;
}
