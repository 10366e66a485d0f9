/* Primary side of continuous replication. See replication.h.
 *
 * Epoch e runs between two checkpoints. At its end the guest is paused
 * just long enough to stage the dirtied pages, device state and the disk
 * writes held during e; the devices move to epoch e+1 and the guest
 * resumes while the checkpoint travels. When the standby acknowledges e,
 * the held disk writes of e go to the shared disk and the held network
 * frames of e go out. If the standby vanishes, everything held is
 * released and the primary runs on, unprotected, and says so. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "base/escape.h"
#include "dev/virtio_blk.h"
#include "dev/virtio_net.h"
#include "machine/machine.h"
#include "migrate/migration.h"
#include "migrate/mstate.h"
#include "migrate/replication.h"
#include "transport/transport.h"

#define INITIAL_ROUNDS 3
/* Between checkpoints longer than this, a heartbeat keeps the standby
 * from mistaking a quiet primary for a dead one. */
#define HEARTBEAT_NS (50ull * 1000 * 1000)
#define MIN_ACK_TIMEOUT_NS (2000ull * 1000 * 1000)

struct replication {
    pthread_t thread;
    struct machine *m;
    struct replication_params p;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    struct replication_status st;   /* under lock */
    bool stop_requested, switch_requested, finished;
    int switch_rc;
    char switch_err[512];
    int fd;
    uint64_t interval_sum_ns, interval_count;
    /* Heartbeats come from their own thread, so a slow disk commit or a
     * long staging never looks like a dead primary; send_lock keeps its
     * small records from landing inside a checkpoint. */
    pthread_t heartbeat;
    bool heartbeat_running, heartbeat_stop;
    pthread_mutex_t send_lock;
    struct stream *hb_stream;
};

static uint64_t now_ns(void) { return vclock_host_ns(); }

static void for_each_device(struct machine *m, void (*fn)(struct virtio_dev *, uint64_t),
                            uint64_t arg)
{
    for (unsigned i = 0; i < MEMMAP_VIRTIO_SLOTS; i++)
        if (m->virtio[i].ops)
            fn(&m->virtio[i], arg);
}

static void hold_on(struct virtio_dev *d, uint64_t epoch)
{
    if (virtio_blk_is(d)) {
        virtio_blk_set_epoch(d, epoch);
        virtio_blk_hold_writes(d, true);
    } else if (virtio_net_is(d)) {
        virtio_net_set_epoch(d, epoch);
        virtio_net_hold_output(d, true);
    }
}

static void hold_off(struct virtio_dev *d, uint64_t unused)
{
    (void)unused;
    if (virtio_blk_is(d))
        virtio_blk_hold_writes(d, false); /* commits everything held */
    else if (virtio_net_is(d))
        virtio_net_hold_output(d, false); /* releases everything held */
}

static void set_epoch(struct virtio_dev *d, uint64_t epoch)
{
    if (virtio_blk_is(d))
        virtio_blk_set_epoch(d, epoch);
    else if (virtio_net_is(d))
        virtio_net_set_epoch(d, epoch);
}

static void commit_epoch(struct virtio_dev *d, uint64_t epoch)
{
    if (virtio_blk_is(d)) {
        int rc = virtio_blk_commit(d, epoch);
        if (rc < 0)
            fprintf(stderr, "ferry: replication: writing held disk data failed: %s\n",
                    strerror(-rc));
    } else if (virtio_net_is(d)) {
        virtio_net_release(d, epoch);
    }
}

struct disk_capture {
    struct stream *s;
    uint32_t slot;
    struct error *err;
};

static int capture_write(void *opaque, uint64_t offset, const void *data, size_t len)
{
    struct disk_capture *c = opaque;
    uint8_t head[12];
    put_u32(head, c->slot);
    put_u64(head + 4, offset);
    const void *parts[2] = {head, data};
    size_t lens[2] = {sizeof head, len};
    return stream_put_iov(c->s, REC_DISK_WRITE, parts, lens, 2, c->err);
}

/* Stages checkpoint `epoch` while the guest is paused. */
static int stage_checkpoint(struct machine *m, struct stream *cs, uint64_t epoch,
                            uint64_t committed, uint64_t *bitmap, uint64_t *scratch,
                            struct error *err)
{
    struct ram *ram = &m->bus.ram;
    if (machine_dirty_sync_remote(m, scratch) < 0)
        return error_set(err, "the machine stopped");
    for (size_t i = 0; i < ram->dirty_words; i++)
        bitmap[i] |= scratch[i];
    uint8_t cp[16];
    put_u64(cp, epoch);
    put_u64(cp + 8, committed);
    struct page_counters c = {0};
    if (stream_put(cs, REC_CHECKPOINT, cp, sizeof cp, err) < 0 ||
        mstate_put_pages(cs, m, bitmap, &c, 0, NULL, err) < 0 ||
        mstate_put_devices(cs, m, STREAM_VERSION, err) < 0)
        return -1;
    memset(bitmap, 0, ram->dirty_words * 8);
    for (unsigned i = 0; i < MEMMAP_VIRTIO_SLOTS; i++) {
        struct virtio_dev *d = &m->virtio[i];
        if (!d->ops || !virtio_blk_is(d))
            continue;
        struct disk_capture dc = {cs, i, err};
        if (virtio_blk_epoch_writes(d, epoch, capture_write, &dc) < 0)
            return -1;
    }
    return stream_put(cs, REC_END, NULL, 0, err);
}

static int wait_record(struct stream *s, uint32_t want, uint64_t epoch, struct error *err)
{
    for (;;) {
        uint32_t type;
        const uint8_t *body;
        size_t len;
        if (stream_get(s, &type, &body, &len, err) < 0)
            return -1;
        if (type == want && (want != REC_ACK || (len == 8 && get_u64(body) == epoch)))
            return 0;
        if (type == REC_ERROR)
            return error_set(err, "standby: %s", peer_text(body, len).s);
        if (type == REC_ACK)
            continue; /* an older epoch's */
        if (!(type & REC_OPTIONAL))
            return error_set(err, "standby sent unexpected record 0x%x", type);
    }
}

static void *heartbeat_thread(void *arg)
{
    struct replication *r = arg;
    for (;;) {
        struct timespec ts = {0, (long)HEARTBEAT_NS};
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&r->send_lock);
        bool stop = r->heartbeat_stop;
        struct error err;
        if (!stop && stream_send_small(r->hb_stream, REC_HEARTBEAT, NULL, 0, &err) < 0)
            stop = true; /* the main thread sees the broken link too */
        pthread_mutex_unlock(&r->send_lock);
        if (stop)
            return NULL;
    }
}

static void heartbeat_start(struct replication *r, struct stream *s)
{
    r->hb_stream = s;
    r->heartbeat_stop = false;
    r->heartbeat_running = pthread_create(&r->heartbeat, NULL, heartbeat_thread, r) == 0;
}

static void heartbeat_end(struct replication *r)
{
    if (!r->heartbeat_running)
        return;
    pthread_mutex_lock(&r->send_lock);
    r->heartbeat_stop = true;
    pthread_mutex_unlock(&r->send_lock);
    pthread_join(r->heartbeat, NULL);
    r->heartbeat_running = false;
}

/* A phase deadline on the stream the heartbeat thread writes too. */
#define RUNNING_DEADLINE_MS 30000
static void set_deadline(struct replication *r, struct stream *s, const char *phase,
                         uint64_t ms)
{
    pthread_mutex_lock(&r->send_lock);
    stream_deadline(s, phase, ms);
    pthread_mutex_unlock(&r->send_lock);
}

/* Sends (and flushes) what the main thread buffered, under send_lock. */
static int send_locked(struct replication *r, struct stream *s, const struct stream *captured,
                       struct error *err)
{
    pthread_mutex_lock(&r->send_lock);
    int rc = captured ? stream_send_captured(s, captured, err) : 0;
    if (rc == 0)
        rc = stream_flush(s, err);
    pthread_mutex_unlock(&r->send_lock);
    return rc;
}

static void *replication_thread(void *arg)
{
    struct replication *r = arg;
    struct machine *m = r->m;
    struct ram *ram = &m->bus.ram;
    struct error err = {{0}};
    struct endpoint ep = {.fd = -1};
    struct stream s = {0}, cs = {0};
    uint64_t *bitmap = calloc(ram->dirty_words, 8), *scratch = calloc(ram->dirty_words, 8);
    uint64_t epoch = 0, acked = 0;
    bool paused = false, holding = false, switching = false;

    if (!bitmap || !scratch || stream_init(&cs, -1, &err) < 0) {
        error_set(&err, "out of memory");
        goto fail;
    }
    cs.capture = true;
    if (transport_open_out(r->p.uri, &ep, &err) < 0 || stream_init(&s, ep.fd, &err) < 0)
        goto fail;
    pthread_mutex_lock(&r->lock);
    r->fd = ep.fd;
    pthread_mutex_unlock(&r->lock);
    uint64_t ack_timeout = r->p.interval_ns * 20 > MIN_ACK_TIMEOUT_NS ? r->p.interval_ns * 20
                                                                       : MIN_ACK_TIMEOUT_NS;
    s.timeout_ms = (int)(ack_timeout / 1000000);
    if (stream_write_header(&s, STREAM_VERSION, &err) < 0 || mstate_put_machine(&s, m, &err) < 0)
        goto fail;

    /* Initial copy while the guest runs (a few pre-copy rounds); the first
     * checkpoint then carries what is still dirty. */
    if (machine_dirty_sync_remote(m, scratch) < 0) {
        error_set(&err, "the machine stopped");
        goto fail;
    }
    memset(bitmap, 0xff, ram->dirty_words * 8);
    if (ram->npages % 64)
        bitmap[ram->dirty_words - 1] = (1ull << (ram->npages % 64)) - 1;
    for (int round = 0; round < INITIAL_ROUNDS; round++) {
        struct page_counters c = {0};
        /* A standby reading a trickle must not hold this thread forever. */
        stream_deadline(&s, "initial copy round", stream_copy_deadline_ms(ram->size, 0));
        if (mstate_put_pages(&s, m, bitmap, &c, 0, NULL, &err) < 0 || stream_flush(&s, &err) < 0)
            goto fail;
        /* Records go straight to the socket from here on only under
         * send_lock; the heartbeat thread starts after the bulk copy. */
        if (machine_dirty_sync_remote(m, bitmap) < 0) {
            error_set(&err, "the machine stopped");
            goto fail;
        }
    }

    stream_deadline(&s, NULL, 0);
    heartbeat_start(r, &s);
    uint64_t next = now_ns(), last_cp = 0;
    for (;;) {
        /* Sleep until the epoch ends, unless asked to stop or switch. */
        pthread_mutex_lock(&r->lock);
        while (!r->stop_requested && !r->switch_requested && now_ns() < next) {
            uint64_t t = next, tnow = now_ns();
            if (t <= tnow)
                continue; /* the deadline passed meanwhile: no unsigned wrap */
            struct timespec ts;
            clock_gettime(CLOCK_MONOTONIC, &ts);
            uint64_t wait = t - tnow;
            ts.tv_sec += (time_t)(wait / 1000000000);
            ts.tv_nsec += (long)(wait % 1000000000);
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&r->cond, &r->lock, &ts);
        }
        bool stop = r->stop_requested;
        switching = r->switch_requested;
        if (switching)
            r->st.state = REPL_SWITCHING;
        pthread_mutex_unlock(&r->lock);
        if (stop) {
            stream_put(&s, REC_STOP, NULL, 0, &err);
            send_locked(r, &s, NULL, &err);
            break;
        }

        /* End of epoch: stage the checkpoint with the guest paused. */
        epoch++;
        uint64_t t_pause = now_ns();
        if (machine_pause(m) < 0) {
            error_set(&err, "the machine stopped");
            goto fail;
        }
        paused = true;
        cs.wlen = 0;
        if (stage_checkpoint(m, &cs, epoch, acked, bitmap, scratch, &err) < 0)
            goto fail;
        if (!holding) {
            /* Protection starts here: from now on output waits for acks. */
            for_each_device(m, hold_on, epoch + 1);
            holding = true;
        } else {
            for_each_device(m, set_epoch, epoch + 1);
        }
        uint64_t t_resume = now_ns();
        if (!switching) {
            machine_resume(m);
            paused = false;
        }
        set_deadline(r, &s, "checkpoint send", stream_copy_deadline_ms(ram->size, 0));
        if (send_locked(r, &s, &cs, &err) < 0)
            goto fail;
        /* The ack is due within the silence limit, whatever else the
         * standby sends meanwhile: output is held until it comes. */
        set_deadline(r, &s, "checkpoint acknowledgement", ack_timeout / 1000000);
        if (wait_record(&s, REC_ACK, epoch, &err) < 0)
            goto fail;
        set_deadline(r, &s, NULL, 0);
        acked = epoch;
        for_each_device(m, commit_epoch, epoch);
        uint64_t t_ack = now_ns();
        pthread_mutex_lock(&r->lock);
        r->st.state = switching ? REPL_SWITCHING : REPL_PROTECTED;
        r->st.epoch = epoch;
        r->st.acked_epoch = acked;
        r->st.last_checkpoint_bytes = cs.wlen;
        r->st.last_pause_ns = t_resume - t_pause;
        if (r->st.last_pause_ns > r->st.max_pause_ns)
            r->st.max_pause_ns = r->st.last_pause_ns;
        if (last_cp) {
            r->interval_sum_ns += t_pause - last_cp;
            r->interval_count++;
            r->st.achieved_interval_ms = (double)r->interval_sum_ns / (double)r->interval_count / 1e6;
            r->st.checkpoints_per_s = 1e3 / r->st.achieved_interval_ms;
        }
        r->st.last_ack_age_ns = 0;
        pthread_cond_broadcast(&r->cond);
        pthread_mutex_unlock(&r->lock);
        last_cp = t_pause;
        next = t_pause + r->p.interval_ns;
        if (next < t_ack)
            next = t_ack; /* slower than the interval: go again at once */

        if (switching) {
            /* The standby holds the final state: hand the guest over. */
            set_deadline(r, &s, "switchover (RUNNING after GO)", RUNNING_DEADLINE_MS);
            if (stream_put(&s, REC_GO, NULL, 0, &err) < 0 || send_locked(r, &s, NULL, &err) < 0 ||
                wait_record(&s, REC_RUNNING, 0, &err) < 0) {
                /* Past GO the standby may run the guest: never resume. */
                pthread_mutex_lock(&r->lock);
                r->st.state = REPL_UNPROTECTED;
                snprintf(r->st.error, sizeof r->st.error,
                         "switchover uncertain: %s; the guest stays paused here", err.msg);
                r->switch_rc = -1;
                snprintf(r->switch_err, sizeof r->switch_err, "%s", r->st.error);
                r->finished = true;
                pthread_cond_broadcast(&r->cond);
                pthread_mutex_unlock(&r->lock);
                goto out;
            }
            uint64_t t_running = now_ns();
            pthread_mutex_lock(&r->lock);
            r->st.state = REPL_SWITCHED;
            r->st.switchover_downtime_ns = t_running - t_pause;
            r->switch_rc = 0;
            r->finished = true;
            pthread_cond_broadcast(&r->cond);
            pthread_mutex_unlock(&r->lock);
            machine_request_stop(m, MACHINE_MIGRATED, 0);
            machine_resume(m);
            goto out;
        }
    }
    /* Stopped on request: release what is held, run on alone. */
    for_each_device(m, hold_off, 0);
    pthread_mutex_lock(&r->lock);
    r->st.state = REPL_STOPPED;
    r->finished = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
    goto out;

fail:
    heartbeat_end(r);
    /* The standby is gone or broken: never hold the guest hostage. */
    if (holding)
        for_each_device(m, hold_off, 0);
    if (paused)
        machine_resume(m);
    fprintf(stderr, "ferry: replication: %s; the guest runs on UNPROTECTED\n", err.msg);
    pthread_mutex_lock(&r->lock);
    r->st.state = REPL_UNPROTECTED;
    snprintf(r->st.error, sizeof r->st.error, "%s", err.msg);
    if (switching) {
        r->switch_rc = -1;
        snprintf(r->switch_err, sizeof r->switch_err, "%s", err.msg);
    }
    r->finished = true;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->lock);
out:
    heartbeat_end(r);
    stream_free(&s);
    stream_free(&cs);
    transport_close(&ep);
    free(bitmap);
    free(scratch);
    return NULL;
}

int replication_start(struct machine *m, const struct replication_params *p, struct error *err)
{
    struct replication *r = m->replication;
    if (r) {
        pthread_mutex_lock(&r->lock);
        bool done = r->finished;
        pthread_mutex_unlock(&r->lock);
        if (!done)
            return error_set(err, "replication is already running");
        replication_free(m);
    }
    if (m->migration && !m->paused) {
        struct migration_status st;
        migration_get_status(m, &st);
        if (st.state == MIG_SETUP || st.state == MIG_ACTIVE || st.state == MIG_COMPLETING)
            return error_set(err, "a migration is running");
    }
    if (strncmp(p->uri, "tcp:", 4) != 0)
        return error_set(err, "standby '%s' must be tcp:HOST:PORT", p->uri);
    if (p->interval_ns < 1000000 || p->interval_ns > 60ull * 1000000000)
        return error_set(err, "interval must be between 1 ms and 60 s");
    r = calloc(1, sizeof *r);
    if (!r)
        return error_set(err, "out of memory");
    r->m = m;
    r->p = *p;
    r->fd = -1;
    pthread_mutex_init(&r->lock, NULL);
    /* The epoch deadlines are CLOCK_MONOTONIC: the condition must be too. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&r->cond, &ca);
    pthread_condattr_destroy(&ca);
    pthread_mutex_init(&r->send_lock, NULL);
    r->st.state = REPL_SYNCING;
    r->st.interval_ns = p->interval_ns;
    snprintf(r->st.uri, sizeof r->st.uri, "%s", p->uri);
    if (pthread_create(&r->thread, NULL, replication_thread, r) != 0) {
        free(r);
        return error_set(err, "cannot start the replication thread");
    }
    m->replication = r;
    return 0;
}

static int replication_request(struct machine *m, bool stop, struct error *err)
{
    struct replication *r = m->replication;
    if (!r)
        return error_set(err, "the VM is not replicated");
    pthread_mutex_lock(&r->lock);
    if (r->finished) {
        pthread_mutex_unlock(&r->lock);
        return error_set(err, "replication is not running (%s)",
                         r->st.error[0] ? r->st.error : "stopped");
    }
    if (stop)
        r->stop_requested = true;
    else
        r->switch_requested = true;
    pthread_cond_broadcast(&r->cond);
    while (!r->finished)
        pthread_cond_wait(&r->cond, &r->lock);
    int rc = 0;
    if (!stop && r->switch_rc < 0)
        rc = error_set(err, "%s", r->switch_err);
    pthread_mutex_unlock(&r->lock);
    return rc;
}

int replication_stop(struct machine *m, struct error *err)
{
    return replication_request(m, true, err);
}

int replication_switchover(struct machine *m, struct error *err)
{
    return replication_request(m, false, err);
}

void replication_get_status(struct machine *m, struct replication_status *out)
{
    memset(out, 0, sizeof *out);
    struct replication *r = m->replication;
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    *out = r->st;
    pthread_mutex_unlock(&r->lock);
    out->held_frames = 0;
    for (unsigned i = 0; i < MEMMAP_VIRTIO_SLOTS; i++)
        if (m->virtio[i].ops && virtio_net_is(&m->virtio[i]))
            out->held_frames += virtio_net_held_frames(&m->virtio[i]);
}

void replication_free(struct machine *m)
{
    struct replication *r = m->replication;
    if (!r)
        return;
    pthread_mutex_lock(&r->lock);
    r->stop_requested = true;
    pthread_cond_broadcast(&r->cond);
    if (r->fd >= 0 && !r->finished)
        shutdown(r->fd, SHUT_RDWR);
    pthread_mutex_unlock(&r->lock);
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->lock);
    pthread_cond_destroy(&r->cond);
    pthread_mutex_destroy(&r->send_lock);
    free(r);
    m->replication = NULL;
}
