/* What a peer cannot move (issue 13): a stream phase's total deadline holds
 * against a trickle of bytes and against a flood of heartbeats; copy
 * deadlines scale with RAM and a bandwidth cap; peer text is escaped; the
 * control-request parser refuses numbers that are not finite or in range. */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "base/escape.h"
#include "ctl/request.h"
#include "machine/vclock.h"
#include "migrate/stream.h"
#include "check.h"

struct peer {
    int fd;
    int mode;            /* 0: a record's bytes, one every 20 ms; 1: a HEARTBEAT every 2 ms */
    atomic_bool stop;    /* set by the reader when it is done */
};

static void *peer_thread(void *arg)
{
    struct peer *p = arg;
    uint8_t rec[12];
    put_u32(rec, REC_HEARTBEAT);
    put_u32(rec + 4, 0);
    put_u32(rec + 8, crc32c(0, rec, 8));
    if (p->mode == 0) {
        /* A record that announces 64 KiB, then trickles them. */
        uint8_t head[8];
        put_u32(head, REC_PAGES);
        put_u32(head + 4, 65536);
        send(p->fd, head, sizeof head, MSG_NOSIGNAL);
    }
    while (!atomic_load(&p->stop)) {
        struct timespec ts = {0, p->mode ? 2000000 : 20000000};
        if (p->mode ? send(p->fd, rec, sizeof rec, MSG_NOSIGNAL) < 0
                    : send(p->fd, "x", 1, MSG_NOSIGNAL) < 0)
            break;
        nanosleep(&ts, NULL);
    }
    return NULL;
}

/* Reads records until an error; returns the seconds that took. */
static double read_until_error(int mode, char *msg, size_t cap)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) < 0)
        abort();
    struct peer p = {.fd = sv[1], .mode = mode};
    pthread_t t;
    pthread_create(&t, NULL, peer_thread, &p);
    struct stream s;
    struct error err;
    stream_init(&s, sv[0], &err);
    s.timeout_ms = 1000; /* each wait: the trickle always beats this */
    stream_deadline(&s, "test phase", 300);
    uint64_t t0 = vclock_host_ns();
    for (int i = 0; i < 100000; i++) {
        uint32_t type;
        const uint8_t *body;
        size_t len;
        if (stream_get(&s, &type, &body, &len, &err) < 0)
            break;
    }
    double secs = (double)(vclock_host_ns() - t0) / 1e9;
    snprintf(msg, cap, "%s", err.msg);
    atomic_store(&p.stop, true);
    shutdown(sv[0], SHUT_RDWR);
    pthread_join(t, NULL);
    stream_free(&s);
    close(sv[0]);
    close(sv[1]);
    return secs;
}

static void test_deadline(void)
{
    char msg[512];
    for (int mode = 0; mode < 2; mode++) {
        double secs = read_until_error(mode, msg, sizeof msg);
        printf("%s: ended after %.3f s: %s\n", mode ? "heartbeat flood" : "byte trickle", secs,
               msg);
        CHECK(secs >= 0.29 && secs < 0.8);
        CHECK(strstr(msg, "test phase") && strstr(msg, "in time"));
    }
}

static void test_copy_deadline(void)
{
    /* 5 min + 1 s per MiB (+1 s), or what a lower cap needs. */
    CHECK(stream_copy_deadline_ms(0, 0) == 301000);
    CHECK(stream_copy_deadline_ms(1ull << 30, 0) == 300000 + 1024 * 1000 + 1000);
    CHECK(stream_copy_deadline_ms(1ull << 30, 100ull << 20) == 300000 + 1024 * 1000 + 1000);
    CHECK(stream_copy_deadline_ms(1ull << 20, 1024) == 300000 + 1024 * 1000 + 1000);
}

static void test_escape(void)
{
    char out[ESCAPED_SIZE(16)];
    escape_text(out, sizeof out, "a\x1b[2Jb\\\xff\n", 9);
    CHECK(strcmp(out, "a\\x1b[2Jb\\\\\\xff\\x0a") == 0);
    /* Never half an escape at the end of a short buffer. */
    char small[6];
    escape_text(small, sizeof small, "ab\x1b", 3);
    CHECK(strcmp(small, "ab") == 0);
    CHECK(strcmp(peer_text("ok", 2).s, "ok") == 0);
    char big[1000];
    memset(big, 0x07, sizeof big);
    CHECK(strlen(peer_text(big, sizeof big).s) == 4 * PEER_TEXT_MAX);
}

static void test_request_numbers(void)
{
    static const char *bad[] = {
        "{\"cmd\":\"migrate\",\"uri\":\"tcp:h:1\",\"bandwidth\":1e300}",
        "{\"cmd\":\"migrate\",\"uri\":\"tcp:h:1\",\"bandwidth\":-1}",
        "{\"cmd\":\"migrate\",\"uri\":\"tcp:h:1\",\"max_downtime_ms\":1e-300}",
        "{\"cmd\":\"migrate\",\"uri\":\"tcp:h:1\",\"max_downtime_ms\":0}",
        "{\"cmd\":\"migrate\",\"uri\":\"tcp:h:1\",\"max_downtime_ms\":\"5\"}",
        "{\"cmd\":\"replicate\",\"uri\":\"tcp:h:1\",\"interval_ms\":1e300}",
        "{\"cmd\":\"replicate\",\"uri\":\"tcp:h:1\",\"interval_ms\":0}",
        "{\"cmd\":\"save\",\"file\":\"x\",\"stream_version\":4294967297}",
        "{\"cmd\":\"migrate\",\"uri\":\"file:/etc/passwd\"}",
        "{\"cmd\":\"migrate\",\"uri\":\"\"}",
        "{\"cmd\":\"status\",\"cmd\":\"quit\"}",
        "[1]",
    };
    struct ctl_request req;
    struct error err;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = ctl_parse_request(bad[i], &req, &err);
        if (rc == 0)
            fprintf(stderr, "accepted: %s\n", bad[i]);
        CHECK(rc < 0);
    }
    CHECK(ctl_parse_request("{\"cmd\":\"migrate\",\"uri\":\"tcp:h:1\",\"bandwidth\":1e9,"
                            "\"max_downtime_ms\":0.5}", &req, &err) == 0);
    CHECK(req.cmd == CTL_MIGRATE && req.mig.bandwidth == 1000000000ull &&
          req.mig.max_downtime_ns == 500000 && strcmp(req.mig.uri, "tcp:h:1") == 0);
    CHECK(ctl_parse_request("{\"cmd\":\"\\u001b[2J\"}", &req, &err) < 0);
    CHECK(strstr(err.msg, "\\x1b[2J") != NULL);
    CHECK(ctl_cmd_is_priority(CTL_MIGRATE_CANCEL) && ctl_cmd_is_priority(CTL_QUIT) &&
          ctl_cmd_is_priority(CTL_STATUS) && !ctl_cmd_is_priority(CTL_SAVE) &&
          !ctl_cmd_is_priority(CTL_PAUSE));
}

int main(void)
{
    test_deadline();
    test_copy_deadline();
    test_escape();
    test_request_numbers();
    if (failures) {
        fprintf(stderr, "test_peer_limits: %d of %d checks FAILED\n", failures, checks);
        return 1;
    }
    printf("test_peer_limits: %d checks passed\n", checks);
    return 0;
}
