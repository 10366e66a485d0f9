/* Post-copy's destination memory (src/migrate/lazy_ram.c) against a fake
 * source: half of a 16 MiB "guest RAM" is dropped; four "vCPU" threads
 * read and write random pages while a source thread answers the requests
 * (after a short delay, like a network) and another pushes every page in
 * the background; a "device" thread read()s a file into missing pages
 * (the kernel's own access must wait too). At the end every page holds
 * exactly the source's data or what was written after it arrived, and the
 * on-demand fetches and their latencies were counted. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "migrate/lazy_ram.h"
#include "check.h"

#define PAGES 4096ull
#define PAGE LAZY_RAM_PAGE
#define VCPUS 4
#define TOUCHES 3000
#define DMA_PAGES 16
/* The vCPUs touch the pages below this; the DMA targets lie above. */
#define VCPU_PAGES (PAGES - 64)

static uint8_t *ram, *source;
static uint64_t missing[PAGES / 64];
static struct lazy_ram lr;

/* The requests, as the return path would carry them. */
static pthread_mutex_t q_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t q_cond = PTHREAD_COND_INITIALIZER;
static uint64_t queue[PAGES * 4];
static size_t q_head, q_tail;
static int done;
static uint64_t requests;

static void on_request(void *opaque, uint64_t page)
{
    (void)opaque;
    pthread_mutex_lock(&q_lock);
    queue[q_tail++ % (PAGES * 4)] = page;
    requests++;
    pthread_cond_signal(&q_cond);
    pthread_mutex_unlock(&q_lock);
}

static void sleep_us(long us)
{
    struct timespec ts = {0, us * 1000};
    nanosleep(&ts, NULL);
}

static int install(uint64_t page)
{
    struct error err;
    /* Zero pages travel as flags: installed as the zero page. */
    static const uint8_t zero[PAGE];
    const uint8_t *data = source + page * PAGE;
    int rc = lazy_ram_install(&lr, page, memcmp(data, zero, PAGE) ? data : NULL, &err);
    if (rc < 0)
        printf("install: %s\n", err.msg);
    return rc;
}

/* The source answering requests, 50 us after each (a LAN's round trip). */
static void *source_thread(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&q_lock);
    while (!done) {
        if (q_head == q_tail) {
            pthread_cond_wait(&q_cond, &q_lock);
            continue;
        }
        uint64_t page = queue[q_head++ % (PAGES * 4)];
        pthread_mutex_unlock(&q_lock);
        sleep_us(50);
        install(page);
        pthread_mutex_lock(&q_lock);
    }
    pthread_mutex_unlock(&q_lock);
    return NULL;
}

/* The background push: every page in order, slowly (a capped link). */
static void *push_thread(void *arg)
{
    (void)arg;
    for (uint64_t page = 0; page < PAGES; page++) {
        if ((missing[page / 64] >> (page % 64)) & 1) {
            install(page);
            if (page % 16 == 0)
                sleep_us(200);
        }
    }
    return NULL;
}

struct vcpu {
    unsigned seed;
    int bad;
};

/* Reads a random page of its own (page % VCPUS == id, so a page has one
 * writer): it must hold the source's data, or this vCPU's mark over it.
 * Sometimes writes its mark into the first word. */
static struct vcpu vcpus[VCPUS];
static uint8_t written_by[PAGES];   /* 1 + vCPU index of the last write, 0: none */

static void *vcpu_run(void *arg)
{
    unsigned id = (unsigned)(uintptr_t)arg;
    struct vcpu *v = &vcpus[id];
    v->seed = 1234 + id;
    for (int i = 0; i < TOUCHES; i++) {
        uint64_t page = ((uint64_t)rand_r(&v->seed) % (VCPU_PAGES / VCPUS)) * VCPUS + id;
        uint8_t *p = ram + page * PAGE;
        uint64_t first;
        memcpy(&first, p, 8); /* faults if missing, waits for the page */
        uint64_t want;
        if (written_by[page])
            want = 0xABCD000000000000ull | page;
        else
            memcpy(&want, source + page * PAGE, 8);
        if (first != want || memcmp(p + 8, (written_by[page] ? p : source + page * PAGE) + 8,
                                    PAGE - 8) != 0)
            v->bad++;
        if (rand_r(&v->seed) % 4 == 0) {
            uint64_t mark = 0xABCD000000000000ull | page;
            memcpy(p, &mark, 8);
            written_by[page] = (uint8_t)(id + 1);
        }
    }
    return NULL;
}

/* A device thread: read() from a file straight into missing pages. */
static int dma_fd = -1;
static uint64_t dma_pages[DMA_PAGES];
static ssize_t dma_got[DMA_PAGES];
static void *dma_thread(void *arg)
{
    (void)arg;
    for (int i = 0; i < DMA_PAGES; i++)
        dma_got[i] = pread(dma_fd, ram + dma_pages[i] * PAGE, PAGE, 0);
    return NULL;
}

int main(void)
{
    ram = mmap(NULL, PAGES * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    source = malloc(PAGES * PAGE);
    if (ram == MAP_FAILED || !source) {
        printf("out of memory\n");
        return 1;
    }
    /* The source's RAM: a pattern, a tenth of the pages zero. The
     * destination holds an older copy of every page (pre-copy). */
    for (uint64_t page = 0; page < PAGES; page++) {
        uint64_t *w = (uint64_t *)(source + page * PAGE);
        for (unsigned i = 0; i < PAGE / 8; i++)
            w[i] = page % 10 == 3 ? 0 : (page << 32 | i) * 0x9E3779B97F4A7C15ull + 1;
        memset(ram + page * PAGE, 0x5a, PAGE); /* stale */
    }
    srand(5);
    for (uint64_t page = 0; page < PAGES; page++)
        if (rand() % 2)
            missing[page / 64] |= 1ull << (page % 64);
    /* Pages present at the destination are current: copy them. */
    for (uint64_t page = 0; page < PAGES; page++)
        if (!((missing[page / 64] >> (page % 64)) & 1))
            memcpy(ram + page * PAGE, source + page * PAGE, PAGE);
    /* The DMA targets: missing pages no vCPU touches. */
    unsigned nd = 0;
    for (uint64_t page = PAGES - 1; page >= VCPU_PAGES && nd < DMA_PAGES; page--)
        if ((missing[page / 64] >> (page % 64)) & 1)
            dma_pages[nd++] = page;
    CHECK(nd == DMA_PAGES, "only %u missing pages to read into", nd);

    struct error err;
    if (lazy_ram_open(&lr, ram, PAGES * PAGE, on_request, NULL, &err) < 0) {
        printf("%s\n", err.msg);
        /* Not allowed here (an unprivileged run): say so, nothing to test. */
        if (strstr(err.msg, "Operation not permitted") || strstr(err.msg, "not implemented")) {
            printf("SKIP: userfaultfd not available\n");
            return 0;
        }
        return 1;
    }
    CHECK(lazy_ram_discard(&lr, missing, &err) == 0, "discard: %s", err.msg);
    struct lazy_ram_stats st;
    lazy_ram_stats(&lr, &st);
    uint64_t nmissing = 0;
    for (unsigned i = 0; i < PAGES / 64; i++)
        nmissing += (uint64_t)__builtin_popcountll(missing[i]);
    CHECK(st.missing == nmissing && nmissing > PAGES / 3, "missing %llu of %llu",
          (unsigned long long)st.missing, (unsigned long long)nmissing);
    CHECK(lazy_ram_start(&lr, &err) == 0, "start: %s", err.msg);

    char path[] = "/tmp/lazy-ram-dma-XXXXXX";
    dma_fd = mkstemp(path);
    uint8_t block[PAGE];
    memset(block, 0xd3, sizeof block);
    CHECK(dma_fd >= 0 && write(dma_fd, block, PAGE) == (ssize_t)PAGE, "dma file");
    unlink(path);

    pthread_t src, dma, cpus[VCPUS], push;
    pthread_create(&src, NULL, source_thread, NULL);
    pthread_create(&dma, NULL, dma_thread, NULL);
    for (unsigned i = 0; i < VCPUS; i++)
        pthread_create(&cpus[i], NULL, vcpu_run, (void *)(uintptr_t)i);
    /* The push starts a little later, so the vCPUs fault first. */
    sleep_us(20000);
    pthread_create(&push, NULL, push_thread, NULL);
    for (unsigned i = 0; i < VCPUS; i++)
        pthread_join(cpus[i], NULL);
    pthread_join(dma, NULL);
    pthread_join(push, NULL);
    pthread_mutex_lock(&q_lock);
    done = 1;
    pthread_cond_signal(&q_cond);
    pthread_mutex_unlock(&q_lock);
    pthread_join(src, NULL);

    int bad = 0;
    for (unsigned i = 0; i < VCPUS; i++)
        bad += vcpus[i].bad;
    CHECK(bad == 0, "%d pages read with the wrong contents", bad);
    for (int i = 0; i < DMA_PAGES; i++) {
        CHECK(dma_got[i] == (ssize_t)PAGE, "DMA read %d returned %zd", i, dma_got[i]);
        CHECK(memcmp(ram + dma_pages[i] * PAGE, block, PAGE) == 0,
              "DMA page %llu does not hold the data read", (unsigned long long)dma_pages[i]);
    }
    lazy_ram_stats(&lr, &st);
    CHECK(st.missing == 0, "%llu pages still missing after the push",
          (unsigned long long)st.missing);
    CHECK(st.on_demand > 0 && st.on_demand <= requests, "on demand %llu, requests %llu",
          (unsigned long long)st.on_demand, (unsigned long long)requests);
    CHECK(st.median_ns > 0 && st.median_ns <= st.p99_ns && st.p99_ns <= st.max_ns,
          "latency median %llu p99 %llu max %llu ns", (unsigned long long)st.median_ns,
          (unsigned long long)st.p99_ns, (unsigned long long)st.max_ns);
    /* Every page: the source's data, a vCPU's mark over it, or the DMA. */
    int wrong = 0;
    for (uint64_t page = 0; page < PAGES; page++) {
        const uint8_t *p = ram + page * PAGE;
        bool dma_target = false;
        for (int i = 0; i < DMA_PAGES; i++)
            dma_target |= dma_pages[i] == page;
        if (dma_target)
            continue;
        if (written_by[page]) {
            uint64_t mark;
            memcpy(&mark, p, 8);
            wrong += mark != (0xABCD000000000000ull | page) ||
                     memcmp(p + 8, source + page * PAGE + 8, PAGE - 8) != 0;
        } else {
            wrong += memcmp(p, source + page * PAGE, PAGE) != 0;
        }
    }
    CHECK(wrong == 0, "%d pages differ from what they should hold", wrong);
    printf("on demand %llu pages (%llu requests), latency median %.1f us p99 %.1f us max %.1f us\n",
           (unsigned long long)st.on_demand, (unsigned long long)requests, st.median_ns / 1e3,
           st.p99_ns / 1e3, st.max_ns / 1e3);
    lazy_ram_close(&lr);
    close(dma_fd);

    /* Memory this process never touched faults like a missing page, though
     * nothing is missing: it reads as zeroes and takes writes, with no
     * request (a destination's never-written guest pages). */
    uint8_t *fresh = mmap(NULL, 4 * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                          -1, 0);
    uint64_t none[1] = {0}, before = requests;
    CHECK(fresh != MAP_FAILED && lazy_ram_open(&lr, fresh, 4 * PAGE, on_request, NULL, &err) == 0 &&
          lazy_ram_discard(&lr, none, &err) == 0 && lazy_ram_start(&lr, &err) == 0,
          "fresh mapping: %s", err.msg);
    volatile uint8_t *f = fresh;
    uint8_t first = f[PAGE + 7];
    f[2 * PAGE] = 0x42;
    CHECK(first == 0 && f[2 * PAGE] == 0x42 && requests == before,
          "never-touched pages: read %u, wrote %u, %llu requests", first, f[2 * PAGE],
          (unsigned long long)(requests - before));
    /* Dropping in two steps (post-copy's discard before the pause, then the
     * switch): a page named twice counts once. */
    uint64_t first_step[1] = {1ull << 3}, second_step[1] = {(1ull << 3) | (1ull << 0)};
    CHECK(lazy_ram_discard(&lr, first_step, &err) == 0 &&
          lazy_ram_discard(&lr, second_step, &err) == 0, "discard twice: %s", err.msg);
    lazy_ram_stats(&lr, &st);
    CHECK(st.missing == 2 && !lazy_ram_is_present(&lr, 0) && !lazy_ram_is_present(&lr, 3) &&
          lazy_ram_is_present(&lr, 2), "missing %llu after two discards",
          (unsigned long long)st.missing);
    CHECK(lazy_ram_install(&lr, 0, NULL, &err) == 1 && lazy_ram_install(&lr, 3, block, &err) == 1 &&
          f[3 * PAGE] == 0xd3 && f[0] == 0, "installs after the discards");
    lazy_ram_close(&lr);
    munmap(fresh, 4 * PAGE);
    printf("%s: %d checks, %d failures\n", __FILE__, checks, failures);
    return failures ? 1 : 0;
}
