/* Uses the SSE4.2 crc32 instruction when the host has it (several GB/s),
 * else a table. Both compute the same reflected polynomial 0x82F63B78. */
#include "base/crc32c.h"

#include <stdbool.h>
#include <string.h>

static uint32_t table[256];
static bool have_table;

static void crc32c_init_table(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c >> 1) ^ (0x82F63B78u & (0u - (c & 1)));
        table[i] = c;
    }
    have_table = true;
}

static uint32_t crc32c_soft(uint32_t crc, const uint8_t *p, size_t len)
{
    if (!have_table)
        crc32c_init_table();
    while (len--)
        crc = (crc >> 8) ^ table[(crc ^ *p++) & 0xff];
    return crc;
}

#if defined(__x86_64__)
__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const uint8_t *p, size_t len)
{
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        len -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    while (len--)
        c32 = __builtin_ia32_crc32qi(c32, *p++);
    return c32;
}
#endif

uint32_t crc32c(uint32_t crc, const void *data, size_t len)
{
    crc = ~crc;
#if defined(__x86_64__)
    static int hw = -1;
    if (hw < 0) {
        __builtin_cpu_init();
        hw = __builtin_cpu_supports("sse4.2");
    }
    if (hw)
        return ~crc32c_hw(crc, data, len);
#endif
    return ~crc32c_soft(crc, data, len);
}
