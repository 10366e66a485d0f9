/* FENCE orders stores before later loads across harts on their own host
 * threads (icache.c's fence_orders_store_load): the store-buffering litmus
 * test. Hart 0 runs `sd 1, X; fence rw,rw; ld Y`, hart 1 `sd 1, Y; fence
 * rw,rw; ld X`, both at once, many times over, under each engine: at least
 * one of them must see the other's store. On x86 a load may pass an
 * earlier store, so with the fence as a no-op both loads return 0 now and
 * then (counted, with a `nop` in its place, to show the harness does
 * catch the reordering on this host; that count is reported, not
 * asserted, as it depends on the two threads really running at once). */
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cpu/hart.h"
#include "cpu/jit.h"
#include "machine/machine.h"
#include "mem/bus.h"
#include "check.h"
#include "harts.h"

#define RAM_SIZE (1u << 20)
#define CODE 0x0000ull          /* hart i's program at CODE + i * 0x1000 */
#define DATA 0x8000ull          /* X; Y is a cache line further */
#define ROUNDS 40000
#define MAX_SECONDS 4.0         /* per engine and program: a loaded host ends early */

enum { A0 = 10, A1 = 11, A2 = 12, A3 = 13 };
#define FENCE_RW_RW 0x0330000fu
#define NOP 0x00000013u
#define JAL_SELF 0x0000006fu

static struct machine m;
static bool use_jit;
static unsigned barrier_count;  /* both threads pass a barrier when it reaches 2n */
static uint64_t both_zero;      /* rounds where neither hart saw the other's store */
static uint64_t loaded[2];      /* each hart's load, written by its thread before barrier 2 */
static unsigned rounds_done;

static uint64_t *word(uint64_t off) { return (uint64_t *)(m.bus.ram.host + off); }

static void barrier(unsigned *generation)
{
    unsigned target = 2 * ++*generation;
    __atomic_add_fetch(&barrier_count, 1, __ATOMIC_SEQ_CST);
    for (unsigned spins = 0; __atomic_load_n(&barrier_count, __ATOMIC_SEQ_CST) < target; spins++)
        if (spins > 1000)
            sched_yield();  /* the other thread may share this core */
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Thread i runs hart i; thread 0 also resets X and Y and counts. */
static void *runner(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg, generation = 0;
    struct hart *h = &m.harts[id];
    double until = now_s() + MAX_SECONDS;
    for (unsigned round = 0; round < ROUNDS; round++) {
        if (id == 0) {
            *word(DATA) = 0;
            *word(DATA + 64) = 0;
            bool stop = now_s() > until;
            __atomic_store_n(&rounds_done, stop ? round : round + 1, __ATOMIC_SEQ_CST);
        }
        h->pc = m.bus.ram.base + CODE + id * 0x1000ull;
        h->x[A3] = 7;
        barrier(&generation);   /* X, Y cleared; go */
        if (__atomic_load_n(&rounds_done, __ATOMIC_SEQ_CST) == round)
            break;              /* out of time: both stop at the same round */
        use_jit ? jit_run(h, 4) : hart_run(h, 4);
        loaded[id] = h->x[A3];
        barrier(&generation);   /* both loads done; read before the next barrier 1 */
        if (id == 0 && loaded[0] == 0 && loaded[1] == 0)
            both_zero++;
    }
    return NULL;
}

/* Runs the litmus test with `middle` between the store and the load;
 * returns the rounds where both loads returned 0. */
static uint64_t litmus(uint32_t middle)
{
    for (unsigned i = 0; i < 2; i++) {
        /* sd a2, 0(a0); middle; ld a3, 0(a1); j . */
        const uint32_t code[] = {enc_s(0x23, 3, A0, A2, 0), middle, enc_i(0x03, A3, 3, A1, 0),
                                 JAL_SELF};
        memcpy(m.bus.ram.host + CODE + i * 0x1000, code, sizeof code);
        struct hart *h = &m.harts[i];
        h->x[A0] = m.bus.ram.base + DATA + (i ? 64 : 0);    /* own variable */
        h->x[A1] = m.bus.ram.base + DATA + (i ? 0 : 64);    /* the other's */
        h->x[A2] = 1;
    }
    machine_fence_i(&m);
    both_zero = 0;
    barrier_count = 0;
    pthread_t t[2];
    for (unsigned i = 0; i < 2; i++)
        CHECK(pthread_create(&t[i], NULL, runner, (void *)(uintptr_t)i) == 0);
    for (unsigned i = 0; i < 2; i++)
        pthread_join(t[i], NULL);
    CHECK(m.harts[0].pc >= m.bus.ram.base + CODE + 12 && m.harts[1].pc >= m.bus.ram.base + 0x1000 + 12,
          "a hart did not reach its load (pc %#llx, %#llx)", (unsigned long long)m.harts[0].pc,
          (unsigned long long)m.harts[1].pc);
    return both_zero;
}

int main(void)
{
    if (unit_harts_init(&m, 2, RAM_SIZE) < 0)
        return 1;
    for (int engine = 0; engine < 2; engine++) {
        use_jit = engine == 1;
        const char *name = use_jit ? "translator" : "interpreter";
        uint64_t fenced = litmus(FENCE_RW_RW);
        unsigned fenced_rounds = rounds_done;
        uint64_t unfenced = litmus(NOP);
        CHECK(fenced == 0, "%s: both harts missed the other's store in %llu of %u rounds "
              "with fence rw,rw between", name, (unsigned long long)fenced, fenced_rounds);
        printf("test_fence: %s: %u rounds with the fence, none reordered; without it %llu of "
               "%u rounds reordered\n", name, fenced_rounds, (unsigned long long)unfenced,
               rounds_done);
    }
    for (unsigned i = 0; i < 2; i++)
        jit_free(&m.harts[i]);
    printf("%s: %d checks, %d failures\n", __FILE__, checks, failures);
    return failures ? 1 : 0;
}
