/* The migratable state of a hart, described for the migration stream. */
#include <string.h>

#include "cpu/cpu_internal.h"
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
    const struct hart *h = obj;
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
    /* x[32] is the interpreter's discard slot, not architectural state. */
    {"x", offsetof(struct hart, x), 8, 32, 1},
    VMFIELD_ARRAY(struct hart, f, 1),
    VMFIELD(struct hart, pc, 1),
    VMFIELD(struct hart, priv, 1),
    VMFIELD(struct hart, fflags, 1),
    VMFIELD(struct hart, frm, 1),
    VMFIELD(struct hart, wfi, 1),
    VMFIELD(struct hart, mstatus, 1),
    VMFIELD(struct hart, misa, 1),
    VMFIELD(struct hart, medeleg, 1),
    VMFIELD(struct hart, mideleg, 1),
    VMFIELD(struct hart, mie, 1),
    VMFIELD(struct hart, mip, 1),
    VMFIELD(struct hart, mtvec, 1),
    VMFIELD(struct hart, mscratch, 1),
    VMFIELD(struct hart, mepc, 1),
    VMFIELD(struct hart, mcause, 1),
    VMFIELD(struct hart, mtval, 1),
    VMFIELD(struct hart, mcounteren, 1),
    VMFIELD(struct hart, scounteren, 1),
    VMFIELD(struct hart, stvec, 1),
    VMFIELD(struct hart, sscratch, 1),
    VMFIELD(struct hart, sepc, 1),
    VMFIELD(struct hart, scause, 1),
    VMFIELD(struct hart, stval, 1),
    VMFIELD(struct hart, satp, 1),
    VMFIELD(struct hart, instret, 1),
    VMFIELD(struct hart, reservation, 1),
    VMFIELD(struct hart, reserved, 1),
    VMFIELD(struct hart, sbi_timecmp, 1),
    VMFIELD(struct hart, hsm, 1),
    VMFIELD(struct hart, hsm_start_addr, 1),
    VMFIELD(struct hart, hsm_start_arg, 1),
    /* Version 2 (stream version 2): the envcfg CSRs. */
    VMFIELD(struct hart, menvcfg, 2),
    VMFIELD(struct hart, senvcfg, 2),
    VMFIELD_END,
};

const struct vmstate hart_vmstate = {
    .name = "cpu",
    .version = 2,
    .min_version = 1,
    .size = sizeof(struct hart),
    .fields = hart_fields,
    .check = hart_state_check,
};

void hart_state_loaded(struct hart *h)
{
    /* Derived caches are rebuilt, never migrated. */
    h->x[0] = 0;
    hart_tlb_flush(h);
    jit_flush(h);
    hart_update_ctx(h);
    h->interrupt_check = true;
}
