/* Hart threads: every hart runs on a host thread of its own, in slices of
 * hart_run, and parks between instructions when it has nothing to do (WFI
 * without a pending interrupt, HSM stopped), when the machine is paused, or
 * while another thread owns an exclusive section.
 *
 * What a hart owns: its registers, its TLBs and its decoded-code cache. It
 * touches them only while EXECUTING; any other thread touches them only
 * while the hart is not (paused, or inside an exclusive section), with
 * cpu_lock ordering the hand-over both ways. Interrupt bits (mip) are the
 * exception: devices and other harts set them atomically at any time
 * (hart_set_pending), then machine_hart_notify wakes or kicks the hart.
 *
 * A hart's own timer (SBI set_timer) is checked after every slice, and a
 * hart parked in WFI sleeps at most until its deadline: a timer event costs
 * one thread wakeup, as it did with one thread.
 *
 * An exclusive section is QEMU's "safe work": the caller waits until every
 * other hart has left its slice (or is itself waiting for a section), does
 * its work on all harts' caches, and lets them go. Remote fences, fence.i
 * and the dirty-log harvest use it. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "cpu/cpu_internal.h"
#include "cpu/jit.h"
#include "machine/machine.h"

/* Instructions a hart runs between looks at its thread's state: about
 * 0.1 ms. Other threads rarely wait that long: they kick the hart, and
 * hart_run checks the kick at every taken jump. */
#define SLICE_INSNS 20000

/* Halt polling: a hart that enters WFI right after device activity (a disk
 * read in flight) watches for its interrupt for a while instead of
 * sleeping, which would add a thread wakeup to every request. */
#define HALT_POLL_NS 300000
#define HALT_POLL_RECENT_NS 2000000

/* The hart whose thread this is (NULL on other threads). */
static __thread struct hart *vcpu_self;

static struct vcpu *vcpu_of(struct machine *m, const struct hart *h)
{
    return &m->vcpus[h->hartid];
}

static struct hart *vcpu_current(const struct machine *m)
{
    return vcpu_self && vcpu_self->machine == m ? vcpu_self : NULL;
}

static int vcpu_state(const struct vcpu *v)
{
    return __atomic_load_n(&v->state, __ATOMIC_SEQ_CST);
}

/* Under cpu_lock. A hart that stops executing may be what a requester
 * waits for. */
static void vcpu_set_state(struct machine *m, struct vcpu *v, int state)
{
    __atomic_store_n(&v->state, state, __ATOMIC_SEQ_CST);
    if (state != VCPU_EXECUTING && m->cpu_waiters)
        pthread_cond_broadcast(&m->cpu_cond);
}

void machine_hart_kick(struct machine *m, struct hart *h)
{
    __atomic_store_n(&vcpu_of(m, h)->kick, 1, __ATOMIC_SEQ_CST);
    hart_end_jit_run(h);
}

void machine_hart_notify(struct machine *m, struct hart *h)
{
    struct vcpu *v = vcpu_of(m, h);
    /* On its own thread the executor checks right after the access that
     * raised it (CHECK_IRQ), and a parked hart re-checks after its timer. */
    if (h == vcpu_self)
        return;
    machine_hart_kick(m, h);
    /* The hart publishes PARKED before it reads mip to decide to sleep,
     * and we set mip before reading its state (both seq_cst): either it
     * sees the new bit, or we see it parked and signal under the lock it
     * sleeps with. */
    if (vcpu_state(v) == VCPU_PARKED) {
        pthread_mutex_lock(&m->cpu_lock);
        pthread_cond_signal(&v->cond);
        pthread_mutex_unlock(&m->cpu_lock);
    }
}

unsigned machine_hart_status(const struct machine *m, const struct hart *h)
{
    (void)m;
    return __atomic_load_n(&h->hsm, __ATOMIC_SEQ_CST);
}

void machine_harts_recheck(struct machine *m)
{
    pthread_mutex_lock(&m->cpu_lock);
    for (unsigned i = 0; i < m->nharts; i++)
        pthread_cond_signal(&m->vcpus[i].cond);
    pthread_mutex_unlock(&m->cpu_lock);
}

/* Under cpu_lock: must h stay parked? */
static bool vcpu_must_park(const struct machine *m, const struct hart *h)
{
    if (m->harts_hold || m->excl_active)
        return true;
    if (__atomic_load_n(&h->hsm, __ATOMIC_SEQ_CST) != HSM_STARTED)
        return true;
    return h->wfi && !hart_interrupt_pending(h);
}

static bool vcpu_should_exit(const struct machine *m)
{
    return m->harts_exit || machine_stop_reason(m) != MACHINE_RUNNING;
}

/* Longest single sleep of a parked hart with a timer armed (it then looks
 * again): keeps far deadlines clear of overflow. */
#define TIMER_WAIT_MAX_NS 1000000000ull

/* Under cpu_lock, parked in WFI: sleeps until woken or until the hart's
 * timer is due, then raises STIP itself. A timer already due has raised
 * STIP already (it is re-evaluated after every slice): it cannot wake the
 * hart again, so the hart sleeps until something else does.
 *
 * The raise happens under cpu_lock (on its own thread a raise notifies no
 * one, so it takes no lock) and only while no hold is on: a paused hart's
 * state is frozen. Otherwise a hart whose timed sleep ran out just after a
 * migration paused the guest would set STIP after its state was sent, and
 * the source would differ from what the destination loaded. */
static void vcpu_wait_for_interrupt(struct machine *m, struct hart *h)
{
    struct vcpu *v = vcpu_of(m, h);
    uint64_t deadline = machine_hart_timer_deadline(m, h);
    uint64_t now = machine_time_ticks(m);
    if (deadline == UINT64_MAX || deadline <= now) {
        bool stale = machine_hart_timer_due(m, h, now) != ((hart_mip(h) & MIP_STIP) != 0);
        if (!stale) {
            pthread_cond_wait(&v->cond, &m->cpu_lock);
            return;
        }
    } else {
        /* Guest ticks to host time: the clock runs at host speed while the
         * harts run (it only stops while they are held). */
        uint64_t ns = deadline - now > TIMER_WAIT_MAX_NS / 100 ? TIMER_WAIT_MAX_NS
                                                               : vclock_ticks_to_ns(deadline - now);
        uint64_t wake = vclock_host_ns() + ns;
        struct timespec ts = {.tv_sec = (time_t)(wake / 1000000000u),
                              .tv_nsec = (long)(wake % 1000000000u)};
        pthread_cond_timedwait(&v->cond, &m->cpu_lock, &ts);
    }
    if (!m->harts_hold)
        machine_update_hart_timer(m, h);
}

bool machine_hart_enter(struct machine *m, struct hart *h)
{
    struct vcpu *v = vcpu_of(m, h);
    pthread_mutex_lock(&m->cpu_lock);
    vcpu_set_state(m, v, VCPU_PARKED);
    while (!vcpu_should_exit(m) && vcpu_must_park(m, h)) {
        bool only_idle = !m->harts_hold && !m->excl_active &&
                         __atomic_load_n(&h->hsm, __ATOMIC_SEQ_CST) == HSM_STARTED;
        if (only_idle)
            vcpu_wait_for_interrupt(m, h);
        else
            pthread_cond_wait(&v->cond, &m->cpu_lock);
    }
    bool run = !vcpu_should_exit(m);
    if (run) {
        /* Requesters kick only EXECUTING harts, under this lock: an old
         * kick is stale. An interrupt's kick comes after its mip bit and
         * interrupt_check, which hart_run looks at first. */
        __atomic_store_n(&v->kick, 0, __ATOMIC_SEQ_CST);
        vcpu_set_state(m, v, VCPU_EXECUTING);
    }
    pthread_mutex_unlock(&m->cpu_lock);
    return run;
}

void machine_hart_leave(struct machine *m, struct hart *h)
{
    pthread_mutex_lock(&m->cpu_lock);
    vcpu_set_state(m, vcpu_of(m, h), VCPU_PARKED);
    pthread_mutex_unlock(&m->cpu_lock);
}

static void vcpu_run_slice(struct machine *m, struct hart *h)
{
    if (h->wfi) {
        /* Woken: an interrupt is pending (taken at once if enabled). */
        h->wfi = false;
    }
    if (m->trace) {
        /* Debug aid (FERRY_TRACE=1): one instruction at a time. */
        for (int k = 0; k < 1000 && !h->wfi; k++) {
            fprintf(stderr, "trace: hart %u pc %016llx priv %u\n", h->hartid,
                    (unsigned long long)h->pc, h->priv);
            hart_run(h, 1);
        }
    } else {
        h->use_jit ? jit_run(h, SLICE_INSNS) : hart_run(h, SLICE_INSNS);
    }
    machine_update_hart_timer(m, h);
    __atomic_store_n(&vcpu_of(m, h)->instret, h->instret, __ATOMIC_RELAXED);
    if (h->icache->flush_pending) {
        /* This hart's code cache filled up: start over. Only this thread
         * ever holds its pages, and the fetch TLB entries point into them. */
        icache_free(h->icache);
        memset(h->tlb_fetch, 0xff, sizeof h->tlb_fetch);
    }
}

/* After a slice that ended in WFI: spin briefly if devices were just busy. */
static void vcpu_halt_poll(struct machine *m, struct hart *h)
{
    if (!h->wfi || hart_interrupt_pending(h))
        return;
    uint64_t now = vclock_host_ns();
    if (now - __atomic_load_n(&m->last_wake_ns, __ATOMIC_RELAXED) > HALT_POLL_RECENT_NS)
        return;
    const int *kick = &vcpu_of(m, h)->kick;
    while (!hart_interrupt_pending(h) && !__atomic_load_n(kick, __ATOMIC_RELAXED) &&
           vclock_host_ns() - now < HALT_POLL_NS)
        sched_yield(); /* the device's thread may need this core */
}

/* Auto-converge (throttle.h): after a slice, the hart's thread waits out
 * the sleep the slice cost, parked (a pause or an exclusive section does
 * not wait for it), on its own condition: an exit, a pause or an interrupt
 * ends the wait early (the debt stays, except on a release). */
static void vcpu_throttle_wait(struct machine *m, struct hart *h, struct throttle_debt *d)
{
    struct vcpu *v = vcpu_of(m, h);
    uint64_t wait;
    while ((wait = throttle_wait_ns(&m->throttle, d, vclock_host_ns())) != 0) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts); /* the condition's clock (machine_init) */
        uint64_t ns = (uint64_t)ts.tv_nsec + wait;
        ts.tv_sec += (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        pthread_mutex_lock(&m->cpu_lock);
        bool leave = vcpu_should_exit(m) || m->harts_hold || m->excl_active;
        if (!leave)
            pthread_cond_timedwait(&v->cond, &m->cpu_lock, &ts);
        pthread_mutex_unlock(&m->cpu_lock);
        if (leave)
            return;
    }
}

static void *vcpu_thread(void *arg)
{
    struct hart *h = arg;
    struct machine *m = h->machine;
    struct throttle_debt debt = {0};
    vcpu_self = h;
    while (machine_hart_enter(m, h)) {
        /* Throttled: the slice is charged in this thread's CPU time. */
        bool throttled = throttle_get(&m->throttle) != 0;
        uint64_t t_slice = throttled ? throttle_cpu_ns() : 0;
        vcpu_run_slice(m, h);
        machine_hart_leave(m, h);
        if (throttled) {
            throttle_charge(&m->throttle, &debt, throttle_cpu_ns() - t_slice);
            vcpu_throttle_wait(m, h, &debt);
        }
        if (m->has_tohost)
            machine_check_tohost(m);
        vcpu_halt_poll(m, h);
    }
    vcpu_self = NULL;
    return NULL;
}

int machine_harts_start(struct machine *m, struct error *err)
{
    /* Quit signals go to the main loop's thread, never to a hart's. */
    sigset_t block, old;
    sigemptyset(&block);
    sigaddset(&block, SIGINT);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    int rc = 0;
    for (unsigned i = 0; i < m->nharts && rc == 0; i++) {
        struct vcpu *v = &m->vcpus[i];
        __atomic_store_n(&v->instret, m->harts[i].instret, __ATOMIC_RELAXED);
        /* Set before the thread exists: from then on readers (ctl status)
         * must take the published count, never the hart's own field. */
        __atomic_store_n(&v->thread_started, true, __ATOMIC_RELEASE);
        int e = pthread_create(&v->thread, NULL, vcpu_thread, &m->harts[i]);
        if (e != 0) {
            __atomic_store_n(&v->thread_started, false, __ATOMIC_RELEASE);
            rc = error_set(err, "cannot start the thread of hart %u: %s", i, strerror(e));
        }
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return rc;
}

void machine_harts_join(struct machine *m)
{
    pthread_mutex_lock(&m->cpu_lock);
    m->harts_exit = true;
    for (unsigned i = 0; i < m->nharts; i++) {
        machine_hart_kick(m, &m->harts[i]);
        pthread_cond_signal(&m->vcpus[i].cond);
    }
    pthread_mutex_unlock(&m->cpu_lock);
    for (unsigned i = 0; i < m->nharts; i++) {
        if (m->vcpus[i].thread_started)
            pthread_join(m->vcpus[i].thread, NULL);
        __atomic_store_n(&m->vcpus[i].thread_started, false, __ATOMIC_RELEASE);
    }
}

/* Under cpu_lock: kicks every hart but `self` that is executing; true if
 * there was one. */
static bool vcpu_kick_executing(struct machine *m, const struct hart *self)
{
    bool any = false;
    for (unsigned i = 0; i < m->nharts; i++) {
        if (&m->harts[i] == self || vcpu_state(&m->vcpus[i]) != VCPU_EXECUTING)
            continue;
        machine_hart_kick(m, &m->harts[i]);
        any = true;
    }
    return any;
}

static void vcpu_unpark_all(struct machine *m)
{
    for (unsigned i = 0; i < m->nharts; i++)
        pthread_cond_signal(&m->vcpus[i].cond);
}

void machine_harts_hold(struct machine *m)
{
    pthread_mutex_lock(&m->cpu_lock);
    m->harts_hold = true;
    m->cpu_waiters++;
    for (;;) {
        bool busy = vcpu_kick_executing(m, NULL);
        /* A hart blocked in exclusive_begin is mid-instruction: wait until
         * it has finished that instruction and parked. */
        for (unsigned i = 0; i < m->nharts; i++)
            busy |= vcpu_state(&m->vcpus[i]) != VCPU_PARKED;
        if (!busy)
            break;
        pthread_cond_wait(&m->cpu_cond, &m->cpu_lock);
    }
    m->cpu_waiters--;
    pthread_mutex_unlock(&m->cpu_lock);
}

void machine_harts_release(struct machine *m)
{
    pthread_mutex_lock(&m->cpu_lock);
    m->harts_hold = false;
    vcpu_unpark_all(m);
    pthread_mutex_unlock(&m->cpu_lock);
}

void machine_exclusive_begin(struct machine *m)
{
    struct hart *self = vcpu_current(m);
    pthread_mutex_lock(&m->cpu_lock);
    if (self)
        vcpu_set_state(m, vcpu_of(m, self), VCPU_BLOCKED);
    m->cpu_waiters++;
    while (m->excl_active)
        pthread_cond_wait(&m->cpu_cond, &m->cpu_lock);
    m->excl_active = true; /* from here no hart enters a slice */
    while (vcpu_kick_executing(m, self))
        pthread_cond_wait(&m->cpu_cond, &m->cpu_lock);
    m->cpu_waiters--;
    pthread_mutex_unlock(&m->cpu_lock);
}

void machine_exclusive_end(struct machine *m)
{
    struct hart *self = vcpu_current(m);
    pthread_mutex_lock(&m->cpu_lock);
    m->excl_active = false;
    if (self) {
        vcpu_set_state(m, vcpu_of(m, self), VCPU_EXECUTING);
        if (m->harts_hold)
            machine_hart_kick(m, self); /* a pause waits for this hart */
    }
    pthread_cond_broadcast(&m->cpu_cond); /* the next exclusive requester */
    vcpu_unpark_all(m);
    pthread_mutex_unlock(&m->cpu_lock);
}

bool machine_start_hart(struct machine *m, struct hart *h, uint64_t addr, uint64_t arg)
{
    pthread_mutex_lock(&m->cpu_lock);
    bool stopped = __atomic_load_n(&h->hsm, __ATOMIC_SEQ_CST) == HSM_STOPPED;
    if (stopped) {
        /* It may still be finishing the hart_stop call on its thread:
         * its registers are ours only once it has parked. */
        m->cpu_waiters++;
        while (vcpu_state(vcpu_of(m, h)) != VCPU_PARKED)
            pthread_cond_wait(&m->cpu_cond, &m->cpu_lock);
        m->cpu_waiters--;
        hart_start_supervisor(h, addr, arg);
        __atomic_store_n(&h->hsm, HSM_STARTED, __ATOMIC_SEQ_CST);
        pthread_cond_signal(&vcpu_of(m, h)->cond);
    }
    pthread_mutex_unlock(&m->cpu_lock);
    return stopped;
}

void machine_stop_hart(struct machine *m, struct hart *h)
{
    pthread_mutex_lock(&m->cpu_lock);
    __atomic_store_n(&h->hsm, HSM_STOPPED, __ATOMIC_SEQ_CST);
    h->wfi = false;
    pthread_mutex_unlock(&m->cpu_lock);
    machine_hart_kick(m, h); /* park after this instruction */
}

void machine_fence_i(struct machine *m)
{
    machine_exclusive_begin(m);
    for (unsigned i = 0; i < m->nharts; i++) {
        struct hart *h = &m->harts[i];
        icache_invalidate(h->icache);
        memset(h->tlb_fetch, 0xff, sizeof h->tlb_fetch);
    }
    machine_exclusive_end(m);
}

void machine_remote_sfence(struct machine *m, uint64_t mask)
{
    struct hart *self = vcpu_current(m);
    if (self && (mask & ~(1ull << self->hartid)) == 0) {
        if (mask)
            hart_tlb_flush(self); /* only this hart: nothing to wait for */
        return;
    }
    machine_exclusive_begin(m);
    for (unsigned i = 0; i < m->nharts; i++)
        if ((mask >> i) & 1)
            hart_tlb_flush(&m->harts[i]);
    machine_exclusive_end(m);
}

/* Why the dirty log stays exact with harts on several threads: a write-TLB
 * entry is only filled after its page was marked (mmu.c tlb_fill), and this
 * harvest runs while no hart executes (an exclusive section, or a pause),
 * dropping every write entry together with the bits. A store that happened
 * before the harvest went through an entry filled, and so marked, since the
 * previous harvest: its bit is in this harvest, and the data is visible to
 * the harvesting thread (the hart left its slice under cpu_lock before the
 * harvest took it). A store after the harvest finds no write entry, takes
 * the slow path and marks the page again. Stores that bypass the TLB (slow
 * path, AMOs, A/D bits, DMA) mark the page themselves within the same
 * instruction or request, so they fall wholly on one side of the harvest. */
uint64_t machine_dirty_sync(struct machine *m, uint64_t *out)
{
    uint64_t n = ram_dirty_harvest(&m->bus.ram, out);
    for (unsigned i = 0; i < m->nharts; i++)
        hart_tlb_flush_writes(&m->harts[i]);
    return n;
}

int64_t machine_dirty_sync_remote(struct machine *m, uint64_t *out)
{
    machine_exclusive_begin(m);
    uint64_t n = machine_dirty_sync(m, out);
    machine_exclusive_end(m);
    return (int64_t)n;
}
