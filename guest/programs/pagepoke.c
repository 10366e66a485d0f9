/*
 * pagepoke: a workload whose re-dirtied pages change in a few bytes only,
 * for delta-encoded migration (--compress): each sweep adds 1 to one word
 * of every page of its working set and checks the rest of the page.
 *
 * Usage: pagepoke <MiB> [sweeps_per_s]   (default 20 sweeps a second)
 *
 * Page i holds word w = pattern(i, w), except word (i % 512), a counter
 * that equals the number of sweeps done. Every second:
 *   pagepoke: sweeps=<N> errors=<E>
 * A lost or stale page (an older counter) or a damaged word is an error:
 *   pagepoke: CORRUPTION page=<i> word=<w> got=<hex> want=<hex>
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#define WORDS 512

static uint64_t pattern(uint64_t page, unsigned w)
{
    uint64_t x = page * 0x9E3779B97F4A7C15ull + w * 0xD6E8FEB86659FD93ull;
    x ^= x >> 31;
    return x * 0xBF58476D1CE4E5B9ull;
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: pagepoke <MiB> [sweeps_per_s]\n");
        return 2;
    }
    uint64_t npages = strtoull(argv[1], NULL, 0) * 256;
    double rate = argc > 2 ? atof(argv[2]) : 20;
    uint64_t *mem = mmap(NULL, npages * 4096, PROT_READ | PROT_WRITE,
                         MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED) {
        perror("pagepoke: mmap");
        return 1;
    }
    for (uint64_t i = 0; i < npages; i++)
        for (unsigned w = 0; w < WORDS; w++)
            mem[i * WORDS + w] = w == i % WORDS ? 0 : pattern(i, w);
    uint64_t sweeps = 0, errors = 0;
    double t0 = now(), last = t0;
    setvbuf(stdout, NULL, _IOLBF, 0);
    for (;;) {
        for (uint64_t i = 0; i < npages; i++) {
            uint64_t *p = mem + i * WORDS;
            for (unsigned w = 0; w < WORDS; w++) {
                uint64_t want = w == i % WORDS ? sweeps : pattern(i, w);
                if (p[w] != want) {
                    if (errors++ < 10)
                        printf("pagepoke: CORRUPTION page=%" PRIu64 " word=%u got=%016" PRIx64
                               " want=%016" PRIx64 "\n", i, w, p[w], want);
                    p[w] = want;
                }
            }
            p[i % WORDS]++;
        }
        sweeps++;
        double t = now();
        if (t - last >= 1) {
            printf("pagepoke: sweeps=%" PRIu64 " errors=%" PRIu64 "\n", sweeps, errors);
            last = t;
        }
        double due = t0 + sweeps / rate;
        if (due > t)
            usleep((useconds_t)((due - t) * 1e6));
    }
}
