/* A migration's in-round progress (src/migrate/progress.c) on made-up
 * times: pages of the round, the rate over the last quarter to half
 * second, the time left in the round, across rounds. */
#include <stdio.h>

#include "migrate/progress.h"
#include "check.h"

#define MS 1000000ull
#define NEAR(a, b) ((a) > (b) * 0.99 && (a) < (b) * 1.01)

int main(void)
{
    struct progress p;
    struct progress_view v;
    progress_init(&p);
    progress_snapshot(&p, 0, &v);
    CHECK(v.round == 0 && v.rate == 0 && v.eta_ns < 0, "before the first round: nothing");

    /* Round 1: 10000 pages; a 512-page record (2 MiB) every 62.5 ms is
     * 32 MiB/s. */
    uint64_t t = 1000 * MS;
    progress_round_begin(&p, 1, 10000, t);
    progress_snapshot(&p, t, &v);
    CHECK(v.round == 1 && v.round_pages == 10000 && v.round_sent == 0, "round 1 begins");
    uint64_t bytes = 0, pages = 0;
    for (int i = 0; i < 10; i++) {
        t += 62500000ull;
        pages += 512;
        bytes += 512 * 4096;
        progress_pages(&p, pages, bytes, t);
    }
    progress_snapshot(&p, t, &v);
    double want = 512.0 * 4096 / 0.0625;
    CHECK(v.round_sent == 5120, "sent %llu", (unsigned long long)v.round_sent);
    CHECK(NEAR(v.rate, want), "rate %.0f, want %.0f", v.rate, want);
    /* 4880 pages left at 4096 bytes each at that rate. */
    double eta = 4880.0 * 4096 / want * 1e9;
    CHECK(NEAR(v.eta_ns, eta), "eta %.0f ns, want %.0f", v.eta_ns, eta);

    /* Nothing sent for a second (a paced link, a stall): the rate decays
     * and the time left grows, instead of standing still. */
    progress_snapshot(&p, t + 1000 * MS, &v);
    CHECK(v.rate < want / 2 && v.eta_ns > eta * 2, "stalled: rate %.0f, eta %.0f", v.rate,
          v.eta_ns);

    /* Zero pages cost nearly nothing: the time left is from the bytes per
     * page seen so far in the round. */
    progress_round_begin(&p, 2, 2000, t);
    for (int i = 1; i <= 8; i++)
        progress_pages(&p, 100ull * i, 100ull * i * 1024, t + (uint64_t)i * 100 * MS);
    progress_snapshot(&p, t + 800 * MS, &v);
    CHECK(v.round == 2 && v.round_pages == 2000 && v.round_sent == 800, "round 2: %u %llu/%llu",
          v.round, (unsigned long long)v.round_sent, (unsigned long long)v.round_pages);
    CHECK(v.rate > 0 && NEAR(v.eta_ns, 1200.0 * 1024 / v.rate * 1e9), "eta from 1 KiB a page: %.0f",
          v.eta_ns);

    progress_destroy(&p);
    printf("%s: %d checks, %d failures\n", __FILE__, checks, failures);
    return failures ? 1 : 0;
}
