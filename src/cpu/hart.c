/* Hart lifecycle, trap entry and interrupt selection. */
#include "cpu/hart.h"

#include <string.h>

#include "cpu/cpu_internal.h"
#include "cpu/lrsc.h"
#include "cpu/jit.h"
#include "machine/machine.h"

#define MISA_RV64 (2ull << 62)
#define MISA_EXT(c) (1ull << ((c) - 'A'))

void hart_init(struct hart *h, uint32_t hartid, struct machine *m, struct bus *bus)
{
    memset(h, 0, sizeof *h);
    h->hartid = hartid;
    h->machine = m;
    h->bus = bus;
    h->icache = m ? &m->vcpus[hartid].icache : NULL;
    static struct lrsc_set lrsc_unshared; /* harts without a machine (unit tests) */
    h->lrsc = m ? &m->lrsc : &lrsc_unshared;
    static const int never_kicked = 0;
    h->kick = m ? &m->vcpus[hartid].kick : &never_kicked;
    hart_reset(h, 0);
}

void hart_reset(struct hart *h, uint64_t pc)
{
    struct machine *m = h->machine;
    struct bus *bus = h->bus;
    uint32_t hartid = h->hartid;
    struct icache *icache = h->icache;
    const int *kick = h->kick;
    struct lrsc_set *lrsc = h->lrsc;
    struct jit *jit = h->jit;
    bool use_jit = h->use_jit;
    lrsc_drop(h);
    memset(h, 0, sizeof *h);
    h->lrsc = lrsc;
    h->jit = jit;
    h->use_jit = use_jit;
    jit_flush(h); /* RAM may be reloaded: drop translations */
    h->hartid = hartid;
    h->machine = m;
    h->bus = bus;
    h->icache = icache;
    h->kick = kick;
    h->pc = pc;
    h->priv = PRIV_M;
    h->misa = MISA_RV64 | MISA_EXT('I') | MISA_EXT('M') | MISA_EXT('A') | MISA_EXT('F') |
              MISA_EXT('D') | MISA_EXT('C') | MISA_EXT('S') | MISA_EXT('U');
    /* UXL = SXL = 64 bits; they are read-only. */
    h->mstatus = (2ull << 32) | (2ull << 34);
    h->stimecmp = UINT64_MAX;
    h->hsm = HSM_STARTED;
    hart_tlb_flush(h);
    hart_update_ctx(h);
}

void hart_tlb_flush(struct hart *h)
{
    memset(h->tlb_read, 0xff, sizeof h->tlb_read);
    memset(h->tlb_write, 0xff, sizeof h->tlb_write);
    memset(h->tlb_fetch, 0xff, sizeof h->tlb_fetch);
}

void hart_tlb_flush_writes(struct hart *h)
{
    memset(h->tlb_write, 0xff, sizeof h->tlb_write);
}

/* The TLB tag carries the translation context (effective privilege, SUM,
 * MXR) above the page number, so privilege switches (every system call)
 * need no flush. Called whenever priv or mstatus changes. */
void hart_update_ctx(struct hart *h)
{
    unsigned data_priv = h->priv;
    if ((h->mstatus & MSTATUS_MPRV) && h->priv == PRIV_M)
        data_priv = (h->mstatus & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT;
    uint64_t sum = (h->mstatus & MSTATUS_SUM) ? 1 : 0;
    uint64_t mxr = (h->mstatus & MSTATUS_MXR) ? 1 : 0;
    h->data_priv = (uint8_t)data_priv;
    h->ctx_data = ((uint64_t)data_priv | sum << 2 | mxr << 3) << TLB_CTX_SHIFT;
    h->ctx_fetch = ((uint64_t)h->priv | 1ull << 4) << TLB_CTX_SHIFT;
    hart_note_interrupts(h);
}

void hart_set_pending(struct hart *h, uint64_t mip_bits, bool level)
{
    uint64_t old = level ? __atomic_fetch_or(&h->mip, mip_bits, __ATOMIC_SEQ_CST)
                         : __atomic_fetch_and(&h->mip, ~mip_bits, __ATOMIC_SEQ_CST);
    uint64_t now = level ? old | mip_bits : old & ~mip_bits;
    if (now == old)
        return;
    hart_note_interrupts(h);
    /* A newly pending, enabled interrupt: wake the hart from WFI (or make
     * it look now if it is running on another thread). */
    if (level && h->machine && (mip_bits & ~old & __atomic_load_n(&h->mie, __ATOMIC_RELAXED)))
        machine_hart_notify(h->machine, h);
}

/* Chooses the interrupt to take now, or 0. Priority order from the
 * privileged spec: MEI, MSI, MTI, SEI, SSI, STI. */
static uint64_t hart_pick_interrupt(const struct hart *h)
{
    uint64_t pending = hart_mip(h) & h->mie;
    if (!pending)
        return 0;
    uint64_t m_pending = pending & ~h->mideleg;
    uint64_t s_pending = pending & h->mideleg;
    bool m_enabled = h->priv < PRIV_M || (h->mstatus & MSTATUS_MIE);
    bool s_enabled = h->priv < PRIV_S || (h->priv == PRIV_S && (h->mstatus & MSTATUS_SIE));
    uint64_t take = 0;
    if (m_enabled && m_pending)
        take = m_pending;
    else if (s_enabled && s_pending)
        take = s_pending;
    if (!take)
        return 0;
    static const int order[] = {IRQ_MEI, IRQ_MSI, IRQ_MTI, IRQ_SEI, IRQ_SSI, IRQ_STI};
    for (unsigned i = 0; i < sizeof order / sizeof order[0]; i++)
        if (take & (1ull << order[i]))
            return CAUSE_INTERRUPT | (uint64_t)order[i];
    return 0;
}

/* Whether stimecmp drives mip.STIP. With SBI in the emulator there is no
 * M-mode software to write STIP, so the timer always drives it (set_timer
 * writes stimecmp); on a bare-metal machine only when M-mode enabled Sstc. */
static bool hart_timer_drives_stip(const struct hart *h)
{
    return (h->menvcfg & MENVCFG_STCE) || (h->machine && h->machine->sbi);
}

void hart_timer_update(struct hart *h, uint64_t now)
{
    if (!hart_timer_drives_stip(h))
        return;
    bool due = now >= __atomic_load_n(&h->stimecmp, __ATOMIC_RELAXED);
    if (due != ((hart_mip(h) & MIP_STIP) != 0))
        hart_set_pending(h, MIP_STIP, due);
}

uint64_t hart_timer_deadline(const struct hart *h)
{
    return hart_timer_drives_stip(h) ? __atomic_load_n(&h->stimecmp, __ATOMIC_RELAXED)
                                     : UINT64_MAX;
}

void hart_firmware_envcfg(struct hart *h)
{
    h->menvcfg = MENVCFG_STCE | ENVCFG_CBZE | ENVCFG_CBCFE |
                 (ENVCFG_CBIE_INVAL << ENVCFG_CBIE_SHIFT);
}

bool hart_interrupt_pending(const struct hart *h)
{
    return (hart_mip(h) & __atomic_load_n(&h->mie, __ATOMIC_RELAXED)) != 0;
}

static void hart_trap(struct hart *h, uint64_t cause, uint64_t tval)
{
    bool interrupt = cause & CAUSE_INTERRUPT;
    uint64_t code = cause & ~CAUSE_INTERRUPT;
    uint64_t deleg = interrupt ? h->mideleg : h->medeleg;
    h->reserved = false;
    lrsc_drop(h); /* keeps the machine's count of live reservations low */
    if (h->priv <= PRIV_S && ((deleg >> code) & 1)) {
        h->scause = cause;
        h->sepc = h->pc;
        h->stval = tval;
        uint64_t s = h->mstatus;
        s = (s & ~MSTATUS_SPIE) | ((s & MSTATUS_SIE) ? MSTATUS_SPIE : 0);
        s = (s & ~MSTATUS_SPP) | (h->priv == PRIV_S ? MSTATUS_SPP : 0);
        s &= ~MSTATUS_SIE;
        h->mstatus = s;
        h->priv = PRIV_S;
        uint64_t base = h->stvec & ~3ull;
        h->pc = (interrupt && (h->stvec & 1)) ? base + 4 * code : base;
    } else {
        h->mcause = cause;
        h->mepc = h->pc;
        h->mtval = tval;
        uint64_t s = h->mstatus;
        s = (s & ~MSTATUS_MPIE) | ((s & MSTATUS_MIE) ? MSTATUS_MPIE : 0);
        s = (s & ~MSTATUS_MPP) | ((uint64_t)h->priv << MSTATUS_MPP_SHIFT);
        s &= ~MSTATUS_MIE;
        h->mstatus = s;
        h->priv = PRIV_M;
        uint64_t base = h->mtvec & ~3ull;
        h->pc = (interrupt && (h->mtvec & 1)) ? base + 4 * code : base;
    }
    hart_update_ctx(h);
}

void hart_raise_exception(struct hart *h, uint64_t cause, uint64_t tval)
{
    hart_trap(h, cause, tval);
}

bool hart_take_interrupt(struct hart *h)
{
    /* Cleared before mip is read: a bit set meanwhile sets it again. */
    __atomic_store_n(&h->interrupt_check, false, __ATOMIC_SEQ_CST);
    uint64_t cause = hart_pick_interrupt(h);
    if (!cause)
        return false;
    h->wfi = false;
    hart_trap(h, cause, 0);
    return true;
}

void hart_mret(struct hart *h)
{
    uint64_t s = h->mstatus;
    unsigned mpp = (s & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT;
    s = (s & ~MSTATUS_MIE) | ((s & MSTATUS_MPIE) ? MSTATUS_MIE : 0);
    s |= MSTATUS_MPIE;
    s &= ~MSTATUS_MPP; /* MPP <- U */
    if (mpp != PRIV_M)
        s &= ~MSTATUS_MPRV;
    h->mstatus = s;
    h->priv = (uint8_t)mpp;
    h->pc = h->mepc;
    hart_update_ctx(h);
}

void hart_sret(struct hart *h)
{
    uint64_t s = h->mstatus;
    unsigned spp = (s & MSTATUS_SPP) ? PRIV_S : PRIV_U;
    s = (s & ~MSTATUS_SIE) | ((s & MSTATUS_SPIE) ? MSTATUS_SIE : 0);
    s |= MSTATUS_SPIE;
    s &= ~MSTATUS_SPP;
    s &= ~MSTATUS_MPRV; /* returning to S or U always leaves M */
    h->mstatus = s;
    h->priv = (uint8_t)spp;
    h->pc = h->sepc;
    hart_update_ctx(h);
}

void hart_start_supervisor(struct hart *h, uint64_t addr, uint64_t arg)
{
    h->pc = addr;
    h->priv = PRIV_S;
    h->x[10] = h->hartid;
    h->x[11] = arg;
    h->satp = 0;
    h->mstatus &= ~(MSTATUS_SIE | MSTATUS_MPRV);
    h->wfi = false;
    hart_tlb_flush(h);
    hart_update_ctx(h);
}
