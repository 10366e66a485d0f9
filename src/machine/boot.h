/* Loading boot images into guest RAM: a Linux RISC-V Image, an initrd, or a
 * bare-metal ELF (with its HTIF `tohost` symbol). Every file is validated
 * before anything is copied: bad input is an error message, never a crash. */
#ifndef FERRY_MACHINE_BOOT_H
#define FERRY_MACHINE_BOOT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/error.h"
#include "mem/ram.h"

/* Reads a whole file into a malloc'd buffer. */
int boot_read_file(const char *path, uint8_t **data, size_t *size, struct error *err);

/* Checks the RISC-V Image header and copies the kernel to `load_addr`.
 * *end receives the first byte after the kernel's memory footprint. */
int boot_load_linux_image(struct ram *ram, const char *path, uint64_t load_addr, uint64_t *end,
                          struct error *err);

struct elf_info {
    uint64_t entry;
    uint64_t tohost;   /* 0 if the ELF has no `tohost` symbol */
};

/* Loads an RV64 little-endian executable ELF's PT_LOAD segments, which must
 * fall inside RAM. */
int boot_load_elf(struct ram *ram, const char *path, struct elf_info *info, struct error *err);

#endif
