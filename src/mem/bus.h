/* The guest physical address space: RAM plus MMIO regions.
 *
 * Devices register a region with read/write callbacks. Device DMA goes
 * through bus_dma_read/bus_dma_write so every device write into RAM marks
 * the pages dirty (the same log the CPU fills). */
#ifndef FERRY_MEM_BUS_H
#define FERRY_MEM_BUS_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "mem/ram.h"

struct mmio_ops {
    /* size is 1, 2, 4 or 8; offset is relative to the region base. Accesses
     * are always naturally aligned (the CPU splits others). */
    uint64_t (*read)(void *opaque, uint64_t offset, unsigned size);
    void (*write)(void *opaque, uint64_t offset, uint64_t value, unsigned size);
};

struct mmio_region {
    const char *name;
    uint64_t base;
    uint64_t size;
    const struct mmio_ops *ops;
    void *opaque;
};

#define BUS_MAX_REGIONS 32

struct bus {
    struct ram ram;
    struct mmio_region regions[BUS_MAX_REGIONS];
    unsigned nregions;
    /* Held around every MMIO callback when set: harts on several threads
     * share the devices (the machine's io_lock). */
    pthread_mutex_t *mmio_lock;
};

int bus_add_mmio(struct bus *bus, const struct mmio_region *region, struct error *err);
const struct mmio_region *bus_find_mmio(const struct bus *bus, uint64_t paddr);

/* Physical accesses of 1/2/4/8 bytes, RAM or MMIO. Return false when nothing
 * is mapped there (the CPU turns that into an access fault). Stores to RAM
 * mark the page dirty. */
bool bus_load(struct bus *bus, uint64_t paddr, unsigned size, uint64_t *value);
bool bus_store(struct bus *bus, uint64_t paddr, unsigned size, uint64_t value);

/* Device DMA. Fail (return -1 with a message) unless the whole range is RAM. */
int bus_dma_read(struct bus *bus, uint64_t gpa, void *dst, size_t len, struct error *err);
int bus_dma_write(struct bus *bus, uint64_t gpa, const void *src, size_t len, struct error *err);

/* A 16-bit field the guest reads or writes at the same time as the device
 * (a virtqueue's ring index): one access, never torn. memcpy promises no
 * such thing (glibc 2.36 happens to store two bytes as one word, but a
 * bytewise copy would let a vCPU on another thread see used->idx jump by
 * 256 at a carry: 0x00ff -> 0x01ff -> 0x0100). Release/acquire: the ring
 * entries are visible before the index that publishes them. An odd
 * address (a broken driver's ring) is copied bytewise. */
int bus_dma_write_u16(struct bus *bus, uint64_t gpa, uint16_t value, struct error *err);
int bus_dma_read_u16(struct bus *bus, uint64_t gpa, uint16_t *value, struct error *err);

#endif
