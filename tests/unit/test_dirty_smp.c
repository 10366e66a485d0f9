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
 *    missed page keeps stale contents there). */
#include <pthread.h>
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
#define HARVESTS 3000          /* at least this many harvests... */
#define BUSY_HARVESTS 300      /* ...and this many that found stores, */
#define MAX_SECONDS 30         /* unless the host starves the threads that long */
#define BATCH 64

static struct machine m;
static uint64_t harvests_done;           /* atomic: harvests completed */
static int stop_stores;                  /* atomic */
static int64_t last_store_gen[NPAGES];   /* atomic max: harvests_done seen before a store */
static uint64_t last_seen_in[NPAGES];    /* last harvest (1-based) that held the page */
static uint64_t stores_done[NTHREADS];

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
        }
        machine_hart_leave(&m, h);
    }
    stores_done[id] = counter;
    return NULL;
}

/* Harvest number `gen` (1-based): record and copy what it holds. */
static uint64_t harvest(uint64_t gen, uint64_t *bitmap, uint8_t *shadow)
{
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
        memcpy(shadow + (uint64_t)p * RAM_PAGE_SIZE, ram_host(&m.bus.ram, page_addr(p)),
               RAM_PAGE_SIZE);
    }
    __atomic_store_n(&harvests_done, gen, __ATOMIC_RELEASE);
    return (uint64_t)n;
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
    /* On a busy host the store threads may get little CPU: harvest until
     * enough harvests overlapped stores, within a time limit. */
    uint64_t dirty_total = 0, busy = 0, gen = 0;
    time_t t0 = time(NULL);
    while ((gen < HARVESTS || busy < BUSY_HARVESTS) && time(NULL) - t0 < MAX_SECONDS) {
        uint64_t n = harvest(++gen, bitmap, shadow);
        dirty_total += n;
        busy += n != 0;
    }
    __atomic_store_n(&stop_stores, 1, __ATOMIC_RELEASE);
    for (unsigned i = 0; i < NTHREADS; i++)
        pthread_join(threads[i], NULL);
    harvest(gen + 1, bitmap, shadow);

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
    uint64_t stores = 0;
    for (unsigned i = 0; i < NTHREADS; i++)
        stores += stores_done[i];
    /* The test means something only if the stores overlapped the harvests. */
    if (stores < 10000 || busy < BUSY_HARVESTS || stored_pages < NPAGES / 2) {
        printf("FAIL: too little concurrency: %llu stores, %llu of %llu harvests found "
               "stores, %u pages stored to\n", (unsigned long long)stores,
               (unsigned long long)busy, (unsigned long long)gen, stored_pages);
        failures++;
    }
    machine_destroy(&m);
    free(bitmap);
    free(shadow);
    if (failures) {
        printf("test_dirty_smp: %d failures\n", failures);
        return 1;
    }
    printf("test_dirty_smp: %llu stores by %d threads, %llu harvests (%llu found stores, %llu "
           "dirty pages), no store missed\n", (unsigned long long)stores, NTHREADS,
           (unsigned long long)gen, (unsigned long long)busy, (unsigned long long)dirty_total);
    return 0;
}
