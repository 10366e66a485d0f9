/* sifive,test0 "test finisher" at 0x100000: the guest writes 0x5555 to power
 * off, 0x7777 to reboot, (code << 16) | 0x3333 to fail with an exit code. */
#ifndef FERRY_DEV_SYSCON_H
#define FERRY_DEV_SYSCON_H

#include "mem/bus.h"

struct machine;

struct syscon {
    struct machine *machine;
};

void syscon_init(struct syscon *s, struct machine *m);
extern const struct mmio_ops syscon_mmio_ops;

#endif
