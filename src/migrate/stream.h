/* The migration stream: a header, then typed, length-prefixed records,
 * each closed by a CRC-32C. The same format carries live migration (over
 * TCP), save files, and replication checkpoints. docs/migration-stream.md
 * is the specification; this is its implementation. */
#ifndef FERRY_MIGRATE_STREAM_H
#define FERRY_MIGRATE_STREAM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define STREAM_MAGIC "FERRYMIG"
#define STREAM_VERSION 3        /* written by this build */
#define STREAM_MIN_VERSION 1    /* oldest this build reads */
#define STREAM_HEADER_SIZE 16   /* magic[8], u32 version, u32 flags */
#define STREAM_MAX_RECORD (16u << 20)

/* Bit 31 of a type marks a record a receiver may skip if it does not know
 * it; any other unknown type fails the stream. */
#define REC_OPTIONAL 0x80000000u

enum record_type {
    REC_MACHINE = 1,     /* machine description: RAM, harts, devices */
    REC_PAGES = 2,       /* a batch of RAM pages */
    REC_DEVICE = 3,      /* one device's (or hart's) state */
    REC_CLOCK = 4,       /* guest time at the pause */
    REC_VERIFY = 5,      /* hash of RAM and device state at the pause */
    REC_END = 6,         /* the final state is complete */
    REC_CHECKPOINT = 7,  /* replication: start of checkpoint epoch N */
    REC_ROUND = REC_OPTIONAL | 8, /* informational: a pre-copy round begins */
    REC_HEARTBEAT = REC_OPTIONAL | 9,
    REC_DISK_WRITE = 10, /* replication: u32 slot, u64 offset, data */
    REC_STOP = 11,       /* replication: protection ends, the standby exits */
    REC_PING = 12,       /* u32 token: answer with PONG once everything before is applied */
    REC_STORAGE = 13,    /* --copy-storage: the disks that follow (blockcopy.h) */
    REC_BLOCKS = 14,     /* a batch of disk blocks */
    REC_DISK_VERIFY = 15, /* u32 slot, SHA-256 of the image at the pause */
    REC_HELD_FRAME = 0x40, /* replication: u32 slot, a frame held in the checkpoint's epoch */
    REC_PAGES_Z = 0x20,  /* a PAGES body compressed: u32 its length, a zstd frame (pagecodec.h) */
    /* Post-copy (postcopy.h, docs/postcopy.md). */
    REC_POSTCOPY_ADVISE = 0x50,  /* u32 flags: this migration may switch to post-copy */
    REC_POSTCOPY = 0x51,         /* u64 npages, bitmap: the pages the destination lacks */
    REC_POSTCOPY_END = 0x52,     /* u32 flags, u64 hash: every missing page was sent */
    REC_POSTCOPY_RESUME = 0x53,  /* first record of a recovery connection */
    REC_POSTCOPY_DISCARD = 0x54, /* u64 npages, bitmap: drop these before the pause */
    REC_BLOCKS_Z = 0x21, /* a BLOCKS body compressed, as PAGES_Z */
    /* Return path, destination to source. */
    REC_READY = 0x100,   /* state received and verified; waiting for GO */
    REC_GO = 0x101,      /* source: the destination may run the guest */
    REC_RUNNING = 0x102, /* destination resumed the guest */
    REC_ERROR = 0x103,   /* text: why the destination gave up */
    REC_ACK = 0x104,     /* replication: checkpoint epoch N applied */
    REC_PONG = 0x105,    /* u32 token of the PING it answers */
    REC_PAGE_REQ = 0x150,         /* post-copy: u64 page something waits for */
    REC_POSTCOPY_DONE = 0x151,    /* post-copy: figures; no page is missing */
    REC_POSTCOPY_MISSING = 0x152, /* post-copy recovery: u64 npages, bitmap still lacking */
};

#define PAGE_ENTRY_ZERO 1ull  /* the page is all zeros: no data follows */
#define PAGES_PER_RECORD 512

/* A buffered writer/reader over a file descriptor (socket or file). */
struct stream {
    int fd;
    uint32_t version;       /* negotiated: the header's */
    uint8_t *wbuf;
    size_t wlen, wcap;
    uint8_t *rbuf;          /* record body of the last read */
    size_t rcap;
    uint8_t *ibuf;          /* bytes read from fd, not yet consumed */
    size_t ipos, ilen;
    uint64_t bytes_written, bytes_read;
    int timeout_ms;         /* for reads and writes; -1 = none */
    uint64_t spin_until;    /* see stream_spin (vclock_host_ns) */
    bool capture;           /* records accumulate in wbuf, nothing is sent */
    struct page_encoder *pages; /* optional: deltas and zstd for PAGES (pagecodec.h) */
    uint64_t deadline;      /* end of the current phase (vclock_host_ns), 0: none */
    const char *phase;      /* its name, for the error message */
};

int stream_init(struct stream *s, int fd, struct error *err);
void stream_free(struct stream *s);     /* does not close fd */

int stream_write_header(struct stream *s, uint32_t version, struct error *err);
int stream_read_header(struct stream *s, struct error *err);

/* Appends one record (buffered). */
int stream_put(struct stream *s, uint32_t type, const void *body, size_t len, struct error *err);
/* Appends one record whose body is assembled from pieces. */
int stream_put_iov(struct stream *s, uint32_t type, const void *const *parts, const size_t *lens,
                   unsigned nparts, struct error *err);
int stream_flush(struct stream *s, struct error *err);
/* Reads wait for data by polling without sleeping for the next ns
 * nanoseconds. For the few messages of a migration's final exchange, sent
 * while the guest is paused: waking a sleeping thread for each of them
 * costs tens of microseconds of downtime. */
void stream_spin(struct stream *s, uint64_t ns);
#define FINAL_SPIN_NS 2000000ull /* the final exchange's replies come within this */
/* A total deadline for a phase of the exchange (the handshake, a round,
 * the final exchange): every read and write fails once it has passed, so
 * a peer cannot stretch a phase by trickling bytes or sending heartbeats
 * (timeout_ms only bounds each wait). ms == 0 clears it. */
void stream_deadline(struct stream *s, const char *phase, uint64_t ms);
/* The deadline for a phase that copies up to `bytes` (a pre-copy round, a
 * checkpoint): 5 minutes plus 1 s per MiB, so a copy slower than 1 MiB/s
 * fails, or what a bandwidth cap (bytes/s, 0 = none) below that needs. */
uint64_t stream_copy_deadline_ms(uint64_t bytes, uint64_t bandwidth);

/* Puts bytes already read from the fd (a header the listener checked)
 * back in front of what comes next. At most 64 bytes, before any read. */
int stream_preload(struct stream *s, const void *bytes, size_t n, struct error *err);

/* Sends the records a capturing stream accumulated (a replication
 * checkpoint staged while the guest was paused). */
int stream_send_captured(struct stream *s, const struct stream *captured, struct error *err);

/* Writes one small record (at most 256 bytes of body) straight to the fd,
 * bypassing the buffer: for a second thread (replication heartbeats) that
 * serializes with the owner through its own lock. */
int stream_send_small(struct stream *s, uint32_t type, const void *body, size_t len,
                      struct error *err);

/* Reads the next record into s->rbuf; checks length and CRC. Optional
 * records of unknown type are returned too: the caller skips them. */
int stream_get(struct stream *s, uint32_t *type, const uint8_t **body, size_t *len,
               struct error *err);

/* Little-endian helpers for building and parsing record bodies. */
static inline void put_u32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline void put_u64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i)); }
static inline uint32_t get_u32(const uint8_t *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | p[i]; return v; }
static inline uint64_t get_u64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }

#endif
