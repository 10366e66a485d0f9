/* Post-copy's destination memory: missing pages fetched on demand through
 * userfaultfd (see lazy_ram.h). */
#include "migrate/lazy_ram.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

static uint64_t lazy_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void lazy_ram_for_each_asked(struct lazy_ram *l, void (*fn)(void *opaque, uint64_t page),
                             void *opaque)
{
    for (uint64_t page = 0; page < l->npages; page++)
        if (__atomic_load_n(&l->asked_at[page], __ATOMIC_ACQUIRE) && !lazy_ram_is_present(l, page))
            fn(opaque, page);
}

bool lazy_ram_is_present(const struct lazy_ram *l, uint64_t page)
{
    return (__atomic_load_n(&l->present[page >> 6], __ATOMIC_ACQUIRE) >> (page & 63)) & 1;
}

int lazy_ram_open(struct lazy_ram *l, uint8_t *host, uint64_t size, lazy_ram_request_fn request,
                  void *opaque, struct error *err)
{
    memset(l, 0, sizeof *l);
    l->uffd = l->stop_fd = -1;
    if (((uintptr_t)host | size) % LAZY_RAM_PAGE || size == 0)
        return error_set(err, "lazy RAM must be whole pages");
    l->host = host;
    l->size = size;
    l->npages = size / LAZY_RAM_PAGE;
    l->request = request;
    l->opaque = opaque;
    pthread_mutex_init(&l->lock, NULL);
    size_t words = (l->npages + 63) / 64;
    l->present = malloc(words * 8);
    l->asked_at = calloc(l->npages, sizeof *l->asked_at);
    if (!l->present || !l->asked_at) {
        lazy_ram_close(l);
        return error_set(err, "out of memory for the post-copy page tables");
    }
    memset(l->present, 0xff, words * 8);
    l->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (l->uffd < 0) {
        int e = errno;
        lazy_ram_close(l);
        return error_set(err, "userfaultfd: %s (post-copy needs it: CONFIG_USERFAULTFD, and "
                         "root or vm.unprivileged_userfaultfd=1)", strerror(e));
    }
    struct uffdio_api api = {.api = UFFD_API};
    struct uffdio_register reg = {.range = {(uintptr_t)host, size},
                                  .mode = UFFDIO_REGISTER_MODE_MISSING};
    if (ioctl(l->uffd, UFFDIO_API, &api) < 0 || ioctl(l->uffd, UFFDIO_REGISTER, &reg) < 0) {
        int e = errno;
        lazy_ram_close(l);
        return error_set(err, "userfaultfd cannot register guest RAM: %s", strerror(e));
    }
    if (!(reg.ioctls & (1ull << _UFFDIO_COPY)) || !(reg.ioctls & (1ull << _UFFDIO_ZEROPAGE))) {
        lazy_ram_close(l);
        return error_set(err, "userfaultfd cannot install pages in guest RAM");
    }
    l->stop_fd = eventfd(0, EFD_CLOEXEC);
    if (l->stop_fd < 0) {
        int e = errno;
        lazy_ram_close(l);
        return error_set(err, "eventfd: %s", strerror(e));
    }
    return 0;
}

int lazy_ram_discard(struct lazy_ram *l, const uint64_t *missing, struct error *err)
{
    /* Word by word: at the switch a few pages among hundreds of thousands
     * are new, and this runs while the guest is paused. */
    size_t words = (l->npages + 63) / 64;
    for (size_t w = 0; w < words; w++) {
        uint64_t drop = missing[w] & __atomic_load_n(&l->present[w], __ATOMIC_ACQUIRE);
        if (w == words - 1 && l->npages % 64)
            drop &= (1ull << (l->npages % 64)) - 1;
        if (!drop)
            continue;
        /* Missing before dropped: a fault in between is then asked for,
         * never filled with zeroes as a never-touched page. */
        __atomic_fetch_and(&l->present[w], ~drop, __ATOMIC_RELEASE);
        __atomic_fetch_add(&l->missing, (uint64_t)__builtin_popcountll(drop), __ATOMIC_RELAXED);
        /* Runs of dropped pages in one call each. */
        while (drop) {
            unsigned first = (unsigned)__builtin_ctzll(drop);
            uint64_t run = drop >> first;
            unsigned len = ~run ? (unsigned)__builtin_ctzll(~run) : 64 - first;
            uint64_t page = w * 64 + first;
            if (madvise(l->host + page * LAZY_RAM_PAGE, (uint64_t)len * LAZY_RAM_PAGE,
                        MADV_DONTNEED) < 0)
                return error_set(err, "cannot drop missing pages: %s", strerror(errno));
            drop &= len == 64 ? 0 : ~(((1ull << len) - 1) << first);
        }
    }
    return 0;
}

/* One fault: ask for the page unless it is asked for already, or wake the
 * faulting thread if the page arrived meanwhile. */
static void lazy_ram_fault(struct lazy_ram *l, uint64_t addr)
{
    uint64_t page = (addr - (uintptr_t)l->host) / LAZY_RAM_PAGE;
    if (page >= l->npages)
        return;
    if (lazy_ram_is_present(l, page)) {
        /* Not missing: either installed between the fault and now (the
         * install's wake may have come before this thread slept), or a
         * page this process never touched, which has no mapping yet and
         * faults like a missing one: its content is zeroes. EEXIST: it
         * is mapped now; wake the thread again. */
        struct uffdio_zeropage z = {.range = {(uintptr_t)l->host + page * LAZY_RAM_PAGE,
                                              LAZY_RAM_PAGE}};
        if (ioctl(l->uffd, UFFDIO_ZEROPAGE, &z) < 0) {
            struct uffdio_range r = {(uintptr_t)l->host + page * LAZY_RAM_PAGE, LAZY_RAM_PAGE};
            ioctl(l->uffd, UFFDIO_WAKE, &r);
        }
        return;
    }
    uint64_t zero = 0;
    if (__atomic_compare_exchange_n(&l->asked_at[page], &zero, lazy_now_ns(), false,
                                    __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE))
        l->request(l->opaque, page);
}

static void *lazy_ram_thread(void *arg)
{
    struct lazy_ram *l = arg;
    struct pollfd fds[2] = {{.fd = l->uffd, .events = POLLIN}, {.fd = l->stop_fd, .events = POLLIN}};
    for (;;) {
        if (poll(fds, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (fds[1].revents)
            return NULL;
        struct uffd_msg msg[16];
        ssize_t n = read(l->uffd, msg, sizeof msg);
        if (n < 0)
            continue; /* EAGAIN: another wakeup took it */
        for (ssize_t i = 0; i < n / (ssize_t)sizeof msg[0]; i++)
            if (msg[i].event == UFFD_EVENT_PAGEFAULT)
                lazy_ram_fault(l, msg[i].arg.pagefault.address);
    }
}

int lazy_ram_start(struct lazy_ram *l, struct error *err)
{
    int rc = pthread_create(&l->thread, NULL, lazy_ram_thread, l);
    if (rc)
        return error_set(err, "cannot start the post-copy fault thread: %s", strerror(rc));
    l->thread_started = true;
    return 0;
}

int lazy_ram_install(struct lazy_ram *l, uint64_t page, const void *data, struct error *err)
{
    if (page >= l->npages)
        return error_set(err, "post-copy page %llu is beyond RAM", (unsigned long long)page);
    if (lazy_ram_is_present(l, page))
        return 0;
    uint64_t dst = (uintptr_t)l->host + page * LAZY_RAM_PAGE;
    int rc;
    if (data) {
        struct uffdio_copy c = {.dst = dst, .src = (uintptr_t)data, .len = LAZY_RAM_PAGE};
        rc = ioctl(l->uffd, UFFDIO_COPY, &c);
    } else {
        struct uffdio_zeropage z = {.range = {dst, LAZY_RAM_PAGE}};
        rc = ioctl(l->uffd, UFFDIO_ZEROPAGE, &z);
    }
    if (rc < 0 && errno != EEXIST)
        return error_set(err, "cannot install post-copy page %llu: %s",
                         (unsigned long long)page, strerror(errno));
    /* Installed (by us, or by a racing install: EEXIST): one of the two
     * clears the bit and counts it. */
    uint64_t bit = 1ull << (page & 63);
    if (__atomic_fetch_or(&l->present[page >> 6], bit, __ATOMIC_ACQ_REL) & bit)
        return 0;
    __atomic_fetch_sub(&l->missing, 1, __ATOMIC_RELAXED);
    uint64_t asked = __atomic_load_n(&l->asked_at[page], __ATOMIC_ACQUIRE);
    if (asked) {
        uint64_t lat = lazy_now_ns() - asked;
        pthread_mutex_lock(&l->lock);
        l->on_demand++;
        if (l->nlat == l->lat_cap) {
            size_t cap = l->lat_cap ? l->lat_cap * 2 : 1024;
            uint64_t *n = realloc(l->lat_ns, cap * sizeof *n);
            if (n) {
                l->lat_ns = n;
                l->lat_cap = cap;
            }
        }
        if (l->nlat < l->lat_cap)
            l->lat_ns[l->nlat++] = lat;
        pthread_mutex_unlock(&l->lock);
    }
    return 1;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

void lazy_ram_stats(struct lazy_ram *l, struct lazy_ram_stats *out)
{
    memset(out, 0, sizeof *out);
    out->missing = __atomic_load_n(&l->missing, __ATOMIC_RELAXED);
    pthread_mutex_lock(&l->lock);
    out->on_demand = l->on_demand;
    if (l->nlat) {
        qsort(l->lat_ns, l->nlat, sizeof *l->lat_ns, cmp_u64);
        out->median_ns = l->lat_ns[l->nlat / 2];
        out->p99_ns = l->lat_ns[(l->nlat * 99) / 100 < l->nlat ? (l->nlat * 99) / 100
                                                                : l->nlat - 1];
        out->max_ns = l->lat_ns[l->nlat - 1];
    }
    pthread_mutex_unlock(&l->lock);
}

void lazy_ram_close(struct lazy_ram *l)
{
    if (l->thread_started) {
        uint64_t one = 1;
        if (write(l->stop_fd, &one, sizeof one) == sizeof one)
            pthread_join(l->thread, NULL);
        l->thread_started = false;
    }
    if (l->uffd >= 0) {
        struct uffdio_range r = {(uintptr_t)l->host, l->size};
        ioctl(l->uffd, UFFDIO_UNREGISTER, &r);
        close(l->uffd);
        l->uffd = -1;
    }
    if (l->stop_fd >= 0)
        close(l->stop_fd);
    l->stop_fd = -1;
    free(l->present);
    free(l->asked_at);
    free(l->lat_ns);
    l->present = l->asked_at = l->lat_ns = NULL;
    pthread_mutex_destroy(&l->lock);
}
