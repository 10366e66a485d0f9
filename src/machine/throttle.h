/* vCPU throttle for auto-converge: while a migration cannot keep up with
 * the guest's dirty rate, each hart runs only a fraction of wall time.
 *
 * One shared setting (the percentage of time the harts sleep) and, per
 * thread that runs a hart, a debt: every slice run adds the sleep it costs
 * (ran * p / (100 - p)), and the runner pays it off by waiting before its
 * next slice. The waiting is the runner's own interruptible wait (a hart
 * thread's timed park in vcpu.c, parked as for WFI), so a pause or a stop
 * never waits for a throttle sleep. Setting 0 forgives all debt: a hart
 * runs again at the end of the wait it is in (at most one slice's cost,
 * ~10 ms at 99 %). */
#ifndef FERRY_MACHINE_THROTTLE_H
#define FERRY_MACHINE_THROTTLE_H

#include <stdint.h>

/* Debts smaller than this are carried, not paid: a sleep has a cost of its
 * own (a wakeup, timer slack), so it is paid in pieces of at least 1 ms. */
#define THROTTLE_MIN_SLEEP_NS 1000000ull
#define THROTTLE_MAX_PERCENT 99u
/* A wait that ends late (a loaded host wakes the runner late) counts
 * toward the next debt, up to this much: the share holds on average, and
 * a long stall (a pause in the middle of a wait) does not buy a long run. */
#define THROTTLE_MAX_CREDIT_NS 10000000ull

struct throttle {
    unsigned percent;       /* 0..THROTTLE_MAX_PERCENT, atomic */
};

/* One runner's account (one hart thread's). */
struct throttle_debt {
    uint64_t owed_ns;       /* sleep not yet started */
    uint64_t until_ns;      /* paying: run again at this time (0: not paying) */
    uint64_t credit_ns;     /* overslept, deducted from the next debt */
};

/* Any thread: set or read the share of time the harts sleep (clamped). */
void throttle_set(struct throttle *t, unsigned percent);
unsigned throttle_get(const struct throttle *t);

/* The runner's CPU time (CLOCK_THREAD_CPUTIME_ID): what its harts ran is
 * measured in it, not in wall time, so a runner the host preempted in the
 * middle of a slice is not charged for the time it did not run (on a
 * loaded host that made 1 s guest stalls at 90 %). */
uint64_t throttle_cpu_ns(void);

/* The runner, after its harts ran ran_ns (of its CPU time). */
void throttle_charge(const struct throttle *t, struct throttle_debt *d, uint64_t ran_ns);

/* The runner, before it runs its harts: how long to wait first (0: run
 * now). Call again after waiting (a wait may end early); the debt is paid
 * when the time returned first has passed. */
uint64_t throttle_wait_ns(const struct throttle *t, struct throttle_debt *d, uint64_t now_ns);

#endif
