/* virtio-net on a real tap, without a machine: the test is the driver (it
 * lays out the rings in guest RAM and sets the transport registers) and,
 * through an AF_PACKET socket on the tap interface, the rest of the LAN.
 * It runs in a network namespace of its own (unshare), so nothing is
 * created on the host; without the privilege for that it is skipped.
 *
 * Checked: config space and features; RX (header, frame, dirty pages);
 * TX (the guest's header is not passed on); frames that arrive with no RX
 * buffer wait in the tap and come in order once buffers are added;
 * quiesce holds both directions until resume; announce sends RARP from the
 * card's MAC; a device reset and a fresh driver setup work; destroy joins
 * the thread (ASan checks for leaks); mergeable RX buffers (a frame over
 * several buffers, published at once, TCP payload split 8-aligned, waiting
 * for enough buffers); NO_INTERRUPT suppresses the used interrupt. */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "dev/virtio.h"
#include "dev/virtio_devices.h"
#include "dev/virtio_net.h"
#include "mem/bus.h"
#include "tap_lan.h"
#include "check.h"

#define RAM_BASE 0x80000000ull
#define RAM_SIZE (4ull << 20)
#define QSIZE 16
#define BUF_SIZE 2048
#define TAP "utap0"
#define ETYPE 0x88b5 /* IEEE local experimental */

static const uint8_t guest_mac[6] = {0x52, 0x54, 0x00, 0xaa, 0xbb, 0xcc};
static const uint8_t peer_mac[6] = {0x02, 0x00, 0x00, 0x00, 0x00, 0x01};

static struct bus bus;
static struct virtio_dev dev;
static int pkt_fd = -1;

static uint8_t *host(uint64_t gpa) { return bus.ram.host + (gpa - RAM_BASE); }

static void reg_write(uint64_t off, uint32_t v) { virtio_mmio_ops.write(&dev, off, v, 4); }
static uint32_t reg_read(uint64_t off) { return (uint32_t)virtio_mmio_ops.read(&dev, off, 4); }

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ---- the driver side ---- */

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

/* A fresh driver accepting VERSION_1 and the given low feature bits. */
static void driver_setup_features(uint32_t features)
{
    reg_write(0x070, 0);
    reg_write(0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER);
    reg_write(0x024, 1);
    reg_write(0x020, 1); /* VERSION_1 */
    reg_write(0x024, 0);
    reg_write(0x020, features);
    reg_write(0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK);
    CHECK(reg_read(0x070) & VIRTIO_STATUS_FEATURES_OK, "FEATURES_OK refused");
    q_init(&rxq, 0);
    q_init(&txq, 1);
    reg_write(0x070, VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER |
                         VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
}

static void driver_setup(void) { driver_setup_features((1u << 5) | (1u << 16)); /* MAC, STATUS */ }

/* Slot s of a queue: descriptors 2s and 2s+1, buffer bufs + s * 2 * BUF_SIZE. */
static uint64_t slot_buf(const struct q *q, unsigned s) { return q->bufs + s * 2ull * BUF_SIZE; }

static void put_desc(struct q *q, unsigned i, uint64_t addr, uint32_t len, uint16_t flags,
                     uint16_t next)
{
    uint8_t *d = host(q->desc + 16ull * i);
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

static void kick(struct q *q) { reg_write(0x050, q->index); }

/* RX: one writable buffer per slot. */
static void rx_post(unsigned n)
{
    for (unsigned k = 0; k < n; k++) {
        unsigned s = rxq.avail_idx % (QSIZE / 2);
        memset(host(slot_buf(&rxq, s)), 0xee, BUF_SIZE);
        put_desc(&rxq, 2 * s, slot_buf(&rxq, s), BUF_SIZE, 2 /* WRITE */, 0);
        publish(&rxq, (uint16_t)(2 * s));
    }
    kick(&rxq);
}

/* Waits up to ms for a used entry; returns 1 with id/len, 0 on timeout. */
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

/* The next received frame of ours (others, e.g. IPv6 chatter, are skipped
 * and their buffers reposted). Returns its length without the header, or
 * -1; the frame is copied to out. */
static int rx_frame(long ms, uint8_t *out, uint8_t hdr[12])
{
    uint32_t id, len;
    while (used_next(&rxq, ms, &id, &len)) {
        const uint8_t *b = host(slot_buf(&rxq, id / 2));
        bool ours = len >= 12 + 14 && b[12 + 12] == (ETYPE >> 8) && b[12 + 13] == (ETYPE & 0xff);
        if (ours) {
            memcpy(hdr, b, 12);
            memcpy(out, b + 12, len - 12);
            return (int)len - 12;
        }
        rx_post(1);
    }
    return -1;
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

/* ---- the LAN side: a packet socket on the tap ---- */

static void lan_send(const uint8_t *f, size_t len)
{
    CHECK(send(pkt_fd, f, len, 0) == (ssize_t)len, "packet send: %s", strerror(errno));
}

/* Next frame the device sent (not one we injected) with ethertype etype. */
static int lan_recv(uint16_t etype, long ms, uint8_t *out, size_t cap)
{
    struct timespec t0, now;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        clock_gettime(CLOCK_MONOTONIC, &now);
        long left = ms - ((now.tv_sec - t0.tv_sec) * 1000 + (now.tv_nsec - t0.tv_nsec) / 1000000);
        if (left <= 0)
            return -1;
        struct pollfd p = {.fd = pkt_fd, .events = POLLIN};
        if (poll(&p, 1, (int)left) <= 0)
            continue;
        struct sockaddr_ll sll;
        socklen_t sl = sizeof sll;
        ssize_t n = recvfrom(pkt_fd, out, cap, 0, (struct sockaddr *)&sll, &sl);
        if (n < 14 || sll.sll_pkttype == PACKET_OUTGOING)
            continue;
        if (out[12] == (etype >> 8) && out[13] == (etype & 0xff))
            return (int)n;
    }
}

/* ---- tests ---- */

static void test_config(void)
{
    CHECK(reg_read(0x008) == VIRTIO_ID_NET, "device id %u", reg_read(0x008));
    reg_write(0x014, 0);
    uint32_t f0 = reg_read(0x010);
    reg_write(0x014, 1);
    uint32_t f1 = reg_read(0x010);
    CHECK((f0 & (1u << 5)) && (f0 & (1u << 16)), "features low %#x lack MAC/STATUS", f0);
    /* Checksum and TCP segmentation offloads both ways are offered; this
     * test's driver declines them, so headers below stay all zero. */
    uint32_t offloads = (1u << 0) | (1u << 1) | (1u << 7) | (1u << 8) | (1u << 11) | (1u << 12);
    CHECK((f0 & offloads) == offloads, "offloads not offered: %#x", f0);
    CHECK(f1 & 1, "VERSION_1 not offered: %#x", f1);
    for (int i = 0; i < 6; i++)
        CHECK(virtio_mmio_ops.read(&dev, 0x100 + i, 1) == guest_mac[i], "mac[%d]", i);
    CHECK(virtio_mmio_ops.read(&dev, 0x106, 2) == 1, "status not LINK_UP");
    CHECK(virtio_mmio_ops.read(&dev, 0x100, 4) == 0xaa005452u, "32-bit config read %#llx",
          (unsigned long long)virtio_mmio_ops.read(&dev, 0x100, 4));
    uint8_t mac[6];
    virtio_net_mac(&dev, mac);
    CHECK(memcmp(mac, guest_mac, 6) == 0, "virtio_net_mac");
    CHECK(virtio_net_is(&dev), "virtio_net_is");
}

static void test_rx(void)
{
    uint8_t f[1600], got[BUF_SIZE], hdr[12];
    size_t len = make_frame(f, guest_mac, peer_mac, 1, 1500);
    lan_send(f, len);
    int n = rx_frame(2000, got, hdr);
    CHECK(n == (int)len, "RX frame length %d, want %zu", n, len);
    if (n == (int)len)
        CHECK(memcmp(got, f, len) == 0, "RX frame content differs");
    static const uint8_t want_hdr[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0};
    CHECK(memcmp(hdr, want_hdr, 12) == 0, "RX header not zeros + num_buffers 1");
    rx_post(1);
}

static void test_tx(void)
{
    uint8_t f[1600], got[4096];
    size_t len = make_frame(f, peer_mac, guest_mac, 2, 1000);
    unsigned s = txq.avail_idx % (QSIZE / 2);
    uint64_t b = slot_buf(&txq, s);
    memset(host(b), 0, 12);
    host(b)[0] = 1; /* NEEDS_CSUM: not negotiated, must not reach the tap */
    memcpy(host(b + BUF_SIZE), f, len);
    put_desc(&txq, 2 * s, b, 12, 1 /* NEXT */, (uint16_t)(2 * s + 1));
    put_desc(&txq, 2 * s + 1, b + BUF_SIZE, (uint32_t)len, 0, 0);
    publish(&txq, (uint16_t)(2 * s));
    kick(&txq);
    int n = lan_recv(ETYPE, 2000, got, sizeof got);
    CHECK(n == (int)len, "TX frame length %d, want %zu", n, len);
    if (n == (int)len)
        CHECK(memcmp(got, f, len) == 0, "TX frame content differs");
    uint32_t id, ulen;
    CHECK(used_next(&txq, 2000, &id, &ulen) && id == 2 * s, "TX request not completed");
}

static void tx_send(unsigned seq)
{
    uint8_t f[200];
    size_t len = make_frame(f, peer_mac, guest_mac, seq, 100);
    unsigned s = txq.avail_idx % (QSIZE / 2);
    uint64_t b = slot_buf(&txq, s);
    memset(host(b), 0, 12);
    memcpy(host(b + 12), f, len);
    put_desc(&txq, 2 * s, b, (uint32_t)(12 + len), 0, 0);
    publish(&txq, (uint16_t)(2 * s));
    kick(&txq);
}

static void test_no_rx_buffers(void)
{
    /* Use up every posted buffer, then send 3 more frames than fit. */
    uint8_t f[200], got[BUF_SIZE], hdr[12];
    unsigned posted = (uint16_t)(rxq.avail_idx - rxq.used_seen);
    for (unsigned i = 0; i < posted + 3; i++) {
        size_t len = make_frame(f, guest_mac, peer_mac, 100 + i, 100);
        lan_send(f, len);
    }
    for (unsigned i = 0; i < posted; i++)
        CHECK(rx_frame(2000, got, hdr) == 114 && got[14] == (uint8_t)((100 + i) * 31),
              "frame %u of the first batch", i);
    uint32_t id, len;
    CHECK(!used_next(&rxq, 200, &id, &len), "a frame came in without a buffer");
    rx_post(QSIZE / 2);
    for (unsigned i = posted; i < posted + 3; i++)
        CHECK(rx_frame(2000, got, hdr) == 114 && got[14] == (uint8_t)((100 + i) * 31),
              "held frame %u not delivered in order after new buffers", i);
    rx_post(3);
}

static void test_quiesce(void)
{
    uint8_t f[200], got[BUF_SIZE], hdr[12];
    virtio_net_quiesce(&dev);
    virtio_net_quiesce(&dev); /* nests */
    size_t len = make_frame(f, guest_mac, peer_mac, 7, 100);
    lan_send(f, len);
    tx_send(8);
    sleep_ms(200);
    uint32_t id, ulen;
    CHECK(!used_next(&rxq, 0, &id, &ulen), "RX while quiesced");
    CHECK(!used_next(&txq, 0, &id, &ulen), "TX while quiesced");
    virtio_net_resume(&dev);
    sleep_ms(100);
    CHECK(!used_next(&rxq, 0, &id, &ulen), "RX after one of two resumes");
    virtio_net_resume(&dev);
    CHECK(rx_frame(2000, got, hdr) == (int)len && memcmp(got, f, len) == 0,
          "frame that arrived while quiesced not delivered after resume");
    CHECK(lan_recv(ETYPE, 2000, got, sizeof got) == 114 && got[14] == (uint8_t)(8 * 31),
          "TX queued while quiesced not sent after resume");
    CHECK(used_next(&txq, 2000, &id, &ulen), "TX not completed after resume");
    rx_post(1);
}

static void test_announce(void)
{
    uint8_t got[256];
    CHECK(virtio_net_announce(&dev) > 0, "announce failed");
    int n = lan_recv(0x8035, 2000, got, sizeof got);
    CHECK(n >= 42, "no RARP frame (%d)", n);
    if (n >= 42) {
        static const uint8_t bcast[6] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
        CHECK(memcmp(got, bcast, 6) == 0, "RARP not broadcast");
        CHECK(memcmp(got + 6, guest_mac, 6) == 0, "RARP source is not the guest MAC");
        CHECK(got[20] == 0 && got[21] == 3, "RARP opcode %u", got[21]);
        CHECK(memcmp(got + 22, guest_mac, 6) == 0, "RARP sender hardware address");
    }
}

static void test_reset(void)
{
    reg_write(0x070, 0);
    CHECK(reg_read(0x070) == 0, "status after reset");
    /* A frame arriving between reset and the new setup waits in the tap. */
    uint8_t f[200], got[BUF_SIZE], hdr[12];
    size_t len = make_frame(f, guest_mac, peer_mac, 9, 100);
    lan_send(f, len);
    sleep_ms(50);
    driver_setup();
    rx_post(QSIZE / 2);
    CHECK(rx_frame(2000, got, hdr) == (int)len && memcmp(got, f, len) == 0,
          "RX after reset");
    tx_send(10);
    CHECK(lan_recv(ETYPE, 2000, got, sizeof got) == 114, "TX after reset");
}

/* ---- mergeable RX buffers ---- */

#define MRG_RXBUF (1u << 15)
#define MRG_BUF 256

/* One 256-byte writable buffer per descriptor: descriptor s, buffer s. */
static void mrg_post(unsigned n)
{
    for (unsigned k = 0; k < n; k++) {
        unsigned s = rxq.avail_idx % QSIZE;
        uint64_t b = rxq.bufs + s * (uint64_t)MRG_BUF;
        memset(host(b), 0xee, MRG_BUF);
        put_desc(&rxq, s, b, MRG_BUF, 2 /* WRITE */, 0);
        publish(&rxq, (uint16_t)s);
    }
    kick(&rxq);
}

/* An IPv4/TCP frame to the guest (TCP header with options: 32 bytes), so
 * the payload starts at 14 + 20 + 32 = 66 bytes into the frame. */
static size_t make_tcp_frame(uint8_t *f, size_t payload)
{
    memset(f, 0, 66);
    memcpy(f, guest_mac, 6);
    memcpy(f + 6, peer_mac, 6);
    f[12] = 0x08, f[13] = 0x00;
    f[14] = 0x45;                 /* IPv4, 20-byte header */
    f[14 + 9] = 6;                /* TCP */
    f[34 + 12] = 8 << 4;          /* data offset: 8 words */
    for (size_t i = 0; i < payload; i++)
        f[66 + i] = (uint8_t)(i * 13 + 5);
    return 66 + payload;
}

static void test_mergeable(void)
{
    driver_setup_features((1u << 5) | (1u << 16) | MRG_RXBUF);
    uint8_t f[1200], got[2048];
    size_t len = make_tcp_frame(f, 934); /* 1000 bytes, 1012 with the header */

    /* Three buffers hold 768 bytes: the frame must wait, none used. */
    mrg_post(3);
    lan_send(f, len);
    uint32_t id, ulen;
    CHECK(!used_next(&rxq, 300, &id, &ulen), "a frame was split over too few buffers");

    /* Enough buffers: all of it at once, num_buffers in the first. */
    mrg_post(5);
    uint32_t lens[8];
    unsigned nb = 0, want = 0;
    size_t total = 0;
    while (nb < 8 && used_next(&rxq, nb ? 0 : 2000, &id, &ulen)) {
        const uint8_t *b = host(rxq.bufs + id * (uint64_t)MRG_BUF);
        CHECK(ulen <= MRG_BUF, "buffer %u: used length %u", nb, ulen);
        if (!nb)
            want = b[10] | b[11] << 8;
        if (ulen <= MRG_BUF && total + ulen <= sizeof got)
            memcpy(got + total, b, ulen);
        total += ulen;
        lens[nb++] = ulen;
    }
    CHECK(nb >= 4 && nb == want, "frame in %u buffers, num_buffers says %u", nb, want);
    CHECK(total == 12 + len, "merged length %zu, want %zu", total, 12 + len);
    if (total == 12 + len)
        CHECK(memcmp(got + 12, f, len) == 0, "merged frame content differs");
    /* Every buffer after the first starts at a payload offset that is a
     * multiple of 8, so the guest's copy out of it stays aligned. */
    size_t before = 0;
    for (unsigned j = 0; j < nb; j++) {
        if (j)
            CHECK((before - (12 + 66)) % 8 == 0, "buffer %u starts at payload offset %zu", j,
                  before - (12 + 66));
        before += lens[j];
    }

    /* NO_INTERRUPT in the available ring's flags: the used entry comes,
     * the interrupt does not; without the flag it does. */
    reg_write(0x064, reg_read(0x060));
    *(volatile uint16_t *)host(rxq.avail) = 1;
    uint8_t g[200];
    size_t glen = make_frame(g, guest_mac, peer_mac, 11, 100);
    lan_send(g, glen);
    CHECK(used_next(&rxq, 2000, &id, &ulen) && ulen == 12 + glen, "small frame not received");
    CHECK(!(reg_read(0x060) & VIRTIO_INT_USED), "interrupt raised under NO_INTERRUPT");
    *(volatile uint16_t *)host(rxq.avail) = 0;
    lan_send(g, glen);
    CHECK(used_next(&rxq, 2000, &id, &ulen) && ulen == 12 + glen, "second frame not received");
    CHECK(reg_read(0x060) & VIRTIO_INT_USED, "no interrupt without NO_INTERRUPT");
}

int main(void)
{
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (unshare(CLONE_NEWNET) < 0) {
        printf("test_virtio_net: skipped: no network namespace of its own (%s)\n",
               strerror(errno));
        return 0;
    }
    if (access("/dev/net/tun", R_OK | W_OK) < 0) {
        printf("test_virtio_net: skipped: /dev/net/tun: %s\n", strerror(errno));
        return 0;
    }
    tap_lan_no_ipv6();
    struct error err;
    if (ram_init(&bus.ram, RAM_BASE, RAM_SIZE, &err) < 0) {
        printf("FAIL: ram_init: %s\n", err.msg);
        return 1;
    }
    virtio_dev_init(&dev, NULL, NULL, &bus, (struct irq_line){0});
    if (virtio_net_attach(&dev, "tap=" TAP ",mac=52:54:00:aa:bb:cc", &err) < 0) {
        printf("FAIL: attach: %s\n", err.msg);
        return 1;
    }
    if ((pkt_fd = tap_lan_open(TAP)) < 0)
        return 1;
    driver_setup();
    rx_post(QSIZE / 2);

    test_config();
    test_rx();
    test_tx();
    test_no_rx_buffers();
    test_quiesce();
    test_announce();
    test_reset();
    test_mergeable();

    virtio_dev_destroy(&dev);
    close(pkt_fd);
    ram_destroy(&bus.ram);
    printf("test_virtio_net: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
