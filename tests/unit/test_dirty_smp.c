/* The dirty log stays exact with harts on several threads: four threads,
 * each driving one hart through the hart-thread protocol
 * (machine_hart_enter/leave) and storing through the CPU store path
 * (cpu_store: write-TLB hits and slow-path fills), while this thread
 * harvests with machine_dirty_sync_remote over and over and copies the
 * harvested pages to a shadow, as pre-copy migration does.
 *
 * Two checks, both failing if a store can go through a write-TLB entry
 * that survived a harvest without marking its page again:
 *  - every page stored to after harvest k appears in harvest k+1 or later;
 *  - after the stores stop and a last harvest, the shadow equals RAM (a
 *    missed page keeps stale contents there).
 *
 * The checks mean something only if stores and harvests interleave, which
 * on a loaded host a fixed number of harvests does not ensure (the store
 * threads may hardly run while they happen). So it harvests until enough
 * interleaving has been seen (harvests that found pages the threads stored
 * to since the previous one, and enough stores and pages), yielding the CPU
 * between harvests, and fails only if the time limit passes first. */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cpu/hart.h"
#include "machine/machine.h"

#define NTHREADS 4
#define PAGES_PER_THREAD 96   /* within the 256-entry write TLB: mostly hits */
#define FIRST_PAGE 64
#define NPAGES (NTHREADS * PAGES_PER_THREAD)
#define MIN_HARVESTS 1000
#define MIN_BUSY_HARVESTS 300  /* harvests that found stored pages */
#define MIN_STORES 10000
#define TIME_LIMIT_NS (60ull * 1000000000) /* generous (TSan, a loaded host), within the runner's 120 s */
#define BATCH 64

static struct machine m;
static uint64_t harvests_done;           /* atomic: harvests completed */
static int stop_stores;                  /* atomic */
static int64_t last_store_gen[NPAGES];   /* atomic max: harvests_done seen before a store */
static uint64_t last_seen_in[NPAGES];    /* last harvest (1-based) that held the page */
static uint64_t stores_done[NTHREADS];   /* atomic: stores so far */

static uint64_t page_addr(unsigned page)
{
    return m.bus.ram.base + (uint64_t)(FIRST_PAGE + page) * RAM_PAGE_SIZE;
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static void note_store(unsigned page, int64_t gen)
{
    int64_t old = __atomic_load_n(&last_store_gen[page], __ATOMIC_RELAXED);
    while (old < gen && !__atomic_compare_exchange_n(&last_store_gen[page], &old, gen, false,
                                                     __ATOMIC_RELAXED, __ATOMIC_RELAXED)) {
    }
}

static void *store_thread(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    struct hart *h = &m.harts[id];
    uint64_t rng = 0x9e3779b97f4a7c15ull * (id + 1), counter = 0;
    while (!__atomic_load_n(&stop_stores, __ATOMIC_ACQUIRE) && machine_hart_enter(&m, h)) {
        /* A "slice": stores until the batch ends or someone kicks. */
        for (unsigned n = 0; n < BATCH && !__atomic_load_n(h->kick, __ATOMIC_RELAXED); n++) {
            uint64_t r = rng_next(&rng);
            unsigned page = id * PAGES_PER_THREAD + (unsigned)(r % PAGES_PER_THREAD);
            uint64_t off = ((r >> 32) % (RAM_PAGE_SIZE / 8)) * 8;
            int64_t gen = (int64_t)__atomic_load_n(&harvests_done, __ATOMIC_ACQUIRE);
            uint64_t value = (uint64_t)id << 56 | ++counter;
            if (!cpu_store(h, page_addr(page) + off, 8, value)) {
                printf("FAIL: store to page %u faulted\n", page);
                exit(1);
            }
            note_store(page, gen);
            __atomic_store_n(&stores_done[id], counter, __ATOMIC_RELAXED);
        }
        machine_hart_leave(&m, h);
    }
    return NULL;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec;
}

static uint64_t stores_so_far(void)
{
    uint64_t n = 0;
    for (unsigned i = 0; i < NTHREADS; i++)
        n += __atomic_load_n(&stores_done[i], __ATOMIC_RELAXED);
    return n;
}

static unsigned pages_stored_to(void)
{
    unsigned n = 0;
    for (unsigned p = 0; p < NPAGES; p++)
        n += __atomic_load_n(&last_store_gen[p], __ATOMIC_RELAXED) >= 0;
    return n;
}

/* Harvest number `gen` (1-based): record and copy what it holds; returns
 * how many of the threads' pages it held. */
static uint64_t harvest(uint64_t gen, uint64_t *bitmap, uint8_t *shadow)
{
    uint64_t held = 0;
    int64_t n = machine_dirty_sync_remote(&m, bitmap);
    if (n < 0) {
        printf("FAIL: machine_dirty_sync_remote failed\n");
        exit(1);
    }
    for (unsigned p = 0; p < NPAGES; p++) {
        uint64_t page = FIRST_PAGE + p;
        if (!((bitmap[page / 64] >> (page % 64)) & 1))
            continue;
        last_seen_in[p] = gen;
        held++;
        memcpy(shadow + (uint64_t)p * RAM_PAGE_SIZE, ram_host(&m.bus.ram, page_addr(p)),
               RAM_PAGE_SIZE);
    }
    __atomic_store_n(&harvests_done, gen, __ATOMIC_RELEASE);
    return held;
}

int main(void)
{
    struct machine_config cfg = {
        .ram_size = 16ull << 20, .nharts = NTHREADS, .console = "none",
        .no_rng = true, .no_boot = true,
    };
    struct error err;
    if (machine_init(&m, &cfg, &err) < 0) {
        printf("FAIL: machine_init: %s\n", err.msg);
        return 1;
    }
    uint64_t *bitmap = calloc(m.bus.ram.dirty_words, sizeof *bitmap);
    uint8_t *shadow = calloc(NPAGES, RAM_PAGE_SIZE);
    if (!bitmap || !shadow) {
        printf("FAIL: out of memory\n");
        return 1;
    }
    for (unsigned p = 0; p < NPAGES; p++)
        last_store_gen[p] = -1;
    ram_dirty_clear_all(&m.bus.ram);

    pthread_t threads[NTHREADS];
    for (unsigned i = 0; i < NTHREADS; i++)
        pthread_create(&threads[i], NULL, store_thread, (void *)(uintptr_t)i);
    uint64_t dirty_total = 0, busy_harvests = 0, gen = 0;
    uint64_t deadline = now_ns() + TIME_LIMIT_NS;
    bool enough = false;
    while (!enough && now_ns() < deadline) {
        uint64_t held = harvest(++gen, bitmap, shadow);
        dirty_total += held;
        busy_harvests += held > 0;
        sched_yield(); /* let the store threads run between harvests */
        if (gen % 64 == 0)
            enough = gen >= MIN_HARVESTS && busy_harvests >= MIN_BUSY_HARVESTS &&
                     stores_so_far() >= MIN_STORES && pages_stored_to() >= NPAGES / 2;
    }
    __atomic_store_n(&stop_stores, 1, __ATOMIC_RELEASE);
    for (unsigned i = 0; i < NTHREADS; i++)
        pthread_join(threads[i], NULL);
    harvest(++gen, bitmap, shadow);

    int failures = 0;
    unsigned stored_pages = 0;
    for (unsigned p = 0; p < NPAGES; p++) {
        if (last_store_gen[p] < 0)
            continue;
        stored_pages++;
        if (last_seen_in[p] < (uint64_t)last_store_gen[p] + 1) {
            if (failures++ < 10)
                printf("FAIL: page %u was stored to after harvest %lld but last appeared in "
                       "harvest %llu\n", FIRST_PAGE + p, (long long)last_store_gen[p],
                       (unsigned long long)last_seen_in[p]);
        }
        if (memcmp(shadow + (uint64_t)p * RAM_PAGE_SIZE, ram_host(&m.bus.ram, page_addr(p)),
                   RAM_PAGE_SIZE) != 0) {
            if (failures++ < 10)
                printf("FAIL: page %u: the copy made from the harvests differs from RAM "
                       "(a store was never logged)\n", FIRST_PAGE + p);
        }
    }
    uint64_t stores = stores_so_far();
    /* The test means something only if the stores overlapped the harvests. */
    if (!enough) {
        printf("FAIL: too little concurrency within %llu s: %llu stores, %llu harvests of "
               "which %llu found stored pages (%llu pages), %u pages stored to\n",
               (unsigned long long)(TIME_LIMIT_NS / 1000000000), (unsigned long long)stores,
               (unsigned long long)gen, (unsigned long long)busy_harvests,
               (unsigned long long)dirty_total, stored_pages);
        failures++;
    }
    machine_destroy(&m);
    free(bitmap);
    free(shadow);
    if (failures) {
        printf("test_dirty_smp: %d failures\n", failures);
        return 1;
    }
    printf("test_dirty_smp: %llu stores by %d threads, %llu harvests (%llu found stored "
           "pages, %llu pages in all), no store missed\n", (unsigned long long)stores, NTHREADS,
           (unsigned long long)gen, (unsigned long long)busy_harvests,
           (unsigned long long)dirty_total);
    return 0;
}
