/* The page codec (src/migrate/pagecodec.c): deltas reproduce the new page
 * exactly and are refused when malformed; the encoder's records decode back
 * to the PAGES body it was given, re-sent pages go as deltas against what
 * was sent before, zstd shrinks compressible batches, auto turns zstd on
 * for a slow link and off for a fast one, and corrupt compressed records
 * are refused. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "migrate/pagecodec.h"
#include "migrate/stream.h"
#include "check.h"

#define PAGE 4096

static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void test_delta_roundtrip(void)
{
    static uint8_t old[PAGE], new[PAGE], out[PAGE], back[PAGE];
    for (int iter = 0; iter < 2000; iter++) {
        for (int i = 0; i < PAGE; i++)
            old[i] = (uint8_t)next();
        memcpy(new, old, PAGE);
        int changes = (int)(next() % 40);
        for (int c = 0; c < changes; c++) {
            int at = (int)(next() % PAGE), n = (int)(next() % 64) + 1;
            for (int k = 0; k < n && at + k < PAGE; k++)
                new[at + k] = (uint8_t)next();
        }
        size_t n = pagecodec_delta_encode(old, new, out, PAGECODEC_DELTA_MAX);
        if (n == PAGECODEC_NO_DELTA) {
            /* Too many changes for a worthwhile delta is allowed, not for a few. */
            CHECK(changes > 8, "no delta for %d small changes", changes);
            continue;
        }
        struct error err;
        CHECK(pagecodec_delta_check(out, n, &err) == 0, "own delta refused: %s", err.msg);
        memcpy(back, old, PAGE);
        pagecodec_delta_apply(back, out, n);
        CHECK(memcmp(back, new, PAGE) == 0, "delta of %d changes does not reproduce the page",
              changes);
    }
    /* An unchanged page is an empty delta; one changed byte a few bytes. */
    memset(old, 7, PAGE);
    memcpy(new, old, PAGE);
    CHECK(pagecodec_delta_encode(old, new, out, PAGECODEC_DELTA_MAX) == 0, "unchanged page");
    new[4095] = 8;
    size_t n = pagecodec_delta_encode(old, new, out, PAGECODEC_DELTA_MAX);
    CHECK(n > 0 && n <= 5, "one changed byte takes %zu bytes", n);
}

static void test_delta_refused(void)
{
    struct error err;
    static const uint8_t past_end[] = {0x80, 0x20, 0x01, 0xaa};   /* 4096 same, then 1 */
    static const uint8_t truncated[] = {0x00, 0x05, 1, 2};        /* 5 changed, 2 given */
    static const uint8_t long_varint[] = {0x80, 0x80, 0x80, 0x01, 0x00};
    static const uint8_t half[] = {0x10};
    CHECK(pagecodec_delta_check(past_end, sizeof past_end, &err) < 0, "run past the page");
    CHECK(pagecodec_delta_check(truncated, sizeof truncated, &err) < 0, "truncated run");
    CHECK(pagecodec_delta_check(long_varint, sizeof long_varint, &err) < 0, "oversized varint");
    CHECK(pagecodec_delta_check(half, sizeof half, &err) < 0, "a run without its length");
}

/* Splits a capturing stream's buffer into its records. */
struct rec {
    uint32_t type;
    const uint8_t *body;
    size_t len;
};
static unsigned split(const struct stream *s, struct rec *out, unsigned max)
{
    unsigned n = 0;
    size_t off = 0;
    while (off + 12 <= s->wlen && n < max) {
        out[n].type = get_u32(s->wbuf + off);
        out[n].len = get_u32(s->wbuf + off + 4);
        out[n].body = s->wbuf + off + 8;
        off += 12 + out[n].len;
        n++;
    }
    return n;
}

/* A PAGES body of n pages from pages[], through the encoder; returns the
 * record it produced decoded back (type REC_PAGES) into *body. */
static uint8_t page_data[64][PAGE];

static int encode_batch(struct page_encoder *e, struct stream *s, unsigned n, uint32_t *type,
                        size_t *sent_len, uint8_t **plain, size_t *plain_len)
{
    static uint64_t entries[64];
    static uint8_t head[8];
    const void *parts[2 + 64];
    size_t lens[2 + 64];
    for (unsigned i = 0; i < n; i++) {
        uint64_t flags;
        size_t len;
        const uint8_t *d = page_encoder_page(e, i, page_data[i], &flags, &len);
        put_u64((uint8_t *)&entries[i], ((uint64_t)i << 12) | flags);
        parts[2 + i] = d;
        lens[2 + i] = len;
    }
    put_u32(head, n);
    put_u32(head + 4, 0);
    parts[0] = head;
    lens[0] = 8;
    parts[1] = entries;
    lens[1] = 8ull * n;
    /* What the plain record would be. */
    size_t total = 0;
    for (unsigned i = 0; i < 2 + n; i++)
        total += lens[i];
    *plain = malloc(total);
    *plain_len = 0;
    for (unsigned i = 0; i < 2 + n; i++) {
        memcpy(*plain + *plain_len, parts[i], lens[i]);
        *plain_len += lens[i];
    }
    s->wlen = 0;
    struct error err;
    if (page_encoder_put_record(e, s, parts, lens, 2 + n, &err) < 0) {
        printf("FAIL: put_record: %s\n", err.msg);
        failures++;
        return -1;
    }
    struct rec r[2];
    CHECK(split(s, r, 2) == 1, "one record per batch");
    *type = r[0].type;
    *sent_len = r[0].len;
    uint8_t *buf = NULL;
    size_t cap = 0;
    uint32_t t = r[0].type;
    const uint8_t *body = r[0].body;
    size_t len = r[0].len;
    int rc = pagecodec_record(&t, &body, &len, &buf, &cap, &err);
    CHECK(rc == 0, "own record refused: %s", err.msg);
    CHECK(rc == 0 && t == REC_PAGES && len == *plain_len && memcmp(body, *plain, len) == 0,
          "record (type 0x%x) does not decode to the PAGES body it was made of", *type);
    free(buf);
    return 0;
}

static unsigned count_deltas(const uint8_t *plain, unsigned n)
{
    unsigned d = 0;
    for (unsigned i = 0; i < n; i++)
        d += (get_u64(plain + 8 + 8 * i) & PAGE_ENTRY_DELTA) != 0;
    return d;
}

static void test_encoder(void)
{
    struct error err;
    struct stream s;
    if (stream_init(&s, -1, &err) < 0) {
        printf("FAIL: %s\n", err.msg);
        failures++;
        return;
    }
    s.capture = true;
    /* Compressible pages: text-like repetition. */
    for (unsigned i = 0; i < 64; i++)
        for (unsigned k = 0; k < PAGE; k++)
            page_data[i][k] = (uint8_t)("ferry migrates guests "[k % 22] + (i & 3));

    struct page_encoder *e = page_encoder_new(COMPRESS_ZSTD, 1024, 0, &err);
    CHECK(e != NULL, "encoder: %s", err.msg);
    uint32_t type;
    size_t sent, plain_len;
    uint8_t *plain;
    encode_batch(e, &s, 64, &type, &sent, &plain, &plain_len);
    CHECK(type == REC_PAGES_Z && sent * 4 < plain_len,
          "zstd: compressible batch of %zu bytes sent as type 0x%x, %zu bytes", plain_len, type,
          sent);
    CHECK(count_deltas(plain, 64) == 0, "first sending has no deltas");
    free(plain);
    /* Re-sent with a few changes: deltas against the first sending. */
    for (unsigned i = 0; i < 64; i += 2)
        page_data[i][100 + i] ^= 0x5a;
    encode_batch(e, &s, 64, &type, &sent, &plain, &plain_len);
    CHECK(count_deltas(plain, 64) == 64, "re-sent pages: %u of 64 as deltas",
          count_deltas(plain, 64));
    free(plain);
    /* A page sent as zero is no longer a base for a delta. */
    page_encoder_zero(e, 5);
    encode_batch(e, &s, 8, &type, &sent, &plain, &plain_len);
    CHECK(count_deltas(plain, 8) == 7, "after a zero page: %u of 8 deltas", count_deltas(plain, 8));
    free(plain);
    /* Random pages do not compress: sent plain. */
    for (unsigned i = 0; i < 64; i++)
        for (unsigned k = 0; k < PAGE; k++)
            page_data[i][k] = (uint8_t)next();
    page_encoder_free(e);
    e = page_encoder_new(COMPRESS_ZSTD, 1024, 0, &err);
    encode_batch(e, &s, 64, &type, &sent, &plain, &plain_len);
    CHECK(type == REC_PAGES && sent == plain_len, "random pages: type 0x%x", type);
    free(plain);
    page_encoder_free(e);

    /* none: plain records, no deltas. */
    e = page_encoder_new(COMPRESS_NONE, 1024, 0, &err);
    for (int round = 0; round < 2; round++) {
        encode_batch(e, &s, 64, &type, &sent, &plain, &plain_len);
        CHECK(type == REC_PAGES && count_deltas(plain, 64) == 0, "none: type 0x%x, %u deltas",
              type, count_deltas(plain, 64));
        free(plain);
    }
    page_encoder_free(e);

    /* auto with a slow link (--bandwidth 1M): compresses compressible pages. */
    for (unsigned i = 0; i < 64; i++)
        memset(page_data[i], (int)i, PAGE);
    e = page_encoder_new(COMPRESS_AUTO, 1024, 1 << 20, &err);
    unsigned z = 0;
    for (int r = 0; r < 8; r++) {
        page_encoder_free(e);
        e = page_encoder_new(COMPRESS_AUTO, 1024, 1 << 20, &err);
        for (int k = 0; k < 4; k++) {
            encode_batch(e, &s, 64, &type, &sent, &plain, &plain_len);
            z += type == REC_PAGES_Z;
            free(plain);
        }
    }
    CHECK(z == 32, "auto on a 1 MB/s link: %u of 32 batches compressed", z);
    struct pagecodec_stats st;
    page_encoder_stats(e, &st);
    CHECK(st.zstd_active && st.zstd_records == 4, "auto stats: active %d, %llu records",
          st.zstd_active, (unsigned long long)st.zstd_records);
    page_encoder_free(e);

    /* auto with an unmeasured, unlimited link (a capture stream never
     * waits): the link counts as fast, nothing is compressed. */
    e = page_encoder_new(COMPRESS_AUTO, 1024, 0, &err);
    encode_batch(e, &s, 64, &type, &sent, &plain, &plain_len);
    CHECK(type == REC_PAGES, "auto on a fast link compressed (type 0x%x)", type);
    free(plain);
    page_encoder_free(e);
    stream_free(&s);
}

static void test_corrupt_refused(void)
{
    struct error err;
    uint8_t *buf = NULL;
    size_t cap = 0;
    const uint8_t *out;
    size_t out_len;
    uint8_t rec[64];
    memset(rec, 0, sizeof rec);
    put_u32(rec, 1000);
    memset(rec + 4, 0xab, 40);
    CHECK(pagecodec_inflate(rec, 44, &buf, &cap, &out, &out_len, &err) < 0,
          "garbage frame accepted");
    CHECK(pagecodec_inflate(rec, 3, &buf, &cap, &out, &out_len, &err) < 0, "short record");
    put_u32(rec, STREAM_MAX_RECORD + 1);
    CHECK(pagecodec_inflate(rec, 44, &buf, &cap, &out, &out_len, &err) < 0, "oversized claim");

    /* A real frame with one byte flipped, and one whose size word lies. */
    static uint8_t raw[8192], packed[8192 + 64];
    for (unsigned i = 0; i < sizeof raw; i++)
        raw[i] = (uint8_t)(i / 50);
    ZSTD_CCtx *cctx = ZSTD_createCCtx();
    ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1);
    size_t n = ZSTD_compress2(cctx, packed + 4, sizeof packed - 4, raw, sizeof raw);
    ZSTD_freeCCtx(cctx);
    CHECK(!ZSTD_isError(n), "zstd");
    put_u32(packed, sizeof raw);
    CHECK(pagecodec_inflate(packed, n + 4, &buf, &cap, &out, &out_len, &err) == 0 &&
              out_len == sizeof raw && memcmp(out, raw, sizeof raw) == 0,
          "a good frame: %s", err.msg);
    put_u32(packed, sizeof raw - 1);
    CHECK(pagecodec_inflate(packed, n + 4, &buf, &cap, &out, &out_len, &err) < 0,
          "a frame whose size differs from the record's accepted");
    put_u32(packed, sizeof raw);
    /* No single flipped bit inside the frame yields wrong pages (the
     * encoder's frames carry zstd's content checksum; a few header bits
     * change nothing that matters and decode to the same bytes). */
    unsigned wrong = 0, refused = 0;
    for (size_t at = 0; at < n; at++) {
        packed[4 + at] ^= 0x10;
        if (pagecodec_inflate(packed, n + 4, &buf, &cap, &out, &out_len, &err) < 0)
            refused++;
        else if (out_len != sizeof raw || memcmp(out, raw, sizeof raw) != 0)
            wrong++;
        packed[4 + at] ^= 0x10;
    }
    CHECK(wrong == 0, "%u of %zu corrupted frames decoded to wrong pages", wrong, n);
    CHECK(refused + 8 >= n, "only %u of %zu corrupted frames refused", refused, n);
    free(buf);
}

int main(void)
{
    test_delta_roundtrip();
    test_delta_refused();
    test_encoder();
    test_corrupt_refused();
    printf("%s: %d checks, %d failures\n", failures ? "FAIL" : "PASS", checks, failures);
    return failures ? 1 : 0;
}
