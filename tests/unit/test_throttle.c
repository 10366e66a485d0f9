/* The auto-converge throttle's accounting (src/machine/throttle.c): the
 * sleep each slice costs at a given share, debts paid in pieces of at
 * least THROTTLE_MIN_SLEEP_NS, early wakeups, the clamp and the release;
 * and, with a real clock, that a runner honouring it runs its share. */
#include <stdio.h>
#include <time.h>

#include "machine/throttle.h"
#include "check.h"

#define MS 1000000ull

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* A runner that spins for slice_ns of its CPU time, then honours the
 * throttle as the hart threads do (charged in CPU time, waiting in wall
 * time), for total_ns of wall time; returns its CPU time over the wall
 * time (0..1). */
static double run_share(struct throttle *t, uint64_t slice_ns, uint64_t total_ns)
{
    struct throttle_debt d = {0};
    uint64_t start = now_ns(), cpu0 = throttle_cpu_ns();
    while (now_ns() - start < total_ns) {
        uint64_t wait = throttle_wait_ns(t, &d, now_ns());
        if (wait) {
            struct timespec ts = {(time_t)(wait / 1000000000ull), (long)(wait % 1000000000ull)};
            nanosleep(&ts, NULL);
            continue;
        }
        uint64_t c0 = throttle_cpu_ns();
        while (throttle_cpu_ns() - c0 < slice_ns)
            ;
        throttle_charge(t, &d, throttle_cpu_ns() - c0);
    }
    return (double)(throttle_cpu_ns() - cpu0) / (double)(now_ns() - start);
}

int main(void)
{
    struct throttle t = {0};
    struct throttle_debt d = {0};

    /* Unthrottled: running costs nothing. */
    throttle_charge(&t, &d, 5 * MS);
    CHECK(d.owed_ns == 0 && throttle_wait_ns(&t, &d, 100 * MS) == 0, "no throttle, no debt");

    /* 50 %: sleep as long as it ran, paid once it reaches 1 ms. */
    throttle_set(&t, 50);
    CHECK(throttle_get(&t) == 50, "set 50: got %u", throttle_get(&t));
    throttle_charge(&t, &d, MS / 2);
    CHECK(throttle_wait_ns(&t, &d, 0) == 0, "0.5 ms of debt is carried, not paid");
    throttle_charge(&t, &d, MS / 2);
    CHECK(throttle_wait_ns(&t, &d, 10 * MS) == MS, "1 ms of debt: wait 1 ms");
    /* Woken early (a device, a request): the rest of the same wait. */
    CHECK(throttle_wait_ns(&t, &d, 10 * MS + MS / 4) == 3 * MS / 4, "early wakeup: the rest");
    CHECK(throttle_wait_ns(&t, &d, 11 * MS) == 0, "paid at the end of the wait");
    CHECK(d.credit_ns == 0, "woken on time: no credit");
    CHECK(throttle_wait_ns(&t, &d, 11 * MS) == 0 && d.owed_ns == 0, "nothing owed after");

    /* Woken 0.3 ms late: the next 0.3 ms of debt is already paid. A stall
     * in the middle of a wait counts for at most THROTTLE_MAX_CREDIT_NS. */
    throttle_charge(&t, &d, 2 * MS);
    CHECK(throttle_wait_ns(&t, &d, 20 * MS) == 2 * MS, "2 ms of debt: wait 2 ms");
    CHECK(throttle_wait_ns(&t, &d, 22 * MS + 3 * MS / 10) == 0 && d.credit_ns == 3 * MS / 10,
          "woken late: credit %llu ns", (unsigned long long)d.credit_ns);
    throttle_charge(&t, &d, MS);
    CHECK(d.owed_ns == 7 * MS / 10 && d.credit_ns == 0, "credit deducted: owed %llu",
          (unsigned long long)d.owed_ns);
    throttle_charge(&t, &d, MS);
    throttle_wait_ns(&t, &d, 30 * MS);
    CHECK(throttle_wait_ns(&t, &d, 5000 * MS) == 0 && d.credit_ns == THROTTLE_MAX_CREDIT_NS,
          "a long stall: credit capped at %llu", (unsigned long long)d.credit_ns);
    d = (struct throttle_debt){0};

    /* 20 %: a quarter of the run time. 80 %: four times it. */
    throttle_set(&t, 20);
    throttle_charge(&t, &d, 4 * MS);
    CHECK(throttle_wait_ns(&t, &d, 0) == MS, "20 %%: 4 ms run -> 1 ms sleep");
    throttle_wait_ns(&t, &d, MS);
    throttle_set(&t, 80);
    throttle_charge(&t, &d, MS);
    CHECK(throttle_wait_ns(&t, &d, 0) == 4 * MS, "80 %%: 1 ms run -> 4 ms sleep");

    /* The release forgives all debt at once, even in the middle of a wait. */
    throttle_set(&t, 0);
    CHECK(throttle_wait_ns(&t, &d, MS) == 0, "released in the middle of a wait: run now");
    CHECK(d.owed_ns == 0 && d.until_ns == 0 && d.credit_ns == 0, "released: nothing owed");
    throttle_set(&t, 80);
    CHECK(throttle_wait_ns(&t, &d, 2 * MS) == 0, "throttled again: the old wait is not back");

    /* Clamped to 99 %: 1 ms run -> 99 ms sleep, never a division by zero. */
    throttle_set(&t, 100);
    CHECK(throttle_get(&t) == THROTTLE_MAX_PERCENT, "clamped: got %u", throttle_get(&t));
    throttle_charge(&t, &d, MS);
    CHECK(throttle_wait_ns(&t, &d, 0) == 99 * MS, "99 %%: 1 ms run -> 99 ms sleep");
    throttle_set(&t, 0);

    /* With real clocks: a runner of 0.1 ms slices honouring 50 % and 90 %
     * gets about half and a tenth of a core. The machine is loaded (the
     * runner may get less than it asks for), so the bounds are wide: what
     * they catch is a throttle that does nothing or stops the runner. */
    throttle_set(&t, 50);
    double share = run_share(&t, MS / 10, 200 * MS);
    CHECK(share > 0.15 && share < 0.7, "50 %%: ran %.2f of the time", share);
    throttle_set(&t, 90);
    share = run_share(&t, MS / 10, 300 * MS);
    CHECK(share > 0.02 && share < 0.3, "90 %%: ran %.2f of the time", share);

    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
