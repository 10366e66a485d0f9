/* The dirty-block log (src/backend/disk_dirty.c): writes mark exactly the
 * blocks they touch, only while the log runs; a harvest clears what it
 * returns; and the property storage migration rests on: a reader that
 * copies everything once after starting the log, then keeps copying the
 * blocks each harvest returns, ends with an exact copy of a disk written
 * concurrently by another thread, after one last harvest once the writer
 * stopped. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend/disk_dirty.h"
#include "check.h"

/* A disk in memory; its lock makes each read and write atomic. `during`,
 * if set, runs inside the next write, before its data lands: a reader
 * harvesting while a write is in flight. */
struct mem_disk {
    struct disk d;
    uint8_t *data;
    pthread_mutex_t mu;
    void (*during)(void *);
    void *during_arg;
};

static int mem_read(struct disk *d, void *buf, size_t len, uint64_t off)
{
    struct mem_disk *m = (struct mem_disk *)d;
    pthread_mutex_lock(&m->mu);
    memcpy(buf, m->data + off, len);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static int mem_write(struct disk *d, const void *buf, size_t len, uint64_t off)
{
    struct mem_disk *m = (struct mem_disk *)d;
    if (m->during) {
        void (*fn)(void *) = m->during;
        m->during = NULL;
        fn(m->during_arg);
    }
    pthread_mutex_lock(&m->mu);
    memcpy(m->data + off, buf, len);
    pthread_mutex_unlock(&m->mu);
    return 0;
}

static int mem_flush(struct disk *d) { (void)d; return 0; }

static void mem_close(struct disk *d)
{
    struct mem_disk *m = (struct mem_disk *)d;
    pthread_mutex_destroy(&m->mu);
    free(m->data);
    free(m);
}

static const struct disk_ops mem_ops = {
    .read = mem_read, .write = mem_write, .flush = mem_flush, .close = mem_close,
};

static struct disk_dirty *new_disk(uint64_t size)
{
    struct mem_disk *m = calloc(1, sizeof *m);
    m->data = calloc(1, size);
    pthread_mutex_init(&m->mu, NULL);
    m->d.ops = &mem_ops;
    m->d.size = size;
    snprintf(m->d.name, sizeof m->d.name, "mem");
    struct disk_dirty *dd;
    struct error err;
    if (disk_dirty_wrap(&m->d, &dd, &err) < 0) {
        printf("FAIL: wrap: %s\n", err.msg);
        exit(1);
    }
    return dd;
}

static uint64_t rng = 0x2545f4914f6cdd1dull;
static uint64_t next(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void test_marks(void)
{
    /* 4 full blocks and a short fifth one. */
    uint64_t size = 4 * DISK_DIRTY_BLOCK_SIZE + 4096;
    struct disk_dirty *dd = new_disk(size);
    struct disk *d = &dd->disk;
    struct error err;
    uint64_t bm[1] = {0};
    static uint8_t buf[3 * DISK_DIRTY_BLOCK_SIZE];
    CHECK(dd->nblocks == 5 && dd->words == 1, "%llu blocks", (unsigned long long)dd->nblocks);
    d->ops->write(d, buf, 512, 0);
    CHECK(disk_dirty_harvest(dd, bm) == 0 && bm[0] == 0, "a write before the start is marked");
    CHECK(disk_dirty_start(dd, &err) == 0, "start: %s", err.msg);
    CHECK(disk_dirty_start(dd, &err) < 0, "a second reader was let in");
    d->ops->write(d, buf, 512, DISK_DIRTY_BLOCK_SIZE + 1024);            /* block 1 */
    d->ops->write(d, buf, DISK_DIRTY_BLOCK_SIZE, 2 * DISK_DIRTY_BLOCK_SIZE + 512); /* 2, 3 */
    d->ops->write(d, buf, 4096, 4 * DISK_DIRTY_BLOCK_SIZE);              /* the short 4 */
    CHECK(disk_dirty_harvest(dd, bm) == 4 && bm[0] == 0x1e, "marked 0x%llx",
          (unsigned long long)bm[0]);
    bm[0] = 0;
    CHECK(disk_dirty_harvest(dd, bm) == 0 && bm[0] == 0, "a harvest did not clear");
    d->ops->write(d, buf, 512, 0);
    bm[0] = 1;
    CHECK(disk_dirty_harvest(dd, bm) == 0 && bm[0] == 1, "an already-due block counted again");
    disk_dirty_stop(dd);
    d->ops->write(d, buf, 512, DISK_DIRTY_BLOCK_SIZE);
    bm[0] = 0;
    CHECK(disk_dirty_harvest(dd, bm) == 0, "a write after the stop is marked");
    disk_close(d);
}

struct writer {
    struct disk_dirty *dd;
    int rounds;
};

static void *writer_thread(void *arg)
{
    struct writer *w = arg;
    struct disk *d = &w->dd->disk;
    static uint8_t buf[128 * 1024];
    uint64_t r = 12345;
    for (int i = 0; i < w->rounds; i++) {
        r = r * 6364136223846793005ull + 1442695040888963407ull;
        size_t len = (size_t)(1 + (r >> 33) % 256) * 512;
        uint64_t off = ((r >> 7) % (d->size / 512)) * 512;
        if (off + len > d->size)
            len = (size_t)(d->size - off);
        memset(buf, (int)(i & 0xff) | 1, len);
        d->ops->write(d, buf, len, off);
    }
    return NULL;
}

static void copy_due(struct disk_dirty *dd, uint64_t *due, uint8_t *mirror)
{
    struct disk *in = dd->inner;
    for (size_t w = 0; w < dd->words; w++) {
        while (due[w]) {
            unsigned bit = (unsigned)__builtin_ctzll(due[w]);
            due[w] &= due[w] - 1;
            uint64_t off = ((uint64_t)w * 64 + bit) * DISK_DIRTY_BLOCK_SIZE;
            uint64_t n = in->size - off < DISK_DIRTY_BLOCK_SIZE ? in->size - off
                                                                 : DISK_DIRTY_BLOCK_SIZE;
            in->ops->read(in, mirror + off, n, off);
        }
    }
}

struct copier {
    struct disk_dirty *dd;
    uint64_t *due;
    uint8_t *mirror;
};

static void harvest_and_copy(void *arg)
{
    struct copier *c = arg;
    disk_dirty_harvest(c->dd, c->due);
    copy_due(c->dd, c->due, c->mirror);
}

/* The reader harvests while a write is in flight (between its start and
 * its data landing): the block must still be due at the next harvest. */
static void test_harvest_during_write(void)
{
    uint64_t size = 4 * DISK_DIRTY_BLOCK_SIZE;
    struct disk_dirty *dd = new_disk(size);
    struct mem_disk *md = (struct mem_disk *)dd->inner;
    uint8_t *mirror = calloc(1, size), *final = malloc(size);
    uint64_t due[1] = {0};
    struct copier c = {dd, due, mirror};
    struct error err;
    CHECK(disk_dirty_start(dd, &err) == 0, "start: %s", err.msg);
    static uint8_t buf[4096];
    memset(buf, 0x5a, sizeof buf);
    md->during = harvest_and_copy;
    md->during_arg = &c;
    dd->disk.ops->write(&dd->disk, buf, sizeof buf, DISK_DIRTY_BLOCK_SIZE);
    harvest_and_copy(&c);
    dd->inner->ops->read(dd->inner, final, size, 0);
    CHECK(memcmp(mirror, final, size) == 0, "a write in flight during a harvest was lost");
    free(mirror);
    free(final);
    disk_close(&dd->disk);
}

static void test_concurrent_copy(void)
{
    uint64_t size = 8ull << 20;
    struct disk_dirty *dd = new_disk(size);
    for (int i = 0; i < 64; i++) {
        static uint8_t junk[4096];
        for (size_t k = 0; k < sizeof junk; k++)
            junk[k] = (uint8_t)next();
        dd->disk.ops->write(&dd->disk, junk, sizeof junk, (next() % (size / 4096)) * 4096);
    }
    uint8_t *mirror = calloc(1, size), *final = malloc(size);
    uint64_t *due = calloc(dd->words, 8);
    struct error err;
    CHECK(disk_dirty_start(dd, &err) == 0, "start: %s", err.msg);
    struct writer w = {dd, 20000};
    pthread_t t;
    pthread_create(&t, NULL, writer_thread, &w);
    /* Everything once, then what the log says, while the writer runs. */
    memset(due, 0xff, dd->words * 8);
    unsigned harvests = 0;
    for (int round = 0; round < 200; round++) {
        copy_due(dd, due, mirror);
        disk_dirty_harvest(dd, due);
        harvests++;
    }
    pthread_join(t, NULL);
    disk_dirty_harvest(dd, due);
    copy_due(dd, due, mirror);
    dd->inner->ops->read(dd->inner, final, size, 0);
    CHECK(memcmp(mirror, final, size) == 0, "the copy differs from the disk after %u harvests",
          harvests);
    free(mirror);
    free(final);
    free(due);
    disk_close(&dd->disk);
}

int main(void)
{
    test_marks();
    test_harvest_during_write();
    test_concurrent_copy();
    printf("test_disk_dirty: %d checks, %d failures\n", checks, failures);
    return failures ? 1 : 0;
}
