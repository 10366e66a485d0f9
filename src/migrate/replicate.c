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

#include "machine/machine.h"
#include "migrate/arbiter_etcd.h"
#include "migrate/blockcopy.h"
#include "migrate/handover.h"
#include "migrate/migration.h"
#include "migrate/mstate.h"
#include "migrate/replication.h"
#include "transport/transport.h"

#define INITIAL_ROUNDS 3
/* While the standby takes the whole RAM in, it may fall silent longer than
 * an epoch's acknowledgement may take (a loaded host, a standby writing its
 * disk image): each round has a deadline for the whole of it, so a silence
 * up to this long is waited out. */
#define INITIAL_SILENCE_MS 10000
/* Between checkpoints longer than this, a heartbeat keeps the standby
 * from mistaking a quiet primary for a dead one. */
#define HEARTBEAT_NS (50ull * 1000 * 1000)
#define MIN_ACK_TIMEOUT_NS (2000ull * 1000 * 1000)

/* A replication job. job.lock guards st, the requests, switch_rc/err and
 * fd; job.cond is broadcast on each acknowledged epoch and at the end. */
struct replication {
    struct job job;                 /* first: a struct job * is a struct replication * */
    struct replication_params p;
    struct replication_status st;   /* under job.lock */
    bool stop_requested, switch_requested;
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
    struct dirty_reader reader;     /* registered while the job runs */
    /* --copy-storage: the disks' initial copy, until the first checkpoint
     * (from then on the held writes of each epoch travel as DISK_WRITE). */
    struct blockcopy_out *storage;
};

static uint64_t now_ns(void) { return vclock_host_ns(); }

/* The devices with replication hooks (the registry's), each called with
 * its hooks. */
static void for_each_output(struct machine *m,
                            void (*fn)(struct virtio_dev *, const struct repl_hooks *, uint64_t),
                            uint64_t arg)
{
    for (unsigned i = 0; i < m->devices.n; i++)
        if (m->devices.dev[i].repl)
            fn(m->devices.dev[i].vdev, m->devices.dev[i].repl, arg);
}

static void hold_on(struct virtio_dev *d, const struct repl_hooks *h, uint64_t epoch)
{
    h->set_epoch(d, epoch);
    h->hold(d, true);
}

static void hold_off(struct virtio_dev *d, const struct repl_hooks *h, uint64_t unused)
{
    (void)unused;
    h->hold(d, false); /* commits / releases everything held */
}

static void set_epoch(struct virtio_dev *d, const struct repl_hooks *h, uint64_t epoch)
{
    h->set_epoch(d, epoch);
}

static void commit_epoch(struct virtio_dev *d, const struct repl_hooks *h, uint64_t epoch)
{
    int rc = h->commit(d, epoch);
    if (rc < 0)
        fprintf(stderr, "ferry: replication: releasing held output failed: %s\n", strerror(-rc));
}

/* A switchover's last epoch: its frames travelled in the checkpoint and go
 * out from the new host after its announcement, never from here, where
 * the answers they draw would be lost once the LAN moves. Disk writes
 * commit as usual. */
static void commit_final_epoch(struct virtio_dev *d, const struct repl_hooks *h, uint64_t epoch)
{
    if (h->drop)
        h->drop(d, epoch);
    else
        commit_epoch(d, h, epoch);
}

struct frame_capture {
    struct stream *s;
    uint32_t slot;
    struct error *err;
};

static int capture_frame(void *opaque, const uint8_t *frame, size_t len)
{
    struct frame_capture *c = opaque;
    uint8_t head[4];
    put_u32(head, c->slot);
    const void *parts[2] = {head, frame};
    size_t lens[2] = {sizeof head, len};
    return stream_put_iov(c->s, REC_HELD_FRAME, parts, lens, 2, c->err);
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
static int stage_checkpoint(struct replication *r, struct stream *cs, uint64_t epoch,
                            uint64_t committed, bool final, uint64_t *bitmap, uint64_t *scratch,
                            struct error *err)
{
    struct machine *m = r->job.m;
    struct ram *ram = &m->bus.ram;
    if (dirty_reader_harvest(&r->reader, scratch, err) < 0)
        return -1;
    for (size_t i = 0; i < ram->dirty_words; i++)
        bitmap[i] |= scratch[i];
    uint8_t cp[16];
    put_u64(cp, epoch);
    put_u64(cp + 8, committed);
    struct page_counters c = {0};
    if (stream_put(cs, REC_CHECKPOINT, cp, sizeof cp, err) < 0 ||
        mstate_put_pages(cs, m, bitmap, &c, 0, NULL, err) < 0)
        return -1;
    if (r->storage) {
        /* The disks' last dirty blocks, then the log is done. */
        blockcopy_harvest(r->storage);
        if (blockcopy_put_blocks(r->storage, cs, 0, NULL, err) < 0)
            return -1;
        blockcopy_out_free(r->storage);
        r->storage = NULL;
    }
    if (mstate_put_devices(cs, m, STREAM_VERSION, err) < 0)
        return -1;
    memset(bitmap, 0, ram->dirty_words * 8);
    for (unsigned i = 0; i < m->devices.n; i++) {
        const struct device_entry *d = &m->devices.dev[i];
        if (!d->repl || !d->repl->epoch_writes)
            continue;
        struct disk_capture dc = {cs, d->instance, err};
        if (d->repl->epoch_writes(d->vdev, epoch, capture_write, &dc) < 0)
            return -1;
    }
    for (unsigned i = 0; final && i < m->devices.n; i++) {
        const struct device_entry *d = &m->devices.dev[i];
        if (!d->repl || !d->repl->epoch_frames)
            continue;
        struct frame_capture fc = {cs, d->instance, err};
        if (d->repl->epoch_frames(d->vdev, epoch, capture_frame, &fc) < 0)
            return -1;
    }
    return stream_put(cs, REC_END, NULL, 0, err);
}

static const struct peer standby_peer = {"standby", "standby"};

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

/* Without heartbeats the standby would take a quiet primary for a dead
 * one and fail over for nothing: no thread, no replication. */
static int heartbeat_start(struct replication *r, struct stream *s, struct error *err)
{
    r->hb_stream = s;
    r->heartbeat_stop = false;
    int rc = pthread_create(&r->heartbeat, NULL, heartbeat_thread, r);
    if (rc != 0)
        return error_set(err, "cannot start the heartbeat thread: %s", strerror(rc));
    r->heartbeat_running = true;
    return 0;
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

/* Initial copy while the guest runs (a few pre-copy rounds); the first
 * checkpoint then carries what is still dirty (left in bitmap). */
static int initial_copy(struct replication *r, struct stream *s, uint64_t *bitmap,
                        uint64_t *scratch, struct error *err)
{
    struct machine *m = r->job.m;
    struct ram *ram = &m->bus.ram;
    if (dirty_reader_harvest(&r->reader, scratch, err) < 0)
        return -1;
    memset(bitmap, 0xff, ram->dirty_words * 8);
    if (ram->npages % 64)
        bitmap[ram->dirty_words - 1] = (1ull << (ram->npages % 64)) - 1;
    if (r->storage && blockcopy_start(r->storage, err) < 0)
        return -1;
    int silence_ms = s->timeout_ms, rc = 0;
    if (s->timeout_ms >= 0 && s->timeout_ms < INITIAL_SILENCE_MS)
        s->timeout_ms = INITIAL_SILENCE_MS;
    for (int round = 0; round < INITIAL_ROUNDS && rc == 0; round++) {
        struct page_counters c = {0};
        /* A standby reading a trickle must not hold this thread forever. */
        stream_deadline(s, "initial copy round", stream_copy_deadline_ms(ram->size, 0));
        if (mstate_put_pages(s, m, bitmap, &c, 0, NULL, err) < 0 ||
            (r->storage && blockcopy_put_blocks(r->storage, s, 0, NULL, err) < 0) ||
            stream_flush(s, err) < 0) {
            rc = -1;
            break;
        }
        if (r->storage)
            blockcopy_harvest(r->storage);
        /* Records go straight to the socket from here on only under
         * send_lock; the heartbeat thread starts after the bulk copy. */
        if (dirty_reader_harvest(&r->reader, bitmap, err) < 0)
            rc = -1;
    }
    s->timeout_ms = silence_ms;
    stream_deadline(s, NULL, 0);
    return rc < 0 ? -1 : 0;
}

/* Sleeps until the epoch ends at `next` (CLOCK_MONOTONIC ns), unless asked
 * to stop or switch over. Returns true to stop; *switching says whether a
 * switchover was asked for. */
static bool wait_epoch_end(struct replication *r, uint64_t next, bool *switching)
{
    pthread_mutex_lock(&r->job.lock);
    /* A switchover does not cut the epoch short: clients answered at the
     * last commit get their requests in before the final pause, instead
     * of into this host's tap while the guest is paused (lost, and
     * recovered only by a TCP retransmission). */
    while (!r->stop_requested && now_ns() < next) {
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
        pthread_cond_timedwait(&r->job.cond, &r->job.lock, &ts);
    }
    bool stop = r->stop_requested;
    *switching = r->switch_requested;
    if (*switching)
        r->st.state = REPL_SWITCHING;
    pthread_mutex_unlock(&r->job.lock);
    return stop;
}

/* Status publishing: an acknowledged epoch's figures. */
static void publish_epoch(struct replication *r, bool switching, uint64_t epoch, size_t bytes,
                          uint64_t t_pause, uint64_t t_resume, uint64_t last_cp)
{
    pthread_mutex_lock(&r->job.lock);
    r->st.state = switching ? REPL_SWITCHING : REPL_PROTECTED;
    r->st.epoch = epoch;
    r->st.acked_epoch = epoch;
    r->st.last_checkpoint_bytes = bytes;
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
    pthread_cond_broadcast(&r->job.cond);
    pthread_mutex_unlock(&r->job.lock);
}

/* Protection ended while the arbiter's lease was not surely valid: what
 * is held may go out only if the lease is renewed after all (the key never
 * left us). Waits for that (true), or for the lease to be lost or the job
 * to be stopped (false: what is held is never released). */
static bool await_arbiter(struct replication *r)
{
    for (;;) {
        if (arbiter_may_release()) {
            fprintf(stderr, "ferry: replication: the arbiter's lease was renewed: releasing "
                    "what was held\n");
            return true;
        }
        struct arbiter_status a;
        arbiter_get_status(&a);
        bool stop = atomic_load(&r->job.cancel);
        if (stop || a.state == ARBITER_LOST || a.state == ARBITER_RELEASED ||
            a.state == ARBITER_NONE)
            return false;
        struct timespec ts = {0, 50 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

static int flush_locked(void *opaque, struct stream *s, struct error *err)
{
    return send_locked(opaque, s, NULL, err);
}

static void *replication_thread(void *arg)
{
    struct replication *r = arg;
    struct machine *m = r->job.m;
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
    /* The job's reader of the dirty log, dropped before the job finishes. */
    if (dirty_reader_open(m, &r->reader, "replication", &err) < 0)
        goto fail;
    cs.capture = true;
    if (transport_open_out_tls(r->p.uri, &r->p.tls, &ep, &err) < 0 ||
        stream_init(&s, ep.fd, &err) < 0)
        goto fail;
    pthread_mutex_lock(&r->job.lock);
    r->fd = ep.fd;
    pthread_mutex_unlock(&r->job.lock);
    uint64_t ack_timeout = r->p.interval_ns * 20 > MIN_ACK_TIMEOUT_NS ? r->p.interval_ns * 20
                                                                       : MIN_ACK_TIMEOUT_NS;
    s.timeout_ms = (int)(ack_timeout / 1000000);
    if (r->p.copy_storage && blockcopy_out_open(&r->storage, m, &err) < 0)
        goto fail;
    if (stream_write_header(&s, STREAM_VERSION, &err) < 0 ||
        mstate_put_machine_flags(&s, m, r->storage ? MDESC_STORAGE : 0, &err) < 0 ||
        (r->storage && blockcopy_put_storage(r->storage, &s, &err) < 0))
        goto fail;

    if (initial_copy(r, &s, bitmap, scratch, &err) < 0 || heartbeat_start(r, &s, &err) < 0)
        goto fail;
    uint64_t next = now_ns(), last_cp = 0;
    for (;;) {
        bool stop = wait_epoch_end(r, next, &switching);
        if (stop) {
            stream_put(&s, REC_STOP, NULL, 0, &err);
            send_locked(r, &s, NULL, &err);
            break;
        }

        /* End of epoch: stage the checkpoint with the guest paused. */
        epoch++;
        uint64_t t_pause = now_ns();
        /* The epoch's own hold: if the operator paused the guest too, the
         * guest stays paused when this epoch lets go. */
        if (runstate_hold(m, HOLD_REPLICATION, &err) < 0)
            goto fail;
        paused = true;
        if (switching &&
            runstate_transition(m, RUN_STATE_PAUSED, RUN_STATE_COMPLETING, &err) < 0)
            goto fail;
        cs.wlen = 0;
        if (stage_checkpoint(r, &cs, epoch, acked, switching, bitmap, scratch, &err) < 0)
            goto fail;
        if (!holding) {
            /* Protection starts here: from now on output waits for acks. */
            for_each_output(m, hold_on, epoch + 1);
            holding = true;
        } else {
            for_each_output(m, set_epoch, epoch + 1);
        }
        uint64_t t_resume = now_ns();
        if (!switching) {
            paused = false;
            if (runstate_release(m, HOLD_REPLICATION, &err) < 0)
                goto fail;
        }
        set_deadline(r, &s, "checkpoint send", stream_copy_deadline_ms(ram->size, 0));
        if (send_locked(r, &s, &cs, &err) < 0)
            goto fail;
        /* The ACK is the checkpoint's READY (for a switchover, the first
         * half of the commit handshake), due within the silence limit
         * whatever else the standby sends meanwhile: output is held until
         * it comes. */
        struct handover h = {.peer = standby_peer, .ready_type = REC_ACK, .epoch = epoch,
                             .flush = flush_locked, .opaque = r};
        set_deadline(r, &s, "checkpoint acknowledgement", ack_timeout / 1000000);
        if (handover_wait_ready(&s, &h, &err) < 0)
            goto fail;
        set_deadline(r, &s, NULL, 0);
        acked = epoch;
        /* With an arbiter, output goes out only while its lease is surely
         * ours: a primary that may have been replaced releases nothing
         * (what it holds waits for a later epoch, or for ever). */
        if (!arbiter_may_release()) {
            /* Protection ends here: the standby, hearing nothing more,
             * takes over once it holds the key (or never, without a
             * quorum); this side stays paused by the arbiter. */
            error_set(&err, "the arbiter's lease is not surely valid: releasing nothing, "
                      "ending protection so that the standby can take over");
            goto fail;
        }
        for_each_output(m, switching ? commit_final_epoch : commit_epoch, epoch);
        uint64_t t_ack = now_ns();
        publish_epoch(r, switching, epoch, cs.wlen, t_pause, t_resume, last_cp);
        last_cp = t_pause;
        next = t_pause + r->p.interval_ns;
        if (next < t_ack)
            next = t_ack; /* slower than the interval: go again at once */

        if (switching) {
            /* The standby holds the final state: hand the guest over. */
            struct error rs_err;
            /* With an arbiter the standby may run the guest only once it
             * holds the key: give it up first (the gate closes). */
            struct arbiter *arb = arbiter_current();
            if (arb && arbiter_release(arb, &err) < 0)
                goto fail;
            runstate_transition(m, RUN_STATE_COMPLETING, RUN_STATE_HANDOVER, &rs_err);
            set_deadline(r, &s, "switchover (RUNNING after GO)", RUNNING_DEADLINE_MS);
            if (handover_go(&s, &h, &err) < 0) {
                /* Past GO the standby may run the guest: never resume
                 * (only the operator, who checked, may). */
                runstate_hand_to_operator(m, HOLD_REPLICATION, RUN_STATE_HANDOVER, &rs_err);
                pthread_mutex_lock(&r->job.lock);
                r->st.state = REPL_UNPROTECTED;
                snprintf(r->st.error, sizeof r->st.error,
                         "switchover uncertain: %s; the guest stays paused here", err.msg);
                r->switch_rc = -1;
                snprintf(r->switch_err, sizeof r->switch_err, "%s", r->st.error);
                pthread_mutex_unlock(&r->job.lock);
                goto out;
            }
            pthread_mutex_lock(&r->job.lock);
            r->st.state = REPL_SWITCHED;
            uint64_t handover = h.t_running - t_pause, down = handover_downtime_ns(&h, t_pause);
            const char *bound = handover_bound_reason(down, handover);
            r->st.switchover_downtime_ns = bound ? handover : down;
            r->st.switchover_handover_ns = handover;
            snprintf(r->st.switchover_downtime_bound, sizeof r->st.switchover_downtime_bound,
                     "%s", bound ? bound : "");
            r->switch_rc = 0;
            pthread_mutex_unlock(&r->job.lock);
            runstate_transition(m, RUN_STATE_HANDOVER, RUN_STATE_MIGRATED, &rs_err);
            machine_request_stop(m, MACHINE_MIGRATED, 0);
            machine_resume(m); /* wakes the parked loop, which sees the stop and ends */
            goto out;
        }
    }
    /* Stopped on request: release what is held, run on alone. */
    for_each_output(m, hold_off, 0);
    pthread_mutex_lock(&r->job.lock);
    r->st.state = REPL_STOPPED;
    pthread_mutex_unlock(&r->job.lock);
    goto out;

fail:
    heartbeat_end(r);
    /* The standby is gone or broken: never hold the guest hostage, unless
     * the arbiter's lease may have ended (the standby may run the guest). */
    if (holding && !arbiter_may_release()) {
        fprintf(stderr, "ferry: replication: the arbiter's lease is not valid: nothing held is "
                "released\n");
        holding = await_arbiter(r);
    }
    if (holding)
        for_each_output(m, hold_off, 0);
    if (paused) {
        struct error rs_err;
        if (switching)
            runstate_transition(m, RUN_STATE_COMPLETING, RUN_STATE_PAUSED, &rs_err);
        if (runstate_release(m, HOLD_REPLICATION, &rs_err) < 0)
            fprintf(stderr, "ferry: replication: %s\n", rs_err.msg);
    }
    if (arbiter_may_release())
        fprintf(stderr, "ferry: replication: %s; the guest runs on UNPROTECTED\n", err.msg);
    else
        fprintf(stderr, "ferry: replication: %s; the guest stays paused (arbiter)\n", err.msg);
    pthread_mutex_lock(&r->job.lock);
    r->st.state = REPL_UNPROTECTED;
    snprintf(r->st.error, sizeof r->st.error, "%s", err.msg);
    if (switching) {
        r->switch_rc = -1;
        snprintf(r->switch_err, sizeof r->switch_err, "%s", err.msg);
    }
    pthread_mutex_unlock(&r->job.lock);
out:
    heartbeat_end(r);
    blockcopy_out_free(r->storage);
    r->storage = NULL;
    stream_free(&s);
    stream_free(&cs);
    transport_close(&ep);
    free(bitmap);
    free(scratch);
    dirty_reader_close(&r->reader);
    job_finish(&r->job);
    return NULL;
}

static void replication_stop_job(struct job *j)
{
    struct replication *r = (struct replication *)j;
    pthread_mutex_lock(&r->job.lock);
    r->stop_requested = true;
    atomic_store(&r->job.cancel, true);
    pthread_cond_broadcast(&r->job.cond);
    if (r->fd >= 0 && !r->job.finished)
        shutdown(r->fd, SHUT_RDWR);
    pthread_mutex_unlock(&r->job.lock);
}

static void replication_destroy_job(struct job *j)
{
    struct replication *r = (struct replication *)j;
    pthread_mutex_destroy(&r->send_lock);
    free(r);
}

static const struct job_ops replication_job_ops = {
    .stop = replication_stop_job,
    .destroy = replication_destroy_job,
};

int replication_start(struct machine *m, const struct replication_params *p, struct error *err)
{
    if (strncmp(p->uri, "tcp:", 4) != 0 && strncmp(p->uri, "tls:", 4) != 0)
        return error_set(err, "standby '%s' must be tcp:HOST:PORT or tls:HOST:PORT", p->uri);
    if (transport_check_uri(p->uri, false, err) < 0)
        return -1;
    if (strncmp(p->uri, "tls:", 4) == 0 &&
        tls_config_check(tls_config_empty(&p->tls) ? tls_get_default() : &p->tls, err) < 0)
        return -1;
    if (p->interval_ns < 1000000 || p->interval_ns > 60ull * 1000000000)
        return error_set(err, "interval must be between 1 ms and 60 s");
    if (job_check_idle(m, JOB_REPLICATE, err) < 0)
        return -1;
    enum run_state rs = runstate_get(m);
    if (rs != RUN_STATE_RUNNING && rs != RUN_STATE_PAUSED)
        return error_set(err, "the VM is %s: nothing to replicate", runstate_name(rs));
    struct replication *r = calloc(1, sizeof *r);
    if (!r)
        return error_set(err, "out of memory");
    job_init(&r->job, JOB_REPLICATE, &replication_job_ops, m);
    r->p = *p;
    r->fd = -1;
    pthread_mutex_init(&r->send_lock, NULL);
    r->st.state = REPL_SYNCING;
    r->st.interval_ns = p->interval_ns;
    snprintf(r->st.uri, sizeof r->st.uri, "%s", p->uri);
    /* One job at a time. */
    if (job_start(m, &r->job, replication_thread, err) < 0) {
        job_put(&r->job);
        return -1;
    }
    return 0;
}

/* stop or switch over: asks the thread and waits for it to finish, holding
 * a reference so the job outlives the wait whatever else happens. The
 * first request wins; a different one arriving meanwhile is refused. */
static int replication_request(struct machine *m, bool stop, struct error *err)
{
    struct job *j = job_get(m, JOB_FAMILY_REPLICATION);
    if (!j)
        return error_set(err, "the VM is not replicated");
    struct replication *r = (struct replication *)j;
    int rc = 0;
    pthread_mutex_lock(&r->job.lock);
    if (r->job.finished) {
        /* Say what ended it: a request racing a switchover that already
         * completed must learn that the guest went to the standby. */
        rc = error_set(err, "replication is not running (%s)",
                       r->st.state == REPL_SWITCHED ? "the guest was handed to the standby by a "
                                                      "switchover"
                       : r->st.error[0]             ? r->st.error
                                                    : "stopped");
    } else if (r->stop_requested && !stop) {
        rc = error_set(err, "replication is being stopped: switchover refused");
    } else if (r->switch_requested && stop) {
        rc = error_set(err, "a switchover is in progress: replicate-stop refused");
    } else {
        if (stop)
            r->stop_requested = true;
        else
            r->switch_requested = true;
        pthread_cond_broadcast(&r->job.cond);
        while (!r->job.finished)
            pthread_cond_wait(&r->job.cond, &r->job.lock);
        if (!stop && r->switch_rc < 0)
            rc = error_set(err, "%s", r->switch_err);
        else if (!stop && r->st.state != REPL_SWITCHED)
            rc = error_set(err, "switchover failed: %s", r->st.error[0] ? r->st.error
                                                                        : "replication ended");
    }
    pthread_mutex_unlock(&r->job.lock);
    job_put(j);
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
    struct job *j = job_get(m, JOB_FAMILY_REPLICATION);
    if (!j)
        return;
    struct replication *r = (struct replication *)j;
    pthread_mutex_lock(&r->job.lock);
    *out = r->st;
    pthread_mutex_unlock(&r->job.lock);
    job_put(j);
    out->held_frames = 0;
    for (unsigned i = 0; i < m->devices.n; i++) {
        const struct device_entry *d = &m->devices.dev[i];
        if (d->repl && d->repl->held)
            out->held_frames += d->repl->held(d->vdev);
    }
}
