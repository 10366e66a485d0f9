/* A hart's migrated state, apart from struct hart: the interpreter's hart
 * carries TLBs, decode caches, wiring and host-side bookkeeping that must
 * never travel. The stream's "cpu" record is this plain struct (described
 * in hart_state.c); hart_wire_save/load copy between it and a hart. Each
 * field has the hart's own type, and the array counts are checked. */
#ifndef FERRY_CPU_HART_WIRE_H
#define FERRY_CPU_HART_WIRE_H

#include "cpu/hart.h"

#define HART_WIRE_XREGS 32   /* x0..x31: the hart's x[32] is a discard slot */
#define HART_WIRE_FREGS 32

/* The scalar fields, each with the hart's own type: one list for the
 * struct and for the copies both ways, so they cannot drift apart. (The
 * stream's field order and versions are in hart_state.c.) */
#define HART_WIRE_SCALARS(X)                                                                \
    X(pc) X(priv) X(fflags) X(frm) X(wfi) X(mstatus) X(misa) X(medeleg) X(mideleg) X(mie)  \
    X(mip) X(mtvec) X(mscratch) X(mepc) X(mcause) X(mtval) X(mcounteren) X(scounteren)     \
    X(stvec) X(sscratch) X(sepc) X(scause) X(stval) X(satp) X(instret) X(reservation)      \
    X(reserved) X(stimecmp) X(hsm) X(hsm_start_addr) X(hsm_start_arg) X(menvcfg)        \
    X(senvcfg)

#define HART_WIRE_FIELD(member) __typeof__(((struct hart *)0)->member) member;

struct hart_wire {
    uint64_t x[HART_WIRE_XREGS];
    uint64_t f[HART_WIRE_FREGS];
    uint8_t pmpcfg[PMP_ENTRIES];
    uint64_t pmpaddr[PMP_ENTRIES];
    HART_WIRE_SCALARS(HART_WIRE_FIELD)
};

_Static_assert(sizeof(((struct hart *)0)->x) / sizeof(uint64_t) == HART_WIRE_XREGS + 1,
               "the hart has x0..x31 plus its discard slot");
_Static_assert(sizeof(((struct hart *)0)->f) / sizeof(uint64_t) == HART_WIRE_FREGS,
               "the hart has f0..f31");

/* The hart's migratable state into w (before saving, and before loading a
 * record that may lack newer fields: they keep the hart's values). */
void hart_wire_save(const struct hart *h, struct hart_wire *w);
/* A loaded (checked) w into the hart; derived caches are rebuilt. */
void hart_wire_load(struct hart *h, const struct hart_wire *w);

#endif
