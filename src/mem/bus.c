#include "mem/bus.h"

#include <string.h>

#include "base/tsan.h"

int bus_add_mmio(struct bus *bus, const struct mmio_region *region, struct error *err)
{
    if (bus->nregions == BUS_MAX_REGIONS)
        return error_set(err, "too many MMIO regions (max %d)", BUS_MAX_REGIONS);
    for (unsigned i = 0; i < bus->nregions; i++) {
        const struct mmio_region *r = &bus->regions[i];
        if (region->base < r->base + r->size && r->base < region->base + region->size)
            return error_set(err, "MMIO region %s overlaps %s", region->name, r->name);
    }
    bus->regions[bus->nregions++] = *region;
    return 0;
}

const struct mmio_region *bus_find_mmio(const struct bus *bus, uint64_t paddr)
{
    for (unsigned i = 0; i < bus->nregions; i++) {
        const struct mmio_region *r = &bus->regions[i];
        if (paddr - r->base < r->size)
            return r;
    }
    return NULL;
}

static uint64_t load_host(const uint8_t *p, unsigned size)
{
    switch (size) {
    case 1: return *p;
    case 2: { uint16_t v; memcpy(&v, p, 2); return v; }
    case 4: { uint32_t v; memcpy(&v, p, 4); return v; }
    default: { uint64_t v; memcpy(&v, p, 8); return v; }
    }
}

bool bus_load(struct bus *bus, uint64_t paddr, unsigned size, uint64_t *value)
{
    if (ram_contains(&bus->ram, paddr, size)) {
        *value = load_host(ram_host(&bus->ram, paddr), size);
        return true;
    }
    const struct mmio_region *r = bus_find_mmio(bus, paddr);
    if (!r || paddr - r->base + size > r->size)
        return false;
    if (bus->mmio_lock)
        pthread_mutex_lock(bus->mmio_lock);
    *value = r->ops->read ? r->ops->read(r->opaque, paddr - r->base, size) : 0;
    if (bus->mmio_lock)
        pthread_mutex_unlock(bus->mmio_lock);
    return true;
}

bool bus_store(struct bus *bus, uint64_t paddr, unsigned size, uint64_t value)
{
    if (ram_contains(&bus->ram, paddr, size)) {
        memcpy(ram_host(&bus->ram, paddr), &value, size); /* little-endian host */
        ram_mark_dirty(&bus->ram, paddr, size);
        return true;
    }
    const struct mmio_region *r = bus_find_mmio(bus, paddr);
    if (!r || paddr - r->base + size > r->size)
        return false;
    if (bus->mmio_lock)
        pthread_mutex_lock(bus->mmio_lock);
    if (r->ops->write)
        r->ops->write(r->opaque, paddr - r->base, value, size);
    if (bus->mmio_lock)
        pthread_mutex_unlock(bus->mmio_lock);
    return true;
}

int bus_dma_write_u16(struct bus *bus, uint64_t gpa, uint16_t value, struct error *err)
{
    if (gpa & 1)
        return bus_dma_write(bus, gpa, &value, 2, err);
    if (!ram_contains(&bus->ram, gpa, 2))
        return error_set(err, "DMA write of 2 bytes at 0x%llx is outside guest RAM",
                         (unsigned long long)gpa);
    TSAN_GUEST_RAM_BEGIN();
    __atomic_store_n((uint16_t *)ram_host(&bus->ram, gpa), value, __ATOMIC_RELEASE);
    TSAN_GUEST_RAM_END();
    ram_mark_dirty(&bus->ram, gpa, 2);
    return 0;
}

int bus_dma_read_u16(struct bus *bus, uint64_t gpa, uint16_t *value, struct error *err)
{
    if (gpa & 1)
        return bus_dma_read(bus, gpa, value, 2, err);
    if (!ram_contains(&bus->ram, gpa, 2))
        return error_set(err, "DMA read of 2 bytes at 0x%llx is outside guest RAM",
                         (unsigned long long)gpa);
    TSAN_GUEST_RAM_BEGIN();
    *value = __atomic_load_n((const uint16_t *)ram_host(&bus->ram, gpa), __ATOMIC_ACQUIRE);
    TSAN_GUEST_RAM_END();
    return 0;
}

int bus_dma_read(struct bus *bus, uint64_t gpa, void *dst, size_t len, struct error *err)
{
    if (!ram_contains(&bus->ram, gpa, len))
        return error_set(err, "DMA read of %zu bytes at 0x%llx is outside guest RAM", len,
                         (unsigned long long)gpa);
    TSAN_GUEST_RAM_BEGIN();
    memcpy(dst, ram_host(&bus->ram, gpa), len);
    TSAN_GUEST_RAM_END();
    return 0;
}

int bus_dma_write(struct bus *bus, uint64_t gpa, const void *src, size_t len, struct error *err)
{
    if (!ram_contains(&bus->ram, gpa, len))
        return error_set(err, "DMA write of %zu bytes at 0x%llx is outside guest RAM", len,
                         (unsigned long long)gpa);
    TSAN_GUEST_RAM_BEGIN();
    memcpy(ram_host(&bus->ram, gpa), src, len);
    TSAN_GUEST_RAM_END();
    ram_mark_dirty(&bus->ram, gpa, len);
    return 0;
}
