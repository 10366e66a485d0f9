#include "machine/vclock.h"

#include <time.h>

uint64_t vclock_host_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void vclock_init(struct vclock *c)
{
    c->paused = false;
    c->frozen_ns = 0;
    c->offset_ns = -(int64_t)vclock_host_ns();
}

uint64_t vclock_ns(const struct vclock *c)
{
    if (c->paused)
        return c->frozen_ns;
    return (uint64_t)((int64_t)vclock_host_ns() + c->offset_ns);
}

void vclock_pause(struct vclock *c)
{
    if (!c->paused) {
        c->frozen_ns = vclock_ns(c);
        c->paused = true;
    }
}

void vclock_resume(struct vclock *c)
{
    if (c->paused) {
        c->offset_ns = (int64_t)c->frozen_ns - (int64_t)vclock_host_ns();
        c->paused = false;
    }
}

void vclock_set_ns(struct vclock *c, uint64_t guest_ns)
{
    if (c->paused)
        c->frozen_ns = guest_ns;
    else
        c->offset_ns = (int64_t)guest_ns - (int64_t)vclock_host_ns();
}
