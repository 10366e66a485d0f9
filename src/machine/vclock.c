#include "machine/vclock.h"

#include <time.h>

uint64_t vclock_host_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Every hart reads the clock (the `time` CSR) on its own thread while the
 * main loop or a guest mtime write changes it: the fields are atomics.
 * Changes happen with the harts parked (pause, resume, load) or under the
 * device lock (mtime writes), so they never race with each other. */
#define LOAD(f) __atomic_load_n(&(f), __ATOMIC_ACQUIRE)
#define STORE(f, v) __atomic_store_n(&(f), (v), __ATOMIC_RELEASE)

void vclock_init(struct vclock *c)
{
    STORE(c->paused, false);
    STORE(c->frozen_ns, 0);
    STORE(c->offset_ns, -(int64_t)vclock_host_ns());
}

uint64_t vclock_ns(const struct vclock *c)
{
    if (LOAD(c->paused))
        return LOAD(c->frozen_ns);
    return (uint64_t)((int64_t)vclock_host_ns() + LOAD(c->offset_ns));
}

void vclock_pause(struct vclock *c)
{
    if (!LOAD(c->paused)) {
        STORE(c->frozen_ns, vclock_ns(c));
        STORE(c->paused, true);
    }
}

void vclock_resume(struct vclock *c)
{
    if (LOAD(c->paused)) {
        STORE(c->offset_ns, (int64_t)LOAD(c->frozen_ns) - (int64_t)vclock_host_ns());
        STORE(c->paused, false);
    }
}

void vclock_set_ns(struct vclock *c, uint64_t guest_ns)
{
    if (LOAD(c->paused))
        STORE(c->frozen_ns, guest_ns);
    else
        STORE(c->offset_ns, (int64_t)guest_ns - (int64_t)vclock_host_ns());
}
