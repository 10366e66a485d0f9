/* Storage migration: dirty blocks next to dirty pages (see blockcopy.h). */
#include "migrate/blockcopy.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backend/disk_dirty.h"
#include "dev/virtio_blk.h"
#include "machine/machine.h"
#include "migrate/pagecodec.h"

#define STORAGE_ENTRY_SIZE 16   /* u32 slot, u32 block size, u64 disk size */
#define SHA256_BYTES 32

/* ---- shared ---- */

static uint64_t block_len(uint64_t disk_size, uint32_t bs, uint64_t offset)
{
    return disk_size - offset < bs ? disk_size - offset : bs;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    /* n is a multiple of 512: compare the buffer with itself shifted. */
    return n == 0 || (p[0] == 0 && memcmp(p, p + 1, n - 1) == 0);
}

/* SHA-256 of the image under `dd` (its backend), read in `bs` pieces. */
static int image_sha256(struct disk_dirty *dd, uint8_t *buf, uint32_t bs, uint8_t *out,
                        struct error *err)
{
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (!ctx || EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1) {
        EVP_MD_CTX_free(ctx);
        return error_set(err, "cannot start SHA-256");
    }
    struct disk *in = dd->inner;
    for (uint64_t off = 0; off < in->size; off += bs) {
        size_t n = (size_t)block_len(in->size, bs, off);
        int rc = in->ops->read(in, buf, n, off);
        if (rc < 0) {
            EVP_MD_CTX_free(ctx);
            return error_set(err, "reading disk %s to hash it: %s", in->name, strerror(-rc));
        }
        EVP_DigestUpdate(ctx, buf, n);
    }
    unsigned len = 0;
    int ok = EVP_DigestFinal_ex(ctx, out, &len);
    EVP_MD_CTX_free(ctx);
    if (ok != 1 || len != SHA256_BYTES)
        return error_set(err, "SHA-256 failed");
    return 0;
}

static void hex(const uint8_t *b, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++)
        snprintf(out + 2 * i, 3, "%02x", b[i]);
}

/* ---- source ---- */

struct out_disk {
    uint32_t slot;
    struct disk_dirty *dd;
    uint64_t *due;          /* blocks to send, dd->words words */
    bool logging;
};

struct blockcopy_out {
    unsigned n;
    struct out_disk d[MACHINE_MAX_DRIVES];
    uint8_t *buf;           /* BLOCKS_PER_RECORD blocks */
    struct blockcopy_counters c;
};

int blockcopy_out_open(struct blockcopy_out **out, struct machine *m, struct error *err)
{
    struct blockcopy_out *bc = calloc(1, sizeof *bc);
    if (!bc || !(bc->buf = malloc((size_t)BLOCKS_PER_RECORD * DISK_DIRTY_BLOCK_SIZE))) {
        free(bc);
        return error_set(err, "out of memory");
    }
    for (unsigned i = 0; i < MEMMAP_VIRTIO_SLOTS && bc->n < MACHINE_MAX_DRIVES; i++) {
        struct disk_dirty *dd = virtio_blk_dirty_log(&m->virtio[i]);
        /* A read-only disk never changes: the destination opens its own
         * copy of it (shared or identical), as without --copy-storage. */
        if (!dd || dd->disk.readonly)
            continue;
        struct out_disk *d = &bc->d[bc->n++];
        d->slot = i;
        d->dd = dd;
        if (!(d->due = calloc(dd->words ? dd->words : 1, 8))) {
            blockcopy_out_free(bc);
            return error_set(err, "out of memory");
        }
    }
    if (!bc->n) {
        blockcopy_out_free(bc);
        return error_set(err, "--copy-storage: the VM has no writable disk to copy");
    }
    bc->c.disks = bc->n;
    *out = bc;
    return 0;
}

void blockcopy_stop(struct blockcopy_out *bc)
{
    for (unsigned i = 0; i < bc->n; i++) {
        if (bc->d[i].logging)
            disk_dirty_stop(bc->d[i].dd);
        bc->d[i].logging = false;
    }
}

void blockcopy_out_free(struct blockcopy_out *bc)
{
    if (!bc)
        return;
    blockcopy_stop(bc);
    for (unsigned i = 0; i < bc->n; i++)
        free(bc->d[i].due);
    free(bc->buf);
    free(bc);
}

int blockcopy_put_storage(struct blockcopy_out *bc, struct stream *s, struct error *err)
{
    uint8_t b[4 + MACHINE_MAX_DRIVES * STORAGE_ENTRY_SIZE];
    put_u32(b, bc->n);
    for (unsigned i = 0; i < bc->n; i++) {
        uint8_t *e = b + 4 + i * STORAGE_ENTRY_SIZE;
        put_u32(e, bc->d[i].slot);
        put_u32(e + 4, DISK_DIRTY_BLOCK_SIZE);
        put_u64(e + 8, bc->d[i].dd->disk.size);
    }
    return stream_put(s, REC_STORAGE, b, 4 + bc->n * STORAGE_ENTRY_SIZE, err);
}

int blockcopy_start(struct blockcopy_out *bc, struct error *err)
{
    for (unsigned i = 0; i < bc->n; i++) {
        struct out_disk *d = &bc->d[i];
        if (disk_dirty_start(d->dd, err) < 0)
            return -1;
        d->logging = true;
        /* Every block: what is on the image now, and later what changed. */
        uint64_t nb = d->dd->nblocks;
        memset(d->due, 0xff, d->dd->words * 8);
        if (nb % 64)
            d->due[d->dd->words - 1] = (1ull << (nb % 64)) - 1;
    }
    return 0;
}

uint64_t blockcopy_harvest(struct blockcopy_out *bc)
{
    uint64_t bytes = 0;
    for (unsigned i = 0; i < bc->n; i++) {
        struct out_disk *d = &bc->d[i];
        if (d->logging)
            disk_dirty_harvest(d->dd, d->due);
        uint64_t n = 0;
        for (size_t w = 0; w < d->dd->words; w++)
            n += (uint64_t)__builtin_popcountll(d->due[w]);
        bytes += n * DISK_DIRTY_BLOCK_SIZE;
    }
    return bytes;
}

/* One BLOCKS record of `count` blocks whose entries and data are ready. */
static int put_record(struct blockcopy_out *bc, struct stream *s, uint32_t slot,
                      const uint64_t *entries, unsigned count, size_t data_len,
                      struct error *err)
{
    uint8_t head[8], ent[BLOCKS_PER_RECORD * 8];
    put_u32(head, slot);
    put_u32(head + 4, count);
    for (unsigned i = 0; i < count; i++)
        put_u64(ent + 8 * i, entries[i]);
    const void *parts[3] = {head, ent, bc->buf};
    size_t lens[3] = {sizeof head, 8 * (size_t)count, data_len};
    if (s->pages) /* --compress: zstd when it pays, as for pages */
        return page_encoder_put_blocks(s->pages, s, parts, lens, data_len ? 3 : 2, err);
    return stream_put_iov(s, REC_BLOCKS, parts, lens, 3, err);
}

/* Sleeps off a lead over the cap, in short naps: a cancel must not wait
 * out a long pause at a low limit. */
static void pace(const struct stream *s, uint64_t start_ns, uint64_t start_bytes,
                 uint64_t bandwidth, atomic_bool *cancel)
{
    uint64_t sent = s->bytes_written + s->wlen - start_bytes;
    uint64_t due = sent * 1000000000ull / bandwidth;
    for (uint64_t took = vclock_host_ns() - start_ns; due > took && !(cancel && atomic_load(cancel));
         took = vclock_host_ns() - start_ns) {
        uint64_t nap = due - took < 10000000 ? due - took : 10000000;
        struct timespec ts = {0, (long)nap};
        nanosleep(&ts, NULL);
    }
}

int blockcopy_put_blocks(struct blockcopy_out *bc, struct stream *s, uint64_t bandwidth,
                         atomic_bool *cancel, struct error *err)
{
    uint64_t start_ns = vclock_host_ns(), start_bytes = s->bytes_written + s->wlen;
    for (unsigned i = 0; i < bc->n; i++) {
        struct out_disk *d = &bc->d[i];
        struct disk *img = d->dd->inner;
        uint64_t entries[BLOCKS_PER_RECORD];
        unsigned count = 0;
        size_t data = 0;
        for (size_t w = 0; w < d->dd->words; w++) {
            while (d->due[w]) {
                unsigned bit = (unsigned)__builtin_ctzll(d->due[w]);
                uint64_t off = ((uint64_t)w * 64 + bit) << DISK_DIRTY_BLOCK_SHIFT;
                size_t n = (size_t)block_len(img->size, DISK_DIRTY_BLOCK_SIZE, off);
                /* A hole is zeros without reading it (a write into it
                 * meanwhile is marked in the log once it completed). */
                bool hole = img->ops->is_hole && img->ops->is_hole(img, off, n);
                int rc = hole ? 0 : img->ops->read(img, bc->buf + data, n, off);
                if (rc < 0)
                    return error_set(err, "reading disk %s at %llu: %s", img->name,
                                     (unsigned long long)off, strerror(-rc));
                d->due[w] &= d->due[w] - 1;
                if (hole || all_zero(bc->buf + data, n)) {
                    entries[count++] = off | BLOCK_ENTRY_ZERO;
                    bc->c.zero_blocks++;
                } else {
                    entries[count++] = off;
                    data += n;
                    bc->c.bytes += n;
                }
                bc->c.blocks++;
                if (count == BLOCKS_PER_RECORD) {
                    if (cancel && atomic_load(cancel))
                        return error_set(err, "cancelled");
                    if (put_record(bc, s, d->slot, entries, count, data, err) < 0)
                        return -1;
                    count = 0;
                    data = 0;
                    if (bandwidth)
                        pace(s, start_ns, start_bytes, bandwidth, cancel);
                }
            }
        }
        if (count && put_record(bc, s, d->slot, entries, count, data, err) < 0)
            return -1;
    }
    return 0;
}

int blockcopy_put_verify(struct blockcopy_out *bc, struct stream *s, struct error *err)
{
    for (unsigned i = 0; i < bc->n; i++) {
        uint8_t b[4 + SHA256_BYTES];
        put_u32(b, bc->d[i].slot);
        if (image_sha256(bc->d[i].dd, bc->buf, DISK_DIRTY_BLOCK_SIZE, b + 4, err) < 0 ||
            stream_put(s, REC_DISK_VERIFY, b, sizeof b, err) < 0)
            return -1;
    }
    return 0;
}

void blockcopy_stats(const struct blockcopy_out *bc, struct blockcopy_counters *out)
{
    *out = bc ? bc->c : (struct blockcopy_counters){0};
}

uint64_t blockcopy_out_bytes(const struct blockcopy_out *bc)
{
    uint64_t n = 0;
    for (unsigned i = 0; bc && i < bc->n; i++)
        n += bc->d[i].dd->disk.size;
    return n;
}

/* ---- destination ---- */

struct in_disk {
    bool declared;
    uint32_t block_size;
    uint64_t size, nblocks;
    uint64_t *has_data;     /* blocks written with data (the rest are holes) */
    char path[PATH_MAX], partial[PATH_MAX];
    bool committed;
};

struct blockcopy_in {
    struct in_disk d[MACHINE_MAX_DRIVES];
    uint8_t *zeros;         /* BLOCKCOPY_MAX_BLOCK bytes, on first need */
    uint8_t *buf;           /* for hashing */
};

/* The --drive specs pointing at the .partial images: machine_init keeps
 * pointers to them (one incoming stream per process). */
static char partial_spec[MACHINE_MAX_DRIVES][PATH_MAX + 64];

void blockcopy_in_free(struct blockcopy_in *bi)
{
    if (!bi)
        return;
    for (unsigned i = 0; i < MACHINE_MAX_DRIVES; i++)
        free(bi->d[i].has_data);
    free(bi->zeros);
    free(bi->buf);
    free(bi);
}

uint64_t blockcopy_in_bytes(const struct blockcopy_in *bi)
{
    uint64_t n = 0;
    for (unsigned i = 0; bi && i < MACHINE_MAX_DRIVES; i++)
        n += bi->d[i].declared ? bi->d[i].size : 0;
    return n;
}

/* file=PATH[,options] -> PATH and the options (with their comma). */
static int split_spec(const char *spec, char *path, size_t cap, const char **opts,
                      struct error *err)
{
    if (strncmp(spec, "file=", 5) != 0)
        return error_set(err, "--drive %s: a storage copy is received into an image file "
                         "(file=PATH), not a network disk", spec);
    const char *p = spec + 5, *comma = strchr(p, ',');
    size_t n = comma ? (size_t)(comma - p) : strlen(p);
    if (n == 0 || n + strlen(BLOCKCOPY_PARTIAL_SUFFIX) >= cap)
        return error_set(err, "--drive %s: the path is empty or too long", spec);
    memcpy(path, p, n);
    path[n] = 0;
    *opts = comma ? comma : "";
    if (strstr(*opts, "readonly") && !strstr(*opts, "readonly=off"))
        return error_set(err, "--drive %s: a storage copy cannot go into a read-only drive", spec);
    return 0;
}

/* Creates PATH.partial, empty and sparse, at `size` bytes. */
static int create_partial(struct in_disk *d, struct error *err)
{
    struct stat st;
    if (stat(d->path, &st) == 0 && !S_ISREG(st.st_mode))
        return error_set(err, "--drive %s: not a regular file", d->path);
    int fd;
    do {
        fd = open(d->partial, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
    } while (fd < 0 && errno == EINTR);
    if (fd < 0)
        return error_set(err, "cannot create %s for the storage copy: %s", d->partial,
                         strerror(errno));
    int rc = ftruncate(fd, (off_t)d->size);
    int e = errno;
    close(fd);
    if (rc < 0)
        return error_set(err, "cannot size %s to %llu bytes: %s", d->partial,
                         (unsigned long long)d->size, strerror(e));
    return 0;
}

int blockcopy_in_prepare(struct blockcopy_in **out, const uint8_t *body, size_t len,
                         struct machine_config *cfg, struct error *err)
{
    if (len < 4)
        return error_set(err, "storage record has %zu bytes", len);
    uint32_t n = get_u32(body);
    if (n < 1 || n > MACHINE_MAX_DRIVES || len != 4 + (size_t)n * STORAGE_ENTRY_SIZE)
        return error_set(err, "storage record is malformed (%u disks, %zu bytes)", n, len);
    struct blockcopy_in *bi = calloc(1, sizeof *bi);
    if (!bi)
        return error_set(err, "out of memory");
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *e = body + 4 + i * STORAGE_ENTRY_SIZE;
        uint32_t slot = get_u32(e), bs = get_u32(e + 4);
        uint64_t size = get_u64(e + 8);
        if (slot >= cfg->ndrives) {
            error_set(err, "the source copies the disk in virtio slot %u, but this host has %u "
                      "--drive (give one for each of the source's disks)", slot, cfg->ndrives);
            goto fail;
        }
        struct in_disk *d = &bi->d[slot];
        if (d->declared) {
            error_set(err, "storage record names slot %u twice", slot);
            goto fail;
        }
        if (bs < BLOCKCOPY_MIN_BLOCK || bs > BLOCKCOPY_MAX_BLOCK || (bs & (bs - 1))) {
            error_set(err, "storage record: block size %u for slot %u is invalid", bs, slot);
            goto fail;
        }
        if (size == 0 || size % 512 || (size + bs - 1) / bs > BLOCKCOPY_MAX_BLOCKS) {
            error_set(err, "storage record: a disk of %llu bytes in %u-byte blocks for slot %u "
                      "is not accepted (a multiple of 512, at most %llu blocks)",
                      (unsigned long long)size, bs, slot, BLOCKCOPY_MAX_BLOCKS);
            goto fail;
        }
        d->declared = true;
        d->block_size = bs;
        d->size = size;
        d->nblocks = (size + bs - 1) / bs;
        if (!(d->has_data = calloc((size_t)((d->nblocks + 63) / 64), 8))) {
            error_set(err, "out of memory");
            goto fail;
        }
        const char *opts = "";
        if (split_spec(cfg->drives[slot], d->path, sizeof d->path, &opts, err) < 0)
            goto fail;
        /* split_spec left room for the suffix. */
        size_t plen = strlen(d->path);
        memcpy(d->partial, d->path, plen);
        memcpy(d->partial + plen, BLOCKCOPY_PARTIAL_SUFFIX, sizeof BLOCKCOPY_PARTIAL_SUFFIX);
        if (create_partial(d, err) < 0)
            goto fail;
        /* "receiving": disk_open refuses .partial images otherwise. */
        snprintf(partial_spec[slot], sizeof partial_spec[slot], "file=%s%s,receiving",
                 d->partial, opts);
        cfg->drives[slot] = partial_spec[slot];
    }
    *out = bi;
    return 0;
fail:
    blockcopy_in_free(bi);
    return -1;
}

int blockcopy_load(struct blockcopy_in *bi, struct machine *m, const uint8_t *body, size_t len,
                   bool check_only, struct error *err)
{
    if (!bi)
        return error_set(err, "blocks record, but the source declared no storage copy");
    if (len < 8)
        return error_set(err, "blocks record has %zu bytes", len);
    uint32_t slot = get_u32(body), count = get_u32(body + 4);
    if (slot >= MACHINE_MAX_DRIVES || !bi->d[slot].declared)
        return error_set(err, "blocks record for slot %u, which the storage record did not "
                         "declare", slot);
    struct in_disk *d = &bi->d[slot];
    if (count < 1 || count > BLOCKS_MAX_PER_RECORD || len < 8 + 8ull * count)
        return error_set(err, "blocks record is malformed (%u blocks, %zu bytes)", count, len);
    /* Every entry first: nothing is written from a record that is wrong. */
    const uint8_t *ent = body + 8;
    size_t need = 8 + 8ull * count;
    for (uint32_t i = 0; i < count; i++) {
        uint64_t e = get_u64(ent + 8 * i), flags = e & (d->block_size - 1), off = e - flags;
        if (flags & ~BLOCK_ENTRY_ZERO)
            return error_set(err, "blocks record: entry %u has unknown flags 0x%llx", i,
                             (unsigned long long)flags);
        if (off >= d->size)
            return error_set(err, "blocks record: block at %llu is outside the %llu-byte disk "
                             "in slot %u", (unsigned long long)off, (unsigned long long)d->size,
                             slot);
        if (!(flags & BLOCK_ENTRY_ZERO))
            need += block_len(d->size, d->block_size, off);
    }
    if (need != len)
        return error_set(err, "blocks record has %zu bytes, its entries need %zu", len, need);
    if (check_only)
        return 0;
    const uint8_t *data = body + 8 + 8ull * count;
    struct virtio_dev *dev = &m->virtio[slot];
    for (uint32_t i = 0; i < count; i++) {
        uint64_t e = get_u64(ent + 8 * i), off = e & ~(uint64_t)(d->block_size - 1);
        uint64_t b = off / d->block_size;
        size_t n = (size_t)block_len(d->size, d->block_size, off);
        const void *src = data;
        bool zero = e & BLOCK_ENTRY_ZERO;
        if (zero) {
            /* A hole stays a hole; a block that had data gets zeros. */
            if (!(d->has_data[b / 64] & (1ull << (b % 64))))
                continue;
            if (!bi->zeros && !(bi->zeros = calloc(1, BLOCKCOPY_MAX_BLOCK)))
                return error_set(err, "out of memory");
            src = bi->zeros;
        }
        int rc = virtio_blk_apply_write(dev, off, src, n);
        if (rc < 0)
            return error_set(err, "writing the received disk %s at %llu: %s", d->partial,
                             (unsigned long long)off, strerror(-rc));
        if (zero) {
            d->has_data[b / 64] &= ~(1ull << (b % 64));
        } else {
            d->has_data[b / 64] |= 1ull << (b % 64);
            data += n;
        }
    }
    return 0;
}

int blockcopy_check_verify(struct blockcopy_in *bi, struct machine *m, const uint8_t *body,
                           size_t len, struct error *err)
{
    if (!bi)
        return error_set(err, "disk verify record, but the source declared no storage copy");
    if (len != 4 + SHA256_BYTES)
        return error_set(err, "disk verify record has %zu bytes", len);
    uint32_t slot = get_u32(body);
    if (slot >= MACHINE_MAX_DRIVES || !bi->d[slot].declared)
        return error_set(err, "disk verify record for undeclared slot %u", slot);
    struct disk_dirty *dd = virtio_blk_dirty_log(&m->virtio[slot]);
    if (!dd)
        return error_set(err, "disk verify record for slot %u, which has no disk", slot);
    if (!bi->buf && !(bi->buf = malloc(DISK_DIRTY_BLOCK_SIZE)))
        return error_set(err, "out of memory");
    uint8_t mine[SHA256_BYTES];
    char a[2 * SHA256_BYTES + 1], b[2 * SHA256_BYTES + 1];
    if (image_sha256(dd, bi->buf, DISK_DIRTY_BLOCK_SIZE, mine, err) < 0)
        return -1;
    hex(mine, SHA256_BYTES, a);
    hex(body + 4, SHA256_BYTES, b);
    if (memcmp(mine, body + 4, SHA256_BYTES) != 0)
        return error_set(err, "disk verification failed for slot %u: image sha256 %s, source "
                         "sent %s", slot, a, b);
    fprintf(stderr, "ferry: incoming disk in slot %u verified (sha256 %s)\n", slot, a);
    return 0;
}

int blockcopy_in_flush(struct blockcopy_in *bi, struct machine *m, struct error *err)
{
    for (unsigned i = 0; bi && i < MACHINE_MAX_DRIVES; i++) {
        if (!bi->d[i].declared)
            continue;
        int rc = virtio_blk_flush_backend(&m->virtio[i]);
        if (rc < 0)
            return error_set(err, "fsync of the received disk %s: %s", bi->d[i].partial,
                             strerror(-rc));
    }
    return 0;
}

int blockcopy_in_commit(struct blockcopy_in *bi, struct error *err)
{
    for (unsigned i = 0; bi && i < MACHINE_MAX_DRIVES; i++) {
        struct in_disk *d = &bi->d[i];
        if (!d->declared || d->committed)
            continue;
        if (rename(d->partial, d->path) < 0)
            return error_set(err, "cannot put the received disk in place (%s -> %s): %s",
                             d->partial, d->path, strerror(errno));
        d->committed = true;
        /* No directory fsync here, on the downtime's path: a crash before
         * the rename is durable leaves the image as .partial (refused). */
    }
    return 0;
}
