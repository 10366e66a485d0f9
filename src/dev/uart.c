/* ns16550a UART.
 *
 * The transmitter is infinitely fast: a THR write goes straight to the
 * console, so THR/TSR always read as empty. Receive has a 16-byte FIFO fed
 * by uart_receive(). The interrupt line is level: high while any enabled
 * cause is pending. */
#include "dev/uart.h"

#include "backend/console.h"

/* Register offsets (reg-shift 0, byte wide). */
enum {
    REG_RBR_THR_DLL = 0,
    REG_IER_DLM = 1,
    REG_IIR_FCR = 2,
    REG_LCR = 3,
    REG_MCR = 4,
    REG_LSR = 5,
    REG_MSR = 6,
    REG_SCR = 7,
};

#define IER_ERBFI 0x01 /* received data available */
#define IER_ETBEI 0x02 /* transmitter holding register empty */
#define IER_ELSI  0x04 /* receiver line status */
#define IER_EDSSI 0x08 /* modem status */

#define IIR_NO_INT    0x01
#define IIR_MSI       0x00
#define IIR_THRI      0x02
#define IIR_RDI       0x04
#define IIR_RLSI      0x06
#define IIR_FIFO_BITS 0xc0

#define FCR_ENABLE   0x01
#define FCR_CLEAR_RX 0x02

#define LCR_DLAB 0x80

#define MCR_DTR  0x01
#define MCR_RTS  0x02
#define MCR_OUT1 0x04
#define MCR_OUT2 0x08
#define MCR_LOOP 0x10

#define LSR_DR   0x01
#define LSR_OE   0x02
#define LSR_ERRS 0x1e /* OE, PE, FE, BI: the line-status interrupt causes */
#define LSR_THRE 0x20
#define LSR_TEMT 0x40

#define MSR_DCTS  0x01
#define MSR_DDSR  0x02
#define MSR_TERI  0x04
#define MSR_DDCD  0x08
#define MSR_DELTAS 0x0f
#define MSR_CTS   0x10
#define MSR_DSR   0x20
#define MSR_RI    0x40
#define MSR_DCD   0x80

/* With no real modem attached, report the peer as present and ready so
 * drivers that honour CTS/DCD do not wait forever. */
#define MSR_IDLE (MSR_CTS | MSR_DSR | MSR_DCD)

/* Current cause in IIR encoding, highest priority first. */
static uint8_t uart_cause(const struct uart_state *s)
{
    if ((s->ier & IER_ELSI) && (s->lsr & LSR_ERRS))
        return IIR_RLSI;
    if ((s->ier & IER_ERBFI) && s->rx_count)
        return IIR_RDI;
    if ((s->ier & IER_ETBEI) && s->iir_thri_pending)
        return IIR_THRI;
    if ((s->ier & IER_EDSSI) && (s->msr & MSR_DELTAS))
        return IIR_MSI;
    return IIR_NO_INT;
}

static void uart_update_irq(struct uart *u)
{
    irq_set(&u->irq, uart_cause(&u->s) != IIR_NO_INT);
}

static void uart_rx_push(struct uart_state *s, uint8_t byte)
{
    if (s->rx_count == UART_FIFO_SIZE) {
        s->lsr |= LSR_OE;
        return;
    }
    s->rx_fifo[(s->rx_head + s->rx_count) % UART_FIFO_SIZE] = byte;
    s->rx_count++;
}

static uint8_t uart_rx_pop(struct uart_state *s)
{
    if (!s->rx_count)
        return 0;
    uint8_t byte = s->rx_fifo[s->rx_head];
    s->rx_head = (s->rx_head + 1) % UART_FIFO_SIZE;
    s->rx_count--;
    return byte;
}

/* In loopback the modem inputs are wired to the modem outputs; drivers use
 * this to verify that a UART is present. */
static uint8_t uart_modem_inputs(const struct uart_state *s)
{
    if (!(s->mcr & MCR_LOOP))
        return MSR_IDLE;
    uint8_t in = 0;
    if (s->mcr & MCR_RTS)
        in |= MSR_CTS;
    if (s->mcr & MCR_DTR)
        in |= MSR_DSR;
    if (s->mcr & MCR_OUT1)
        in |= MSR_RI;
    if (s->mcr & MCR_OUT2)
        in |= MSR_DCD;
    return in;
}

static void uart_set_modem_inputs(struct uart_state *s, uint8_t in)
{
    uint8_t old = s->msr & 0xf0, delta = 0;
    if ((old ^ in) & MSR_CTS)
        delta |= MSR_DCTS;
    if ((old ^ in) & MSR_DSR)
        delta |= MSR_DDSR;
    if ((old ^ in) & MSR_DCD)
        delta |= MSR_DDCD;
    if ((old & MSR_RI) && !(in & MSR_RI)) /* trailing edge only */
        delta |= MSR_TERI;
    s->msr = (uint8_t)(in | (s->msr & MSR_DELTAS) | delta);
}

void uart_init(struct uart *u, struct irq_line irq, struct console *console)
{
    *u = (struct uart){ .irq = irq, .console = console };
    u->s.msr = MSR_IDLE;
    uart_update_irq(u);
}

bool uart_can_receive(const struct uart *u)
{
    return u->s.rx_count < UART_FIFO_SIZE;
}

unsigned uart_rx_room(const struct uart *u)
{
    return UART_FIFO_SIZE - u->s.rx_count;
}

void uart_receive(struct uart *u, uint8_t byte)
{
    /* In loopback the receiver is disconnected from the outside world. */
    if (u->s.mcr & MCR_LOOP)
        return;
    uart_rx_push(&u->s, byte);
    uart_update_irq(u);
}

static void uart_transmit(struct uart *u, uint8_t byte)
{
    struct uart_state *s = &u->s;
    if (s->mcr & MCR_LOOP)
        uart_rx_push(s, byte);
    else if (u->console)
        console_write(u->console, &byte, 1);
    /* Writing THR clears the THRE interrupt, but the byte leaves at once and
     * THR is empty again, which raises it anew: the 8250 driver refills the
     * FIFO from this interrupt and would stall without it. */
    s->iir_thri_pending = 1;
}

static uint8_t uart_read_reg(struct uart *u, unsigned reg)
{
    struct uart_state *s = &u->s;
    bool dlab = s->lcr & LCR_DLAB;
    uint8_t val = 0;

    switch (reg) {
    case REG_RBR_THR_DLL:
        if (dlab)
            return s->dll;
        if (s->rx_count == UART_FIFO_SIZE && u->rx_room) {
            val = uart_rx_pop(s);
            u->rx_room(u->rx_room_opaque);
        } else {
            val = uart_rx_pop(s);
        }
        break;
    case REG_IER_DLM:
        return dlab ? s->dlm : s->ier;
    case REG_IIR_FCR:
        val = uart_cause(s);
        /* Reading IIR acknowledges a THRE interrupt it reports. */
        if (val == IIR_THRI)
            s->iir_thri_pending = 0;
        if (s->fcr & FCR_ENABLE)
            val |= IIR_FIFO_BITS;
        break;
    case REG_LCR:
        return s->lcr;
    case REG_MCR:
        return s->mcr;
    case REG_LSR:
        val = (uint8_t)(s->lsr | LSR_THRE | LSR_TEMT | (s->rx_count ? LSR_DR : 0));
        s->lsr &= (uint8_t)~LSR_ERRS; /* error bits clear on read */
        break;
    case REG_MSR:
        val = s->msr;
        s->msr &= (uint8_t)~MSR_DELTAS;
        break;
    case REG_SCR:
        return s->scr;
    }
    uart_update_irq(u);
    return val;
}

static void uart_write_reg(struct uart *u, unsigned reg, uint8_t val)
{
    struct uart_state *s = &u->s;
    bool dlab = s->lcr & LCR_DLAB;

    switch (reg) {
    case REG_RBR_THR_DLL:
        if (dlab)
            s->dll = val;
        else
            uart_transmit(u, val);
        break;
    case REG_IER_DLM:
        if (dlab) {
            s->dlm = val;
            break;
        }
        /* Enabling ETBEI while THR is empty (always, here) raises THRE;
         * the driver's startup test relies on this edge. */
        if ((val & IER_ETBEI) && !(s->ier & IER_ETBEI))
            s->iir_thri_pending = 1;
        s->ier = val & 0x0f;
        break;
    case REG_IIR_FCR:
        if ((val ^ s->fcr) & FCR_ENABLE)
            val |= FCR_CLEAR_RX; /* toggling FIFO mode empties the FIFOs */
        if (val & FCR_CLEAR_RX) {
            s->rx_head = 0;
            s->rx_count = 0;
        }
        /* Clear bits self-reset; keep enable and the trigger level. */
        s->fcr = val & 0xc9;
        break;
    case REG_LCR:
        s->lcr = val;
        break;
    case REG_MCR:
        s->mcr = val & 0x1f;
        uart_set_modem_inputs(s, uart_modem_inputs(s));
        break;
    case REG_LSR: /* read-only (factory test register on real parts) */
    case REG_MSR:
        break;
    case REG_SCR:
        s->scr = val;
        break;
    }
    uart_update_irq(u);
}

/* Registers are bytes at offsets 0..7; wider accesses address the register
 * at their offset using the low byte, and the rest of the window is empty. */
static uint64_t uart_mmio_read(void *opaque, uint64_t offset, unsigned size)
{
    if (offset > REG_SCR)
        return 0;
    return uart_read_reg(opaque, (unsigned)offset);
}

static void uart_mmio_write(void *opaque, uint64_t offset, uint64_t value, unsigned size)
{
    if (offset <= REG_SCR)
        uart_write_reg(opaque, (unsigned)offset, (uint8_t)value);
}

const struct mmio_ops uart_mmio_ops = {
    .read = uart_mmio_read,
    .write = uart_mmio_write,
};
