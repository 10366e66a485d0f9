/* Machine assembly and the main loop. The harts run on threads of their
 * own (vcpu.c); this loop keeps what is not a hart's: the platform timers
 * (ACLINT: it sets the interrupt bits, which wake the hart), console input,
 * device completions (the wake eventfd -> interrupt lines), pause requests
 * and quitting. A hart's own SBI timer is its thread's (see
 * machine_hart_timer_due). The loop sleeps in ppoll until the next platform
 * deadline or an event, so an idle guest (every hart parked in WFI) costs
 * no CPU. */
#include "machine/machine.h"
#include "cpu/jit.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "backend/disk.h"
#include "dev/virtio_devices.h"
#include "machine/boot.h"
#include "machine/fdt.h"
#include "migrate/migration.h"
#include "migrate/replication.h"

#define PAUSE_SPIN_NS 1000000
#define FDT_MAX_SIZE (64 * 1024)
#define MIN_RAM (16ull << 20)

/* Boot ROM: a0 = mhartid, a1 = DTB address, mstatus.MPP = S, mepc = kernel
 * entry, mret. The two data words follow at offsets 48 and 56. */
static const uint32_t bootrom_code[] = {
    0x00000297, /* auipc t0, 0 */
    0x0302b583, /* ld    a1, 48(t0) */
    0x0382b303, /* ld    t1, 56(t0) */
    0xf1402573, /* csrr  a0, mhartid */
    0x00100393, /* li    t2, 1 */
    0x00b39393, /* slli  t2, t2, 11 */
    0x30039073, /* csrw  mstatus, t2 */
    0x34131073, /* csrw  mepc, t1 */
    0x30200073, /* mret */
};
#define BOOTROM_DTB_OFFSET 48
#define BOOTROM_ENTRY_OFFSET 56

static uint64_t bootrom_read(void *opaque, uint64_t offset, unsigned size)
{
    const uint8_t *rom = opaque;
    uint64_t v = 0;
    memcpy(&v, rom + offset, size);
    return v;
}

static const struct mmio_ops bootrom_ops = {.read = bootrom_read, .write = NULL};

void machine_request_stop(struct machine *m, enum machine_stop why, int exit_code)
{
    pthread_mutex_lock(&m->ctl_lock);
    int expected = MACHINE_RUNNING;
    if (__atomic_compare_exchange_n(&m->stop, &expected, (int)why, false, __ATOMIC_SEQ_CST,
                                    __ATOMIC_SEQ_CST))
        m->exit_code = exit_code;
    /* Wake a parked or sleeping loop so it notices. */
    pthread_cond_broadcast(&m->ctl_cond);
    pthread_mutex_unlock(&m->ctl_lock);
    for (unsigned i = 0; i < m->nharts; i++)
        machine_hart_kick(m, &m->harts[i]);
    machine_wake(m);
}

enum machine_stop machine_stop_reason(const struct machine *m)
{
    return (enum machine_stop)__atomic_load_n(&m->stop, __ATOMIC_SEQ_CST);
}

bool machine_is_paused(const struct machine *m)
{
    return __atomic_load_n(&m->paused, __ATOMIC_ACQUIRE);
}

uint64_t machine_time_ticks(const struct machine *m)
{
    return vclock_ticks(&m->clock);
}

/* Makes the main loop recompute its sleep (a timer deadline moved). */
static void machine_kick_loop(void *opaque)
{
    struct machine *m = opaque;
    uint64_t one = 1;
    __atomic_store_n(&m->kick, 1, __ATOMIC_RELEASE);
    if (write(m->wake_fd, &one, sizeof one) < 0) {
    }
}

/* A hart's own timer (the SBI timer and Sstc's stimecmp, which share one
 * compare value: hart_timer_update/hart_timer_deadline decide) is the hart
 * thread's business: it checks it after every slice and, when it parks in
 * WFI, sleeps at most until its deadline (vcpu.c). Routing it through the
 * main loop would cost two thread wakeups per timer event (loop, then hart)
 * instead of one: with nanosleep-heavy guests on a busy host, each wakeup
 * waits for a CPU. */
bool machine_hart_timer_due(const struct machine *m, const struct hart *h, uint64_t now)
{
    (void)m;
    return now >= hart_timer_deadline(h);
}

uint64_t machine_hart_timer_deadline(const struct machine *m, const struct hart *h)
{
    (void)m;
    return hart_timer_deadline(h);
}

void machine_update_hart_timer(struct machine *m, struct hart *h)
{
    hart_timer_update(h, machine_time_ticks(m));
}

void machine_set_hart_timer(struct machine *m, struct hart *h, uint64_t timecmp)
{
    __atomic_store_n(&h->stimecmp, timecmp, __ATOMIC_RELAXED);
    machine_update_hart_timer(m, h);
}

/* A guest write moved an ACLINT deadline or the clock itself: the main loop
 * and harts sleeping until their own deadlines recompute them. */
static void machine_timers_changed(void *opaque)
{
    struct machine *m = opaque;
    machine_kick_loop(m);
    machine_harts_recheck(m);
}

void machine_send_ipi(struct machine *m, unsigned hartid)
{
    if (hartid < m->nharts) {
        hart_set_pending(&m->harts[hartid], MIP_SSIP, true);
    }
}

uint64_t machine_instructions(const struct machine *m)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < m->nharts; i++) {
        /* A running hart's registers are its thread's: read what it
         * published after its last slice. */
        const struct vcpu *v = &m->vcpus[i];
        total += __atomic_load_n(&v->thread_started, __ATOMIC_ACQUIRE)
                     ? __atomic_load_n(&v->instret, __ATOMIC_RELAXED)
                     : m->harts[i].instret;
    }
    return total;
}

void machine_wake(void *opaque)
{
    struct machine *m = opaque;
    uint64_t one = 1;
    /* Devices are busy: an idle loop halt-polls for a while. */
    __atomic_store_n(&m->last_wake_ns, vclock_host_ns(), __ATOMIC_RELAXED);
    /* A running slice ends at its next taken jump instead of after up to
     * SLICE_INSNS: a pause or an interrupt is not kept waiting ~0.1 ms. */
    __atomic_store_n(&m->kick, 1, __ATOMIC_RELEASE);
    /* Nonblocking: a full counter already means "wake up". */
    if (write(m->wake_fd, &one, sizeof one) < 0) {
    }
}

static void machine_quiesce_devices(struct machine *m, bool quiesce)
{
    for (unsigned i = 0; i < MEMMAP_VIRTIO_SLOTS; i++) {
        const struct virtio_device_ops *ops = m->virtio[i].ops;
        if (ops && quiesce && ops->quiesce)
            ops->quiesce(&m->virtio[i]);
        else if (ops && !quiesce && ops->resume)
            ops->resume(&m->virtio[i]);
    }
}

/* Main loop side of the cross-thread requests. A pause parks the harts,
 * freezes the clock, quiesces the devices and waits here until resumed. */
static void machine_serve_requests(struct machine *m)
{
    pthread_mutex_lock(&m->ctl_lock);
    if (__atomic_load_n(&m->requests, __ATOMIC_ACQUIRE) & REQ_PAUSE) {
        __atomic_and_fetch(&m->requests, ~REQ_PAUSE, __ATOMIC_RELEASE);
        pthread_mutex_unlock(&m->ctl_lock);
        machine_harts_hold(m);
        pthread_mutex_lock(&m->ctl_lock);
        vclock_pause(&m->clock);
        pthread_mutex_unlock(&m->ctl_lock);
        machine_quiesce_devices(m, true);
        pthread_mutex_lock(&m->ctl_lock);
        __atomic_store_n(&m->paused, true, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&m->ctl_cond);
        while (m->paused && machine_stop_reason(m) == MACHINE_RUNNING)
            pthread_cond_wait(&m->ctl_cond, &m->ctl_lock);
        if (machine_stop_reason(m) != MACHINE_RUNNING) {
            /* Migrated away or quitting: the guest must not run again. */
            pthread_mutex_unlock(&m->ctl_lock);
            return;
        }
        pthread_mutex_unlock(&m->ctl_lock);
        machine_quiesce_devices(m, false);
        pthread_mutex_lock(&m->ctl_lock);
        /* The guest may have been replaced by a loaded state: refresh what
         * the harts derive from it. */
        for (unsigned i = 0; i < m->nharts; i++)
            hart_note_interrupts(&m->harts[i]);
        vclock_resume(&m->clock);
        pthread_mutex_unlock(&m->ctl_lock);
        machine_harts_release(m);
        return;
    }
    pthread_mutex_unlock(&m->ctl_lock);
}

int machine_pause(struct machine *m)
{
    pthread_mutex_lock(&m->ctl_lock);
    if (!m->paused && !m->loop_done) {
        __atomic_or_fetch(&m->requests, REQ_PAUSE, __ATOMIC_RELEASE);
        machine_wake(m);
        /* The loop parks within a slice (~0.1 ms): a migration's pause is
         * downtime, so watch for it rather than sleep through a wakeup. */
        pthread_mutex_unlock(&m->ctl_lock);
        for (uint64_t t0 = vclock_host_ns(); vclock_host_ns() - t0 < PAUSE_SPIN_NS;) {
            if (__atomic_load_n(&m->paused, __ATOMIC_ACQUIRE) ||
                __atomic_load_n(&m->loop_done, __ATOMIC_ACQUIRE))
                break;
            sched_yield(); /* the vCPU thread may need this core to park */
        }
        pthread_mutex_lock(&m->ctl_lock);
        while (!m->paused && !m->loop_done)
            pthread_cond_wait(&m->ctl_cond, &m->ctl_lock);
    }
    int rc = m->paused ? 0 : -1;
    pthread_mutex_unlock(&m->ctl_lock);
    return rc;
}

void machine_resume(struct machine *m)
{
    pthread_mutex_lock(&m->ctl_lock);
    __atomic_store_n(&m->paused, false, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&m->ctl_cond);
    pthread_mutex_unlock(&m->ctl_lock);
}

static int machine_add_devices(struct machine *m, struct error *err)
{
    aclint_init(&m->aclint, m->harts, m->nharts, &m->clock);
    m->aclint.deadline_changed = machine_timers_changed;
    m->aclint.opaque = m;
    plic_init(&m->plic, m->harts, m->nharts);
    struct irq_line uart_irq = {.set = plic_set_irq, .controller = &m->plic,
                                .irq = MEMMAP_UART0_IRQ};
    uart_init(&m->uart, uart_irq, &m->console);
    m->uart.rx_room = machine_kick_loop; /* poll the console again */
    m->uart.rx_room_opaque = m;
    syscon_init(&m->syscon, m);
    devreg_add_platform(m);
    const struct mmio_region regions[] = {
        {"bootrom", MEMMAP_BOOTROM_BASE, MEMMAP_BOOTROM_SIZE, &bootrom_ops, m->bootrom},
        {"syscon", MEMMAP_SYSCON_BASE, MEMMAP_SYSCON_SIZE, &syscon_mmio_ops, &m->syscon},
        {"aclint", MEMMAP_ACLINT_BASE, MEMMAP_ACLINT_SIZE, &aclint_mmio_ops, &m->aclint},
        {"plic", MEMMAP_PLIC_BASE, MEMMAP_PLIC_SIZE, &plic_mmio_ops, &m->plic},
        {"uart0", MEMMAP_UART0_BASE, MEMMAP_UART0_SIZE, &uart_mmio_ops, &m->uart},
    };
    for (size_t i = 0; i < sizeof regions / sizeof regions[0]; i++)
        if (bus_add_mmio(&m->bus, &regions[i], err) < 0)
            return -1;
    for (unsigned i = 0; i < MEMMAP_VIRTIO_SLOTS; i++) {
        struct virtio_dev *dev = &m->virtio[i];
        struct irq_line irq = {.set = plic_set_irq, .controller = &m->plic,
                               .irq = MEMMAP_VIRTIO_IRQ0 + i};
        virtio_dev_init(dev, NULL, NULL, &m->bus, irq);
        dev->wake = machine_wake;
        dev->wake_opaque = m;
        struct mmio_region slot = {"virtio-mmio", MEMMAP_VIRTIO_BASE + i * MEMMAP_VIRTIO_STRIDE,
                                   MEMMAP_VIRTIO_STRIDE, &virtio_mmio_ops, dev};
        if (bus_add_mmio(&m->bus, &slot, err) < 0)
            return -1;
    }
    return 0;
}

/* Plugs the configured devices into the virtio slots in a fixed order
 * (drives, then network cards, then the entropy source), so the guest
 * sees /dev/vda for the first --drive. */
static int machine_attach_virtio(struct machine *m, struct error *err)
{
    unsigned slot = 0;
    for (unsigned i = 0; i < m->cfg.ndrives; i++) {
        struct disk *disk;
        if (disk_open(m->cfg.drives[i], &disk, err) < 0)
            return -1;
        if (virtio_blk_attach(&m->virtio[slot], disk, err) < 0)
            return -1;
        devreg_add_virtio(m, slot++);
    }
    for (unsigned i = 0; i < m->cfg.nnets; i++) {
        if (virtio_net_attach(&m->virtio[slot], m->cfg.nets[i], err) < 0)
            return -1;
        devreg_add_virtio(m, slot++);
    }
    if (!m->cfg.no_rng && !m->cfg.bios) {
        if (virtio_rng_attach(&m->virtio[slot], err) < 0)
            return -1;
        devreg_add_virtio(m, slot++);
    }
    return 0;
}

/* Linux boot: kernel at the RAM base (there is no firmware below it), DTB
 * at the top of RAM, initrd just below the DTB. */
static int machine_load_linux(struct machine *m, struct error *err)
{
    struct ram *ram = &m->bus.ram;
    uint64_t kernel_end;
    if (boot_load_linux_image(ram, m->cfg.kernel, ram->base, &kernel_end, err) < 0)
        return -1;
    uint64_t ram_end = ram->base + ram->size;
    uint64_t fdt_addr = (ram_end - FDT_MAX_SIZE) & ~0xfffull;
    struct fdt_params params = {.bootargs = m->cfg.append ? m->cfg.append : ""};
    if (m->cfg.initrd) {
        uint8_t *data;
        size_t size;
        if (boot_read_file(m->cfg.initrd, &data, &size, err) < 0)
            return -1;
        uint64_t start = (fdt_addr - size) & ~0xfffull;
        if (size > fdt_addr - ram->base || start < kernel_end) {
            free(data);
            return error_set(err, "RAM too small: %llu MiB cannot hold the kernel (%llu KiB) "
                             "and the initrd (%zu KiB)", (unsigned long long)ram->size >> 20,
                             (unsigned long long)(kernel_end - ram->base) / 1024, size / 1024);
        }
        memcpy(ram_host(ram, start), data, size);
        ram_mark_dirty(ram, start, size);
        free(data);
        params.initrd_start = start;
        params.initrd_end = start + size;
    }
    if (kernel_end > fdt_addr || fdt_addr - kernel_end < (4ull << 20))
        return error_set(err, "RAM too small: %llu MiB leaves the kernel no room to run",
                         (unsigned long long)ram->size >> 20);
    int fdt_size = fdt_build(m, &params, ram_host(ram, fdt_addr), FDT_MAX_SIZE, err);
    if (fdt_size < 0)
        return -1;
    ram_mark_dirty(ram, fdt_addr, (uint64_t)fdt_size);

    memcpy(m->bootrom, bootrom_code, sizeof bootrom_code);
    uint64_t entry = ram->base;
    memcpy(m->bootrom + BOOTROM_DTB_OFFSET, &fdt_addr, 8);
    memcpy(m->bootrom + BOOTROM_ENTRY_OFFSET, &entry, 8);

    m->sbi = true;
    for (unsigned i = 0; i < m->nharts; i++) {
        struct hart *h = &m->harts[i];
        /* What M-mode firmware would set up before entering S-mode: every
         * exception but ecalls, and the supervisor interrupts, go to S;
         * the counters are readable from S; Sstc and cache-block
         * operations are enabled for S. */
        h->medeleg = 0xb1ff;
        h->mideleg = MIP_SSIP | MIP_STIP | MIP_SEIP;
        h->mcounteren = 7;
        hart_firmware_envcfg(h);
        /* scounteren has no architectural reset value. Linux 6.1 only
         * writes it from the SBI PMU driver, yet its vDSO reads `time`
         * from U-mode, so start with cycle/time/instret readable. */
        h->scounteren = 7;
        h->pc = MEMMAP_BOOTROM_BASE;
        h->hsm = i == 0 ? HSM_STARTED : HSM_STOPPED;
    }
    return 0;
}

static int machine_load_bios(struct machine *m, struct error *err)
{
    struct elf_info info;
    if (boot_load_elf(&m->bus.ram, m->cfg.bios, &info, err) < 0)
        return -1;
    m->sbi = false;
    m->has_tohost = info.tohost != 0;
    m->tohost_addr = info.tohost;
    for (unsigned i = 0; i < m->nharts; i++)
        m->harts[i].pc = info.entry;
    return 0;
}

int machine_init(struct machine *m, const struct machine_config *cfg, struct error *err)
{
    memset(m, 0, sizeof *m);
    m->cfg = *cfg;
    runstate_init(&m->rs, RUN_STATE_RUNNING);
    job_slot_init(&m->jobs);
    dirty_registry_init(&m->dirty_readers);
    m->console.in_fd = m->console.out_fd = m->console.listen_fd = -1;
    pthread_mutex_init(&m->ctl_lock, NULL);
    pthread_cond_init(&m->ctl_cond, NULL);
    pthread_mutex_init(&m->io_lock, NULL);
    pthread_mutex_init(&m->cpu_lock, NULL);
    pthread_cond_init(&m->cpu_cond, NULL);
    /* Parked harts sleep until their timer deadline in host monotonic time. */
    pthread_condattr_t mono;
    pthread_condattr_init(&mono);
    pthread_condattr_setclock(&mono, CLOCK_MONOTONIC);
    for (unsigned i = 0; i < MACHINE_MAX_HARTS; i++)
        pthread_cond_init(&m->vcpus[i].cond, &mono);
    pthread_condattr_destroy(&mono);
    m->bus.mmio_lock = &m->io_lock;
    m->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (m->wake_fd < 0)
        return error_set(err, "eventfd: %s", strerror(errno));
    if (cfg->nharts < 1 || cfg->nharts > MACHINE_MAX_HARTS)
        return error_set(err, "--smp must be between 1 and %d", MACHINE_MAX_HARTS);
    if (!cfg->no_boot && !cfg->bios && !cfg->kernel)
        return error_set(err, "no kernel to boot (give --kernel)");
    if (cfg->ram_size < MIN_RAM)
        return error_set(err, "--mem must be at least %llu MiB", MIN_RAM >> 20);
    m->nharts = cfg->nharts;
    if (ram_init(&m->bus.ram, MEMMAP_RAM_BASE, cfg->ram_size, err) < 0)
        return -1;
    vclock_init(&m->clock);
    m->trace = getenv("FERRY_TRACE") != NULL;
    for (unsigned i = 0; i < m->nharts; i++) {
        hart_init(&m->harts[i], i, m, &m->bus);
        m->harts[i].use_jit = cfg->jit;
    }
    if (console_open(&m->console, cfg->console ? cfg->console : "stdio", err) < 0)
        goto fail;
    if (machine_add_devices(m, err) < 0)
        goto fail;
    if (machine_attach_virtio(m, err) < 0)
        goto fail;
    if (!cfg->no_boot &&
        (cfg->bios ? machine_load_bios(m, err) : machine_load_linux(m, err)) < 0)
        goto fail;
    return 0;
fail:
    machine_destroy(m);
    return -1;
}

void machine_destroy(struct machine *m)
{
    job_slot_destroy(&m->jobs); /* stops and joins a running job */
    for (unsigned i = 0; i < MEMMAP_VIRTIO_SLOTS; i++)
        virtio_dev_destroy(&m->virtio[i]);
    if (m->wake_fd >= 0)
        close(m->wake_fd);
    m->wake_fd = -1;
    for (unsigned i = 0; i < MACHINE_MAX_HARTS; i++)
        icache_free(&m->vcpus[i].icache);
    for (unsigned i = 0; i < m->nharts; i++)
        jit_free(&m->harts[i]);
    console_close(&m->console);
    ram_destroy(&m->bus.ram);
}

/* The platform timers (ACLINT mtimecmp, M-mode). Each hart's own timer is
 * its thread's (machine_hart_timer_due). */
static void machine_update_timers(struct machine *m)
{
    pthread_mutex_lock(&m->io_lock);
    aclint_update(&m->aclint);
    pthread_mutex_unlock(&m->io_lock);
}

/* HTIF: a bare-metal program ends by writing (code << 1) | 1 to tohost.
 * Checked by the hart threads after each slice. */
void machine_check_tohost(struct machine *m)
{
    /* Guest RAM that a hart may be writing: one atomic 8-byte load (tohost
     * is 8-byte aligned in the ELF). */
    uint64_t v = __atomic_load_n((uint64_t *)ram_host(&m->bus.ram, m->tohost_addr),
                                 __ATOMIC_RELAXED);
    if (!v)
        return;
    if (v & 1) {
        machine_request_stop(m, MACHINE_POWEROFF, (int)((v >> 1) & 0x7fffffff));
    } else {
        fprintf(stderr, "ferry: unsupported HTIF request 0x%llx in tohost\n",
                (unsigned long long)v);
        machine_request_stop(m, MACHINE_POWEROFF, 1);
    }
}

/* Nanoseconds until the earliest platform timer that has not fired yet,
 * or -1 for none. Deadlines already past were applied by
 * machine_update_timers (their interrupt stays pending until the guest
 * moves them). */
static int64_t machine_next_timer_ns(struct machine *m)
{
    uint64_t now = machine_time_ticks(m);
    uint64_t deadline = UINT64_MAX;
    pthread_mutex_lock(&m->io_lock);
    for (unsigned i = 0; i < m->aclint.nharts; i++)
        if (m->aclint.s.mtimecmp[i] > now && m->aclint.s.mtimecmp[i] < deadline)
            deadline = m->aclint.s.mtimecmp[i];
    pthread_mutex_unlock(&m->io_lock);
    if (deadline == UINT64_MAX)
        return -1;
    return (int64_t)vclock_ticks_to_ns(deadline - now);
}

/* Halt polling: when the harts went idle while devices were busy (a disk
 * read in flight: the guest waits in WFI for its interrupt), watch for the
 * completion for a while instead of sleeping, which would add a thread
 * wakeup to every request. Only right after device activity, so an idle
 * guest still sleeps. */
#define HALT_POLL_NS 300000
#define HALT_POLL_RECENT_NS 2000000

/* Returns the timeout left for the sleep that follows. */
static int64_t machine_halt_poll(struct machine *m, int64_t timeout_ns)
{
    uint64_t now = vclock_host_ns();
    if (now - __atomic_load_n(&m->last_wake_ns, __ATOMIC_RELAXED) > HALT_POLL_RECENT_NS)
        return timeout_ns;
    uint64_t until = now + (timeout_ns >= 0 && timeout_ns < HALT_POLL_NS ? (uint64_t)timeout_ns
                                                                           : HALT_POLL_NS);
    uint64_t t = now;
    while (!__atomic_load_n(&m->kick, __ATOMIC_ACQUIRE) && (t = vclock_host_ns()) < until)
        sched_yield(); /* the device's thread may need this core */
    if (timeout_ns < 0)
        return timeout_ns;
    return timeout_ns > (int64_t)(t - now) ? timeout_ns - (int64_t)(t - now) : 0;
}

static void machine_poll(struct machine *m, int64_t timeout_ns)
{
    if (timeout_ns != 0)
        timeout_ns = machine_halt_poll(m, timeout_ns);
    struct pollfd fds[2];
    nfds_t nfds = 0;
    fds[nfds++] = (struct pollfd){.fd = m->wake_fd, .events = POLLIN};
    pthread_mutex_lock(&m->io_lock);
    int con_fd = console_poll_fd(&m->console);
    bool can_receive = uart_can_receive(&m->uart);
    pthread_mutex_unlock(&m->io_lock);
    int con_index = -1;
    if (con_fd >= 0 && can_receive) {
        con_index = (int)nfds;
        fds[nfds++] = (struct pollfd){.fd = con_fd, .events = POLLIN};
    }
    struct timespec ts, *tsp = NULL;
    if (timeout_ns >= 0) {
        ts.tv_sec = timeout_ns / 1000000000;
        ts.tv_nsec = timeout_ns % 1000000000;
        tsp = &ts;
    }
    int n = ppoll(fds, nfds, tsp, NULL);
    if (n <= 0)
        return;
    if (fds[0].revents & POLLIN) {
        uint64_t count;
        if (read(m->wake_fd, &count, sizeof count) > 0) {
            /* Some I/O thread completed work: update interrupt lines. */
            pthread_mutex_lock(&m->io_lock);
            for (unsigned i = 0; i < MEMMAP_VIRTIO_SLOTS; i++)
                if (m->virtio[i].ops)
                    virtio_sync_irq(&m->virtio[i]);
            pthread_mutex_unlock(&m->io_lock);
        }
    }
    if (con_index >= 0 && (fds[con_index].revents & (POLLIN | POLLHUP | POLLERR))) {
        uint8_t buf[UART_FIFO_SIZE];
        /* Only what fits: the rest stays in the console until the guest
         * has read the FIFO (uart_can_receive gates the next poll). */
        pthread_mutex_lock(&m->io_lock);
        int got = console_read(&m->console, buf, uart_rx_room(&m->uart));
        for (int i = 0; i < got; i++)
            uart_receive(&m->uart, buf[i]);
        pthread_mutex_unlock(&m->io_lock);
        if (got == CONSOLE_QUIT) {
            machine_request_stop(m, MACHINE_QUIT, 0);
            return;
        }
    }
}

int machine_run(struct machine *m)
{
    /* SIGTERM/SIGINT/SIGHUP: machine/signals.c calls machine_request_stop
     * from its own thread (it wakes a parked loop and kicks the harts), so
     * neither a paused loop nor a busy hart need poll for them. */
    struct error err = {{0}};
    if (machine_harts_start(m, &err) < 0) {
        fprintf(stderr, "ferry: %s\n", err.msg);
        machine_request_stop(m, MACHINE_QUIT, 1);
    }
    while (machine_stop_reason(m) == MACHINE_RUNNING) {
        /* Whoever kicked has set its request or interrupt bits first. */
        __atomic_store_n(&m->kick, 0, __ATOMIC_SEQ_CST);
        if (__atomic_load_n(&m->requests, __ATOMIC_ACQUIRE))
            machine_serve_requests(m);
        machine_update_timers(m);
        if (machine_stop_reason(m) != MACHINE_RUNNING)
            break;
        machine_poll(m, machine_next_timer_ns(m));
    }
    machine_harts_join(m);
    pthread_mutex_lock(&m->ctl_lock);
    __atomic_store_n(&m->loop_done, true, __ATOMIC_RELEASE);
    pthread_cond_broadcast(&m->ctl_cond);
    pthread_mutex_unlock(&m->ctl_lock);
    return m->exit_code;
}
