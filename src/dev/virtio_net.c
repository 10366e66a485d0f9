/* virtio-net (device id 1) on a tap interface.
 *
 * Features: MAC and STATUS (link always up), VERSION_1 from the transport,
 * checksum + TCP segmentation offloads in both directions, and mergeable
 * RX buffers. The tap is opened with IFF_VNET_HDR, so the 12-byte
 * virtio_net_hdr passes between guest and tap unchanged (but for
 * num_buffers): the host kernel does the checksum and segmentation work
 * the guest left, and hands the guest only what the guest negotiated to
 * accept (TUNSETOFFLOAD follows the driver's features). A driver that
 * declines the offloads gets all-zero headers. With MRG_RXBUF a 64 KiB
 * frame goes into ~17 page-sized buffers, split so that the guest's copy
 * to its reader stays aligned (vnet_rx_merged).
 *
 * Queue 0 is RX, queue 1 is TX. One I/O thread per card poll()s the tap
 * and an eventfd the vCPU thread signals on queue notifications:
 *   - TX kick: pop every TX request, write header + frame to the tap.
 *   - tap readable: read one frame into `rx_frame`, pop RX buffers, copy
 *     it in. With no RX buffer available the frame is kept and the tap is
 *     no longer polled, so further frames wait in the tap's queue, until
 *     the driver adds buffers and kicks queue 0.
 * queue_notify (vCPU thread) only sets a flag and writes the eventfd.
 *
 * Pausing: the thread parks (does nothing, touches neither the queues nor
 * the tap) while `quiesce` > 0 (live migration) or `parked` (set by a
 * device reset, cleared by the next notification: the transport zeroes
 * its state right after our reset hook returns, and the driver always
 * kicks once it has set the queues up again). Whoever parks it waits on
 * `cond` until `idle`.
 *
 * Output commit (virtio_net_hold_output): every frame for the tap goes
 * through a frame_hold filter (src/backend/frame_hold.h), which sends it
 * or, while replication holds output, keeps it until its epoch is
 * acknowledged. The device itself knows nothing of epochs. */
#include "dev/virtio_net.h"

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/if_tun.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "backend/frame_hold.h"
#include "backend/tap.h"
#include "dev/virtio_devices.h"

#define VIRTIO_NET_F_CSUM (1ull << 0)       /* we finish checksums the guest left */
#define VIRTIO_NET_F_GUEST_CSUM (1ull << 1) /* the guest accepts partial checksums */
#define VIRTIO_NET_F_MAC (1ull << 5)
#define VIRTIO_NET_F_GUEST_TSO4 (1ull << 7) /* the guest accepts large TCP segments */
#define VIRTIO_NET_F_GUEST_TSO6 (1ull << 8)
#define VIRTIO_NET_F_HOST_TSO4 (1ull << 11) /* we accept large TCP segments */
#define VIRTIO_NET_F_HOST_TSO6 (1ull << 12)
#define VIRTIO_NET_F_MRG_RXBUF (1ull << 15) /* a frame may span several RX buffers */
#define VIRTIO_NET_F_STATUS (1ull << 16)
/* Offloads: the 12-byte header travels between the guest and the tap
 * (IFF_VNET_HDR) unchanged, so the host kernel does the checksum and
 * segmentation work the guest's negotiated features leave to the device. */
#define NET_OFFLOADS (VIRTIO_NET_F_CSUM | VIRTIO_NET_F_HOST_TSO4 | VIRTIO_NET_F_HOST_TSO6 | \
                      VIRTIO_NET_F_GUEST_CSUM | VIRTIO_NET_F_GUEST_TSO4 | VIRTIO_NET_F_GUEST_TSO6)
#define VIRTIO_NET_S_LINK_UP 1

#define NET_RXQ 0
#define NET_TXQ 1
#define NET_HDR_LEN TAP_VNET_HDR_LEN /* virtio_net_hdr with num_buffers (VERSION_1) */
#define ETH_HDR_LEN 14
/* Largest frame a tap hands over or we accept from the guest: 64 KiB of
 * payload is beyond any MTU the tap can have. */
#define NET_MAX_FRAME (65536 + ETH_HDR_LEN + 4)
#define NET_ANNOUNCE_FRAMES 3

struct vnet {
    struct virtio_dev *dev;
    int tap_fd;
    unsigned tap_offloads;        /* TUN_F_* last set on the tap */
    int event_fd;                 /* notifications and control */
    char ifname[TAP_NAME_MAX + 1];
    uint8_t mac[6];

    pthread_t thread;
    pthread_mutex_t mu;           /* guards the control fields below */
    pthread_cond_t cond;
    bool stop;
    unsigned quiesce;             /* nesting count */
    bool parked;                  /* after a reset, until the next kick */
    bool idle;                    /* the thread is parked and waits */

    /* Set by queue_notify (any thread), consumed by the I/O thread. */
    bool rx_kick, tx_kick;

    /* I/O thread only (or under mu while it is idle). */
    bool rx_wait;                 /* no RX buffer: tap not polled */
    size_t rx_len;                /* pending frame in rx_frame, with header */
    bool tap_error_logged;
    bool tap_dead;                /* read failed for good: stop polling it */
    uint64_t rx_frames, tx_frames, rx_dropped, tx_dropped;

    /* TX frames go out through this filter (replication's output commit). */
    struct frame_hold out;
    bool out_error_logged;        /* a released frame's write failed (logged once) */
    struct virtq_req rx_first, rx_req; /* RX buffers being filled (I/O thread) */
    uint8_t rx_frame[NET_HDR_LEN + NET_MAX_FRAME];
    uint8_t tx_frame[NET_HDR_LEN + NET_MAX_FRAME];
};

static const struct virtio_device_ops net_ops;

/* Features the driver acknowledged (fixed once it set FEATURES_OK). */
static uint64_t vnet_features(const struct vnet *n);

static uint64_t vnet_features(const struct vnet *n)
{
    return __atomic_load_n(&n->dev->s.driver_features, __ATOMIC_RELAXED);
}

static struct vnet *vnet_of(const struct virtio_dev *dev)
{
    return dev && dev->ops == &net_ops ? dev->opaque : NULL;
}

bool virtio_net_is(const struct virtio_dev *dev)
{
    return vnet_of(dev) != NULL;
}

static void vnet_signal(struct vnet *n)
{
    uint64_t one = 1;
    /* Nonblocking: a full counter already means "wake up". */
    if (write(n->event_fd, &one, sizeof one) < 0) {
    }
}

static void log_tap_error(struct vnet *n, const char *what, int e)
{
    if (n->tap_error_logged)
        return;
    n->tap_error_logged = true;
    fprintf(stderr, "ferry: virtio-net %s: %s: %s (further errors not shown)\n", n->ifname, what,
            strerror(e));
}

/* ---- TX: guest → tap ---- */

/* Writes one frame to the tap; false if it was lost. Errors other than
 * EAGAIN (tap queue full) and EIO (interface down) are logged once, in
 * *logged. */
static bool vnet_tap_write(struct vnet *n, const uint8_t *f, size_t len, bool *logged)
{
    ssize_t w;
    do
        w = write(n->tap_fd, f, len);
    while (w < 0 && errno == EINTR);
    if (w >= 0)
        return true;
    if (errno != EAGAIN && errno != EIO && !*logged) {
        *logged = true;
        fprintf(stderr, "ferry: virtio-net %s: write: %s (further errors not shown)\n",
                n->ifname, strerror(errno));
    }
    return false;
}

/* The filter's sink: the tap. */
static bool vnet_sink(void *opaque, const uint8_t *frame, size_t len, bool released)
{
    struct vnet *n = opaque;
    return vnet_tap_write(n, frame, len, released ? &n->out_error_logged : &n->tap_error_logged);
}

/* Sends (or has held) the frame in tx_frame. I/O thread. */
static void vnet_output(struct vnet *n, size_t len)
{
    if (frame_hold_output(&n->out, n->tx_frame, len))
        n->tx_frames++;
    else
        n->tx_dropped++;
}

static void vnet_tx(struct vnet *n)
{
    struct virtq_req req;
    while (virtq_pop(n->dev, NET_TXQ, &req) == 1) {
        size_t len = virtq_readable_len(&req);
        if (len <= NET_HDR_LEN || len > sizeof n->tx_frame ||
            virtq_read(n->dev, &req, 0, n->tx_frame, len) != (ssize_t)len) {
            n->tx_dropped++;
        } else {
            if (vnet_features(n) & VIRTIO_NET_F_CSUM) {
                /* Checksum/segmentation requests go to the tap as the
                 * guest wrote them; num_buffers is for received frames. */
                n->tx_frame[10] = n->tx_frame[11] = 0;
            } else {
                /* Without offloads the tap gets "complete frame". */
                memset(n->tx_frame, 0, NET_HDR_LEN);
            }
            /* Sent (a frame the tap refuses is lost, as on a wire) or
             * held for the standby's acknowledgement. */
            vnet_output(n, len);
        }
        virtq_push(n->dev, NET_TXQ, req.head, 0);
    }
}

/* ---- RX: tap → guest ---- */

/* Reads one frame from the tap into rx_frame; false when there is none. */
static bool vnet_read_frame(struct vnet *n)
{
    for (;;) {
        ssize_t r = read(n->tap_fd, n->rx_frame, sizeof n->rx_frame);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN) {
                /* E.g. EBADFD once the interface is deleted: the tap
                 * would poll readable forever, so stop looking at it. */
                log_tap_error(n, "read", errno);
                n->tap_dead = true;
            }
            return false;
        }
        if ((size_t)r < NET_HDR_LEN + ETH_HDR_LEN) {
            n->rx_dropped++; /* cannot happen with a tap; skip it */
            continue;
        }
        n->rx_len = (size_t)r;
        return true;
    }
}

/* Lets the tap hand us what the guest negotiated to accept: partial
 * checksums and large TCP segments (needs GUEST_CSUM). Checked before each
 * receive batch, so a driver reset or a migrated state takes effect. */
static void vnet_sync_offloads(struct vnet *n)
{
    uint64_t f = vnet_features(n);
    unsigned want = 0;
    if (f & VIRTIO_NET_F_GUEST_CSUM) {
        want |= TUN_F_CSUM;
        if (f & VIRTIO_NET_F_GUEST_TSO4)
            want |= TUN_F_TSO4;
        if (f & VIRTIO_NET_F_GUEST_TSO6)
            want |= TUN_F_TSO6;
    }
    if (want != n->tap_offloads && ioctl(n->tap_fd, TUNSETOFFLOAD, (unsigned long)want) == 0)
        n->tap_offloads = want;
}

/* rx_frame into one buffer (no MRG_RXBUF). False when the ring is empty. */
static bool vnet_rx_single(struct vnet *n)
{
    struct virtq_req *req = &n->rx_req;
    if (virtq_pop(n->dev, NET_RXQ, req) != 1)
        return false;
    uint32_t written = 0;
    if (virtq_writable_len(req) < n->rx_len) {
        /* Only with an MTU above the driver's buffers. A zero-length
         * completion makes the driver drop it and recycle the buffer. */
        n->rx_dropped++;
    } else {
        n->rx_frame[10] = 1; /* num_buffers, little-endian */
        n->rx_frame[11] = 0;
        if (virtq_write(n->dev, req, 0, n->rx_frame, n->rx_len) == (ssize_t)n->rx_len) {
            written = (uint32_t)n->rx_len;
            n->rx_frames++;
        } else {
            n->rx_dropped++;
        }
    }
    virtq_push(n->dev, NET_RXQ, req->head, written);
    return true;
}

/* Where the TCP payload starts in rx_frame (header included), or 0 when
 * the frame is not TCP over IPv4/IPv6 (nothing to align). */
static size_t vnet_tcp_payload_offset(const struct vnet *n)
{
    const uint8_t *f = n->rx_frame + NET_HDR_LEN;
    size_t len = n->rx_len - NET_HDR_LEN, off = ETH_HDR_LEN;
    unsigned type = (unsigned)f[12] << 8 | f[13];
    if (type == 0x8100 && len >= off + 4) { /* one VLAN tag */
        type = (unsigned)f[16] << 8 | f[17];
        off += 4;
    }
    if (type == 0x0800 && len >= off + 20 && f[off + 9] == 6)
        off += (size_t)(f[off] & 0xf) * 4;
    else if (type == 0x86dd && len >= off + 40 && f[off + 6] == 6)
        off += 40;
    else
        return 0;
    if (len < off + 20)
        return 0;
    off += (size_t)(f[off + 12] >> 4) * 4;
    return off <= len ? NET_HDR_LEN + off : 0;
}

/* rx_frame spread over as many buffers as it takes (MRG_RXBUF): the
 * driver then posts page-sized buffers instead of a chain of 17 pages
 * per frame, and builds its packet from them without copying. All of
 * them are published at once, the count in the first one's header.
 * False, with every buffer handed back, when the ring runs out first. */
static bool vnet_rx_merged(struct vnet *n)
{
    struct virtq_used done[VIRTIO_QUEUE_MAX_SIZE];
    unsigned nb = 0;
    bool ok = true;
    size_t payload = vnet_tcp_payload_offset(n);
    for (size_t off = 0; off < n->rx_len;) {
        struct virtq_req *req = nb ? &n->rx_req : &n->rx_first;
        if (nb == VIRTIO_QUEUE_MAX_SIZE || virtq_pop(n->dev, NET_RXQ, req) != 1) {
            if (nb < VIRTIO_QUEUE_MAX_SIZE) {
                virtq_unpop(n->dev, NET_RXQ, nb);
                return false;
            }
            ok = false; /* cannot happen with Linux's buffer sizes */
            break;
        }
        size_t chunk = virtq_writable_len(req);
        if (chunk < n->rx_len - off) {
            /* Not the last buffer: end it where the payload after it
             * starts 8-byte aligned again. Linux's buffers are 64-byte
             * aligned and the guest copies payload to an aligned user
             * buffer; with source and destination equally aligned its
             * copy loop moves 8 words per turn instead of shifting
             * every word into place (3-4x fewer instructions). */
            size_t end = off + chunk;
            size_t cut = payload && end > payload + 8 ? (end - payload) & 7 : 0;
            if (chunk > cut + NET_HDR_LEN)
                chunk -= cut;
        } else {
            chunk = n->rx_len - off;
        }
        /* The header must sit in the first buffer. */
        if ((!nb && chunk < NET_HDR_LEN) || !chunk ||
            virtq_write(n->dev, req, 0, n->rx_frame + off, chunk) != (ssize_t)chunk) {
            done[nb++] = (struct virtq_used){req->head, 0};
            ok = false;
            break;
        }
        done[nb++] = (struct virtq_used){req->head, (uint32_t)chunk};
        off += chunk;
    }
    uint8_t count[2] = {(uint8_t)nb, (uint8_t)(nb >> 8)}; /* num_buffers, little-endian */
    if (ok && virtq_write(n->dev, &n->rx_first, 10, count, 2) != 2)
        ok = false;
    if (ok) {
        n->rx_frames++;
    } else {
        /* Zero-length completions: the driver drops each one and
         * recycles the buffer. */
        for (unsigned i = 0; i < nb; i++)
            done[i].written = 0;
        n->rx_dropped++;
    }
    virtq_push_batch(n->dev, NET_RXQ, done, nb);
    return true;
}

static void vnet_rx(struct vnet *n)
{
    vnet_sync_offloads(n);
    bool merge = vnet_features(n) & VIRTIO_NET_F_MRG_RXBUF;
    while (!n->rx_wait) {
        if (!n->rx_len && !vnet_read_frame(n))
            return;
        /* The tap's header says what it left undone (partial checksum,
         * segmentation), which the guest agreed to accept when the tap
         * was allowed to leave it. */
        if (!n->tap_offloads)
            memset(n->rx_frame, 0, NET_HDR_LEN);
        if (!(merge ? vnet_rx_merged(n) : vnet_rx_single(n))) {
            /* No buffer (or a broken queue the driver must reset): keep
             * the frame, leave the rest in the tap until a kick. */
            n->rx_wait = true;
            return;
        }
        n->rx_len = 0;
    }
}

/* ---- the I/O thread ---- */

static bool vnet_paused(const struct vnet *n)
{
    return n->quiesce > 0 || n->parked;
}

static void *vnet_thread(void *opaque)
{
    struct vnet *n = opaque;
    for (;;) {
        pthread_mutex_lock(&n->mu);
        while (!n->stop && vnet_paused(n)) {
            if (!n->idle) {
                n->idle = true;
                pthread_cond_broadcast(&n->cond);
            }
            pthread_cond_wait(&n->cond, &n->mu);
        }
        n->idle = false;
        bool stop = n->stop;
        pthread_mutex_unlock(&n->mu);
        if (stop)
            break;

        uint64_t count;
        if (read(n->event_fd, &count, sizeof count) < 0) {
            /* EAGAIN: woken by the tap, not by a kick */
        }
        if (__atomic_exchange_n(&n->rx_kick, false, __ATOMIC_ACQ_REL))
            n->rx_wait = false;
        __atomic_store_n(&n->tx_kick, false, __ATOMIC_RELEASE);
        /* TX is cheap to check when empty: do it on every wakeup. */
        vnet_tx(n);
        vnet_rx(n);

        struct pollfd pfd[2] = {{.fd = n->event_fd, .events = POLLIN},
                                {.fd = n->tap_fd, .events = POLLIN}};
        /* With a frame pending or no RX buffer, only a kick can help. */
        nfds_t nfds = n->rx_wait || n->rx_len || n->tap_dead ? 1 : 2;
        if (poll(pfd, nfds, -1) < 0 && errno != EINTR) {
            fprintf(stderr, "ferry: virtio-net %s: poll: %s\n", n->ifname, strerror(errno));
            break;
        }
    }
    /* Whoever waits for the thread to go idle must not wait forever. */
    pthread_mutex_lock(&n->mu);
    n->idle = true;
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->mu);
    return NULL;
}

/* Parks the thread and waits until it is idle. Caller holds mu. */
static void vnet_wait_idle_locked(struct vnet *n)
{
    vnet_signal(n);
    pthread_cond_broadcast(&n->cond);
    while (!n->idle)
        pthread_cond_wait(&n->cond, &n->mu);
}

/* ---- transport hooks ---- */

static uint64_t net_config_read(struct virtio_dev *dev, uint64_t offset, unsigned size)
{
    struct vnet *n = dev->opaque;
    uint8_t cfg[8];
    memcpy(cfg, n->mac, 6);
    cfg[6] = VIRTIO_NET_S_LINK_UP; /* status, little-endian */
    cfg[7] = 0;
    uint64_t v = 0;
    for (unsigned i = 0; i < size && i < 8; i++)
        if (offset + i < sizeof cfg)
            v |= (uint64_t)cfg[offset + i] << (8 * i);
    return v;
}

static void net_config_write(struct virtio_dev *dev, uint64_t offset, uint64_t value,
                             unsigned size)
{
    /* Read-only with VERSION_1 (only legacy drivers could set the MAC). */
    (void)dev;
    (void)offset;
    (void)value;
    (void)size;
}

static void net_queue_notify(struct virtio_dev *dev, unsigned q)
{
    struct vnet *n = dev->opaque;
    __atomic_store_n(q == NET_RXQ ? &n->rx_kick : &n->tx_kick, true, __ATOMIC_RELEASE);
    if (__atomic_load_n(&n->parked, __ATOMIC_ACQUIRE)) {
        /* First kick after a reset: the thread is waiting, not working,
         * so this lock is only ever held for a moment. */
        pthread_mutex_lock(&n->mu);
        __atomic_store_n(&n->parked, false, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&n->cond);
        pthread_mutex_unlock(&n->mu);
    }
    vnet_signal(n);
}

static void net_reset(struct virtio_dev *dev)
{
    struct vnet *n = dev->opaque;
    pthread_mutex_lock(&n->mu);
    __atomic_store_n(&n->parked, true, __ATOMIC_RELEASE);
    vnet_wait_idle_locked(n);
    /* The thread is idle: its state is ours to clear. A frame read before
     * the reset is dropped, as a real card drops what it holds. */
    if (n->rx_len)
        n->rx_dropped++;
    n->rx_len = 0;
    n->rx_wait = false;
    __atomic_store_n(&n->rx_kick, false, __ATOMIC_RELEASE);
    __atomic_store_n(&n->tx_kick, false, __ATOMIC_RELEASE);
    pthread_mutex_unlock(&n->mu);
}

static void net_destroy(struct virtio_dev *dev)
{
    struct vnet *n = dev->opaque;
    if (!n)
        return;
    pthread_mutex_lock(&n->mu);
    n->stop = true;
    pthread_cond_broadcast(&n->cond);
    pthread_mutex_unlock(&n->mu);
    vnet_signal(n);
    pthread_join(n->thread, NULL);
    frame_hold_destroy(&n->out);
    close(n->tap_fd);
    close(n->event_fd);
    pthread_cond_destroy(&n->cond);
    pthread_mutex_destroy(&n->mu);
    free(n);
    dev->opaque = NULL;
}

static int net_repl_commit(struct virtio_dev *dev, uint64_t epoch)
{
    virtio_net_release(dev, epoch);
    return 0;
}

static int net_repl_epoch_frames(struct virtio_dev *dev, uint64_t epoch,
                                 int (*fn)(void *, const uint8_t *, size_t), void *opaque)
{
    struct vnet *n = vnet_of(dev);
    return n ? frame_hold_epoch_frames(&n->out, epoch, fn, opaque) : 0;
}

static void net_repl_drop(struct virtio_dev *dev, uint64_t epoch)
{
    struct vnet *n = vnet_of(dev);
    if (n)
        frame_hold_drop(&n->out, epoch);
}

static const struct repl_hooks net_repl = {
    .hold = virtio_net_hold_output,
    .set_epoch = virtio_net_set_epoch,
    .commit = net_repl_commit,
    .held = virtio_net_held_frames,
    .epoch_frames = net_repl_epoch_frames,
    .drop = net_repl_drop,
};

size_t virtio_net_max_frame(void) { return NET_HDR_LEN + NET_MAX_FRAME; }

int virtio_net_send_frame(struct virtio_dev *dev, const uint8_t *frame, size_t len)
{
    struct vnet *n = vnet_of(dev);
    if (!n || len <= NET_HDR_LEN || len > NET_HDR_LEN + NET_MAX_FRAME)
        return -1;
    return vnet_sink(n, frame, len, true) ? 0 : -1;
}

static const struct virtio_device_ops net_ops = {
    .quiesce = virtio_net_quiesce,
    .resume = virtio_net_resume,
    .name = "virtio-net",
    .device_id = VIRTIO_ID_NET,
    .features = VIRTIO_NET_F_MAC | VIRTIO_NET_F_STATUS | VIRTIO_NET_F_MRG_RXBUF | NET_OFFLOADS,
    .num_queues = 2,
    .config_read = net_config_read,
    .config_write = net_config_write,
    .queue_notify = net_queue_notify,
    .reset = net_reset,
    .destroy = net_destroy,
    .repl = &net_repl,
};

/* ---- migration hooks ---- */

void virtio_net_quiesce(struct virtio_dev *dev)
{
    struct vnet *n = vnet_of(dev);
    if (!n)
        return;
    pthread_mutex_lock(&n->mu);
    n->quiesce++;
    vnet_wait_idle_locked(n);
    pthread_mutex_unlock(&n->mu);
}

void virtio_net_resume(struct virtio_dev *dev)
{
    struct vnet *n = vnet_of(dev);
    if (!n)
        return;
    pthread_mutex_lock(&n->mu);
    if (n->quiesce > 0)
        n->quiesce--;
    if (n->quiesce == 0) {
        /* Recheck everything: the queues may have been loaded from a
         * migration stream, with buffers the driver already kicked. */
        __atomic_store_n(&n->parked, false, __ATOMIC_RELEASE);
        __atomic_store_n(&n->rx_kick, true, __ATOMIC_RELEASE);
        __atomic_store_n(&n->tx_kick, true, __ATOMIC_RELEASE);
        pthread_cond_broadcast(&n->cond);
    }
    pthread_mutex_unlock(&n->mu);
    vnet_signal(n);
}

void virtio_net_mac(const struct virtio_dev *dev, uint8_t mac[6])
{
    struct vnet *n = vnet_of(dev);
    if (n)
        memcpy(mac, n->mac, 6);
    else
        memset(mac, 0, 6);
}

int virtio_net_announce(struct virtio_dev *dev)
{
    struct vnet *n = vnet_of(dev);
    if (!n)
        return -1;
    /* virtio_net_hdr (zeros) + a RARP "reverse request" from the card's
     * MAC to everyone, padded to the Ethernet minimum of 60 bytes. */
    uint8_t f[NET_HDR_LEN + 60];
    memset(f, 0, sizeof f);
    uint8_t *e = f + NET_HDR_LEN;
    memset(e, 0xff, 6);                 /* destination: broadcast */
    memcpy(e + 6, n->mac, 6);           /* source */
    e[12] = 0x80, e[13] = 0x35;         /* ethertype RARP */
    uint8_t *a = e + ETH_HDR_LEN;
    a[0] = 0, a[1] = 1;                 /* hardware: Ethernet */
    a[2] = 0x08, a[3] = 0x00;           /* protocol: IPv4 */
    a[4] = 6, a[5] = 4;                 /* address lengths */
    a[6] = 0, a[7] = 3;                 /* operation: reverse request */
    memcpy(a + 8, n->mac, 6);           /* sender hardware address */
    memcpy(a + 18, n->mac, 6);          /* target hardware address */
    int sent = 0;
    for (int i = 0; i < NET_ANNOUNCE_FRAMES; i++) {
        ssize_t w;
        do
            w = write(n->tap_fd, f, sizeof f);
        while (w < 0 && errno == EINTR);
        if (w == (ssize_t)sizeof f)
            sent++;
    }
    return sent ? sent : -1;
}

/* ---- output commit ---- */

void virtio_net_hold_output(struct virtio_dev *dev, bool on)
{
    struct vnet *n = vnet_of(dev);
    if (n)
        frame_hold_set(&n->out, on);
}

void virtio_net_set_epoch(struct virtio_dev *dev, uint64_t epoch)
{
    struct vnet *n = vnet_of(dev);
    if (n)
        frame_hold_set_epoch(&n->out, epoch);
}

void virtio_net_release(struct virtio_dev *dev, uint64_t epoch)
{
    struct vnet *n = vnet_of(dev);
    if (n)
        frame_hold_release(&n->out, epoch);
}

size_t virtio_net_held_frames(const struct virtio_dev *dev)
{
    struct vnet *n = vnet_of(dev);
    return n ? frame_hold_frames(&n->out) : 0;
}

void virtio_net_set_hold_limit(struct virtio_dev *dev, uint64_t bytes)
{
    struct vnet *n = vnet_of(dev);
    if (n)
        frame_hold_set_limit(&n->out, bytes ? bytes : VIRTIO_NET_HOLD_LIMIT_DEFAULT);
}

/* ---- attach ---- */

static int parse_mac(const char *s, uint8_t mac[6], struct error *err)
{
    unsigned b[6];
    int used = -1;
    if (sscanf(s, "%2x:%2x:%2x:%2x:%2x:%2x%n", &b[0], &b[1], &b[2], &b[3], &b[4], &b[5],
               &used) != 6 || used != 17 || s[used] != '\0')
        return error_set(err, "--net: bad MAC address '%s' (want six hex bytes, "
                         "e.g. 52:54:00:12:34:56)", s);
    for (int i = 0; i < 6; i++) {
        /* sscanf's %x accepts a sign or "0x": insist on two hex digits. */
        const char *p = s + 3 * i;
        if (!strchr("0123456789abcdefABCDEF", p[0]) || !strchr("0123456789abcdefABCDEF", p[1]) ||
            !p[0] || !p[1])
            return error_set(err, "--net: bad MAC address '%s' (want six hex bytes, "
                             "e.g. 52:54:00:12:34:56)", s);
        mac[i] = (uint8_t)b[i];
    }
    if (mac[0] & 1)
        return error_set(err, "--net: MAC address '%s' is a multicast address "
                         "(the first byte must be even)", s);
    static const uint8_t zero[6];
    if (memcmp(mac, zero, 6) == 0)
        return error_set(err, "--net: MAC address '%s' is all zeros", s);
    return 0;
}

struct net_spec {
    char tap[TAP_NAME_MAX + 1];
    uint8_t mac[6];
    bool has_mac;
};

static int parse_spec(const char *spec, struct net_spec *out, struct error *err)
{
    memset(out, 0, sizeof *out);
    if (!spec || !*spec)
        return error_set(err, "--net: empty spec (want tap=NAME[,mac=52:54:00:12:34:56])");
    char *copy = strdup(spec);
    if (!copy)
        return error_set(err, "--net: out of memory");
    bool has_tap = false;
    int rc = 0;
    char *save = NULL;
    for (char *opt = strtok_r(copy, ",", &save); opt; opt = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(opt, '=');
        const char *key = opt, *val = "";
        if (eq) {
            *eq = '\0';
            val = eq + 1;
        }
        if (strcmp(key, "tap") == 0 && eq) {
            if (has_tap) {
                rc = error_set(err, "--net: tap= given twice in '%s'", spec);
                break;
            }
            if ((rc = tap_check_name(val, err)) < 0)
                break;
            snprintf(out->tap, sizeof out->tap, "%s", val);
            has_tap = true;
        } else if (strcmp(key, "mac") == 0 && eq) {
            if (out->has_mac) {
                rc = error_set(err, "--net: mac= given twice in '%s'", spec);
                break;
            }
            if ((rc = parse_mac(val, out->mac, err)) < 0)
                break;
            out->has_mac = true;
        } else {
            rc = error_set(err, "--net: unknown option '%s' in '%s' "
                           "(want tap=NAME[,mac=52:54:00:12:34:56])", opt, spec);
            break;
        }
    }
    free(copy);
    if (rc == 0 && !has_tap)
        rc = error_set(err, "--net: '%s' names no tap interface "
                       "(want tap=NAME[,mac=52:54:00:12:34:56])", spec);
    return rc;
}

int virtio_net_attach(struct virtio_dev *slot, const char *spec, struct error *err)
{
    static unsigned default_macs; /* cards given the default MAC so far */
    struct net_spec ns;
    if (parse_spec(spec, &ns, err) < 0)
        return -1;
    if (!ns.has_mac) {
        static const uint8_t def[6] = VIRTIO_NET_DEFAULT_MAC;
        memcpy(ns.mac, def, 6);
        ns.mac[5] = (uint8_t)(ns.mac[5] + default_macs);
    }
    struct vnet *n = calloc(1, sizeof *n);
    if (!n)
        return error_set(err, "--net: out of memory");
    n->dev = slot;
    n->event_fd = -1;
    memcpy(n->mac, ns.mac, 6);
    snprintf(n->ifname, sizeof n->ifname, "%s", ns.tap);
    n->tap_fd = tap_open(ns.tap, err);
    if (n->tap_fd < 0) {
        free(n);
        return -1;
    }
    n->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (n->event_fd < 0) {
        error_set(err, "--net tap=%s: eventfd: %s", ns.tap, strerror(errno));
        close(n->tap_fd);
        free(n);
        return -1;
    }
    frame_hold_init(&n->out, vnet_sink, n, n->ifname, VIRTIO_NET_HOLD_LIMIT_DEFAULT);
    pthread_mutex_init(&n->mu, NULL);
    pthread_cond_init(&n->cond, NULL);
    slot->ops = &net_ops;
    slot->opaque = n;
    /* Signals are the main thread's business. */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    int rc = pthread_create(&n->thread, NULL, vnet_thread, n);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        slot->ops = NULL;
        slot->opaque = NULL;
        close(n->tap_fd);
        close(n->event_fd);
        pthread_cond_destroy(&n->cond);
        pthread_mutex_destroy(&n->mu);
        frame_hold_destroy(&n->out);
        free(n);
        return error_set(err, "--net tap=%s: cannot start the I/O thread: %s", ns.tap,
                         strerror(rc));
    }
    if (!ns.has_mac)
        default_macs++;
    return 0;
}
