/* One RISC-V hart (RV64IMAFDC, Zicsr, Zifencei, Zba/Zbb/Zbs, Zicond,
 * Zicbom/Zicboz, Sstc; M/S/U; Sv39/Sv48).
 *
 * The architectural state lives in plain fields; the TLB and fetch cache are
 * derived caches, rebuilt (flushed) whenever translation-relevant state
 * changes and after a state load. */
#ifndef FERRY_CPU_HART_H
#define FERRY_CPU_HART_H

#include <stdbool.h>
#include <stdint.h>

#include "cpu/riscv.h"

struct bus;
struct machine;
struct lrsc_set;

#define TLB_SIZE 256 /* direct-mapped, per access kind */
#define JIT_LOAD_SLOTS 1024 /* translated loads' last TLB addends (jit_translate.c) */
#define JIT_EXIT_SITES 1024 /* translated cross-page and indirect exits' last targets */

/* The block a translated exit went to last: used again while the fetch
 * TLB still maps vpc's page to ppage (a RAM page, never 0: a zeroed site
 * never matches). Cleared whenever the translation cache is. */
struct jit_exit_site {
    uint64_t vpc, ppage;
    uintptr_t code;          /* the block's entry (executable view) */
};

/* A TLB entry maps one guest virtual page to host memory: for a hit,
 * host = vaddr + addend. Only RAM is entered; MMIO always takes the slow
 * path. `tag` is the virtual page number, or TLB_INVALID. Write entries are
 * only filled for pages already marked dirty, so a store hitting the TLB
 * needs no dirty bookkeeping. */
#define TLB_INVALID UINT64_MAX
struct code_page;
struct icache;
struct tlb_entry {
    uint64_t tag;
    uintptr_t addend;
    uint64_t paddr_page;     /* guest physical page base */
    struct code_page *code;  /* fetch entries: the page's decoded slots, or NULL */
};

enum hsm_state {
    HSM_STARTED = 0,
    HSM_STOPPED = 1,
    HSM_START_PENDING = 2,
    HSM_STOP_PENDING = 3,
};

struct hart {
    /* ---- architectural state (migratable) ---- */
    uint64_t x[33];          /* x[32] is not architectural: the decoded fast
                                path writes results for rd = x0 there */
    uint64_t f[32];          /* single-precision values are NaN-boxed */
    uint64_t pc;
    uint8_t priv;            /* PRIV_U, PRIV_S, PRIV_M */
    uint8_t fflags;          /* accrued exceptions, low 5 bits */
    uint8_t frm;             /* dynamic rounding mode, 3 bits */
    bool wfi;                /* stalled in WFI until an interrupt is pending */

    uint64_t mstatus;        /* SD is recomputed from FS on read */
    uint64_t misa;
    uint64_t medeleg, mideleg;
    uint64_t mie, mip;       /* mip: atomic (devices and other harts set bits);
                                mie: written by the hart, read by others */
    uint64_t mtvec, mscratch, mepc, mcause, mtval;
    uint64_t mcounteren, scounteren;
    uint64_t menvcfg, senvcfg;
    uint64_t stvec, sscratch, sepc, scause, stval;
    uint64_t satp;
    uint64_t instret;        /* also read as mcycle/cycle */

    uint64_t reservation;    /* physical address of the LR reservation */
    bool reserved;
    uint64_t reserved_value; /* what LR loaded: SC is a host CAS against it
                                (not migrated: after a load the reservation
                                is no longer published, and an SC fails) */

    /* Sstc: STIP is raised while time >= stimecmp, when menvcfg.STCE is
     * set or the machine implements SBI (whose set_timer writes it, as
     * OpenSBI does on a hart with Sstc). See hart_timer_update(). Atomic:
     * the main loop reads it for its timer pass; written only under the
     * device lock (machine_set_hart_timer). */
    uint64_t stimecmp;
    uint8_t hsm;             /* enum hsm_state; atomic (other harts read it) */
    uint64_t hsm_start_addr, hsm_start_arg;

    /* PMP: 16 entries, WARL-checked but not enforced (csr.c says why). */
    uint8_t pmpcfg[PMP_ENTRIES];
    uint64_t pmpaddr[PMP_ENTRIES];

    /* ---- identity and wiring (not migrated) ---- */
    uint32_t hartid;
    struct machine *machine;
    struct bus *bus;
    struct icache *icache;   /* this hart's own decoded code */
    struct lrsc_set *lrsc;   /* the machine's published reservations (lrsc.h) */
    /* Non-zero: leave hart_run at the next check (another thread wants
     * this hart parked, or raised an interrupt). Read atomically. */
    const int *kick;

    /* ---- host-side statistics (not migrated) ---- */
    uint64_t sbi_set_timer_calls; /* SBI set_timer calls (legacy and TIME) */

    /* ---- derived caches (never migrated, flushed on change) ---- */
    struct tlb_entry tlb_read[TLB_SIZE];
    struct tlb_entry tlb_write[TLB_SIZE];
    struct tlb_entry tlb_fetch[TLB_SIZE];
    bool interrupt_check;    /* set when mip/mie/mstatus/priv changed; atomic */
    uint8_t data_priv;       /* privilege for loads/stores (MPRV applied) */
    uint64_t ctx_data;       /* TLB tag context for loads/stores */
    uint64_t ctx_fetch;      /* TLB tag context for instruction fetch */

    /* ---- translating CPU (src/cpu/jit*.c); host caches, never migrated ---- */
    struct jit *jit;         /* this hart's translation cache, or NULL */
    bool use_jit;            /* the machine runs this hart with jit_run */
    uint64_t jit_limit;      /* instret at which the current run ends (0: at once,
                              * hart_end_jit_run); atomic */
    /* Each translated load's last TLB addend, a guess checked against the
     * TLB entry before use: any value is safe. */
    uintptr_t jit_load_slot[JIT_LOAD_SLOTS];
    struct jit_exit_site jit_exit_site[JIT_EXIT_SITES];
};

void hart_init(struct hart *h, uint32_t hartid, struct machine *m, struct bus *bus);
void hart_reset(struct hart *h, uint64_t pc);

/* Enters S-mode at addr with a0 = hartid, a1 = arg, translation off (the
 * state SBI HSM hart_start and the boot ROM hand to a kernel). */
void hart_start_supervisor(struct hart *h, uint64_t addr, uint64_t arg);

/* Drops every cached translation (satp writes, sfence.vma, state load).
 * Privilege, MPRV, SUM and MXR changes need no flush: the TLB tag carries
 * them (hart_update_ctx). */
void hart_tlb_flush(struct hart *h);
/* Drops only write entries: after a dirty-log harvest, the next store to each
 * page must re-mark it. */
void hart_tlb_flush_writes(struct hart *h);

/* Raises or lowers bits of mip from a device or timer (any thread), and
 * notes that the hart must re-check interrupts (waking it from WFI). */
void hart_set_pending(struct hart *h, uint64_t mip_bits, bool level);

static inline uint64_t hart_mip(const struct hart *h)
{
    return __atomic_load_n(&h->mip, __ATOMIC_SEQ_CST);
}

/* Ends a run of translated code at its next exit (any thread): the exits
 * compare instret with jit_limit only, so whoever sets interrupt_check or
 * kicks the hart also sets the limit to 0. jit_run publishes the limit
 * before it looks at both flags (seq_cst on either side): either it sees
 * the flag, or this store comes after its own. */
static inline void hart_end_jit_run(struct hart *h)
{
    __atomic_store_n(&h->jit_limit, 0, __ATOMIC_SEQ_CST);
}

/* Makes the hart look at its interrupts before its next instruction. */
static inline void hart_note_interrupts(struct hart *h)
{
    __atomic_store_n(&h->interrupt_check, true, __ATOMIC_SEQ_CST);
    hart_end_jit_run(h);
}

/* Runs up to `budget` steps: an instruction executed, or a trap that
 * retired none (a faulting fetch, an interrupt taken), so that a trap storm
 * still returns. Returns the steps used (instret counts only instructions).
 * Stops early when the hart enters WFI or is kicked. */
uint64_t hart_run(struct hart *h, uint64_t budget);

/* The supervisor timer (Sstc stimecmp, or the SBI timer which shares it):
 * sets mip.STIP to time >= stimecmp when the timer drives STIP, i.e. when
 * menvcfg.STCE is set or the machine implements SBI; otherwise STIP is
 * left to software (M-mode writes mip). `now` is the time CSR's value.
 * The machine calls it for every hart when time passes. */
void hart_timer_update(struct hart *h, uint64_t now);
/* The time at which hart_timer_update will raise STIP, or UINT64_MAX when
 * the timer does not drive STIP (the machine sleeps until the earliest). */
uint64_t hart_timer_deadline(const struct hart *h);
/* What M-mode firmware sets before entering S-mode (the machine plays the
 * firmware with SBI): Sstc on, cache-block operations allowed to S/U. */
void hart_firmware_envcfg(struct hart *h);

/* True when an enabled interrupt is pending for this hart (used to wake it). */
bool hart_interrupt_pending(const struct hart *h);

/* Migration: the description of a hart's state (src/cpu/hart_state.c),
 * and the hook that rebuilds caches after a load. */
struct vmstate;
extern const struct vmstate hart_vmstate;
void hart_state_loaded(struct hart *h);

/* ---- used by the executor, FPU and SBI; not by devices ---- */

/* Takes an exception: sets the trap CSRs and pc to the handler. The faulting
 * instruction's address is h->pc at the time of the call. */
void hart_raise_exception(struct hart *h, uint64_t cause, uint64_t tval);

/* Virtual-memory accesses with the hart's current translation. On failure
 * they have already raised the right exception and return false; the
 * instruction must then stop without touching pc. Misaligned accesses are
 * performed (split), never trapped. */
bool cpu_load(struct hart *h, uint64_t vaddr, unsigned size, uint64_t *value);
bool cpu_store(struct hart *h, uint64_t vaddr, unsigned size, uint64_t value);

/* CSR access with privilege checks; false means illegal instruction (not yet
 * raised: the caller raises it with the instruction bits). */
bool csr_read(struct hart *h, uint32_t csr, uint64_t *value);
bool csr_write(struct hart *h, uint32_t csr, uint64_t value);

/* Executes one F/D instruction (opcodes LOAD-FP, STORE-FP, FMADD, FMSUB,
 * FNMSUB, FNMADD, OP-FP; compressed FP loads/stores arrive expanded).
 * Returns true when it completed (the caller advances pc), false when it
 * raised an exception (pc already points at the handler). Raises illegal
 * instruction when mstatus.FS is Off or the encoding is invalid. Marks FS
 * Dirty when it writes an f register or fflags. */
bool fpu_exec(struct hart *h, uint32_t insn);

/* Handles an ECALL from S-mode when the machine implements SBI itself.
 * Returns true if handled (caller advances pc by 4). */
bool sbi_ecall(struct hart *h);

#endif
