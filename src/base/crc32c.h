/* CRC-32C (Castagnoli), the checksum of every migration stream record. */
#ifndef FERRY_BASE_CRC32C_H
#define FERRY_BASE_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Continues a CRC: start with crc = 0. */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

#endif
