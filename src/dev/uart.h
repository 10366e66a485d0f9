/* ns16550a UART (the `virt` console), PLIC source 10. */
#ifndef FERRY_DEV_UART_H
#define FERRY_DEV_UART_H

#include <stdbool.h>
#include <stdint.h>

#include "dev/irq.h"
#include "mem/bus.h"

struct console;

#define UART_FIFO_SIZE 16

/* Migratable state: registers and the receive FIFO. */
struct uart_state {
    uint8_t ier, iir_thri_pending, lcr, mcr, lsr, msr, scr, fcr;
    uint8_t dll, dlm;
    uint8_t rx_fifo[UART_FIFO_SIZE];
    uint8_t rx_head, rx_count;
};

struct uart {
    struct uart_state s;
    struct irq_line irq;
    struct console *console; /* output goes here; NULL discards */
    /* Called when the guest read a byte out of a full receive FIFO: the
     * thread feeding console input (which stops polling while the FIFO is
     * full) must look again. May be NULL. */
    void (*rx_room)(void *opaque);
    void *rx_room_opaque;
};

void uart_init(struct uart *u, struct irq_line irq, struct console *console);
extern const struct mmio_ops uart_mmio_ops;
bool uart_can_receive(const struct uart *u);
/* Free places in the receive FIFO: read no more than that from the console,
 * the rest would be lost to an overrun. */
unsigned uart_rx_room(const struct uart *u);
void uart_receive(struct uart *u, uint8_t byte);

#endif
