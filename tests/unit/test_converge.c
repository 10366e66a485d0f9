/* Pre-copy's convergence policy on made-up rounds: no sockets, no guest. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "migrate/converge.h"
#include "check.h"

#define MS 1000000ull
#define PAGE 4096ull
/* 1 GiB guest, 5 ms target, 64 KiB of device state. */
static const struct converge_params params = {5 * MS, 262144, PAGE, 65536, false, 0, false, 0};

/* A round that sent `sent` pages at `mb_s` MB/s and left `dirty` behind. */
static struct round_stats round_of(uint32_t n, uint64_t sent, uint64_t dirty, double mb_s)
{
    uint64_t bytes = sent * PAGE;
    return (struct round_stats){n, sent, bytes, (uint64_t)((double)bytes / (mb_s * 1e6) * 1e9),
                                dirty, 0};
}

/* Runs rounds from a list until the policy stops; returns the round it
 * stopped after (0: never) and the last decision. */
static uint32_t run(const struct round_stats *rounds, unsigned n, struct converge_decision *last)
{
    struct converge_state s = {0};
    for (unsigned i = 0; i < n; i++) {
        *last = converge_decide(&params, &s, &rounds[i]);
        if (last->action != CONVERGE_NEXT_ROUND)
            return rounds[i].round;
    }
    return 0;
}

/* A guest that would dirty `dirty_mb_s` unthrottled over a link of
 * `link_mb_s`, whose working set is `ws` pages: each round sends what the
 * one before left, and dirties what the guest's share of the time writes. */
static struct round_stats guest_round(uint32_t n, uint64_t sent, double dirty_mb_s,
                                      double link_mb_s, uint64_t ws, unsigned throttle)
{
    double secs = (double)sent * PAGE / (link_mb_s * 1e6);
    double dirtied = dirty_mb_s * 1e6 * (1 - throttle / 100.0) * secs / PAGE;
    uint64_t dirty = dirtied > (double)ws ? ws : (uint64_t)dirtied;
    return round_of(n, sent, dirty, link_mb_s);
}

/* Auto-converge: a guest dirtying 64 MB/s over a 32 MB/s link. The
 * throttle starts at 20 % after two hot rounds, steps by 10 % per round
 * while still hot, and the migration stops and copies within the cap. */
static void test_auto_converge(void)
{
    struct converge_params p = params;
    p.ram_pages = 32768; /* 128 MiB */
    p.auto_converge = true;
    p.max_throttle = 99;
    struct converge_state s = {0};
    struct converge_decision d = {0};
    uint64_t sent = p.ram_pages;
    unsigned prev = 0, first_round = 0, last_round = 0;
    bool monotonic = true;
    for (uint32_t n = 1; n <= CONVERGE_MAX_ROUNDS; n++) {
        struct round_stats r = guest_round(n, sent, 64, 32, 16384, s.throttle);
        d = converge_decide(&p, &s, &r);
        if (d.throttle && !first_round)
            first_round = n;
        monotonic &= d.throttle >= prev && d.throttle - prev <= CONVERGE_THROTTLE_INITIAL;
        prev = d.throttle;
        last_round = n;
        if (d.action != CONVERGE_NEXT_ROUND)
            break;
        sent = r.dirty_pages ? r.dirty_pages : 1;
    }
    /* Round 1 (all 128 MiB) dirtied the 64 MiB working set: exactly half,
     * not hot. Rounds 2 and 3 dirtied all they sent: hot twice. */
    CHECK(first_round == 3, "throttled first after round %u", first_round);
    CHECK(monotonic, "throttle rises gently, never falls");
    CHECK(d.action == CONVERGE_STOP_AND_COPY && d.converged && d.throttle > 50,
          "converged at %u %% after %u rounds (action %d)", d.throttle, last_round, d.action);
    CHECK(d.predicted_ns <= 5 * MS * CONVERGE_DOWNTIME_SAFETY, "within the cap: %.0f ns",
          d.predicted_ns);

    /* A guest too fast even at the highest throttle allowed (50 %): the
     * throttle stops at 50 %, then the policy gives up. */
    p.max_throttle = 50;
    s = (struct converge_state){0};
    sent = p.ram_pages;
    unsigned highest = 0;
    for (uint32_t n = 1; n <= CONVERGE_MAX_ROUNDS; n++) {
        struct round_stats r = guest_round(n, sent, 1000, 32, 16384, s.throttle);
        d = converge_decide(&p, &s, &r);
        highest = d.throttle > highest ? d.throttle : highest;
        if (d.action != CONVERGE_NEXT_ROUND)
            break;
        sent = r.dirty_pages;
    }
    CHECK(highest == 50 && d.action == CONVERGE_FAIL, "gave up at the max throttle (%u %%, "
          "action %d)", highest, d.action);

    /* A max of 100 % is clamped to 99: the guest always runs a little. */
    p.max_throttle = 100;
    s = (struct converge_state){0};
    for (uint32_t n = 1; n <= CONVERGE_MAX_ROUNDS; n++) {
        struct round_stats r = guest_round(n, n == 1 ? p.ram_pages : 16384, 1e6, 32, 16384,
                                           s.throttle);
        d = converge_decide(&p, &s, &r);
        if (d.action != CONVERGE_NEXT_ROUND)
            break;
    }
    CHECK(s.throttle == CONVERGE_THROTTLE_MAX && d.action == CONVERGE_FAIL,
          "clamped to 99 %% (got %u), then failed", s.throttle);
}

/* Whatever the rounds, the policy never stops for a copy predicted over
 * the cap (with its margin), and stops within the round limit. */
static void test_cap_is_a_cap(void)
{
    srand(7);
    int violations = 0, endless = 0;
    for (int trial = 0; trial < 2000; trial++) {
        struct converge_params p = params;
        p.auto_converge = trial % 2;
        p.max_throttle = 20 + (unsigned)(rand() % 80);
        struct converge_state s = {0};
        struct converge_decision d = {0};
        uint32_t n;
        for (n = 1; n <= CONVERGE_MAX_ROUNDS + 5; n++) {
            uint64_t sent = 1 + (uint64_t)(rand() % 262144);
            struct round_stats r = round_of(n, sent, (uint64_t)(rand() % 100000) >>
                                            (rand() % 16), 1 + rand() % 2000);
            d = converge_decide(&p, &s, &r);
            if (d.action == CONVERGE_STOP_AND_COPY &&
                d.predicted_ns > (double)p.max_downtime_ns * CONVERGE_DOWNTIME_SAFETY)
                violations++;
            if (d.action != CONVERGE_NEXT_ROUND)
                break;
        }
        endless += n > CONVERGE_MAX_ROUNDS;
    }
    CHECK(violations == 0, "%d stops over the cap", violations);
    CHECK(endless == 0, "%d runs past the round limit", endless);
}

/* Post-copy: --postcopy-after N switches after round N whatever the
 * rounds say (unless they converged first); --postcopy is the step after
 * auto-converge instead of failing. */
static void test_postcopy(void)
{
    struct converge_params p = params;
    p.ram_pages = 32768;
    p.postcopy_after = 2;
    struct converge_state s = {0};
    struct converge_decision d = {0};
    uint32_t n, switched = 0;
    for (n = 1; n <= CONVERGE_MAX_ROUNDS; n++) {
        struct round_stats r = guest_round(n, n == 1 ? p.ram_pages : 16384, 1000, 32, 16384, 0);
        d = converge_decide(&p, &s, &r);
        if (d.action != CONVERGE_NEXT_ROUND) {
            switched = n;
            break;
        }
    }
    CHECK(switched == 2 && d.action == CONVERGE_POSTCOPY, "post-copy after round %u (action %d)",
          switched, d.action);
    /* An idle guest converges in round 1: no post-copy needed. */
    s = (struct converge_state){0};
    struct round_stats idle = round_of(1, 32768, 3, 1000);
    d = converge_decide(&p, &s, &idle);
    CHECK(d.action == CONVERGE_STOP_AND_COPY, "idle guest stops and copies (action %d)", d.action);

    /* --postcopy with auto-converge up to 50 %: throttle first, then post-copy
     * where it would have failed. */
    p.postcopy_after = 0;
    p.postcopy = true;
    p.auto_converge = true;
    p.max_throttle = 50;
    s = (struct converge_state){0};
    uint64_t sent = p.ram_pages;
    unsigned highest = 0;
    for (n = 1; n <= CONVERGE_MAX_ROUNDS; n++) {
        struct round_stats r = guest_round(n, sent, 1000, 32, 16384, s.throttle);
        d = converge_decide(&p, &s, &r);
        highest = d.throttle > highest ? d.throttle : highest;
        if (d.action != CONVERGE_NEXT_ROUND)
            break;
        sent = r.dirty_pages;
    }
    CHECK(highest == 50 && d.action == CONVERGE_POSTCOPY,
          "post-copy after auto-converge reached %u %% (action %d)", highest, d.action);
    /* Without auto-converge: post-copy where it would fail. */
    p.auto_converge = false;
    s = (struct converge_state){0};
    for (n = 1; n <= CONVERGE_MAX_ROUNDS; n++) {
        struct round_stats r = guest_round(n, n == 1 ? p.ram_pages : 16384, 1000, 32, 16384, 0);
        d = converge_decide(&p, &s, &r);
        if (d.action != CONVERGE_NEXT_ROUND)
            break;
    }
    CHECK(d.action == CONVERGE_POSTCOPY && d.throttle == 0, "post-copy, unthrottled (action %d)",
          d.action);
}

static void test_explain(void)
{
    struct converge_params p = params;
    struct converge_state s = {0};
    struct round_stats r = round_of(4, 16384, 16000, 32);
    struct converge_decision d = converge_decide(&p, &s, &r);
    char msg[512];
    converge_explain(&p, &s, &d, msg, sizeof msg);
    /* 16000 pages in 16384 pages' time at 32 MB/s: 31.2 MB/s dirtied. */
    CHECK(strstr(msg, "31.2 MB/s") && strstr(msg, "32.0 MB/s") && strstr(msg, "5 ms"),
          "figures: %s", msg);
    CHECK(strstr(msg, "--max-downtime") && strstr(msg, "link faster than 62 MB/s") &&
          strstr(msg, "--auto-converge"), "remedies: %s", msg);
    p.auto_converge = true;
    s.throttle = 99;
    converge_explain(&p, &s, &d, msg, sizeof msg);
    CHECK(strstr(msg, "auto-converge reached 99 %") && !strstr(msg, "--auto-converge"),
          "auto-converge tried: %s", msg);
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
    const struct converge_params lax = {500 * MS, 262144, PAGE, 65536, false, 0, false, 0};
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

    /* A guest dirtying as fast as the link, auto-converge off: the dirty
     * set stops shrinking; give up at round 3 (stalled twice) rather than
     * stop for a copy over the cap. */
    struct round_stats stuck[] = {
        round_of(1, 262144, 50000, 100), round_of(2, 50000, 48000, 100),
        round_of(3, 48000, 47000, 100), round_of(4, 47000, 46000, 100),
    };
    CHECK(run(stuck, 4, &d) == 3 && !d.converged && d.action == CONVERGE_FAIL && d.throttle == 0,
          "stalled dirty set: give up at round 3");

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
    CHECK(d.action == CONVERGE_FAIL, "volume limit: gives up");
    CHECK(stopped > 3 && sent >= 3 * params.ram_pages && sent - vol[stopped - 1].sent_pages <
          3 * params.ram_pages, "volume limit: stopped at round %u after %llu pages", stopped,
          (unsigned long long)sent);

    /* Never more than the round limit. */
    struct round_stats many[40];
    for (unsigned i = 0; i < 40; i++)
        many[i] = round_of(i + 1, 100, i % 2 ? 1000 : 500, 0.5); /* tiny, alternating */
    CHECK(run(many, 40, &d) == CONVERGE_MAX_ROUNDS && d.action == CONVERGE_FAIL, "round limit");

    /* A vCPU loop slow to stop (a busy thread on a loaded host): its stop
     * time counts in the predicted pause. 10 pages at 1 GB/s are ~0.1 ms;
     * with 4 ms to stop, over half the 5 ms cap. */
    struct round_stats slow_stop = round_of(1, 262144, 10, 1000);
    slow_stop.stop_ns = 4 * MS;
    s = (struct converge_state){0};
    d = converge_decide(&params, &s, &slow_stop);
    CHECK(!d.converged && d.action == CONVERGE_NEXT_ROUND && d.predicted_ns > 4 * MS,
          "slow stop: predicted %.0f ns, another round", d.predicted_ns);
    slow_stop.stop_ns = MS / 10;
    s = (struct converge_state){0};
    d = converge_decide(&params, &s, &slow_stop);
    CHECK(d.converged && d.action == CONVERGE_STOP_AND_COPY, "quick stop: converged");
    /* One slow stop after a quick one is a hiccup; two in a row count. */
    struct round_stats stops[] = {round_of(1, 262144, 5000, 1000), round_of(2, 5000, 10, 1000),
                                  round_of(3, 10, 10, 1000)};
    stops[0].stop_ns = MS / 10;
    stops[1].stop_ns = 4 * MS;
    stops[2].stop_ns = 4 * MS;
    s = (struct converge_state){0};
    converge_decide(&params, &s, &stops[0]);
    d = converge_decide(&params, &s, &stops[1]);
    CHECK(d.converged, "a single slow stop: converged anyway (%.0f ns)", d.predicted_ns);
    s = (struct converge_state){0};
    stops[0].stop_ns = 4 * MS;
    converge_decide(&params, &s, &stops[0]);
    d = converge_decide(&params, &s, &stops[1]);
    CHECK(!d.converged, "two slow stops: not converged (%.0f ns)", d.predicted_ns);

    /* A tail round of a few pages (a PING's round trip, not the link)
     * keeps the bandwidth of the rounds before: 64 KiB in 7 ms would say
     * 9 MB/s, the link did 100. */
    struct round_stats tail[] = {round_of(1, 262144, 400, 100), round_of(2, 400, 300, 100),
                                 {3, 16, 65536, 7 * MS, 10, 0}};
    s = (struct converge_state){0};
    converge_decide(&params, &s, &tail[0]);
    converge_decide(&params, &s, &tail[1]);
    d = converge_decide(&params, &s, &tail[2]);
    CHECK(d.bandwidth > 99e6 && d.bandwidth < 101e6, "tail round: bandwidth %.0f", d.bandwidth);

    /* A round that took no measurable time does not divide by zero. */
    struct round_stats instant = {1, 0, 0, 0, 0, 0};
    s = (struct converge_state){0};
    d = converge_decide(&params, &s, &instant);
    CHECK(d.action == CONVERGE_NEXT_ROUND || d.action == CONVERGE_STOP_AND_COPY, "no crash");

    test_auto_converge();
    test_cap_is_a_cap();
    test_explain();
    test_postcopy();

    printf("%s: %d checks, %d failures\n", __FILE__, checks, failures);
    return failures ? 1 : 0;
}
