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

#include "base/escape.h"
#include "machine/machine.h"
#include "migrate/migration.h"
#include "migrate/mstate.h"
#include "migrate/vmstate.h"
#include "transport/transport.h"

/* Pre-copy gives up converging after this many rounds, or after sending
 * this many times the guest's RAM (the Xen anchors' limits). */
#define MAX_ROUNDS 30
#define MAX_RAM_MULTIPLE 3
#define HANDSHAKE_TIMEOUT_MS 30000
/* Total deadlines per phase, whatever the destination sends meanwhile
 * (heartbeats included): a round's pages and PONG (stream_copy_deadline_ms);
 * READY after END (the guest is paused here: past this it resumes here);
 * RUNNING after GO. */
#define READY_DEADLINE_MS 5000
#define RUNNING_DEADLINE_MS 30000
#define DOWNTIME_SAFETY 0.5
/* Once the target is met: at most this many more rounds, and none for a
 * dirty set this small (64 KiB: tens of microseconds on a LAN). */
#define MAX_EXTRA_ROUNDS 3
#define TAIL_PAGES 16

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

struct migration {
    pthread_t thread;
    struct machine *m;
    struct migration_params p;
    pthread_mutex_t lock;
    struct migration_status st;  /* under lock */
    volatile int cancel;
    int fd;                      /* the connection, for cancel */
    bool handed_over;            /* READY received: cancel no longer possible */
    bool joined;
};

static void set_state(struct migration *mig, enum migration_state state)
{
    pthread_mutex_lock(&mig->lock);
    mig->st.state = state;
    pthread_mutex_unlock(&mig->lock);
}

static void set_all(uint64_t *bitmap, uint64_t npages)
{
    size_t words = (npages + 63) / 64;
    memset(bitmap, 0xff, words * 8);
    if (npages % 64)
        bitmap[words - 1] = (1ull << (npages % 64)) - 1;
}

/* Waits for one return-path record; turns ERROR into a message. */
/* Waits for a record of type want; *ns gets its u64 body (a duration the
 * destination measured), or 0 when it has none (an older destination). */
static int wait_reply(struct stream *s, uint32_t want, uint64_t *ns, struct error *err)
{
    for (;;) {
        uint32_t type;
        const uint8_t *body;
        size_t len;
        if (stream_get(s, &type, &body, &len, err) < 0)
            return error_prefix(err, "waiting for the destination");
        if (type == want) {
            if (ns)
                *ns = len >= 8 ? get_u64(body) : 0;
            return 0;
        }
        if (type == REC_ERROR)
            return error_set(err, "destination refused the stream: %s",
                             peer_text(body, len).s);
        if (!(type & REC_OPTIONAL))
            return error_set(err, "destination sent unexpected record 0x%x", type);
    }
}

/* After END the destination loads the last pages and devices and, with
 * --verify, hashes all RAM (a few GB/s): allow for that on large guests. */
static uint64_t ready_deadline_ms(const struct machine *m)
{
    return READY_DEADLINE_MS + (m->bus.ram.size >> 30) * 1000;
}

static size_t device_state_bytes(struct machine *m)
{
    /* A close upper bound of the final device records, for the downtime
     * prediction; it is small next to the pages. */
    return 64 * 1024 + (size_t)m->nharts * 1024;
}

static void *migration_thread(void *arg)
{
    struct migration *mig = arg;
    struct machine *m = mig->m;
    struct ram *ram = &m->bus.ram;
    const struct migration_params *p = &mig->p;
    struct error err = {{0}};
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
    if (transport_open_out(p->uri, &ep, &err) < 0 || stream_init(&s, ep.fd, &err) < 0)
        goto fail;
    pthread_mutex_lock(&mig->lock);
    mig->fd = ep.fd;
    pthread_mutex_unlock(&mig->lock);
    s.timeout_ms = HANDSHAKE_TIMEOUT_MS;
    /* Sent at once: the destination allows the handshake 10 s, and a
     * bandwidth-paced first round may fill the buffer slowly. */
    if (stream_write_header(&s, version, &err) < 0 || mstate_put_machine(&s, m, &err) < 0 ||
        (!ep.is_file && stream_flush(&s, &err) < 0))
        goto fail;

    if (p->live) {
        /* Start the dirty log now: what the guest writes from here on is
         * sent again in a later round. */
        if (machine_dirty_sync_remote(m, scratch) < 0) {
            error_set(&err, "the machine stopped");
            goto fail;
        }
        set_all(bitmap, ram->npages);
        set_state(mig, MIG_ACTIVE);
        uint64_t prev_dirty = UINT64_MAX;
        unsigned stalled = 0, extra = 0;
        for (uint32_t round = 1;; round++) {
            uint8_t rb[4];
            put_u32(rb, round);
            if (stream_put(&s, REC_ROUND, rb, 4, &err) < 0)
                goto fail;
            struct page_counters c = {0};
            uint64_t t_round = vclock_host_ns(), wire0 = s.bytes_written + s.wlen;
            if (!ep.is_file)
                stream_deadline(&s, "pre-copy round",
                                stream_copy_deadline_ms(ram->size, p->bandwidth));
            if (mstate_put_pages(&s, m, bitmap, &c, p->bandwidth, &mig->cancel, &err) < 0)
                goto fail;
            if (!ep.is_file) {
                /* Round trip: the round counts as done when the destination
                 * has applied it, so the rate below is end to end and no
                 * backlog is left for the final pause. */
                if (stream_put(&s, REC_PING, rb, 4, &err) < 0 || stream_flush(&s, &err) < 0 ||
                    wait_reply(&s, REC_PONG, NULL, &err) < 0)
                    goto fail;
            } else if (stream_flush(&s, &err) < 0) {
                goto fail;
            }
            uint64_t dur = vclock_host_ns() - t_round;
            if (dur == 0)
                dur = 1;
            int64_t dirty = machine_dirty_sync_remote(m, bitmap);
            if (dirty < 0) {
                error_set(&err, "the machine stopped");
                goto fail;
            }
            total.pages += c.pages;
            total.zero_pages += c.zero_pages;
            total.bytes += c.bytes;
            double bw = (double)(s.bytes_written - wire0) * 1e9 / (double)dur;
            double rate = (double)dirty * 1e9 / (double)dur;
            /* Predicted pause: the pages left plus device state at the
             * bandwidth just measured. */
            double predicted = bw > 0 ? ((double)dirty * RAM_PAGE_SIZE +
                                         (double)device_state_bytes(m)) / bw * 1e9 : 1e18;
            pthread_mutex_lock(&mig->lock);
            if (round <= MIG_MAX_ROUNDS) {
                struct migration_round *r = &mig->st.round[round - 1];
                *r = (struct migration_round){round, c.pages, c.zero_pages,
                                              s.bytes_written - wire0, dur, (uint64_t)dirty,
                                              rate, bw};
                mig->st.rounds = round;
            }
            mig->st.remaining_pages = (uint64_t)dirty;
            mig->st.dirty_rate = rate;
            mig->st.bandwidth = bw;
            mig->st.predicted_downtime_ns = (uint64_t)predicted;
            mig->st.wire_bytes = s.bytes_written;
            mig->st.pages = total.pages;
            mig->st.zero_pages = total.zero_pages;
            pthread_mutex_unlock(&mig->lock);
            /* Half the target: the send rate measured here runs ahead of
             * what the destination has applied (socket buffers), and the
             * stop itself costs a pause and a round trip. */
            if (predicted <= (double)p->max_downtime_ns * DOWNTIME_SAFETY) {
                pthread_mutex_lock(&mig->lock);
                mig->st.converged = true;
                pthread_mutex_unlock(&mig->lock);
                /* Target met. Another round still pays while the dirty set
                 * shrinks fast (a round over a quarter of the pages leaves
                 * about a quarter as many behind) and is not already a
                 * tail: it costs a little total time, the pause less. */
                bool shrinking = (uint64_t)dirty * 4 <= c.pages;
                if ((uint64_t)dirty <= TAIL_PAGES || !shrinking || extra >= MAX_EXTRA_ROUNDS ||
                    round >= MAX_ROUNDS || round >= MIG_MAX_ROUNDS)
                    break;
                extra++;
                prev_dirty = (uint64_t)dirty;
                continue;
            }
            /* Not converging: the dirty set stopped shrinking, or the
             * limits of rounds and volume were reached. */
            stalled = (uint64_t)dirty * 10 >= prev_dirty * 9 ? stalled + 1 : 0;
            prev_dirty = (uint64_t)dirty;
            if (round >= MAX_ROUNDS || total.pages >= MAX_RAM_MULTIPLE * ram->npages ||
                (round >= 3 && stalled >= 2) || round >= MIG_MAX_ROUNDS)
                break;
        }
    }

    /* Stop and copy. */
    set_state(mig, MIG_COMPLETING);
    t_pause = vclock_host_ns();
    pthread_mutex_lock(&mig->lock);
    mig->st.paused_at_ns = t_pause;
    pthread_mutex_unlock(&mig->lock);
    if (!ep.is_file)
        stream_deadline(&s, "final copy", stream_copy_deadline_ms(ram->size, 0));
    if (machine_pause(m) < 0) {
        error_set(&err, "the machine stopped before the final copy");
        goto fail;
    }
    paused = true;
    migration_trace("paused", t_pause);
    if (p->live) {
        if (machine_dirty_sync_remote(m, scratch) < 0) {
            error_set(&err, "dirty log sync failed");
            goto fail;
        }
        for (size_t i = 0; i < ram->dirty_words; i++)
            bitmap[i] |= scratch[i];
        migration_trace("dirty log synced", t_pause);
    } else {
        set_all(bitmap, ram->npages);
    }
    struct page_counters c = {0};
    if (mstate_put_pages(&s, m, bitmap, &c, 0, &mig->cancel, &err) < 0)
        goto fail;
    migration_trace("pages queued", t_pause);
    if (mstate_put_devices(&s, m, version, &err) < 0)
        goto fail;
    migration_trace("devices queued", t_pause);
    total.pages += c.pages;
    total.zero_pages += c.zero_pages;
    if (p->verify) {
        uint8_t hb[8];
        put_u64(hb, mstate_hash(m));
        if (stream_put(&s, REC_VERIFY, hb, 8, &err) < 0)
            goto fail;
    }
    if (stream_put(&s, REC_END, NULL, 0, &err) < 0 || stream_flush(&s, &err) < 0)
        goto fail;
    migration_trace("final state sent", t_pause);
    if (mig->cancel) {
        error_set(&err, "cancelled");
        goto fail;
    }
    if (transport_commit(&ep, &err) < 0) /* a save file: complete, put it in place */
        goto fail;

    uint64_t t_end_sent = vclock_host_ns(), downtime = 0;
    if (!ep.is_file) {
        uint64_t ready_took, running_took;
        stream_spin(&s, FINAL_SPIN_NS);
        stream_deadline(&s, "final exchange (READY after END)", ready_deadline_ms(m));
        if (wait_reply(&s, REC_READY, &ready_took, &err) < 0)
            goto fail;
        uint64_t t_ready = vclock_host_ns();
        /* Commit point: the destination holds the complete state. From
         * here the guest must never run here again unless we know the
         * destination will not run it. */
        migration_trace("READY", t_pause);
        pthread_mutex_lock(&mig->lock);
        if (!mig->cancel)
            mig->handed_over = handed_over = true;
        pthread_mutex_unlock(&mig->lock);
        if (!handed_over) {
            /* Cancelled before GO: the destination never runs the guest. */
            error_set(&err, "cancelled");
            goto fail;
        }
        /* No stream_spin for RUNNING: the destination's vCPU starts to
         * run the guest as it sends it, and a thread yielding to a busy
         * one can wait out its whole time slice. */
        if (stream_put(&s, REC_GO, NULL, 0, &err) < 0 || stream_flush(&s, &err) < 0)
            goto fail;
        uint64_t t_go = vclock_host_ns();
        stream_deadline(&s, "handover (RUNNING after GO)", RUNNING_DEADLINE_MS);
        if (wait_reply(&s, REC_RUNNING, &running_took, &err) < 0)
            goto fail;
        /* The guest's downtime ends when the destination resumes it, not
         * when we hear so: pause to GO sent (our clock), GO's one-way trip
         * (half the END->READY round trip less the destination's work,
         * both measured), and GO to resumed (the destination's clock). An
         * older destination reports no durations: then it is pause to
         * RUNNING heard. */
        uint64_t rtt = t_ready - t_end_sent;
        rtt = rtt > ready_took ? rtt - ready_took : 0;
        if (ready_took && running_took)
            downtime = t_go - t_pause + rtt / 2 + running_took;
    }
    uint64_t t_end = vclock_host_ns();
    /* Hearing RUNNING bounds it from above (a late wakeup for READY can
     * make half the round trip look longer than GO's trip was). */
    if (!downtime || downtime > t_end - t_pause)
        downtime = t_end - t_pause;
    migration_trace("RUNNING", t_pause);
    migration_trace_flush();
    pthread_mutex_lock(&mig->lock);
    mig->st.downtime_ns = ep.is_file ? 0 : downtime;
    mig->st.handover_ns = ep.is_file ? 0 : t_end - t_pause;
    mig->st.total_ns = t_end - t0;
    mig->st.wire_bytes = s.bytes_written;
    mig->st.pages = total.pages;
    mig->st.zero_pages = total.zero_pages;
    mig->st.remaining_pages = 0;
    mig->st.verified = p->verify;
    mig->st.state = MIG_COMPLETED;
    pthread_mutex_unlock(&mig->lock);
    stream_free(&s);
    transport_close(&ep);
    free(bitmap);
    free(scratch);
    if (ep.is_file && p->keep_running) {
        machine_resume(m);
    } else {
        /* The guest lives on elsewhere (or in the file): end this VM. */
        machine_request_stop(m, MACHINE_MIGRATED, 0);
        machine_resume(m);
    }
    return NULL;

fail:
    pthread_mutex_lock(&mig->lock);
    mig->st.state = mig->cancel ? MIG_CANCELLED : MIG_FAILED;
    mig->st.total_ns = vclock_host_ns() - t0;
    mig->st.wire_bytes = s.bytes_written;
    if (handed_over)
        snprintf(mig->st.error, sizeof mig->st.error,
                 "handover uncertain: the destination has the final state but did not confirm "
                 "it runs the guest (%s); the guest stays paused here: resume it only if the "
                 "destination is not running it", err.msg);
    else
        snprintf(mig->st.error, sizeof mig->st.error, "%s; the guest keeps running here",
                 err.msg);
    pthread_mutex_unlock(&mig->lock);
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
    stream_free(&s);
    transport_close(&ep);
    free(bitmap);
    free(scratch);
    if (paused && !handed_over)
        machine_resume(m);
    return NULL;
}

int migration_start(struct machine *m, const struct migration_params *p, struct error *err)
{
    if (m->migration) {
        pthread_mutex_lock(&m->migration->lock);
        enum migration_state st = m->migration->st.state;
        pthread_mutex_unlock(&m->migration->lock);
        if (st == MIG_SETUP || st == MIG_ACTIVE || st == MIG_COMPLETING)
            return error_set(err, "a migration is already running");
        migration_join(m);
        pthread_mutex_destroy(&m->migration->lock);
        free(m->migration);
        m->migration = NULL;
    }
    if (strncmp(p->uri, "tcp:", 4) != 0 && strncmp(p->uri, "file:", 5) != 0)
        return error_set(err, "destination '%s' must be tcp:HOST:PORT or file:PATH", p->uri);
    if (p->stream_version && (p->stream_version < STREAM_MIN_VERSION ||
                              p->stream_version > STREAM_VERSION))
        return error_set(err, "stream version %u is not supported", p->stream_version);
    if (m->paused)
        return error_set(err, "the guest is paused: resume it first");
    struct migration *mig = calloc(1, sizeof *mig);
    if (!mig)
        return error_set(err, "out of memory");
    mig->m = m;
    mig->p = *p;
    mig->fd = -1;
    pthread_mutex_init(&mig->lock, NULL);
    mig->st.state = MIG_SETUP;
    mig->st.live = p->live;
    mig->st.ram_pages = m->bus.ram.npages;
    mig->st.max_downtime_ns = p->max_downtime_ns;
    snprintf(mig->st.uri, sizeof mig->st.uri, "%s", p->uri);
    if (pthread_create(&mig->thread, NULL, migration_thread, mig) != 0) {
        free(mig);
        return error_set(err, "cannot start the migration thread");
    }
    m->migration = mig;
    return 0;
}

void migration_get_status(struct machine *m, struct migration_status *out)
{
    memset(out, 0, sizeof *out);
    struct migration *mig = m->migration;
    if (!mig)
        return;
    pthread_mutex_lock(&mig->lock);
    *out = mig->st;
    pthread_mutex_unlock(&mig->lock);
}

void migration_cancel(struct machine *m)
{
    struct migration *mig = m->migration;
    if (!mig)
        return;
    pthread_mutex_lock(&mig->lock);
    bool running = mig->st.state == MIG_SETUP || mig->st.state == MIG_ACTIVE ||
                   mig->st.state == MIG_COMPLETING;
    if (running && !mig->handed_over) {
        mig->cancel = 1;
        /* Unblock a thread stuck in send or receive. */
        if (mig->fd >= 0)
            shutdown(mig->fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&mig->lock);
}

void migration_join(struct machine *m)
{
    struct migration *mig = m->migration;
    if (mig && !mig->joined) {
        pthread_join(mig->thread, NULL);
        mig->joined = true;
    }
}

void migration_free(struct machine *m)
{
    struct migration *mig = m->migration;
    if (!mig)
        return;
    migration_join(m);
    pthread_mutex_destroy(&mig->lock);
    free(mig);
    m->migration = NULL;
}
