#include "migrate/mstate.h"

#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <xxhash.h>

#include "base/escape.h"
#include "machine/machine.h"
#include "migrate/progress.h"
#include "migrate/pagecodec.h"
#include "migrate/vmstate.h"


#define MACHINE_BODY_SIZE (8 + 8 + 4 + 4 + 8 + 4 + 4 * MEMMAP_VIRTIO_SLOTS)
_Static_assert(MEMMAP_VIRTIO_SLOTS <= MSTATE_MAX_SLOTS, "a MACHINE record describes every slot");

int mstate_put_machine(struct stream *s, const struct machine *m, struct error *err)
{
    return mstate_put_machine_flags(s, m, 0, err);
}

int mstate_put_machine_flags(struct stream *s, const struct machine *m, uint32_t flags,
                             struct error *err)
{
    uint8_t b[MACHINE_BODY_SIZE];
    put_u64(b, m->bus.ram.base);
    put_u64(b + 8, m->bus.ram.size);
    put_u32(b + 16, m->nharts);
    put_u32(b + 20, (m->sbi ? MDESC_SBI : 0) | (m->has_tohost ? MDESC_TOHOST : 0) | flags);
    put_u64(b + 24, m->tohost_addr);
    put_u32(b + 32, MEMMAP_VIRTIO_SLOTS);
    for (unsigned i = 0; i < MEMMAP_VIRTIO_SLOTS; i++)
        put_u32(b + 36 + 4 * i, m->virtio[i].ops ? m->virtio[i].ops->device_id : 0);
    return stream_put(s, REC_MACHINE, b, sizeof b, err);
}

int mstate_parse_machine(const uint8_t *b, size_t len, struct mstate_desc *d, struct error *err)
{
    if (len < 36)
        return error_set(err, "machine record too short (%zu bytes)", len);
    memset(d, 0, sizeof *d);
    d->ram_base = get_u64(b);
    d->ram_size = get_u64(b + 8);
    d->nharts = get_u32(b + 16);
    d->flags = get_u32(b + 20);
    d->tohost_addr = get_u64(b + 24);
    d->nslots = get_u32(b + 32);
    if (d->nslots > MSTATE_MAX_SLOTS || len != 36 + 4ull * d->nslots)
        return error_set(err, "machine record is malformed (%u device slots, %zu bytes)",
                         d->nslots, len);
    for (unsigned i = 0; i < d->nslots; i++)
        d->device_id[i] = get_u32(b + 36 + 4 * i);
    if (d->ram_base != MEMMAP_RAM_BASE || d->ram_size == 0 || d->ram_size % RAM_PAGE_SIZE ||
        d->ram_size > (64ull << 30))
        return error_set(err, "stream describes unusable RAM (base 0x%llx, %llu bytes)",
                         (unsigned long long)d->ram_base, (unsigned long long)d->ram_size);
    if (d->nharts < 1 || d->nharts > MACHINE_MAX_HARTS)
        return error_set(err, "stream describes %u harts (1..%d supported)", d->nharts,
                         MACHINE_MAX_HARTS);
    if (d->flags & ~(MDESC_SBI | MDESC_TOHOST | MDESC_STORAGE))
        return error_set(err, "stream machine flags 0x%x unknown", d->flags);
    return 0;
}

static const char *device_name(uint32_t id)
{
    switch (id) {
    case VIRTIO_ID_NONE: return "nothing";
    case VIRTIO_ID_NET: return "a virtio-net card (give --net)";
    case VIRTIO_ID_BLOCK: return "a virtio-blk disk (give --drive)";
    case VIRTIO_ID_RNG: return "a virtio-rng device";
    default: return "an unknown device";
    }
}

int mstate_apply_machine(struct machine *m, const struct mstate_desc *d, struct error *err)
{
    if (d->nslots != MEMMAP_VIRTIO_SLOTS)
        return error_set(err, "stream has %u virtio slots, this machine %d", d->nslots,
                         MEMMAP_VIRTIO_SLOTS);
    for (unsigned i = 0; i < d->nslots; i++) {
        uint32_t local = m->virtio[i].ops ? m->virtio[i].ops->device_id : 0;
        if (local != d->device_id[i])
            return error_set(err, "virtio slot %u: the stream has %s, this host configured %s",
                             i, device_name(d->device_id[i]), device_name(local));
    }
    m->sbi = d->flags & MDESC_SBI;
    m->has_tohost = d->flags & MDESC_TOHOST;
    m->tohost_addr = d->tohost_addr;
    if (m->has_tohost && !ram_contains(&m->bus.ram, m->tohost_addr, 8))
        return error_set(err, "stream's tohost address is outside RAM");
    return 0;
}

static bool page_is_zero(const uint8_t *p)
{
    const uint64_t *w = (const uint64_t *)(const void *)p;
    for (size_t i = 0; i < RAM_PAGE_SIZE / 8; i += 4)
        if (w[i] | w[i + 1] | w[i + 2] | w[i + 3])
            return false;
    return true;
}

static void sleep_ns(uint64_t ns)
{
    struct timespec ts = {.tv_sec = (time_t)(ns / 1000000000), .tv_nsec = (long)(ns % 1000000000)};
    nanosleep(&ts, NULL);
}

/* Pages gathered for one PAGES record. */
struct page_batch {
    uint8_t head[8];
    uint64_t entries[PAGES_PER_RECORD];
    const void *parts[2 + PAGES_PER_RECORD];
    size_t lens[2 + PAGES_PER_RECORD];
    unsigned n, ndata;
};

static int batch_flush(struct stream *s, struct page_batch *b, struct error *err)
{
    put_u32(b->head, b->n);
    put_u32(b->head + 4, 0);
    b->parts[0] = b->head;
    b->lens[0] = 8;
    b->parts[1] = b->entries;
    b->lens[1] = 8ull * b->n;
    int rc = s->pages ? page_encoder_put_record(s->pages, s, b->parts, b->lens, 2 + b->ndata, err)
                      : stream_put_iov(s, REC_PAGES, b->parts, b->lens, 2 + b->ndata, err);
    b->n = b->ndata = 0;
    return rc;
}

int mstate_put_pages(struct stream *s, struct machine *m, const uint64_t *bitmap,
                     struct page_counters *c, uint64_t bandwidth_limit, atomic_bool *cancel,
                     struct error *err)
{
    struct ram *ram = &m->bus.ram;
    struct page_batch b;
    b.n = b.ndata = 0;
    uint64_t start_ns = vclock_host_ns(), start_bytes = s->bytes_written + s->wlen;

    /* Word by word: a 1 GiB guest's final copy finds a few dozen dirty
     * pages among 262,144, and the pause should not wait for a bit test
     * per page. */
    size_t words = (ram->npages + 63) / 64;
    for (size_t w = 0; w < words; w++) {
        for (uint64_t bits = bitmap[w]; bits; bits &= bits - 1) {
            uint64_t page = w * 64 + (uint64_t)__builtin_ctzll(bits);
            if (page >= ram->npages)
                break;
            const uint8_t *host = ram->host + (page << RAM_PAGE_SHIFT);
            uint64_t entry = page << RAM_PAGE_SHIFT;
            c->pages++;
            /* Never-written pages are zero: no need to read (and fault in) them. */
            if (!ram_page_touched(ram, page) || page_is_zero(host)) {
                entry |= PAGE_ENTRY_ZERO;
                c->zero_pages++;
                if (s->pages)
                    page_encoder_zero(s->pages, page);
            } else {
                const uint8_t *data = host;
                size_t len = RAM_PAGE_SIZE;
                if (s->pages) {
                    uint64_t flags;
                    data = page_encoder_page(s->pages, page, host, &flags, &len);
                    entry |= flags;
                }
                b.parts[2 + b.ndata] = data;
                b.lens[2 + b.ndata] = len;
                b.ndata++;
                c->bytes += len;
            }
            put_u64((uint8_t *)&b.entries[b.n++], entry);
            if (b.n < PAGES_PER_RECORD)
                continue;
            if (batch_flush(s, &b, err) < 0)
                return -1;
            progress_pages(c->progress, c->pages, s->bytes_written + s->wlen - start_bytes,
                           vclock_host_ns());
            if (cancel && atomic_load(cancel))
                return error_set(err, "cancelled");
            if (bandwidth_limit) {
                /* Pace to the limit: sleep off any lead over it. */
                uint64_t sent = s->bytes_written + s->wlen - start_bytes;
                uint64_t due_ns = sent * 1000000000ull / bandwidth_limit;
                uint64_t took = vclock_host_ns() - start_ns;
                /* In short naps: a cancel (or SIGTERM) must not wait out
                 * a long pause at a low limit. */
                for (; due_ns > took && !(cancel && atomic_load(cancel));
                     took = vclock_host_ns() - start_ns)
                    sleep_ns(due_ns - took < 10000000 ? due_ns - took : 10000000);
            }
        }
    }
    if (b.n && batch_flush(s, &b, err) < 0)
        return -1;
    if (cancel && atomic_load(cancel))
        return error_set(err, "cancelled");
    return 0;
}

int mstate_check_pages(struct machine *m, const uint8_t *body, size_t len, struct error *err)
{
    struct ram *ram = &m->bus.ram;
    if (len < 8)
        return error_set(err, "pages record too short");
    uint32_t n = get_u32(body);
    if (n > PAGES_PER_RECORD || len < 8 + 8ull * n)
        return error_set(err, "pages record claims %u pages in %zu bytes", n, len);
    const uint8_t *data = body + 8 + 8ull * n;
    size_t data_len = len - 8 - 8ull * n;
    size_t need = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t e = get_u64(body + 8 + 8ull * i);
        if ((e & 0xfff & ~(PAGE_ENTRY_ZERO | PAGE_ENTRY_DELTA)) ||
            (e & PAGE_ENTRY_ZERO && e & PAGE_ENTRY_DELTA) || (e >> RAM_PAGE_SHIFT) >= ram->npages)
            return error_set(err, "pages record entry 0x%llx is invalid for %llu MiB of RAM",
                             (unsigned long long)e, (unsigned long long)ram->size >> 20);
        if (e & PAGE_ENTRY_DELTA) {
            /* u32 length, then the delta (pagecodec.h) */
            if (data_len - need < 4 || get_u32(data + need) > data_len - need - 4 ||
                get_u32(data + need) > 2 * RAM_PAGE_SIZE)
                return error_set(err, "pages record: a delta page's length is out of bounds");
            uint32_t dl = get_u32(data + need);
            if (pagecodec_delta_check(data + need + 4, dl, err) < 0)
                return -1;
            need += 4 + dl;
        } else if (!(e & PAGE_ENTRY_ZERO)) {
            need += RAM_PAGE_SIZE;
        }
        if (need > data_len)
            break;
    }
    if (need != data_len)
        return error_set(err, "pages record carries %zu data bytes, its entries need %s%zu",
                         data_len, need > data_len ? "more than " : "", need);
    return 0;
}

int mstate_load_pages(struct machine *m, const uint8_t *body, size_t len, struct error *err)
{
    struct ram *ram = &m->bus.ram;
    /* Check every entry before touching RAM. */
    if (mstate_check_pages(m, body, len, err) < 0)
        return -1;
    uint32_t n = get_u32(body);
    const uint8_t *data = body + 8 + 8ull * n;
    for (uint32_t i = 0; i < n; i++) {
        uint64_t e = get_u64(body + 8 + 8ull * i);
        uint64_t page = e >> RAM_PAGE_SHIFT;
        uint8_t *host = ram->host + (e & ~0xfffull);
        if (e & PAGE_ENTRY_ZERO) {
            /* A page never written is zero already: skipping it keeps
             * untouched host pages unallocated. */
            if (ram_page_touched(ram, page))
                memset(host, 0, RAM_PAGE_SIZE);
        } else if (e & PAGE_ENTRY_DELTA) {
            /* Against the copy sent before, which is what this page holds. */
            uint32_t dl = get_u32(data);
            pagecodec_delta_apply(host, data + 4, dl);
            data += 4 + dl;
            ram_mark_dirty_page(ram, page);
        } else {
            memcpy(host, data, RAM_PAGE_SIZE);
            data += RAM_PAGE_SIZE;
            /* Content from the stream counts as written here: a later
             * migration from this host must send it. */
            ram_mark_dirty_page(ram, page);
        }
    }
    return 0;
}

/* Every described piece of device state, in stream order: the machine's
 * device registry (src/machine/devreg.h). */
struct dev_entry {
    const struct vmstate *vs;
    void *obj;
    uint32_t instance;
    const struct device_entry *reg;
};

#define MAX_DEVICES DEVREG_MAX
_Static_assert(MAX_DEVICES <= MSTATE_MAX_DEVICES, "mstate_expect holds every device");

static unsigned collect_devices(struct machine *m, struct dev_entry *out)
{
    for (unsigned i = 0; i < m->devices.n; i++) {
        const struct device_entry *d = &m->devices.dev[i];
        out[i] = (struct dev_entry){d->vs, d->state, d->instance, d};
    }
    return m->devices.n;
}

/* Fills a state kept apart from its live object (a hart's wire struct). */
static void prepare(const struct dev_entry *d)
{
    if (d->reg->prepare)
        d->reg->prepare(d->obj, d->reg->owner);
}

/* Device description version used in a stream of the given version:
 * stream v1 carries the CPU description v1 (no envcfg), v2 the CPU v2 (no
 * PMP); everything else is unchanged. */
static uint32_t desc_version(const struct vmstate *vs, uint32_t stream_version)
{
    if (stream_version <= 2 && vs == &hart_vmstate)
        return stream_version;
    return vs->version;
}

int mstate_put_devices(struct stream *s, struct machine *m, uint32_t version, struct error *err)
{
    struct dev_entry devs[MAX_DEVICES];
    unsigned n = collect_devices(m, devs);
    for (unsigned i = 0; i < n; i++) {
        const struct vmstate *vs = devs[i].vs;
        uint32_t v = desc_version(vs, version);
        size_t name_len = strlen(vs->name), size = vmstate_size(vs, v);
        uint8_t *b = malloc(1 + name_len + 8 + size);
        if (!b)
            return error_set(err, "out of memory");
        b[0] = (uint8_t)name_len;
        memcpy(b + 1, vs->name, name_len);
        put_u32(b + 1 + name_len, devs[i].instance);
        put_u32(b + 5 + name_len, v);
        prepare(&devs[i]);
        vmstate_save(vs, devs[i].obj, v, b + 9 + name_len);
        int rc = stream_put(s, REC_DEVICE, b, 9 + name_len + size, err);
        free(b);
        if (rc < 0)
            return -1;
    }
    uint8_t clock[8];
    put_u64(clock, vclock_ns(&m->clock));
    return stream_put(s, REC_CLOCK, clock, sizeof clock, err);
}

int mstate_device_id(const uint8_t *body, size_t len, struct mstate_device_id *id,
                     struct error *err)
{
    if (len < 1 || len < 9ull + body[0])
        return error_set(err, "device record too short");
    id->name_len = body[0];
    id->name = (const char *)body + 1;
    id->instance = get_u32(body + 1 + id->name_len);
    id->version = get_u32(body + 5 + id->name_len);
    return 0;
}

/* The machine's entry for a DEVICE record, or NULL (err set). */
static const struct dev_entry *find_device(struct dev_entry *devs, unsigned n,
                                           const struct mstate_device_id *id, struct error *err)
{
    for (unsigned i = 0; i < n; i++)
        if (strlen(devs[i].vs->name) == id->name_len &&
            memcmp(devs[i].vs->name, id->name, id->name_len) == 0 &&
            devs[i].instance == id->instance)
            return &devs[i];
    error_set(err, "stream has state for '%s' instance %u, which this machine lacks",
              peer_text(id->name, id->name_len).s, id->instance);
    return NULL;
}

static int device_record(struct machine *m, const uint8_t *body, size_t len, bool apply,
                         struct error *err)
{
    struct mstate_device_id id;
    if (mstate_device_id(body, len, &id, err) < 0)
        return -1;
    struct dev_entry devs[MAX_DEVICES];
    unsigned n = collect_devices(m, devs);
    const struct dev_entry *d = find_device(devs, n, &id, err);
    if (!d)
        return -1;
    const uint8_t *state = body + 9 + id.name_len;
    size_t state_len = len - 9 - id.name_len;
    prepare(d);
    if (!apply)
        return vmstate_validate(d->vs, d->obj, id.version, state, state_len, err);
    if (vmstate_load(d->vs, d->obj, id.version, state, state_len, err) < 0)
        return -1;
    if (d->reg->apply)
        d->reg->apply(d->obj, d->reg->owner);
    /* A CPU v1 record has no menvcfg. Under SBI the emulator is the
     * firmware that sets it (Sstc on): the kernel may use stimecmp. */
    if (d->vs == &hart_vmstate && id.version < 2 && m->sbi)
        hart_firmware_envcfg(d->reg->owner);
    return 0;
}

int mstate_load_device(struct machine *m, const uint8_t *body, size_t len, struct error *err)
{
    return device_record(m, body, len, true, err);
}

int mstate_check_device(struct machine *m, const uint8_t *body, size_t len, struct error *err)
{
    return device_record(m, body, len, false, err);
}

void mstate_expect_init(struct mstate_expect *e, struct machine *m)
{
    struct dev_entry devs[MAX_DEVICES];
    e->n = collect_devices(m, devs);
    for (unsigned i = 0; i < e->n; i++)
        e->dev[i] = (struct mstate_expected){devs[i].vs->name, devs[i].instance, false};
}

int mstate_expect_device(struct mstate_expect *e, const struct mstate_device_id *id,
                         struct error *err)
{
    for (unsigned i = 0; i < e->n; i++) {
        struct mstate_expected *x = &e->dev[i];
        if (strlen(x->name) != id->name_len || memcmp(x->name, id->name, id->name_len) != 0 ||
            x->instance != id->instance)
            continue;
        if (x->seen)
            return error_set(err, "stream has state for '%s' instance %u twice", x->name,
                             x->instance);
        x->seen = true;
        return 0;
    }
    return error_set(err, "stream has state for '%s' instance %u, which this machine lacks",
                     peer_text(id->name, id->name_len).s, id->instance);
}

int mstate_expect_complete(const struct mstate_expect *e, struct error *err)
{
    for (unsigned i = 0; i < e->n; i++)
        if (!e->dev[i].seen)
            return error_set(err, "stream has no state for '%s' instance %u (every %s needs "
                             "one before the clock)", e->dev[i].name, e->dev[i].instance,
                             strcmp(e->dev[i].name, "cpu") == 0 ? "hart" : "device");
    return 0;
}

int mstate_load_clock(struct machine *m, const uint8_t *body, size_t len, struct error *err)
{
    if (len != 8)
        return error_set(err, "clock record has %zu bytes, expected 8", len);
    /* The clock arithmetic is signed 64-bit (vclock offsets): a guest
     * time past 2^62 ns (146 years) is corrupt, and would overflow it. */
    if (get_u64(body) >= MSTATE_MAX_CLOCK_NS)
        return error_set(err, "clock record says %llu ns of guest time: out of range",
                         (unsigned long long)get_u64(body));
    /* The clock stays frozen at the source's pause value until the guest
     * resumes here, so the guest sees no gap and never goes backwards. */
    vclock_pause(&m->clock);
    vclock_set_ns(&m->clock, get_u64(body));
    return 0;
}

/* Adds the serialized device state and the clock to st (all or nothing). */
static int hash_devices(struct machine *m, XXH3_state_t *st, struct error *err)
{
    struct dev_entry devs[MAX_DEVICES];
    unsigned n = collect_devices(m, devs);
    size_t max = 0;
    for (unsigned i = 0; i < n; i++) {
        size_t size = vmstate_size(devs[i].vs, devs[i].vs->version);
        if (size > max)
            max = size;
    }
    uint8_t *b = malloc(max ? max : 1);
    if (!b)
        return error_set(err, "out of memory hashing the state");
    for (unsigned i = 0; i < n; i++) {
        size_t size = vmstate_size(devs[i].vs, devs[i].vs->version);
        prepare(&devs[i]);
        vmstate_save(devs[i].vs, devs[i].obj, devs[i].vs->version, b);
        XXH3_64bits_update(st, b, size);
    }
    uint64_t ns = vclock_ns(&m->clock);
    XXH3_64bits_update(st, &ns, sizeof ns);
    free(b);
    return 0;
}

int mstate_hash(struct machine *m, uint64_t *out, struct error *err)
{
    /* All or nothing: a device left out of the hash would verify a state
     * that differs. */
    XXH3_state_t *st = XXH3_createState();
    if (!st)
        return error_set(err, "out of memory hashing the state");
    XXH3_64bits_reset(st);
    XXH3_64bits_update(st, m->bus.ram.host, m->bus.ram.size);
    int rc = hash_devices(m, st, err);
    *out = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return rc;
}

int mstate_hash_devices(struct machine *m, uint64_t *out, struct error *err)
{
    XXH3_state_t *st = XXH3_createState();
    if (!st)
        return error_set(err, "out of memory hashing the state");
    XXH3_64bits_reset(st);
    int rc = hash_devices(m, st, err);
    *out = XXH3_64bits_digest(st);
    XXH3_freeState(st);
    return rc;
}
