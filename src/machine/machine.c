/* Machine assembly and the event loop: the harts run in slices on this one
 * thread, and between slices the loop updates timers, checks HTIF and
 * services host file descriptors. An idle guest (all harts in WFI) sleeps
 * in ppoll until its next timer deadline or console input. */
#include "machine/machine.h"
#include "cpu/jit.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
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

/* Instructions a hart runs before the loop looks at timers and devices:
 * about 0.1 ms, well below the guest's timer resolution needs. */
#define SLICE_INSNS 20000
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

static volatile sig_atomic_t quit_signal;
static void on_quit_signal(int sig) { quit_signal = sig; }

void machine_request_stop(struct machine *m, enum machine_stop why, int exit_code)
{
    if (m->stop == MACHINE_RUNNING) {
        m->stop = why;
        m->exit_code = exit_code;
    }
    /* Wake a parked or sleeping loop so it notices. */
    pthread_mutex_lock(&m->ctl_lock);
    pthread_cond_broadcast(&m->ctl_cond);
    pthread_mutex_unlock(&m->ctl_lock);
    machine_wake(m);
}

uint64_t machine_time_ticks(const struct machine *m)
{
    return vclock_ticks(&m->clock);
}

void machine_update_hart_timer(struct machine *m, struct hart *h)
{
    if (m->sbi)
        hart_set_pending(h, MIP_STIP, machine_time_ticks(m) >= h->sbi_timecmp);
}

void machine_send_ipi(struct machine *m, unsigned hartid)
{
    if (hartid < m->nharts) {
        hart_set_pending(&m->harts[hartid], MIP_SSIP, true);
    }
}

void machine_start_hart(struct machine *m, struct hart *h, uint64_t addr, uint64_t arg)
{
    (void)m;
    hart_start_supervisor(h, addr, arg);
    h->hsm = HSM_STARTED;
}

uint64_t machine_instructions(const struct machine *m)
{
    uint64_t total = 0;
    for (unsigned i = 0; i < m->nharts; i++)
        total += m->harts[i].instret;
    return total;
}

void machine_fence_i(struct machine *m)
{
    icache_invalidate(&m->icache);
    for (unsigned i = 0; i < m->nharts; i++)
        memset(m->harts[i].tlb_fetch, 0xff, sizeof m->harts[i].tlb_fetch);
}

uint64_t machine_dirty_sync(struct machine *m, uint64_t *out)
{
    uint64_t n = ram_dirty_harvest(&m->bus.ram, out);
    for (unsigned i = 0; i < m->nharts; i++)
        hart_tlb_flush_writes(&m->harts[i]);
    return n;
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

/* vCPU loop side of the cross-thread requests. A pause parks the loop
 * here until resumed, still serving dirty-log syncs. */
static void machine_serve_requests(struct machine *m)
{
    pthread_mutex_lock(&m->ctl_lock);
    if (m->requests & REQ_SYNC) {
        m->sync_count = machine_dirty_sync(m, m->sync_out);
        m->requests &= ~REQ_SYNC;
        pthread_cond_broadcast(&m->ctl_cond);
    }
    if (m->requests & REQ_PAUSE) {
        m->requests &= ~REQ_PAUSE;
        vclock_pause(&m->clock);
        pthread_mutex_unlock(&m->ctl_lock);
        machine_quiesce_devices(m, true);
        pthread_mutex_lock(&m->ctl_lock);
        m->paused = true;
        pthread_cond_broadcast(&m->ctl_cond);
        while (m->paused && !quit_signal && m->stop == MACHINE_RUNNING)
            pthread_cond_wait(&m->ctl_cond, &m->ctl_lock);
        if (m->stop != MACHINE_RUNNING) {
            /* Migrated away or quitting: the guest must not run again. */
            pthread_mutex_unlock(&m->ctl_lock);
            return;
        }
        pthread_mutex_unlock(&m->ctl_lock);
        machine_quiesce_devices(m, false);
        pthread_mutex_lock(&m->ctl_lock);
        /* The guest may have been replaced by a loaded state: refresh what
         * the loop derives from it. */
        for (unsigned i = 0; i < m->nharts; i++)
            m->harts[i].interrupt_check = true;
        vclock_resume(&m->clock);
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
    m->paused = false;
    pthread_cond_broadcast(&m->ctl_cond);
    pthread_mutex_unlock(&m->ctl_lock);
}

int64_t machine_dirty_sync_remote(struct machine *m, uint64_t *out)
{
    int64_t n;
    pthread_mutex_lock(&m->ctl_lock);
    if (m->paused || m->loop_done) {
        /* The loop is parked (or gone): the harts are ours to touch. */
        n = (int64_t)machine_dirty_sync(m, out);
    } else {
        m->sync_out = out;
        __atomic_or_fetch(&m->requests, REQ_SYNC, __ATOMIC_RELEASE);
        machine_wake(m);
        while ((m->requests & REQ_SYNC) && !m->loop_done)
            pthread_cond_wait(&m->ctl_cond, &m->ctl_lock);
        n = (m->requests & REQ_SYNC) ? -1 : (int64_t)m->sync_count;
        m->requests &= ~REQ_SYNC;
    }
    pthread_mutex_unlock(&m->ctl_lock);
    return n;
}

static int machine_add_devices(struct machine *m, struct error *err)
{
    aclint_init(&m->aclint, m->harts, m->nharts, &m->clock);
    plic_init(&m->plic, m->harts, m->nharts);
    struct irq_line uart_irq = {.set = plic_set_irq, .controller = &m->plic,
                                .irq = MEMMAP_UART0_IRQ};
    uart_init(&m->uart, uart_irq, &m->console);
    syscon_init(&m->syscon, m);
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
        if (virtio_blk_attach(&m->virtio[slot++], disk, err) < 0)
            return -1;
    }
    for (unsigned i = 0; i < m->cfg.nnets; i++)
        if (virtio_net_attach(&m->virtio[slot++], m->cfg.nets[i], err) < 0)
            return -1;
    if (!m->cfg.no_rng && !m->cfg.bios)
        if (virtio_rng_attach(&m->virtio[slot++], err) < 0)
            return -1;
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
         * the counters are readable from S. */
        h->medeleg = 0xb1ff;
        h->mideleg = MIP_SSIP | MIP_STIP | MIP_SEIP;
        h->mcounteren = 7;
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
    m->console.in_fd = m->console.out_fd = m->console.listen_fd = -1;
    pthread_mutex_init(&m->ctl_lock, NULL);
    pthread_cond_init(&m->ctl_cond, NULL);
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
    replication_free(m);
    migration_free(m);
    for (unsigned i = 0; i < MEMMAP_VIRTIO_SLOTS; i++)
        virtio_dev_destroy(&m->virtio[i]);
    if (m->wake_fd >= 0)
        close(m->wake_fd);
    m->wake_fd = -1;
    icache_free(&m->icache);
    for (unsigned i = 0; i < m->nharts; i++)
        jit_free(&m->harts[i]);
    console_close(&m->console);
    ram_destroy(&m->bus.ram);
}

static void machine_update_timers(struct machine *m)
{
    aclint_update(&m->aclint);
    if (m->sbi) {
        uint64_t now = machine_time_ticks(m);
        for (unsigned i = 0; i < m->nharts; i++) {
            struct hart *h = &m->harts[i];
            bool due = now >= h->sbi_timecmp;
            if (due != ((h->mip & MIP_STIP) != 0))
                hart_set_pending(h, MIP_STIP, due);
        }
    }
}

/* HTIF: a bare-metal program ends by writing (code << 1) | 1 to tohost. */
static void machine_check_tohost(struct machine *m)
{
    uint64_t v;
    memcpy(&v, ram_host(&m->bus.ram, m->tohost_addr), 8);
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

/* Nanoseconds until the earliest armed timer, or -1 for none. */
static int64_t machine_next_timer_ns(struct machine *m)
{
    uint64_t deadline = aclint_next_deadline(&m->aclint);
    if (m->sbi)
        for (unsigned i = 0; i < m->nharts; i++)
            if (m->harts[i].hsm == HSM_STARTED && m->harts[i].sbi_timecmp < deadline)
                deadline = m->harts[i].sbi_timecmp;
    if (deadline == UINT64_MAX)
        return -1;
    uint64_t now = machine_time_ticks(m);
    return deadline <= now ? 0 : (int64_t)vclock_ticks_to_ns(deadline - now);
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
    int con_fd = console_poll_fd(&m->console);
    int con_index = -1;
    if (con_fd >= 0 && uart_can_receive(&m->uart)) {
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
            for (unsigned i = 0; i < MEMMAP_VIRTIO_SLOTS; i++)
                if (m->virtio[i].ops)
                    virtio_sync_irq(&m->virtio[i]);
        }
    }
    if (con_index >= 0 && (fds[con_index].revents & (POLLIN | POLLHUP | POLLERR))) {
        uint8_t buf[UART_FIFO_SIZE];
        /* Only what fits: the rest stays in the console until the guest
         * has read the FIFO (uart_can_receive gates the next poll). */
        int got = console_read(&m->console, buf, uart_rx_room(&m->uart));
        if (got == CONSOLE_QUIT) {
            machine_request_stop(m, MACHINE_QUIT, 0);
            return;
        }
        for (int i = 0; i < got; i++)
            uart_receive(&m->uart, buf[i]);
    }
}

int machine_run(struct machine *m)
{
    struct sigaction sa = {.sa_handler = on_quit_signal};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    while (m->stop == MACHINE_RUNNING) {
        bool busy = false;
        /* Whoever kicked has set its request or interrupt bits first. */
        __atomic_store_n(&m->kick, 0, __ATOMIC_RELAXED);
        if (__atomic_load_n(&m->requests, __ATOMIC_ACQUIRE))
            machine_serve_requests(m);
        if (m->stop != MACHINE_RUNNING)
            break;
        for (unsigned i = 0; i < m->nharts; i++) {
            struct hart *h = &m->harts[i];
            if (h->hsm != HSM_STARTED)
                continue;
            if (h->wfi) {
                if (!hart_interrupt_pending(h))
                    continue;
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
            busy |= !h->wfi && h->hsm == HSM_STARTED;
            /* Other harts run before this one continues: a store of theirs
             * could hit the reservation, so an SC across slices must fail. */
            if (m->nharts > 1)
                h->reserved = false;
        }
        if (m->icache.flush_pending) {
            /* The code cache filled up: start over (no hart is inside a
             * slice now, so no decoded page is in use). */
            machine_fence_i(m);
            icache_free(&m->icache);
        }
        machine_update_timers(m);
        if (m->has_tohost)
            machine_check_tohost(m);
        if (__atomic_load_n(&m->requests, __ATOMIC_ACQUIRE))
            machine_serve_requests(m);
        if (quit_signal)
            machine_request_stop(m, MACHINE_QUIT, 128 + quit_signal);
        if (m->stop != MACHINE_RUNNING)
            break;
        machine_poll(m, busy ? 0 : machine_next_timer_ns(m));
    }
    pthread_mutex_lock(&m->ctl_lock);
    m->loop_done = true;
    pthread_cond_broadcast(&m->ctl_cond);
    pthread_mutex_unlock(&m->ctl_lock);
    return m->exit_code;
}
