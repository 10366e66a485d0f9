/* Continuous replication hooks of virtio-blk and virtio-net, without a
 * machine: the test is the driver (rings in guest RAM, transport
 * registers through virtio_mmio_ops), as in test_virtio_blk.c and
 * test_virtio_net.c.
 *
 * Disk: held writes do not reach the image until their epoch is committed;
 * the guest reads them back (overlapping, across epochs, across the 1 MiB
 * chunking); epoch_writes lists exactly one epoch's writes in issue order;
 * commit(N) writes epochs <= N in order and leaves later ones held; a guest
 * flush completes while holding; apply_write and flush_backend go straight
 * to the image; the hold limit stalls new requests until a commit (and
 * does not block quiesce); turning holding off commits everything in
 * order, after which writes go straight through; a committer thread racing
 * guest reads and writes never makes a read return stale data.
 *
 * Network (in a network namespace of its own, skipped without the
 * privilege): frames sent while holding are completed to the guest at once
 * but reach the tap only on release(N), in order, and release(N) leaves
 * epoch N+1 held; received frames are not held; the hold limit drops the
 * newest frames; turning holding off releases everything. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "backend/disk.h"
#include "dev/virtio.h"
#include "dev/virtio_blk.h"
#include "dev/virtio_devices.h"
#include "dev/virtio_net.h"
#include "mem/bus.h"
#include "tap_lan.h"
#include "check.h"

#define RAM_BASE 0x80000000ull
#define RAM_SIZE (8ull << 20)
#define QSIZE 16
#define F_NEXT 1
#define F_WRITE 2

static struct bus bus;
static char tmpdir[64];

static uint8_t *gpa_host(uint64_t off) { return bus.ram.host + off; }

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ==== virtio-blk ==== */

/* Guest RAM layout for the disk (offsets from RAM_BASE). */
#define DESC_OFF 0x1000ull
#define AVAIL_OFF 0x2000ull
#define USED_OFF 0x3000ull
#define HDR_OFF 0x4000ull
#define STATUS_OFF 0x5000ull
#define DATA_OFF 0x10000ull     /* 64 KiB of small buffers */
#define BIG_OFF (1ull << 20)     /* 2 MiB for large writes */
#define BIG2_OFF (3ull << 20)    /* 2 MiB for large reads */

#define IMG_SECTORS 8192ull      /* 4 MiB */
#define IMG_BYTES (IMG_SECTORS * 512)

static uint8_t pattern(uint64_t file_offset)
{
    return (uint8_t)(file_offset * 131 + (file_offset >> 9) * 7 + 1);
}

static void blk_reg_write(struct virtio_dev *dev, uint64_t off, uint32_t v)
{
    virtio_mmio_ops.write(dev, off, v, 4);
}

struct drv {
    struct virtio_dev *dev;
    uint16_t avail_idx, used_seen;
    unsigned next_desc;
};

static void drv_setup(struct drv *d, struct virtio_dev *dev)
{
    memset(gpa_host(DESC_OFF), 0, 0x3000);
    memset(d, 0, sizeof *d);
    d->dev = dev;
    blk_reg_write(dev, 0x070, 0);
    blk_reg_write(dev, 0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    blk_reg_write(dev, 0x024, 1);
    blk_reg_write(dev, 0x020, 1); /* VERSION_1 */
    blk_reg_write(dev, 0x024, 0);
    blk_reg_write(dev, 0x020, (1u << VIRTIO_BLK_F_FLUSH) | (1u << VIRTIO_BLK_F_BLK_SIZE) |
                                  (1u << VIRTIO_BLK_F_SEG_MAX));
    blk_reg_write(dev, 0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                                  VIRTIO_STATUS_FEATURES_OK);
    blk_reg_write(dev, 0x030, 0);
    blk_reg_write(dev, 0x038, QSIZE);
    blk_reg_write(dev, 0x080, (uint32_t)(RAM_BASE + DESC_OFF));
    blk_reg_write(dev, 0x084, (uint32_t)((RAM_BASE + DESC_OFF) >> 32));
    blk_reg_write(dev, 0x090, (uint32_t)(RAM_BASE + AVAIL_OFF));
    blk_reg_write(dev, 0x094, (uint32_t)((RAM_BASE + AVAIL_OFF) >> 32));
    blk_reg_write(dev, 0x0a0, (uint32_t)(RAM_BASE + USED_OFF));
    blk_reg_write(dev, 0x0a4, (uint32_t)((RAM_BASE + USED_OFF) >> 32));
    blk_reg_write(dev, 0x044, 1);
    blk_reg_write(dev, 0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                                  VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

struct seg {
    uint64_t gpa;
    uint32_t len;
    bool write;
};

static uint16_t drv_add(struct drv *d, const struct seg *segs, unsigned n)
{
    uint16_t head = (uint16_t)(d->next_desc % QSIZE);
    for (unsigned i = 0; i < n; i++) {
        unsigned idx = (d->next_desc + i) % QSIZE;
        uint8_t *desc = gpa_host(DESC_OFF + 16ull * idx);
        uint16_t flags = (uint16_t)((segs[i].write ? F_WRITE : 0) | (i + 1 < n ? F_NEXT : 0));
        uint16_t next = (uint16_t)((idx + 1) % QSIZE);
        memcpy(desc, &segs[i].gpa, 8);
        memcpy(desc + 8, &segs[i].len, 4);
        memcpy(desc + 12, &flags, 2);
        memcpy(desc + 14, &next, 2);
    }
    d->next_desc += n;
    uint16_t *ring = (uint16_t *)gpa_host(AVAIL_OFF + 4);
    ring[d->avail_idx % QSIZE] = head;
    d->avail_idx++;
    __atomic_store_n((uint16_t *)gpa_host(AVAIL_OFF + 2), d->avail_idx, __ATOMIC_RELEASE);
    return head;
}

static bool drv_wait(struct drv *d, double seconds)
{
    double end = now() + seconds;
    while (__atomic_load_n((uint16_t *)gpa_host(USED_OFF + 2), __ATOMIC_ACQUIRE) == d->used_seen) {
        if (now() > end)
            return false;
        usleep(200);
    }
    d->used_seen++;
    return true;
}

static unsigned req_slot;

/* Queues and kicks one request (header, one data segment or none, status);
 * returns the status byte's guest offset. */
static uint64_t submit(struct drv *d, uint32_t type, uint64_t sector, uint64_t data_off,
                       uint32_t len, bool dev_writes)
{
    req_slot = (req_slot + 1) % 64;
    uint64_t hdr = HDR_OFF + 16ull * req_slot, st = STATUS_OFF + req_slot;
    memcpy(gpa_host(hdr), &type, 4);
    memset(gpa_host(hdr + 4), 0, 4);
    memcpy(gpa_host(hdr + 8), &sector, 8);
    *gpa_host(st) = 0xee;
    struct seg segs[3];
    unsigned n = 0;
    segs[n++] = (struct seg){RAM_BASE + hdr, 16, false};
    if (len)
        segs[n++] = (struct seg){RAM_BASE + data_off, len, dev_writes};
    segs[n++] = (struct seg){RAM_BASE + st, 1, true};
    drv_add(d, segs, n);
    blk_reg_write(d->dev, 0x050, 0);
    return st;
}

static int request(struct drv *d, uint32_t type, uint64_t sector, uint64_t data_off,
                   uint32_t len, bool dev_writes)
{
    uint64_t st = submit(d, type, sector, data_off, len, dev_writes);
    if (!drv_wait(d, 10))
        return -1;
    return *gpa_host(st);
}

/* The disk as the guest must see it, and as the image must hold it. */
static uint8_t *model_guest, *model_file;
static int img_fd = -1;

static void fill(uint8_t *p, size_t len, unsigned seed)
{
    for (size_t i = 0; i < len; i++)
        p[i] = (uint8_t)(seed * 37 + i * 13 + (i >> 9));
}

/* A guest write of `len` bytes at `sector`, data made from seed. */
static int gwrite(struct drv *d, uint64_t sector, size_t len, unsigned seed)
{
    uint64_t off = len > 0x10000 ? BIG_OFF : DATA_OFF;
    fill(gpa_host(off), len, seed);
    memcpy(model_guest + sector * 512, gpa_host(off), len);
    return request(d, VIRTIO_BLK_T_OUT, sector, off, (uint32_t)len, false);
}

/* A guest read of [sector, sector + len) compared with the model. */
static bool gread_ok(struct drv *d, uint64_t sector, size_t len)
{
    uint64_t off = len > 0x10000 ? BIG2_OFF : DATA_OFF + 0x8000;
    memset(gpa_host(off), 0xcd, len);
    if (request(d, VIRTIO_BLK_T_IN, sector, off, (uint32_t)len, true) != VIRTIO_BLK_S_OK)
        return false;
    return memcmp(gpa_host(off), model_guest + sector * 512, len) == 0;
}

/* The image file equals model_file over [0, IMG_BYTES)? */
static bool file_ok(void)
{
    static uint8_t buf[IMG_BYTES];
    if (pread(img_fd, buf, IMG_BYTES, 0) != (ssize_t)IMG_BYTES)
        return false;
    return memcmp(buf, model_file, IMG_BYTES) == 0;
}

/* First differing byte of the file vs. model_file, for messages. */
static long file_diff(void)
{
    static uint8_t buf[IMG_BYTES];
    if (pread(img_fd, buf, IMG_BYTES, 0) != (ssize_t)IMG_BYTES)
        return -2;
    for (size_t i = 0; i < IMG_BYTES; i++)
        if (buf[i] != model_file[i])
            return (long)i;
    return -1;
}

/* Applies a guest write to model_file, as a commit must. */
static void model_commit(uint64_t sector, size_t len)
{
    memcpy(model_file + sector * 512, model_guest + sector * 512, len);
}

struct listed {
    unsigned n;
    uint64_t offset[16];
    size_t len[16];
    bool data_ok;
    const uint8_t *expect[16]; /* expected data per entry, or NULL */
};

static int list_cb(void *opaque, uint64_t offset, const void *data, size_t len)
{
    struct listed *l = opaque;
    if (l->n < 16) {
        l->offset[l->n] = offset;
        l->len[l->n] = len;
        if (l->expect[l->n] && memcmp(l->expect[l->n], data, len) != 0)
            l->data_ok = false;
    }
    l->n++;
    return 0;
}

static int stop_cb(void *opaque, uint64_t offset, const void *data, size_t len)
{
    (*(int *)opaque)++;
    return 42;
}

static void test_blk_basic(struct drv *d, struct virtio_dev *dev)
{
    uint8_t a[2048], b[2048], c[512], dd[512];

    CHECK(virtio_blk_is(dev), "virtio_blk_is");
    virtio_blk_set_epoch(dev, 1);
    virtio_blk_hold_writes(dev, true);
    CHECK(virtio_blk_held_bytes(dev) == 0, "held bytes at start");

    /* Epoch 1: A at sectors 10-13. */
    CHECK(gwrite(d, 10, 2048, 1) == VIRTIO_BLK_S_OK, "write A");
    memcpy(a, model_guest + 10 * 512, 2048);
    CHECK(file_ok(), "held write A reached the file (diff at %ld)", file_diff());
    CHECK(gread_ok(d, 10, 2048), "read of held A");
    CHECK(gread_ok(d, 8, 4096), "read around held A");

    /* Epoch 2: B at 12-15 (overlapping A's tail), C at 11 (inside A). */
    virtio_blk_set_epoch(dev, 2);
    CHECK(gwrite(d, 12, 2048, 2) == VIRTIO_BLK_S_OK, "write B");
    memcpy(b, model_guest + 12 * 512, 2048);
    CHECK(gwrite(d, 11, 512, 3) == VIRTIO_BLK_S_OK, "write C");
    memcpy(c, model_guest + 11 * 512, 512);
    /* Epoch 3: D at 13. */
    virtio_blk_set_epoch(dev, 3);
    CHECK(gwrite(d, 13, 512, 4) == VIRTIO_BLK_S_OK, "write D");
    memcpy(dd, model_guest + 13 * 512, 512);
    CHECK(file_ok(), "held writes reached the file (diff at %ld)", file_diff());
    CHECK(gread_ok(d, 0, 16384), "read over A, B, C, D (newest wins)");
    CHECK(gread_ok(d, 13, 512), "read of one sector written three times");
    CHECK(gread_ok(d, 11, 1536), "read inside the held writes");
    CHECK(virtio_blk_held_bytes(dev) == 2048 + 2048 + 512 + 512, "held bytes %llu",
          (unsigned long long)virtio_blk_held_bytes(dev));

    /* A guest flush completes at once and writes nothing. */
    CHECK(request(d, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false) == VIRTIO_BLK_S_OK, "flush while holding");
    CHECK(file_ok(), "a guest flush wrote held data (diff at %ld)", file_diff());

    /* epoch_writes: exactly one epoch, in issue order, with the data. */
    struct listed l = {.data_ok = true, .expect = {b, c}};
    CHECK(virtio_blk_epoch_writes(dev, 2, list_cb, &l) == 0, "epoch_writes(2)");
    CHECK(l.n == 2 && l.offset[0] == 12 * 512 && l.len[0] == 2048 && l.offset[1] == 11 * 512 &&
              l.len[1] == 512, "epoch_writes(2): %u writes, first at %llu", l.n,
          (unsigned long long)l.offset[0]);
    CHECK(l.data_ok, "epoch_writes(2): wrong data");
    l = (struct listed){.data_ok = true, .expect = {a}};
    CHECK(virtio_blk_epoch_writes(dev, 1, list_cb, &l) == 0 && l.n == 1 &&
              l.offset[0] == 10 * 512 && l.len[0] == 2048 && l.data_ok, "epoch_writes(1)");
    l = (struct listed){.data_ok = true};
    CHECK(virtio_blk_epoch_writes(dev, 7, list_cb, &l) == 0 && l.n == 0, "epoch_writes(7): %u",
          l.n);
    int calls = 0;
    CHECK(virtio_blk_epoch_writes(dev, 2, stop_cb, &calls) == 42 && calls == 1,
          "epoch_writes does not stop at the callback's error (%d calls)", calls);

    /* commit(2): A, B, C in that order reach the file; D stays held. */
    CHECK(virtio_blk_commit(dev, 2) == 0, "commit(2)");
    memcpy(model_file + 10 * 512, a, 2048);
    memcpy(model_file + 12 * 512, b, 2048);
    memcpy(model_file + 11 * 512, c, 512);
    CHECK(file_ok(), "after commit(2) the file is wrong (diff at %ld)", file_diff());
    CHECK(memcmp(model_file + 13 * 512, dd, 512) != 0, "test bug: D equals the file");
    CHECK(virtio_blk_held_bytes(dev) == 512, "held bytes after commit(2): %llu",
          (unsigned long long)virtio_blk_held_bytes(dev));
    CHECK(gread_ok(d, 8, 8192), "reads after commit(2)");
    l = (struct listed){.data_ok = true};
    CHECK(virtio_blk_epoch_writes(dev, 2, list_cb, &l) == 0 && l.n == 0,
          "epoch 2 still listed after commit (%u)", l.n);
    l = (struct listed){.data_ok = true, .expect = {dd}};
    CHECK(virtio_blk_epoch_writes(dev, 3, list_cb, &l) == 0 && l.n == 1 &&
              l.offset[0] == 13 * 512 && l.data_ok, "epoch 3 not listed after commit(2)");
    CHECK(virtio_blk_commit(dev, 2) == 0 && file_ok(), "commit(2) again");

    /* apply_write and flush_backend go straight to the file. */
    uint8_t e[1024];
    fill(e, sizeof e, 5);
    CHECK(virtio_blk_apply_write(dev, 100 * 512, e, sizeof e) == 0, "apply_write");
    memcpy(model_file + 100 * 512, e, sizeof e);
    memcpy(model_guest + 100 * 512, e, sizeof e);
    CHECK(virtio_blk_flush_backend(dev) == 0, "flush_backend");
    CHECK(file_ok(), "apply_write did not reach the file (diff at %ld)", file_diff());
    CHECK(virtio_blk_apply_write(dev, 100 * 512, e, sizeof e) == 0 && file_ok(),
          "apply_write is not idempotent");
    CHECK(virtio_blk_apply_write(dev, 100 * 512 + 1, e, 512) == -EINVAL, "unaligned apply_write");
    CHECK(virtio_blk_apply_write(dev, 100 * 512, e, 100) == -EINVAL, "odd-length apply_write");
    CHECK(virtio_blk_apply_write(dev, IMG_BYTES - 512, e, 1024) == -EINVAL,
          "apply_write past the end");
    CHECK(virtio_blk_apply_write(dev, UINT64_MAX - 511, e, 1024) == -EINVAL,
          "apply_write at a huge offset");

    /* A write of 1.5 MiB is held as two chunks; reads across them. */
    virtio_blk_set_epoch(dev, 4);
    CHECK(gwrite(d, 1000, 1536 << 10, 6) == VIRTIO_BLK_S_OK, "1.5 MiB write");
    CHECK(file_ok(), "big held write reached the file (diff at %ld)", file_diff());
    CHECK(gread_ok(d, 990, 1600 << 10), "read over the big held write");
    CHECK(gread_ok(d, 1000 + 2047, 1024), "read across its chunks");
    l = (struct listed){.data_ok = true};
    CHECK(virtio_blk_epoch_writes(dev, 4, list_cb, &l) == 0 && l.n == 2 &&
              l.offset[0] == 1000 * 512 && l.offset[1] == l.offset[0] + l.len[0] &&
              l.len[0] + l.len[1] == (1536 << 10), "big write listed as %u writes", l.n);

    /* Hold limit: at or over it, new requests wait for a commit; quiesce
     * still works meanwhile. */
    virtio_blk_set_hold_limit(dev, 4096);
    uint64_t st = submit(d, VIRTIO_BLK_T_IN, 0, DATA_OFF, 512, true);
    CHECK(!drv_wait(d, 0.15), "request taken while over the hold limit");
    virtio_blk_quiesce(dev);
    virtio_blk_resume(dev);
    CHECK(!drv_wait(d, 0.05), "request taken after quiesce while over the hold limit");
    CHECK(virtio_blk_commit(dev, 3) == 0, "commit(3)");
    model_commit(13, 512);
    CHECK(!drv_wait(d, 0.1), "request taken while still over the hold limit");
    CHECK(virtio_blk_commit(dev, 4) == 0, "commit(4)");
    model_commit(1000, 1536 << 10);
    CHECK(drv_wait(d, 10) && *gpa_host(st) == VIRTIO_BLK_S_OK,
          "stalled request not completed after commit");
    CHECK(file_ok(), "after commit(4) (diff at %ld)", file_diff());
    CHECK(virtio_blk_held_bytes(dev) == 0, "held bytes after commit(4)");
    virtio_blk_set_hold_limit(dev, 0);

    /* Hold off commits everything, in order: X then Y on one sector. */
    virtio_blk_set_epoch(dev, 5);
    CHECK(gwrite(d, 20, 512, 7) == VIRTIO_BLK_S_OK, "write X");
    virtio_blk_set_epoch(dev, 6);
    CHECK(gwrite(d, 20, 1024, 8) == VIRTIO_BLK_S_OK, "write Y");
    CHECK(gwrite(d, 300, 4096, 9) == VIRTIO_BLK_S_OK, "write Z");
    CHECK(file_ok(), "X/Y/Z reached the file before hold off (diff at %ld)", file_diff());
    virtio_blk_hold_writes(dev, false);
    model_commit(20, 1024);
    model_commit(300, 4096);
    CHECK(file_ok(), "hold off did not commit everything in order (diff at %ld)", file_diff());
    CHECK(virtio_blk_held_bytes(dev) == 0, "held bytes after hold off");
    CHECK(gwrite(d, 40, 512, 10) == VIRTIO_BLK_S_OK, "write after hold off");
    model_commit(40, 512);
    CHECK(file_ok(), "write after hold off not in the file (diff at %ld)", file_diff());
    CHECK(gread_ok(d, 0, 65536), "reads after hold off");
}

/* A committer thread acknowledging epochs while the guest reads and
 * writes: a read must never see the backend's old data for a write being
 * committed. */
static struct virtio_dev *race_dev;
static uint64_t race_acked;
static bool race_stop;

static void *committer(void *arg)
{
    unsigned commits = 0;
    while (!__atomic_load_n(&race_stop, __ATOMIC_ACQUIRE)) {
        uint64_t e = __atomic_load_n(&race_acked, __ATOMIC_ACQUIRE);
        if (virtio_blk_commit(race_dev, e) < 0)
            break;
        commits++;
        usleep(100);
    }
    return (void *)(uintptr_t)commits;
}

static void test_blk_race(struct drv *d, struct virtio_dev *dev)
{
    virtio_blk_hold_writes(dev, true);
    race_dev = dev;
    race_acked = 0;
    race_stop = false;
    pthread_t t;
    pthread_create(&t, NULL, committer, NULL);
    unsigned seed = 12345, bad = 0;
    const uint64_t span = 64; /* sectors: plenty of overlap */
    for (unsigned i = 0; i < 300; i++) {
        uint64_t epoch = 100 + i / 3;
        virtio_blk_set_epoch(dev, epoch);
        __atomic_store_n(&race_acked, epoch > 102 ? epoch - 2 : 0, __ATOMIC_RELEASE);
        seed = seed * 1103515245 + 12345;
        uint64_t sector = 2000 + (seed >> 8) % span;
        size_t len = 512 * (1 + (seed >> 20) % 8);
        if (gwrite(d, sector, len, 1000 + i) != VIRTIO_BLK_S_OK)
            bad++;
        seed = seed * 1103515245 + 12345;
        uint64_t rs = 2000 + (seed >> 8) % span;
        if (!gread_ok(d, rs, 512 * (1 + (seed >> 20) % 16)))
            bad++;
    }
    __atomic_store_n(&race_stop, true, __ATOMIC_RELEASE);
    void *ret;
    pthread_join(t, &ret);
    CHECK(bad == 0, "%u reads/writes went wrong while commits raced them", bad);
    CHECK((uintptr_t)ret > 10, "committer ran only %u times", (unsigned)(uintptr_t)ret);
    virtio_blk_hold_writes(dev, false);
    memcpy(model_file, model_guest, IMG_BYTES);
    CHECK(file_ok(), "after the race and hold off the file is wrong (diff at %ld)", file_diff());
}

static void test_blk(void)
{
    char path[128];
    snprintf(path, sizeof path, "%s/disk.img", tmpdir);
    model_guest = malloc(IMG_BYTES);
    model_file = malloc(IMG_BYTES);
    for (uint64_t i = 0; i < IMG_BYTES; i++)
        model_guest[i] = model_file[i] = pattern(i);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(model_file, 1, IMG_BYTES, f) != IMG_BYTES) {
        perror(path);
        exit(1);
    }
    fclose(f);
    img_fd = open(path, O_RDONLY);

    static struct virtio_dev dev;
    virtio_dev_init(&dev, NULL, NULL, &bus, (struct irq_line){0});
    struct disk *disk;
    struct error err = {{0}};
    if (disk_file_open(path, false, &disk, &err) < 0 || virtio_blk_attach(&dev, disk, &err) < 0) {
        printf("FAIL: attach %s: %s\n", path, err.msg);
        exit(1);
    }
    struct drv d;
    drv_setup(&d, &dev);

    test_blk_basic(&d, &dev);
    test_blk_race(&d, &dev);

    /* Quiesce while holding, then destroy with writes held: they are
     * dropped (with a log line), never written. */
    virtio_blk_hold_writes(&dev, true);
    virtio_blk_quiesce(&dev);
    virtio_blk_resume(&dev);
    CHECK(gwrite(&d, 50, 512, 11) == VIRTIO_BLK_S_OK, "write before destroy");
    fprintf(stderr, "(a line about discarded writes is expected next)\n");
    virtio_dev_destroy(&dev);
    CHECK(file_ok(), "held writes reached the file at destroy (diff at %ld)", file_diff());
    CHECK(!virtio_blk_is(&dev), "virtio_blk_is after destroy");

    close(img_fd);
    free(model_guest);
    free(model_file);
}

/* ==== virtio-net ==== */

#define BUF_SIZE 2048
#define TAP "rtap0"
#define ETYPE 0x88b5

static const uint8_t guest_mac[6] = {0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcd};
static const uint8_t peer_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x02};
static struct virtio_dev ndev;
static int pkt_fd = -1;

static uint8_t *host(uint64_t gpa) { return bus.ram.host + (gpa - RAM_BASE); }
static void reg_write(uint64_t off, uint32_t v) { virtio_mmio_ops.write(&ndev, off, v, 4); }

struct q {
    unsigned index;
    uint64_t desc, avail, used, bufs;
    uint16_t avail_idx, used_seen;
};
static struct q rxq, txq;

static void q_init(struct q *q, unsigned index)
{
    q->index = index;
    q->desc = RAM_BASE + 0x10000 + index * 0x10000ull;
    q->avail = q->desc + 0x1000;
    q->used = q->desc + 0x2000;
    q->bufs = RAM_BASE + 0x100000 + index * 0x100000ull;
    q->avail_idx = q->used_seen = 0;
    memset(host(q->desc), 0, 0x3000);
    reg_write(0x030, index);
    reg_write(0x038, QSIZE);
    reg_write(0x080, (uint32_t)q->desc);
    reg_write(0x084, (uint32_t)(q->desc >> 32));
    reg_write(0x090, (uint32_t)q->avail);
    reg_write(0x094, (uint32_t)(q->avail >> 32));
    reg_write(0x0a0, (uint32_t)q->used);
    reg_write(0x0a4, (uint32_t)(q->used >> 32));
    reg_write(0x044, 1);
}

static void driver_setup(void)
{
    reg_write(0x070, 0);
    reg_write(0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    reg_write(0x024, 1);
    reg_write(0x020, 1);
    reg_write(0x024, 0);
    reg_write(0x020, (1u << 5) | (1u << 16));
    reg_write(0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    q_init(&rxq, 0);
    q_init(&txq, 1);
    reg_write(0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                         VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

static uint64_t slot_buf(const struct q *q, unsigned s) { return q->bufs + s * 2ull * BUF_SIZE; }

static void put_desc(struct q *q, unsigned i, uint64_t addr, uint32_t len, uint16_t flags)
{
    uint8_t *d = host(q->desc + 16ull * i);
    uint16_t next = 0;
    memcpy(d, &addr, 8);
    memcpy(d + 8, &len, 4);
    memcpy(d + 12, &flags, 2);
    memcpy(d + 14, &next, 2);
}

static void publish(struct q *q, uint16_t head)
{
    memcpy(host(q->avail + 4 + 2ull * (q->avail_idx % QSIZE)), &head, 2);
    q->avail_idx++;
    __atomic_store_n((uint16_t *)host(q->avail + 2), q->avail_idx, __ATOMIC_RELEASE);
}

static void rx_post(unsigned n)
{
    for (unsigned k = 0; k < n; k++) {
        unsigned s = rxq.avail_idx % (QSIZE / 2);
        put_desc(&rxq, 2 * s, slot_buf(&rxq, s), BUF_SIZE, F_WRITE);
        publish(&rxq, (uint16_t)(2 * s));
    }
    reg_write(0x050, 0);
}

static int used_next(struct q *q, long ms, uint32_t *id, uint32_t *len)
{
    for (long t = 0;; t++) {
        uint16_t idx = __atomic_load_n((uint16_t *)host(q->used + 2), __ATOMIC_ACQUIRE);
        if (idx != q->used_seen) {
            const uint8_t *e = host(q->used + 4 + 8ull * (q->used_seen % QSIZE));
            memcpy(id, e, 4);
            memcpy(len, e + 4, 4);
            q->used_seen++;
            return 1;
        }
        if (t >= ms)
            return 0;
        sleep_ms(1);
    }
}

static size_t make_frame(uint8_t *f, const uint8_t dst[6], const uint8_t src[6], unsigned seq,
                         size_t payload)
{
    memcpy(f, dst, 6);
    memcpy(f + 6, src, 6);
    f[12] = ETYPE >> 8, f[13] = ETYPE & 0xff;
    for (size_t i = 0; i < payload; i++)
        f[14 + i] = (uint8_t)(seq * 31 + i * 7);
    return 14 + payload;
}

/* The guest transmits frame `seq` (114 bytes) and the TX request completes. */
static bool tx_send(unsigned seq)
{
    uint8_t f[200];
    size_t len = make_frame(f, peer_mac, guest_mac, seq, 100);
    unsigned s = txq.avail_idx % (QSIZE / 2);
    uint64_t b = slot_buf(&txq, s);
    memset(host(b), 0, 12);
    memcpy(host(b + 12), f, len);
    put_desc(&txq, 2 * s, b, (uint32_t)(12 + len), 0);
    publish(&txq, (uint16_t)(2 * s));
    reg_write(0x050, 1);
    uint32_t id, ulen;
    return used_next(&txq, 2000, &id, &ulen) == 1 && id == 2 * s;
}

/* The sequence number of the next of our frames on the tap, or -1. */
static int lan_recv_seq(long ms)
{
    uint8_t out[4096];
    double end = now() + ms / 1000.0;
    for (;;) {
        long left = (long)((end - now()) * 1000);
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = pkt_fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        struct sockaddr_ll sll;
        socklen_t sl = sizeof sll;
        ssize_t n = recvfrom(pkt_fd, out, sizeof out, 0, (struct sockaddr *)&sll, &sl);
        if (n < 15 || sll.sll_pkttype == PACKET_OUTGOING)
            continue;
        if (out[12] != (ETYPE >> 8) || out[13] != (ETYPE & 0xff) || memcmp(out + 6, guest_mac, 6))
            continue;
        for (int seq = 0; seq < 256; seq++)
            if (out[14] == (uint8_t)(seq * 31) && out[15] == (uint8_t)(seq * 31 + 7))
                return seq;
        return 1000;
    }
}

static void test_net_hold(void)
{
    CHECK(virtio_net_held_frames(&ndev) == 0, "held frames at start");
    /* Not holding: straight through. */
    CHECK(tx_send(1), "TX 1 not completed");
    CHECK(lan_recv_seq(2000) == 1, "frame 1 not sent while not holding");

    virtio_net_set_epoch(&ndev, 10);
    virtio_net_hold_output(&ndev, true);
    CHECK(tx_send(2) && tx_send(3), "TX while holding not completed at once");
    virtio_net_set_epoch(&ndev, 11);
    CHECK(tx_send(4) && tx_send(5), "TX of epoch 11 not completed");
    virtio_net_set_epoch(&ndev, 12);
    CHECK(tx_send(6), "TX of epoch 12 not completed");
    CHECK(lan_recv_seq(200) == -1, "a held frame reached the tap");
    CHECK(virtio_net_held_frames(&ndev) == 5, "held frames %zu, want 5",
          virtio_net_held_frames(&ndev));

    /* Received frames are not held. */
    uint8_t f[200];
    size_t len = make_frame(f, guest_mac, peer_mac, 77, 100);
    CHECK(send(pkt_fd, f, len, 0) == (ssize_t)len, "inject: %s", strerror(errno));
    uint32_t id, ulen;
    bool got = false;
    for (int tries = 0; tries < 20 && !got; tries++) {
        if (!used_next(&rxq, 2000, &id, &ulen))
            break;
        const uint8_t *b = host(slot_buf(&rxq, id / 2));
        got = ulen == 12 + len && memcmp(b + 12, f, len) == 0;
        rx_post(1);
    }
    CHECK(got, "RX held while output is held");

    virtio_net_release(&ndev, 9);
    CHECK(lan_recv_seq(150) == -1, "release(9) sent a frame of epoch 10");
    virtio_net_release(&ndev, 10);
    CHECK(lan_recv_seq(2000) == 2, "release(10): first frame not 2");
    CHECK(lan_recv_seq(2000) == 3, "release(10): second frame not 3");
    CHECK(lan_recv_seq(150) == -1, "release(10) sent a frame of epoch 11");
    CHECK(virtio_net_held_frames(&ndev) == 3, "held frames after release(10): %zu",
          virtio_net_held_frames(&ndev));
    virtio_net_release(&ndev, 11);
    CHECK(lan_recv_seq(2000) == 4 && lan_recv_seq(2000) == 5, "release(11) out of order");
    CHECK(lan_recv_seq(150) == -1, "release(11) sent the frame of epoch 12");
    CHECK(virtio_net_held_frames(&ndev) == 1, "held frames after release(11)");

    /* Quiesce/resume keep held frames. */
    virtio_net_quiesce(&ndev);
    virtio_net_resume(&ndev);
    CHECK(virtio_net_held_frames(&ndev) == 1, "quiesce lost held frames");

    /* Hold off releases the rest; later frames go straight out. */
    virtio_net_hold_output(&ndev, false);
    CHECK(lan_recv_seq(2000) == 6, "hold off did not release frame 6");
    CHECK(virtio_net_held_frames(&ndev) == 0, "held frames after hold off");
    CHECK(tx_send(7) && lan_recv_seq(2000) == 7, "frame after hold off not sent");

    /* The cap: frames are 126 bytes with the header; 300 fit two. */
    virtio_net_set_hold_limit(&ndev, 300);
    virtio_net_set_epoch(&ndev, 20);
    virtio_net_hold_output(&ndev, true);
    fprintf(stderr, "(one line about dropped output is expected next)\n");
    CHECK(tx_send(8) && tx_send(9) && tx_send(10) && tx_send(11),
          "TX over the cap not completed");
    CHECK(virtio_net_held_frames(&ndev) == 2, "held frames over the cap: %zu",
          virtio_net_held_frames(&ndev));
    virtio_net_release(&ndev, 20);
    CHECK(lan_recv_seq(2000) == 8 && lan_recv_seq(2000) == 9, "frames under the cap lost");
    CHECK(lan_recv_seq(150) == -1, "a frame over the cap was sent");
    CHECK(tx_send(12) && virtio_net_held_frames(&ndev) == 1, "no room again after release");
    virtio_net_set_hold_limit(&ndev, 0);

    /* Destroy with a frame held: dropped, not sent. */
    fprintf(stderr, "(a line about discarded frames is expected next)\n");
}

static int test_net(void)
{
    if (unshare(CLONE_NEWNET) < 0) {
        printf("test_replication_devices: network part skipped: no network namespace of its "
               "own (%s)\n", strerror(errno));
        return 0;
    }
    if (access("/dev/net/tun", R_OK | W_OK) < 0) {
        printf("test_replication_devices: network part skipped: /dev/net/tun: %s\n",
               strerror(errno));
        return 0;
    }
    tap_lan_no_ipv6();
    struct error err;
    virtio_dev_init(&ndev, NULL, NULL, &bus, (struct irq_line){0});
    if (virtio_net_attach(&ndev, "tap=" TAP ",mac=52:54:00:aa:bb:cd", &err) < 0) {
        printf("FAIL: attach: %s\n", err.msg);
        return -1;
    }
    if ((pkt_fd = tap_lan_open(TAP)) < 0)
        return -1;
    CHECK(virtio_net_is(&ndev) && !virtio_blk_is(&ndev), "device kind");
    driver_setup();
    rx_post(QSIZE / 2);
    test_net_hold();
    virtio_dev_destroy(&ndev);
    close(pkt_fd);
    return 0;
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    alarm(120); /* a deadlock fails the test instead of hanging it */
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_repl_dev.XXXXXX");
    const char *base = getenv("TMPDIR");
    if (base && strlen(base) < 40)
        snprintf(tmpdir, sizeof tmpdir, "%s/trdev.XXXXXX", base);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    struct error err = {{0}};
    if (ram_init(&bus.ram, RAM_BASE, RAM_SIZE, &err) < 0) {
        printf("FAIL: ram_init: %s\n", err.msg);
        return 1;
    }

    test_blk();
    int net = test_net();

    ram_destroy(&bus.ram);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        printf("warning: could not remove %s\n", tmpdir);
    if (failures || net < 0) {
        printf("test_replication_devices: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("test_replication_devices: %d checks passed\n", checks);
    return 0;
}
