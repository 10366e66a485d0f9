/* The LAN side of a tap for the virtio-net unit tests: they run in a
 * network namespace of their own and talk to the card's tap through an
 * AF_PACKET socket on it. Header-only: each test is one program. */
#ifndef FERRY_TESTS_UNIT_TAP_LAN_H
#define FERRY_TESTS_UNIT_TAP_LAN_H

#include <arpa/inet.h>
#include <errno.h>
#include <linux/if_packet.h>
#include <net/ethernet.h>
#include <net/if.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

/* Brings interface ifname up and returns a packet socket bound to it, or
 * -1 after printing a FAIL line. */
static int tap_lan_open(const char *ifname)
{
    int s = socket(AF_INET, SOCK_DGRAM, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "%s", ifname);
    if (s < 0 || ioctl(s, SIOCGIFFLAGS, &ifr) < 0) {
        printf("FAIL: %s: %s\n", ifname, strerror(errno));
        return -1;
    }
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(s, SIOCSIFFLAGS, &ifr) < 0) {
        printf("FAIL: bring %s up: %s\n", ifname, strerror(errno));
        return -1;
    }
    close(s);
    int fd = socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL));
    struct sockaddr_ll sll = {.sll_family = AF_PACKET, .sll_protocol = htons(ETH_P_ALL),
                              .sll_ifindex = (int)if_nametoindex(ifname)};
    if (fd < 0 || bind(fd, (struct sockaddr *)&sll, sizeof sll) < 0) {
        printf("FAIL: packet socket on %s: %s\n", ifname, strerror(errno));
        return -1;
    }
    return fd;
}

/* No router solicitations or DAD on the tap: only the test's frames. */
static void tap_lan_no_ipv6(void)
{
    const char *files[] = {"/proc/sys/net/ipv6/conf/all/disable_ipv6",
                           "/proc/sys/net/ipv6/conf/default/disable_ipv6"};
    for (int i = 0; i < 2; i++) {
        FILE *f = fopen(files[i], "w");
        if (f) {
            fputs("1\n", f);
            fclose(f);
        }
    }
}

#endif
