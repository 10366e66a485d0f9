/* Post-copy, the source's half: the switch record, then requested pages
 * first and the rest in the background (see postcopy.h). The guest stays
 * paused here; its RAM is the frozen copy every page is read from. */
#include "migrate/postcopy.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <xxhash.h>

#include "base/escape.h"
#include "machine/machine.h"
#include "migrate/handover.h"
#include "migrate/mstate.h"

/* Unsent bytes the socket may hold before the push waits: a requested page
 * queues behind at most this much (0.5 ms at 1 Gbit/s). */
#define POSTCOPY_NOTSENT_LOWAT (64 * 1024)
/* Each wait for the destination's next message (it answers within a round
 * trip; pages pushed at a low bandwidth keep the link busy meanwhile). */
#define POSTCOPY_IO_TIMEOUT_MS 30000
/* After END: the destination installs what is in flight and answers. */
#define POSTCOPY_DONE_DEADLINE_MS 60000

static const uint8_t zero_page[RAM_PAGE_SIZE];

uint64_t postcopy_page_hash(const void *data, uint64_t page)
{
    return XXH3_64bits_withSeed(data, RAM_PAGE_SIZE, page);
}

static bool bit_get(const uint64_t *b, uint64_t i) { return (b[i >> 6] >> (i & 63)) & 1; }
static void bit_clear(uint64_t *b, uint64_t i) { b[i >> 6] &= ~(1ull << (i & 63)); }

static bool page_is_zero(const uint8_t *p)
{
    const uint64_t *w = (const uint64_t *)(const void *)p;
    for (size_t i = 0; i < RAM_PAGE_SIZE / 8; i++)
        if (w[i])
            return false;
    return true;
}

static uint64_t count_bits(const uint64_t *b, size_t words)
{
    uint64_t n = 0;
    for (size_t i = 0; i < words; i++)
        n += (uint64_t)__builtin_popcountll(b[i]);
    return n;
}

/* A bitmap record: u64 npages, then the words. */
static int put_bitmap(struct stream *s, uint32_t type, const uint64_t *bitmap, uint64_t npages,
                      struct error *err)
{
    size_t words = (npages + 63) / 64;
    uint8_t *body = malloc(8 + words * 8);
    if (!body)
        return error_set(err, "out of memory for the post-copy bitmap");
    put_u64(body, npages);
    for (size_t i = 0; i < words; i++) {
        uint64_t w = bitmap[i];
        if (i == words - 1 && npages % 64)
            w &= (1ull << (npages % 64)) - 1;
        put_u64(body + 8 + 8 * i, w);
    }
    int rc = stream_put(s, type, body, 8 + words * 8, err);
    free(body);
    return rc;
}

int postcopy_send_discard(struct machine *m, struct stream *s, const uint64_t *bitmap,
                          struct error *err)
{
    static const struct peer destination = {"destination", "destination refused the stream"};
    uint8_t token[4] = {0};
    const uint8_t *body;
    size_t len;
    if (put_bitmap(s, REC_POSTCOPY_DISCARD, bitmap, m->bus.ram.npages, err) < 0 ||
        stream_put(s, REC_PING, token, 4, err) < 0 || stream_flush(s, err) < 0 ||
        stream_expect(s, REC_PONG, &destination, &body, &len, err) < 0)
        return -1;
    return 0;
}

int postcopy_send_switch(struct postcopy_send *ps, struct machine *m, struct stream *s,
                         const uint64_t *bitmap, uint64_t bandwidth, bool verify,
                         struct error *err)
{
    struct ram *ram = &m->bus.ram;
    memset(ps, 0, sizeof *ps);
    ps->m = m;
    ps->npages = ram->npages;
    ps->bandwidth = bandwidth;
    ps->verify = verify;
    size_t words = ram->dirty_words;
    ps->todo = malloc(words * 8);
    if (!ps->todo)
        return error_set(err, "out of memory for the post-copy bitmap");
    memcpy(ps->todo, bitmap, words * 8);
    if (ram->npages % 64)
        ps->todo[words - 1] &= (1ull << (ram->npages % 64)) - 1;
    ps->total = count_bits(ps->todo, words);
    return put_bitmap(s, REC_POSTCOPY, ps->todo, ram->npages, err);
}

void postcopy_send_free(struct postcopy_send *ps)
{
    free(ps->todo);
    ps->todo = NULL;
}

/* One PAGES record with up to POSTCOPY_PUSH_PAGES pages, raw (no deltas:
 * the destination installs whole pages). Zero pages travel as flags. */
static int send_pages(struct postcopy_send *ps, struct stream *s, const uint64_t *pages,
                      unsigned n, struct error *err)
{
    struct ram *ram = &ps->m->bus.ram;
    uint8_t head[8];
    uint8_t entries[8 * POSTCOPY_PUSH_PAGES];
    const void *parts[2 + POSTCOPY_PUSH_PAGES];
    size_t lens[2 + POSTCOPY_PUSH_PAGES];
    unsigned nd = 0;
    for (unsigned i = 0; i < n; i++) {
        const uint8_t *host = ram->host + (pages[i] << RAM_PAGE_SHIFT);
        uint64_t entry = pages[i] << RAM_PAGE_SHIFT;
        if (!ram_page_touched(ram, pages[i]) || page_is_zero(host)) {
            entry |= PAGE_ENTRY_ZERO;
        } else {
            parts[2 + nd] = host;
            lens[2 + nd++] = RAM_PAGE_SIZE;
        }
        put_u64(entries + 8 * i, entry);
    }
    put_u32(head, n);
    put_u32(head + 4, 0);
    parts[0] = head;
    lens[0] = 8;
    parts[1] = entries;
    lens[1] = 8ull * n;
    return stream_put_iov(s, REC_PAGES, parts, lens, 2 + nd, err);
}

static bool input_ready(struct stream *s)
{
    if (s->ipos < s->ilen)
        return true;
    struct pollfd p = {.fd = s->fd, .events = POLLIN};
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLIN | POLLHUP | POLLERR));
}

static int parse_done(struct postcopy_send *ps, const uint8_t *body, size_t len,
                      struct error *err)
{
    if (len != 48)
        return error_set(err, "post-copy DONE record has %zu bytes", len);
    uint64_t paused = ps->fig.paused;
    ps->fig = (struct postcopy_figures){get_u64(body), get_u64(body + 8), get_u64(body + 16),
                                        get_u64(body + 24), get_u64(body + 32),
                                        get_u64(body + 40)};
    if (ps->fig.verified > 2 || ps->fig.median_ns > ps->fig.max_ns ||
        ps->fig.p99_ns > ps->fig.max_ns)
        return error_set(err, "post-copy DONE record's figures are inconsistent");
    ps->fig.paused = paused;
    return 0;
}

/* One record from the destination. */
static int handle_record(struct postcopy_send *ps, struct stream *s, bool *done, bool *sent,
                         struct error *err)
{
    uint32_t type;
    const uint8_t *body;
    size_t len;
    if (stream_get(s, &type, &body, &len, err) < 0)
        return -1;
    switch (type) {
    case REC_PAGE_REQ: {
        if (len != 8)
            return error_set(err, "page request record has %zu bytes", len);
        uint64_t page = get_u64(body);
        if (page >= ps->npages)
            return error_set(err, "the destination asked for page %llu of %llu",
                             (unsigned long long)page, (unsigned long long)ps->npages);
        /* Already sent (pushed, or asked before and in flight): it comes. */
        if (!bit_get(ps->todo, page))
            return 0;
        bit_clear(ps->todo, page);
        if (send_pages(ps, s, &page, 1, err) < 0)
            return -1;
        atomic_fetch_add(&ps->sent, 1);
        atomic_fetch_add(&ps->requested, 1);
        *sent = true;
        return 0;
    }
    case REC_POSTCOPY_DONE:
        if (count_bits(ps->todo, (ps->npages + 63) / 64))
            return error_set(err, "the destination said DONE before every page was sent");
        if (parse_done(ps, body, len, err) < 0)
            return -1;
        *done = true;
        return 0;
    case REC_ERROR:
        return error_set(err, "destination gave up: %s", peer_text(body, len).s);
    default:
        if (type & REC_OPTIONAL)
            return 0;
        return error_set(err, "unexpected record 0x%x from the destination during post-copy",
                         type);
    }
}

/* Answers every request already here; a page asked for goes out at once. */
static int serve_requests(struct postcopy_send *ps, struct stream *s, bool *done,
                          struct error *err)
{
    bool sent = false;
    while (!*done && input_ready(s))
        if (handle_record(ps, s, done, &sent, err) < 0)
            return -1;
    return sent ? stream_flush(s, err) : 0;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Waits until the background push may send its next record: the bandwidth
 * cap allows it and the socket has room (TCP_NOTSENT_LOWAT), serving
 * requests meanwhile. */
static int wait_turn(struct postcopy_send *ps, struct stream *s, uint64_t t0, uint64_t bytes0,
                     bool *done, struct error *err)
{
    for (;;) {
        int64_t wait_ns = 0;
        if (ps->bandwidth) {
            uint64_t due = (s->bytes_written - bytes0) * 1000000000ull / ps->bandwidth;
            int64_t elapsed = (int64_t)(now_ns() - t0);
            wait_ns = (int64_t)due - elapsed;
        }
        struct pollfd p = {.fd = s->fd, .events = POLLIN | (wait_ns <= 0 ? POLLOUT : 0)};
        int64_t t = wait_ns > 0 ? (wait_ns < 10000000 ? wait_ns : 10000000) : 100000000;
        struct timespec ts = {0, (long)t};
        int n = s->ipos < s->ilen ? 1 : ppoll(&p, 1, &ts, NULL);
        if (n > 0 && (s->ipos < s->ilen || (p.revents & (POLLIN | POLLHUP | POLLERR)))) {
            if (serve_requests(ps, s, done, err) < 0)
                return -1;
            if (p.revents & (POLLHUP | POLLERR) && !input_ready(s))
                return error_set(err, "connection to the destination lost");
            continue;
        }
        if (wait_ns <= 0 && n > 0 && (p.revents & POLLOUT))
            return 0;
        if (s->deadline && now_ns() >= s->deadline)
            return error_set(err, "post-copy did not finish in time");
    }
}

/* The post-copy hash of the frozen state here (postcopy.h). */
static int source_hash(struct postcopy_send *ps, uint64_t *out, struct error *err)
{
    struct ram *ram = &ps->m->bus.ram;
    uint64_t h;
    if (mstate_hash_devices(ps->m, &h, err) < 0)
        return -1;
    for (uint64_t page = 0; page < ram->npages; page++)
        h += postcopy_page_hash(ram_page_touched(ram, page) ? ram->host + (page << RAM_PAGE_SHIFT)
                                                            : zero_page, page);
    *out = h;
    return 0;
}

int postcopy_send_run(struct postcopy_send *ps, struct stream *s, atomic_bool *cancel,
                      struct error *err)
{
    (void)cancel; /* the guest runs on the destination: there is no going back */
    int lowat = POSTCOPY_NOTSENT_LOWAT;
    setsockopt(s->fd, IPPROTO_TCP, TCP_NOTSENT_LOWAT, &lowat, sizeof lowat);
    s->timeout_ms = POSTCOPY_IO_TIMEOUT_MS;
    s->spin_until = 0;
    stream_deadline(s, "post-copy", stream_copy_deadline_ms(ps->m->bus.ram.size, ps->bandwidth));
    uint64_t t0 = now_ns(), bytes0 = s->bytes_written;
    bool done = false;
    for (;;) {
        if (serve_requests(ps, s, &done, err) < 0)
            return -1;
        uint64_t pages[POSTCOPY_PUSH_PAGES];
        unsigned n = 0;
        while (n < POSTCOPY_PUSH_PAGES && ps->cursor < ps->npages) {
            uint64_t w = ps->todo[ps->cursor >> 6] >> (ps->cursor & 63);
            if (!w) {
                ps->cursor = (ps->cursor | 63) + 1;
                continue;
            }
            ps->cursor += (uint64_t)__builtin_ctzll(w);
            if (ps->cursor >= ps->npages)
                break;
            bit_clear(ps->todo, ps->cursor);
            pages[n++] = ps->cursor++;
        }
        if (!n)
            break;
        if (send_pages(ps, s, pages, n, err) < 0 || stream_flush(s, err) < 0)
            return -1;
        atomic_fetch_add(&ps->sent, n);
        if (wait_turn(ps, s, t0, bytes0, &done, err) < 0)
            return -1;
    }
    uint8_t end[12];
    uint64_t hash = 0;
    if (ps->verify && source_hash(ps, &hash, err) < 0)
        return -1;
    put_u32(end, ps->verify ? POSTCOPY_FLAG_VERIFY : 0);
    put_u64(end + 4, hash);
    if (stream_put(s, REC_POSTCOPY_END, end, sizeof end, err) < 0 || stream_flush(s, err) < 0)
        return -1;
    stream_deadline(s, "post-copy (DONE after END)", POSTCOPY_DONE_DEADLINE_MS);
    while (!done) {
        bool sent = false;
        if (handle_record(ps, s, &done, &sent, err) < 0)
            return -1;
    }
    return 0;
}

int postcopy_send_reconnect(struct postcopy_send *ps, struct stream *s, struct error *err)
{
    uint8_t b[8];
    put_u64(b, ps->npages);
    if (stream_put(s, REC_POSTCOPY_RESUME, b, 8, err) < 0 || stream_flush(s, err) < 0)
        return -1;
    s->timeout_ms = POSTCOPY_IO_TIMEOUT_MS;
    stream_deadline(s, "post-copy recovery (MISSING after RESUME)", POSTCOPY_IO_TIMEOUT_MS);
    uint32_t type;
    const uint8_t *body;
    size_t len;
    for (;;) {
        if (stream_get(s, &type, &body, &len, err) < 0)
            return -1;
        if (type == REC_ERROR)
            return error_set(err, "destination refused to resume: %s", peer_text(body, len).s);
        if (type == REC_POSTCOPY_MISSING)
            break;
        if (!(type & REC_OPTIONAL) && type != REC_PAGE_REQ)
            return error_set(err, "unexpected record 0x%x instead of the missing pages", type);
    }
    size_t words = (ps->npages + 63) / 64;
    if (len != 8 + words * 8 || get_u64(body) != ps->npages)
        return error_set(err, "the destination's missing-page record does not fit this VM");
    for (size_t i = 0; i < words; i++) {
        uint64_t w = get_u64(body + 8 + 8 * i);
        if (i == words - 1 && ps->npages % 64)
            w &= (1ull << (ps->npages % 64)) - 1;
        ps->todo[i] = w;
    }
    uint64_t left = count_bits(ps->todo, words);
    atomic_store(&ps->sent, left > ps->total ? 0 : ps->total - left);
    ps->cursor = 0;
    ps->fig.paused++;
    return 0;
}
