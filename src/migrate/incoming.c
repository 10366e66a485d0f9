/* Destination side: receive a stream into a fresh machine, verify it, and
 * take over the guest only after the source says GO. A failure at any step
 * ends here with a reason (sent back to the source when possible); the
 * source then keeps running the guest. */
#include <stdio.h>
#include <unistd.h>
#include <stdlib.h>
#include <string.h>

#include "base/escape.h"
#include "dev/virtio_net.h"
#include "machine/machine.h"
#include "migrate/blockcopy.h"
#include "migrate/handover.h"
#include "migrate/load_order.h"
#include "migrate/migration.h"
#include "migrate/mstate.h"
#include "migrate/pagecodec.h"
#include "migrate/postcopy.h"
#include "migrate/receive.h"
#include "transport/transport.h"

#define ACCEPT_TIMEOUT_MS (10 * 60 * 1000)
#define STREAM_TIMEOUT_MS 30000
/* Total deadlines per phase (docs/migration-stream.md, "Deadlines"): a
 * source sends its header and machine description at once; a pre-copy
 * round ends with a PING; after END only READY's answer, GO, is due. */
#define HANDSHAKE_DEADLINE_MS 10000
/* At most this many rounds (the source stops at 30): with the per-round
 * deadline, a bound on the whole migration. */
#define MAX_ROUNDS 100
#define FINAL_DEADLINE_MS 30000


static const struct peer source = {"source", "source gave up"};

static void tell_source(struct migration_in *in, const char *msg)
{
    if (in->ep.is_file || in->ep.fd < 0)
        return;
    struct error ignored;
    in->s.wlen = 0;
    in->s.timeout_ms = 1000;
    stream_put(&in->s, REC_ERROR, msg, strlen(msg), &ignored);
    stream_flush(&in->s, &ignored);
}

void incoming_free(struct migration_in *in)
{
    postcopy_recv_free(in);
    stream_free(&in->s);
    free(in->zbuf);
    blockcopy_in_free(in->storage);
    transport_close(&in->ep);
    free(in);
}

/* Reads records until END; returns 0 when the final state is complete. */
static int receive_state(struct machine *m, struct migration_in *in, struct error *err)
{
    bool have_verify = false;
    uint64_t verify = 0;
    uint64_t round_ms = stream_copy_deadline_ms(m->bus.ram.size + blockcopy_in_bytes(in->storage), 0);
    unsigned rounds = 0;
    struct load_order order;
    load_order_begin(&order, m, false);
    if (!in->ep.is_file)
        stream_deadline(&in->s, "pre-copy round", round_ms);
    for (;;) {
        uint32_t type;
        const uint8_t *body;
        size_t len;
        if (stream_get(&in->s, &type, &body, &len, err) < 0 ||
            pagecodec_record(&type, &body, &len, &in->zbuf, &in->zcap, err) < 0)
            return -1;
        if (type == REC_ERROR)
            return error_set(err, "source gave up: %s", peer_text(body, len).s);
        if (load_order_record(&order, type, body, len, err) < 0)
            return -1;
        switch (type) {
        case REC_PAGES:
            if (mstate_load_pages(m, body, len, err) < 0)
                return -1;
            break;
        case REC_BLOCKS:
            if (blockcopy_load(in->storage, m, body, len, false, err) < 0)
                return -1;
            break;
        case REC_DISK_VERIFY:
            if (blockcopy_check_verify(in->storage, m, body, len, err) < 0)
                return -1;
            break;
        case REC_DEVICE:
            if (mstate_load_device(m, body, len, err) < 0)
                return -1;
            break;
        case REC_CLOCK:
            if (mstate_load_clock(m, body, len, err) < 0)
                return -1;
            break;
        case REC_VERIFY:
            if (len != 8)
                return error_set(err, "verify record has %zu bytes", len);
            verify = get_u64(body);
            have_verify = true;
            break;
        case REC_POSTCOPY_ADVISE:
            if (postcopy_recv_advise(in, m, body, len, err) < 0)
                return -1;
            break;
        case REC_POSTCOPY_DISCARD:
            if (postcopy_recv_discard(in, m, body, len, err) < 0)
                return -1;
            break;
        case REC_POSTCOPY:
            if (postcopy_recv_switch(in, m, body, len, err) < 0)
                return -1;
            break;
        case REC_END:
            in->t_end = vclock_host_ns();
            if (postcopy_recv_switched(in))
                return postcopy_recv_loaded(in, m, err); /* verified when the pages are in */
            if (have_verify) {
                uint64_t mine;
                if (mstate_hash(m, &mine, err) < 0)
                    return -1;
                if (mine != verify)
                    return error_set(err, "verification failed: state hash %016llx, source "
                                     "sent %016llx", (unsigned long long)mine,
                                     (unsigned long long)verify);
                fprintf(stderr, "ferry: incoming state verified (hash %016llx)\n",
                        (unsigned long long)mine);
            }
            return 0;
        case REC_PING:
            /* The source measures what we have applied, not what sits in
             * socket buffers: answer once everything before is in RAM
             * (and the round's disk blocks are on the disk: the fsync
             * before READY is then only the final copy's). */
            if (blockcopy_in_flush(in->storage, m, err) < 0)
                return -1;
            if (!in->ep.is_file &&
                (stream_put(&in->s, REC_PONG, body, len > 8 ? 8 : len, err) < 0 ||
                 stream_flush(&in->s, err) < 0))
                return -1;
            /* The source now either starts another round or pauses the
             * guest and sends the final state: be awake for it. */
            stream_spin(&in->s, FINAL_SPIN_NS);
            stream_deadline(&in->s, "pre-copy round", round_ms);
            if (++rounds > MAX_ROUNDS)
                return error_set(err, "the source sent more than %d pre-copy rounds", MAX_ROUNDS);
            break;
        default:
            if (type & REC_OPTIONAL)
                break; /* ROUND, HEARTBEAT and unknown optional records */
            return error_set(err, "unknown mandatory record type 0x%x", type);
        }
    }
}

int receive_open(struct migration_in **out, struct machine *m, struct machine_config *cfg,
                 const char *uri, const char *what, struct error *err)
{
    struct migration_in *in = calloc(1, sizeof *in);
    if (!in)
        return error_set(err, "out of memory");
    in->ep.fd = -1;
    if (transport_listen(uri, &in->ep, err) < 0) {
        free(in);
        return -1;
    }
    if (!in->ep.is_file)
        fprintf(stderr, "ferry: waiting for a %s on %s\n", what, uri + 4);
    uint8_t head[STREAM_HEADER_SIZE];
    if (transport_accept_stream(&in->ep, ACCEPT_TIMEOUT_MS, HANDSHAKE_DEADLINE_MS, STREAM_MAGIC,
                                8, head, sizeof head, err) < 0 ||
        stream_init(&in->s, in->ep.fd, err) < 0 ||
        (!in->ep.is_file && stream_preload(&in->s, head, sizeof head, err) < 0))
        goto fail;
    if (receive_handshake(in, m, cfg, err) < 0)
        return -1;
    *out = in;
    return 0;
fail:
    tell_source(in, err->msg);
    incoming_free(in);
    return -1;
}

int receive_handshake(struct migration_in *in, struct machine *m, struct machine_config *cfg,
                      struct error *err)
{
    in->s.timeout_ms = in->ep.is_file ? -1 : STREAM_TIMEOUT_MS;
    if (!in->ep.is_file)
        stream_deadline(&in->s, "handshake (stream header and machine description)",
                        HANDSHAKE_DEADLINE_MS);
    if (stream_read_header(&in->s, err) < 0)
        goto fail;

    uint32_t type;
    const uint8_t *body;
    size_t len;
    struct mstate_desc desc;
    if (stream_get(&in->s, &type, &body, &len, err) < 0)
        goto fail;
    if (type != REC_MACHINE) {
        error_set(err, "stream does not start with a machine description (record 0x%x)", type);
        goto fail;
    }
    if (mstate_parse_machine(body, len, &desc, err) < 0)
        goto fail;
    /* --copy-storage: the disks come next; their images are created (as
     * .partial) before the machine opens them. */
    if (desc.flags & MDESC_STORAGE) {
        if (stream_get(&in->s, &type, &body, &len, err) < 0)
            goto fail;
        if (type != REC_STORAGE) {
            error_set(err, "the machine record announces a storage record, record 0x%x came",
                      type);
            goto fail;
        }
        if (blockcopy_in_prepare(&in->storage, body, len, cfg, err) < 0)
            goto fail;
    }
    stream_deadline(&in->s, NULL, 0);
    /* Before any allocation: the peer chooses the size. */
    uint64_t max_ram = cfg->max_ram_size ? cfg->max_ram_size : receive_default_max_ram();
    if (desc.ram_size > max_ram) {
        error_set(err, "refused: the stream describes a machine with %llu MiB of RAM, more than "
                  "the %llu MiB this host accepts (--max-mem)",
                  (unsigned long long)desc.ram_size >> 20, (unsigned long long)max_ram >> 20);
        goto fail;
    }
    if (cfg->ram_size && cfg->ram_size != desc.ram_size) {
        error_set(err, "the stream is from a machine with %llu MiB of RAM, but --mem asks for "
                  "%llu MiB", (unsigned long long)desc.ram_size >> 20,
                  (unsigned long long)cfg->ram_size >> 20);
        goto fail;
    }
    if (cfg->nharts && cfg->nharts != desc.nharts) {
        error_set(err, "the stream is from a machine with %u harts, but --smp asks for %u",
                  desc.nharts, cfg->nharts);
        goto fail;
    }
    cfg->ram_size = desc.ram_size;
    cfg->nharts = desc.nharts;
    cfg->no_boot = true;
    /* Only a Linux guest has the entropy device; keep the slots alike. */
    if (!(desc.flags & MDESC_SBI))
        cfg->no_rng = true;
    if (machine_init(m, cfg, err) < 0)
        goto fail;
    /* Not to be run (paused, resumed, migrated) until the state is in. */
    runstate_transition(m, RUN_STATE_RUNNING, RUN_STATE_INCOMING, err);
    /* Devices stay quiet until the guest resumes here: a tap must not write
     * received frames into a guest that is still being loaded. */
    for (unsigned i = 0; i < MEMMAP_VIRTIO_SLOTS; i++)
        if (m->virtio[i].ops && m->virtio[i].ops->quiesce)
            m->virtio[i].ops->quiesce(&m->virtio[i]);
    if (mstate_apply_machine(m, &desc, err) < 0)
        goto fail_machine;
    return 0;

fail_machine:
    machine_destroy(m);
fail:
    tell_source(in, err->msg);
    incoming_free(in);
    return -1;
}

uint64_t receive_default_max_ram(void)
{
    /* Half of the host's memory: a peer must not be able to make this
     * process claim all of it. */
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    uint64_t half = pages > 0 && size > 0 ? (uint64_t)pages * (uint64_t)size / 2 : 1ull << 30;
    return half & ~(uint64_t)(RAM_PAGE_SIZE - 1);
}

void receive_fail(struct migration_in *in, struct machine *m, const char *msg)
{
    tell_source(in, msg);
    machine_destroy(m);
    incoming_free(in);
}

void receive_loaded(struct machine *m)
{
    plic_update(&m->plic);
    aclint_update(&m->aclint);
    for (unsigned i = 0; i < MEMMAP_VIRTIO_SLOTS; i++)
        if (m->virtio[i].ops)
            virtio_sync_irq(&m->virtio[i]);
}

int migration_receive(struct machine *m, struct machine_config *cfg, const char *uri,
                      struct error *err)
{
    struct migration_in *in;
    if (receive_open(&in, m, cfg, uri, "migration stream", err) < 0)
        return -1;
    snprintf(in->uri, sizeof in->uri, "%s", uri);
    return incoming_complete(in, m, err);
}

int incoming_complete(struct migration_in *in, struct machine *m, struct error *err)
{
    if (receive_state(m, in, err) < 0)
        goto fail;
    receive_loaded(m);
    /* Received disks are durable before the source may commit to us. */
    if (blockcopy_in_flush(in->storage, m, err) < 0)
        goto fail;
    migration_trace("dst: state loaded", in->t_end);
    if (!in->ep.is_file) {
        /* Complete and verified: tell the source, then wait for GO. The
         * body is how long that took here, so the source can tell the
         * network's round trip from our work. */
        uint8_t took[8];
        put_u64(took, vclock_host_ns() - in->t_end);
        if (stream_put(&in->s, REC_READY, took, 8, err) < 0 || stream_flush(&in->s, err) < 0)
            goto fail;
        migration_trace("dst: READY sent", in->t_end);
        stream_spin(&in->s, FINAL_SPIN_NS);
        stream_deadline(&in->s, "final exchange (GO after READY)", FINAL_DEADLINE_MS);
        if (handover_await_go(&in->s, &source, err) < 0) {
            error_prefix(err, "no GO from the source (it keeps the guest)");
            goto fail;
        }
        in->t_go = vclock_host_ns();
        migration_trace("dst: GO", in->t_end);
    }
    /* The guest runs here now: its disks are complete, put them in place
     * (the open images stay the same files). */
    struct error cerr;
    if (blockcopy_in_commit(in->storage, &cerr) < 0)
        fprintf(stderr, "ferry: %s; the guest runs on it anyway\n", cerr.msg);
    vclock_resume(&m->clock);
    m->incoming = in;
    return 0;
fail:
    receive_fail(in, m, err->msg);
    return -1;
}

void migration_receive_started(struct machine *m)
{
    struct migration_in *in = m->incoming;
    if (!in)
        return;
    struct error rs_err;
    /* Post-copy: runs while the missing pages come (postcopy.h). */
    enum run_state run = postcopy_recv_switched(in) ? RUN_STATE_POSTCOPY : RUN_STATE_RUNNING;
    if (runstate_transition(m, RUN_STATE_INCOMING, run, &rs_err) < 0)
        runstate_transition(m, RUN_STATE_STANDBY, RUN_STATE_RUNNING, &rs_err);
    for (unsigned i = 0; i < MEMMAP_VIRTIO_SLOTS; i++) {
        struct virtio_dev *dev = &m->virtio[i];
        /* Devices pick up requests the driver queued before the pause. */
        if (dev->ops && dev->ops->resume)
            dev->ops->resume(dev);
        /* The LAN must learn that the guest's MAC now lives here. */
        if (virtio_net_is(dev) && virtio_net_announce(dev) < 0)
            fprintf(stderr, "ferry: could not announce the guest's MAC on the tap\n");
    }
    migration_trace("dst: devices resumed", in->t_end);
    uint64_t resumed_at = vclock_host_ns();
    __atomic_store_n(&m->resumed_at_ns, resumed_at, __ATOMIC_RELAXED); /* ctl status reads it */
    if (!in->ep.is_file) {
        /* The body: GO to resumed here, the last piece of the downtime. */
        struct error ignored;
        uint8_t took[8];
        put_u64(took, resumed_at - in->t_go);
        stream_put(&in->s, REC_RUNNING, took, in->t_go ? 8 : 0, &ignored);
        stream_flush(&in->s, &ignored);
        migration_trace("dst: RUNNING sent", in->t_end);
        migration_trace_flush();
    }
    m->incoming = NULL;
    if (postcopy_recv_start(in, m))
        return; /* its receiver owns `in` now */
    incoming_free(in);
}

void migration_receive_stop(struct machine *m)
{
    (void)m;
    postcopy_recv_stop_all();
}
