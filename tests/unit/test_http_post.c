/* The arbiter's HTTP/1.1 client (migrate/http_post.h) against a fake server
 * on 127.0.0.1 that answers canned bytes, and --arbiter URL parsing: what
 * it accepts, what it refuses, and that every wait ends by its deadline. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "machine/vclock.h"
#include "migrate/arbiter_etcd.h"
#include "migrate/http_post.h"
#include "check.h"

struct fake {
    int listen_fd;
    char port[8];
    const char *answer;     /* written after the request arrived; NULL: say nothing */
    size_t answer_len;
    int hold_ms;            /* keep the connection open this long after answering */
    char request[4096];
    pthread_t thread;
};

static void *serve(void *arg)
{
    struct fake *f = arg;
    int c = accept(f->listen_fd, NULL, NULL);
    if (c < 0)
        return NULL;
    size_t got = 0;
    /* Read the header and the body (Content-Length is small here). */
    while (got < sizeof f->request - 1) {
        ssize_t n = read(c, f->request + got, sizeof f->request - 1 - got);
        if (n <= 0)
            break;
        got += (size_t)n;
        f->request[got] = '\0';
        char *end = strstr(f->request, "\r\n\r\n");
        char *cl = strstr(f->request, "Content-Length: ");
        if (end && cl && got >= (size_t)(end + 4 - f->request) + strtoul(cl + 16, NULL, 10))
            break;
    }
    if (f->answer)
        (void)!write(c, f->answer, f->answer_len);
    usleep((useconds_t)f->hold_ms * 1000);
    close(c);
    return NULL;
}

static void fake_start(struct fake *f, const char *answer, int hold_ms)
{
    memset(f, 0, sizeof *f);
    f->answer = answer;
    f->answer_len = answer ? strlen(answer) : 0;
    f->hold_ms = hold_ms;
    f->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(f->listen_fd, (struct sockaddr *)&a, sizeof a) < 0 || listen(f->listen_fd, 4) < 0 ||
        getsockname(f->listen_fd, (struct sockaddr *)&a, &len) < 0) {
        perror("fake server");
        exit(2);
    }
    snprintf(f->port, sizeof f->port, "%u", ntohs(a.sin_port));
    pthread_create(&f->thread, NULL, serve, f);
}

static void fake_stop(struct fake *f)
{
    pthread_join(f->thread, NULL);
    close(f->listen_fd);
}

static struct http_answer ans;

/* One POST against a fake answering `answer`; returns http_post_json's rc. */
static int post(const char *answer, int hold_ms, int timeout_ms, struct error *err,
                uint64_t *took_ms)
{
    struct fake f;
    fake_start(&f, answer, hold_ms);
    uint64_t t0 = vclock_host_ns();
    int rc = http_post_json("127.0.0.1", f.port, "/v3/kv/range", "{\"key\":\"Zm9v\"}",
                            timeout_ms, &ans, err);
    if (took_ms)
        *took_ms = (vclock_host_ns() - t0) / 1000000;
    fake_stop(&f);
    CHECK(strstr(f.request, "POST /v3/kv/range HTTP/1.1\r\n") == f.request, "request line: %.60s",
          f.request);
    CHECK(strstr(f.request, "\r\nContent-Length: 14\r\n") != NULL, "no Content-Length");
    CHECK(strstr(f.request, "\r\n\r\n{\"key\":\"Zm9v\"}") != NULL, "body not sent");
    return rc;
}

static void test_answers(void)
{
    struct error err;
    int rc = post("HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 7\r\n\r\n"
                  "{\"a\":1}", 0, 2000, &err, NULL);
    CHECK(rc == 0 && ans.status == 200 && ans.len == 7 && strcmp(ans.body, "{\"a\":1}") == 0,
          "plain answer: rc %d status %d body '%s'", rc, ans.status, ans.body);

    rc = post("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n4\r\n{\"a\"\r\n3\r\n:1}\r\n"
              "0\r\n\r\n", 0, 2000, &err, NULL);
    CHECK(rc == 0 && strcmp(ans.body, "{\"a\":1}") == 0, "chunked answer: rc %d '%s' %s", rc,
          ans.body, rc ? err.msg : "");

    rc = post("HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}", 0, 2000, &err, NULL);
    CHECK(rc == 0 && ans.status == 404, "an error status is an answer: %d", ans.status);

    rc = post("HTTP/1.1 200 OK\r\nContent-Length: 50\r\n\r\n{}", 0, 2000, &err, NULL);
    CHECK(rc < 0 && strstr(err.msg, "shorter than its Content-Length"), "short body: %s", err.msg);

    rc = post("SSH-2.0-OpenSSH\r\n\r\n", 0, 2000, &err, NULL);
    CHECK(rc < 0 && strstr(err.msg, "not an HTTP/1 answer"), "not HTTP: %s", err.msg);

    rc = post("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n", 0, 2000, &err, NULL);
    CHECK(rc < 0 && strstr(err.msg, "without a complete header"), "cut header: %s", err.msg);

    rc = post("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n{}\r\n0\r\n\r\n", 0, 2000,
              &err, NULL);
    CHECK(rc < 0 && strstr(err.msg, "malformed chunked"), "bad chunk: %s", err.msg);

    /* A body over the bound is refused, not truncated. */
    size_t big = HTTP_MAX_BODY + 100;
    char *huge = malloc(big + 200);
    int n = snprintf(huge, 200, "HTTP/1.1 200 OK\r\nContent-Length: %zu\r\n\r\n", big);
    memset(huge + n, 'x', big);
    huge[n + (int)big] = '\0';
    rc = post(huge, 0, 5000, &err, NULL);
    CHECK(rc < 0 && (strstr(err.msg, "larger than")), "huge body: %s", err.msg);
    free(huge);

    /* A server that accepts and never answers: the deadline ends it. */
    uint64_t took;
    rc = post(NULL, 1500, 300, &err, &took);
    CHECK(rc < 0 && strstr(err.msg, "timed out") && took < 1000,
          "silent server: rc %d after %llu ms: %s", rc, (unsigned long long)took, err.msg);

    /* An answer that does not end (no Content-Length, connection kept
     * open): also bounded by the deadline. */
    rc = post("HTTP/1.1 200 OK\r\n\r\n{", 1500, 300, &err, &took);
    CHECK(rc < 0 && took < 1000, "endless answer: rc %d after %llu ms", rc,
          (unsigned long long)took);

    /* A complete answer on a connection the server keeps open is taken at
     * once (by its Content-Length, or its last chunk). */
    rc = post("HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 1500, 1000, &err, &took);
    CHECK(rc == 0 && strcmp(ans.body, "{}") == 0 && took < 500,
          "kept-open plain answer: rc %d after %llu ms", rc, (unsigned long long)took);
    rc = post("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\n{}\r\n0\r\n\r\n", 1500,
              1000, &err, &took);
    CHECK(rc == 0 && strcmp(ans.body, "{}") == 0 && took < 500,
          "kept-open chunked answer: rc %d after %llu ms", rc, (unsigned long long)took);

    /* Nobody listens: refused at once. */
    rc = http_post_json("127.0.0.1", "1", "/v3/x", "{}", 1000, &ans, &err);
    CHECK(rc < 0 && strstr(err.msg, "connect"), "closed port: %s", err.msg);
}

static void test_dechunk(void)
{
    char a[] = "3\r\nabc\r\n0\r\n\r\n";
    size_t len;
    CHECK(http_dechunk(a, strlen(a), &len) == 0 && len == 3 && memcmp(a, "abc", 3) == 0,
          "simple chunk");
    char b[] = "10\r\nabc\r\n0\r\n\r\n";
    CHECK(http_dechunk(b, strlen(b), &len) < 0, "chunk longer than the data");
    char c[] = "3\r\nabcX\r\n0\r\n\r\n";
    CHECK(http_dechunk(c, strlen(c), &len) < 0, "chunk without CRLF");
    char d[] = "123456789\r\nabc\r\n0\r\n\r\n";
    CHECK(http_dechunk(d, strlen(d), &len) < 0, "absurd chunk size");
    char e[] = "3\r\nabc\r\n";
    CHECK(http_dechunk(e, strlen(e), &len) < 0, "no last chunk");
}

static void test_urls(void)
{
    struct arbiter *a;
    struct error err;
    CHECK(arbiter_open("etcd://10.0.0.1:2379,10.0.0.2:2379/vm1", 3, &a, &err) == 0, "%s",
          err.msg);
    arbiter_close(a);
    const char *bad[] = {
        "http://10.0.0.1:2379/vm1", "etcd://10.0.0.1:2379", "etcd://10.0.0.1:2379/",
        "etcd://10.0.0.1/vm1", "etcd://:2379/vm1", "etcd://10.0.0.1:2379/a b",
        "etcd://1:1,1:1,1:1,1:1,1:1,1:1,1:1,1:1/k", "etcd://10.0.0.1:2379,/vm1",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = arbiter_open(bad[i], 3, &a, &err);
        CHECK(rc < 0, "accepted '%s'", bad[i]);
        if (rc == 0)
            arbiter_close(a);
    }
    CHECK(arbiter_open("etcd://10.0.0.1:2379/vm1", 0, &a, &err) < 0, "TTL 0 accepted");
    /* No arbiter: output may go out. */
    CHECK(arbiter_may_release(), "no arbiter, yet the gate is closed");
}

int main(void)
{
    test_dechunk();
    test_answers();
    test_urls();
    printf("%d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
