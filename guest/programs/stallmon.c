/* stallmon: the guest's own view of how long it was kept from running.
 *
 * Usage: stallmon [seconds]   (default 0 = until SIGINT/SIGTERM)
 *
 * Reads CLOCK_MONOTONIC in a tight loop and keeps the longest gap between
 * two consecutive readings: time the guest's CPU was taken away (a vCPU
 * throttle's sleep, a post-copy page fault, a host that did not schedule
 * the vCPU). A migration's own pause is not seen: the guest clock stops
 * with the guest.
 *
 * Every second:  stallmon: max_gap_us=<longest in that second> worst_us=<longest so far> loops=<n>
 */
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

static volatile sig_atomic_t stop;
static void on_signal(int sig) { (void)sig; stop = 1; }

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 0;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    setvbuf(stdout, NULL, _IOLBF, 0);
    uint64_t start = now_ns(), prev = start, next_report = start + 1000000000u;
    uint64_t gap_max = 0, worst = 0, loops = 0;
    while (!stop) {
        uint64_t t = now_ns();
        uint64_t gap = t - prev;
        prev = t;
        loops++;
        if (gap > gap_max)
            gap_max = gap;
        if (gap > worst)
            worst = gap;
        if (t >= next_report) {
            printf("stallmon: max_gap_us=%llu worst_us=%llu loops=%llu\n",
                   (unsigned long long)(gap_max / 1000), (unsigned long long)(worst / 1000),
                   (unsigned long long)loops);
            gap_max = 0;
            next_report = t + 1000000000u;
        }
        if (seconds > 0 && (double)(t - start) / 1e9 >= seconds)
            break;
    }
    printf("stallmon: max_gap_us=%llu worst_us=%llu loops=%llu\n",
           (unsigned long long)(gap_max / 1000), (unsigned long long)(worst / 1000),
           (unsigned long long)loops);
    return 0;
}
