/* PLIC gateway/claim/complete/threshold/priority semantics and ACLINT
 * timer/software interrupts, observed through the harts' mip bits. */
#include <stdio.h>
#include <stdlib.h>

#include "cpu/hart.h"
#include "dev/aclint.h"
#include "dev/plic.h"
#include "machine/vclock.h"

#include "check.h"

#define NHARTS 2
static struct hart harts[NHARTS];
static struct plic plic;

#define PRIO(src)       (4u * (src))
#define PENDING(w)      (0x1000u + 4u * (w))
#define ENABLE(ctx, w)  (0x2000u + 0x80u * (ctx) + 4u * (w))
#define THRESHOLD(ctx)  (0x200000u + 0x1000u * (ctx))
#define CLAIM(ctx)      (0x200004u + 0x1000u * (ctx))

static uint32_t rd(uint32_t off)
{
    return (uint32_t)plic_mmio_ops.read(&plic, off, 4);
}

static void wr(uint32_t off, uint32_t v)
{
    plic_mmio_ops.write(&plic, off, v, 4);
}

static bool seip(unsigned h) { return harts[h].mip & MIP_SEIP; }
static bool meip(unsigned h) { return harts[h].mip & MIP_MEIP; }

static void test_plic_basic(void)
{
    plic_init(&plic, harts, NHARTS);
    CHECK(!seip(0) && !meip(0) && !seip(1) && !meip(1));

    /* Source 10 to hart 0's S context (context 1). */
    wr(PRIO(10), 1);
    wr(ENABLE(1, 0), 1u << 10);
    wr(THRESHOLD(1), 0);
    CHECK_EQ(rd(PRIO(10)), 1);
    CHECK_EQ(rd(ENABLE(1, 0)), 1u << 10);
    CHECK(!seip(0));

    plic_set_irq(&plic, 10, 1);
    CHECK_EQ(rd(PENDING(0)), 1u << 10);
    CHECK(seip(0));
    CHECK(!meip(0) && !seip(1) && !meip(1));

    /* Threshold masks priorities at or below it. */
    wr(THRESHOLD(1), 1);
    CHECK(!seip(0));
    CHECK_EQ(rd(CLAIM(1)), 0); /* nothing above the threshold to claim */
    CHECK_EQ(rd(PENDING(0)), 1u << 10);
    wr(THRESHOLD(1), 0);
    CHECK(seip(0));

    /* Priority 0 never interrupts. */
    wr(PRIO(10), 0);
    CHECK(!seip(0));
    CHECK_EQ(rd(CLAIM(1)), 0);
    wr(PRIO(10), 1);
    CHECK(seip(0));

    /* Claim: pending clears, output drops, a second claim gets nothing. */
    CHECK_EQ(rd(CLAIM(1)), 10);
    CHECK_EQ(rd(PENDING(0)), 0);
    CHECK(!seip(0));
    CHECK_EQ(rd(CLAIM(1)), 0);

    /* A claimed source does not re-pend while the line stays high... */
    plic_set_irq(&plic, 10, 1);
    CHECK_EQ(rd(PENDING(0)), 0);
    CHECK(!seip(0));
    /* ...and completion re-pends it because the level is still high. */
    wr(CLAIM(1), 10);
    CHECK_EQ(rd(PENDING(0)), 1u << 10);
    CHECK(seip(0));

    /* Claim again, the device lowers the line, completion leaves it idle. */
    CHECK_EQ(rd(CLAIM(1)), 10);
    plic_set_irq(&plic, 10, 0);
    wr(CLAIM(1), 10);
    CHECK_EQ(rd(PENDING(0)), 0);
    CHECK(!seip(0));

    /* Level-triggered: a line lowered before the claim withdraws the request. */
    plic_set_irq(&plic, 10, 1);
    CHECK(seip(0));
    plic_set_irq(&plic, 10, 0);
    CHECK(!seip(0));
    CHECK_EQ(rd(PENDING(0)), 0);
    CHECK_EQ(rd(CLAIM(1)), 0);
}

static void test_plic_priority(void)
{
    plic_init(&plic, harts, NHARTS);
    wr(PRIO(3), 2);
    wr(PRIO(5), 2);
    wr(PRIO(40), 5);
    wr(ENABLE(1, 0), (1u << 3) | (1u << 5));
    wr(ENABLE(1, 1), 1u << (40 - 32));
    plic_set_irq(&plic, 5, 1);
    plic_set_irq(&plic, 3, 1);
    plic_set_irq(&plic, 40, 1);
    CHECK_EQ(rd(PENDING(0)), (1u << 3) | (1u << 5));
    CHECK_EQ(rd(PENDING(1)), 1u << 8);

    /* Highest priority first, then the lowest id among equals. */
    CHECK_EQ(rd(CLAIM(1)), 40);
    CHECK_EQ(rd(CLAIM(1)), 3);
    CHECK(seip(0)); /* 5 still waiting */
    CHECK_EQ(rd(CLAIM(1)), 5);
    CHECK(!seip(0));
    CHECK_EQ(rd(CLAIM(1)), 0);

    /* Completing out of order works; level still high, so they re-pend. */
    wr(CLAIM(1), 3);
    wr(CLAIM(1), 40);
    CHECK(seip(0));
    CHECK_EQ(rd(CLAIM(1)), 40);

    /* Threshold between the two priorities lets only 40 through. */
    wr(CLAIM(1), 40);
    wr(THRESHOLD(1), 2);
    CHECK_EQ(rd(CLAIM(1)), 40);
    CHECK(!seip(0)); /* 3 is pending but at the threshold */
    CHECK_EQ(rd(CLAIM(1)), 0);
    wr(THRESHOLD(1), 0);
    CHECK(seip(0));

    /* Priorities and thresholds are WARL with 3 bits. */
    wr(PRIO(7), 0xffffffff);
    CHECK_EQ(rd(PRIO(7)), 7);
    wr(THRESHOLD(0), 0x1f);
    CHECK_EQ(rd(THRESHOLD(0)), 7);
    /* Source 0 does not exist: its priority and enable bit stay zero. */
    wr(PRIO(0), 3);
    CHECK_EQ(rd(PRIO(0)), 0);
    wr(ENABLE(0, 0), 0xffffffff);
    CHECK_EQ(rd(ENABLE(0, 0)), 0xfffffffe);
    /* Pending is read-only. */
    wr(PENDING(0), 0);
    CHECK_EQ(rd(PENDING(0)), 1u << 3);
}

static void test_plic_contexts(void)
{
    plic_init(&plic, harts, NHARTS);
    wr(PRIO(1), 1);
    /* Context 2 is hart 1's M-mode context. */
    wr(ENABLE(2, 0), 1u << 1);
    plic_set_irq(&plic, 1, 1);
    CHECK(meip(1));
    CHECK(!seip(1) && !meip(0) && !seip(0));

    /* The same source on two contexts: whoever claims first takes it. */
    wr(ENABLE(1, 0), 1u << 1);
    CHECK(seip(0) && meip(1));
    CHECK_EQ(rd(CLAIM(1)), 1);
    CHECK(!seip(0) && !meip(1));
    CHECK_EQ(rd(CLAIM(2)), 0);

    /* Completion from a context that does not enable the source is ignored. */
    wr(CLAIM(3), 1);
    CHECK(!seip(0) && !meip(1));
    wr(CLAIM(2), 1);
    CHECK(seip(0) && meip(1));

    /* Disabling the source drops the outputs without losing the request. */
    wr(ENABLE(1, 0), 0);
    wr(ENABLE(2, 0), 0);
    CHECK(!seip(0) && !meip(1));
    CHECK_EQ(rd(PENDING(0)), 1u << 1);

    /* Contexts past the last hart read as zero and ignore writes. */
    wr(THRESHOLD(2 * NHARTS), 3);
    CHECK_EQ(rd(THRESHOLD(2 * NHARTS)), 0);
    CHECK_EQ(rd(CLAIM(2 * NHARTS)), 0);
    /* Out-of-range sources are ignored. */
    plic_set_irq(&plic, 0, 1);
    plic_set_irq(&plic, PLIC_SOURCES, 1);
    CHECK_EQ(rd(PENDING(0)), 1u << 1);

    /* plic_update recomputes outputs from state alone (after a state load). */
    for (unsigned i = 0; i < NHARTS; i++)
        harts[i].mip = 0;
    plic.s.enable[1][0] = 1u << 1;
    plic_update(&plic);
    CHECK(seip(0) && !meip(1));

    /* 8-byte accesses are two registers. */
    plic_mmio_ops.write(&plic, THRESHOLD(0), 0x0000000300000002ull, 8);
    CHECK_EQ(rd(THRESHOLD(0)), 2);
    CHECK_EQ(plic_mmio_ops.read(&plic, PENDING(0), 8), (uint64_t)(1u << 1));
}

#define MSIP(h)     (4u * (h))
#define MTIMECMP(h) (0x4000u + 8u * (h))
#define MTIME       0xbff8u

static void test_aclint(void)
{
    static struct vclock clock;
    static struct aclint a;
    vclock_init(&clock);
    vclock_pause(&clock); /* deterministic time */
    vclock_set_ns(&clock, vclock_ticks_to_ns(1000));
    for (unsigned i = 0; i < NHARTS; i++)
        harts[i].mip = 0;

    aclint_init(&a, harts, NHARTS, &clock);
    const struct mmio_ops *ops = &aclint_mmio_ops;
    CHECK(!(harts[0].mip & (MIP_MTIP | MIP_MSIP)));
    CHECK_EQ(ops->read(&a, MTIMECMP(0), 8), UINT64_MAX);
    CHECK_EQ(aclint_next_deadline(&a), UINT64_MAX);
    CHECK_EQ(ops->read(&a, MTIME, 8), 1000);
    CHECK_EQ(ops->read(&a, MTIME, 4), 1000);
    CHECK_EQ(ops->read(&a, MTIME + 4, 4), 0);

    /* mtimecmp written as two 32-bit halves (the RV32 way). */
    ops->write(&a, MTIMECMP(1), 2000, 4);
    CHECK(!(harts[1].mip & MIP_MTIP)); /* high half still all ones */
    ops->write(&a, MTIMECMP(1) + 4, 0, 4);
    CHECK_EQ(ops->read(&a, MTIMECMP(1), 8), 2000);
    CHECK_EQ(aclint_next_deadline(&a), 2000);
    CHECK(!(harts[1].mip & MIP_MTIP));

    ops->write(&a, MTIMECMP(0), 1000, 8);
    CHECK(harts[0].mip & MIP_MTIP); /* mtime >= mtimecmp */
    CHECK(!(harts[1].mip & MIP_MTIP));
    CHECK_EQ(aclint_next_deadline(&a), 1000);

    /* Time passing is noticed by aclint_update. */
    vclock_set_ns(&clock, vclock_ticks_to_ns(2000));
    aclint_update(&a);
    CHECK(harts[1].mip & MIP_MTIP);
    ops->write(&a, MTIMECMP(1), UINT64_MAX, 8);
    CHECK(!(harts[1].mip & MIP_MTIP));

    /* Writing mtime moves the machine clock. */
    ops->write(&a, MTIME, 500, 8);
    CHECK_EQ(vclock_ticks(&clock), 500);
    CHECK(!(harts[0].mip & MIP_MTIP));
    ops->write(&a, MTIME + 4, 1, 4);
    CHECK_EQ(vclock_ticks(&clock), (1ull << 32) + 500);

    /* msip bit 0 drives MSIP. */
    ops->write(&a, MSIP(1), 0xffffffff, 4);
    CHECK_EQ(ops->read(&a, MSIP(1), 4), 1);
    CHECK(harts[1].mip & MIP_MSIP);
    CHECK(!(harts[0].mip & MIP_MSIP));
    ops->write(&a, MSIP(1), 0, 4);
    CHECK(!(harts[1].mip & MIP_MSIP));
    /* Registers past the last hart are absent. */
    ops->write(&a, MSIP(NHARTS), 1, 4);
    CHECK_EQ(ops->read(&a, MSIP(NHARTS), 4), 0);
}

int main(void)
{
    for (unsigned i = 0; i < NHARTS; i++)
        harts[i].hartid = i;
    test_plic_basic();
    test_plic_priority();
    test_plic_contexts();
    test_aclint();
    if (failures) {
        fprintf(stderr, "test_plic: %d of %d checks FAILED\n", failures, checks);
        return 1;
    }
    printf("test_plic: %d checks passed\n", checks);
    return 0;
}
