/* The device registry (see devreg.h). */
#include "machine/devreg.h"

#include "cpu/hart_wire.h"
#include "machine/machine.h"
#include "migrate/vmstate.h"

extern const struct vmstate uart_vmstate, plic_vmstate, aclint_vmstate, virtio_mmio_vmstate;

_Static_assert(MACHINE_MAX_HARTS + 3 + MEMMAP_VIRTIO_SLOTS <= DEVREG_MAX,
               "the registry holds every hart and device");

static void add(struct devreg *r, struct device_entry e)
{
    if (r->n < DEVREG_MAX) /* cannot overflow: see the assertion above */
        r->dev[r->n++] = e;
}

static void hart_prepare(void *state, void *owner) { hart_wire_save(owner, state); }
static void hart_apply(void *state, void *owner) { hart_wire_load(owner, state); }

void devreg_add_platform(struct machine *m)
{
    struct devreg *r = &m->devices;
    for (unsigned i = 0; i < m->nharts; i++)
        add(r, (struct device_entry){.vs = &hart_vmstate, .state = &m->hart_wire[i],
                                     .instance = i, .prepare = hart_prepare,
                                     .apply = hart_apply, .owner = &m->harts[i]});
    add(r, (struct device_entry){.vs = &aclint_vmstate, .state = &m->aclint.s});
    add(r, (struct device_entry){.vs = &plic_vmstate, .state = &m->plic.s});
    add(r, (struct device_entry){.vs = &uart_vmstate, .state = &m->uart.s});
}

void devreg_add_virtio(struct machine *m, unsigned slot)
{
    struct virtio_dev *d = &m->virtio[slot];
    if (d->ops)
        add(&m->devices, (struct device_entry){.vs = &virtio_mmio_vmstate, .state = &d->s,
                                               .instance = slot, .vdev = d,
                                               .repl = d->ops->repl});
}
