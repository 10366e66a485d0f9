/* Post-copy, the destination's half (see postcopy.h): guest RAM with the
 * missing pages dropped and fetched on demand (lazy_ram.h), a thread that
 * installs the pages the source sends, and recovery when the connection
 * breaks: the guest is parked and the thread listens again for
 * `ferry migrate --resume`.
 *
 * Locks: send_lock serializes writes on the return path (the fault thread's
 * requests, the receiver's answers); nothing here takes a machine lock
 * while a vCPU or device thread may wait for a page, so a thread blocked in
 * a fault never blocks the pages it waits for. */
#include "migrate/postcopy.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "base/escape.h"
#include "machine/machine.h"
#include "migrate/mstate.h"
#include "migrate/pagecodec.h"
#include "migrate/receive.h"

/* A recovery connection may come any time; the wait is in slices so that
 * a quitting VM is not held up. */
#define RESUME_ACCEPT_SLICE_MS 500
#define RESUME_HEADER_MS 10000
/* Each wait for the source's next record: it pushes continuously, or has
 * nothing left and sends END. */
#define PUSH_IO_TIMEOUT_MS 30000

struct postcopy_recv {
    struct machine *m;
    struct migration_in *in;
    struct lazy_ram lazy;
    bool lazy_open;
    bool verify;                /* advised with verify */
    bool switched;              /* the POSTCOPY record came */
    uint64_t hash;              /* post-copy hash of what is here (receiver thread) */
    uint64_t total;             /* pages missing at the switch */
    pthread_mutex_t send_lock;  /* return-path writes */
    bool connected;             /* under send_lock: requests may go out */
    pthread_t thread;
    bool thread_started;
    atomic_bool stop;
    uint64_t pauses;
    bool parked;                /* asked the vCPU loop to pause after a break */
};

/* The one post-copy this process receives, for postcopy_recv_stop_all and
 * the status. */
static pthread_mutex_t active_lock = PTHREAD_MUTEX_INITIALIZER;
static struct postcopy_recv *active;

static const uint8_t zero_page[RAM_PAGE_SIZE];

static struct postcopy_recv *pc_of(struct migration_in *in, struct machine *m)
{
    if (!in->pc) {
        in->pc = calloc(1, sizeof *in->pc);
        if (!in->pc)
            return NULL;
        in->pc->m = m;
        in->pc->in = in;
        pthread_mutex_init(&in->pc->send_lock, NULL);
    }
    return in->pc;
}

int postcopy_recv_advise(struct migration_in *in, struct machine *m, const uint8_t *body,
                         size_t len, struct error *err)
{
    if (len != 4 || (get_u32(body) & ~POSTCOPY_FLAG_VERIFY))
        return error_set(err, "post-copy advise record is malformed");
    struct postcopy_recv *pc = pc_of(in, m);
    if (!pc)
        return error_set(err, "out of memory");
    pc->verify = get_u32(body) & POSTCOPY_FLAG_VERIFY;
    /* Refuse now, while the source can simply go on, rather than at the
     * switch. */
    int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return error_set(err, "this destination cannot do post-copy: userfaultfd: %s (it needs "
                         "CONFIG_USERFAULTFD, and root or vm.unprivileged_userfaultfd=1)",
                         strerror(errno));
    close(fd);
    return 0;
}

/* Fault thread: ask the source, if connected (else the page is asked
 * again after the reconnection, lazy_ram_for_each_asked). */
static void request_page(void *opaque, uint64_t page)
{
    struct postcopy_recv *pc = opaque;
    uint8_t b[8];
    put_u64(b, page);
    pthread_mutex_lock(&pc->send_lock);
    if (pc->connected) {
        struct error ignored;
        /* A failure shows on the receiver's side of the connection too. */
        stream_send_small(&pc->in->s, REC_PAGE_REQ, b, 8, &ignored);
    }
    pthread_mutex_unlock(&pc->send_lock);
}

/* Drops the pages of a bitmap record (POSTCOPY_DISCARD or POSTCOPY),
 * registering guest RAM with userfaultfd first. */
static int discard_pages(struct migration_in *in, struct machine *m, const uint8_t *body,
                         size_t len, struct error *err)
{
    struct ram *ram = &m->bus.ram;
    struct postcopy_recv *pc = pc_of(in, m);
    if (!pc)
        return error_set(err, "out of memory");
    size_t words = ram->dirty_words;
    if (in->ep.is_file)
        return error_set(err, "a post-copy record in a saved file");
    if (pc->switched)
        return error_set(err, "a post-copy record after the switch");
    if (len != 8 + words * 8 || get_u64(body) != ram->npages)
        return error_set(err, "post-copy record does not fit %llu MiB of RAM",
                         (unsigned long long)ram->size >> 20);
    uint64_t *missing = malloc(words * 8);
    if (!missing)
        return error_set(err, "out of memory for the post-copy bitmap");
    for (size_t i = 0; i < words; i++)
        missing[i] = get_u64(body + 8 + 8 * i);
    if (ram->npages % 64 && (missing[words - 1] >> (ram->npages % 64))) {
        free(missing);
        return error_set(err, "post-copy record names pages beyond RAM");
    }
    int rc = 0;
    if (!pc->lazy_open) {
        rc = lazy_ram_open(&pc->lazy, ram->host, ram->size, request_page, pc, err);
        if (rc == 0) {
            __atomic_store_n(&pc->lazy_open, true, __ATOMIC_RELEASE);
            rc = lazy_ram_start(&pc->lazy, err);
        }
    }
    if (rc == 0)
        rc = lazy_ram_discard(&pc->lazy, missing, err);
    free(missing);
    return rc;
}

int postcopy_recv_discard(struct migration_in *in, struct machine *m, const uint8_t *body,
                          size_t len, struct error *err)
{
    return discard_pages(in, m, body, len, err);
}

int postcopy_recv_switch(struct migration_in *in, struct machine *m, const uint8_t *body,
                         size_t len, struct error *err)
{
    if (discard_pages(in, m, body, len, err) < 0)
        return -1;
    in->pc->total = __atomic_load_n(&in->pc->lazy.missing, __ATOMIC_RELAXED);
    in->pc->switched = true;
    return 0;
}

bool postcopy_recv_switched(const struct migration_in *in)
{
    return in->pc && in->pc->switched;
}

int postcopy_recv_loaded(struct migration_in *in, struct machine *m, struct error *err)
{
    struct postcopy_recv *pc = in->pc;
    if (!pc || !pc->switched || !pc->verify)
        return 0;
    /* The pages here now (a never-touched one is zeroes: no need to read,
     * or fault in, it); the missing ones are added as they come. */
    struct ram *ram = &m->bus.ram;
    if (mstate_hash_devices(m, &pc->hash, err) < 0)
        return -1;
    for (uint64_t page = 0; page < ram->npages; page++) {
        if (!lazy_ram_is_present(&pc->lazy, page))
            continue;
        pc->hash += postcopy_page_hash(ram_page_touched(ram, page)
                                           ? ram->host + (page << RAM_PAGE_SHIFT) : zero_page,
                                       page);
    }
    return 0;
}

/* A PAGES record: installs each page still missing. */
static int install_pages(struct postcopy_recv *pc, const uint8_t *body, size_t len,
                         struct error *err)
{
    struct ram *ram = &pc->m->bus.ram;
    if (mstate_check_pages(pc->m, body, len, err) < 0)
        return -1;
    uint32_t n = get_u32(body);
    const uint8_t *data = body + 8 + 8ull * n;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t e = get_u64(body + 8 + 8ull * i), page = e >> RAM_PAGE_SHIFT;
        if (e & PAGE_ENTRY_DELTA)
            return error_set(err, "a delta page during post-copy");
        const uint8_t *src = e & PAGE_ENTRY_ZERO ? NULL : data;
        if (src)
            data += RAM_PAGE_SIZE;
        int rc = lazy_ram_install(&pc->lazy, page, src, err);
        if (rc < 0)
            return -1;
        if (rc == 0)
            continue; /* here already (asked for and pushed) */
        if (pc->verify)
            pc->hash += postcopy_page_hash(src ? src : zero_page, page);
        /* Received content counts as written here: a later migration
         * from this host must send it. */
        if (src)
            ram_mark_dirty_page(ram, page);
    }
    return 0;
}

static int send_locked(struct postcopy_recv *pc, uint32_t type, const void *body, size_t len,
                       struct error *err)
{
    pthread_mutex_lock(&pc->send_lock);
    int rc = stream_send_small(&pc->in->s, type, body, len, err);
    pthread_mutex_unlock(&pc->send_lock);
    return rc;
}

/* END: every page must be here; answer DONE with the figures. */
static int finish(struct postcopy_recv *pc, const uint8_t *body, size_t len, struct error *err)
{
    if (len != 12 || (get_u32(body) & ~POSTCOPY_FLAG_VERIFY))
        return error_set(err, "post-copy END record is malformed");
    struct lazy_ram_stats st;
    lazy_ram_stats(&pc->lazy, &st);
    if (st.missing)
        return error_set(err, "the source ended post-copy with %llu pages still missing",
                         (unsigned long long)st.missing);
    uint64_t verified = 0;
    if (get_u32(body) & POSTCOPY_FLAG_VERIFY) {
        uint64_t want = get_u64(body + 4);
        verified = pc->verify && want == pc->hash ? 1 : 2;
        if (verified == 1)
            fprintf(stderr, "ferry: post-copy state verified (hash %016llx)\n",
                    (unsigned long long)pc->hash);
        else
            fprintf(stderr, "ferry: post-copy verification FAILED: state hash %016llx, source "
                    "sent %016llx\n", (unsigned long long)pc->hash, (unsigned long long)want);
    }
    uint8_t b[48];
    put_u64(b, st.on_demand);
    put_u64(b + 8, st.median_ns);
    put_u64(b + 16, st.p99_ns);
    put_u64(b + 24, st.max_ns);
    put_u64(b + 32, verified);
    put_u64(b + 40, pc->pauses);
    fprintf(stderr, "ferry: post-copy complete: %llu pages fetched on demand (fault latency "
            "median %.3f ms, p99 %.3f ms, max %.3f ms)\n", (unsigned long long)st.on_demand,
            (double)st.median_ns / 1e6, (double)st.p99_ns / 1e6, (double)st.max_ns / 1e6);
    return send_locked(pc, REC_POSTCOPY_DONE, b, sizeof b, err);
}

/* After a break: park the guest (it cannot run far without the missing
 * pages) without waiting; a vCPU inside a fault parks once its page comes.
 * Returns when the vCPU loop acted on it or the machine stops. */
static void park_guest(struct postcopy_recv *pc)
{
    struct machine *m = pc->m;
    __atomic_or_fetch(&m->requests, REQ_PAUSE, __ATOMIC_RELEASE);
    machine_wake(m);
    pc->parked = true;
}

/* The guest was parked and its pages flow again: once the loop is parked
 * (the harts blocked in faults got their pages), let it go. */
static void unpark_guest_when_parked(struct postcopy_recv *pc)
{
    struct machine *m = pc->m;
    if (pc->parked && __atomic_load_n(&m->paused, __ATOMIC_ACQUIRE)) {
        machine_resume(m);
        pc->parked = false;
    }
}

/* Receives until END (0) or the connection fails (-1). */
static int receive_pages(struct postcopy_recv *pc, struct error *err)
{
    struct migration_in *in = pc->in;
    while (!atomic_load(&pc->stop)) {
        uint32_t type;
        const uint8_t *body;
        size_t len;
        if (stream_get(&in->s, &type, &body, &len, err) < 0 ||
            pagecodec_record(&type, &body, &len, &in->zbuf, &in->zcap, err) < 0)
            return -1;
        switch (type) {
        case REC_PAGES:
            if (install_pages(pc, body, len, err) < 0)
                return -1;
            /* After a recovery: the guest runs again once it parked. */
            if (pc->parked)
                unpark_guest_when_parked(pc);
            break;
        case REC_POSTCOPY_END:
            return finish(pc, body, len, err);
        case REC_ERROR:
            return error_set(err, "source gave up: %s", peer_text(body, len).s);
        default:
            if (!(type & REC_OPTIONAL))
                return error_set(err, "unexpected record 0x%x during post-copy", type);
        }
    }
    return error_set(err, "stopped");
}

static void ask_again(void *opaque, uint64_t page)
{
    request_page(opaque, page);
}

/* Recovery: waits for the source's new connection on the --incoming
 * address, answers RESUME with the pages still missing, and asks again
 * for the ones something waits for. */
static int reconnect(struct postcopy_recv *pc, const char *uri, struct error *err)
{
    struct migration_in *in = pc->in;
    struct endpoint ep = {.fd = -1};
    if (transport_listen(uri, &ep, err) < 0)
        return -1;
    uint8_t head[STREAM_HEADER_SIZE];
    for (;;) {
        if (atomic_load(&pc->stop)) {
            transport_close(&ep);
            return error_set(err, "stopped");
        }
        if (transport_accept_stream(&ep, RESUME_ACCEPT_SLICE_MS, RESUME_HEADER_MS, STREAM_MAGIC,
                                    8, head, sizeof head, err) == 0)
            break;
    }
    struct stream s = {0};
    if (stream_init(&s, ep.fd, err) < 0 || stream_preload(&s, head, sizeof head, err) < 0)
        goto fail;
    s.timeout_ms = PUSH_IO_TIMEOUT_MS;
    stream_deadline(&s, "post-copy recovery (RESUME)", RESUME_HEADER_MS);
    uint32_t type;
    const uint8_t *body;
    size_t len;
    if (stream_read_header(&s, err) < 0 || stream_get(&s, &type, &body, &len, err) < 0)
        goto fail;
    struct ram *ram = &pc->m->bus.ram;
    if (type != REC_POSTCOPY_RESUME || len != 8 || get_u64(body) != ram->npages) {
        error_set(err, "a connection that does not resume this post-copy (record 0x%x)", type);
        goto fail;
    }
    size_t words = ram->dirty_words;
    uint8_t *missing = malloc(8 + words * 8);
    if (!missing) {
        error_set(err, "out of memory");
        goto fail;
    }
    put_u64(missing, ram->npages);
    for (size_t i = 0; i < words; i++)
        put_u64(missing + 8 + 8 * i, ~__atomic_load_n(&pc->lazy.present[i], __ATOMIC_ACQUIRE) &
                                         (i == words - 1 && ram->npages % 64
                                              ? (1ull << (ram->npages % 64)) - 1 : ~0ull));
    int rc = stream_put(&s, REC_POSTCOPY_MISSING, missing, 8 + words * 8, err);
    free(missing);
    if (rc < 0 || stream_flush(&s, err) < 0)
        goto fail;
    stream_deadline(&s, NULL, 0);
    /* The new connection replaces the old one. */
    pthread_mutex_lock(&pc->send_lock);
    stream_free(&in->s);
    transport_close(&in->ep);
    in->s = s;
    in->ep = ep;
    pc->connected = true;
    pthread_mutex_unlock(&pc->send_lock);
    lazy_ram_for_each_asked(&pc->lazy, ask_again, pc);
    return 0;
fail:
    {
        struct error ignored;
        s.wlen = 0;
        s.timeout_ms = 1000;
        if (s.wbuf) {
            stream_put(&s, REC_ERROR, err->msg, strlen(err->msg), &ignored);
            stream_flush(&s, &ignored);
        }
    }
    stream_free(&s);
    transport_close(&ep);
    return -1;
}

static void *receiver_thread(void *arg)
{
    struct postcopy_recv *pc = arg;
    struct machine *m = pc->m;
    char uri[sizeof pc->in->uri];
    snprintf(uri, sizeof uri, "%s", pc->in->uri);
    struct error err, rs_err;
    for (;;) {
        int rc = receive_pages(pc, &err);
        if (rc == 0)
            break;
        if (atomic_load(&pc->stop))
            goto out;
        pthread_mutex_lock(&pc->send_lock);
        pc->connected = false;
        shutdown(pc->in->ep.fd, SHUT_RDWR);
        pthread_mutex_unlock(&pc->send_lock);
        if (runstate_transition(m, RUN_STATE_POSTCOPY, RUN_STATE_POSTCOPY_PAUSED, &rs_err) < 0)
            goto out; /* the guest stopped (poweroff, quit) */
        park_guest(pc);
        pc->pauses++;
        fprintf(stderr, "ferry: post-copy interrupted: %s; the guest is paused with %llu pages "
                "missing; waiting on %s for ferry migrate --resume\n", err.msg,
                (unsigned long long)__atomic_load_n(&pc->lazy.missing, __ATOMIC_RELAXED),
                uri + 4);
        while (reconnect(pc, uri, &err) < 0) {
            if (atomic_load(&pc->stop))
                goto out;
            fprintf(stderr, "ferry: post-copy recovery: %s; still waiting\n", err.msg);
            usleep(RESUME_ACCEPT_SLICE_MS * 1000); /* e.g. the address is taken meanwhile */
        }
        runstate_transition(m, RUN_STATE_POSTCOPY_PAUSED, RUN_STATE_POSTCOPY, &rs_err);
        fprintf(stderr, "ferry: post-copy resumed\n");
        /* The loop parks once no hart waits for a page (asked again at
         * once); receive_pages lets it go then. */
    }
    /* Every page is here: plain memory again. */
    pthread_mutex_lock(&pc->send_lock);
    pc->connected = false;
    transport_close(&pc->in->ep);
    pthread_mutex_unlock(&pc->send_lock);
    lazy_ram_close(&pc->lazy);
    __atomic_store_n(&pc->lazy_open, false, __ATOMIC_RELEASE);
    for (int i = 0; i < 10000 && pc->parked && machine_stop_reason(m) == MACHINE_RUNNING; i++) {
        unpark_guest_when_parked(pc);
        if (pc->parked)
            usleep(1000);
    }
    if (pc->parked)
        fprintf(stderr, "ferry: post-copy: the guest did not park after the recovery\n");
    runstate_transition(m, RUN_STATE_POSTCOPY, RUN_STATE_RUNNING, &rs_err);
out:
    return NULL;
}

bool postcopy_recv_start(struct migration_in *in, struct machine *m)
{
    struct postcopy_recv *pc = in->pc;
    if (!pc || !pc->switched)
        return false;
    /* Set before the fault thread may write: it reads them. */
    in->s.timeout_ms = PUSH_IO_TIMEOUT_MS;
    in->s.spin_until = 0;
    stream_deadline(&in->s, NULL, 0);
    pthread_mutex_lock(&pc->send_lock);
    pc->connected = true;
    pthread_mutex_unlock(&pc->send_lock);
    /* Faults before the return path opened (none expected: nothing ran). */
    lazy_ram_for_each_asked(&pc->lazy, ask_again, pc);
    pthread_mutex_lock(&active_lock);
    active = pc;
    if (pthread_create(&pc->thread, NULL, receiver_thread, pc) == 0) {
        pc->thread_started = true;
    } else {
        fprintf(stderr, "ferry: cannot start the post-copy receiver\n");
        active = NULL;
    }
    pthread_mutex_unlock(&active_lock);
    return pc->thread_started;
}

void postcopy_recv_free(struct migration_in *in)
{
    struct postcopy_recv *pc = in->pc;
    if (!pc)
        return;
    if (pc->lazy_open)
        lazy_ram_close(&pc->lazy);
    pthread_mutex_destroy(&pc->send_lock);
    free(pc);
    in->pc = NULL;
}

void postcopy_recv_stop_all(void)
{
    pthread_mutex_lock(&active_lock);
    struct postcopy_recv *pc = active;
    active = NULL;
    pthread_mutex_unlock(&active_lock);
    if (!pc)
        return;
    atomic_store(&pc->stop, true);
    pthread_mutex_lock(&pc->send_lock);
    if (pc->in->ep.fd >= 0)
        shutdown(pc->in->ep.fd, SHUT_RDWR);
    pthread_mutex_unlock(&pc->send_lock);
    pthread_join(pc->thread, NULL);
    incoming_free(pc->in); /* frees pc too */
}

bool postcopy_recv_progress(uint64_t *missing, uint64_t *total)
{
    pthread_mutex_lock(&active_lock);
    struct postcopy_recv *pc = active;
    if (pc) {
        *missing = __atomic_load_n(&pc->lazy_open, __ATOMIC_ACQUIRE)
                       ? __atomic_load_n(&pc->lazy.missing, __ATOMIC_RELAXED) : 0;
        *total = pc->total;
    }
    pthread_mutex_unlock(&active_lock);
    return pc != NULL;
}
