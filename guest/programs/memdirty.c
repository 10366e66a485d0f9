/*
 * memdirty: self-checking memory-dirtying workload for live-migration tests.
 *
 * Usage: memdirty <MiB> <MB_per_s> [seconds]
 *   MiB       working set size
 *   MB_per_s  write rate limit in 10^6 bytes per second; 0 = as fast as possible
 *   seconds   optional run time; default 0 = run until SIGINT/SIGTERM
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
 * On an error (the first 10 are reported):
 *   memdirty: CORRUPTION page=<i> gen=<expected> word=<w> got=<hex> want=<hex>
 * At exit the status line is printed once more; exit status 1 if any error.
 */
#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>

#define PAGE 4096
#define WORDS (PAGE / 8)

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

static uint64_t errors, reported;

static void corruption(uint64_t page, uint64_t gen, unsigned w, uint64_t got, uint64_t want)
{
    errors++;
    if (reported++ < 10) {
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
    fprintf(stderr, "usage: memdirty <MiB> <MB_per_s|0 for max> [seconds]\n");
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

int main(int argc, char **argv)
{
    if (argc < 3 || argc > 4)
        usage();
    unsigned long mib = parse(argv[1]), rate = parse(argv[2]);
    unsigned long seconds = argc > 3 ? parse(argv[3]) : 0;
    if (mib == 0)
        usage();

    size_t npages = (size_t)mib * (1u << 20) / PAGE;
    uint64_t *mem = mmap(NULL, npages * PAGE, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    /* generation last written to each page; 0 = never written */
    uint32_t *page_gen = calloc(npages, sizeof *page_gen);
    if (mem == MAP_FAILED || !page_gen) {
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
    uint64_t next_report = start + 1000000000ull;
    uint64_t gen = 1, verified = 0, written_bytes = 0;
    size_t page = 0;

    while (!stop) {
        /* work in small batches between clock checks */
        for (int k = 0; k < 32; k++) {
            uint64_t *p = mem + page * WORDS;
            if (page_gen[page]) {
                if (verify_page(p, page, page_gen[page]))
                    verified++;
            }
            write_page(p, page, gen);
            page_gen[page] = (uint32_t)gen;
            written_bytes += PAGE;
            if (++page == npages) {
                page = 0;
                gen++;
                if (gen > 0xffffffffull)   /* generation 0 means "unwritten" */
                    gen = 1;
            }
        }
        uint64_t t = now_ns();
        if (rate) {
            /* sleep until the bytes written so far are within budget */
            uint64_t due = start + written_bytes * 1000ull / rate;  /* ns, rate in bytes/us */
            if (due > t) {
                uint64_t d = due - t;
                if (d > 200000000ull)
                    d = 200000000ull;   /* wake up for reports and signals */
                struct timespec ts = { (time_t)(d / 1000000000ull), (long)(d % 1000000000ull) };
                nanosleep(&ts, NULL);
                t = now_ns();
            }
        }
        if (t >= next_report) {
            printf("memdirty: gen=%" PRIu64 " verified=%" PRIu64 " errors=%" PRIu64 "\n",
                   gen, verified, errors);
            while (next_report <= t)
                next_report += 1000000000ull;
        }
        if (end && t >= end)
            break;
    }
    printf("memdirty: gen=%" PRIu64 " verified=%" PRIu64 " errors=%" PRIu64 "\n", gen, verified, errors);
    return errors ? 1 : 0;
}
