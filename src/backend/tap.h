/* The host end of a virtio-net card: a Linux tap interface opened through
 * /dev/net/tun. Frames carry the 12-byte virtio_net_hdr in front
 * (IFF_VNET_HDR with TUNSETVNETHDRSZ 12), with no offloads enabled, so a
 * header of zeros is always valid. Host resources only: nothing here is
 * migrated. */
#ifndef FERRY_BACKEND_TAP_H
#define FERRY_BACKEND_TAP_H

#include <stddef.h>

#include "base/error.h"

/* Linux interface names are at most 15 characters (IFNAMSIZ - 1). */
#define TAP_NAME_MAX 15
/* Bytes in front of every frame read from or written to the tap. */
#define TAP_VNET_HDR_LEN 12

/* Attaches to the tap interface `name` in the current network namespace,
 * creating it when it does not exist (a tap created here disappears when
 * the fd is closed). Returns a nonblocking, close-on-exec fd, or -1 with a
 * one-line message naming the interface. */
int tap_open(const char *name, struct error *err);

/* Checks a name before anything is opened: non-empty, at most
 * TAP_NAME_MAX characters, none of '/', ':', '%' or whitespace, not "."
 * or "..". Returns 0 or -1 with a message. */
int tap_check_name(const char *name, struct error *err);

#endif
