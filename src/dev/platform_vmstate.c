/* Migratable-state descriptions of the platform devices (UART, PLIC,
 * ACLINT), next to the devices whose `struct X_state` they describe. */
#include "dev/aclint.h"
#include "dev/plic.h"
#include "dev/uart.h"
#include "migrate/vmstate.h"

static int uart_state_check(const void *obj, struct error *err)
{
    const struct uart_state *s = obj;
    if (s->rx_head >= UART_FIFO_SIZE || s->rx_count > UART_FIFO_SIZE)
        return error_set(err, "receive FIFO position %u/%u out of range", s->rx_head,
                         s->rx_count);
    return 0;
}

static const struct vmfield uart_fields[] = {
    VMFIELD(struct uart_state, ier, 1),
    VMFIELD(struct uart_state, iir_thri_pending, 1),
    VMFIELD(struct uart_state, lcr, 1),
    VMFIELD(struct uart_state, mcr, 1),
    VMFIELD(struct uart_state, lsr, 1),
    VMFIELD(struct uart_state, msr, 1),
    VMFIELD(struct uart_state, scr, 1),
    VMFIELD(struct uart_state, fcr, 1),
    VMFIELD(struct uart_state, dll, 1),
    VMFIELD(struct uart_state, dlm, 1),
    VMFIELD_ARRAY(struct uart_state, rx_fifo, 1),
    VMFIELD(struct uart_state, rx_head, 1),
    VMFIELD(struct uart_state, rx_count, 1),
    VMFIELD_END,
};

const struct vmstate uart_vmstate = {
    .name = "uart", .version = 1, .min_version = 1, .size = sizeof(struct uart_state),
    .fields = uart_fields, .check = uart_state_check,
};

static const struct vmfield plic_fields[] = {
    VMFIELD_ARRAY(struct plic_state, priority, 1),
    VMFIELD_ARRAY(struct plic_state, level, 1),
    VMFIELD_ARRAY(struct plic_state, pending, 1),
    VMFIELD_ARRAY(struct plic_state, claimed, 1),
    {"enable", offsetof(struct plic_state, enable), 4, PLIC_MAX_CONTEXTS * PLIC_WORDS, 1},
    VMFIELD_ARRAY(struct plic_state, threshold, 1),
    VMFIELD_END,
};

const struct vmstate plic_vmstate = {
    .name = "plic", .version = 1, .min_version = 1, .size = sizeof(struct plic_state),
    .fields = plic_fields, .check = NULL, /* no value indexes anything */
};

static const struct vmfield aclint_fields[] = {
    VMFIELD_ARRAY(struct aclint_state, mtimecmp, 1),
    VMFIELD_ARRAY(struct aclint_state, msip, 1),
    VMFIELD_END,
};

const struct vmstate aclint_vmstate = {
    .name = "aclint", .version = 1, .min_version = 1, .size = sizeof(struct aclint_state),
    .fields = aclint_fields, .check = NULL,
};
