/* Writes the fuzzers' seed corpus (tests/fuzz/README.md): small but
 * complete streams made by ferry's own writers, so nothing binary lives in
 * git and the seeds follow the format as it changes.
 *   make-seeds DIR    creates DIR/{restore,incoming,standby,ctl,http}/... */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "base/crc32c.h"
#include "machine/machine.h"
#include "migrate/mstate.h"
#include "migrate/stream.h"

static void die(const char *what, const struct error *err)
{
    fprintf(stderr, "make-seeds: %s: %s\n", what, err ? err->msg : strerror(errno));
    exit(1);
}

static void write_file(const char *dir, const char *sub, const char *name, const void *data,
                       size_t len)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, sub);
    mkdir(path, 0755);
    snprintf(path, sizeof path, "%s/%s/%s", dir, sub, name);
    FILE *f = fopen(path, "wb");
    if (!f || fwrite(data, 1, len, f) != len || fclose(f) != 0)
        die(path, NULL);
}

/* A small machine with a little non-zero memory. */
static void build_machine(struct machine *m, unsigned nharts, bool sbi)
{
    struct machine_config cfg = {.ram_size = 16ull << 20, .nharts = nharts, .console = "none",
                                 .no_rng = !sbi, .no_boot = true};
    struct error err;
    if (machine_init(m, &cfg, &err) < 0)
        die("machine_init", &err);
    m->sbi = sbi;
    for (unsigned p = 0; p < 4; p++) {
        uint8_t *page = ram_host(&m->bus.ram, m->bus.ram.base + (uint64_t)p * 3 * RAM_PAGE_SIZE);
        for (unsigned i = 0; i < 64; i++)
            page[i * 7] = (uint8_t)(p * 31 + i);
    }
    for (unsigned i = 0; i < m->nharts; i++) {
        m->harts[i].pc = m->bus.ram.base + 0x100 * i;
        m->harts[i].x[10] = i;
    }
}

/* Pages 0, 3, 6, 9 (data) and 1 (zero). */
static void put_some_pages(struct stream *s, struct machine *m)
{
    uint64_t *bitmap = calloc(m->bus.ram.dirty_words, 8);
    bitmap[0] = 1u << 0 | 1u << 1 | 1u << 3 | 1u << 6 | 1u << 9;
    struct page_counters c = {0};
    struct error err;
    if (mstate_put_pages(s, m, bitmap, &c, 0, NULL, &err) < 0)
        die("pages", &err);
    free(bitmap);
}

static void put(struct stream *s, uint32_t type, const void *body, size_t len)
{
    struct error err;
    if (stream_put(s, type, body, len, &err) < 0)
        die("stream_put", &err);
}

static void begin(struct stream *s, struct machine *m)
{
    struct error err;
    if (stream_init(s, -1, &err) < 0)
        die("stream_init", &err);
    s->capture = true;
    stream_write_header(s, STREAM_VERSION, &err);
    if (mstate_put_machine(s, m, &err) < 0)
        die("machine", &err);
}

static void put_final(struct stream *s, struct machine *m, bool verify)
{
    struct error err;
    if (mstate_put_devices(s, m, STREAM_VERSION, &err) < 0)
        die("devices", &err);
    if (verify) {
        uint8_t h[8];
        uint64_t hash;
        if (mstate_hash(m, &hash, &err) < 0)
            die("hash", &err);
        put_u64(h, hash);
        put(s, REC_VERIFY, h, 8);
    }
    put(s, REC_END, NULL, 0);
}

/* Rewrites the CLOCK record of a captured stream (CRC included). */
static bool set_clock(struct stream *s, uint64_t ns)
{
    size_t off = STREAM_HEADER_SIZE;
    while (off + 12 <= s->wlen) {
        uint32_t type = get_u32(s->wbuf + off), len = get_u32(s->wbuf + off + 4);
        if (type == REC_CLOCK && len == 8) {
            put_u64(s->wbuf + off + 8, ns);
            put_u32(s->wbuf + off + 16, crc32c(0, s->wbuf + off, 16));
            return true;
        }
        off += 12 + (size_t)len;
    }
    return false;
}

static void seeds_for(const char *dir, struct machine *m, const char *tag)
{
    struct stream s;
    char name[64];
    uint8_t b[16];

    /* A save file. */
    begin(&s, m);
    put_some_pages(&s, m);
    put_final(&s, m, false);
    snprintf(name, sizeof name, "save-%s", tag);
    write_file(dir, "restore", name, s.wbuf, s.wlen);
    /* Regression (found by fuzz_restore): a clock past 2^63 ns overflowed
     * the signed clock arithmetic when the guest resumed. */
    if (set_clock(&s, 1ull << 63 | 0x16215)) {
        snprintf(name, sizeof name, "clock-bit63-%s", tag);
        write_file(dir, "regress-restore", name, s.wbuf, s.wlen);
    }
    stream_free(&s);

    /* A live migration: two rounds, then the final state and GO. */
    begin(&s, m);
    put_u32(b, 1);
    put(&s, REC_ROUND, b, 4);
    put_some_pages(&s, m);
    put(&s, REC_PING, b, 4);
    put_u32(b, 2);
    put(&s, REC_ROUND, b, 4);
    put(&s, REC_HEARTBEAT, NULL, 0);
    put_some_pages(&s, m);
    put(&s, REC_PING, b, 4);
    put_final(&s, m, false);
    put(&s, REC_GO, NULL, 0);
    snprintf(name, sizeof name, "live-%s", tag);
    write_file(dir, "incoming", name, s.wbuf, s.wlen);
    stream_free(&s);

    /* Replication: the initial copy, two checkpoints, a switchover. */
    begin(&s, m);
    put_some_pages(&s, m);
    for (uint64_t epoch = 1; epoch <= 2; epoch++) {
        put_u64(b, epoch);
        put_u64(b + 8, epoch - 1);
        put(&s, REC_CHECKPOINT, b, 16);
        put_some_pages(&s, m);
        struct error err;
        if (mstate_put_devices(&s, m, STREAM_VERSION, &err) < 0)
            die("devices", &err);
        put(&s, REC_END, NULL, 0);
        put(&s, REC_HEARTBEAT, NULL, 0);
    }
    put(&s, REC_GO, NULL, 0);
    snprintf(name, sizeof name, "replicate-%s", tag);
    write_file(dir, "standby", name, s.wbuf, s.wlen);
    stream_free(&s);

    /* Regression (found by fuzz_standby): a checkpoint header shorter than
     * 16 bytes was read (its committed epoch) before being checked. */
    begin(&s, m);
    put_some_pages(&s, m);
    put_u64(b, 1);
    put(&s, REC_CHECKPOINT, b, 4);
    put_some_pages(&s, m);
    put(&s, REC_END, NULL, 0);
    put(&s, REC_GO, NULL, 0);
    snprintf(name, sizeof name, "short-checkpoint-%s", tag);
    write_file(dir, "regress-standby", name, s.wbuf, s.wlen);
    stream_free(&s);
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: make-seeds DIR\n");
        return 2;
    }
    const char *dir = argv[1];
    mkdir(dir, 0755);
    static struct machine m;
    build_machine(&m, 1, false);
    seeds_for(dir, &m, "1hart");
    machine_destroy(&m);
    build_machine(&m, 2, true);
    seeds_for(dir, &m, "2harts-sbi");
    machine_destroy(&m);

    static const char *requests[] = {
        "{\"cmd\":\"status\"}",
        "{\"cmd\":\"migrate\",\"uri\":\"tcp:127.0.0.1:4444\",\"live\":true,"
        "\"max_downtime_ms\":5,\"bandwidth\":100000000,\"verify\":true}",
        "{\"cmd\":\"save\",\"file\":\"/tmp/x.ferrysave\",\"keep_running\":false,"
        "\"stream_version\":1}",
        "{\"cmd\":\"replicate\",\"uri\":\"tcp:[::1]:5555\",\"interval_ms\":25.5}",
        "{\"cmd\":\"migrate-cancel\"}",
        "{\"cmd\":\"quit\"}",
    };
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "request-%zu", i);
        write_file(dir, "ctl", name, requests[i], strlen(requests[i]));
    }
    /* etcd's answers as the arbiter sees them (plain and chunked). */
    static const char *answers[] = {
        "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 64\r\n\r\n"
        "{\"header\":{\"revision\":\"2\"},\"ID\":\"2324035855422580485\",\"TTL\":\"3\"}",
        "HTTP/1.1 200 OK\r\nConnection: close\r\nTransfer-Encoding: chunked\r\n\r\n"
        "31\r\n{\"result\":{\"ID\":\"2324035855422580487\",\"TTL\":\"3\"}}\r\n0\r\n\r\n",
        "HTTP/1.1 404 Not Found\r\nContent-Length: 2\r\n\r\n{}",
    };
    for (size_t i = 0; i < sizeof answers / sizeof answers[0]; i++) {
        char name[32];
        snprintf(name, sizeof name, "answer-%zu", i);
        write_file(dir, "http", name, answers[i], strlen(answers[i]));
    }
    return 0;
}
