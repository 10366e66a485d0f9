/*
 * smphammer: threads hammering shared memory with every RISC-V atomic
 * primitive; the totals must come out exact.
 *
 * Usage: smphammer [threads] [iterations]     (default 4 threads, 100000)
 *
 * Thread i is pinned to CPU i mod (online CPUs) and all start together
 * (a spinning barrier). Each thread, `iterations` times:
 *   lrsc_d   lr.d/sc.d retry loop adding 1 to a shared 64-bit counter
 *   lrsc_w   lr.w/sc.w retry loop adding 3 to a shared 32-bit counter
 *   lrsc_jump the lr.d/sc.d loop with a taken jump between LR and SC
 *            (legal, only without the spec's forward-progress guarantee):
 *            an emulator that switches harts at taken jumps must then
 *            fail the SC when another hart stored in between
 *   amoadd_d amoadd.d of 1, amoadd_w amoadd.w of 5
 *   lock     amoswap.w.aq spinlock (released by amoswap.w.rl) around a
 *            plain read-modify-write of a counter and an owner word that
 *            must stay this thread's for the whole critical section
 * Counters that share a cache line with others' (lrsc_d next to lrsc_w,
 * the lock next to its counter) make reservations and AMOs collide.
 * Then threads 0 and 1 (when there are two and at least two CPUs) check
 * that another hart's store breaks a reservation, `iterations` / 100
 * rounds: thread 0 does lr.d, tells thread 1, which stores to the reserved
 * word (a different value in odd rounds, the same value in even ones: an
 * emulator comparing values would miss it) and answers; only then does
 * thread 0 try sc.d, which must fail (the spec: an SC may succeed only if
 * no store from another hart to the reservation set can be observed to
 * have occurred between the LR and the SC). QEMU 7.2's multi-threaded TCG
 * fails the same-value case (measured: every such SC succeeds there), as
 * it emulates SC by a compare-and-swap against the value LR read.
 * Then a multi-producer multi-consumer ring (bounded, sequence number per
 * slot, compare-and-swap on the head and tail): each thread enqueues
 * `iterations` / 4 items (producer << 32 | sequence) and dequeues
 * whenever the ring is full or its own items are all in; together they
 * dequeue every item exactly once. Checked: the count, the sum and a
 * hash sum of all items against the producers', and that each consumer
 * sees each producer's items in increasing order.
 *
 * Output: one line per check `smphammer: NAME got=G want=W`, then
 * `smphammer: OK` (exit 0) or `smphammer: FAIL ...` (exit 1).
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define MAX_THREADS 64
#define RING_SLOTS 64 /* a power of two */

static unsigned nthreads = 4;
static uint64_t iterations = 100000;

/* Contended on purpose: these share a cache line. */
static struct {
    uint64_t lrsc_d;
    uint64_t lrsc_jump;
    uint32_t lrsc_w;
    uint32_t amoadd_w;
    uint64_t amoadd_d;
    uint32_t lock;
    uint32_t owner;
    uint64_t locked_count;
} __attribute__((aligned(64))) shared;

static uint64_t lock_violations; /* written only under the lock */

/* The reservation-breaking handshake (threads 0 and 1). */
static struct {
    uint64_t word __attribute__((aligned(64)));
    uint64_t lr_done __attribute__((aligned(64)));    /* round, from thread 0 */
    uint64_t store_done __attribute__((aligned(64))); /* round, from thread 1 */
    uint64_t sc_succeeded[2];                         /* by round parity */
    uint64_t rounds;
} resv;

static void lrsc_add_d(uint64_t *p, uint64_t v)
{
    uint64_t old, fail;
    __asm__ volatile("1: lr.d %0, (%2)\n"
                     "   add %1, %0, %3\n"
                     "   sc.d %1, %1, (%2)\n"
                     "   bnez %1, 1b\n"
                     : "=&r"(old), "=&r"(fail)
                     : "r"(p), "r"(v)
                     : "memory");
}

static void lrsc_add_d_jump(uint64_t *p, uint64_t v)
{
    uint64_t old, fail;
    __asm__ volatile("1: lr.d %0, (%2)\n"
                     "   j 2f\n"
                     "2: add %1, %0, %3\n"
                     "   sc.d %1, %1, (%2)\n"
                     "   bnez %1, 1b\n"
                     : "=&r"(old), "=&r"(fail)
                     : "r"(p), "r"(v)
                     : "memory");
}

static void lrsc_add_w(uint32_t *p, uint32_t v)
{
    uint64_t old, fail;
    __asm__ volatile("1: lr.w %0, (%2)\n"
                     "   addw %1, %0, %3\n"
                     "   sc.w %1, %1, (%2)\n"
                     "   bnez %1, 1b\n"
                     : "=&r"(old), "=&r"(fail)
                     : "r"(p), "r"((uint64_t)v)
                     : "memory");
}

static void amoadd_d(uint64_t *p, uint64_t v)
{
    uint64_t old;
    __asm__ volatile("amoadd.d %0, %2, (%1)" : "=r"(old) : "r"(p), "r"(v) : "memory");
}

static void amoadd_w(uint32_t *p, uint32_t v)
{
    uint64_t old;
    __asm__ volatile("amoadd.w %0, %2, (%1)" : "=r"(old) : "r"(p), "r"((uint64_t)v) : "memory");
}

static void spin_lock(uint32_t *l)
{
    uint64_t old, one = 1;
    for (;;) {
        __asm__ volatile("amoswap.w.aq %0, %2, (%1)" : "=r"(old) : "r"(l), "r"(one) : "memory");
        if (!old)
            return;
        while (__atomic_load_n(l, __ATOMIC_RELAXED))
            sched_yield(); /* the holder's vCPU may share our host core */
    }
}

static void spin_unlock(uint32_t *l)
{
    uint64_t old;
    __asm__ volatile("amoswap.w.rl %0, zero, (%1)" : "=r"(old) : "r"(l) : "memory");
}

static uint64_t lr_d(uint64_t *p)
{
    uint64_t v;
    __asm__ volatile("lr.d %0, (%1)" : "=r"(v) : "r"(p) : "memory");
    return v;
}

/* 0 when the store was done */
static uint64_t sc_d(uint64_t *p, uint64_t v)
{
    uint64_t fail;
    __asm__ volatile("sc.d %0, %2, (%1)" : "=r"(fail) : "r"(p), "r"(v) : "memory");
    return fail;
}

static void reservation_breaker(unsigned me)
{
    for (uint64_t r = 1; r <= resv.rounds; r++) {
        if (me == 0) {
            uint64_t v = lr_d(&resv.word);
            __atomic_store_n(&resv.lr_done, r, __ATOMIC_RELEASE);
            while (__atomic_load_n(&resv.store_done, __ATOMIC_ACQUIRE) != r)
                ;
            if (sc_d(&resv.word, v + 1) == 0)
                resv.sc_succeeded[r & 1]++;
        } else {
            while (__atomic_load_n(&resv.lr_done, __ATOMIC_ACQUIRE) != r)
                ;
            uint64_t v = __atomic_load_n(&resv.word, __ATOMIC_RELAXED);
            __atomic_store_n(&resv.word, r & 1 ? v + 2 : v, __ATOMIC_RELAXED);
            __atomic_store_n(&resv.store_done, r, __ATOMIC_RELEASE);
        }
    }
}

/* ---- the ring: bounded MPMC queue with a sequence number per slot ---- */
static struct {
    struct {
        uint64_t seq;
        uint64_t value;
    } slot[RING_SLOTS];
    uint64_t head __attribute__((aligned(64))); /* next position to dequeue */
    uint64_t tail __attribute__((aligned(64))); /* next position to enqueue */
} ring;

static int ring_put(uint64_t v)
{
    uint64_t pos = __atomic_load_n(&ring.tail, __ATOMIC_RELAXED);
    for (;;) {
        typeof(ring.slot[0]) *s = &ring.slot[pos & (RING_SLOTS - 1)];
        uint64_t seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
        int64_t diff = (int64_t)(seq - pos);
        if (diff == 0) {
            if (__atomic_compare_exchange_n(&ring.tail, &pos, pos + 1, 1, __ATOMIC_RELAXED,
                                            __ATOMIC_RELAXED)) {
                s->value = v;
                __atomic_store_n(&s->seq, pos + 1, __ATOMIC_RELEASE);
                return 1;
            }
        } else if (diff < 0) {
            return 0; /* full */
        } else {
            pos = __atomic_load_n(&ring.tail, __ATOMIC_RELAXED);
        }
    }
}

static int ring_get(uint64_t *v)
{
    uint64_t pos = __atomic_load_n(&ring.head, __ATOMIC_RELAXED);
    for (;;) {
        typeof(ring.slot[0]) *s = &ring.slot[pos & (RING_SLOTS - 1)];
        uint64_t seq = __atomic_load_n(&s->seq, __ATOMIC_ACQUIRE);
        int64_t diff = (int64_t)(seq - (pos + 1));
        if (diff == 0) {
            if (__atomic_compare_exchange_n(&ring.head, &pos, pos + 1, 1, __ATOMIC_RELAXED,
                                            __ATOMIC_RELAXED)) {
                *v = s->value;
                __atomic_store_n(&s->seq, pos + RING_SLOTS, __ATOMIC_RELEASE);
                return 1;
            }
        } else if (diff < 0) {
            return 0; /* empty */
        } else {
            pos = __atomic_load_n(&ring.head, __ATOMIC_RELAXED);
        }
    }
}

static uint64_t item_hash(uint64_t v)
{
    v = (v ^ (v >> 30)) * 0xBF58476D1CE4E5B9ull;
    v = (v ^ (v >> 27)) * 0x94D049BB133111EBull;
    return v ^ (v >> 31);
}

struct consumer_totals {
    uint64_t count, sum, hash_sum, order_errors;
};

static uint64_t ring_items_per_thread;
static uint64_t ring_consumed; /* all threads' dequeues so far */
static struct consumer_totals totals[MAX_THREADS];
static unsigned start_count;

static void take_item(struct consumer_totals *t, uint64_t *last_seq, uint64_t v)
{
    unsigned producer = (unsigned)(v >> 32);
    uint64_t seq = v & 0xffffffff;
    t->count++;
    t->sum += v;
    t->hash_sum += item_hash(v);
    if (producer >= nthreads || seq <= last_seq[producer])
        t->order_errors++;
    else
        last_seq[producer] = seq;
    __atomic_fetch_add(&ring_consumed, 1, __ATOMIC_RELAXED);
}

static void ring_run(unsigned me)
{
    struct consumer_totals *t = &totals[me];
    uint64_t last_seq[MAX_THREADS] = {0}; /* sequences start at 1 */
    uint64_t total = ring_items_per_thread * nthreads, next = 1, v;
    while (next <= ring_items_per_thread) {
        if (ring_put((uint64_t)me << 32 | next))
            next++;
        else if (ring_get(&v))
            take_item(t, last_seq, v);
    }
    while (__atomic_load_n(&ring_consumed, __ATOMIC_RELAXED) < total) {
        if (ring_get(&v))
            take_item(t, last_seq, v);
        else
            sched_yield();
    }
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
    __atomic_fetch_add(&start_count, 1, __ATOMIC_ACQ_REL);
    while (__atomic_load_n(&start_count, __ATOMIC_ACQUIRE) < nthreads)
        ;
    for (uint64_t i = 0; i < iterations; i++) {
        lrsc_add_d(&shared.lrsc_d, 1);
        lrsc_add_w(&shared.lrsc_w, 3);
        lrsc_add_d_jump(&shared.lrsc_jump, 7);
        amoadd_d(&shared.amoadd_d, 1);
        amoadd_w(&shared.amoadd_w, 5);
        spin_lock(&shared.lock);
        uint32_t owner = me + 1;
        __atomic_store_n(&shared.owner, owner, __ATOMIC_RELAXED);
        shared.locked_count = shared.locked_count + 1;
        if (__atomic_load_n(&shared.owner, __ATOMIC_RELAXED) != owner)
            lock_violations++;
        __atomic_store_n(&shared.owner, 0, __ATOMIC_RELAXED);
        spin_unlock(&shared.lock);
    }
    if (me < 2 && resv.rounds)
        reservation_breaker(me);
    ring_run(me);
    return NULL;
}

static int failed;

static void check(const char *name, uint64_t got, uint64_t want)
{
    printf("smphammer: %s got=%" PRIu64 " want=%" PRIu64 "\n", name, got, want);
    if (got != want) {
        printf("smphammer: FAIL %s\n", name);
        failed = 1;
    }
}

static uint64_t parse(const char *s, uint64_t max)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (*end || end == s || v == 0 || v > max) {
        fprintf(stderr, "usage: smphammer [threads 1..%d] [iterations]\n", MAX_THREADS);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    if (argc > 1)
        nthreads = (unsigned)parse(argv[1], MAX_THREADS);
    if (argc > 2)
        iterations = parse(argv[2], 1u << 28);
    ring_items_per_thread = iterations / 4 ? iterations / 4 : 1;
    if (nthreads >= 2 && sysconf(_SC_NPROCESSORS_ONLN) >= 2)
        resv.rounds = iterations / 100 ? iterations / 100 : 1;
    for (uint64_t i = 0; i < RING_SLOTS; i++)
        ring.slot[i].seq = i;
    setvbuf(stdout, NULL, _IOLBF, 0);

    pthread_t tid[MAX_THREADS];
    for (unsigned i = 0; i < nthreads; i++)
        if (pthread_create(&tid[i], NULL, worker, (void *)(uintptr_t)i)) {
            printf("smphammer: FAIL cannot create thread %u\n", i);
            return 1;
        }
    for (unsigned i = 0; i < nthreads; i++)
        pthread_join(tid[i], NULL);

    uint64_t n = nthreads, it = iterations;
    check("lrsc_d", shared.lrsc_d, n * it);
    check("lrsc_w", shared.lrsc_w, (uint32_t)(n * it * 3));
    check("lrsc_jump", shared.lrsc_jump, n * it * 7);
    check("amoadd_d", shared.amoadd_d, n * it);
    check("amoadd_w", shared.amoadd_w, (uint32_t)(n * it * 5));
    check("locked", shared.locked_count, n * it);
    check("lock_violations", lock_violations, 0);
    printf("smphammer: reservation rounds=%" PRIu64 "\n", resv.rounds);
    check("sc_after_other_store", resv.sc_succeeded[1], 0);
    check("sc_after_other_same_value_store", resv.sc_succeeded[0], 0);

    struct consumer_totals all = {0}, want = {0};
    for (unsigned i = 0; i < nthreads; i++) {
        all.count += totals[i].count;
        all.sum += totals[i].sum;
        all.hash_sum += totals[i].hash_sum;
        all.order_errors += totals[i].order_errors;
        for (uint64_t s = 1; s <= ring_items_per_thread; s++) {
            uint64_t v = (uint64_t)i << 32 | s;
            want.count++;
            want.sum += v;
            want.hash_sum += item_hash(v);
        }
    }
    check("ring_items", all.count, want.count);
    check("ring_sum", all.sum, want.sum);
    check("ring_hash", all.hash_sum, want.hash_sum);
    check("ring_order_errors", all.order_errors, 0);
    puts(failed ? "smphammer: FAIL" : "smphammer: OK");
    return failed;
}
