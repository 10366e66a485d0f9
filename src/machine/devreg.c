/* The device registry (see devreg.h). */
#include "machine/devreg.h"

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

static void hart_loaded(void *state)
{
    hart_state_loaded(state);
}

void devreg_add_platform(struct machine *m)
{
    struct devreg *r = &m->devices;
    for (unsigned i = 0; i < m->nharts; i++)
        add(r, (struct device_entry){&hart_vmstate, &m->harts[i], i, hart_loaded, NULL, NULL});
    add(r, (struct device_entry){&aclint_vmstate, &m->aclint.s, 0, NULL, NULL, NULL});
    add(r, (struct device_entry){&plic_vmstate, &m->plic.s, 0, NULL, NULL, NULL});
    add(r, (struct device_entry){&uart_vmstate, &m->uart.s, 0, NULL, NULL, NULL});
}

void devreg_add_virtio(struct machine *m, unsigned slot)
{
    struct virtio_dev *d = &m->virtio[slot];
    if (d->ops)
        add(&m->devices, (struct device_entry){&virtio_mmio_vmstate, &d->s, slot, NULL, d,
                                               d->ops->repl});
}
