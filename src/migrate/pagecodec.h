/* Fewer bytes for RAM pages on the wire (--compress auto|zstd|none).
 *
 * Two independent savings, both decided by the source page by page and
 * batch by batch, so a receiver only has to decode what it is sent:
 *
 * - Delta pages (XBZRLE-like): a page sent again is encoded as the XOR
 *   against the copy the destination already holds, as run lengths of
 *   unchanged bytes and changed bytes; sent so only when that is smaller
 *   than 3/4 of a page. The source keeps what it sent in a bounded,
 *   direct-mapped cache (PAGECODEC_CACHE_BYTES at most); a page that is not
 *   in it goes whole.
 * - zstd: a whole PAGES record compressed into a PAGES_Z record, when that
 *   pays. `zstd` always tries (and sends the record plain when compression
 *   saves nothing); `auto` measures, during the migration, how fast zstd
 *   compresses these pages and how well, and how fast the link takes data,
 *   and compresses only while link rate < zstd rate x (1 - ratio), i.e.
 *   while compressing and sending is quicker than sending.
 *
 * docs/migration-stream.md has the record formats. */
#ifndef FERRY_MIGRATE_PAGECODEC_H
#define FERRY_MIGRATE_PAGECODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

struct stream;

enum compress_mode { COMPRESS_NONE = 0, COMPRESS_AUTO, COMPRESS_ZSTD };

int compress_mode_parse(const char *text, enum compress_mode *out);
const char *compress_mode_name(enum compress_mode mode);

#define PAGECODEC_CACHE_BYTES (64ull << 20)
/* A PAGES entry flag: the data is u32 length + a delta (pagecodec_delta_*)
 * against the page's current content at the receiver. */
#define PAGE_ENTRY_DELTA 2ull
/* The largest delta worth sending instead of the page. */
#define PAGECODEC_DELTA_MAX (4096 * 3 / 4)

struct pagecodec_stats {
    uint64_t page_record_bytes;   /* PAGES record bodies before zstd */
    uint64_t sent_record_bytes;   /* what went into the stream for them */
    uint64_t zstd_records, plain_records;
    uint64_t delta_pages, delta_bytes;  /* pages sent as deltas, their encoded size */
    uint64_t zstd_in_bytes, zstd_out_bytes, zstd_ns;
    double link_bytes_per_s;      /* auto: the latest estimate (0: none yet) */
    bool zstd_active;             /* auto: compressing at the end */
};

/* ---- Source side ---- */
struct page_encoder;

/* npages: the guest's RAM pages (the cache holds at most the smaller of
 * that and PAGECODEC_CACHE_BYTES). bandwidth_limit: --bandwidth, bytes/s
 * (0: none), the link rate auto assumes when it is lower than measured. */
struct page_encoder *page_encoder_new(enum compress_mode mode, uint64_t npages,
                                      uint64_t bandwidth_limit, struct error *err);
void page_encoder_free(struct page_encoder *e);

/* For each non-zero page of a batch: takes a snapshot of host (the guest
 * may be writing it), and returns the data to send for it (the snapshot or
 * a delta, valid until page_encoder_put_record) and the entry flags to OR
 * in (0 or PAGE_ENTRY_DELTA). */
const uint8_t *page_encoder_page(struct page_encoder *e, uint64_t page, const uint8_t *host,
                                 uint64_t *flags, size_t *len);
/* The page went as a zero page: the destination's copy is zeros now. */
void page_encoder_zero(struct page_encoder *e, uint64_t page);
/* Appends the batch as one PAGES record or, when zstd pays, a PAGES_Z. */
int page_encoder_put_record(struct page_encoder *e, struct stream *s, const void *const *parts,
                            const size_t *lens, unsigned nparts, struct error *err);
/* The same for a BLOCKS record (--copy-storage): BLOCKS or BLOCKS_Z. The
 * figures count it with the page records. */
int page_encoder_put_blocks(struct page_encoder *e, struct stream *s, const void *const *parts,
                            const size_t *lens, unsigned nparts, struct error *err);
void page_encoder_stats(const struct page_encoder *e, struct pagecodec_stats *out);

/* ---- Receiver side ---- */
/* PAGES_Z body -> the PAGES body it carries, in *buf (grown as needed,
 * bounded by STREAM_MAX_RECORD; free it when done). */
int pagecodec_inflate(const uint8_t *body, size_t len, uint8_t **buf, size_t *cap,
                      const uint8_t **out, size_t *out_len, struct error *err);
/* Turns a PAGES_Z (BLOCKS_Z) record into the PAGES (BLOCKS) record it
 * carries (other records pass unchanged): for receivers, before anything
 * looks at the record. */
int pagecodec_record(uint32_t *type, const uint8_t **body, size_t *len, uint8_t **buf,
                     size_t *cap, struct error *err);

/* Delta encoding of one 4 KiB page: (varint unchanged, varint changed,
 * changed bytes XORed) runs, nothing for an unchanged tail (so an
 * unchanged page is 0 bytes); returns the length, or PAGECODEC_NO_DELTA
 * when it would exceed cap. */
#define PAGECODEC_NO_DELTA SIZE_MAX
size_t pagecodec_delta_encode(const uint8_t *old_page, const uint8_t *new_page, uint8_t *out,
                              size_t cap);
/* Checks a delta without applying it. */
int pagecodec_delta_check(const uint8_t *delta, size_t len, struct error *err);
/* Applies a (checked) delta to page in place. */
void pagecodec_delta_apply(uint8_t *page, const uint8_t *delta, size_t len);

#endif
