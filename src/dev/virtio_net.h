/* virtio-net on a tap interface (src/dev/virtio_net.c). The device is
 * attached with virtio_net_attach() (dev/virtio_devices.h); these are the
 * extra hooks live migration needs.
 *
 * Migratable state: none of the device's own beyond what the command line
 * gives (the MAC; the link is always up). The queues live in the
 * transport's struct virtio_mmio_state. */
#ifndef FERRY_DEV_VIRTIO_NET_H
#define FERRY_DEV_VIRTIO_NET_H

#include <stdint.h>

#include "dev/virtio.h"

/* Default MAC of the first card without mac=; each further one adds 1 to
 * the last byte. */
#define VIRTIO_NET_DEFAULT_MAC {0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

/* True if dev is a virtio-net card. */
bool virtio_net_is(const struct virtio_dev *dev);

/* Stops the card's I/O thread from touching the queues or the tap and
 * returns once it is idle: after it, no guest memory or transport state
 * changes on behalf of this card. Frames arriving meanwhile stay queued in
 * the tap (the kernel drops them once its queue is full). Nests: each
 * quiesce needs its resume. */
void virtio_net_quiesce(struct virtio_dev *dev);

/* Undoes one virtio_net_quiesce. Processing restarts and both queues are
 * rechecked, so call it also on a migration destination after loading the
 * transport state: requests the driver queued before the switch are
 * picked up without a new kick. */
void virtio_net_resume(struct virtio_dev *dev);

/* Sends a few RARP broadcasts from the card's MAC out of the tap, as QEMU
 * does after a migration, so switches and bridges learn where the guest is
 * now. Callable from any thread, quiesced or not. Returns the number of
 * frames sent (>0) or -1 if none could be written. */
int virtio_net_announce(struct virtio_dev *dev);

/* Writes one frame as held output has it (virtio_net_hdr + Ethernet
 * frame) to the tap: a switchover's carried frames, sent by the new host
 * after its announcement. 0, or -1 if it is malformed or was not sent. */
int virtio_net_send_frame(struct virtio_dev *dev, const uint8_t *frame, size_t len);
/* The largest frame virtio_net_send_frame takes. */
size_t virtio_net_max_frame(void);

/* The card's MAC address (6 bytes). */
void virtio_net_mac(const struct virtio_dev *dev, uint8_t mac[6]);

/* ---- continuous replication: output commit ----
 *
 * While output is held, every frame the guest transmits is queued in
 * memory, tagged with the current epoch, instead of going to the tap; the
 * guest sees the TX request completed at once (like a NIC that accepted
 * the frame). virtio_net_release(N) sends the held frames of epochs <= N,
 * in transmit order, once the standby has acknowledged N. Received frames
 * are not held. Held output is capped (VIRTIO_NET_HOLD_LIMIT_DEFAULT bytes
 * of frames): beyond it the newest frame is dropped, with one log line per
 * overflow (TCP retransmits it). RARP announces are not held.
 *
 * All functions are thread-safe against the I/O thread and each other.
 * Epoch numbers must not decrease. */
#define VIRTIO_NET_HOLD_LIMIT_DEFAULT (64ull << 20)

/* on: later frames are held. off: everything held is sent first, then
 * frames go straight to the tap again. */
void virtio_net_hold_output(struct virtio_dev *dev, bool on);

/* Later frames belong to `epoch` (0 until set). */
void virtio_net_set_epoch(struct virtio_dev *dev, uint64_t epoch);

/* Sends the held frames of epochs <= epoch to the tap, in order; later
 * epochs' frames stay held. A frame the tap refuses is lost, as on a
 * wire. */
void virtio_net_release(struct virtio_dev *dev, uint64_t epoch);

/* Frames currently held (for status). */
size_t virtio_net_held_frames(const struct virtio_dev *dev);

/* Cap on held frame bytes (for tests; 0 = the default). */
void virtio_net_set_hold_limit(struct virtio_dev *dev, uint64_t bytes);

#endif
