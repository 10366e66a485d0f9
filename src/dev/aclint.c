/* CLINT-compatible ACLINT (MSWI + MTIMER).
 *
 * mtime is the machine's virtual clock, so it is the same value as the
 * `time` CSR and keeps counting across pause and migration. Guest writes to
 * mtime move that clock (vclock_set_ns): the machine then has one notion of
 * time for the CSR, mtime and every timer, as on hardware where mtime is the
 * single time source. */
#include "dev/aclint.h"

#include "cpu/hart.h"
#include "cpu/riscv.h"
#include "machine/vclock.h"

#define ACLINT_MSIP_BASE     0x0
#define ACLINT_MTIMECMP_BASE 0x4000
#define ACLINT_MTIME         0xbff8

void aclint_init(struct aclint *a, struct hart *harts, unsigned nharts, struct vclock *clock)
{
    *a = (struct aclint){ .harts = harts, .nharts = nharts, .clock = clock };
    if (a->nharts > ACLINT_MAX_HARTS)
        a->nharts = ACLINT_MAX_HARTS;
    /* Disarmed at reset: nothing fires until software programs a compare. */
    for (unsigned i = 0; i < ACLINT_MAX_HARTS; i++)
        a->s.mtimecmp[i] = UINT64_MAX;
    aclint_update(a);
}

void aclint_update(struct aclint *a)
{
    uint64_t now = vclock_ticks(a->clock);
    for (unsigned i = 0; i < a->nharts; i++) {
        hart_set_pending(&a->harts[i], MIP_MSIP, a->s.msip[i] & 1);
        hart_set_pending(&a->harts[i], MIP_MTIP, now >= a->s.mtimecmp[i]);
    }
}

uint64_t aclint_next_deadline(const struct aclint *a)
{
    uint64_t next = UINT64_MAX;
    for (unsigned i = 0; i < a->nharts; i++)
        if (a->s.mtimecmp[i] < next)
            next = a->s.mtimecmp[i];
    return next;
}

/* Replaces `size` bytes at byte `shift` of a 64-bit register. */
static uint64_t merge64(uint64_t old, uint64_t value, unsigned shift, unsigned size)
{
    uint64_t mask = size == 8 ? UINT64_MAX : ((1ull << (8 * size)) - 1) << shift;
    return (old & ~mask) | ((value << shift) & mask);
}

static uint64_t aclint_mmio_read(void *opaque, uint64_t offset, unsigned size)
{
    struct aclint *a = opaque;
    uint64_t reg, base;

    if (offset < ACLINT_MSIP_BASE + 4ull * a->nharts) {
        reg = a->s.msip[offset / 4];
        base = offset & ~3ull;
    } else if (offset >= ACLINT_MTIMECMP_BASE &&
               offset < ACLINT_MTIMECMP_BASE + 8ull * a->nharts) {
        base = offset & ~7ull;
        reg = a->s.mtimecmp[(base - ACLINT_MTIMECMP_BASE) / 8];
    } else if (offset >= ACLINT_MTIME && offset < ACLINT_MTIME + 8) {
        base = ACLINT_MTIME;
        reg = vclock_ticks(a->clock);
    } else {
        return 0;
    }
    uint64_t v = reg >> (8 * (offset - base));
    return size == 8 ? v : v & ((1ull << (8 * size)) - 1);
}

static void aclint_mmio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct aclint *a = opaque;

    if (offset < ACLINT_MSIP_BASE + 4ull * a->nharts) {
        /* Only bit 0 exists; byte 0 is the one that holds it. */
        if ((offset & 3) == 0)
            a->s.msip[offset / 4] = value & 1;
    } else if (offset >= ACLINT_MTIMECMP_BASE &&
               offset < ACLINT_MTIMECMP_BASE + 8ull * a->nharts) {
        uint64_t base = offset & ~7ull;
        uint64_t *cmp = &a->s.mtimecmp[(base - ACLINT_MTIMECMP_BASE) / 8];
        *cmp = merge64(*cmp, value, (unsigned)(8 * (offset - base)), size);
    } else if (offset >= ACLINT_MTIME && offset < ACLINT_MTIME + 8) {
        uint64_t now = vclock_ticks(a->clock);
        uint64_t t = merge64(now, value, (unsigned)(8 * (offset - ACLINT_MTIME)), size);
        if (t > UINT64_MAX / vclock_ticks_to_ns(1))
            t = UINT64_MAX / vclock_ticks_to_ns(1); /* the clock counts ns in 64 bits */
        vclock_set_ns(a->clock, vclock_ticks_to_ns(t));
    } else {
        return;
    }
    aclint_update(a);
    if (offset >= ACLINT_MTIMECMP_BASE && a->deadline_changed)
        a->deadline_changed(a->opaque);
}

const struct mmio_ops aclint_mmio_ops = {
    .read = aclint_mmio_read,
    .write = aclint_mmio_write,
};
