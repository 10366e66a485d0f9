/* Pre-copy's convergence policy on made-up rounds: no sockets, no guest. */
#include <stdio.h>

#include "migrate/converge.h"

static int failures, checks;
#define CHECK(cond, ...)                                   \
    do {                                                   \
        checks++;                                          \
        if (!(cond)) {                                     \
            failures++;                                    \
            printf("FAIL %s:%d: ", __FILE__, __LINE__);    \
            printf(__VA_ARGS__);                           \
            printf("\n");                                  \
        }                                                  \
    } while (0)

#define MS 1000000ull
#define PAGE 4096ull
/* 1 GiB guest, 5 ms target, 64 KiB of device state. */
static const struct converge_params params = {5 * MS, 262144, PAGE, 65536};

/* A round that sent `sent` pages at `mb_s` MB/s and left `dirty` behind. */
static struct round_stats round_of(uint32_t n, uint64_t sent, uint64_t dirty, double mb_s)
{
    uint64_t bytes = sent * PAGE;
    return (struct round_stats){n, sent, bytes, (uint64_t)((double)bytes / (mb_s * 1e6) * 1e9),
                                dirty};
}

/* Runs rounds from a list until the policy stops; returns the round it
 * stopped after (0: never) and the last decision. */
static uint32_t run(const struct round_stats *rounds, unsigned n, struct converge_decision *last)
{
    struct converge_state s = {0};
    for (unsigned i = 0; i < n; i++) {
        *last = converge_decide(&params, &s, &rounds[i]);
        if (last->action == CONVERGE_STOP_AND_COPY)
            return rounds[i].round;
    }
    return 0;
}

int main(void)
{
    struct converge_decision d;
    struct converge_state s;

    /* An idle guest: the first round leaves a tail; stop at once. */
    struct round_stats idle[] = {round_of(1, 262144, 10, 1000)};
    CHECK(run(idle, 1, &d) == 1 && d.converged, "idle guest: one round, converged");
    CHECK(d.bandwidth > 0.99e9 && d.bandwidth < 1.01e9, "bandwidth measured: %.0f", d.bandwidth);

    /* The target is met after round 1 but the dirty set shrinks fast: up
     * to three extra rounds, each a quarter of the one before. */
    struct round_stats shrink[] = {
        round_of(1, 262144, 1000, 1000), round_of(2, 1000, 200, 1000),
        round_of(3, 200, 40, 1000), round_of(4, 40, 20, 1000), round_of(5, 20, 10, 1000),
    };
    CHECK(run(shrink, 5, &d) == 4 && d.converged,
          "shrinking: extra rounds until the set stops shrinking by 4x");
    /* With a 500 ms target everything converges: the extra rounds stop at
     * three although the set keeps shrinking fast. */
    const struct converge_params lax = {500 * MS, 262144, PAGE, 65536};
    struct round_stats keep_shrinking[] = {
        round_of(1, 262144, 60000, 1000), round_of(2, 60000, 15000, 1000),
        round_of(3, 15000, 3700, 1000), round_of(4, 3700, 900, 1000), round_of(5, 900, 220, 1000),
    };
    s = (struct converge_state){0};
    uint32_t stop_round = 0;
    for (unsigned i = 0; i < 5 && !stop_round; i++) {
        d = converge_decide(&lax, &s, &keep_shrinking[i]);
        CHECK(d.converged, "round %u converged", i + 1);
        if (d.action == CONVERGE_STOP_AND_COPY)
            stop_round = i + 1;
    }
    CHECK(stop_round == 4, "at most three extra rounds (stopped after %u)", stop_round);

    /* Predicted pause: 1000 pages + 64 KiB at 100 MB/s is ~41.6 ms: over
     * half the 5 ms target, so not converged. */
    struct round_stats slow[] = {round_of(1, 262144, 1000, 100)};
    s = (struct converge_state){0};
    d = converge_decide(&params, &s, &slow[0]);
    CHECK(!d.converged && d.action == CONVERGE_NEXT_ROUND, "slow link: another round");
    CHECK(d.predicted_ns > 41e6 && d.predicted_ns < 42.5e6, "predicted %.0f ns", d.predicted_ns);

    /* A guest dirtying as fast as the link: the dirty set stops shrinking;
     * stop at round 3 (stalled twice), not converged. */
    struct round_stats stuck[] = {
        round_of(1, 262144, 50000, 100), round_of(2, 50000, 48000, 100),
        round_of(3, 48000, 47000, 100), round_of(4, 47000, 46000, 100),
    };
    CHECK(run(stuck, 4, &d) == 3 && !d.converged, "stalled dirty set: stop at round 3");

    /* Still shrinking, by a little more than a tenth each round, at a slow
     * link: keep going until the volume limit (3x RAM). */
    struct round_stats vol[40];
    uint64_t dirty = 200000;
    for (unsigned i = 0; i < 40; i++) {
        uint64_t next = dirty * 85 / 100;
        vol[i] = round_of(i + 1, i ? dirty : 262144, next, 10);
        dirty = next;
    }
    uint32_t stopped = run(vol, 40, &d);
    uint64_t sent = 0;
    for (uint32_t i = 0; i < stopped; i++)
        sent += vol[i].sent_pages;
    CHECK(stopped > 3 && sent >= 3 * params.ram_pages && sent - vol[stopped - 1].sent_pages <
          3 * params.ram_pages, "volume limit: stopped at round %u after %llu pages", stopped,
          (unsigned long long)sent);

    /* Never more than the round limit. */
    struct round_stats many[40];
    for (unsigned i = 0; i < 40; i++)
        many[i] = round_of(i + 1, 100, i % 2 ? 1000 : 500, 0.5); /* tiny, alternating */
    CHECK(run(many, 40, &d) == CONVERGE_MAX_ROUNDS, "round limit");

    /* A round that took no measurable time does not divide by zero. */
    struct round_stats instant = {1, 0, 0, 0, 0};
    s = (struct converge_state){0};
    d = converge_decide(&params, &s, &instant);
    CHECK(d.action == CONVERGE_NEXT_ROUND || d.action == CONVERGE_STOP_AND_COPY, "no crash");

    printf("%s: %d checks, %d failures\n", __FILE__, checks, failures);
    return failures ? 1 : 0;
}
