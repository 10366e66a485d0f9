/* The translating CPU's cache and dispatch loop, and the C helpers its
 * generated code calls (slow paths of loads and stores, the interpreter
 * fallback for instructions it does not translate, division).
 *
 * Dispatch: the fetch TLB (filled as the interpreter fills it) gives the
 * physical pc; a direct-mapped cache, then a hash table, give the block;
 * a miss translates. Exits to a target in the same guest page are chained:
 * the dispatcher patches the exit's jump to the target block, after which
 * the exit checks budget, interrupts and kick inline and jumps on without
 * coming back here. Same-page targets share the source's page mapping, so
 * a chain is valid as long as the source block is. Cross-page and
 * indirect jumps come back here to look the target up through the TLB. */
#include "cpu/jit.h"

#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "cpu/cpu_internal.h"
#include "cpu/icache.h"
#include "machine/machine.h"

int jit_test_mistranslate;

#if defined(__x86_64__)

#include "cpu/jit_internal.h"
#include "cpu/jit_x86.h"
#include "mem/bus.h"

#define likely(x) __builtin_expect(!!(x), 1)
#define unlikely(x) __builtin_expect(!!(x), 0)

static void jit_emit_stubs(struct jit *j)
{
    struct emit e = {.p = j->buf, .end = j->buf + 256};
    /* enter(h, code): save callee-saved registers, keep the stack 16-byte
     * aligned for helper calls, rbx = h, jump into the block. */
    static const uint8_t enter[] = {
        0x53, 0x55, 0x41, 0x54, 0x41, 0x55, 0x41, 0x56, 0x41, 0x57, /* push rbx..r15 */
        0x48, 0x83, 0xec, 0x08,                                     /* sub rsp, 8 */
        0x48, 0x89, 0xfb,                                           /* mov rbx, rdi */
        0xff, 0xe6,                                                 /* jmp rsi */
    };
    static const uint8_t epilogue[] = {
        0x48, 0x83, 0xc4, 0x08,                                     /* add rsp, 8 */
        0x41, 0x5f, 0x41, 0x5e, 0x41, 0x5d, 0x41, 0x5c, 0x5d, 0x5b, /* pop r15..rbx */
        0xc3,                                                       /* ret */
    };
    j->enter = (uint8_t *(*)(struct hart *, const uint8_t *))(void *)(e.p + j->exec_delta);
    for (size_t i = 0; i < sizeof enter; i++)
        x_u8(&e, enter[i]);
    j->epilogue = e.p;
    for (size_t i = 0; i < sizeof epilogue; i++)
        x_u8(&e, epilogue[i]);
    j->code_start = j->buf + 256;
}

/* W^X: a writable and an executable view of one memfd, so no page is
 * ever both; a single RWX mapping if that is not possible. */
static bool jit_map_code(struct jit *j)
{
    int fd = memfd_create("ferry-jit", MFD_CLOEXEC);
    if (fd >= 0) {
        void *rw = MAP_FAILED, *rx = MAP_FAILED;
        if (ftruncate(fd, JIT_CODE_SIZE) == 0) {
            rw = mmap(NULL, JIT_CODE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
            rx = mmap(NULL, JIT_CODE_SIZE, PROT_READ | PROT_EXEC, MAP_SHARED, fd, 0);
        }
        close(fd);
        if (rw != MAP_FAILED && rx != MAP_FAILED) {
            j->buf = rw;
            j->exec_delta = (intptr_t)((uint8_t *)rx - (uint8_t *)rw);
            return true;
        }
        if (rw != MAP_FAILED)
            munmap(rw, JIT_CODE_SIZE);
        if (rx != MAP_FAILED)
            munmap(rx, JIT_CODE_SIZE);
    }
    void *p = mmap(NULL, JIT_CODE_SIZE, PROT_READ | PROT_WRITE | PROT_EXEC,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED)
        return false;
    j->buf = p;
    j->exec_delta = 0;
    return true;
}

static void jit_unmap_code(struct jit *j)
{
    munmap(j->buf, JIT_CODE_SIZE);
    if (j->exec_delta)
        munmap(j->buf + j->exec_delta, JIT_CODE_SIZE);
}

static struct jit *jit_create(struct hart *h)
{
    struct ram *ram = &h->bus->ram;
    if (!__atomic_load_n(&ram->jit_code, __ATOMIC_ACQUIRE)) {
        uint8_t *map = calloc(ram->npages ? ram->npages : 1, 1);
        uint8_t *none = NULL;
        if (!map)
            return NULL;
        if (!__atomic_compare_exchange_n(&ram->jit_code, &none, map, false, __ATOMIC_ACQ_REL,
                                         __ATOMIC_ACQUIRE))
            free(map); /* another hart's map won */
    }
    struct jit *j = calloc(1, sizeof *j);
    if (!j)
        return NULL;
    if (!jit_map_code(j)) {
        free(j);
        return NULL;
    }
    j->blocks = calloc(JIT_MAX_BLOCKS, sizeof *j->blocks);
    if (!j->blocks) {
        jit_unmap_code(j);
        free(j);
        return NULL;
    }
    j->have_fma = __builtin_cpu_supports("fma");
    j->have_bmi2 = __builtin_cpu_supports("bmi2");
    jit_emit_stubs(j);
    j->code_ptr = j->code_start;
    j->code_end = j->buf + JIT_CODE_SIZE;
    j->icache_epoch = h->icache ? h->icache->epoch : 0;
    j->code_gen = __atomic_load_n(&ram->jit_code_gen, __ATOMIC_ACQUIRE);
    j->hart = h;
    memset(h->jit_exit_site, 0, sizeof h->jit_exit_site);
    h->jit = j;
    return j;
}

static void jit_reset(struct jit *j)
{
    /* The exit sites point into the code dropped here. */
    memset(j->hart->jit_exit_site, 0, sizeof j->hart->jit_exit_site);
    j->code_ptr = j->code_start;
    j->nblocks = 0;
    memset(j->buckets, 0, sizeof j->buckets);
    memset(j->fast, 0, sizeof j->fast);
    j->stats.flushes++;
}

void jit_flush(struct hart *h)
{
    if (h->jit)
        jit_reset(h->jit);
}

void jit_free(struct hart *h)
{
    struct jit *j = h->jit;
    if (!j)
        return;
    jit_unmap_code(j);
    free(j->blocks);
    free(j);
    h->jit = NULL;
}

void jit_stats_add(const struct hart *h, struct jit_stats *s)
{
    if (!h->jit)
        return;
    s->blocks += h->jit->stats.blocks;
    s->flushes += h->jit->stats.flushes;
    s->code_writes += h->jit->stats.code_writes;
    s->translate_ns += h->jit->stats.translate_ns;
}

static unsigned bucket_of(uint64_t vpc, uint64_t ppc)
{
    return (unsigned)(((vpc ^ (ppc << 7)) * 0x9E3779B97F4A7C15ull) >> 50) & (JIT_BUCKETS - 1);
}

static struct jit_block *jit_lookup(struct jit *j, uint64_t vpc, uint64_t ppc)
{
    struct jit_block *b = j->fast[(vpc >> 1) & (JIT_FAST - 1)];
    if (likely(b && b->vpc == vpc && b->ppc == ppc))
        return b;
    for (b = j->buckets[bucket_of(vpc, ppc)]; b; b = b->next) {
        if (b->vpc == vpc && b->ppc == ppc) {
            j->fast[(vpc >> 1) & (JIT_FAST - 1)] = b;
            return b;
        }
    }
    return NULL;
}

/* CPU time of this (the hart's) thread: what translating costs, not the
 * time the host kept the thread waiting. */
static uint64_t thread_cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Marks the page as holding code and drops this hart's write-TLB entries
 * for it, so stores to it take the slow path from now on. */
static void jit_protect_page(struct hart *h, uint64_t ppage)
{
    struct ram *ram = &h->bus->ram;
    uint64_t page = (ppage - ram->base) >> RAM_PAGE_SHIFT;
    /* The map's pointer too: another hart's jit_create may publish it. */
    uint8_t *map = __atomic_load_n(&ram->jit_code, __ATOMIC_ACQUIRE);
    if (!__atomic_load_n(&map[page], __ATOMIC_RELAXED))
        __atomic_store_n(&map[page], 1, __ATOMIC_SEQ_CST);
    for (unsigned i = 0; i < TLB_SIZE; i++)
        if (h->tlb_write[i].tag != TLB_INVALID && h->tlb_write[i].paddr_page == ppage)
            h->tlb_write[i].tag = TLB_INVALID;
}

static struct jit_block *jit_get_block(struct jit *j, struct hart *h, uint64_t pc, uint64_t ppc,
                                       const uint8_t *host_page, bool *crossing)
{
    struct jit_block *b = jit_lookup(j, pc, ppc);
    *crossing = false;
    if (b)
        return b;
    uint64_t t0 = thread_cpu_ns();
    jit_protect_page(h, ppc & ~0xfffull);
    enum jit_translate_result r = jit_translate(j, h, pc, ppc, host_page, &b);
    if (r == JIT_FULL) {
        jit_reset(j);
        r = jit_translate(j, h, pc, ppc, host_page, &b);
    }
    j->stats.translate_ns += thread_cpu_ns() - t0;
    if (r != JIT_OK) {
        *crossing = r == JIT_CROSSING;
        return NULL;
    }
    j->stats.blocks++;
    unsigned bk = bucket_of(pc, ppc);
    b->next = j->buckets[bk];
    j->buckets[bk] = b;
    j->fast[(pc >> 1) & (JIT_FAST - 1)] = b;
    return b;
}

/* The fetch TLB entry for pc, filled as the interpreter fills it (with the
 * page's decoded slots, so either engine can use it). NULL when pc is not
 * in RAM or the decoded-code cache is full (*faulted false: run the
 * instruction uncached) or fetching faulted (*faulted true: trap taken). */
static struct tlb_entry *jit_fetch_entry(struct hart *h, uint64_t pc, bool *faulted)
{
    struct tlb_entry *e = &h->tlb_fetch[(pc >> 12) & (TLB_SIZE - 1)];
    *faulted = false;
    if (likely(e->tag == ((pc >> 12) | h->ctx_fetch)))
        return e;
    uint64_t paddr, cause;
    if (!mmu_translate(h, pc, ACCESS_FETCH, &paddr, &cause)) {
        hart_raise_exception(h, cause, pc);
        *faulted = true;
        return NULL;
    }
    struct ram *ram = &h->bus->ram;
    uint64_t ppage = paddr & ~0xfffull;
    if (!ram_contains(ram, ppage, RAM_PAGE_SIZE) || !h->icache)
        return NULL;
    struct code_page *cp = icache_page(h->icache, ppage);
    if (!cp)
        return NULL;
    e->tag = (pc >> 12) | h->ctx_fetch;
    e->addend = (uintptr_t)ram_host(ram, ppage) - (pc & ~0xfffull);
    e->paddr_page = ppage;
    e->code = cp;
    return e;
}

/* Translations are stale after a write into a page holding code (the
 * shared generation moved). Every writer of RAM reports such writes
 * (ram_mark_dirty), and this hart's stores to such pages never hit its
 * write TLB, so on a machine with one hart nothing else can change
 * translated code and FENCE.I needs no flush. With more harts, another
 * hart's write TLB may still hold an entry for a page this one translated
 * since (its stores are not seen): FENCE.I (the icache epoch) then drops
 * everything, which is what the ISA requires of such code anyway. */
static bool jit_check_stale(struct jit *j, struct hart *h)
{
    uint64_t gen = __atomic_load_n(&h->bus->ram.jit_code_gen, __ATOMIC_ACQUIRE);
    uint64_t epoch = h->icache ? h->icache->epoch : 0;
    if (likely(gen == j->code_gen && epoch == j->icache_epoch))
        return false;
    bool flush = gen != j->code_gen || (h->machine && h->machine->nharts > 1);
    if (gen != j->code_gen)
        j->stats.code_writes++;
    j->code_gen = gen;
    j->icache_epoch = epoch;
    if (!flush)
        return false;
    jit_reset(j);
    return true;
}

uint64_t jit_run(struct hart *h, uint64_t budget)
{
    struct jit *j = h->jit ? h->jit : jit_create(h);
    if (!j)
        return hart_run(h, budget);
    uint64_t n = 0;
    uint8_t *slot = NULL;           /* chain slot of the exit just taken */
    const int *kick = h->kick;
    while (n < budget) {
        if (unlikely(__atomic_load_n(kick, __ATOMIC_RELAXED)))
            break;
        /* A trap costs the slice one step though it retires nothing (as
         * hart_run's CHARGE_TRAP): a guest in a trap storm still yields. */
        if (unlikely(__atomic_load_n(&h->interrupt_check, __ATOMIC_RELAXED))) {
            if (hart_take_interrupt(h))
                n++;
            slot = NULL;
        }
        if (unlikely(h->wfi))
            break;
        if (unlikely(jit_check_stale(j, h)))
            slot = NULL;
        uint64_t pc = h->pc, before = h->instret;
        bool faulted, crossing = false;
        struct tlb_entry *e = jit_fetch_entry(h, pc, &faulted);
        struct jit_block *b = NULL;
        if (e) {
            uint64_t ppc = e->paddr_page | (pc & 0xfff);
            const uint8_t *host_page = (const uint8_t *)(uintptr_t)((pc & ~0xfffull) + e->addend);
            uint64_t flushes = j->stats.flushes;
            b = jit_get_block(j, h, pc, ppc, host_page, &crossing);
            if (j->stats.flushes != flushes)
                slot = NULL; /* the cache was flushed: the slot is gone */
        }
        if (!b) {
            slot = NULL;
            if (!faulted)
                hart_step(h);
            n++; /* an instruction, or a fetch fault's trap */
            continue;
        }
        if (slot) {
            x_patch(slot, b->code);
            slot = NULL;
        }
        /* The limit first, then the flags (hart_end_jit_run): a kick or
         * interrupt from now on ends the run at its next exit. */
        __atomic_store_n(&h->jit_limit, before + (budget - n), __ATOMIC_SEQ_CST);
        if (unlikely(__atomic_load_n(kick, __ATOMIC_SEQ_CST) ||
                     __atomic_load_n(&h->interrupt_check, __ATOMIC_SEQ_CST)))
            continue;   /* the loop's top deals with them */
        slot = j->enter(h, b->code + j->exec_delta);
        uint64_t ran = h->instret - before;
        /* A CSR write to minstret moves instret arbitrarily: count 1. */
        n += ran <= budget ? ran : 1;
    }
    return n;
}

/* ---- helpers called from generated code ---- */

/* At an indirect or cross-page exit (h->pc and instret already set): the
 * next block's code when it can run at once (budget left, nothing pending,
 * translations current, fetch TLB hit, block translated), else NULL and
 * the dispatcher takes over. Saves the trip through jit_run's loop for
 * calls and returns; the exit's site remembers the block, so that next
 * time the exit's own code jumps there without calling here. */
const uint8_t *jit_next(struct hart *h, unsigned site)
{
    struct jit *j = h->jit;
    /* A kick or a pending interrupt has set the limit to 0 (hart_end_jit_run). */
    if (unlikely(h->instret >= __atomic_load_n(&h->jit_limit, __ATOMIC_RELAXED)))
        return NULL;
    if (unlikely(__atomic_load_n(&h->bus->ram.jit_code_gen, __ATOMIC_ACQUIRE) != j->code_gen ||
                 (h->icache && h->icache->epoch != j->icache_epoch)))
        return NULL;
    uint64_t pc = h->pc;
    const struct tlb_entry *e = &h->tlb_fetch[(pc >> 12) & (TLB_SIZE - 1)];
    if (unlikely(e->tag != ((pc >> 12) | h->ctx_fetch)))
        return NULL;
    struct jit_block *b = jit_lookup(j, pc, e->paddr_page | (pc & 0xfff));
    if (!b)
        return NULL;
    struct jit_exit_site *s = &h->jit_exit_site[site % JIT_EXIT_SITES];
    s->vpc = pc;
    s->ppage = e->paddr_page;
    s->code = (uintptr_t)(b->code + j->exec_delta);
    return b->code + j->exec_delta;
}

/* info: rd | op << 8 | len << 16 (op: enum decoded_op, a load or FLW/FLD) */
int jit_load_slow(struct hart *h, uint64_t va, uint32_t info, uint64_t pc)
{
    unsigned rd = info & 0xff, op = (info >> 8) & 0xff, len = info >> 16;
    static const uint8_t sizes[] = {1, 2, 4, 8, 1, 2, 4};
    bool fp = op == OP_FLW || op == OP_FLD;
    unsigned k = op - OP_LB;
    uint64_t v;
    h->pc = pc;
    if (!cpu_load(h, va, fp ? (op == OP_FLD ? 8 : 4) : sizes[k], &v)) {
        h->instret++; /* as the interpreter counts a trapping instruction */
        return 1;
    }
    if (fp) {
        h->f[rd] = op == OP_FLD ? v : v | 0xffffffff00000000ull;
        h->mstatus |= MSTATUS_FS;
    } else {
        if (k == 0) v = (uint64_t)(int64_t)(int8_t)v;
        else if (k == 1) v = (uint64_t)(int64_t)(int16_t)v;
        else if (k == 2) v = (uint64_t)(int64_t)(int32_t)v;
        h->x[rd] = v;
    }
    if (unlikely(__atomic_load_n(&h->interrupt_check, __ATOMIC_RELAXED))) { /* MMIO irq */
        h->pc = pc + len;
        h->instret++;
        return 1;
    }
    return 0;
}

/* info: size | len << 16 */
int jit_store_slow(struct hart *h, uint64_t va, uint64_t value, uint32_t info, uint64_t pc)
{
    unsigned size = info & 0xff, len = info >> 16;
    h->pc = pc;
    if (!cpu_store(h, va, size, value)) {
        h->instret++;
        return 1;
    }
    uint64_t gen = __atomic_load_n(&h->bus->ram.jit_code_gen, __ATOMIC_ACQUIRE);
    if (unlikely(__atomic_load_n(&h->interrupt_check, __ATOMIC_RELAXED) ||
                 gen != h->jit->code_gen)) {
        /* An interrupt, or the store hit translated code (maybe this
         * very block): leave so the dispatcher drops stale blocks. */
        h->pc = pc + len;
        h->instret++;
        return 1;
    }
    return 0;
}

/* Runs one untranslated instruction through the interpreter. insn: the
 * original bits (16 or 32); raw: RVC-expanded; info: len | op << 8.
 * instret follows hart_run's decoded-code path: SYSTEM and FENCE.I are
 * counted after they run (a CSR read of instret excludes itself), and an
 * instruction that traps is counted too. */
int jit_fallback(struct hart *h, uint32_t insn, uint64_t pc, uint32_t info, uint32_t raw)
{
    unsigned len = info & 0xff, op = info >> 8;
    uint64_t before = h->instret;
    bool ok;
    h->pc = pc;
    switch (op) {
    case OP_FP: case OP_FLW: case OP_FLD: case OP_FSW: case OP_FSD:
        ok = fpu_exec(h, raw); /* the FPU directly: no second decode */
        h->x[0] = 0;
        h->instret = before + 1;
        break;
    case OP_AMO: case OP_ILLEGAL:
        ok = hart_exec_generic(h, insn);
        h->instret = before + 1;
        break;
    case OP_SYSTEM: case OP_FENCE_I:
        /* CSRs see the instructions before this one; a minstret write
         * stores its value less one (csr.c), so the increment after
         * it lands on the written value. */
        ok = hart_exec_generic(h, insn);
        h->instret++;
        break;
    default: /* operations newer than this translator */
        hart_exec_insn(h, insn);
        if (h->instret == before)
            h->instret++;
        ok = false;
        break;
    }
    if (ok)
        h->pc = pc + len;
    if ((op == OP_SYSTEM && !jit_is_fp_csr(insn)) || op == OP_FENCE_I || op == OP_ILLEGAL)
        return 1; /* may change privilege, translation or code: re-dispatch */
    if (h->pc != pc + len || __atomic_load_n(&h->interrupt_check, __ATOMIC_RELAXED))
        return 1;
    uint64_t gen = __atomic_load_n(&h->bus->ram.jit_code_gen, __ATOMIC_ACQUIRE);
    return gen != h->jit->code_gen;
}

uint64_t jit_mulhsu(uint64_t a, uint64_t b)
{
    return (uint64_t)(((__int128)(int64_t)a * (unsigned __int128)b) >> 64);
}
uint64_t jit_div(uint64_t a, uint64_t b)
{
    if (b == 0) return UINT64_MAX;
    if ((int64_t)a == INT64_MIN && (int64_t)b == -1) return a;
    return (uint64_t)((int64_t)a / (int64_t)b);
}
uint64_t jit_divu(uint64_t a, uint64_t b) { return b ? a / b : UINT64_MAX; }
uint64_t jit_rem(uint64_t a, uint64_t b)
{
    if (b == 0) return a;
    if ((int64_t)a == INT64_MIN && (int64_t)b == -1) return 0;
    return (uint64_t)((int64_t)a % (int64_t)b);
}
uint64_t jit_remu(uint64_t a, uint64_t b) { return b ? a % b : a; }
static uint64_t sx32(uint64_t v) { return (uint64_t)(int64_t)(int32_t)v; }
uint64_t jit_divw(uint64_t a, uint64_t b)
{
    int32_t sa = (int32_t)a, sb = (int32_t)b;
    if (sb == 0) return UINT64_MAX;
    if (sa == INT32_MIN && sb == -1) return sx32((uint32_t)sa);
    return sx32((uint32_t)(sa / sb));
}
uint64_t jit_divuw(uint64_t a, uint64_t b)
{
    return (uint32_t)b == 0 ? UINT64_MAX : sx32((uint32_t)a / (uint32_t)b);
}
uint64_t jit_remw(uint64_t a, uint64_t b)
{
    int32_t sa = (int32_t)a, sb = (int32_t)b;
    if (sb == 0) return sx32((uint32_t)sa);
    if (sa == INT32_MIN && sb == -1) return 0;
    return sx32((uint32_t)(sa % sb));
}
uint64_t jit_remuw(uint64_t a, uint64_t b)
{
    return (uint32_t)b == 0 ? sx32(a) : sx32((uint32_t)a % (uint32_t)b);
}

#else /* not x86-64: the interpreter runs everything */

uint64_t jit_run(struct hart *h, uint64_t budget) { return hart_run(h, budget); }
void jit_flush(struct hart *h) { (void)h; }
void jit_free(struct hart *h) { (void)h; }
void jit_stats_add(const struct hart *h, struct jit_stats *s) { (void)h; (void)s; }

#endif
