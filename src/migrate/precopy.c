/* Source side of migration: live pre-copy rounds racing the guest's dirty
 * rate, then a short stop-and-copy; also non-live migration and save to a
 * file. Runs on its own thread while the vCPU loop keeps running the guest.
 *
 * Failure rule: until the destination has said READY (complete, verified
 * final state), any failure resumes the guest here with nothing lost. After
 * READY the source sends GO and waits for RUNNING; only then does it stop
 * for good. See docs/migration-stream.md for the handshake. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "machine/machine.h"
#include "migrate/converge.h"
#include "migrate/handover.h"
#include "migrate/migration.h"
#include "migrate/mstate.h"
#include "migrate/postcopy.h"
#include "migrate/progress.h"
#include "migrate/vmstate.h"
#include "transport/transport.h"

#define HANDSHAKE_TIMEOUT_MS 30000
_Static_assert(CONVERGE_MAX_ROUNDS <= MIG_MAX_ROUNDS, "every round has a row in the status");
/* Total deadlines per phase, whatever the destination sends meanwhile
 * (heartbeats included): a round's pages and PONG (stream_copy_deadline_ms);
 * READY after END (the guest is paused here: past this it resumes here);
 * RUNNING after GO. */
#define READY_DEADLINE_MS 5000
#define RUNNING_DEADLINE_MS 30000

/* Steps are kept in memory and printed by migration_trace_flush: writing
 * to stderr (a pipe, often) while the guest is paused would be part of
 * what is measured. One migration per process side at a time. */
#define TRACE_MAX 32
static struct { const char *step; uint64_t ns, at; } trace_buf[TRACE_MAX];
static unsigned trace_len;

static bool trace_enabled(void)
{
    static int enabled = -1;
    if (enabled < 0)
        enabled = getenv("FERRY_MIGRATION_TRACE") != NULL;
    return enabled;
}

void migration_trace(const char *step, uint64_t since)
{
    if (trace_enabled() && trace_len < TRACE_MAX) {
        uint64_t now = vclock_host_ns();
        trace_buf[trace_len].step = step;
        trace_buf[trace_len].ns = now - since;
        trace_buf[trace_len++].at = now;
    }
}

void migration_trace_flush(void)
{
    for (unsigned i = 0; i < trace_len; i++)
        fprintf(stderr, "ferry: migration: %-20s +%.3f ms (at %.6f s)\n", trace_buf[i].step,
                (double)trace_buf[i].ns / 1e6, (double)trace_buf[i].at / 1e9);
    trace_len = 0;
}

/* A migration or save job. job.lock guards st, fd and handed_over;
 * job.cancel asks the thread to give up (until READY). */
struct migration {
    struct job job;              /* first: a struct job * is a struct migration * */
    struct migration_params p;
    struct migration_status st;  /* under job.lock */
    int fd;                      /* the connection, for cancel */
    bool handed_over;            /* READY received: cancel no longer possible */
    enum hold_owner hold;        /* HOLD_MIGRATION or HOLD_SAVE */
    struct dirty_reader reader;  /* registered while the job runs */
    struct progress progress;    /* within the round, for migrate-status */
    bool postcopy;               /* the policy switched to post-copy */
    struct postcopy_send pc;     /* its source side (postcopy.h) */
    char resume_uri[256];        /* under job.lock: --resume asked to reconnect here */
    bool resume_asked, quit;     /* under job.lock, with job.cond */
    struct blockcopy_out *storage; /* --copy-storage: the disks' copy */
};

static void set_state(struct migration *mig, enum migration_state state)
{
    pthread_mutex_lock(&mig->job.lock);
    mig->st.state = state;
    pthread_cond_broadcast(&mig->job.cond);
    pthread_mutex_unlock(&mig->job.lock);
}

static void set_all(uint64_t *bitmap, uint64_t npages)
{
    size_t words = (npages + 63) / 64;
    memset(bitmap, 0xff, words * 8);
    if (npages % 64)
        bitmap[words - 1] = (1ull << (npages % 64)) - 1;
}

static const struct peer destination = {"destination", "destination refused the stream"};

static size_t device_state_bytes(struct machine *m)
{
    /* The final device records, for the downtime prediction: each one's
     * state and header, and the clock. On a slow link it counts: 64 KiB
     * is 2 ms at 32 MB/s. */
    size_t bytes = 64;
    for (unsigned i = 0; i < m->devices.n; i++) {
        const struct vmstate *vs = m->devices.dev[i].vs;
        bytes += vmstate_size(vs, vs->version) + strlen(vs->name) + 32;
    }
    return bytes;
}

static uint64_t bitmap_count(const uint64_t *bitmap, size_t words)
{
    uint64_t n = 0;
    for (size_t i = 0; i < words; i++)
        n += (uint64_t)__builtin_popcountll(bitmap[i]);
    return n;
}

/* The page codec's figures, for the status (under the lock). */
static void codec_publish(struct migration_status *st, const struct stream *s)
{
    if (s->pages)
        page_encoder_stats(s->pages, &st->codec);
}

static void storage_publish(struct migration *mig, uint64_t remaining)
{
    pthread_mutex_lock(&mig->job.lock);
    blockcopy_stats(mig->storage, &mig->st.storage);
    mig->st.storage_remaining = remaining;
    pthread_mutex_unlock(&mig->job.lock);
}

/* Status publishing: one round's figures, for migrate-status. */
static void publish_round(struct migration *mig, const struct round_stats *rs,
                          const struct page_counters *c, const struct converge_decision *d,
                          const struct page_counters *total, uint64_t wire_total)
{
    pthread_mutex_lock(&mig->job.lock);
    mig->st.round[rs->round - 1] = (struct migration_round){
        rs->round, c->pages, c->zero_pages, rs->wire_bytes, rs->duration_ns, rs->dirty_pages,
        d->dirty_rate, d->bandwidth, d->throttle};
    mig->st.rounds = rs->round;
    mig->st.throttle = d->throttle;
    if (d->throttle > mig->st.throttle_max)
        mig->st.throttle_max = d->throttle;
    mig->st.remaining_pages = rs->dirty_pages;
    mig->st.dirty_rate = d->dirty_rate;
    mig->st.bandwidth = d->bandwidth;
    mig->st.predicted_downtime_ns = (uint64_t)d->predicted_ns;
    mig->st.wire_bytes = wire_total;
    mig->st.pages = total->pages;
    mig->st.zero_pages = total->zero_pages;
    mig->st.converged |= d->converged;
    pthread_mutex_unlock(&mig->job.lock);
}

/* One pre-copy round: the pages in `bitmap`, then (over TCP) a PING the
 * destination answers once it applied them. Fills in what it measured
 * except the pages dirtied meanwhile. */
static int precopy_send_round(struct migration *mig, struct stream *s, bool to_file,
                              uint32_t round, const uint64_t *bitmap, struct page_counters *c,
                              struct round_stats *rs, struct error *err)
{
    uint8_t rb[4];
    put_u32(rb, round);
    if (stream_put(s, REC_ROUND, rb, 4, err) < 0)
        return -1;
    uint64_t t_round = vclock_host_ns(), wire0 = s->bytes_written + s->wlen;
    progress_round_begin(&mig->progress, round,
                         bitmap_count(bitmap, mig->job.m->bus.ram.dirty_words), t_round);
    c->progress = &mig->progress;
    if (!to_file)
        stream_deadline(s, "pre-copy round",
                        stream_copy_deadline_ms(mig->job.m->bus.ram.size +
                                                blockcopy_out_bytes(mig->storage),
                                                mig->p.bandwidth));
    if (mstate_put_pages(s, mig->job.m, bitmap, c, mig->p.bandwidth, &mig->job.cancel, err) < 0)
        return -1;
    if (mig->storage &&
        blockcopy_put_blocks(mig->storage, s, mig->p.bandwidth, &mig->job.cancel, err) < 0)
        return -1;
    if (!to_file) {
        /* Round trip: the round counts as done when the destination has
         * applied it, so the rate is end to end and no backlog is left
         * for the final pause. */
        const uint8_t *body;
        size_t len;
        if (stream_put(s, REC_PING, rb, 4, err) < 0 || stream_flush(s, err) < 0 ||
            stream_expect(s, REC_PONG, &destination, &body, &len, err) < 0)
            return -1;
    } else if (stream_flush(s, err) < 0) {
        return -1;
    }
    uint64_t dur = vclock_host_ns() - t_round;
    *rs = (struct round_stats){round, c->pages, s->bytes_written - wire0, dur ? dur : 1, 0, 0};
    return 0;
}

/* After END the destination loads the last pages and devices and, with
 * --verify, hashes all RAM (a few GB/s): allow for that on large guests. */
static uint64_t ready_deadline_ms(const struct machine *m)
{
    return READY_DEADLINE_MS + (m->bus.ram.size >> 30) * 1000;
}

/* Post-copy's switch, before the pause: the destination drops the pages
 * it will lack while the guest still runs here (POSTCOPY_DISCARD), again
 * for those dirtied meanwhile while they are many (a loaded host makes the
 * round trip long), so the pause leaves it few to drop. `bitmap` gains the
 * pages dirtied meanwhile. */
#define POSTCOPY_DISCARD_ROUNDS 4
#define POSTCOPY_DISCARD_TAIL 256   /* pages: dropping them takes tens of microseconds */
static int postcopy_prepare(struct migration *mig, struct stream *s, uint64_t *bitmap,
                            uint64_t *scratch, struct error *err)
{
    struct machine *m = mig->job.m;
    size_t words = m->bus.ram.dirty_words;
    uint64_t *dropped = calloc(words, 8), *fresh = calloc(words, 8);
    int rc = 0;
    if (!dropped || !fresh) {
        rc = error_set(err, "out of memory for the post-copy bitmaps");
        goto out;
    }
    for (unsigned i = 0; i < POSTCOPY_DISCARD_ROUNDS; i++) {
        uint64_t n = 0;
        for (size_t w = 0; w < words; w++) {
            fresh[w] = bitmap[w] & ~dropped[w];
            n += (uint64_t)__builtin_popcountll(fresh[w]);
        }
        if (i > 0 && n <= POSTCOPY_DISCARD_TAIL)
            break;
        if ((rc = postcopy_send_discard(m, s, fresh, err)) < 0)
            break;
        for (size_t w = 0; w < words; w++)
            dropped[w] |= fresh[w];
        if (dirty_reader_harvest(&mig->reader, scratch, err) < 0) {
            rc = -1;
            break;
        }
        for (size_t w = 0; w < words; w++)
            bitmap[w] |= scratch[w];
    }
out:
    free(dropped);
    free(fresh);
    return rc;
}

/* Live pre-copy: rounds while the guest runs, until the convergence
 * policy says stop. `bitmap` then holds the pages still to send. */
static int precopy_rounds(struct migration *mig, struct stream *s, bool to_file,
                          uint64_t *bitmap, uint64_t *scratch, struct page_counters *total,
                          struct error *err)
{
    struct machine *m = mig->job.m;
    struct ram *ram = &m->bus.ram;
    /* Start the dirty log now: what the guest writes from here on is sent
     * again in a later round. */
    if (dirty_reader_harvest(&mig->reader, scratch, err) < 0)
        return -1;
    set_all(bitmap, ram->npages);
    if (mig->storage && blockcopy_start(mig->storage, err) < 0)
        return -1;
    set_state(mig, MIG_ACTIVE);
    const struct converge_params cp = {mig->p.max_downtime_ns, ram->npages, RAM_PAGE_SIZE,
                                       device_state_bytes(m), mig->p.auto_converge,
                                       mig->p.max_throttle, mig->p.postcopy,
                                       mig->p.postcopy_after};
    struct converge_state cs = {0};
    for (uint32_t round = 1;; round++) {
        struct page_counters c = {0};
        struct round_stats rs;
        if (precopy_send_round(mig, s, to_file, round, bitmap, &c, &rs, err) < 0)
            return -1;
        uint64_t t_harvest = vclock_host_ns();
        int64_t dirty = dirty_reader_harvest(&mig->reader, bitmap, err);
        rs.stop_ns = vclock_host_ns() - t_harvest;
        if (dirty < 0)
            return -1;
        rs.dirty_pages = (uint64_t)dirty;
        if (mig->storage) {
            /* Dirty blocks weigh in the prediction as the pages they fill. */
            uint64_t disk_due = blockcopy_harvest(mig->storage);
            rs.dirty_pages += disk_due / RAM_PAGE_SIZE;
            storage_publish(mig, disk_due);
        }
        total->pages += c.pages;
        total->zero_pages += c.zero_pages;
        total->bytes += c.bytes;
        struct converge_decision d = converge_decide(&cp, &cs, &rs);
        /* Auto-converge: the vCPU loop honours it from its next slice;
         * released when the job ends (migration_thread). */
        throttle_set(&m->throttle, d.throttle);
        publish_round(mig, &rs, &c, &d, total, s->bytes_written);
        pthread_mutex_lock(&mig->job.lock);
        codec_publish(&mig->st, s);
        pthread_mutex_unlock(&mig->job.lock);
        if (d.action == CONVERGE_STOP_AND_COPY)
            return 0;
        if (d.action == CONVERGE_POSTCOPY) {
            /* The destination drops what this round left dirty while the
             * guest still runs here; the pause adds only what it dirties
             * meanwhile. */
            mig->postcopy = true;
            return to_file ? 0 : postcopy_prepare(mig, s, bitmap, scratch, err);
        }
        if (d.action == CONVERGE_FAIL) {
            char why[400];
            converge_explain(&cp, &cs, &d, why, sizeof why);
            return error_set(err, "%s", why);
        }
    }
}

static bool postcopy_allowed(const struct migration_params *p)
{
    return p->postcopy || p->postcopy_after;
}

/* Tells the destination that this migration may switch to post-copy (and
 * whether it will be verified), so that it hashes what it loads. */
static int postcopy_advise(struct stream *s, const struct migration_params *p, struct error *err)
{
    uint8_t b[4];
    put_u32(b, p->verify ? POSTCOPY_FLAG_VERIFY : 0);
    return stream_put(s, REC_POSTCOPY_ADVISE, b, 4, err);
}

static void postcopy_publish(struct migration *mig, enum migration_state state, uint64_t t_pc,
                             const char *error)
{
    pthread_mutex_lock(&mig->job.lock);
    mig->st.state = state;
    mig->st.postcopy_ns = vclock_host_ns() - t_pc;
    mig->st.postcopy_sent = atomic_load(&mig->pc.sent);
    mig->st.postcopy_requested = atomic_load(&mig->pc.requested);
    mig->st.postcopy_pauses = mig->pc.fig.paused;
    mig->st.fault_pages = mig->pc.fig.on_demand;
    mig->st.fault_median_ns = mig->pc.fig.median_ns;
    mig->st.fault_p99_ns = mig->pc.fig.p99_ns;
    mig->st.fault_max_ns = mig->pc.fig.max_ns;
    snprintf(mig->st.error, sizeof mig->st.error, "%s", error ? error : "");
    pthread_cond_broadcast(&mig->job.cond);
    pthread_mutex_unlock(&mig->job.lock);
}

/* After the destination resumed the guest: push and serve pages until it
 * has them all. A broken connection pauses post-copy (this host keeps its
 * pages and never runs the guest: the state is split) until --resume
 * reconnects. Returns -1 only if the VM quit meanwhile. */
static int postcopy_phase(struct migration *mig, struct endpoint *ep, struct stream *s,
                          uint64_t *wire_before)
{
    struct machine *m = mig->job.m;
    struct error err, rs_err;
    uint64_t t_pc = vclock_host_ns();
    if (runstate_transition(m, RUN_STATE_HANDOVER, RUN_STATE_POSTCOPY, &rs_err) < 0)
        fprintf(stderr, "ferry: post-copy: %s\n", rs_err.msg);
    postcopy_publish(mig, MIG_POSTCOPY, t_pc, NULL);
    pthread_mutex_lock(&mig->job.lock);
    snprintf(mig->resume_uri, sizeof mig->resume_uri, "%s", mig->p.uri);
    pthread_mutex_unlock(&mig->job.lock);
    for (;;) {
        if (postcopy_send_run(&mig->pc, s, &mig->job.cancel, &err) == 0)
            break;
        /* Broken: keep everything, wait for --resume. */
        *wire_before += s->bytes_written;
        page_encoder_free(s->pages);
        s->pages = NULL;
        stream_free(s);
        transport_close(ep);
        pthread_mutex_lock(&mig->job.lock);
        mig->fd = -1;
        pthread_mutex_unlock(&mig->job.lock);
        runstate_transition(m, RUN_STATE_POSTCOPY, RUN_STATE_POSTCOPY_PAUSED, &rs_err);
        char msg[512];
        snprintf(msg, sizeof msg, "post-copy interrupted (%s): the VM's state is split between "
                 "this host and the destination, which runs the guest; this host keeps its "
                 "pages and will not run the guest; finish with ferry migrate --resume once "
                 "the destination listens again", err.msg);
        fprintf(stderr, "ferry: %s\n", msg);
        postcopy_publish(mig, MIG_POSTCOPY_PAUSED, t_pc, msg);
        for (;;) {
            pthread_mutex_lock(&mig->job.lock);
            while (!mig->resume_asked && !mig->quit)
                pthread_cond_wait(&mig->job.cond, &mig->job.lock);
            bool quit = mig->quit;
            mig->resume_asked = false;
            char uri[256];
            snprintf(uri, sizeof uri, "%s", mig->resume_uri);
            pthread_mutex_unlock(&mig->job.lock);
            if (quit)
                return -1;
            *ep = (struct endpoint){.fd = -1};
            *s = (struct stream){0};
            if (transport_open_out_tls(uri, &mig->p.tls, ep, &err) == 0 &&
                stream_init(s, ep->fd, &err) == 0 &&
                stream_write_header(s, s->version ? s->version : STREAM_VERSION, &err) == 0 &&
                postcopy_send_reconnect(&mig->pc, s, &err) == 0)
                break;
            *wire_before += s->bytes_written;
            stream_free(s);
            transport_close(ep);
            snprintf(msg, sizeof msg, "post-copy recovery failed (%s): the VM's state is still "
                     "split; this host keeps its pages; try ferry migrate --resume again",
                     err.msg);
            fprintf(stderr, "ferry: %s\n", msg);
            postcopy_publish(mig, MIG_POSTCOPY_PAUSED, t_pc, msg);
        }
        pthread_mutex_lock(&mig->job.lock);
        mig->fd = ep->fd;
        pthread_mutex_unlock(&mig->job.lock);
        runstate_transition(m, RUN_STATE_POSTCOPY_PAUSED, RUN_STATE_POSTCOPY, &rs_err);
        fprintf(stderr, "ferry: post-copy resumed\n");
        postcopy_publish(mig, MIG_POSTCOPY, t_pc, NULL);
    }
    postcopy_publish(mig, MIG_POSTCOPY, t_pc, NULL);
    /* Done: the normal end of a migration (HANDOVER -> MIGRATED). */
    runstate_transition(m, RUN_STATE_POSTCOPY, RUN_STATE_HANDOVER, &rs_err);
    return 0;
}

static void *migration_thread(void *arg)
{
    struct migration *mig = arg;
    struct machine *m = mig->job.m;
    struct ram *ram = &m->bus.ram;
    const struct migration_params *p = &mig->p;
    struct error err = {{0}}, rs_err;
    struct endpoint ep = {.fd = -1};
    struct stream s = {0};
    bool paused = false, handed_over = false;
    uint64_t t0 = vclock_host_ns(), t_pause = 0;
    uint32_t version = p->stream_version ? p->stream_version : STREAM_VERSION;
    uint64_t *bitmap = calloc(ram->dirty_words, 8), *scratch = calloc(ram->dirty_words, 8);
    struct page_counters total = {0};

    if (!bitmap || !scratch) {
        error_set(&err, "out of memory for the dirty bitmaps");
        goto fail;
    }
    /* The job's reader of the dirty log, dropped before the job finishes
     * (so the next job finds it free). */
    if (dirty_reader_open(m, &mig->reader, job_kind_name(mig->job.kind), &err) < 0)
        goto fail;
    if (transport_open_out_tls(p->uri, &p->tls, &ep, &err) < 0 ||
        stream_init(&s, ep.fd, &err) < 0)
        goto fail;
    if (p->compress != COMPRESS_NONE &&
        !(s.pages = page_encoder_new(p->compress, ram->npages, p->bandwidth, &err)))
        goto fail;
    if (p->copy_storage && blockcopy_out_open(&mig->storage, m, &err) < 0)
        goto fail;
    pthread_mutex_lock(&mig->job.lock);
    mig->fd = ep.fd;
    snprintf(mig->st.channel, sizeof mig->st.channel, "%s", transport_describe(&ep));
    pthread_mutex_unlock(&mig->job.lock);
    s.timeout_ms = HANDSHAKE_TIMEOUT_MS;
    /* Sent at once: the destination allows the handshake 10 s, and a
     * bandwidth-paced first round may fill the buffer slowly. */
    if (stream_write_header(&s, version, &err) < 0 ||
        mstate_put_machine_flags(&s, m, mig->storage ? MDESC_STORAGE : 0, &err) < 0 ||
        (mig->storage && blockcopy_put_storage(mig->storage, &s, &err) < 0) ||
        (p->live && !ep.is_file && postcopy_allowed(p) && postcopy_advise(&s, p, &err) < 0) ||
        (!ep.is_file && stream_flush(&s, &err) < 0))
        goto fail;

    if (p->live && precopy_rounds(mig, &s, ep.is_file, bitmap, scratch, &total, &err) < 0)
        goto fail;

    /* Stop and copy. */
    set_state(mig, MIG_COMPLETING);
    t_pause = vclock_host_ns();
    pthread_mutex_lock(&mig->job.lock);
    mig->st.paused_at_ns = t_pause;
    pthread_mutex_unlock(&mig->job.lock);
    if (!ep.is_file)
        stream_deadline(&s, "final copy",
                        stream_copy_deadline_ms(ram->size + blockcopy_out_bytes(mig->storage), 0));
    /* The job's own hold: an operator's pause or resume meanwhile neither
     * runs the guest during the copy nor is undone by the job. */
    if (runstate_hold(m, mig->hold, &err) < 0) {
        error_prefix(&err, "cannot pause for the final copy");
        goto fail;
    }
    paused = true;
    /* Parked: the throttle has done its work. */
    throttle_set(&m->throttle, 0);
    if (runstate_transition(m, RUN_STATE_PAUSED, RUN_STATE_COMPLETING, &err) < 0)
        goto fail;
    migration_trace("paused", t_pause);
    if (p->live) {
        if (dirty_reader_harvest(&mig->reader, scratch, &err) < 0)
            goto fail;
        for (size_t i = 0; i < ram->dirty_words; i++)
            bitmap[i] |= scratch[i];
        migration_trace("dirty log synced", t_pause);
        if (mig->storage)
            blockcopy_harvest(mig->storage);
    } else {
        set_all(bitmap, ram->npages);
        if (mig->storage && blockcopy_start(mig->storage, &err) < 0)
            goto fail;
    }
    struct page_counters c = {0};
    if (mig->postcopy) {
        /* No pages in the pause: the destination fetches them later. The
         * disk blocks first: the switch record ends the stream's pages. */
        if (mig->storage &&
            blockcopy_put_blocks(mig->storage, &s, 0, &mig->job.cancel, &err) < 0)
            goto fail;
        if (postcopy_send_switch(&mig->pc, m, &s, bitmap, p->bandwidth, p->verify, &err) < 0)
            goto fail;
        pthread_mutex_lock(&mig->job.lock);
        mig->st.postcopy = true;
        mig->st.postcopy_pages = mig->pc.total;
        pthread_mutex_unlock(&mig->job.lock);
    } else if (mstate_put_pages(&s, m, bitmap, &c, 0, &mig->job.cancel, &err) < 0) {
        goto fail;
    }
    /* The devices are quiesced: every write the guest made is logged. */
    if (mig->storage && !mig->postcopy && blockcopy_put_blocks(mig->storage, &s, 0, &mig->job.cancel, &err) < 0)
        goto fail;
    migration_trace("pages queued", t_pause);
    if (mstate_put_devices(&s, m, version, &err) < 0)
        goto fail;
    migration_trace("devices queued", t_pause);
    total.pages += c.pages;
    total.zero_pages += c.zero_pages;
    if (p->verify && !mig->postcopy) { /* post-copy's comes with its END */
        uint8_t hb[8];
        uint64_t hash;
        if (mstate_hash(m, &hash, &err) < 0)
            goto fail;
        put_u64(hb, hash);
        if (stream_put(&s, REC_VERIFY, hb, 8, &err) < 0)
            goto fail;
        if (mig->storage && blockcopy_put_verify(mig->storage, &s, &err) < 0)
            goto fail;
    }
    if (stream_put(&s, REC_END, NULL, 0, &err) < 0 || stream_flush(&s, &err) < 0)
        goto fail;
    migration_trace("final state sent", t_pause);
    if (atomic_load(&mig->job.cancel)) {
        error_set(&err, "cancelled");
        goto fail;
    }
    if (transport_commit(&ep, &err) < 0) /* a save file: complete, put it in place */
        goto fail;

    uint64_t t_end_sent = vclock_host_ns(), downtime = 0;
    if (!ep.is_file) {
        struct handover h = {.peer = destination, .ready_type = REC_READY};
        stream_spin(&s, FINAL_SPIN_NS);
        stream_deadline(&s, "final exchange (READY after END)", ready_deadline_ms(m));
        if (handover_wait_ready(&s, &h, &err) < 0)
            goto fail;
        /* Commit point: the destination holds the complete state. From
         * here the guest must never run here again unless we know the
         * destination will not run it. */
        migration_trace("READY", t_pause);
        pthread_mutex_lock(&mig->job.lock);
        if (!atomic_load(&mig->job.cancel))
            mig->handed_over = handed_over = true;
        pthread_mutex_unlock(&mig->job.lock);
        if (handed_over && runstate_transition(m, RUN_STATE_COMPLETING, RUN_STATE_HANDOVER,
                                               &err) < 0) {
            handed_over = false; /* cannot happen: nobody else leaves COMPLETING */
            goto fail;
        }
        if (!handed_over) {
            /* Cancelled before GO: the destination never runs the guest. */
            error_set(&err, "cancelled");
            goto fail;
        }
        /* No stream_spin for RUNNING: the destination's vCPU starts to
         * run the guest as it sends it, and a thread yielding to a busy
         * one can wait out its whole time slice. */
        stream_deadline(&s, "handover (RUNNING after GO)", RUNNING_DEADLINE_MS);
        if (handover_go(&s, &h, &err) < 0)
            goto fail;
        /* The guest's downtime ends when the destination resumes it, not
         * when we hear so: pause to GO sent (our clock), GO's one-way trip
         * (half the END->READY round trip less the destination's work,
         * both measured), and GO to resumed (the destination's clock). An
         * older destination reports no durations: then it is pause to
         * RUNNING heard. */
        uint64_t rtt = h.t_ready - t_end_sent;
        rtt = rtt > h.ready_took_ns ? rtt - h.ready_took_ns : 0;
        if (h.ready_took_ns && h.running_took_ns)
            downtime = h.t_go - t_pause + rtt / 2 + h.running_took_ns;
    }
    uint64_t t_end = vclock_host_ns(), wire_before = 0;
    migration_trace("RUNNING", t_pause);
    if (mig->postcopy) {
        /* The downtime ended when the destination resumed: publish it now;
         * the pages follow while the guest runs there. */
        pthread_mutex_lock(&mig->job.lock);
        mig->st.downtime_ns = downtime && downtime <= t_end - t_pause ? downtime : t_end - t_pause;
        mig->st.handover_ns = t_end - t_pause;
        pthread_mutex_unlock(&mig->job.lock);
        if (postcopy_phase(mig, &ep, &s, &wire_before) < 0) {
            /* Abandoned (the VM quit while paused): its state stays split. */
            free(bitmap);
            free(scratch);
            dirty_reader_close(&mig->reader);
            job_finish(&mig->job);
            return NULL;
        }
    }
    /* Hearing RUNNING bounds it from above (a late wakeup for READY can
     * make half the round trip look longer than GO's trip was). */
    const char *bound = ep.is_file ? NULL : handover_bound_reason(downtime, t_end - t_pause);
    if (bound)
        downtime = t_end - t_pause;
    migration_trace_flush();
    pthread_mutex_lock(&mig->job.lock);
    mig->st.downtime_ns = ep.is_file ? 0 : downtime;
    mig->st.handover_ns = ep.is_file ? 0 : t_end - t_pause;
    snprintf(mig->st.downtime_bound, sizeof mig->st.downtime_bound, "%s", bound ? bound : "");
    mig->st.total_ns = vclock_host_ns() - t0;
    mig->st.wire_bytes = wire_before + s.bytes_written;
    codec_publish(&mig->st, &s);
    mig->st.pages = total.pages + mig->st.postcopy_sent;
    mig->st.zero_pages = total.zero_pages;
    mig->st.remaining_pages = 0;
    mig->st.verified = p->verify && (!mig->postcopy || mig->pc.fig.verified == 1);
    if (p->verify && mig->postcopy && mig->pc.fig.verified != 1)
        snprintf(mig->st.error, sizeof mig->st.error, "post-copy verification failed on the "
                 "destination: its state hash differs from this host's");
    mig->st.state = MIG_COMPLETED;
    blockcopy_stats(mig->storage, &mig->st.storage);
    mig->st.storage_remaining = 0;
    pthread_mutex_unlock(&mig->job.lock);
    blockcopy_out_free(mig->storage);
    mig->storage = NULL;
    page_encoder_free(s.pages);
    s.pages = NULL;
    stream_free(&s);
    transport_close(&ep);
    free(bitmap);
    free(scratch);
    postcopy_send_free(&mig->pc);
    dirty_reader_close(&mig->reader);
    if (ep.is_file && p->keep_running) {
        if (runstate_transition(m, RUN_STATE_COMPLETING, RUN_STATE_PAUSED, &rs_err) < 0 ||
            runstate_release(m, mig->hold, &rs_err) < 0)
            fprintf(stderr, "ferry: save: %s\n", rs_err.msg);
    } else {
        /* The guest lives on elsewhere (or in the file): end this VM. */
        runstate_transition(m, ep.is_file ? RUN_STATE_COMPLETING : RUN_STATE_HANDOVER,
                            RUN_STATE_MIGRATED, &rs_err);
        machine_request_stop(m, MACHINE_MIGRATED, 0);
        machine_resume(m); /* wakes the parked loop, which sees the stop and ends */
    }
    job_finish(&mig->job);
    return NULL;

fail:
    /* The guest runs on here at full speed. */
    throttle_set(&m->throttle, 0);
    pthread_mutex_lock(&mig->job.lock);
    mig->st.state = atomic_load(&mig->job.cancel) ? MIG_CANCELLED : MIG_FAILED;
    blockcopy_stats(mig->storage, &mig->st.storage);
    mig->st.total_ns = vclock_host_ns() - t0;
    mig->st.wire_bytes = s.bytes_written;
    codec_publish(&mig->st, &s);
    if (handed_over)
        snprintf(mig->st.error, sizeof mig->st.error,
                 "handover uncertain: the destination has the final state but did not confirm "
                 "it runs the guest (%s); the guest stays paused here: resume it only if the "
                 "destination is not running it", err.msg);
    else
        snprintf(mig->st.error, sizeof mig->st.error, "%s; the guest keeps running here",
                 err.msg);
    pthread_mutex_unlock(&mig->job.lock);
    if (ep.fd >= 0) {
        /* Tell the destination why, if it still listens. */
        struct error ignored;
        s.timeout_ms = 100;
        if (s.wbuf) {
            s.wlen = 0;
            stream_put(&s, REC_ERROR, err.msg, strlen(err.msg), &ignored);
            stream_flush(&s, &ignored);
        }
    }
    page_encoder_free(s.pages);
    s.pages = NULL;
    stream_free(&s);
    transport_close(&ep);
    free(bitmap);
    free(scratch);
    dirty_reader_close(&mig->reader);
    blockcopy_out_free(mig->storage);
    mig->storage = NULL;
    if (paused && handed_over) {
        /* Only someone who checked the destination may run it here. */
        runstate_hand_to_operator(m, mig->hold, RUN_STATE_HANDOVER, &rs_err);
    } else if (paused) {
        /* COMPLETING -> PAUSED may fail when the pause itself failed
         * before it: then the state never left PAUSED. */
        runstate_transition(m, RUN_STATE_COMPLETING, RUN_STATE_PAUSED, &rs_err);
        if (runstate_release(m, mig->hold, &rs_err) < 0)
            fprintf(stderr, "ferry: migration: %s\n", rs_err.msg);
    }
    job_finish(&mig->job);
    return NULL;
}

static void migration_stop_job(struct job *j)
{
    struct migration *mig = (struct migration *)j;
    pthread_mutex_lock(&mig->job.lock);
    if (!mig->handed_over) {
        atomic_store(&mig->job.cancel, true);
        if (mig->fd >= 0)
            shutdown(mig->fd, SHUT_RDWR);
    }
    /* A post-copy waiting for --resume gives up (its state stays split). */
    mig->quit = true;
    pthread_cond_broadcast(&mig->job.cond);
    pthread_mutex_unlock(&mig->job.lock);
}

static void migration_destroy_job(struct job *j)
{
    progress_destroy(&((struct migration *)j)->progress);
    free(j);
}

static const struct job_ops migration_job_ops = {
    .stop = migration_stop_job,
    .destroy = migration_destroy_job,
};

int migration_start(struct machine *m, const struct migration_params *p, struct error *err)
{
    if (transport_check_uri(p->uri, true, err) < 0)
        return -1;
    if (strncmp(p->uri, "tls:", 4) == 0 &&
        tls_config_check(tls_config_empty(&p->tls) ? tls_get_default() : &p->tls, err) < 0)
        return -1;
    if (p->stream_version && (p->stream_version < STREAM_MIN_VERSION ||
                              p->stream_version > STREAM_VERSION))
        return error_set(err, "stream version %u is not supported", p->stream_version);
    bool save = strncmp(p->uri, "file:", 5) == 0;
    if (save && p->copy_storage)
        return error_set(err, "--copy-storage is for a migration to another host, not a save");
    if (job_check_idle(m, save ? JOB_SAVE : JOB_MIGRATE, err) < 0)
        return -1;
    enum run_state rs = runstate_get(m);
    if (rs == RUN_STATE_PAUSED)
        return error_set(err, "the guest is paused: resume it first");
    if (rs != RUN_STATE_RUNNING)
        return error_set(err, "the VM is %s: nothing to migrate", runstate_name(rs));
    struct migration *mig = calloc(1, sizeof *mig);
    if (!mig)
        return error_set(err, "out of memory");
    job_init(&mig->job, save ? JOB_SAVE : JOB_MIGRATE, &migration_job_ops, m);
    mig->p = *p;
    mig->fd = -1;
    mig->hold = save ? HOLD_SAVE : HOLD_MIGRATION;
    mig->st.state = MIG_SETUP;
    mig->st.live = p->live;
    mig->st.ram_pages = m->bus.ram.npages;
    mig->st.max_downtime_ns = p->max_downtime_ns;
    mig->st.auto_converge = p->auto_converge;
    progress_init(&mig->progress);
    mig->st.compress = p->compress;
    mig->st.copy_storage = p->copy_storage;
    snprintf(mig->st.uri, sizeof mig->st.uri, "%s", p->uri);
    /* The job slot refuses a second job. */
    if (job_start(m, &mig->job, migration_thread, err) < 0) {
        job_put(&mig->job);
        return -1;
    }
    return 0;
}

struct job *migration_job(struct machine *m)
{
    return job_get(m, JOB_FAMILY_MIGRATION);
}

void migration_job_status(struct job *j, struct migration_status *out)
{
    struct migration *mig = (struct migration *)j;
    pthread_mutex_lock(&mig->job.lock);
    *out = mig->st;
    pthread_mutex_unlock(&mig->job.lock);
    struct progress_view v;
    progress_snapshot(&mig->progress, vclock_host_ns(), &v);
    out->progress_round = v.round;
    out->round_pages = v.round_pages;
    out->round_sent = v.round_sent;
    out->rate = v.rate;
    out->round_eta_ns = v.eta_ns;
    if (out->state == MIG_POSTCOPY) {
        out->postcopy_sent = atomic_load(&mig->pc.sent);
        out->postcopy_requested = atomic_load(&mig->pc.requested);
        out->postcopy_ns = vclock_host_ns() - (out->paused_at_ns + out->handover_ns);
    }
}

int migration_resume_postcopy(struct machine *m, const char *uri, struct error *err)
{
    struct job *j = job_get_running(m);
    if (!j || job_family_of(j->kind) != JOB_FAMILY_MIGRATION) {
        if (j)
            job_put(j);
        return error_set(err, "no post-copy migration is paused here");
    }
    struct migration *mig = (struct migration *)j;
    int rc = 0;
    pthread_mutex_lock(&mig->job.lock);
    if (mig->st.state != MIG_POSTCOPY_PAUSED) {
        rc = error_set(err, "no post-copy migration is paused here (the migration is %s)",
                       mig->st.state == MIG_POSTCOPY ? "in post-copy, connected" : "not in post-copy");
    } else {
        if (uri && *uri)
            snprintf(mig->resume_uri, sizeof mig->resume_uri, "%s", uri);
        mig->resume_asked = true;
        /* The CLI polls from here: it must not see the old break's state. */
        mig->st.state = MIG_POSTCOPY;
        mig->st.error[0] = 0;
        pthread_cond_broadcast(&mig->job.cond);
    }
    pthread_mutex_unlock(&mig->job.lock);
    job_put(j);
    return rc;
}

void migration_get_status(struct machine *m, struct migration_status *out)
{
    memset(out, 0, sizeof *out);
    struct job *j = migration_job(m);
    if (!j)
        return;
    migration_job_status(j, out);
    job_put(j);
}

void migration_cancel(struct machine *m)
{
    struct job *j = job_get_running(m);
    if (!j)
        return;
    if (job_family_of(j->kind) == JOB_FAMILY_MIGRATION) {
        struct migration *mig = (struct migration *)j;
        pthread_mutex_lock(&mig->job.lock);
        bool running = mig->st.state == MIG_SETUP || mig->st.state == MIG_ACTIVE ||
                       mig->st.state == MIG_COMPLETING;
        if (running && !mig->handed_over) {
            atomic_store(&mig->job.cancel, true);
            /* Unblock a thread stuck in send or receive. */
            if (mig->fd >= 0)
                shutdown(mig->fd, SHUT_RDWR);
        }
        pthread_mutex_unlock(&mig->job.lock);
    }
    job_put(j);
}

void migration_join(struct machine *m)
{
    struct job *j = job_get_running(m);
    if (!j)
        return;
    if (job_family_of(j->kind) == JOB_FAMILY_MIGRATION)
        job_wait(j);
    job_put(j);
}
