/* netblast: one TCP bulk transfer, for measuring a virtual NIC rather than
 * the guest's CPU (an iperf of our own; the guest has only busybox).
 *
 *   netblast sink PORT          accept one connection, read until EOF,
 *                               answer "<bytes received>\n", exit
 *   netblast source PORT BYTES  accept one connection, send BYTES zero
 *                               bytes, close, exit
 *
 * Both move data in 256 KiB system calls and touch no byte themselves:
 * `nc | wc -c` spends most of its time in wc's per-character loop, which
 * measures instruction emulation, not the network path. Prints "listening"
 * on stdout once the socket accepts connections. */
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define CHUNK (256 * 1024)

static char buf[CHUNK];

static int accept_one(const char *port_arg)
{
    char *end;
    long port = strtol(port_arg, &end, 10);
    if (*end || port < 1 || port > 65535) {
        fprintf(stderr, "netblast: bad port %s\n", port_arg);
        exit(2);
    }
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((unsigned short)port)};
    if (s < 0 || setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
        bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 1) != 0) {
        perror("netblast: listen");
        exit(1);
    }
    printf("listening\n");
    fflush(stdout);
    int c = accept(s, NULL, NULL);
    if (c < 0) {
        perror("netblast: accept");
        exit(1);
    }
    close(s);
    return c;
}

static int sink(int c)
{
    unsigned long long total = 0;
    for (;;) {
        ssize_t n = read(c, buf, sizeof buf);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            perror("netblast: read");
            return 1;
        }
        if (n == 0)
            break;
        total += (unsigned long long)n;
    }
    char line[32];
    int k = snprintf(line, sizeof line, "%llu\n", total);
    if (write(c, line, (size_t)k) != k) {
        perror("netblast: write");
        return 1;
    }
    close(c);
    return 0;
}

static int source(int c, unsigned long long bytes)
{
    while (bytes) {
        size_t len = bytes < sizeof buf ? (size_t)bytes : sizeof buf;
        ssize_t n = write(c, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            perror("netblast: write");
            return 1;
        }
        bytes -= (unsigned long long)n;
    }
    close(c);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc == 3 && strcmp(argv[1], "sink") == 0)
        return sink(accept_one(argv[2]));
    if (argc == 4 && strcmp(argv[1], "source") == 0) {
        char *end;
        unsigned long long bytes = strtoull(argv[3], &end, 10);
        if (*end || !*argv[3]) {
            fprintf(stderr, "netblast: bad byte count %s\n", argv[3]);
            return 2;
        }
        return source(accept_one(argv[2]), bytes);
    }
    fprintf(stderr, "usage: netblast sink PORT | netblast source PORT BYTES\n");
    return 2;
}
