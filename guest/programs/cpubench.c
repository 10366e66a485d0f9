/*
 * cpubench: CPU-bound benchmark for the ferry emulator.
 *
 * Usage: cpubench [scale]     (scale: positive integer, default 1)
 *
 * Three phases, each doing a fixed amount of WORK proportional to scale
 * (never "run for N seconds"), so their checksums are deterministic for a
 * given scale and the times compare across emulator versions:
 *   int  table-driven CRC-32 plus xorshift/multiply/divide mixing
 *   mem  random-access read-modify-write walk over a 32 MiB array with
 *        strides that cross pages, to exercise the MMU/TLB (includes first
 *        touch of the array, i.e. page faults)
 *   fp   double-precision 5-body gravity simulation
 * Scale 1 takes about 1.5 s under qemu-system-riscv64 (TCG) on a 2-core
 * x86 host, roughly a third per phase.
 * Output, times from CLOCK_MONOTONIC in milliseconds:
 *   cpubench: int <checksum> <ms>
 *   cpubench: mem <checksum> <ms>
 *   cpubench: fp <checksum> <ms>
 *   cpubench: total <ms>
 */
#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

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

/* ---- integer phase ---- */
static uint64_t phase_int(long scale)
{
    uint32_t table[256];
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1)));
        table[i] = c;
    }
    enum { BUF = 16384 };
    static uint8_t buf[BUF];
    uint64_t seed = 0x243F6A8885A308D3ull, mix = 0;
    uint32_t crc = 0xFFFFFFFFu;
    for (long round = 0; round < 2500 * scale; round++) {
        /* refill part of the buffer so every round hashes new data */
        for (int i = 0; i < 256; i++) {
            uint64_t x = xorshift64(&seed);
            memcpy(&buf[(size_t)((round * 256 + i) * 8) % BUF], &x, 8);
        }
        for (int i = 0; i < BUF; i++)
            crc = (crc >> 8) ^ table[(crc ^ buf[i]) & 0xFF];
        /* a little multiply/divide work too */
        for (int i = 0; i < 512; i++) {
            uint64_t x = xorshift64(&seed);
            mix = mix * 6364136223846793005ull + (x / ((x >> 40) | 1)) + (x % 1000003);
        }
    }
    return ((uint64_t)crc << 32) ^ mix;
}

/* ---- memory phase ---- */
static uint64_t phase_mem(long scale)
{
    const size_t words = (32u << 20) / sizeof(uint64_t);   /* 32 MiB */
    uint64_t *a = malloc(words * sizeof *a);
    if (!a) {
        fprintf(stderr, "cpubench: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < words; i++)
        a[i] = i * 0x9E3779B97F4A7C15ull;
    uint64_t seed = 0x13198A2E03707344ull, sum = 0;
    size_t idx = 0;
    /* Alternate between random jumps (almost always a different page) and
     * a stride of 4 KiB + 72 bytes (a new page every step). */
    const size_t stride = (4096 + 72) / sizeof(uint64_t);
    for (long i = 0; i < 500000 * scale; i++) {
        if (i & 1)
            idx = (size_t)xorshift64(&seed) & (words - 1);
        else
            idx = (idx + stride) & (words - 1);
        uint64_t v = a[idx];
        sum += v ^ (uint64_t)i;
        a[idx] = v + sum;
    }
    for (size_t i = 0; i < words; i += 4096 / sizeof(uint64_t))
        sum ^= a[i];
    free(a);
    return sum;
}

/* ---- floating-point phase: 5-body simulation ---- */
struct body { double x, y, z, vx, vy, vz, m; };

static uint64_t phase_fp(long scale)
{
    const double pi = 3.141592653589793, solar = 4 * pi * pi, dpy = 365.24;
    struct body b[5] = {
        { 0, 0, 0, 0, 0, 0, solar },
        { 4.84143144246472090e+00, -1.16032004402742839e+00, -1.03622044471123109e-01,
          1.66007664274403694e-03 * dpy, 7.69901118419740425e-03 * dpy,
          -6.90460016972063023e-05 * dpy, 9.54791938424326609e-04 * solar },
        { 8.34336671824457987e+00, 4.12479856412430479e+00, -4.03523417114321381e-01,
          -2.76742510726862411e-03 * dpy, 4.99852801234917238e-03 * dpy,
          2.30417297573763929e-05 * dpy, 2.85885980666130812e-04 * solar },
        { 1.28943695621391310e+01, -1.51111514016986312e+01, -2.23307578892655734e-01,
          2.96460137564761618e-03 * dpy, 2.37847173959480950e-03 * dpy,
          -2.96589568540237556e-05 * dpy, 4.36624404335156298e-05 * solar },
        { 1.53796971148509165e+01, -2.59193146099879641e+01, 1.79258772950371181e-01,
          2.68067772490389322e-03 * dpy, 1.62824170038242295e-03 * dpy,
          -9.51592254519715870e-05 * dpy, 5.15138902046611451e-05 * solar },
    };
    const double dt = 0.01;
    for (long step = 0; step < 300000 * scale; step++) {
        for (int i = 0; i < 5; i++)
            for (int j = i + 1; j < 5; j++) {
                double dx = b[i].x - b[j].x, dy = b[i].y - b[j].y, dz = b[i].z - b[j].z;
                double d2 = dx * dx + dy * dy + dz * dz;
                double mag = dt / (d2 * sqrt(d2));
                b[i].vx -= dx * b[j].m * mag;
                b[i].vy -= dy * b[j].m * mag;
                b[i].vz -= dz * b[j].m * mag;
                b[j].vx += dx * b[i].m * mag;
                b[j].vy += dy * b[i].m * mag;
                b[j].vz += dz * b[i].m * mag;
            }
        for (int i = 0; i < 5; i++) {
            b[i].x += dt * b[i].vx;
            b[i].y += dt * b[i].vy;
            b[i].z += dt * b[i].vz;
        }
    }
    double e = 0;
    for (int i = 0; i < 5; i++) {
        e += 0.5 * b[i].m * (b[i].vx * b[i].vx + b[i].vy * b[i].vy + b[i].vz * b[i].vz);
        for (int j = i + 1; j < 5; j++) {
            double dx = b[i].x - b[j].x, dy = b[i].y - b[j].y, dz = b[i].z - b[j].z;
            e -= b[i].m * b[j].m / sqrt(dx * dx + dy * dy + dz * dz);
        }
    }
    uint64_t bits;
    memcpy(&bits, &e, sizeof bits);
    return bits;
}

int main(int argc, char **argv)
{
    long scale = 1;
    if (argc > 1) {
        char *end;
        scale = strtol(argv[1], &end, 10);
        if (*end || scale < 1) {
            fprintf(stderr, "usage: cpubench [scale]   (scale >= 1)\n");
            return 2;
        }
    }
    struct { const char *name; uint64_t (*fn)(long); } phases[] = {
        { "int", phase_int }, { "mem", phase_mem }, { "fp", phase_fp },
    };
    uint64_t total = 0;
    for (size_t p = 0; p < sizeof phases / sizeof phases[0]; p++) {
        uint64_t t0 = now_ns();
        uint64_t sum = phases[p].fn(scale);
        uint64_t dt = now_ns() - t0;
        total += dt;
        printf("cpubench: %s %016" PRIx64 " %" PRIu64 "\n", phases[p].name, sum, dt / 1000000);
        fflush(stdout);
    }
    printf("cpubench: total %" PRIu64 "\n", total / 1000000);
    return 0;
}
