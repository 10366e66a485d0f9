/* Standby side of continuous replication (ferry run --standby). It keeps a
 * machine loaded with the last acknowledged checkpoint. A checkpoint is
 * staged in memory until its END arrives, every record's CRC having been
 * checked, and only then applied and acknowledged: a corrupted or truncated
 * checkpoint is never applied.
 *
 * Failover: when the primary falls silent for longer than the heartbeat
 * timeout (or the connection breaks), the standby runs the fencing command
 * if one was given — and does not take over if it fails — re-applies the
 * disk writes of acknowledged epochs (idempotent), and resumes the guest. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "dev/virtio_blk.h"
#include "dev/virtio_net.h"
#include "machine/machine.h"
#include "migrate/arbiter_etcd.h"
#include "migrate/blockcopy.h"
#include "migrate/load_order.h"
#include "migrate/mstate.h"
#include "migrate/receive.h"
#include "migrate/replication.h"
#include "migrate/standby_state.h"

struct staged {
    uint32_t type;
    size_t len;
    uint8_t *body;
};

struct pending_write {
    uint64_t epoch;
    uint32_t slot;
    uint64_t offset;
    size_t len;
    uint8_t *record;   /* the DISK_WRITE body: u32 slot, u64 offset, data */
};

/* A frame the primary held in the applied checkpoint's epoch and did not
 * send (a switchover's last one): this host sends it after announcing. */
struct carried_frame {
    uint32_t slot;
    size_t len;
    uint8_t *record;   /* the HELD_FRAME body: u32 slot, frame */
};

struct standby {
    struct carried_frame *frames;
    size_t nframes;
    struct staged *recs;
    size_t nrecs, cap;
    uint64_t staged_bytes, stage_limit;
    struct pending_write *writes;
    size_t nwrites, wcap;
    uint64_t applied_epoch;
    /* --copy-storage: this standby keeps its own disks; each checkpoint's
     * blocks and disk writes go into them as it is applied. */
    struct blockcopy_in *storage;   /* in->storage's, not owned */
};

static void staged_clear(struct standby *sb)
{
    for (size_t i = 0; i < sb->nrecs; i++)
        free(sb->recs[i].body);
    sb->nrecs = 0;
    sb->staged_bytes = 0;
}

/* A checkpoint holds at most every page once, the device state and the
 * epoch's disk writes: twice the RAM and 64 MiB more is far beyond a real
 * one, and keeps a primary that never ends a checkpoint from filling this
 * host's memory. */
#define STAGE_RAM_MULTIPLE 2
#define STAGE_EXTRA_BYTES (64ull << 20)

/* 1 when staging len more bytes would pass the bound. */
static bool stage_over_limit(const struct standby *sb, size_t len)
{
    /* Each record also costs its bookkeeping. */
    return sb->staged_bytes + len + sizeof(struct staged) > sb->stage_limit;
}

static int stage(struct standby *sb, uint32_t type, const uint8_t *body, size_t len,
                 struct error *err)
{
    if (sb->nrecs == sb->cap) {
        size_t cap = sb->cap ? sb->cap * 2 : 256;
        struct staged *n = realloc(sb->recs, cap * sizeof *n);
        if (!n)
            return error_set(err, "out of memory staging a checkpoint");
        sb->recs = n;
        sb->cap = cap;
    }
    uint8_t *copy = malloc(len ? len : 1);
    if (!copy)
        return error_set(err, "out of memory staging a checkpoint");
    memcpy(copy, body, len);
    sb->recs[sb->nrecs++] = (struct staged){type, len, copy};
    sb->staged_bytes += len + sizeof(struct staged);
    return 0;
}

static void frames_clear(struct standby *sb)
{
    for (size_t i = 0; i < sb->nframes; i++)
        free(sb->frames[i].record);
    free(sb->frames);
    sb->frames = NULL;
    sb->nframes = 0;
}

/* Checks one HELD_FRAME record: its slot holds a network card and the
 * frame's size is one that card could have sent. */
static int check_held_frame(struct machine *m, const struct staged *r, struct error *err)
{
    if (r->len < 4)
        return error_set(err, "held frame record has %zu bytes", r->len);
    uint32_t slot = get_u32(r->body);
    if (slot >= MEMMAP_VIRTIO_SLOTS || !virtio_net_is(&m->virtio[slot]))
        return error_set(err, "held frame for slot %u, which has no network card", slot);
    if (r->len - 4 > virtio_net_max_frame())
        return error_set(err, "held frame of %zu bytes: larger than a card sends", r->len - 4);
    return 0;
}

/* Drops the pending writes the primary has written to the shared disk. */
static void prune_writes(struct standby *sb, uint64_t committed)
{
    size_t j = 0;
    for (size_t i = 0; i < sb->nwrites; i++) {
        if (sb->writes[i].epoch <= committed)
            free(sb->writes[i].record);
        else
            sb->writes[j++] = sb->writes[i];
    }
    sb->nwrites = j;
}

/* Checks one DISK_WRITE record: its size, its slot holds a disk, and the
 * range lies inside that disk. */
static int check_disk_write(struct machine *m, const struct staged *r, struct error *err)
{
    if (r->len < 12 || (r->len - 12) % 512)
        return error_set(err, "disk write record has %zu bytes", r->len);
    uint32_t slot = get_u32(r->body);
    uint64_t offset = get_u64(r->body + 4);
    if (slot >= MEMMAP_VIRTIO_SLOTS || !virtio_blk_is(&m->virtio[slot]))
        return error_set(err, "disk write for slot %u, which has no disk", slot);
    int rc = virtio_blk_check_write(&m->virtio[slot], offset, r->len - 12);
    if (rc < 0)
        return error_set(err, "disk write of %zu bytes at offset %llu in slot %u: %s",
                         r->len - 12, (unsigned long long)offset, slot,
                         rc == -EINVAL ? "outside the disk or not sector-aligned" : strerror(-rc));
    return 0;
}

/* Checks a complete checkpoint without changing anything: its header and
 * epoch, the order and completeness of its records, and every record's
 * content (pages, device state, disk ranges). Also makes room for its disk
 * writes, so applying it cannot fail half-way. */
static int validate_checkpoint(struct standby *sb, struct machine *m, uint64_t *epoch,
                               struct error *err)
{
    if (sb->nrecs < 1 || sb->recs[0].type != REC_CHECKPOINT || sb->recs[0].len != 16)
        return error_set(err, "checkpoint without a header");
    *epoch = get_u64(sb->recs[0].body);
    if (*epoch != sb->applied_epoch + 1)
        return error_set(err, "checkpoint %llu does not follow checkpoint %llu",
                         (unsigned long long)*epoch, (unsigned long long)sb->applied_epoch);
    struct load_order order;
    load_order_begin(&order, m, true);
    size_t nwrites = 0, nframes = 0;
    for (size_t i = 1; i < sb->nrecs; i++) {
        struct staged *r = &sb->recs[i];
        if (load_order_record(&order, r->type, r->body, r->len, err) < 0)
            return -1;
        int rc = 0;
        switch (r->type) {
        case REC_PAGES: rc = mstate_check_pages(m, r->body, r->len, err); break;
        case REC_DEVICE: rc = mstate_check_device(m, r->body, r->len, err); break;
        case REC_CLOCK:
            if (r->len != 8)
                rc = error_set(err, "clock record has %zu bytes, expected 8", r->len);
            else if (get_u64(r->body) >= MSTATE_MAX_CLOCK_NS) /* mstate_load_clock's check */
                rc = error_set(err, "clock record says %llu ns of guest time: out of range",
                               (unsigned long long)get_u64(r->body));
            break;
        case REC_DISK_WRITE:
            rc = check_disk_write(m, r, err);
            nwrites++;
            break;
        case REC_BLOCKS:
            rc = blockcopy_load(sb->storage, m, r->body, r->len, true, err);
            break;
        case REC_HELD_FRAME:
            rc = check_held_frame(m, r, err);
            nframes++;
            break;
        default:
            if (!(r->type & REC_OPTIONAL))
                rc = error_set(err, "unknown record 0x%x in a checkpoint", r->type);
        }
        if (rc < 0)
            return -1;
    }
    if (load_order_record(&order, REC_END, NULL, 0, err) < 0)
        return -1;
    if (sb->nwrites + nwrites > sb->wcap) {
        size_t cap = sb->nwrites + nwrites + 64;
        struct pending_write *n = realloc(sb->writes, cap * sizeof *n);
        if (!n)
            return error_set(err, "out of memory");
        sb->writes = n;
        sb->wcap = cap;
    }
    /* The carried frames are the applied checkpoint's only: the primary
     * sent those of every earlier epoch itself. */
    frames_clear(sb);
    if (nframes && !(sb->frames = calloc(nframes, sizeof *sb->frames)))
        return error_set(err, "out of memory");
    return 0;
}

/* Validates the staged checkpoint, then applies it. Returns -1 if it was
 * refused (nothing applied), -2 if applying it failed half-way (only an
 * allocation inside a device load can: the standby's copy is then lost).
 * A disk write keeps its staged record's buffer. */
static int apply_checkpoint(struct standby *sb, struct machine *m, struct error *err)
{
    uint64_t bytes = sb->staged_bytes;
    uint64_t epoch = 0;
    if (validate_checkpoint(sb, m, &epoch, err) < 0)
        return -1;
    /* Only now: the header's length is checked by the validation. */
    uint64_t committed = get_u64(sb->recs[0].body + 8);
    for (size_t i = 1; i < sb->nrecs; i++) {
        struct staged *r = &sb->recs[i];
        int rc = 0;
        switch (r->type) {
        case REC_PAGES: rc = mstate_load_pages(m, r->body, r->len, err); break;
        case REC_DEVICE: rc = mstate_load_device(m, r->body, r->len, err); break;
        case REC_CLOCK: rc = mstate_load_clock(m, r->body, r->len, err); break;
        case REC_BLOCKS: rc = blockcopy_load(sb->storage, m, r->body, r->len, false, err); break;
        case REC_DISK_WRITE:
            if (sb->storage) {
                /* Our own disk: the epoch's writes land with its memory. */
                rc = virtio_blk_apply_write(&m->virtio[get_u32(r->body)], get_u64(r->body + 4),
                                            r->body + 12, r->len - 12);
                if (rc < 0)
                    rc = error_set(err, "writing the standby's disk: %s", strerror(-rc));
                break;
            }
            sb->writes[sb->nwrites++] = (struct pending_write){
                epoch, get_u32(r->body), get_u64(r->body + 4), r->len - 12, r->body};
            r->body = NULL; /* now the pending write's */
            break;
        case REC_HELD_FRAME:
            sb->frames[sb->nframes++] = (struct carried_frame){get_u32(r->body), r->len - 4,
                                                               r->body};
            r->body = NULL;
            break;
        default:
            break;
        }
        if (rc < 0) {
            error_prefix(err, "applying checkpoint %llu", (unsigned long long)epoch);
            return -2;
        }
    }
    /* Durable before the ACK lets the primary release the epoch's output. */
    if (blockcopy_in_flush(sb->storage, m, err) < 0) {
        error_prefix(err, "applying checkpoint %llu", (unsigned long long)epoch);
        return -2;
    }
    prune_writes(sb, committed);
    sb->applied_epoch = epoch;
    standby_state_applied(epoch, bytes, sb->nwrites);
    return 0;
}

static int take_over(struct standby *sb, struct machine *m, const struct standby_params *p,
                     bool planned, struct error *err)
{
    const char *fence = p->fence;
    if (!sb->applied_epoch)
        return error_set(err, "no complete checkpoint arrived yet: nothing to take over");
    if (p->arbiter) {
        /* Only the holder of the arbiter's key may run the guest: wait
         * until the primary's lease ended (expired, or revoked by a
         * switchover). Its revision is the fencing token. */
        fprintf(stderr, "ferry: standby: taking the arbiter's key before taking over\n");
        if (arbiter_take_wait(p->arbiter, "standby", standby_quit_requested, err) < 0)
            return -1; /* the operator gave up (quit): the guest never ran here */
        uint64_t token = arbiter_token(p->arbiter);
        standby_state_token(token);
        char tok[24];
        snprintf(tok, sizeof tok, "%llu", (unsigned long long)token);
        setenv("FERRY_FENCING_TOKEN", tok, 1);
    }
    if (!planned && fence) {
        /* Fencing: make sure the old primary cannot run (or write the
         * shared disk) any more before this copy starts. */
        fprintf(stderr, "ferry: standby: fencing the primary: %s\n", fence);
        int rc = system(fence);
        if (rc == -1 || !WIFEXITED(rc) || WEXITSTATUS(rc) != 0)
            return error_set(err, "fencing command failed (status %d): not taking over", rc);
    }
    for (size_t i = 0; i < sb->nwrites; i++) {
        struct pending_write *w = &sb->writes[i];
        int rc = virtio_blk_apply_write(&m->virtio[w->slot], w->offset, w->record + 12, w->len);
        if (rc < 0)
            return error_set(err, "re-applying held disk writes failed: %s", strerror(-rc));
    }
    for (unsigned i = 0; i < MEMMAP_VIRTIO_SLOTS; i++)
        if (virtio_blk_is(&m->virtio[i]))
            virtio_blk_flush_backend(&m->virtio[i]);
    /* Our own disks hold the applied epoch: put them in place. */
    if (blockcopy_in_commit(sb->storage, err) < 0)
        return -1;
    receive_loaded(m);
    vclock_resume(&m->clock);
    /* The LAN learns that the guest is here before anything it said in
     * the last epoch goes out: the answers those frames draw must come
     * here, not to the old host. */
    size_t sent = 0;
    for (unsigned i = 0; i < MEMMAP_VIRTIO_SLOTS; i++)
        if (virtio_net_is(&m->virtio[i]) && virtio_net_announce(&m->virtio[i]) < 0)
            fprintf(stderr, "ferry: standby: could not announce the guest's MAC on the tap\n");
    for (size_t i = 0; i < sb->nframes; i++) {
        struct carried_frame *f = &sb->frames[i];
        if (virtio_net_send_frame(&m->virtio[f->slot], f->record + 4, f->len) == 0)
            sent++;
    }
    fprintf(stderr, "ferry: standby: %s from checkpoint %llu\n",
            planned ? "switchover: taking over" : "primary lost: failing over",
            (unsigned long long)sb->applied_epoch);
    if (sb->nframes)
        fprintf(stderr, "ferry: standby: sent %zu of the %zu frames held in checkpoint %llu, "
                "after announcing the guest\n", sent, sb->nframes,
                (unsigned long long)sb->applied_epoch);
    return 0;
}

static void standby_free(struct standby *sb)
{
    frames_clear(sb);
    staged_clear(sb);
    free(sb->recs);
    for (size_t i = 0; i < sb->nwrites; i++)
        free(sb->writes[i].record);
    free(sb->writes);
}

int standby_run(struct machine *m, struct machine_config *cfg, const struct standby_params *p,
                struct error *err)
{
    struct migration_in *in;
    if (receive_open(&in, m, cfg, p->uri, "primary to replicate", err) < 0) {
        standby_state_end();
        return -1;
    }
    return standby_serve(in, m, p, err);
}

int standby_serve(struct migration_in *in, struct machine *m, const struct standby_params *p,
                  struct error *err)
{
    runstate_transition(m, RUN_STATE_INCOMING, RUN_STATE_STANDBY, err);
    standby_state_connected(in->ep.fd);
    struct standby sb = {.stage_limit = STAGE_RAM_MULTIPLE * m->bus.ram.size + STAGE_EXTRA_BYTES,
                         .storage = in->storage};
    bool in_checkpoint = false, planned = false;
    /* A checkpoint was refused: the primary was told and runs on
     * unprotected, so losing it is no reason to take over. */
    bool refused = false;
    int rc = -1;
    /* Silence longer than this means the primary is gone. */
    in->s.timeout_ms = (int)(p->heartbeat_timeout_ns / 1000000);
    for (;;) {
        uint32_t type;
        const uint8_t *body;
        size_t len;
        struct error rerr;
        if (stream_get(&in->s, &type, &body, &len, &rerr) < 0) {
            /* Link lost, primary silent, or a corrupt record: whatever was
             * staged is dropped, the last applied checkpoint stands. */
            staged_clear(&sb);
            if (standby_quit_requested()) {
                error_set(err, "the operator asked the standby to quit: not taking over");
                rc = 1;
                goto fail_quiet;
            }
            if (standby_takeover_requested()) {
                fprintf(stderr, "ferry: standby: the operator asked for a takeover\n");
                break;
            }
            fprintf(stderr, "ferry: standby: %s\n", rerr.msg);
            if (refused) {
                error_set(err, "not taking over: a checkpoint was refused and the primary "
                          "runs on unprotected (this standby's copy is checkpoint %llu)",
                          (unsigned long long)sb.applied_epoch);
                goto fail;
            }
            break;
        }
        standby_state_record(len, sb.staged_bytes);
        if (type == REC_HEARTBEAT)
            continue;
        if (type == REC_CHECKPOINT) {
            staged_clear(&sb);
            in_checkpoint = true;
            /* It must also arrive in time, however it trickles. */
            stream_deadline(&in->s, "checkpoint", stream_copy_deadline_ms(m->bus.ram.size, 0));
        }
        if (in_checkpoint) {
            if (type != REC_END && stage_over_limit(&sb, len)) {
                /* Refused like an invalid checkpoint: dropped, the last
                 * applied one stands. The primary is told (receive_fail)
                 * and runs on unprotected, so this standby must not take
                 * over on its own; and a primary that never ends a
                 * checkpoint is not worth reading further. */
                fprintf(stderr, "ferry: standby: checkpoint refused: it passed the staging "
                        "bound of %llu MiB without ending; keeping checkpoint %llu\n",
                        (unsigned long long)sb.stage_limit >> 20,
                        (unsigned long long)sb.applied_epoch);
                staged_clear(&sb);
                error_set(err, "not taking over: checkpoint %llu exceeded the standby's staging "
                          "bound of %llu MiB and was refused; the primary runs on unprotected "
                          "(this standby's copy is checkpoint %llu)",
                          (unsigned long long)sb.applied_epoch + 1,
                          (unsigned long long)sb.stage_limit >> 20,
                          (unsigned long long)sb.applied_epoch);
                goto fail;
            }
            if (type == REC_END) {
                in_checkpoint = false;
                stream_deadline(&in->s, NULL, 0);
                int applied = apply_checkpoint(&sb, m, &rerr);
                if (applied == -2) {
                    staged_clear(&sb);
                    error_set(err, "%s", rerr.msg);
                    goto fail;
                }
                if (applied < 0) {
                    /* Refused whole: nothing of it was applied, the last
                     * checkpoint stands. Tell the primary (it stops
                     * counting on us) and wait for it to hang up. */
                    staged_clear(&sb);
                    refused = true;
                    standby_state_phase(STANDBY_REFUSED);
                    error_set(err, "checkpoint refused: %s; nothing of it was applied, the "
                              "standby keeps checkpoint %llu", rerr.msg,
                              (unsigned long long)sb.applied_epoch);
                    fprintf(stderr, "ferry: standby: %s\n", err->msg);
                    in->s.wlen = 0;
                    if (stream_put(&in->s, REC_ERROR, err->msg, strlen(err->msg), &rerr) < 0 ||
                        stream_flush(&in->s, &rerr) < 0)
                        fprintf(stderr, "ferry: standby: %s\n", rerr.msg);
                    continue;
                }
                staged_clear(&sb);
                uint8_t ack[8];
                put_u64(ack, sb.applied_epoch);
                if (stream_put(&in->s, REC_ACK, ack, 8, &rerr) < 0 ||
                    stream_flush(&in->s, &rerr) < 0) {
                    fprintf(stderr, "ferry: standby: %s\n", rerr.msg);
                    break;
                }
            } else if (stage(&sb, type, body, len, err) < 0) {
                goto fail;
            }
            continue;
        }
        if (type == REC_PAGES && !sb.applied_epoch && !refused) {
            /* Initial copy before the first checkpoint. */
            if (mstate_load_pages(m, body, len, err) < 0)
                goto fail;
        } else if (type == REC_BLOCKS && !sb.applied_epoch && !refused) {
            if (blockcopy_load(sb.storage, m, body, len, false, err) < 0)
                goto fail;
        } else if (type == REC_GO) {
            planned = true;
            in->t_go = vclock_host_ns(); /* RUNNING reports GO -> resumed */
            break;
        } else if (type == REC_STOP) {
            error_set(err, "the primary stopped replication");
            rc = 1;
            goto fail_quiet;
        } else if (!(type & REC_OPTIONAL)) {
            error_set(err, "unexpected record 0x%x from the primary", type);
            goto fail;
        }
    }
    standby_state_phase(STANDBY_TAKING_OVER);
    if (take_over(&sb, m, p, planned, err) < 0)
        goto fail;
    standby_state_end();
    standby_free(&sb);
    m->incoming = in; /* migration_receive_started() sends RUNNING and frees it */
    return 0;
fail:
    rc = -1;
fail_quiet:
    standby_state_end();
    standby_free(&sb);
    receive_fail(in, m, err->msg);
    return rc;
}
