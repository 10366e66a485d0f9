/* SiFive-compatible PLIC with level-triggered gateways.
 *
 * A source is pending while its line is high and it is not claimed; a
 * claimed source stays out of arbitration until completed, and completion
 * re-pends it if the device still holds the line high. A context's output
 * is high when some enabled, pending, unclaimed source has a priority above
 * the context's threshold. */
#include "dev/plic.h"

#include "cpu/hart.h"
#include "cpu/riscv.h"

#define PLIC_PRIORITY_BASE  0x0
#define PLIC_PENDING_BASE   0x1000
#define PLIC_ENABLE_BASE    0x2000
#define PLIC_ENABLE_STRIDE  0x80
#define PLIC_CONTEXT_BASE   0x200000
#define PLIC_CONTEXT_STRIDE 0x1000

/* Priorities and thresholds are WARL; 3 bits (levels 0..7) as on QEMU virt,
 * so Linux's "threshold 7 masks everything" convention holds. */
#define PLIC_PRIO_MASK 7u

static bool bit_get(const uint32_t *words, unsigned i)
{
    return (words[i / 32] >> (i % 32)) & 1;
}

static void bit_put(uint32_t *words, unsigned i, bool v)
{
    if (v)
        words[i / 32] |= 1u << (i % 32);
    else
        words[i / 32] &= ~(1u << (i % 32));
}

static unsigned plic_ncontexts(const struct plic *p)
{
    return p->nharts * 2;
}

/* Best claimable source for a context (0 if none beats the threshold).
 * Ties go to the lowest id. */
static unsigned plic_best(const struct plic *p, unsigned ctx)
{
    const struct plic_state *s = &p->s;
    unsigned best = 0;
    uint32_t best_prio = s->threshold[ctx];

    for (unsigned w = 0; w < PLIC_WORDS; w++) {
        uint32_t cand = s->pending[w] & ~s->claimed[w] & s->enable[ctx][w];
        while (cand) {
            unsigned src = w * 32 + (unsigned)__builtin_ctz(cand);
            cand &= cand - 1;
            if (src != 0 && s->priority[src] > best_prio) {
                best = src;
                best_prio = s->priority[src];
            }
        }
    }
    return best;
}

void plic_update(struct plic *p)
{
    for (unsigned i = 0; i < p->nharts; i++) {
        hart_set_pending(&p->harts[i], MIP_MEIP, plic_best(p, 2 * i) != 0);
        hart_set_pending(&p->harts[i], MIP_SEIP, plic_best(p, 2 * i + 1) != 0);
    }
}

void plic_init(struct plic *p, struct hart *harts, unsigned nharts)
{
    *p = (struct plic){ .harts = harts, .nharts = nharts };
    if (p->nharts > PLIC_MAX_CONTEXTS / 2)
        p->nharts = PLIC_MAX_CONTEXTS / 2;
    plic_update(p);
}

void plic_set_irq(void *opaque, unsigned irq, int level)
{
    struct plic *p = opaque;
    struct plic_state *s = &p->s;

    if (irq == 0 || irq >= PLIC_SOURCES)
        return;
    bit_put(s->level, irq, level != 0);
    /* Level gateway: a lowered line withdraws its request; a claimed source
     * is re-examined at completion instead. */
    if (!bit_get(s->claimed, irq))
        bit_put(s->pending, irq, level != 0);
    plic_update(p);
}

static uint32_t plic_claim(struct plic *p, unsigned ctx)
{
    unsigned src = plic_best(p, ctx);
    if (src) {
        bit_put(p->s.pending, src, false);
        bit_put(p->s.claimed, src, true);
        plic_update(p);
    }
    return src;
}

static void plic_complete(struct plic *p, unsigned ctx, uint32_t src)
{
    struct plic_state *s = &p->s;
    /* The spec ignores completions for sources not enabled on this context. */
    if (src == 0 || src >= PLIC_SOURCES || !bit_get(s->enable[ctx], src))
        return;
    if (!bit_get(s->claimed, src))
        return;
    bit_put(s->claimed, src, false);
    if (bit_get(s->level, src))
        bit_put(s->pending, src, true);
    plic_update(p);
}

static uint32_t plic_read32(struct plic *p, uint64_t off)
{
    const struct plic_state *s = &p->s;

    if (off < PLIC_PENDING_BASE) {
        unsigned src = (unsigned)(off / 4);
        return src < PLIC_SOURCES ? s->priority[src] : 0;
    }
    if (off < PLIC_ENABLE_BASE) {
        unsigned w = (unsigned)((off - PLIC_PENDING_BASE) / 4);
        return w < PLIC_WORDS ? s->pending[w] : 0;
    }
    if (off < PLIC_CONTEXT_BASE) {
        uint64_t rel = off - PLIC_ENABLE_BASE;
        unsigned ctx = (unsigned)(rel / PLIC_ENABLE_STRIDE);
        unsigned w = (unsigned)(rel % PLIC_ENABLE_STRIDE / 4);
        if (ctx < plic_ncontexts(p) && w < PLIC_WORDS)
            return s->enable[ctx][w];
        return 0;
    }
    uint64_t rel = off - PLIC_CONTEXT_BASE;
    unsigned ctx = (unsigned)(rel / PLIC_CONTEXT_STRIDE);
    if (ctx >= plic_ncontexts(p))
        return 0;
    switch (rel % PLIC_CONTEXT_STRIDE) {
    case 0:
        return s->threshold[ctx];
    case 4:
        return plic_claim(p, ctx);
    }
    return 0;
}

static void plic_write32(struct plic *p, uint64_t off, uint32_t val)
{
    struct plic_state *s = &p->s;

    if (off < PLIC_PENDING_BASE) {
        unsigned src = (unsigned)(off / 4);
        if (src != 0 && src < PLIC_SOURCES) {
            s->priority[src] = val & PLIC_PRIO_MASK;
            plic_update(p);
        }
        return;
    }
    if (off < PLIC_ENABLE_BASE)
        return; /* pending bits are read-only */
    if (off < PLIC_CONTEXT_BASE) {
        uint64_t rel = off - PLIC_ENABLE_BASE;
        unsigned ctx = (unsigned)(rel / PLIC_ENABLE_STRIDE);
        unsigned w = (unsigned)(rel % PLIC_ENABLE_STRIDE / 4);
        if (ctx < plic_ncontexts(p) && w < PLIC_WORDS) {
            if (w == 0)
                val &= ~1u; /* source 0 does not exist */
            s->enable[ctx][w] = val;
            plic_update(p);
        }
        return;
    }
    uint64_t rel = off - PLIC_CONTEXT_BASE;
    unsigned ctx = (unsigned)(rel / PLIC_CONTEXT_STRIDE);
    if (ctx >= plic_ncontexts(p))
        return;
    switch (rel % PLIC_CONTEXT_STRIDE) {
    case 0:
        s->threshold[ctx] = val & PLIC_PRIO_MASK;
        plic_update(p);
        break;
    case 4:
        plic_complete(p, ctx, val);
        break;
    }
}

/* Registers are 32-bit. An 8-byte access is two registers, low one first;
 * narrower accesses read part of a register and writes of them are dropped
 * (the spec only defines word accesses). */
static uint64_t plic_mmio_read(void *opaque, uint64_t offset, unsigned size)
{
    struct plic *p = opaque;
    if (size == 8)
        return plic_read32(p, offset) | (uint64_t)plic_read32(p, offset + 4) << 32;
    uint32_t word = plic_read32(p, offset & ~3ull);
    uint64_t v = word >> (8 * (offset & 3));
    return size == 4 ? v : v & ((1ull << (8 * size)) - 1);
}

static void plic_mmio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct plic *p = opaque;
    if (size == 8) {
        plic_write32(p, offset, (uint32_t)value);
        plic_write32(p, offset + 4, (uint32_t)(value >> 32));
    } else if (size == 4) {
        plic_write32(p, offset, (uint32_t)value);
    }
}

const struct mmio_ops plic_mmio_ops = {
    .read = plic_mmio_read,
    .write = plic_mmio_write,
};
