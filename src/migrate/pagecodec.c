#include "migrate/pagecodec.h"

#include <stdlib.h>
#include <string.h>
#include <zstd.h>

#include "base/tsan.h"
#include "machine/vclock.h"
#include "migrate/stream.h"

#define PAGE 4096u
#define ZSTD_LEVEL 1
/* auto: each batch's compressibility is estimated from a sample of its
 * pages (SAMPLE_PAGES spread over the batch, under 1 % of it). */
#define SAMPLE_PAGES 4
#define EWMA_NEW 0.25 /* weight of a new sample */
#define NO_PAGE UINT64_MAX

int compress_mode_parse(const char *text, enum compress_mode *out)
{
    if (strcmp(text, "none") == 0)
        *out = COMPRESS_NONE;
    else if (strcmp(text, "auto") == 0)
        *out = COMPRESS_AUTO;
    else if (strcmp(text, "zstd") == 0)
        *out = COMPRESS_ZSTD;
    else
        return -1;
    return 0;
}

const char *compress_mode_name(enum compress_mode mode)
{
    return mode == COMPRESS_AUTO ? "auto" : mode == COMPRESS_ZSTD ? "zstd" : "none";
}

struct page_encoder {
    enum compress_mode mode;
    uint64_t bandwidth_limit;
    /* Direct-mapped cache of what the destination holds: slot = page % n. */
    uint64_t nslots;
    uint64_t *slot_page;
    uint8_t *slot_data;
    /* Per batch: snapshots and deltas, handed out until the record is put. */
    uint8_t *scratch;
    size_t scratch_used, scratch_cap;
    uint8_t delta_tmp[PAGE];
    /* zstd */
    ZSTD_CCtx *cctx;
    uint8_t *raw, *packed;
    size_t raw_cap, packed_cap;
    /* auto's measurements (bytes per ns) */
    double zstd_rate, link_rate;
    bool have_zstd, have_link, zstd_on;
    uint8_t sample[SAMPLE_PAGES * PAGE];
    uint8_t sample_out[SAMPLE_PAGES * PAGE + 512];
    struct pagecodec_stats st;
};

struct page_encoder *page_encoder_new(enum compress_mode mode, uint64_t npages,
                                      uint64_t bandwidth_limit, struct error *err)
{
    struct page_encoder *e = calloc(1, sizeof *e);
    if (!e) {
        error_set(err, "out of memory for the page encoder");
        return NULL;
    }
    e->mode = mode;
    e->bandwidth_limit = bandwidth_limit;
    e->nslots = PAGECODEC_CACHE_BYTES / PAGE < npages ? PAGECODEC_CACHE_BYTES / PAGE : npages;
    if (!e->nslots)
        e->nslots = 1;
    e->slot_page = malloc(e->nslots * sizeof *e->slot_page);
    /* Untouched slots cost no memory until used (calloc'd pages map lazily). */
    e->slot_data = calloc(e->nslots, PAGE);
    /* A batch holds at most PAGES_PER_RECORD pages, each a page or a
     * shorter delta plus its length word. */
    e->scratch_cap = (size_t)PAGES_PER_RECORD * (PAGE + 8);
    e->scratch = malloc(e->scratch_cap);
    e->cctx = mode != COMPRESS_NONE ? ZSTD_createCCtx() : NULL;
    if (!e->slot_page || !e->slot_data || !e->scratch || (mode != COMPRESS_NONE && !e->cctx)) {
        page_encoder_free(e);
        error_set(err, "out of memory for the page encoder");
        return NULL;
    }
    for (uint64_t i = 0; i < e->nslots; i++)
        e->slot_page[i] = NO_PAGE;
    if (mode == COMPRESS_NONE)
        e->nslots = 0; /* no deltas either */
    if (e->cctx) {
        ZSTD_CCtx_setParameter(e->cctx, ZSTD_c_compressionLevel, ZSTD_LEVEL);
        /* The record's CRC covers the wire; the frame's own checksum also
         * catches a sender-side fault and makes corruption a clear error. */
        ZSTD_CCtx_setParameter(e->cctx, ZSTD_c_checksumFlag, 1);
    }
    e->zstd_on = mode == COMPRESS_ZSTD;
    return e;
}

void page_encoder_free(struct page_encoder *e)
{
    if (!e)
        return;
    ZSTD_freeCCtx(e->cctx);
    free(e->slot_page);
    free(e->slot_data);
    free(e->scratch);
    free(e->raw);
    free(e->packed);
    free(e);
}

static void put_varint(uint8_t **p, uint32_t v)
{
    while (v >= 0x80) {
        *(*p)++ = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    *(*p)++ = (uint8_t)v;
}

/* At most 2 bytes: values up to 4096 need no more. */
static int get_varint(const uint8_t **p, const uint8_t *end, uint32_t *v)
{
    uint32_t x = 0;
    for (int shift = 0; shift < 14; shift += 7) {
        if (*p == end)
            return -1;
        uint8_t b = *(*p)++;
        x |= (uint32_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *v = x;
            return 0;
        }
    }
    return -1;
}

size_t pagecodec_delta_encode(const uint8_t *old_page, const uint8_t *new_page, uint8_t *out,
                              size_t cap)
{
    uint8_t *p = out, *end = out + cap;
    uint32_t pos = 0;
    while (pos < PAGE) {
        uint32_t same = 0;
        /* Unchanged run, a word at a time where aligned. */
        while (pos + same < PAGE && old_page[pos + same] == new_page[pos + same]) {
            if (((pos + same) & 7) == 0 && pos + same + 8 <= PAGE &&
                memcmp(old_page + pos + same, new_page + pos + same, 8) == 0) {
                same += 8;
                continue;
            }
            same++;
        }
        if (pos + same == PAGE)
            break; /* the rest is unchanged: nothing more to say */
        uint32_t start = pos + same, diff = 0;
        /* Changed run; two equal bytes in a row are cheaper as a new run
         * only when followed by more: keep it simple and end at the first
         * unchanged byte pair. */
        while (start + diff < PAGE &&
               (old_page[start + diff] != new_page[start + diff] ||
                (start + diff + 1 < PAGE &&
                 old_page[start + diff + 1] != new_page[start + diff + 1])))
            diff++;
        if (end - p < 6 + (ptrdiff_t)diff)
            return PAGECODEC_NO_DELTA;
        put_varint(&p, same);
        put_varint(&p, diff);
        for (uint32_t i = 0; i < diff; i++)
            *p++ = old_page[start + i] ^ new_page[start + i];
        pos = start + diff;
    }
    return (size_t)(p - out);
}

int pagecodec_delta_check(const uint8_t *delta, size_t len, struct error *err)
{
    const uint8_t *p = delta, *end = delta + len;
    uint32_t pos = 0;
    while (p < end) {
        uint32_t same, diff;
        if (get_varint(&p, end, &same) < 0 || get_varint(&p, end, &diff) < 0)
            return error_set(err, "a delta page has a truncated or oversized run length");
        if (same > PAGE - pos || diff > PAGE - pos - same)
            return error_set(err, "a delta page's runs go past the end of the page");
        if ((size_t)(end - p) < diff)
            return error_set(err, "a delta page ends inside a changed run");
        p += diff;
        pos += same + diff;
    }
    return 0;
}

void pagecodec_delta_apply(uint8_t *page, const uint8_t *delta, size_t len)
{
    const uint8_t *p = delta, *end = delta + len;
    uint32_t pos = 0, same, diff;
    while (p < end && get_varint(&p, end, &same) == 0 && get_varint(&p, end, &diff) == 0) {
        pos += same;
        for (uint32_t i = 0; i < diff; i++)
            page[pos + i] ^= p[i];
        p += diff;
        pos += diff;
    }
}

const uint8_t *page_encoder_page(struct page_encoder *e, uint64_t page, const uint8_t *host,
                                 uint64_t *flags, size_t *len)
{
    *flags = 0;
    if (e->scratch_cap - e->scratch_used < PAGE + 8) {
        /* Cannot happen with PAGES_PER_RECORD pages a batch; never send
         * from guest memory here, it might change before it is copied. */
        *len = PAGE;
        return host;
    }
    uint8_t *snap = e->scratch + e->scratch_used;
    /* The guest may be writing the page meanwhile: the dirty log then
     * sends it again; what matters is that the cache and the wire get the
     * same bytes, this one copy. */
    TSAN_GUEST_RAM_BEGIN();
    memcpy(snap, host, PAGE);
    TSAN_GUEST_RAM_END();
    if (!e->nslots) {
        e->scratch_used += PAGE;
        *len = PAGE;
        return snap;
    }
    uint64_t slot = page % e->nslots;
    uint8_t *cached = e->slot_data + slot * PAGE;
    if (e->slot_page[slot] == page) {
        size_t n = pagecodec_delta_encode(cached, snap, e->delta_tmp, PAGECODEC_DELTA_MAX);
        if (n != PAGECODEC_NO_DELTA) {
            memcpy(cached, snap, PAGE);
            /* The snapshot's room takes the length word and the delta. */
            put_u32(snap, (uint32_t)n);
            memcpy(snap + 4, e->delta_tmp, n);
            e->scratch_used += 4 + n;
            e->st.delta_pages++;
            e->st.delta_bytes += n;
            *flags = PAGE_ENTRY_DELTA;
            *len = 4 + n;
            return snap;
        }
    }
    memcpy(cached, snap, PAGE);
    e->slot_page[slot] = page;
    e->scratch_used += PAGE;
    *len = PAGE;
    return snap;
}

void page_encoder_zero(struct page_encoder *e, uint64_t page)
{
    if (e->nslots && e->slot_page[page % e->nslots] == page)
        e->slot_page[page % e->nslots] = NO_PAGE;
}

static double ewma(double old, double sample, bool have)
{
    return have ? old + EWMA_NEW * (sample - old) : sample;
}

/* auto: compress this batch when link < zstd rate x (1 - its ratio),
 * i.e. when the time to compress a byte is less than the link time it
 * saves. The ratio is the batch's, from a sample of its pages; the zstd
 * rate comes from the batches compressed so far (first from the sample),
 * the link rate from the time puts wait for the socket (or --bandwidth
 * when lower). With no measured link yet, the link counts as fast. */
static bool auto_decide(struct page_encoder *e, const void *const *parts, const size_t *lens,
                        unsigned nparts)
{
    double link = e->have_link ? e->link_rate : 0;
    double limit = (double)e->bandwidth_limit / 1e9;
    if (limit > 0 && (!link || limit < link))
        link = limit;
    if (!link || nparts < 2)
        return false;
    /* The entries (they are most of a batch of deltas), then pages. */
    size_t n = lens[1] < PAGE ? lens[1] : PAGE;
    memcpy(e->sample, parts[1], n);
    unsigned ndata = nparts - 2, step = ndata / (SAMPLE_PAGES - 1) ? ndata / (SAMPLE_PAGES - 1) : 1;
    for (unsigned i = 0; i < ndata && n + PAGE <= sizeof e->sample; i += step) {
        size_t k = lens[2 + i] < PAGE ? lens[2 + i] : PAGE;
        memcpy(e->sample + n, parts[2 + i], k);
        n += k;
    }
    uint64_t t0 = vclock_host_ns();
    size_t z = ZSTD_compressCCtx(e->cctx, e->sample_out, sizeof e->sample_out, e->sample, n,
                                 ZSTD_LEVEL);
    uint64_t ns = vclock_host_ns() - t0;
    if (ZSTD_isError(z) || !n)
        return false;
    double ratio = (double)z / (double)n;
    if (!e->have_zstd) {
        e->zstd_rate = (double)n / (double)(ns ? ns : 1);
        e->have_zstd = true;
    }
    return link < e->zstd_rate * (1.0 - ratio);
}

static int put_plain(struct page_encoder *e, struct stream *s, uint32_t type,
                     const void *const *parts, const size_t *lens, unsigned nparts,
                     size_t raw_len, struct error *err)
{
    uint64_t t0 = vclock_host_ns();
    if (stream_put_iov(s, type, parts, lens, nparts, err) < 0)
        return -1;
    uint64_t ns = vclock_host_ns() - t0;
    /* Time spent in a put is time waiting for the link (the buffer
     * flushing into the socket), when there is any. */
    if (ns > 20000) {
        e->link_rate = ewma(e->link_rate, (double)raw_len / (double)ns, e->have_link);
        e->have_link = true;
    }
    e->st.plain_records++;
    e->st.sent_record_bytes += raw_len;
    return 0;
}

/* A record of plain_type, or z_type when zstd pays (PAGES or BLOCKS). */
static int put_record(struct page_encoder *e, struct stream *s, uint32_t plain_type,
                      uint32_t z_type, const void *const *parts, const size_t *lens,
                      unsigned nparts, struct error *err)
{
    size_t raw_len = 0;
    for (unsigned i = 0; i < nparts; i++)
        raw_len += lens[i];
    e->scratch_used = 0;
    e->st.page_record_bytes += raw_len;
    if (e->mode == COMPRESS_AUTO)
        e->zstd_on = auto_decide(e, parts, lens, nparts);
    if (!e->zstd_on)
        return put_plain(e, s, plain_type, parts, lens, nparts, raw_len, err);

    if (e->raw_cap < raw_len) {
        free(e->raw);
        e->raw = malloc(raw_len);
        e->raw_cap = e->raw ? raw_len : 0;
    }
    size_t bound = ZSTD_compressBound(raw_len) + 4;
    if (e->packed_cap < bound) {
        free(e->packed);
        e->packed = malloc(bound);
        e->packed_cap = e->packed ? bound : 0;
    }
    if (!e->raw || !e->packed)
        return error_set(err, "out of memory for compression");
    size_t off = 0;
    for (unsigned i = 0; i < nparts; i++) {
        memcpy(e->raw + off, parts[i], lens[i]);
        off += lens[i];
    }
    uint64_t t0 = vclock_host_ns();
    size_t n = ZSTD_compress2(e->cctx, e->packed + 4, e->packed_cap - 4, e->raw, raw_len);
    uint64_t ns = vclock_host_ns() - t0;
    if (ZSTD_isError(n))
        return error_set(err, "zstd: %s", ZSTD_getErrorName(n));
    e->st.zstd_in_bytes += raw_len;
    e->st.zstd_out_bytes += n;
    e->st.zstd_ns += ns;
    e->zstd_rate = ewma(e->zstd_rate, (double)raw_len / (double)(ns ? ns : 1), e->have_zstd);
    e->have_zstd = true;
    if (n + 4 >= raw_len) {
        const void *one[1] = {e->raw};
        size_t one_len[1] = {raw_len};
        return put_plain(e, s, plain_type, one, one_len, 1, raw_len, err);
    }
    put_u32(e->packed, (uint32_t)raw_len);
    uint64_t t1 = vclock_host_ns();
    if (stream_put(s, z_type, e->packed, n + 4, err) < 0)
        return -1;
    uint64_t put_ns = vclock_host_ns() - t1;
    if (put_ns > 20000) {
        e->link_rate = ewma(e->link_rate, (double)(n + 4) / (double)put_ns, e->have_link);
        e->have_link = true;
    }
    e->st.zstd_records++;
    e->st.sent_record_bytes += n + 4;
    return 0;
}

int page_encoder_put_record(struct page_encoder *e, struct stream *s, const void *const *parts,
                            const size_t *lens, unsigned nparts, struct error *err)
{
    return put_record(e, s, REC_PAGES, REC_PAGES_Z, parts, lens, nparts, err);
}

int page_encoder_put_blocks(struct page_encoder *e, struct stream *s, const void *const *parts,
                            const size_t *lens, unsigned nparts, struct error *err)
{
    return put_record(e, s, REC_BLOCKS, REC_BLOCKS_Z, parts, lens, nparts, err);
}

void page_encoder_stats(const struct page_encoder *e, struct pagecodec_stats *out)
{
    *out = e->st;
    out->link_bytes_per_s = e->have_link ? e->link_rate * 1e9 : 0;
    out->zstd_active = e->zstd_on;
}

int pagecodec_inflate(const uint8_t *body, size_t len, uint8_t **buf, size_t *cap,
                      const uint8_t **out, size_t *out_len, struct error *err)
{
    if (len < 4)
        return error_set(err, "compressed pages record too short");
    uint32_t raw_len = get_u32(body);
    if (raw_len < 8 || raw_len > STREAM_MAX_RECORD)
        return error_set(err, "compressed pages record claims %u bytes", raw_len);
    unsigned long long content = ZSTD_getFrameContentSize(body + 4, len - 4);
    if (content != raw_len)
        return error_set(err, "compressed pages record: the zstd frame %s, the record says %u "
                         "bytes", content == ZSTD_CONTENTSIZE_ERROR ? "is not valid"
                         : content == ZSTD_CONTENTSIZE_UNKNOWN ? "has no size" : "has another size",
                         raw_len);
    if (*cap < raw_len) {
        uint8_t *nb = realloc(*buf, raw_len);
        if (!nb)
            return error_set(err, "out of memory for a compressed pages record");
        *buf = nb;
        *cap = raw_len;
    }
    size_t n = ZSTD_decompress(*buf, raw_len, body + 4, len - 4);
    if (ZSTD_isError(n))
        return error_set(err, "compressed pages record does not decompress: %s",
                         ZSTD_getErrorName(n));
    if (n != raw_len)
        return error_set(err, "compressed pages record decompressed to %zu bytes, not %u", n,
                         raw_len);
    *out = *buf;
    *out_len = n;
    return 0;
}

int pagecodec_record(uint32_t *type, const uint8_t **body, size_t *len, uint8_t **buf,
                     size_t *cap, struct error *err)
{
    if (*type != REC_PAGES_Z && *type != REC_BLOCKS_Z)
        return 0;
    if (pagecodec_inflate(*body, *len, buf, cap, body, len, err) < 0)
        return -1;
    *type = *type == REC_PAGES_Z ? REC_PAGES : REC_BLOCKS;
    return 0;
}
