/* The migratable state of a hart (struct hart_wire, cpu/hart_wire.h),
 * described for the migration stream. */
#include <string.h>

#include "cpu/cpu_internal.h"
#include "cpu/hart_wire.h"
#include "cpu/icache.h"
#include "cpu/lrsc.h"
#include "cpu/jit.h"
#include "migrate/vmstate.h"

static bool bool_ok(const void *p)
{
    uint8_t b;
    memcpy(&b, p, 1);
    return b <= 1;
}

static int hart_state_check(const void *obj, struct error *err)
{
    const struct hart_wire *h = obj;
    if (!bool_ok(&h->wfi) || !bool_ok(&h->reserved))
        return error_set(err, "invalid boolean");
    if (h->priv != PRIV_U && h->priv != PRIV_S && h->priv != PRIV_M)
        return error_set(err, "invalid privilege level %u", h->priv);
    if (h->frm > 7 || h->fflags > 0x1f)
        return error_set(err, "invalid fcsr");
    if (h->hsm > HSM_STOP_PENDING)
        return error_set(err, "invalid HSM state %u", h->hsm);
    uint64_t mode = h->satp >> SATP_MODE_SHIFT;
    if (mode != SATP_MODE_BARE && mode != SATP_MODE_SV39 && mode != SATP_MODE_SV48)
        return error_set(err, "invalid satp mode %llu", (unsigned long long)mode);
    if (h->x[0] != 0)
        return error_set(err, "x0 is not zero");
    return 0;
}

static const struct vmfield hart_fields[] = {
    VMFIELD_ARRAY(struct hart_wire, x, 1),
    VMFIELD_ARRAY(struct hart_wire, f, 1),
    VMFIELD(struct hart_wire, pc, 1),
    VMFIELD(struct hart_wire, priv, 1),
    VMFIELD(struct hart_wire, fflags, 1),
    VMFIELD(struct hart_wire, frm, 1),
    VMFIELD(struct hart_wire, wfi, 1),
    VMFIELD(struct hart_wire, mstatus, 1),
    VMFIELD(struct hart_wire, misa, 1),
    VMFIELD(struct hart_wire, medeleg, 1),
    VMFIELD(struct hart_wire, mideleg, 1),
    VMFIELD(struct hart_wire, mie, 1),
    VMFIELD(struct hart_wire, mip, 1),
    VMFIELD(struct hart_wire, mtvec, 1),
    VMFIELD(struct hart_wire, mscratch, 1),
    VMFIELD(struct hart_wire, mepc, 1),
    VMFIELD(struct hart_wire, mcause, 1),
    VMFIELD(struct hart_wire, mtval, 1),
    VMFIELD(struct hart_wire, mcounteren, 1),
    VMFIELD(struct hart_wire, scounteren, 1),
    VMFIELD(struct hart_wire, stvec, 1),
    VMFIELD(struct hart_wire, sscratch, 1),
    VMFIELD(struct hart_wire, sepc, 1),
    VMFIELD(struct hart_wire, scause, 1),
    VMFIELD(struct hart_wire, stval, 1),
    VMFIELD(struct hart_wire, satp, 1),
    VMFIELD(struct hart_wire, instret, 1),
    VMFIELD(struct hart_wire, reservation, 1),
    VMFIELD(struct hart_wire, reserved, 1),
    /* The SBI timer's compare value in version 1 and 2, which stimecmp
     * now shares (SBI set_timer writes stimecmp). */
    VMFIELD(struct hart_wire, stimecmp, 1),
    VMFIELD(struct hart_wire, hsm, 1),
    VMFIELD(struct hart_wire, hsm_start_addr, 1),
    VMFIELD(struct hart_wire, hsm_start_arg, 1),
    /* Version 2 (stream version 2): the envcfg CSRs. */
    VMFIELD(struct hart_wire, menvcfg, 2),
    VMFIELD(struct hart_wire, senvcfg, 2),
    /* Version 3 (stream version 3): the PMP registers. */
    VMFIELD_ARRAY(struct hart_wire, pmpcfg, 3),
    VMFIELD_ARRAY(struct hart_wire, pmpaddr, 3),
    VMFIELD_END,
};

/* Every scalar is described (plus x and f): a field added to the wire
 * struct without a description would silently not travel. */
_Static_assert(sizeof hart_fields / sizeof hart_fields[0] == 2 + 33 + 2 + 1,
               "hart_fields: x, f, the 33 scalars of HART_WIRE_SCALARS, pmpcfg, pmpaddr, "
               "the end marker");

const struct vmstate hart_vmstate = {
    .name = "cpu",
    .version = 3,
    .min_version = 1,
    .size = sizeof(struct hart_wire),
    .fields = hart_fields,
    .check = hart_state_check,
};

void hart_wire_save(const struct hart *h, struct hart_wire *w)
{
    memcpy(w->x, h->x, sizeof w->x);
    memcpy(w->f, h->f, sizeof w->f);
    memcpy(w->pmpcfg, h->pmpcfg, sizeof w->pmpcfg);
    memcpy(w->pmpaddr, h->pmpaddr, sizeof w->pmpaddr);
#define COPY_OUT(f) w->f = h->f;
    HART_WIRE_SCALARS(COPY_OUT)
#undef COPY_OUT
}

void hart_wire_load(struct hart *h, const struct hart_wire *w)
{
    memcpy(h->x, w->x, sizeof w->x);
    memcpy(h->f, w->f, sizeof w->f);
    memcpy(h->pmpcfg, w->pmpcfg, sizeof w->pmpcfg);
    memcpy(h->pmpaddr, w->pmpaddr, sizeof w->pmpaddr);
#define COPY_IN(f) h->f = w->f;
    HART_WIRE_SCALARS(COPY_IN)
#undef COPY_IN
    hart_state_loaded(h);
}

void hart_state_loaded(struct hart *h)
{
    /* Derived caches are rebuilt, never migrated. */
    h->x[0] = 0;
    lrsc_drop(h); /* a loaded reservation is not published: its SC fails */
    hart_tlb_flush(h);
    jit_flush(h);
    hart_update_ctx(h);
    hart_note_interrupts(h);
    /* The RAM under its decoded code may have changed with the state. */
    if (h->icache)
        icache_invalidate(h->icache);
}
