/*
 * timehammer: N threads, one pinned to each CPU, read CLOCK_MONOTONIC and
 * CLOCK_REALTIME as fast as they can for S seconds.
 *
 * Usage: timehammer <threads> <seconds>
 *
 * What it catches: a thread's clock going backwards (each thread checks
 * its own readings; the `time` CSRs of different harts must agree closely
 * enough for the kernel's clocksource), and a reader dying. The second is
 * how Linux 6.1 with CONFIG_JUMP_LABEL off fails on SMP: the vDSO's
 * cpu_relax(), run while another CPU updates the timekeeping data, loads an
 * unresolved kernel symbol and the reader gets SIGSEGV. Reading in a tight
 * loop on every CPU makes that window likely within seconds.
 *
 * Prints one line per thread and a summary:
 *   timehammer: thread=<i> cpu=<c> reads=<n> backwards=<b>
 *   timehammer: OK threads=<n> reads=<total>      (exit 0)
 *   timehammer: FAIL ...                            (exit 1)
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#define MAX_THREADS 64

struct reader {
    pthread_t thread;
    unsigned index;
    int cpu;
    unsigned seconds;
    uint64_t reads;
    uint64_t backwards;
};

static uint64_t ns_of(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void *reader_run(void *arg)
{
    struct reader *r = arg;
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(r->index % (unsigned)(ncpu > 0 ? ncpu : 1), &set);
    sched_setaffinity(0, sizeof set, &set);
    r->cpu = sched_getcpu();

    uint64_t start = ns_of(CLOCK_MONOTONIC);
    uint64_t end = start + (uint64_t)r->seconds * 1000000000u;
    uint64_t last = start;
    for (;;) {
        uint64_t t = ns_of(CLOCK_MONOTONIC);
        (void)ns_of(CLOCK_REALTIME);
        r->reads += 2;
        if (t < last)
            r->backwards++;
        last = t;
        if (t >= end)
            break;
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: timehammer <threads> <seconds>\n");
        return 2;
    }
    unsigned n = (unsigned)strtoul(argv[1], NULL, 0);
    unsigned seconds = (unsigned)strtoul(argv[2], NULL, 0);
    if (n == 0 || n > MAX_THREADS || seconds == 0) {
        fprintf(stderr, "usage: timehammer <threads 1..%d> <seconds>\n", MAX_THREADS);
        return 2;
    }
    static struct reader readers[MAX_THREADS];
    for (unsigned i = 0; i < n; i++) {
        readers[i] = (struct reader){.index = i, .seconds = seconds};
        if (pthread_create(&readers[i].thread, NULL, reader_run, &readers[i])) {
            printf("timehammer: FAIL cannot create thread %u\n", i);
            return 1;
        }
    }
    uint64_t total = 0, backwards = 0;
    for (unsigned i = 0; i < n; i++) {
        pthread_join(readers[i].thread, NULL);
        printf("timehammer: thread=%u cpu=%d reads=%" PRIu64 " backwards=%" PRIu64 "\n", i,
               readers[i].cpu, readers[i].reads, readers[i].backwards);
        total += readers[i].reads;
        backwards += readers[i].backwards;
    }
    if (backwards) {
        printf("timehammer: FAIL backwards=%" PRIu64 " reads=%" PRIu64 "\n", backwards, total);
        return 1;
    }
    printf("timehammer: OK threads=%u reads=%" PRIu64 "\n", n, total);
    return 0;
}
