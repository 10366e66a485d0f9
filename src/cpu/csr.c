/* Control and status registers: access rules and WARL behaviour. */
#include "cpu/cpu_internal.h"
#include "machine/machine.h"

/* Writable bits of mstatus (UXL/SXL are fixed at 64-bit, SD is derived). */
#define MSTATUS_WRITABLE (MSTATUS_SIE | MSTATUS_MIE | MSTATUS_SPIE | MSTATUS_MPIE | \
                          MSTATUS_SPP | MSTATUS_MPP | MSTATUS_FS | MSTATUS_MPRV |      \
                          MSTATUS_SUM | MSTATUS_MXR | MSTATUS_TVM | MSTATUS_TW |       \
                          MSTATUS_TSR)
#define SSTATUS_MASK (MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_FS | MSTATUS_XS | \
                      MSTATUS_SUM | MSTATUS_MXR | MSTATUS_UXL | MSTATUS_SD)
#define SSTATUS_WRITABLE (MSTATUS_SIE | MSTATUS_SPIE | MSTATUS_SPP | MSTATUS_FS | \
                          MSTATUS_SUM | MSTATUS_MXR)
#define S_INTERRUPTS (MIP_SSIP | MIP_STIP | MIP_SEIP)
#define ALL_INTERRUPTS (S_INTERRUPTS | MIP_MSIP | MIP_MTIP | MIP_MEIP)
/* Exceptions that may be delegated: everything but ecall from M. */
#define MEDELEG_WRITABLE 0xb3ffull

/* Software writes to mip race with devices and other harts setting other
 * bits: replace only the writable ones, atomically. */
static void csr_write_mip(struct hart *h, uint64_t writable, uint64_t v)
{
    uint64_t old = hart_mip(h);
    while (!__atomic_compare_exchange_n(&h->mip, &old, (old & ~writable) | (v & writable), false,
                                        __ATOMIC_SEQ_CST, __ATOMIC_SEQ_CST)) {
    }
    hart_note_interrupts(h);
}

static bool counter_allowed(const struct hart *h, uint32_t csr)
{
    uint64_t bit = 1ull << (csr & 31);
    if (h->priv < PRIV_M && !(h->mcounteren & bit))
        return false;
    if (h->priv < PRIV_S && !(h->scounteren & bit))
        return false;
    return true;
}

/* Brings mip.STIP up to date with stimecmp (reads see the current time). */
static void timer_refresh(struct hart *h)
{
    if (h->machine)
        hart_timer_update(h, machine_time_ticks(h->machine));
}

/* Sstc: below M, stimecmp needs menvcfg.STCE and mcounteren.TM. */
static bool stimecmp_allowed(const struct hart *h)
{
    return h->priv == PRIV_M ||
           ((h->menvcfg & MENVCFG_STCE) && (h->mcounteren & COUNTEREN_TM));
}

/* menvcfg/senvcfg WARL: the reserved CBIE value 10 reads as 00. */
static uint64_t envcfg_legal(uint64_t v, uint64_t writable)
{
    v &= writable;
    if (((v & ENVCFG_CBIE) >> ENVCFG_CBIE_SHIFT) == 2)
        v &= ~ENVCFG_CBIE;
    return v;
}
#define SENVCFG_WRITABLE (ENVCFG_FIOM | ENVCFG_CBIE | ENVCFG_CBCFE | ENVCFG_CBZE)
#define MENVCFG_WRITABLE (SENVCFG_WRITABLE | MENVCFG_STCE)

/* PMP: 16 entries whose registers M-mode can write and read back with the
 * spec's WARL rules (locked entries keep their values, reserved bits read 0,
 * the reserved R=0/W=1 combination reads as W=0, pmpaddr is 54 bits wide).
 * They are not enforced: accesses are checked as if every entry granted
 * everything. Nothing ferry runs needs enforcement (Linux runs in S with
 * the SBI emulated, and a check on every TLB fill and M-mode access would
 * cost on the hot paths); the register file is what M-mode software and
 * its tests probe. pmpcfg1/3 do not exist on RV64 (illegal); entries
 * 16..63 are read-only zero. */
#define PMPCFG_L 0x80
#define PMPCFG_A_TOR 0x08
#define PMPCFG_A 0x18
#define PMPADDR_MASK ((1ull << 54) - 1)

static bool pmp_csr(uint32_t csr)
{
    return (csr >= CSR_PMPCFG0 && csr < CSR_PMPCFG0 + 16) ||
           (csr >= CSR_PMPADDR0 && csr < CSR_PMPADDR0 + 64);
}

static bool pmp_read(const struct hart *h, uint32_t csr, uint64_t *v)
{
    *v = 0;
    if (csr < CSR_PMPADDR0) {
        if (csr & 1)
            return false;
        unsigned first = (csr - CSR_PMPCFG0) * 4; /* pmpcfg2 holds entries 8..15 */
        for (unsigned i = 0; i < 8 && first + i < PMP_ENTRIES; i++)
            *v |= (uint64_t)h->pmpcfg[first + i] << (8 * i);
        return true;
    }
    unsigned i = csr - CSR_PMPADDR0;
    if (i < PMP_ENTRIES)
        *v = h->pmpaddr[i];
    return true;
}

static bool pmp_write(struct hart *h, uint32_t csr, uint64_t v)
{
    if (csr < CSR_PMPADDR0) {
        if (csr & 1)
            return false;
        unsigned first = (csr - CSR_PMPCFG0) * 4;
        for (unsigned i = 0; i < 8 && first + i < PMP_ENTRIES; i++) {
            uint8_t cfg = (uint8_t)(v >> (8 * i)) & 0x9f;
            if ((cfg & 3) == 2) /* W without R is reserved */
                cfg &= ~2;
            if (!(h->pmpcfg[first + i] & PMPCFG_L))
                h->pmpcfg[first + i] = cfg;
        }
        return true;
    }
    unsigned i = csr - CSR_PMPADDR0;
    if (i >= PMP_ENTRIES)
        return true;
    /* A locked entry's address is fixed, and so is the base of a locked
     * TOR entry above it. */
    bool locked = (h->pmpcfg[i] & PMPCFG_L) ||
                  (i + 1 < PMP_ENTRIES && (h->pmpcfg[i + 1] & PMPCFG_L) &&
                   (h->pmpcfg[i + 1] & PMPCFG_A) == PMPCFG_A_TOR);
    if (!locked)
        h->pmpaddr[i] = v & PMPADDR_MASK;
    return true;
}

static bool fs_enabled(const struct hart *h)
{
    return (h->mstatus & MSTATUS_FS) != 0;
}

bool csr_read(struct hart *h, uint32_t csr, uint64_t *v)
{
    /* Bits 9:8 give the lowest privilege that may access the CSR. */
    if (((csr >> 8) & 3) > h->priv)
        return false;
    switch (csr) {
    case CSR_FFLAGS: if (!fs_enabled(h)) return false; *v = h->fflags; return true;
    case CSR_FRM: if (!fs_enabled(h)) return false; *v = h->frm; return true;
    case CSR_FCSR: if (!fs_enabled(h)) return false; *v = (uint64_t)h->frm << 5 | h->fflags; return true;
    case CSR_CYCLE: case CSR_INSTRET: case CSR_TIME:
        if (!counter_allowed(h, csr))
            return false;
        *v = csr == CSR_TIME ? machine_time_ticks(h->machine) : h->instret;
        return true;
    case CSR_SSTATUS: *v = hart_mstatus_read(h) & SSTATUS_MASK; return true;
    case CSR_SIE: *v = h->mie & h->mideleg; return true;
    case CSR_SIP:
        timer_refresh(h);
        *v = hart_mip(h) & h->mideleg;
        return true;
    case CSR_STIMECMP:
        if (!stimecmp_allowed(h))
            return false;
        *v = h->stimecmp;
        return true;
    case CSR_STVEC: *v = h->stvec; return true;
    case CSR_SCOUNTEREN: *v = h->scounteren; return true;
    case CSR_SENVCFG: *v = h->senvcfg; return true;
    case CSR_SSCRATCH: *v = h->sscratch; return true;
    case CSR_SEPC: *v = h->sepc; return true;
    case CSR_SCAUSE: *v = h->scause; return true;
    case CSR_STVAL: *v = h->stval; return true;
    case CSR_SATP:
        if (h->priv == PRIV_S && (h->mstatus & MSTATUS_TVM))
            return false;
        *v = h->satp;
        return true;
    case CSR_MVENDORID: case CSR_MARCHID: case CSR_MIMPID: case CSR_MCONFIGPTR:
        *v = 0;
        return true;
    case CSR_MHARTID: *v = h->hartid; return true;
    case CSR_MSTATUS: *v = hart_mstatus_read(h); return true;
    case CSR_MISA: *v = h->misa; return true;
    case CSR_MEDELEG: *v = h->medeleg; return true;
    case CSR_MIDELEG: *v = h->mideleg; return true;
    case CSR_MIE: *v = h->mie; return true;
    case CSR_MTVEC: *v = h->mtvec; return true;
    case CSR_MCOUNTEREN: *v = h->mcounteren; return true;
    case CSR_MENVCFG: *v = h->menvcfg; return true;
    case CSR_MCOUNTINHIBIT: *v = 0; return true;
    case CSR_MSCRATCH: *v = h->mscratch; return true;
    case CSR_MEPC: *v = h->mepc; return true;
    case CSR_MCAUSE: *v = h->mcause; return true;
    case CSR_MTVAL: *v = h->mtval; return true;
    case CSR_MIP:
        timer_refresh(h);
        *v = hart_mip(h);
        return true;
    case CSR_MCYCLE: case CSR_MINSTRET: *v = h->instret; return true;
    /* No triggers (Sdtrig discovery): tselect reads 0, tdata1 reads type 0
     * ("no trigger here"), tinfo reads 1 (only type 0 exists). */
    case CSR_TSELECT: case CSR_TDATA1: case CSR_TDATA2: case CSR_TDATA3: *v = 0; return true;
    case CSR_TINFO: *v = 1; return true;
    default:
        if (pmp_csr(csr))
            return pmp_read(h, csr, v);
        /* No extra hardware counters: all read as zero (hpmcounters
         * 3..31 and their M-mode twins, mhpmevent). */
        if ((csr >= 0xb03 && csr <= 0xb1f) || (csr >= 0x323 && csr <= 0x33f)) {
            *v = 0;
            return true;
        }
        if (csr >= 0xc03 && csr <= 0xc1f) {
            if (!counter_allowed(h, csr))
                return false;
            *v = 0;
            return true;
        }
        return false;
    }
}

bool csr_write(struct hart *h, uint32_t csr, uint64_t v)
{
    if (((csr >> 8) & 3) > h->priv || (csr >> 10) == 3) /* read-only range */
        return false;
    switch (csr) {
    case CSR_FFLAGS:
        if (!fs_enabled(h)) return false;
        h->fflags = v & 0x1f; hart_fs_dirty(h); return true;
    case CSR_FRM:
        if (!fs_enabled(h)) return false;
        h->frm = v & 7; hart_fs_dirty(h); return true;
    case CSR_FCSR:
        if (!fs_enabled(h)) return false;
        h->fflags = v & 0x1f; h->frm = (v >> 5) & 7; hart_fs_dirty(h); return true;
    case CSR_SSTATUS:
        h->mstatus = (h->mstatus & ~SSTATUS_WRITABLE) | (v & SSTATUS_WRITABLE);
        hart_update_ctx(h);
        return true;
    case CSR_SIE:
        __atomic_store_n(&h->mie, (h->mie & ~h->mideleg) | (v & h->mideleg), __ATOMIC_RELAXED);
        hart_note_interrupts(h);
        return true;
    case CSR_SIP:
        /* Only SSIP is writable from S-mode (when delegated). */
        csr_write_mip(h, MIP_SSIP & h->mideleg, v);
        return true;
    case CSR_STVEC: h->stvec = v & ~2ull; return true;
    case CSR_SCOUNTEREN: h->scounteren = v & 0xffffffff; return true;
    case CSR_SENVCFG: h->senvcfg = envcfg_legal(v, SENVCFG_WRITABLE); return true;
    case CSR_STIMECMP:
        if (!stimecmp_allowed(h))
            return false;
        if (h->machine)
            machine_set_hart_timer(h->machine, h, v);
        else
            h->stimecmp = v;
        return true;
    case CSR_SSCRATCH: h->sscratch = v; return true;
    case CSR_SEPC: h->sepc = v & ~1ull; return true;
    case CSR_SCAUSE: h->scause = v; return true;
    case CSR_STVAL: h->stval = v; return true;
    case CSR_SATP: {
        if (h->priv == PRIV_S && (h->mstatus & MSTATUS_TVM))
            return false;
        uint64_t mode = v >> SATP_MODE_SHIFT;
        /* WARL: unsupported modes leave satp unchanged (Linux probes Sv57
         * and Sv48 this way). ASIDs are not implemented: the field is 0. */
        if (mode != SATP_MODE_BARE && mode != SATP_MODE_SV39 && mode != SATP_MODE_SV48)
            return true;
        h->satp = (mode << SATP_MODE_SHIFT) | (v & SATP_PPN_MASK);
        hart_tlb_flush(h);
        return true;
    }
    case CSR_MSTATUS: {
        uint64_t nv = (h->mstatus & ~MSTATUS_WRITABLE) | (v & MSTATUS_WRITABLE);
        /* MPP is WARL: the reserved value 2 (H) becomes U. */
        if (((nv & MSTATUS_MPP) >> MSTATUS_MPP_SHIFT) == 2)
            nv &= ~MSTATUS_MPP;
        h->mstatus = nv;
        hart_update_ctx(h);
        return true;
    }
    case CSR_MISA: return true; /* WARL: the extensions cannot be switched off */
    case CSR_MEDELEG: h->medeleg = v & MEDELEG_WRITABLE; return true;
    case CSR_MIDELEG: h->mideleg = v & S_INTERRUPTS; hart_note_interrupts(h); return true;
    case CSR_MIE:
        __atomic_store_n(&h->mie, v & ALL_INTERRUPTS, __ATOMIC_RELAXED);
        hart_note_interrupts(h);
        return true;
    case CSR_MTVEC: h->mtvec = v & ~2ull; return true;
    case CSR_MCOUNTEREN: h->mcounteren = v & 0xffffffff; return true;
    case CSR_MENVCFG:
        h->menvcfg = envcfg_legal(v, MENVCFG_WRITABLE);
        timer_refresh(h); /* STCE may have changed */
        return true;
    case CSR_MCOUNTINHIBIT: return true;
    case CSR_MSCRATCH: h->mscratch = v; return true;
    case CSR_MEPC: h->mepc = v & ~1ull; return true;
    case CSR_MCAUSE: h->mcause = v; return true;
    case CSR_MTVAL: h->mtval = v; return true;
    case CSR_MIP: {
        /* Software may write SSIP, STIP and SEIP; the M bits come from
         * the ACLINT and PLIC, and with Sstc enabled STIP from stimecmp. */
        csr_write_mip(h, (h->menvcfg & MENVCFG_STCE) ? MIP_SSIP | MIP_SEIP
                                                     : MIP_SSIP | MIP_STIP | MIP_SEIP, v);
        return true;
    }
    case CSR_MCYCLE: case CSR_MINSTRET:
        /* Priv spec (Zicsr): for a counter an instruction also updates,
         * "the write is done instead of the increment". The increment
         * every retired instruction gets brings this to v. */
        h->instret = v - 1;
        return true;
    case CSR_TSELECT: case CSR_TDATA1: case CSR_TDATA2: case CSR_TDATA3: case CSR_TINFO:
        return true; /* no triggers: writes are ignored */
    default:
        if (pmp_csr(csr))
            return pmp_write(h, csr, v);
        if ((csr >= 0xb03 && csr <= 0xb1f) || (csr >= 0x323 && csr <= 0x33f))
            return true;
        return false;
    }
}
