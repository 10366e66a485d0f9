/* Record order and completeness on the receiving side (see load_order.h). */
#include "migrate/load_order.h"

#include "migrate/postcopy.h"
#include "migrate/stream.h"

void load_order_begin(struct load_order *o, struct machine *m, bool checkpoint)
{
    o->phase = LOAD_PAGES;
    o->checkpoint = checkpoint;
    o->discarded = false;
    mstate_expect_init(&o->expect, m);
}

static const char *phase_name(enum load_phase p)
{
    switch (p) {
    case LOAD_PAGES: return "the pages";
    case LOAD_DEVICES: return "the device state";
    case LOAD_CLOCKED: return "the clock";
    case LOAD_VERIFIED: return "the verify record";
    case LOAD_DISK: return "the disk writes";
    default: return "the end";
    }
}

static int out_of_order(const struct load_order *o, const char *what, struct error *err)
{
    return error_set(err, "%s record out of order: it came after %s", what,
                     phase_name(o->phase));
}

int load_order_record(struct load_order *o, uint32_t type, const uint8_t *body, size_t len,
                      struct error *err)
{
    switch (type) {
    case REC_PAGES:
        if (o->phase != LOAD_PAGES)
            return out_of_order(o, "pages", err);
        if (o->discarded)
            return error_set(err, "pages record after the post-copy discard");
        return 0;
    case REC_BLOCKS: /* disk blocks travel with the pages */
        if (o->phase != LOAD_PAGES)
            return out_of_order(o, "blocks", err);
        return 0;
    case REC_DISK_VERIFY:
        if (o->checkpoint)
            return error_set(err, "disk verify record inside a checkpoint");
        if (o->phase != LOAD_CLOCKED && o->phase != LOAD_VERIFIED)
            return out_of_order(o, "disk verify", err);
        return 0;
    case REC_STORAGE:
        return error_set(err, "a second storage record: it comes once, after the machine");
    case REC_PING:
        if (o->checkpoint)
            return error_set(err, "ping record inside a checkpoint");
        if (o->phase != LOAD_PAGES)
            return out_of_order(o, "ping", err);
        return 0;
    case REC_DEVICE: {
        if (o->phase != LOAD_PAGES && o->phase != LOAD_DEVICES)
            return out_of_order(o, "device", err);
        struct mstate_device_id id;
        if (mstate_device_id(body, len, &id, err) < 0 || mstate_expect_device(&o->expect, &id, err) < 0)
            return -1;
        o->phase = LOAD_DEVICES;
        return 0;
    }
    case REC_CLOCK:
        if (o->phase != LOAD_PAGES && o->phase != LOAD_DEVICES)
            return out_of_order(o, "clock", err);
        if (mstate_expect_complete(&o->expect, err) < 0)
            return -1;
        o->phase = LOAD_CLOCKED;
        return 0;
    case REC_VERIFY:
        if (o->checkpoint)
            return error_set(err, "verify record inside a checkpoint");
        if (o->phase != LOAD_CLOCKED)
            return out_of_order(o, "verify", err);
        o->phase = LOAD_VERIFIED;
        return 0;
    case REC_DISK_WRITE:
        if (!o->checkpoint)
            return error_set(err, "disk write record in a migration stream");
        if (o->phase != LOAD_CLOCKED && o->phase != LOAD_DISK)
            return out_of_order(o, "disk write", err);
        o->phase = LOAD_DISK;
        return 0;
    case REC_HELD_FRAME:
        /* A switchover's last checkpoint: after the state, with the disk
         * writes. */
        if (!o->checkpoint)
            return error_set(err, "held frame record in a migration stream");
        if (o->phase != LOAD_CLOCKED && o->phase != LOAD_DISK)
            return out_of_order(o, "held frame", err);
        o->phase = LOAD_DISK;
        return 0;
    case REC_END:
        if (o->phase == LOAD_PAGES || o->phase == LOAD_DEVICES) {
            /* Name what is missing: a device (hart) or just the clock. */
            if (mstate_expect_complete(&o->expect, err) < 0)
                return error_prefix(err, "stream ended without the final device state");
            return error_set(err, "stream ended without the final device state (no clock)");
        }
        if (o->phase == LOAD_ENDED)
            return out_of_order(o, "end", err);
        o->phase = LOAD_ENDED;
        return 0;
    case REC_POSTCOPY_ADVISE:
    case REC_POSTCOPY_DISCARD:
    case REC_POSTCOPY:
        /* Among the pages; post-copy's switch ends them (postcopy.h). */
        if (o->checkpoint)
            return error_set(err, "post-copy record inside a checkpoint");
        if (o->phase != LOAD_PAGES)
            return out_of_order(o, "post-copy", err);
        if (type == REC_POSTCOPY)
            o->phase = LOAD_DEVICES;
        if (type != REC_POSTCOPY_ADVISE)
            o->discarded = true;
        return 0;
    case REC_MACHINE:
        return error_set(err, "a second machine record: it comes once, first");
    case REC_CHECKPOINT:
        if (!o->checkpoint)
            return error_set(err, "checkpoint record in a migration stream");
        return error_set(err, "checkpoint record inside a checkpoint");
    default:
        return 0; /* optional records; unknown mandatory ones are the caller's */
    }
}
