/* Disk backends behind virtio-blk: a raw image file, or a network block
 * device (NBD). Calls block and are made from the device's I/O thread; a
 * failing backend returns an error the guest sees as an I/O error, never a
 * hang of the VM. Host resources only: nothing here is migrated. */
#ifndef FERRY_BACKEND_DISK_H
#define FERRY_BACKEND_DISK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "base/error.h"

struct disk;

struct disk_ops {
    /* Transfer exactly len bytes at offset (a multiple of 512); return 0 or
     * a negative errno value. */
    int (*read)(struct disk *d, void *buf, size_t len, uint64_t offset);
    int (*write)(struct disk *d, const void *buf, size_t len, uint64_t offset);
    int (*flush)(struct disk *d);
    void (*close)(struct disk *d);
    /* Optional: true if [offset, offset+len) is known to read as zeros
     * without reading it (a hole in a sparse file). False when unknown. */
    bool (*is_hole)(struct disk *d, uint64_t offset, uint64_t len);
};

struct disk {
    const struct disk_ops *ops;
    uint64_t size;          /* bytes */
    bool readonly;
    char name[256];         /* for log lines: the path or the NBD URL */
};

/* Parses a --drive spec and opens the backend:
 *   file=PATH[,readonly=on]
 *   nbd://HOST:PORT/EXPORT[,readonly=on]
 * On failure returns -1 with a one-line message. */
int disk_open(const char *spec, struct disk **out, struct error *err);
/* An image a storage copy is still being received into (or that a failed
 * one left): disk_open refuses a file= path ending so. */
#define DISK_PARTIAL_SUFFIX ".partial"
void disk_close(struct disk *d);

/* Backend constructors used by disk_open (src/backend/disk_file.c and
 * src/backend/disk_nbd.c). */
int disk_file_open(const char *path, bool readonly, struct disk **out, struct error *err);
int disk_nbd_open(const char *url, bool readonly, struct disk **out, struct error *err);

#endif
