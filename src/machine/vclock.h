/* Guest time: host monotonic time plus an offset, frozen while paused, so a
 * paused or migrated guest sees its clock continue from where it stopped. */
#ifndef FERRY_MACHINE_VCLOCK_H
#define FERRY_MACHINE_VCLOCK_H

#include <stdbool.h>
#include <stdint.h>

struct vclock {
    int64_t offset_ns;   /* guest ns = host monotonic ns + offset_ns */
    bool paused;
    uint64_t frozen_ns;  /* guest ns while paused */
};

uint64_t vclock_host_ns(void);
void vclock_init(struct vclock *c);              /* guest time starts at 0, running */
uint64_t vclock_ns(const struct vclock *c);
void vclock_pause(struct vclock *c);
void vclock_resume(struct vclock *c);
void vclock_set_ns(struct vclock *c, uint64_t guest_ns); /* keeps paused/running */

/* mtime / `time` CSR value (TIMEBASE_HZ = 10 MHz) */
static inline uint64_t vclock_ticks(const struct vclock *c) { return vclock_ns(c) / 100; }
/* Guest ticks -> guest ns */
static inline uint64_t vclock_ticks_to_ns(uint64_t ticks) { return ticks * 100; }

#endif
