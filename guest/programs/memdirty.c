/*
 * memdirty: self-checking memory-dirtying workload for live-migration tests.
 *
 * Usage: memdirty <MiB> <MB_per_s> [seconds] [threads]
 *   MiB       working set size
 *   MB_per_s  write rate limit in 10^6 bytes per second (all threads
 *             together); 0 = as fast as possible
 *   seconds   optional run time; default 0 = run until SIGINT/SIGTERM
 *   threads   optional number of writer threads; default 1. Each owns an
 *             equal slice of the working set (its own sweeps and
 *             generations) and, with more than one, thread i is pinned to
 *             CPU i mod (online CPUs), so every vCPU dirties memory.
 *
 * The working set is a sequence of 4 KiB pages swept in order, one
 * generation per sweep. Each page holds
 *   word 0        (page index << 32) | generation
 *   words 1..510  a pattern derived from (page index, generation, word)
 *   word 511      a checksum of words 0..510
 * When a sweep reaches a page that was written before, the page is first
 * verified against the generation recorded for it (kept in a separate
 * table), then rewritten with the current generation. A page that was lost,
 * is stale (an older generation), or was corrupted is therefore detected.
 *
 * Every second:        memdirty: gen=<N> verified=<pages> errors=<E>
 * (gen is the lowest generation among the threads, verified their sum.)
 * On an error (the first 10 are reported):
 *   memdirty: CORRUPTION page=<i> gen=<expected> word=<w> got=<hex> want=<hex>
 * At exit the status line is printed once more; exit status 1 if any error.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define WORDS (PAGE / 8)
#define MAX_THREADS 64

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* splitmix64 finaliser: a cheap, well-mixed function of its input */
static inline uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static inline uint64_t pattern(uint64_t page, uint64_t gen, unsigned w)
{
    /* one mix per page+generation, then a cheap per-word step */
    return mix64(page * 0x9E3779B97F4A7C15ull ^ gen << 1) + (uint64_t)w * 0xD6E8FEB86659FD93ull;
}

static inline uint64_t checksum(const uint64_t *p)
{
    uint64_t c = 0x6A09E667F3BCC909ull;
    for (unsigned w = 0; w < WORDS - 1; w++)
        c = (c << 5 | c >> 59) ^ p[w];
    return c;
}

static void write_page(uint64_t *p, uint64_t page, uint64_t gen)
{
    uint64_t base = pattern(page, gen, 0);
    p[0] = page << 32 | (gen & 0xffffffff);
    for (unsigned w = 1; w < WORDS - 1; w++)
        p[w] = base + (uint64_t)w * 0xD6E8FEB86659FD93ull;
    p[WORDS - 1] = checksum(p);
}

static uint64_t errors, reported; /* updated atomically: threads share them */

static void corruption(uint64_t page, uint64_t gen, unsigned w, uint64_t got, uint64_t want)
{
    __atomic_fetch_add(&errors, 1, __ATOMIC_RELAXED);
    if (__atomic_fetch_add(&reported, 1, __ATOMIC_RELAXED) < 10) {
        printf("memdirty: CORRUPTION page=%" PRIu64 " gen=%" PRIu64 " word=%u got=%016" PRIx64
               " want=%016" PRIx64 "\n", page, gen, w, got, want);
        fflush(stdout);
    }
}

/* returns 1 if the page is intact */
static int verify_page(const uint64_t *p, uint64_t page, uint64_t gen)
{
    uint64_t head = page << 32 | (gen & 0xffffffff);
    if (p[0] != head) {
        corruption(page, gen, 0, p[0], head);
        return 0;
    }
    uint64_t base = pattern(page, gen, 0);
    for (unsigned w = 1; w < WORDS - 1; w++) {
        uint64_t want = base + (uint64_t)w * 0xD6E8FEB86659FD93ull;
        if (p[w] != want) {
            corruption(page, gen, w, p[w], want);
            return 0;
        }
    }
    uint64_t c = checksum(p);
    if (p[WORDS - 1] != c) {
        corruption(page, gen, WORDS - 1, p[WORDS - 1], c);
        return 0;
    }
    return 1;
}

static void usage(void)
{
    fprintf(stderr, "usage: memdirty <MiB> <MB_per_s|0 for max> [seconds] [threads]\n");
    exit(2);
}

static unsigned long parse(const char *s)
{
    char *end;
    errno = 0;
    unsigned long v = strtoul(s, &end, 10);
    if (errno || *end || end == s)
        usage();
    return v;
}

/* One writer: sweeps pages [first, first + npages) of the working set,
 * verifying each page it wrote before, then rewriting it. */
struct writer {
    pthread_t thread;
    unsigned index;
    size_t first, npages;
    uint64_t rate;     /* its share of the limit, 10^6 bytes/s; 0 = none */
    uint64_t start, end;
    uint64_t gen;      /* read by the reporter: atomic */
    uint64_t verified; /* read by the reporter: atomic */
};

static uint64_t *mem;
static uint32_t *page_gen; /* generation last written to each page; 0 = never */
static unsigned nthreads = 1;

static void pin_to_cpu(unsigned index)
{
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu <= 1)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(index % (unsigned)ncpu, &set);
    sched_setaffinity(0, sizeof set, &set); /* best effort */
}

static void *writer_run(void *arg)
{
    struct writer *wr = arg;
    if (nthreads > 1)
        pin_to_cpu(wr->index);
    uint64_t gen = 1, written_bytes = 0;
    size_t k = 0; /* position in the slice */
    __atomic_store_n(&wr->gen, gen, __ATOMIC_RELAXED);
    while (!stop) {
        /* work in small batches between clock checks */
        for (int b = 0; b < 32; b++) {
            size_t page = wr->first + k;
            uint64_t *p = mem + page * WORDS;
            if (page_gen[page] && verify_page(p, page, page_gen[page]))
                __atomic_fetch_add(&wr->verified, 1, __ATOMIC_RELAXED);
            write_page(p, page, gen);
            page_gen[page] = (uint32_t)gen;
            written_bytes += PAGE;
            if (++k == wr->npages) {
                k = 0;
                gen++;
                if (gen > 0xffffffffull)   /* generation 0 means "unwritten" */
                    gen = 1;
                __atomic_store_n(&wr->gen, gen, __ATOMIC_RELAXED);
            }
        }
        uint64_t t = now_ns();
        if (wr->rate) {
            /* sleep until the bytes written so far are within budget */
            uint64_t due = wr->start + written_bytes * 1000ull / wr->rate;  /* ns, rate in bytes/us */
            if (due > t) {
                uint64_t d = due - t;
                if (d > 200000000ull)
                    d = 200000000ull;   /* wake up for signals */
                struct timespec ts = { (time_t)(d / 1000000000ull), (long)(d % 1000000000ull) };
                nanosleep(&ts, NULL);
                t = now_ns();
            }
        }
        if (wr->end && t >= wr->end)
            break;
    }
    return NULL;
}

static void report(const struct writer *w)
{
    uint64_t gen = UINT64_MAX, verified = 0;
    for (unsigned i = 0; i < nthreads; i++) {
        uint64_t g = __atomic_load_n(&w[i].gen, __ATOMIC_RELAXED);
        gen = g < gen ? g : gen;
        verified += __atomic_load_n(&w[i].verified, __ATOMIC_RELAXED);
    }
    printf("memdirty: gen=%" PRIu64 " verified=%" PRIu64 " errors=%" PRIu64 "\n", gen, verified,
           __atomic_load_n(&errors, __ATOMIC_RELAXED));
}

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 5)
        usage();
    unsigned long mib = parse(argv[1]), rate = parse(argv[2]);
    unsigned long seconds = argc > 3 ? parse(argv[3]) : 0;
    unsigned long threads = argc > 4 ? parse(argv[4]) : 1;
    if (mib == 0 || threads == 0 || threads > MAX_THREADS)
        usage();
    nthreads = (unsigned)threads;

    size_t npages = (size_t)mib * (1u << 20) / PAGE;
    if (npages < nthreads)
        usage();
    mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    page_gen = calloc(npages, sizeof *page_gen);
    struct writer *w = calloc(nthreads, sizeof *w);
    if (mem == MAP_FAILED || !page_gen || !w) {
        fprintf(stderr, "memdirty: cannot allocate %lu MiB\n", mib);
        return 1;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    setvbuf(stdout, NULL, _IOLBF, 0);

    const uint64_t start = now_ns();
    const uint64_t end = seconds ? start + seconds * 1000000000ull : 0;
    for (unsigned i = 0; i < nthreads; i++) {
        w[i].index = i;
        w[i].first = npages * i / nthreads;
        w[i].npages = npages * (i + 1) / nthreads - w[i].first;
        w[i].rate = rate ? (rate + nthreads - 1) / nthreads : 0;
        w[i].start = start;
        w[i].end = end;
        if (pthread_create(&w[i].thread, NULL, writer_run, &w[i])) {
            fprintf(stderr, "memdirty: cannot create thread %u\n", i);
            return 1;
        }
    }
    /* Report every second until the writers end (time up, or a signal). */
    uint64_t next_report = start + 1000000000ull;
    while (!stop && (!end || now_ns() < end)) {
        struct timespec ts = {0, 100000000};
        nanosleep(&ts, NULL);
        uint64_t t = now_ns();
        if (t >= next_report) {
            report(w);
            while (next_report <= t)
                next_report += 1000000000ull;
        }
    }
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(w[i].thread, NULL);
    report(w);
    return errors ? 1 : 0;
}
