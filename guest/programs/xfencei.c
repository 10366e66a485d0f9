/*
 * xfencei: code written on one hart is executed by another.
 *
 * Usage: xfencei [rounds]        (default 200)
 *
 * The writer thread is pinned to CPU 0, the runner to CPU 1 (needs two
 * online CPUs). They share one RWX page. Each round the writer rewrites the
 * function at the start of the page, with a different value and a
 * different shape (li; lui+addiw; nops first, so instructions of the old
 * version overlap the new one's at other offsets), executes fence.i and
 * publishes the round number with a release store. The runner, which ran
 * the previous version several times (so its hart has it fetched and
 * decoded), waits for the round with an acquire load, executes its own
 * fence.i -- the RISC-V rule: fence.i orders only the executing hart's
 * fetches, so the hart that runs the code must execute it after it
 * observed the stores -- and calls the function several times: every
 * call must return the new value. Then it acknowledges the round.
 *
 * Output: `xfencei: OK rounds=N` (exit 0), or `xfencei: FAIL ...`
 * (exit 1) naming the round, the value returned and the one written.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define CALLS_PER_ROUND 4

typedef int32_t (*fn_t)(void);

static uint32_t *code;
static unsigned rounds = 200;
static uint64_t published, acknowledged; /* round numbers */
static int32_t expected[2];              /* by round parity */
static unsigned failures;

static uint32_t enc_i(uint32_t opcode, unsigned rd, unsigned f3, unsigned rs1, int32_t imm)
{
    return (uint32_t)(imm & 0xfff) << 20 | rs1 << 15 | f3 << 12 | rd << 7 | opcode;
}

#define A0 10
#define RET 0x00008067u  /* jalr x0, 0(ra) */
#define NOP 0x00000013u  /* addi x0, x0, 0 */

/* Writes a function returning v, in one of three shapes. */
static void write_function(uint32_t round, int32_t v)
{
    unsigned n = 0, shape = round % 3, pad = round % 5;
    uint32_t insn[16];
    if (shape == 2)
        for (unsigned i = 0; i < pad; i++)
            insn[n++] = NOP;
    if (shape == 0) {
        v = (v << 20) >> 20; /* 12-bit immediate */
        insn[n++] = enc_i(0x13, A0, 0, 0, v); /* addi a0, zero, v */
    } else {
        int32_t hi = (int32_t)(((int64_t)v + 0x800) >> 12);
        int32_t lo = (int32_t)((uint32_t)v - ((uint32_t)hi << 12)); /* -2048..2047 */
        insn[n++] = ((uint32_t)hi & 0xfffff) << 12 | A0 << 7 | 0x37; /* lui a0, hi */
        insn[n++] = enc_i(0x1b, A0, 0, A0, lo);        /* addiw a0, a0, lo */
    }
    insn[n++] = RET;
    expected[round & 1] = v;
    memcpy(code, insn, n * sizeof insn[0]);
}

static void pin(unsigned cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    if (sched_setaffinity(0, sizeof set, &set)) {
        printf("xfencei: FAIL cannot pin a thread to CPU %u\n", cpu);
        exit(1);
    }
}

static uint32_t value_of(uint32_t round)
{
    uint64_t z = (uint64_t)round * 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 31)) * 0xBF58476D1CE4E5B9ull;
    return (uint32_t)(z >> 17);
}

static void *writer(void *arg)
{
    (void)arg;
    pin(0);
    for (uint32_t r = 1; r <= rounds; r++) {
        while (__atomic_load_n(&acknowledged, __ATOMIC_ACQUIRE) != r - 1)
            sched_yield();
        write_function(r, (int32_t)value_of(r));
        __asm__ volatile("fence.i" ::: "memory");
        __atomic_store_n(&published, r, __ATOMIC_RELEASE);
    }
    return NULL;
}

static void *runner(void *arg)
{
    (void)arg;
    pin(1);
    fn_t f = (fn_t)(uintptr_t)code;
    for (uint32_t r = 1; r <= rounds; r++) {
        while (__atomic_load_n(&published, __ATOMIC_ACQUIRE) != r)
            sched_yield();
        __asm__ volatile("fence.i" ::: "memory");
        int32_t want = expected[r & 1];
        for (int k = 0; k < CALLS_PER_ROUND; k++) {
            int32_t got = f();
            if (got != want && failures++ < 10)
                printf("xfencei: FAIL round=%u call=%d got=%" PRId32 " want=%" PRId32 "\n", r, k,
                       got, want);
        }
        __atomic_store_n(&acknowledged, r, __ATOMIC_RELEASE);
    }
    return NULL;
}

int main(int argc, char **argv)
{
    if (argc > 1) {
        char *end;
        unsigned long v = strtoul(argv[1], &end, 10);
        if (*end || v == 0 || v > 1000000) {
            fprintf(stderr, "usage: xfencei [rounds]\n");
            return 2;
        }
        rounds = (unsigned)v;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2) {
        printf("xfencei: FAIL needs two online CPUs\n");
        return 1;
    }
    code = mmap(NULL, 4096, PROT_READ | PROT_WRITE | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (code == MAP_FAILED) {
        printf("xfencei: FAIL cannot map an RWX page\n");
        return 1;
    }
    /* Round 0: the runner's warm-up is round 1's check; start from a valid
     * function anyway so a stray call never runs zeros. */
    write_function(0, 0);
    __asm__ volatile("fence.i" ::: "memory");
    pthread_t w, r;
    if (pthread_create(&r, NULL, runner, NULL) || pthread_create(&w, NULL, writer, NULL)) {
        printf("xfencei: FAIL cannot create threads\n");
        return 1;
    }
    pthread_join(w, NULL);
    pthread_join(r, NULL);
    if (failures) {
        printf("xfencei: FAIL %u wrong results in %u rounds\n", failures, rounds);
        return 1;
    }
    printf("xfencei: OK rounds=%u\n", rounds);
    return 0;
}
