/* reqlog: a tiny request log service for replication tests.
 *
 *   reqlog PORT FILE
 *
 * Accepts TCP connections (up to MAX_CLIENTS at once). Each request is a line
 * "<number> <payload>\n". The service appends the line to FILE, fsyncs
 * it, and only then answers "ACK <number>\n". A client that saw an ACK
 * therefore knows the request is durable in the guest's disk, and (with
 * output commit) in the standby's copy of the VM. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define MAX_CLIENTS 64

/* One client connection and what it sent that is not a whole line yet. */
struct client {
    int fd;
    size_t len;
    char buf[8192];
};

/* Handles the whole lines in c's buffer after a read; false to drop the
 * client (closed, error, or a line too long). */
static bool serve(struct client *c, int log)
{
    ssize_t n = read(c->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
    if (n <= 0)
        return false;
    c->len += (size_t)n;
    char *nl;
    while ((nl = memchr(c->buf, '\n', c->len))) {
        size_t line = (size_t)(nl - c->buf) + 1;
        if (write(log, c->buf, line) != (ssize_t)line || fsync(log) != 0) {
            perror("reqlog: log");
            exit(1);
        }
        char ack[64];
        unsigned long long num = strtoull(c->buf, NULL, 10);
        int k = snprintf(ack, sizeof ack, "ACK %llu\n", num);
        if (write(c->fd, ack, (size_t)k) != k)
            return false;
        memmove(c->buf, c->buf + line, c->len - line);
        c->len -= line;
    }
    return c->len < sizeof c->buf - 1; /* a line too long: drop the client */
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
    if (bind(s, (struct sockaddr *)&a, sizeof a) < 0 || listen(s, 16) < 0) {
        perror("reqlog: listen");
        return 1;
    }
    printf("reqlog: listening on %s, logging to %s\n", argv[1], argv[2]);
    fflush(stdout);
    /* Several clients at once, each served a line at a time in the order
     * their data comes (one log, every line fsynced before its ACK). */
    static struct client clients[MAX_CLIENTS];
    struct pollfd p[MAX_CLIENTS + 1];
    size_t n = 0;
    for (;;) {
        p[0] = (struct pollfd){.fd = s, .events = n < MAX_CLIENTS ? POLLIN : 0};
        for (size_t i = 0; i < n; i++)
            p[i + 1] = (struct pollfd){.fd = clients[i].fd, .events = POLLIN};
        if (poll(p, n + 1, -1) < 0)
            continue;
        for (size_t i = n; i-- > 0;) {
            if (!p[i + 1].revents)
                continue;
            if (!serve(&clients[i], log)) {
                close(clients[i].fd);
                clients[i] = clients[--n];
            }
        }
        if (p[0].revents & POLLIN) {
            int c = accept(s, NULL, NULL);
            if (c >= 0) {
                clients[n].fd = c;
                clients[n].len = 0;
                n++;
            }
        }
    }
}
