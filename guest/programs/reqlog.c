/* reqlog: a tiny request log service for replication tests.
 *
 *   reqlog PORT FILE
 *
 * Accepts TCP connections (one at a time). Each request is a line
 * "<number> <payload>\n". The service appends the line to FILE, fsyncs
 * it, and only then answers "ACK <number>\n". A client that saw an ACK
 * therefore knows the request is durable in the guest's disk, and (with
 * output commit) in the standby's copy of the VM. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void serve(int c, int log)
{
    char buf[8192];
    size_t len = 0;
    for (;;) {
        ssize_t n = read(c, buf + len, sizeof buf - 1 - len);
        if (n <= 0)
            return;
        len += (size_t)n;
        char *nl;
        while ((nl = memchr(buf, '\n', len))) {
            size_t line = (size_t)(nl - buf) + 1;
            if (write(log, buf, line) != (ssize_t)line || fsync(log) != 0) {
                perror("reqlog: log");
                exit(1);
            }
            char ack[64];
            unsigned long long num = strtoull(buf, NULL, 10);
            int k = snprintf(ack, sizeof ack, "ACK %llu\n", num);
            if (write(c, ack, (size_t)k) != k)
                return;
            memmove(buf, buf + line, len - line);
            len -= line;
        }
        if (len == sizeof buf - 1)
            return; /* a line too long: drop the client */
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: reqlog PORT FILE\n");
        return 2;
    }
    int log = open(argv[2], O_WRONLY | O_CREAT | O_APPEND, 0644);
    if (log < 0) {
        perror("reqlog: open");
        return 1;
    }
    int s = socket(AF_INET, SOCK_STREAM, 0), one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)atoi(argv[1]))};
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 4) < 0) {
        perror("reqlog: listen");
        return 1;
    }
    printf("reqlog: listening on %s, logging to %s\n", argv[1], argv[2]);
    fflush(stdout);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0)
            continue;
        serve(c, log);
        close(c);
    }
}
