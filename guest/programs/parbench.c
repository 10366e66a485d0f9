/*
 * parbench: CPU-bound work split over threads, for SMP scaling (bench/smp.py).
 *
 * Usage: parbench <threads> [scale]      (scale: positive integer, default 1)
 *
 * A fixed total amount of work (proportional to scale, never "run for N
 * seconds") is cut into `threads` equal shares; thread i is pinned to CPU
 * i mod (online CPUs) and runs its share on private data: table-driven
 * CRC-32 over a buffer it refills with xorshift output, plus
 * multiply/divide mixing. Threads share nothing but the start barrier, so
 * the time with 2 threads on 2 CPUs against 1 thread measures how well the
 * machine runs two harts at once. The checksum depends only on scale (each
 * share is seeded by its index, and the per-share results are combined in
 * order), so it is the same for any thread count that divides the work.
 *
 * Output (times from CLOCK_MONOTONIC, start barrier to last thread done):
 *   parbench: threads=<T> scale=<S> shares=<N> ms=<elapsed> checksum=<hex>
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SHARES 8     /* work units; threads take them round-robin */
#define MAX_THREADS SHARES
#define BUF 8192

static unsigned nthreads;
static long scale = 1;
static uint64_t results[SHARES];
static unsigned ready;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t xorshift64(uint64_t *s)
{
    uint64_t x = *s;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return *s = x;
}

static uint64_t share(unsigned index)
{
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
        table[i] = c;
    }
    uint8_t *buf = calloc(1, BUF);
    if (!buf) {
        fprintf(stderr, "parbench: out of memory\n");
        exit(1);
    }
    uint64_t seed = 0x243F6A8885A308D3ull ^ ((uint64_t)index + 1) * 0x9E3779B97F4A7C15ull, mix = 0;
    uint32_t crc = 0xFFFFFFFFu;
    for (long round = 0; round < 40 * scale; round++) {
        for (int i = 0; i < 128; i++) {
            uint64_t x = xorshift64(&seed);
            memcpy(&buf[(size_t)((round * 128 + i) * 8) % BUF], &x, 8);
        }
        for (int i = 0; i < BUF; i++)
            crc = (crc >> 8) ^ table[(crc ^ buf[i]) & 0xFF];
        for (int i = 0; i < 256; i++) {
            uint64_t x = xorshift64(&seed);
            mix = mix * 6364136223846793005ull + (x / ((x >> 40) | 1)) + (x % 1000003);
        }
    }
    free(buf);
    return ((uint64_t)crc << 32) ^ mix;
}

static void *worker(void *arg)
{
    unsigned me = (unsigned)(uintptr_t)arg;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu > 0) {
        cpu_set_t set;
        CPU_ZERO(&set);
        CPU_SET(me % (unsigned)ncpu, &set);
        sched_setaffinity(0, sizeof set, &set); /* best effort */
    }
    __atomic_fetch_add(&ready, 1, __ATOMIC_ACQ_REL);
    while (__atomic_load_n(&ready, __ATOMIC_ACQUIRE) < nthreads + 1)
        sched_yield();
    for (unsigned s = me; s < SHARES; s += nthreads)
        results[s] = share(s);
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc < 2 || argc > 3 || (nthreads = (unsigned)atoi(argv[1])) < 1 || nthreads > MAX_THREADS ||
        SHARES % nthreads || (argc > 2 && (scale = atol(argv[2])) < 1)) {
        fprintf(stderr, "usage: parbench <threads: 1, 2, 4 or 8> [scale]\n");
        return 2;
    }
    pthread_t tid[MAX_THREADS];
    for (unsigned i = 0; i < nthreads; i++)
        if (pthread_create(&tid[i], NULL, worker, (void *)(uintptr_t)i)) {
            fprintf(stderr, "parbench: cannot create thread %u\n", i);
            return 1;
        }
    /* Start the clock when every worker is pinned and waiting. */
    while (__atomic_load_n(&ready, __ATOMIC_ACQUIRE) < nthreads)
        sched_yield();
    uint64_t t0 = now_ns();
    __atomic_fetch_add(&ready, 1, __ATOMIC_ACQ_REL);
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(tid[i], NULL);
    uint64_t t1 = now_ns();
    uint64_t sum = 0;
    for (unsigned s = 0; s < SHARES; s++)
        sum = (sum << 7 | sum >> 57) ^ results[s];
    printf("parbench: threads=%u scale=%ld shares=%d ms=%.1f checksum=%016" PRIx64 "\n", nthreads,
           scale, SHARES, (double)(t1 - t0) / 1e6, sum);
    return 0;
}
