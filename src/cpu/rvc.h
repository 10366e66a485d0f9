#ifndef FERRY_CPU_RVC_H
#define FERRY_CPU_RVC_H

#include <stdint.h>

/* Returns the 32-bit instruction a compressed one stands for, or 0 when the
 * encoding is reserved or illegal (0 is itself an illegal instruction). */
uint32_t rvc_expand(uint16_t c);

#endif
