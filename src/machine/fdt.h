/* Builds the flattened device tree that describes the machine to Linux,
 * from the machine's actual configuration (harts, RAM, devices, bootargs,
 * initrd). */
#ifndef FERRY_MACHINE_FDT_H
#define FERRY_MACHINE_FDT_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

struct machine;

struct fdt_params {
    uint64_t initrd_start, initrd_end; /* 0, 0 when there is no initrd */
    const char *bootargs;
};

/* Writes the blob into buf (cap bytes); returns its size or -1. */
int fdt_build(const struct machine *m, const struct fdt_params *p, void *buf, size_t cap,
              struct error *err);

#endif
