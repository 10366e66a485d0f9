#include "backend/tap.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

int tap_check_name(const char *name, struct error *err)
{
    if (!name || !*name)
        return error_set(err, "--net: tap= needs an interface name");
    size_t len = strlen(name);
    if (len > TAP_NAME_MAX)
        return error_set(err, "--net: tap name '%.64s%s' is longer than %d characters", name,
                         len > 64 ? "..." : "", TAP_NAME_MAX);
    if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
        return error_set(err, "--net: '%s' is not a valid interface name", name);
    for (const char *p = name; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '/' || c == ':' || c == '%' || c <= ' ' || c == 0x7f)
            return error_set(err, "--net: '%s' is not a valid interface name "
                             "(no '/', ':', '%%', spaces or control characters)", name);
    }
    return 0;
}

static const char *tunsetiff_hint(int e)
{
    switch (e) {
    case EPERM:
    case EACCES:
        return " (needs CAP_NET_ADMIN, or a tap owned by this user: "
               "ip tuntap add NAME mode tap user USER)";
    case EBUSY:
        return " (another process has it open)";
    case EINVAL:
        return " (an interface of that name exists and is not a tap device)";
    default:
        return "";
    }
}

int tap_open(const char *name, struct error *err)
{
    if (tap_check_name(name, err) < 0)
        return -1;
    int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) {
        int e = errno;
        return error_set(err, "--net tap=%s: cannot open /dev/net/tun: %s%s", name, strerror(e),
                         e == ENOENT ? " (no tun/tap support on this host)" : "");
    }
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    memcpy(ifr.ifr_name, name, strlen(name)); /* checked: fits with its NUL */
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
        int e = errno;
        close(fd);
        return error_set(err, "--net tap=%s: cannot attach to the tap interface: %s%s", name,
                         strerror(e), tunsetiff_hint(e));
    }
    int hdr_len = TAP_VNET_HDR_LEN;
    if (ioctl(fd, TUNSETVNETHDRSZ, &hdr_len) < 0) {
        int e = errno;
        close(fd);
        return error_set(err, "--net tap=%s: cannot set the virtio-net header size: %s", name,
                         strerror(e));
    }
    /* No checksum or segmentation offloads: the host hands over complete
     * frames with valid checksums, and so must the guest. */
    if (ioctl(fd, TUNSETOFFLOAD, 0ul) < 0) {
        int e = errno;
        close(fd);
        return error_set(err, "--net tap=%s: cannot turn tap offloads off: %s", name,
                         strerror(e));
    }
    return fd;
}
