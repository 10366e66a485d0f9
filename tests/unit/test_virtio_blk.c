/* virtio-blk and the raw-file disk backend, without a machine: the test is
 * the driver. It lays descriptors and rings out in guest RAM itself, sets
 * the transport registers through virtio_mmio_ops, kicks the queue and
 * waits for the device's I/O thread to publish the used entry.
 *
 * Checked: config space and features; reads (one and several segments,
 * larger than the device's bounce buffer); that device DMA marks exactly
 * the pages it wrote in the dirty log; writes reach the file; flush and
 * GET_ID; out-of-range, badly sized and unknown requests; a read-only
 * disk; malformed chains (outside RAM, looping) do not crash and the
 * device recovers after a reset; quiesce holds requests until resume. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/disk.h"
#include "dev/virtio.h"
#include "dev/virtio_blk.h"
#include "dev/virtio_devices.h"
#include "mem/bus.h"
#include "check.h"

#define RAM_BASE 0x80000000ull
#define RAM_SIZE (4ull << 20)
#define QSIZE 16

/* Guest RAM layout (offsets from RAM_BASE). */
#define DESC_OFF 0x1000ull
#define AVAIL_OFF 0x2000ull
#define USED_OFF 0x3000ull
#define HDR_OFF 0x4000ull
#define STATUS_OFF 0x5000ull
#define DATA_OFF 0x8000ull
#define BIG_OFF (1ull << 20)

#define IMG_SECTORS 4096                 /* 2 MiB */
#define IMG_TAIL 100                     /* bytes past the last whole sector */

#define F_NEXT 1
#define F_WRITE 2

static struct bus bus;
static char tmpdir[64];

static uint8_t *gpa_host(uint64_t off) { return bus.ram.host + off; }

static uint8_t pattern(uint64_t file_offset)
{
    return (uint8_t)(file_offset * 131 + (file_offset >> 9) * 7 + 1);
}

static char *make_image(const char *name, uint64_t size)
{
    static char paths[4][128];
    static int n;
    char *path = paths[n++ % 4];
    snprintf(path, 128, "%s/%s", tmpdir, name);
    uint8_t *buf = malloc(size);
    for (uint64_t i = 0; i < size; i++)
        buf[i] = pattern(i);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(buf, 1, size, f) != size) {
        perror(path);
        exit(1);
    }
    fclose(f);
    free(buf);
    return path;
}

static void reg_write(struct virtio_dev *dev, uint64_t off, uint32_t v)
{
    virtio_mmio_ops.write(dev, off, v, 4);
}

static uint32_t reg_read(struct virtio_dev *dev, uint64_t off)
{
    return (uint32_t)virtio_mmio_ops.read(dev, off, 4);
}

/* ---- the driver side ---- */

struct drv {
    struct virtio_dev *dev;
    uint16_t avail_idx;    /* next avail index we publish */
    uint16_t used_seen;    /* used entries consumed */
    unsigned next_desc;    /* round-robin descriptor allocation */
};

static void drv_setup(struct drv *d, struct virtio_dev *dev)
{
    memset(gpa_host(DESC_OFF), 0, 0x3000);
    d->dev = dev;
    d->avail_idx = d->used_seen = 0;
    d->next_desc = 0;
    reg_write(dev, 0x070, 0);
    reg_write(dev, 0x070, VIRTIO_STATUS_ACKNOWLEDGE);
    reg_write(dev, 0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    reg_write(dev, 0x024, 1);
    reg_write(dev, 0x020, 1); /* VERSION_1 */
    reg_write(dev, 0x024, 0);
    reg_write(dev, 0x020, (1u << VIRTIO_BLK_F_FLUSH) | (1u << VIRTIO_BLK_F_BLK_SIZE) |
                              (1u << VIRTIO_BLK_F_SEG_MAX) | (1u << VIRTIO_BLK_F_RO));
    reg_write(dev, 0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                              VIRTIO_STATUS_FEATURES_OK);
    CHECK(reg_read(dev, 0x070) & VIRTIO_STATUS_FEATURES_OK, "FEATURES_OK refused");
    reg_write(dev, 0x030, 0);
    CHECK(reg_read(dev, 0x034) >= QSIZE, "queue max %u", reg_read(dev, 0x034));
    reg_write(dev, 0x038, QSIZE);
    reg_write(dev, 0x080, (uint32_t)(RAM_BASE + DESC_OFF));
    reg_write(dev, 0x084, (uint32_t)((RAM_BASE + DESC_OFF) >> 32));
    reg_write(dev, 0x090, (uint32_t)(RAM_BASE + AVAIL_OFF));
    reg_write(dev, 0x094, (uint32_t)((RAM_BASE + AVAIL_OFF) >> 32));
    reg_write(dev, 0x0a0, (uint32_t)(RAM_BASE + USED_OFF));
    reg_write(dev, 0x0a4, (uint32_t)((RAM_BASE + USED_OFF) >> 32));
    reg_write(dev, 0x044, 1);
    reg_write(dev, 0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                              VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

struct seg {
    uint64_t gpa;   /* absolute guest physical address */
    uint32_t len;
    bool write;
};

/* Writes a chain into the descriptor table and publishes it (no kick). */
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

static uint16_t used_idx(void)
{
    return __atomic_load_n((uint16_t *)gpa_host(USED_OFF + 2), __ATOMIC_ACQUIRE);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Waits for the next used entry; returns false on timeout. */
static bool drv_wait(struct drv *d, double seconds, uint32_t *id, uint32_t *len)
{
    double end = now() + seconds;
    while (used_idx() == d->used_seen) {
        if (now() > end)
            return false;
        usleep(200);
    }
    uint32_t elem[2];
    memcpy(elem, gpa_host(USED_OFF + 4 + 8ull * (d->used_seen % QSIZE)), 8);
    d->used_seen++;
    if (id)
        *id = elem[0];
    if (len)
        *len = elem[1];
    return true;
}

static void kick(struct drv *d)
{
    reg_write(d->dev, 0x050, 0);
}

/* One request: header at HDR_OFF (+ slot), optional data segments, status at
 * STATUS_OFF (+ slot). Returns the status byte, or -1 on timeout. */
static int request(struct drv *d, uint32_t type, uint64_t sector, const struct seg *data,
                   unsigned ndata, uint32_t *used_len)
{
    static unsigned slot;
    slot = (slot + 1) % 64;
    uint64_t hdr = RAM_BASE + HDR_OFF + 16ull * slot;
    uint64_t st = RAM_BASE + STATUS_OFF + slot;
    memcpy(gpa_host(hdr - RAM_BASE), &type, 4);
    memset(gpa_host(hdr - RAM_BASE + 4), 0, 4);
    memcpy(gpa_host(hdr - RAM_BASE + 8), &sector, 8);
    *gpa_host(st - RAM_BASE) = 0xee;
    struct seg segs[8];
    unsigned n = 0;
    segs[n++] = (struct seg){hdr, 16, false};
    for (unsigned i = 0; i < ndata; i++)
        segs[n++] = data[i];
    segs[n++] = (struct seg){st, 1, true};
    uint16_t head = drv_add(d, segs, n);
    kick(d);
    uint32_t id, len;
    if (!drv_wait(d, 10, &id, &len))
        return -1;
    CHECK(id == head, "used id %u, expected head %u", id, head);
    if (used_len)
        *used_len = len;
    return *gpa_host(st - RAM_BASE);
}

static bool data_matches(uint64_t ram_off, uint64_t file_off, size_t len)
{
    const uint8_t *p = gpa_host(ram_off);
    for (size_t i = 0; i < len; i++)
        if (p[i] != pattern(file_off + i))
            return false;
    return true;
}

static void wake_count(void *opaque)
{
    __atomic_fetch_add((int *)opaque, 1, __ATOMIC_RELAXED);
}

/* ---- the disk backend on its own ---- */

static void test_disk_file(void)
{
    struct error err = {{0}};
    struct disk *disk = NULL;
    char missing[128];
    snprintf(missing, sizeof missing, "%s/no-such-image", tmpdir);
    CHECK(disk_file_open(missing, false, &disk, &err) < 0, "missing image opened");
    CHECK(strstr(err.msg, missing) != NULL, "error does not name the path: %s", err.msg);
    CHECK(disk_file_open(tmpdir, false, &disk, &err) < 0, "directory opened as an image");
    CHECK(strstr(err.msg, tmpdir) != NULL, "error does not name the path: %s", err.msg);
    CHECK(disk_open("bogus=1", &disk, &err) < 0, "--drive bogus=1 accepted");
    CHECK(strchr(err.msg, '\n') == NULL, "multi-line error: %s", err.msg);

    const char *img = make_image("odd.img", 3 * 512 + 17);
    CHECK(disk_open(img, &disk, &err) < 0, "a spec without file= accepted");
    char spec[160];
    snprintf(spec, sizeof spec, "file=%s,readonly=on", img);
    CHECK(disk_open(spec, &disk, &err) == 0, "open %s: %s", spec, err.msg);
    if (disk) {
        CHECK(disk->size == 3 * 512, "size %llu, want rounded down to 1536",
              (unsigned long long)disk->size);
        CHECK(disk->readonly, "readonly=on not honoured");
        uint8_t buf[1024];
        CHECK(disk->ops->read(disk, buf, 1024, 512) == 0, "read");
        bool ok = true;
        for (int i = 0; i < 1024; i++)
            ok &= buf[i] == pattern(512 + (uint64_t)i);
        CHECK(ok, "backend read returned the wrong bytes");
        CHECK(disk->ops->write(disk, buf, 512, 0) == -EROFS, "read-only backend accepted a write");
        CHECK(disk->ops->read(disk, buf, 1024, 1024) < 0, "read past the end accepted");
        CHECK(disk->ops->flush(disk) == 0, "flush");
        disk_close(disk);
    }
    disk = NULL;
    snprintf(spec, sizeof spec, "file=%s", img);
    CHECK(disk_open(spec, &disk, &err) == 0, "open %s: %s", spec, err.msg);
    if (disk) {
        uint8_t buf[512];
        memset(buf, 0x5a, sizeof buf);
        CHECK(disk->ops->write(disk, buf, 512, 1024) == 0, "write");
        CHECK(disk->ops->flush(disk) == 0, "flush");
        uint8_t back[512];
        int fd = open(img, O_RDONLY);
        CHECK(fd >= 0 && pread(fd, back, 512, 1024) == 512 && memcmp(back, buf, 512) == 0,
              "write did not reach the file");
        if (fd >= 0)
            close(fd);
        disk_close(disk);
    }
    char tiny[128];
    snprintf(tiny, sizeof tiny, "%s/tiny.img", tmpdir);
    FILE *f = fopen(tiny, "wb");
    fputs("short", f);
    fclose(f);
    CHECK(disk_file_open(tiny, false, &disk, &err) < 0, "image smaller than a sector accepted");
}

/* ---- the device ---- */

static struct virtio_dev *attach(const char *path, bool readonly, int *wakes)
{
    static struct virtio_dev devs[4];
    static int n;
    struct virtio_dev *dev = &devs[n++];
    virtio_dev_init(dev, NULL, NULL, &bus, (struct irq_line){0});
    dev->wake = wake_count;
    dev->wake_opaque = wakes;
    struct disk *disk;
    struct error err = {{0}};
    if (disk_file_open(path, readonly, &disk, &err) < 0 || virtio_blk_attach(dev, disk, &err) < 0) {
        printf("FAIL: attach %s: %s\n", path, err.msg);
        exit(1);
    }
    return dev;
}

static void test_config(struct virtio_dev *dev, bool readonly)
{
    CHECK(reg_read(dev, 0x000) == 0x74726976, "magic");
    CHECK(reg_read(dev, 0x008) == VIRTIO_ID_BLOCK, "device id %u", reg_read(dev, 0x008));
    reg_write(dev, 0x014, 0);
    uint32_t f = reg_read(dev, 0x010);
    CHECK(f & (1u << VIRTIO_BLK_F_FLUSH), "no FLUSH feature: %#x", f);
    CHECK(!!(f & (1u << VIRTIO_BLK_F_RO)) == readonly, "RO feature %#x, readonly %d", f, readonly);
    reg_write(dev, 0x014, 1);
    CHECK(reg_read(dev, 0x010) & 1, "no VERSION_1");
    uint64_t cap = virtio_mmio_ops.read(dev, 0x100, 8);
    CHECK(cap == IMG_SECTORS, "capacity %llu", (unsigned long long)cap);
    uint64_t lo = virtio_mmio_ops.read(dev, 0x100, 4), hi = virtio_mmio_ops.read(dev, 0x104, 4);
    CHECK((hi << 32 | lo) == IMG_SECTORS, "capacity by halves");
    CHECK(virtio_mmio_ops.read(dev, 0x101, 1) == (IMG_SECTORS >> 8), "capacity byte 1");
    CHECK(virtio_mmio_ops.read(dev, 0x114, 4) == 512, "blk_size");
    uint64_t seg_max = virtio_mmio_ops.read(dev, 0x10c, 4);
    CHECK(seg_max >= 1 && seg_max <= VIRTQ_MAX_SEGS - 2, "seg_max %llu", (unsigned long long)seg_max);
    CHECK(virtio_mmio_ops.read(dev, 0x100 + 0xffc, 4) == 0, "config read past the end");
}

static void test_reads(struct drv *d)
{
    memset(gpa_host(DATA_OFF), 0, 0x10000);
    struct seg one = {RAM_BASE + DATA_OFF, 4096, true};
    uint32_t len = 0;
    CHECK(request(d, VIRTIO_BLK_T_IN, 8, &one, 1, &len) == VIRTIO_BLK_S_OK, "read 8 sectors");
    CHECK(data_matches(DATA_OFF, 8 * 512, 4096), "read 8 sectors: wrong data");
    CHECK(len == 4097, "used length %u, want 4097", len);

    /* Two segments, the second not page aligned. */
    struct seg two[2] = {{RAM_BASE + DATA_OFF + 0x2000, 1024, true},
                         {RAM_BASE + DATA_OFF + 0x5123, 512, true}};
    CHECK(request(d, VIRTIO_BLK_T_IN, 100, two, 2, NULL) == VIRTIO_BLK_S_OK, "2-segment read");
    CHECK(data_matches(DATA_OFF + 0x2000, 100 * 512, 1024) &&
          data_matches(DATA_OFF + 0x5123, 100 * 512 + 1024, 512), "2-segment read: wrong data");

    /* Larger than the bounce buffer, up to the last sector. */
    memset(gpa_host(BIG_OFF), 0, 1536 << 10);
    struct seg big = {RAM_BASE + BIG_OFF, 1536 << 10, true};
    uint64_t first = IMG_SECTORS - 3072;
    CHECK(request(d, VIRTIO_BLK_T_IN, first, &big, 1, &len) == VIRTIO_BLK_S_OK, "1.5 MiB read");
    CHECK(data_matches(BIG_OFF, first * 512, 1536 << 10), "1.5 MiB read: wrong data");
    CHECK(len == (1536 << 10) + 1, "used length %u", len);
}

static void test_dirty_pages(struct drv *d)
{
    /* 3 sectors from 512 bytes before a page boundary: pages P and P+1. */
    uint64_t data_off = DATA_OFF + 0x9000 - 512;
    struct seg s = {RAM_BASE + data_off, 1536, true};
    /* The test writes guest RAM through host pointers, which the log does
     * not see: after the clear, only the device's writes show. */
    ram_dirty_clear_all(&bus.ram);
    static const uint32_t type = VIRTIO_BLK_T_IN;
    uint64_t sector = 33;
    memcpy(gpa_host(HDR_OFF + 0x800), &type, 4);
    memset(gpa_host(HDR_OFF + 0x804), 0, 4);
    memcpy(gpa_host(HDR_OFF + 0x808), &sector, 8);
    uint64_t st_off = STATUS_OFF + 0x400;
    struct seg segs[3] = {{RAM_BASE + HDR_OFF + 0x800, 16, false}, s, {RAM_BASE + st_off, 1, true}};
    drv_add(d, segs, 3);
    kick(d);
    CHECK(drv_wait(d, 10, NULL, NULL), "dirty test: no completion");
    CHECK(*gpa_host(st_off) == VIRTIO_BLK_S_OK, "dirty test: status %u", *gpa_host(st_off));
    CHECK(data_matches(data_off, 33 * 512, 1536), "dirty test: wrong data");
    static uint64_t harvested[(RAM_SIZE >> RAM_PAGE_SHIFT) / 64];
    uint64_t n = ram_dirty_harvest(&bus.ram, harvested);
    uint64_t want[] = {data_off >> RAM_PAGE_SHIFT, (data_off >> RAM_PAGE_SHIFT) + 1,
                       st_off >> RAM_PAGE_SHIFT, USED_OFF >> RAM_PAGE_SHIFT};
    CHECK(n == 4, "%llu dirty pages, want 4", (unsigned long long)n);
    for (unsigned i = 0; i < 4; i++)
        CHECK(harvested[want[i] / 64] >> (want[i] % 64) & 1, "page %llu not marked dirty",
              (unsigned long long)want[i]);
    for (uint64_t p = 0; p < (RAM_SIZE >> RAM_PAGE_SHIFT); p++) {
        bool expected = p == want[0] || p == want[1] || p == want[2] || p == want[3];
        if (!expected && (harvested[p / 64] >> (p % 64) & 1))
            CHECK(false, "page %llu marked dirty but not written", (unsigned long long)p);
    }
}

static void test_write_flush_id(struct drv *d, const char *path)
{
    uint8_t *buf = gpa_host(DATA_OFF);
    for (int i = 0; i < 1024; i++)
        buf[i] = (uint8_t)(0xa5 ^ i);
    struct seg s = {RAM_BASE + DATA_OFF, 1024, false};
    uint32_t len = 99;
    CHECK(request(d, VIRTIO_BLK_T_OUT, 10, &s, 1, &len) == VIRTIO_BLK_S_OK, "write");
    CHECK(len == 1, "write: used length %u, want 1", len);
    CHECK(request(d, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL) == VIRTIO_BLK_S_OK, "flush");
    uint8_t back[1536];
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0 && pread(fd, back, sizeof back, 10 * 512) == (ssize_t)sizeof back, "pread");
    if (fd >= 0)
        close(fd);
    CHECK(memcmp(back, buf, 1024) == 0, "written data not in the file");
    bool rest = true;
    for (int i = 0; i < 512; i++)
        rest &= back[1024 + i] == pattern(12 * 512 + (uint64_t)i);
    CHECK(rest, "write spilled past its sectors");

    /* Reading it back through the device. */
    memset(gpa_host(DATA_OFF + 0x1000), 0, 1024);
    struct seg r = {RAM_BASE + DATA_OFF + 0x1000, 1024, true};
    CHECK(request(d, VIRTIO_BLK_T_IN, 10, &r, 1, NULL) == VIRTIO_BLK_S_OK, "read back");
    CHECK(memcmp(gpa_host(DATA_OFF + 0x1000), buf, 1024) == 0, "read back: wrong data");

    memset(gpa_host(DATA_OFF + 0x2000), 0xff, 32);
    struct seg idseg = {RAM_BASE + DATA_OFF + 0x2000, VIRTIO_BLK_ID_BYTES, true};
    CHECK(request(d, VIRTIO_BLK_T_GET_ID, 0, &idseg, 1, &len) == VIRTIO_BLK_S_OK, "GET_ID");
    const char *base = strrchr(path, '/') + 1;
    CHECK(strncmp((char *)gpa_host(DATA_OFF + 0x2000), base, VIRTIO_BLK_ID_BYTES) == 0,
          "GET_ID gave '%.20s', want '%s'", (char *)gpa_host(DATA_OFF + 0x2000), base);
    CHECK(*gpa_host(DATA_OFF + 0x2000 + VIRTIO_BLK_ID_BYTES) == 0xff, "GET_ID wrote past 20 bytes");
}

static void test_bad_requests(struct drv *d)
{
    uint8_t *p = gpa_host(DATA_OFF);
    memset(p, 0x11, 2048);
    struct seg s = {RAM_BASE + DATA_OFF, 1024, true};
    CHECK(request(d, VIRTIO_BLK_T_IN, IMG_SECTORS - 1, &s, 1, NULL) == VIRTIO_BLK_S_IOERR,
          "read across the end accepted");
    CHECK(request(d, VIRTIO_BLK_T_IN, IMG_SECTORS, &s, 1, NULL) == VIRTIO_BLK_S_IOERR,
          "read at capacity accepted");
    CHECK(request(d, VIRTIO_BLK_T_IN, UINT64_MAX / 256, &s, 1, NULL) == VIRTIO_BLK_S_IOERR,
          "read at a huge sector accepted");
    CHECK(request(d, VIRTIO_BLK_T_IN, UINT64_MAX, &s, 1, NULL) == VIRTIO_BLK_S_IOERR,
          "read at sector 2^64-1 accepted");
    bool untouched = true;
    for (int i = 0; i < 2048; i++)
        untouched &= p[i] == 0x11;
    CHECK(untouched, "a refused read wrote guest memory");
    struct seg w = {RAM_BASE + DATA_OFF, 1024, false};
    CHECK(request(d, VIRTIO_BLK_T_OUT, IMG_SECTORS - 1, &w, 1, NULL) == VIRTIO_BLK_S_IOERR,
          "write across the end accepted");
    struct seg odd = {RAM_BASE + DATA_OFF, 700, true};
    CHECK(request(d, VIRTIO_BLK_T_IN, 0, &odd, 1, NULL) == VIRTIO_BLK_S_IOERR,
          "read of 700 bytes accepted");
    CHECK(request(d, 99, 0, NULL, 0, NULL) == VIRTIO_BLK_S_UNSUPP, "unknown type not UNSUPP");
    CHECK(request(d, 11 /* DISCARD, not negotiated */, 0, NULL, 0, NULL) == VIRTIO_BLK_S_UNSUPP,
          "discard not UNSUPP");

    /* A header of 8 bytes: IOERR, no crash. */
    uint64_t st = RAM_BASE + STATUS_OFF + 0x300;
    *gpa_host(st - RAM_BASE) = 0xee;
    struct seg shorthdr[2] = {{RAM_BASE + HDR_OFF, 8, false}, {st, 1, true}};
    drv_add(d, shorthdr, 2);
    kick(d);
    CHECK(drv_wait(d, 10, NULL, NULL), "short header: no completion");
    CHECK(*gpa_host(st - RAM_BASE) == VIRTIO_BLK_S_IOERR, "short header: status %u",
          *gpa_host(st - RAM_BASE));

    /* No writable status byte at all: completed with nothing written. */
    struct seg nostatus[1] = {{RAM_BASE + HDR_OFF, 16, false}};
    drv_add(d, nostatus, 1);
    kick(d);
    uint32_t len = 99;
    CHECK(drv_wait(d, 10, NULL, &len) && len == 0, "chain without a status byte: len %u", len);

    /* Still working afterwards. */
    CHECK(request(d, VIRTIO_BLK_T_IN, 0, &s, 1, NULL) == VIRTIO_BLK_S_OK, "read after bad ones");
}

static void test_malformed(struct drv *d, struct virtio_dev *dev)
{
    /* A data descriptor outside RAM: the device flags NEEDS_RESET. */
    uint64_t hdr = RAM_BASE + HDR_OFF;
    struct seg bad[3] = {{hdr, 16, false}, {RAM_BASE + RAM_SIZE - 512, 4096, true},
                         {RAM_BASE + STATUS_OFF, 1, true}};
    uint32_t type = VIRTIO_BLK_T_IN;
    memcpy(gpa_host(HDR_OFF), &type, 4);
    drv_add(d, bad, 3);
    kick(d);
    double end = now() + 5;
    while (!(reg_read(dev, 0x070) & VIRTIO_STATUS_NEEDS_RESET) && now() < end)
        usleep(500);
    CHECK(reg_read(dev, 0x070) & VIRTIO_STATUS_NEEDS_RESET, "buffer outside RAM: no NEEDS_RESET");
    CHECK(!drv_wait(d, 0.05, NULL, NULL), "buffer outside RAM was completed");

    /* After a reset the device works again. */
    drv_setup(d, dev);
    struct seg s = {RAM_BASE + DATA_OFF, 512, true};
    CHECK(request(d, VIRTIO_BLK_T_IN, 3, &s, 1, NULL) == VIRTIO_BLK_S_OK, "read after reset");
    CHECK(data_matches(DATA_OFF, 3 * 512, 512), "read after reset: wrong data");

    /* A descriptor loop. */
    struct seg loop[2] = {{hdr, 16, false}, {RAM_BASE + DATA_OFF, 512, true}};
    uint16_t head = drv_add(d, loop, 2);
    uint16_t next = head; /* second descriptor points back at the first */
    memcpy(gpa_host(DESC_OFF + 16ull * ((head + 1) % QSIZE) + 14), &next, 2);
    uint16_t flags = F_NEXT | F_WRITE;
    memcpy(gpa_host(DESC_OFF + 16ull * ((head + 1) % QSIZE) + 12), &flags, 2);
    kick(d);
    end = now() + 5;
    while (!(reg_read(dev, 0x070) & VIRTIO_STATUS_NEEDS_RESET) && now() < end)
        usleep(500);
    CHECK(reg_read(dev, 0x070) & VIRTIO_STATUS_NEEDS_RESET, "descriptor loop: no NEEDS_RESET");

    /* The rings themselves outside RAM. */
    drv_setup(d, dev);
    reg_write(dev, 0x070, 0);
    reg_write(dev, 0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    reg_write(dev, 0x024, 1);
    reg_write(dev, 0x020, 1);
    reg_write(dev, 0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                              VIRTIO_STATUS_FEATURES_OK);
    reg_write(dev, 0x038, QSIZE);
    reg_write(dev, 0x080, 0x1000);
    reg_write(dev, 0x090, 0xfffffff0);
    reg_write(dev, 0x094, 0xffffffff);
    reg_write(dev, 0x0a0, 0x2000);
    reg_write(dev, 0x044, 1);
    reg_write(dev, 0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                              VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
    reg_write(dev, 0x050, 0);
    end = now() + 5;
    while (!(reg_read(dev, 0x070) & VIRTIO_STATUS_NEEDS_RESET) && now() < end)
        usleep(500);
    CHECK(reg_read(dev, 0x070) & VIRTIO_STATUS_NEEDS_RESET, "rings outside RAM: no NEEDS_RESET");
    drv_setup(d, dev);
}

static void test_quiesce(struct drv *d, struct virtio_dev *dev)
{
    virtio_blk_quiesce(dev);
    virtio_blk_quiesce(dev); /* nests */
    struct seg segs[3] = {{RAM_BASE + HDR_OFF, 16, false}, {RAM_BASE + DATA_OFF, 512, true},
                          {RAM_BASE + STATUS_OFF, 1, true}};
    uint32_t type = VIRTIO_BLK_T_IN;
    uint64_t sector = 7;
    memcpy(gpa_host(HDR_OFF), &type, 4);
    memcpy(gpa_host(HDR_OFF + 8), &sector, 8);
    memset(gpa_host(DATA_OFF), 0, 512);
    drv_add(d, segs, 3);
    kick(d);
    CHECK(!drv_wait(d, 0.1, NULL, NULL), "request completed while quiesced");
    virtio_blk_resume(dev);
    CHECK(!drv_wait(d, 0.1, NULL, NULL), "request completed while still quiesced once");
    virtio_blk_resume(dev);
    CHECK(drv_wait(d, 10, NULL, NULL), "request not completed after resume");
    CHECK(data_matches(DATA_OFF, 7 * 512, 512), "quiesce: wrong data");

    /* Resume also picks up a request published without a kick (as on a
     * migration destination). */
    virtio_blk_quiesce(dev);
    sector = 9;
    memcpy(gpa_host(HDR_OFF + 8), &sector, 8);
    drv_add(d, segs, 3);
    virtio_blk_resume(dev);
    CHECK(drv_wait(d, 10, NULL, NULL), "unkicked request not completed after resume");
    CHECK(data_matches(DATA_OFF, 9 * 512, 512), "resume: wrong data");
}

static void test_readonly(struct drv *d, struct virtio_dev *dev, const char *path)
{
    drv_setup(d, dev);
    struct seg r = {RAM_BASE + DATA_OFF, 512, true};
    CHECK(request(d, VIRTIO_BLK_T_IN, 1, &r, 1, NULL) == VIRTIO_BLK_S_OK, "ro: read");
    CHECK(data_matches(DATA_OFF, 512, 512), "ro: wrong data");
    memset(gpa_host(DATA_OFF), 0x77, 512);
    struct seg w = {RAM_BASE + DATA_OFF, 512, false};
    CHECK(request(d, VIRTIO_BLK_T_OUT, 1, &w, 1, NULL) == VIRTIO_BLK_S_IOERR, "ro: write accepted");
    CHECK(request(d, VIRTIO_BLK_T_FLUSH, 0, NULL, 0, NULL) == VIRTIO_BLK_S_OK, "ro: flush");
    uint8_t back[512];
    int fd = open(path, O_RDONLY);
    CHECK(fd >= 0 && pread(fd, back, 512, 512) == 512, "pread");
    if (fd >= 0)
        close(fd);
    bool same = true;
    for (int i = 0; i < 512; i++)
        same &= back[i] == pattern(512 + (uint64_t)i);
    CHECK(same, "ro: the file changed");
}

int main(void)
{
    snprintf(tmpdir, sizeof tmpdir, "/tmp/test_virtio_blk.XXXXXX");
    const char *base = getenv("TMPDIR");
    if (base && strlen(base) < 40)
        snprintf(tmpdir, sizeof tmpdir, "%s/tvblk.XXXXXX", base);
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    struct error err = {{0}};
    if (ram_init(&bus.ram, RAM_BASE, RAM_SIZE, &err) < 0) {
        printf("FAIL: ram_init: %s\n", err.msg);
        return 1;
    }

    test_disk_file();

    const char *rw = make_image("disk.img", IMG_SECTORS * 512ull + IMG_TAIL);
    const char *ro = make_image("ro.img", IMG_SECTORS * 512ull);
    int wakes = 0, ro_wakes = 0;
    struct virtio_dev *dev = attach(rw, false, &wakes);
    struct virtio_dev *rodev = attach(ro, true, &ro_wakes);
    test_config(dev, false);
    test_config(rodev, true);

    struct drv d;
    drv_setup(&d, dev);
    test_reads(&d);
    CHECK(__atomic_load_n(&wakes, __ATOMIC_RELAXED) > 0 && (reg_read(dev, 0x060) & VIRTIO_INT_USED), "no used interrupt raised");
    reg_write(dev, 0x064, VIRTIO_INT_USED);
    test_dirty_pages(&d);
    test_write_flush_id(&d, rw);
    test_bad_requests(&d);
    test_malformed(&d, dev);
    test_quiesce(&d, dev);
    test_readonly(&d, rodev, ro);

    /* Reset with requests queued but not kicked, then tear down with the
     * thread idle and one kicked (whatever it is doing, destroy must join). */
    drv_setup(&d, dev);
    struct seg s = {RAM_BASE + DATA_OFF, 512, true};
    CHECK(request(&d, VIRTIO_BLK_T_IN, 0, &s, 1, NULL) == VIRTIO_BLK_S_OK, "read before reset");
    reg_write(dev, 0x070, 0);
    CHECK(reg_read(dev, 0x070) == 0, "reset");
    drv_setup(&d, dev);
    struct seg big = {RAM_BASE + BIG_OFF, 1 << 20, true};
    struct seg segs[3] = {{RAM_BASE + HDR_OFF, 16, false}, big, {RAM_BASE + STATUS_OFF, 1, true}};
    uint32_t type = VIRTIO_BLK_T_IN;
    uint64_t zero = 0;
    memcpy(gpa_host(HDR_OFF), &type, 4);
    memcpy(gpa_host(HDR_OFF + 8), &zero, 8);
    drv_add(&d, segs, 3);
    kick(&d);
    virtio_dev_destroy(dev);
    virtio_dev_destroy(rodev);

    ram_destroy(&bus.ram);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0)
        printf("warning: could not remove %s\n", tmpdir);
    if (failures) {
        printf("test_virtio_blk: %d of %d checks failed\n", failures, checks);
        return 1;
    }
    printf("test_virtio_blk: %d checks passed\n", checks);
    return 0;
}
