#include "migrate/stream.h"

#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/crc32c.h"
#include "machine/vclock.h"

#define WBUF_FLUSH_AT (1u << 20)
#define WBUF_FULL (WBUF_FLUSH_AT + STREAM_MAX_RECORD + 64)
#define WBUF_INITIAL (64u * 1024)

int stream_init(struct stream *s, int fd, struct error *err)
{
    memset(s, 0, sizeof *s);
    s->fd = fd;
    s->timeout_ms = -1;
    s->version = STREAM_VERSION;
    /* Small at first: a receiver only answers with small records. It
     * grows to its full size (WBUF_FULL) at the first large record. */
    s->wcap = WBUF_INITIAL;
    s->wbuf = malloc(s->wcap);
    if (!s->wbuf)
        return error_set(err, "out of memory for the stream buffer");
    return 0;
}

void stream_free(struct stream *s)
{
    free(s->wbuf);
    free(s->rbuf);
    free(s->ibuf);
    s->wbuf = s->rbuf = s->ibuf = NULL;
}

void stream_deadline(struct stream *s, const char *phase, uint64_t ms)
{
    s->phase = phase;
    s->deadline = ms ? vclock_host_ns() + ms * 1000000ull : 0;
}

uint64_t stream_copy_deadline_ms(uint64_t bytes, uint64_t bandwidth)
{
    const uint64_t base = 5 * 60 * 1000, min_rate = 1 << 20;
    uint64_t rate = bandwidth && bandwidth < min_rate ? bandwidth : min_rate;
    return base + bytes / rate * 1000 + 1000;
}

/* The time left in the phase, capped by the per-wait timeout: -1 for no
 * limit, 0 when the phase is over. */
static int phase_timeout_ms(const struct stream *s)
{
    if (!s->deadline)
        return s->timeout_ms;
    uint64_t now = vclock_host_ns();
    if (now >= s->deadline)
        return 0;
    uint64_t left = (s->deadline - now + 999999) / 1000000;
    if (s->timeout_ms >= 0 && left > (uint64_t)s->timeout_ms)
        return s->timeout_ms;
    return left > INT32_MAX ? INT32_MAX : (int)left;
}

static int phase_over(const struct stream *s, struct error *err)
{
    return error_set(err, "the peer did not complete the %s in time (a total deadline, "
                     "however it trickles data)", s->phase ? s->phase : "exchange");
}

static int wait_fd(struct stream *s, short events, struct error *err)
{
    struct pollfd p = {.fd = s->fd, .events = events};
    if (events == POLLIN && s->spin_until) {
        /* Yielding: on a small host another thread of the migration (the
         * vCPU parking, the peer) may need this core. */
        while (vclock_host_ns() < s->spin_until) {
            if (poll(&p, 1, 0) > 0)
                return 0;
            sched_yield();
        }
        s->spin_until = 0;
    }
    int timeout = phase_timeout_ms(s);
    if (timeout < 0)
        return 0;
    if (s->deadline && timeout == 0)
        return phase_over(s, err);
    int n;
    do {
        n = poll(&p, 1, timeout);
    } while (n < 0 && errno == EINTR);
    if (n == 0 && s->deadline && vclock_host_ns() >= s->deadline)
        return phase_over(s, err);
    if (n == 0)
        return error_set(err, "peer did not respond within %d ms", s->timeout_ms);
    if (n < 0)
        return error_set(err, "poll: %s", strerror(errno));
    return 0;
}

static int write_all(struct stream *s, const uint8_t *p, size_t len, struct error *err)
{
    while (len) {
        if (wait_fd(s, POLLOUT, err) < 0)
            return -1;
        ssize_t n = send(s->fd, p, len, MSG_NOSIGNAL);
        if (n < 0 && errno == ENOTSOCK)
            n = write(s->fd, p, len);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return error_set(err, "connection lost while sending: %s", strerror(errno));
        }
        p += n;
        len -= (size_t)n;
        s->bytes_written += (uint64_t)n;
    }
    return 0;
}

/* Reads go through ibuf: a record is a header, a body and a CRC, and a
 * round of small records (the final device state) would otherwise cost
 * three system calls each while the guest is paused. Long bodies that do
 * not fit are read straight into place. */
#define IBUF_SIZE (256u * 1024)

static int read_all(struct stream *s, uint8_t *p, size_t len, struct error *err)
{
    size_t want = len;
    if (!s->ibuf)
        s->ibuf = malloc(IBUF_SIZE); /* without it: unbuffered reads */
    while (len) {
        if (s->ipos < s->ilen) {
            size_t k = s->ilen - s->ipos < len ? s->ilen - s->ipos : len;
            memcpy(p, s->ibuf + s->ipos, k);
            s->ipos += k;
            p += k;
            len -= k;
            continue;
        }
        if (wait_fd(s, POLLIN, err) < 0)
            return -1;
        bool direct = !s->ibuf || len >= IBUF_SIZE / 2;
        ssize_t n = direct ? read(s->fd, p, len) : read(s->fd, s->ibuf, IBUF_SIZE);
        if (n < 0) {
            if (errno == EINTR || errno == EAGAIN)
                continue;
            return error_set(err, "connection lost while receiving: %s", strerror(errno));
        }
        if (n == 0)
            return error_set(err, "stream truncated: %s after %zu of %zu bytes",
                             want == len ? "ended" : "ended mid-record", want - len, want);
        s->bytes_read += (uint64_t)n;
        if (direct) {
            p += n;
            len -= (size_t)n;
        } else {
            s->ipos = 0;
            s->ilen = (size_t)n;
        }
    }
    return 0;
}

int stream_preload(struct stream *s, const void *bytes, size_t n, struct error *err)
{
    if (n > 64 || s->ilen)
        return error_set(err, "stream_preload: %zu bytes after reading began", n);
    if (!s->ibuf && !(s->ibuf = malloc(IBUF_SIZE)))
        return error_set(err, "out of memory for the stream buffer");
    memcpy(s->ibuf, bytes, n);
    s->ipos = 0;
    s->ilen = n;
    return 0;
}

int stream_flush(struct stream *s, struct error *err)
{
    if (!s->wlen || s->capture)
        return 0;
    int rc = write_all(s, s->wbuf, s->wlen, err);
    s->wlen = 0;
    return rc;
}

void stream_spin(struct stream *s, uint64_t ns)
{
    s->spin_until = vclock_host_ns() + ns;
}

int stream_write_header(struct stream *s, uint32_t version, struct error *err)
{
    uint8_t h[STREAM_HEADER_SIZE];
    memcpy(h, STREAM_MAGIC, 8);
    put_u32(h + 8, version);
    put_u32(h + 12, 0);
    s->version = version;
    memcpy(s->wbuf + s->wlen, h, sizeof h);
    s->wlen += sizeof h;
    return 0;
    (void)err;
}

int stream_read_header(struct stream *s, struct error *err)
{
    uint8_t h[STREAM_HEADER_SIZE];
    if (read_all(s, h, sizeof h, err) < 0)
        return error_prefix(err, "reading the stream header");
    if (memcmp(h, STREAM_MAGIC, 8) != 0)
        return error_set(err, "not a ferry migration stream (bad magic)");
    uint32_t version = get_u32(h + 8);
    if (version < STREAM_MIN_VERSION || version > STREAM_VERSION)
        return error_set(err, "stream version %u is not supported (this build reads %d..%d)",
                         version, STREAM_MIN_VERSION, STREAM_VERSION);
    if (get_u32(h + 12) != 0)
        return error_set(err, "stream header has unknown flags 0x%x", get_u32(h + 12));
    s->version = version;
    return 0;
}

int stream_put_iov(struct stream *s, uint32_t type, const void *const *parts, const size_t *lens,
                   unsigned nparts, struct error *err)
{
    size_t len = 0;
    for (unsigned i = 0; i < nparts; i++)
        len += lens[i];
    if (len > STREAM_MAX_RECORD)
        return error_set(err, "record of %zu bytes is too large", len);
    if (s->wlen + len + 12 > s->wcap) {
        if (s->capture) {
            /* Capturing a checkpoint: grow instead of sending. */
            size_t cap = (s->wlen + len + 12) * 2;
            uint8_t *nb = realloc(s->wbuf, cap);
            if (!nb)
                return error_set(err, "out of memory capturing %zu bytes", cap);
            s->wbuf = nb;
            s->wcap = cap;
        } else if (s->wcap < WBUF_FULL) {
            /* A sender after all: the buffer takes its full size. */
            uint8_t *nb = realloc(s->wbuf, WBUF_FULL);
            if (!nb)
                return error_set(err, "out of memory for the stream buffer");
            s->wbuf = nb;
            s->wcap = WBUF_FULL;
        } else if (stream_flush(s, err) < 0) {
            return -1;
        }
    }
    uint8_t *p = s->wbuf + s->wlen;
    put_u32(p, type);
    put_u32(p + 4, (uint32_t)len);
    size_t off = 8;
    for (unsigned i = 0; i < nparts; i++) {
        if (lens[i])
            memcpy(p + off, parts[i], lens[i]);
        off += lens[i];
    }
    put_u32(p + off, crc32c(0, p, off));
    s->wlen += off + 4;
    if (s->wlen >= WBUF_FLUSH_AT && !s->capture)
        return stream_flush(s, err);
    return 0;
}

int stream_put(struct stream *s, uint32_t type, const void *body, size_t len, struct error *err)
{
    return stream_put_iov(s, type, &body, &len, 1, err);
}

int stream_get(struct stream *s, uint32_t *type, const uint8_t **body, size_t *len,
               struct error *err)
{
    uint8_t h[8];
    /* Records already buffered count too: a peer sending heartbeats fast
     * must not keep a phase alive. */
    if (s->deadline && vclock_host_ns() >= s->deadline)
        return phase_over(s, err);
    if (read_all(s, h, 8, err) < 0)
        return -1;
    uint32_t t = get_u32(h), n = get_u32(h + 4);
    if (n > STREAM_MAX_RECORD)
        return error_set(err, "record type 0x%x claims %u bytes (limit %u): stream corrupt", t, n,
                         STREAM_MAX_RECORD);
    if (s->rcap < (size_t)n + 8 + 4) {
        uint8_t *nb = realloc(s->rbuf, (size_t)n + 12);
        if (!nb)
            return error_set(err, "out of memory for a %u-byte record", n);
        s->rbuf = nb;
        s->rcap = (size_t)n + 12;
    }
    memcpy(s->rbuf, h, 8);
    if (read_all(s, s->rbuf + 8, (size_t)n + 4, err) < 0)
        return -1;
    uint32_t want = get_u32(s->rbuf + 8 + n);
    uint32_t got = crc32c(0, s->rbuf, (size_t)n + 8);
    if (want != got)
        return error_set(err, "record type 0x%x (%u bytes) failed its CRC check: stream corrupt",
                         t, n);
    *type = t;
    *body = s->rbuf + 8;
    *len = n;
    return 0;
}

int stream_send_captured(struct stream *s, const struct stream *captured, struct error *err)
{
    if (stream_flush(s, err) < 0)
        return -1;
    return write_all(s, captured->wbuf, captured->wlen, err);
}

int stream_send_small(struct stream *s, uint32_t type, const void *body, size_t len,
                      struct error *err)
{
    uint8_t rec[8 + 256 + 4];
    if (len > 256)
        return error_set(err, "small record too large");
    put_u32(rec, type);
    put_u32(rec + 4, (uint32_t)len);
    if (len)
        memcpy(rec + 8, body, len);
    put_u32(rec + 8 + len, crc32c(0, rec, 8 + len));
    return write_all(s, rec, 12 + len, err);
}
