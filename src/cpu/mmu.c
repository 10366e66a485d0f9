/* Address translation (Sv39/Sv48), the TLB with host-pointer addends, and
 * the slow paths of loads, stores and fetches. */
#include <string.h>

#include "cpu/cpu_internal.h"
#include "cpu/lrsc.h"
#include "cpu/jit.h"
#include "mem/bus.h"

static uint64_t fault_cause(enum access access, bool page_fault)
{
    switch (access) {
    case ACCESS_FETCH: return page_fault ? CAUSE_FETCH_PAGE_FAULT : CAUSE_FETCH_ACCESS;
    case ACCESS_WRITE: return page_fault ? CAUSE_STORE_PAGE_FAULT : CAUSE_STORE_ACCESS;
    default: return page_fault ? CAUSE_LOAD_PAGE_FAULT : CAUSE_LOAD_ACCESS;
    }
}

GUEST_MEMORY_ACCESS
bool mmu_translate(struct hart *h, uint64_t vaddr, enum access access, uint64_t *paddr,
                   uint64_t *cause)
{
    unsigned priv = access == ACCESS_FETCH ? h->priv : h->data_priv;
    unsigned mode = (unsigned)(h->satp >> SATP_MODE_SHIFT);
    if (priv == PRIV_M || mode == SATP_MODE_BARE) {
        *paddr = vaddr;
        return true;
    }
    int levels = mode == SATP_MODE_SV48 ? 4 : 3;
    int va_bits = 12 + 9 * levels;
    /* Bits above the top VA bit must all equal it. */
    if ((uint64_t)((int64_t)(vaddr << (64 - va_bits)) >> (64 - va_bits)) != vaddr) {
        *cause = fault_cause(access, true);
        return false;
    }
    struct ram *ram = &h->bus->ram;
walk:;
    uint64_t table = (h->satp & SATP_PPN_MASK) << 12;
    for (int level = levels - 1; level >= 0; level--) {
        uint64_t pte_addr = table + ((vaddr >> (12 + 9 * level)) & 0x1ff) * 8;
        if (!ram_contains(ram, pte_addr, 8)) {
            *cause = fault_cause(access, false);
            return false;
        }
        uint64_t *pte_host = (uint64_t *)ram_host(ram, pte_addr); /* 8-byte aligned */
        uint64_t pte = __atomic_load_n(pte_host, __ATOMIC_RELAXED);
        if (!(pte & PTE_V) || (!(pte & PTE_R) && (pte & PTE_W)) || (pte >> 54)) {
            *cause = fault_cause(access, true);
            return false;
        }
        uint64_t ppn = (pte >> 10) & ((1ull << 44) - 1);
        if (!(pte & (PTE_R | PTE_X))) {
            table = ppn << 12; /* pointer to the next level */
            continue;
        }
        /* Leaf: permission checks. */
        bool ok;
        if (pte & PTE_U)
            ok = priv == PRIV_U || (access != ACCESS_FETCH && (h->mstatus & MSTATUS_SUM));
        else
            ok = priv != PRIV_U;
        if (ok) {
            if (access == ACCESS_FETCH)
                ok = pte & PTE_X;
            else if (access == ACCESS_WRITE)
                ok = pte & PTE_W;
            else
                ok = (pte & PTE_R) || ((h->mstatus & MSTATUS_MXR) && (pte & PTE_X));
        }
        /* A superpage's PPN must be aligned to its size. */
        uint64_t low_mask = (1ull << (9 * level)) - 1;
        if (!ok || (ppn & low_mask)) {
            *cause = fault_cause(access, true);
            return false;
        }
        /* Hardware A/D update, like QEMU: the PTE is guest RAM, so the
         * write is logged dirty for migration. Atomic against other harts
         * changing the PTE (the privileged spec requires it): if it
         * changed since we read it, walk again. */
        uint64_t want = PTE_A | (access == ACCESS_WRITE ? PTE_D : 0);
        if ((pte & want) != want) {
            if (!__atomic_compare_exchange_n(pte_host, &pte, pte | want, false,
                                             __ATOMIC_SEQ_CST, __ATOMIC_RELAXED))
                goto walk;
            ram_mark_dirty(ram, pte_addr, 8);
        }
        *paddr = ((ppn & ~low_mask) << 12) | (vaddr & ((low_mask << 12) | 0xfff));
        return true;
    }
    *cause = fault_cause(access, true);
    return false;
}

static void tlb_fill(struct hart *h, enum access access, uint64_t vaddr, uint64_t paddr)
{
    struct ram *ram = &h->bus->ram;
    uint64_t ppage = paddr & ~0xfffull;
    if (!ram_contains(ram, ppage, RAM_PAGE_SIZE))
        return; /* MMIO is never cached */
    struct tlb_entry *tlb;
    uint64_t ctx;
    switch (access) {
    case ACCESS_FETCH:
        return; /* fetch entries also carry decoded code: exec.c fills them */
    case ACCESS_WRITE:
        /* Stores to pages holding translated code stay on the slow path,
         * which invalidates the translations. */
        if (jit_page_has_code(ram, (ppage - ram->base) >> RAM_PAGE_SHIFT))
            return;
        tlb = h->tlb_write; ctx = h->ctx_data;
        /* Writes through this entry skip the dirty log until the next
         * harvest drops it: mark the page now. */
        ram_mark_dirty_page(ram, (ppage - ram->base) >> RAM_PAGE_SHIFT);
        break;
    default: tlb = h->tlb_read; ctx = h->ctx_data; break;
    }
    struct tlb_entry *e = &tlb[(vaddr >> 12) & (TLB_SIZE - 1)];
    e->tag = (vaddr >> 12) | ctx;
    e->addend = (uintptr_t)ram_host(ram, ppage) - (vaddr & ~0xfffull);
    e->paddr_page = ppage;
}

/* One access inside a single page: translate, fill the TLB, do it. */
GUEST_MEMORY_ACCESS
static bool access_in_page(struct hart *h, uint64_t vaddr, unsigned size, uint64_t *value,
                           enum access access)
{
    uint64_t paddr, cause;
    if (!mmu_translate(h, vaddr, access, &paddr, &cause)) {
        hart_raise_exception(h, cause, vaddr);
        return false;
    }
    tlb_fill(h, access, vaddr, paddr);
    struct bus *bus = h->bus;
    bool ok;
    if (ram_contains(&bus->ram, paddr, size)) {
        uint8_t *p = ram_host(&bus->ram, paddr);
        if (access == ACCESS_WRITE) {
            lrsc_store_check(h, p, size);
            guest_ram_put(p, *value, size);
            ram_mark_dirty(&bus->ram, paddr, size);
        } else {
            *value = guest_ram_get(p, size);
        }
        return true;
    }
    if (paddr & (size - 1)) {
        /* Misaligned MMIO: split into bytes. */
        ok = true;
        uint64_t v = access == ACCESS_WRITE ? *value : 0;
        for (unsigned i = 0; i < size && ok; i++) {
            uint64_t b = (v >> (8 * i)) & 0xff;
            if (access == ACCESS_WRITE)
                ok = bus_store(bus, paddr + i, 1, b);
            else if ((ok = bus_load(bus, paddr + i, 1, &b)))
                v |= b << (8 * i);
        }
        if (ok && access != ACCESS_WRITE)
            *value = v;
    } else if (access == ACCESS_WRITE) {
        ok = bus_store(bus, paddr, size, *value);
    } else {
        ok = bus_load(bus, paddr, size, value);
    }
    if (!ok) {
        hart_raise_exception(h, access == ACCESS_WRITE ? CAUSE_STORE_ACCESS
                                : access == ACCESS_FETCH ? CAUSE_FETCH_ACCESS
                                                         : CAUSE_LOAD_ACCESS, vaddr);
        return false;
    }
    return true;
}

GUEST_MEMORY_ACCESS
bool cpu_load(struct hart *h, uint64_t vaddr, unsigned size, uint64_t *value)
{
    unsigned off = vaddr & 0xfff;
    if (off + size <= 4096) {
        /* TLB hit first: the FPU and AMO paths come straight here. */
        struct tlb_entry *e = &h->tlb_read[(vaddr >> 12) & (TLB_SIZE - 1)];
        if (e->tag == ((vaddr >> 12) | h->ctx_data)) {
            const void *p = (const void *)(uintptr_t)(vaddr + e->addend);
            /* Fixed-size copies compile to single moves. */
            switch (size) {
            case 1: *value = *(const uint8_t *)p; break;
            case 2: { uint16_t t; memcpy(&t, p, 2); *value = t; break; }
            case 4: { uint32_t t; memcpy(&t, p, 4); *value = t; break; }
            default: memcpy(value, p, 8); break;
            }
            return true;
        }
        return access_in_page(h, vaddr, size, value, ACCESS_READ);
    }
    /* Crosses a page: two accesses, little-endian halves. */
    unsigned first = 4096 - off;
    uint64_t lo, hi;
    if (!access_in_page(h, vaddr, first, &lo, ACCESS_READ) ||
        !access_in_page(h, vaddr + first, size - first, &hi, ACCESS_READ))
        return false;
    *value = lo | hi << (8 * first);
    return true;
}

GUEST_MEMORY_ACCESS
bool cpu_store(struct hart *h, uint64_t vaddr, unsigned size, uint64_t value)
{
    unsigned off = vaddr & 0xfff;
    if (off + size <= 4096) {
        struct tlb_entry *e = &h->tlb_write[(vaddr >> 12) & (TLB_SIZE - 1)];
        if (e->tag == ((vaddr >> 12) | h->ctx_data)) {
            void *p = (void *)(uintptr_t)(vaddr + e->addend);
            lrsc_store_check(h, p, size);
            switch (size) {
            case 1: *(uint8_t *)p = (uint8_t)value; break;
            case 2: { uint16_t t = (uint16_t)value; memcpy(p, &t, 2); break; }
            case 4: { uint32_t t = (uint32_t)value; memcpy(p, &t, 4); break; }
            default: memcpy(p, &value, 8); break;
            }
            return true;
        }
        return access_in_page(h, vaddr, size, &value, ACCESS_WRITE);
    }
    /* Crosses a page: check that both halves translate before writing
     * either, so a fault leaves memory untouched. */
    unsigned first = 4096 - off;
    uint64_t pa, cause;
    if (!mmu_translate(h, vaddr + first, ACCESS_WRITE, &pa, &cause)) {
        hart_raise_exception(h, cause, vaddr + first);
        return false;
    }
    uint64_t lo = value & (first == 8 ? ~0ull : ((1ull << (8 * first)) - 1));
    uint64_t hi = value >> (8 * first);
    return access_in_page(h, vaddr, first, &lo, ACCESS_WRITE) &&
           access_in_page(h, vaddr + first, size - first, &hi, ACCESS_WRITE);
}

bool cpu_fetch_slow(struct hart *h, uint64_t pc, uint32_t *insn)
{
    uint64_t lo;
    if (!access_in_page(h, pc, 2, &lo, ACCESS_FETCH))
        return false;
    if ((lo & 3) != 3) {
        *insn = (uint32_t)lo;
        return true;
    }
    uint64_t hi;
    if (!access_in_page(h, pc + 2, 2, &hi, ACCESS_FETCH)) {
        /* A fault on the second half reports the instruction's address. */
        return false;
    }
    *insn = (uint32_t)(lo | hi << 16);
    return true;
}

static uint8_t *rmw_ptr(struct hart *h, uint64_t vaddr, unsigned size, uint64_t *paddr,
                        enum access access)
{
    if (vaddr & (size - 1)) {
        hart_raise_exception(h, access == ACCESS_WRITE ? CAUSE_MISALIGNED_STORE
                                                       : CAUSE_MISALIGNED_LOAD, vaddr);
        return NULL;
    }
    uint64_t cause;
    if (!mmu_translate(h, vaddr, access, paddr, &cause)) {
        hart_raise_exception(h, cause, vaddr);
        return NULL;
    }
    struct ram *ram = &h->bus->ram;
    if (!ram_contains(ram, *paddr, size)) {
        /* Atomics on MMIO are not supported by any device we model. */
        hart_raise_exception(h, access == ACCESS_WRITE ? CAUSE_STORE_ACCESS : CAUSE_LOAD_ACCESS,
                             vaddr);
        return NULL;
    }
    tlb_fill(h, access, vaddr, *paddr);
    if (access == ACCESS_WRITE)
        ram_mark_dirty(ram, *paddr, size);
    return ram_host(ram, *paddr);
}

uint8_t *cpu_amo_ptr(struct hart *h, uint64_t vaddr, unsigned size, uint64_t *paddr)
{
    return rmw_ptr(h, vaddr, size, paddr, ACCESS_WRITE);
}

uint8_t *cpu_lr_ptr(struct hart *h, uint64_t vaddr, unsigned size, uint64_t *paddr)
{
    return rmw_ptr(h, vaddr, size, paddr, ACCESS_READ);
}
