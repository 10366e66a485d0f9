/* sifive,test0 finisher: one write-only command register at offset 0. */
#include "dev/syscon.h"

#include "machine/machine.h"

#define SYSCON_FAIL     0x3333
#define SYSCON_PASS     0x5555
#define SYSCON_RESET    0x7777

void syscon_init(struct syscon *s, struct machine *m)
{
    s->machine = m;
}

static uint64_t syscon_mmio_read(void *opaque, uint64_t offset, unsigned size)
{
    return 0;
}

static void syscon_mmio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    struct syscon *s = opaque;
    if (offset != 0 || size < 4)
        return;
    uint32_t cmd = (uint32_t)value;
    switch (cmd & 0xffff) {
    case SYSCON_PASS:
        machine_request_stop(s->machine, MACHINE_POWEROFF, 0);
        break;
    case SYSCON_FAIL: {
        int code = (int)(cmd >> 16);
        /* A failure must never look like success to the caller. */
        machine_request_stop(s->machine, MACHINE_POWEROFF, code ? code : 1);
        break;
    }
    case SYSCON_RESET:
        machine_request_stop(s->machine, MACHINE_REBOOT, 0);
        break;
    }
}

const struct mmio_ops syscon_mmio_ops = {
    .read = syscon_mmio_read,
    .write = syscon_mmio_write,
};
