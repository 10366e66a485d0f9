/* 16550A register behaviour (the probes and interrupt handshakes Linux's
 * 8250 driver performs) and the console backends. */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include "backend/console.h"
#include "dev/uart.h"

#include "check.h"

enum { RBR = 0, THR = 0, DLL = 0, IER = 1, DLM = 1, IIR = 2, FCR = 2, LCR = 3, MCR = 4,
       LSR = 5, MSR = 6, SCR = 7 };

static struct uart uart;
static int irq_level = -1;
static int irq_changes;

static void record_irq(void *controller, unsigned irq, int level)
{
    if (irq == 10 && level != irq_level)
        irq_changes++;
    irq_level = level;
}

static uint8_t rd(unsigned reg)
{
    return (uint8_t)uart_mmio_ops.read(&uart, reg, 1);
}

static void wr(unsigned reg, uint8_t v)
{
    uart_mmio_ops.write(&uart, reg, v, 1);
}

/* Reads whatever is available on fd within a short time. */
static size_t drain(int fd, char *buf, size_t cap, size_t want)
{
    size_t got = 0;
    while (got < want) {
        struct pollfd pfd = { .fd = fd, .events = POLLIN };
        if (poll(&pfd, 1, 1000) <= 0)
            break;
        ssize_t n = read(fd, buf + got, cap - got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    return got;
}

static void test_probe(void)
{
    uart_init(&uart, (struct irq_line){ record_irq, NULL, 10 }, NULL);
    CHECK_EQ(irq_level, 0);
    CHECK_EQ(rd(IIR), 0x01); /* no interrupt, FIFOs off */
    CHECK_EQ(rd(LSR), 0x60); /* THRE | TEMT, no data */

    /* Scratch register and LCR hold what is written. */
    wr(SCR, 0xa5);
    CHECK_EQ(rd(SCR), 0xa5);
    wr(SCR, 0x5a);
    CHECK_EQ(rd(SCR), 0x5a);
    wr(LCR, 0x1b);
    CHECK_EQ(rd(LCR), 0x1b);

    /* IER: the low four bits are writable. */
    wr(LCR, 0x03);
    wr(IER, 0);
    CHECK_EQ(rd(IER) & 0x0f, 0);
    wr(IER, 0x0f);
    CHECK_EQ(rd(IER) & 0x0f, 0x0f);
    wr(IER, 0);

    /* Divisor latches behind DLAB, separate from RBR/IER. */
    wr(LCR, 0x83);
    wr(DLL, 0x01);
    wr(DLM, 0x02);
    CHECK_EQ(rd(DLL), 0x01);
    CHECK_EQ(rd(DLM), 0x02);
    wr(LCR, 0x03);
    CHECK_EQ(rd(IER), 0);
    CHECK_EQ(rd(LCR), 0x03);

    /* FIFO enable shows as IIR bits 7:6 = 11 (a 16550A, not a 16550). */
    wr(FCR, 0x01);
    CHECK_EQ(rd(IIR), 0xc1);
    wr(FCR, 0x00);
    CHECK_EQ(rd(IIR), 0x01);
    wr(FCR, 0xc7);
    CHECK_EQ(rd(IIR) & 0xc0, 0xc0);

    /* Loopback: RTS -> CTS, OUT2 -> DCD (the driver's presence test). */
    wr(MCR, 0x10 | 0x0a);
    CHECK_EQ(rd(MSR) & 0xf0, 0x90);
    wr(MCR, 0x10 | 0x05);
    CHECK_EQ(rd(MSR) & 0xf0, 0x60); /* DTR -> DSR, OUT1 -> RI */
    /* Loopback sends THR to the receiver instead of the console. */
    wr(THR, 'L');
    CHECK(rd(LSR) & 0x01);
    CHECK_EQ(rd(RBR), 'L');
    CHECK(!(rd(LSR) & 0x01));
    wr(MCR, 0x0b);
    CHECK_EQ(rd(MSR) & 0xf0, 0xb0); /* outside loopback: CTS, DSR, DCD */
    CHECK_EQ(rd(MSR) & 0x0f, 0);    /* deltas cleared by the previous read */
}

static void test_thre(void)
{
    uart_init(&uart, (struct irq_line){ record_irq, NULL, 10 }, NULL);
    wr(FCR, 0x01);

    /* Enabling ETBEI with THR empty raises THRE. */
    wr(IER, 0x02);
    CHECK_EQ(irq_level, 1);
    CHECK_EQ(rd(IIR), 0xc2);
    /* Reading IIR while THRE is the cause acknowledges it. */
    CHECK_EQ(irq_level, 0);
    CHECK_EQ(rd(IIR), 0xc1);

    /* Re-enabling raises it again (the driver's THRE startup test). */
    wr(IER, 0);
    wr(IER, 0x02);
    CHECK_EQ(rd(IIR), 0xc2);

    /* Each THR write empties at once, so THRE comes back for the refill. */
    wr(THR, 'a');
    CHECK_EQ(irq_level, 1);
    CHECK_EQ(rd(LSR) & 0x60, 0x60);
    CHECK_EQ(rd(IIR), 0xc2);
    CHECK_EQ(irq_level, 0);

    /* Disabling ETBEI drops the line even with THRE pending. */
    wr(THR, 'b');
    CHECK_EQ(irq_level, 1);
    wr(IER, 0);
    CHECK_EQ(irq_level, 0);
    CHECK_EQ(rd(IIR), 0xc1);
}

static void test_rx(void)
{
    uart_init(&uart, (struct irq_line){ record_irq, NULL, 10 }, NULL);
    wr(FCR, 0x01);
    CHECK(uart_can_receive(&uart));

    /* Data without ERBFI: visible in LSR, no interrupt. */
    uart_receive(&uart, 'x');
    CHECK_EQ(rd(LSR), 0x61);
    CHECK_EQ(irq_level, 0);
    wr(IER, 0x01);
    CHECK_EQ(irq_level, 1);
    CHECK_EQ(rd(IIR), 0xc4);
    CHECK_EQ(rd(IIR), 0xc4); /* RX is not acknowledged by reading IIR */
    CHECK_EQ(rd(RBR), 'x');
    CHECK_EQ(irq_level, 0);
    CHECK_EQ(rd(IIR), 0xc1);
    CHECK_EQ(rd(LSR), 0x60);

    /* FIFO: 16 bytes in order; the 17th is dropped and flags overrun. */
    for (int i = 0; i < UART_FIFO_SIZE; i++) {
        CHECK(uart_can_receive(&uart));
        uart_receive(&uart, (uint8_t)('A' + i));
    }
    CHECK(!uart_can_receive(&uart));
    uart_receive(&uart, '!');
    CHECK_EQ(rd(LSR), 0x63); /* DR | OE */
    CHECK_EQ(rd(LSR), 0x61); /* OE clears on read */
    int in_order = 1;
    for (int i = 0; i < UART_FIFO_SIZE; i++)
        in_order &= rd(RBR) == 'A' + i;
    CHECK(in_order);
    CHECK(!(rd(LSR) & 0x01));
    CHECK_EQ(rd(RBR), 0); /* empty FIFO reads 0 */

    /* Line status (overrun) outranks data when ELSI is on. */
    for (int i = 0; i <= UART_FIFO_SIZE; i++)
        uart_receive(&uart, 'o');
    wr(IER, 0x05);
    CHECK_EQ(rd(IIR), 0xc6);
    rd(LSR);
    CHECK_EQ(rd(IIR), 0xc4);

    /* FCR bit 1 empties the receive FIFO. */
    wr(FCR, 0x03);
    CHECK(!(rd(LSR) & 0x01));
    CHECK_EQ(irq_level, 0);
    CHECK_EQ(rd(FCR) & 0xc0, 0xc0); /* FIFOs still on */

    /* RX data outranks THRE; THRE shows once RX is drained. */
    uart_receive(&uart, 'y');
    wr(IER, 0x03);
    CHECK_EQ(rd(IIR), 0xc4);
    CHECK_EQ(rd(IIR), 0xc4);
    CHECK_EQ(rd(RBR), 'y');
    CHECK_EQ(irq_level, 1);
    CHECK_EQ(rd(IIR), 0xc2);
    CHECK_EQ(irq_level, 0);
}

static void test_tx_console(void)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    struct console con = { .kind = CONSOLE_FILE, .in_fd = -1, .out_fd = fds[1], .listen_fd = -1 };
    uart_init(&uart, (struct irq_line){ record_irq, NULL, 10 }, &con);
    const char *msg = "hi\r\n";
    for (const char *c = msg; *c; c++)
        wr(THR, (uint8_t)*c);
    /* DLAB on: offset 0 is the divisor, nothing is sent. */
    wr(LCR, 0x80);
    wr(THR, 'Z');
    wr(LCR, 0x03);
    char buf[16] = { 0 };
    CHECK_EQ(drain(fds[0], buf, sizeof(buf), 4), 4);
    CHECK(memcmp(buf, msg, 4) == 0);
    close(fds[0]);
    close(fds[1]);
}

static void test_console_file(void)
{
    char path[] = "/tmp/ferry-test-console-XXXXXX";
    int fd = mkstemp(path);
    CHECK(fd >= 0);
    close(fd);
    char spec[64];
    snprintf(spec, sizeof(spec), "file:%s", path);
    struct console con;
    struct error err;
    CHECK(console_open(&con, spec, &err) == 0);
    CHECK_EQ(console_poll_fd(&con), (unsigned long long)-1);
    console_write(&con, (const uint8_t *)"log", 3);
    console_close(&con);
    char buf[8] = { 0 };
    fd = open(path, O_RDONLY);
    CHECK(fd >= 0 && read(fd, buf, sizeof(buf)) == 3 && !memcmp(buf, "log", 3));
    close(fd);
    unlink(path);

    CHECK(console_open(&con, "none", &err) == 0);
    console_write(&con, (const uint8_t *)"x", 1); /* discarded */
    CHECK_EQ(console_poll_fd(&con), (unsigned long long)-1);
    console_close(&con);
    CHECK(console_open(&con, "bogus", &err) < 0);
    CHECK(strstr(err.msg, "bogus") != NULL);
}

static int connect_to(const char *path)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    snprintf(addr.sun_path, sizeof(addr.sun_path), "%s", path);
    int fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd >= 0 && connect(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0) {
        close(fd);
        fd = -1;
    }
    return fd;
}

static bool readable(int fd)
{
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    return poll(&pfd, 1, 1000) == 1;
}

static void test_console_socket(void)
{
    char path[64];
    snprintf(path, sizeof(path), "/tmp/ferry-test-console-%d.sock", (int)getpid());
    char spec[80];
    snprintf(spec, sizeof(spec), "socket:%s", path);
    struct console con;
    struct error err;
    uint8_t buf[64];

    CHECK(console_open(&con, spec, &err) == 0);
    int lfd = console_poll_fd(&con);
    CHECK(lfd >= 0);
    console_write(&con, (const uint8_t *)"lost", 4); /* no client: dropped */

    for (int round = 0; round < 2; round++) {
        int client = connect_to(path);
        CHECK(client >= 0);
        CHECK(readable(lfd));
        CHECK_EQ(console_read(&con, buf, sizeof(buf)), 0); /* accepts */
        int cfd = console_poll_fd(&con);
        CHECK(cfd >= 0 && cfd != lfd);

        console_write(&con, (const uint8_t *)"out", 3);
        char got[8] = { 0 };
        CHECK_EQ(drain(client, got, sizeof(got), 3), 3);
        CHECK(!memcmp(got, "out", 3));

        CHECK(write(client, "in", 2) == 2);
        CHECK(readable(cfd));
        CHECK_EQ(console_read(&con, buf, sizeof(buf)), 2);
        CHECK(!memcmp(buf, "in", 2));

        /* The client leaving puts the console back to listening. */
        close(client);
        CHECK(readable(cfd));
        CHECK_EQ(console_read(&con, buf, sizeof(buf)), 0);
        CHECK_EQ(console_poll_fd(&con), lfd);
        console_write(&con, (const uint8_t *)"x", 1);
    }

    /* A client that never reads must not block the writer. */
    int client = connect_to(path);
    CHECK(readable(lfd));
    console_read(&con, buf, sizeof(buf));
    static uint8_t big[1 << 16];
    for (int i = 0; i < 64; i++)
        console_write(&con, big, sizeof(big));
    CHECK(console_poll_fd(&con) != lfd); /* still connected */
    close(client);

    /* A leftover socket (a crashed run) is replaced... */
    struct console again;
    CHECK(console_open(&again, spec, &err) == 0);
    console_close(&again);
    console_close(&con);
    CHECK(access(path, F_OK) != 0); /* socket file removed */

    /* ...but a regular file at the path is left alone. */
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
    CHECK(fd >= 0);
    close(fd);
    CHECK(console_open(&again, spec, &err) < 0);
    CHECK(access(path, F_OK) == 0);
    unlink(path);
}

/* stdio on a terminal: raw mode, the Ctrl-A escapes, and restoring the
 * settings. A pseudo-terminal stands in for the user's terminal on fd 0. */
static void test_console_tty(void)
{
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    if (master < 0 || grantpt(master) < 0 || unlockpt(master) < 0) {
        fprintf(stderr, "test_uart: no pty, skipping tty console test\n");
        return;
    }
    int slave = open(ptsname(master), O_RDWR | O_NOCTTY);
    CHECK(slave >= 0);
    int saved_stdin = dup(STDIN_FILENO);
    CHECK(dup2(slave, STDIN_FILENO) == STDIN_FILENO);
    struct termios before, during, after;
    CHECK(tcgetattr(STDIN_FILENO, &before) == 0);

    struct console con;
    struct error err;
    CHECK(console_open(&con, "stdio", &err) == 0);
    CHECK(con.tty_raw);
    CHECK(tcgetattr(STDIN_FILENO, &during) == 0);
    CHECK(!(during.c_lflag & (ICANON | ECHO | ISIG)));

    uint8_t buf[32];
    size_t got = 0;
    /* a b ^A^A c ^A q(swallowed) d ^A x */
    const char in[] = "ab\x01\x01" "c\x01qd";
    CHECK(write(master, in, sizeof(in) - 1) == (ssize_t)sizeof(in) - 1);
    while (got < 5 && readable(STDIN_FILENO)) {
        int n = console_read(&con, buf + got, sizeof(buf) - got);
        CHECK(n >= 0);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    CHECK_EQ(got, 5);
    CHECK(!memcmp(buf, "ab\x01" "cd", 5));
    CHECK(write(master, "\x01x", 2) == 2);
    int r = 0;
    while (r == 0 && readable(STDIN_FILENO))
        r = console_read(&con, buf, sizeof(buf));
    CHECK_EQ(r, (unsigned long long)CONSOLE_QUIT);

    console_close(&con);
    CHECK(tcgetattr(STDIN_FILENO, &after) == 0);
    CHECK(after.c_lflag == before.c_lflag && after.c_iflag == before.c_iflag &&
          after.c_oflag == before.c_oflag);

    dup2(saved_stdin, STDIN_FILENO);
    close(saved_stdin);
    close(slave);
    close(master);
}

/* A pipe on stdin: bytes pass through untouched, EOF stops input only. */
static void test_console_pipe(void)
{
    int fds[2];
    CHECK(pipe(fds) == 0);
    int saved_stdin = dup(STDIN_FILENO);
    dup2(fds[0], STDIN_FILENO);
    close(fds[0]);

    struct console con;
    struct error err;
    CHECK(console_open(&con, "stdio", &err) == 0);
    CHECK(!con.tty_raw);
    CHECK(write(fds[1], "\x01x", 2) == 2);
    close(fds[1]);
    uint8_t buf[8];
    CHECK_EQ(console_read(&con, buf, sizeof(buf)), 2);
    CHECK(buf[0] == 0x01 && buf[1] == 'x');
    CHECK_EQ(console_read(&con, buf, sizeof(buf)), 0); /* EOF */
    CHECK_EQ(console_poll_fd(&con), (unsigned long long)-1);
    console_close(&con);

    dup2(saved_stdin, STDIN_FILENO);
    close(saved_stdin);
}

int main(void)
{
    test_probe();
    test_thre();
    test_rx();
    test_tx_console();
    test_console_file();
    test_console_socket();
    test_console_tty();
    test_console_pipe();
    if (failures) {
        fprintf(stderr, "test_uart: %d of %d checks FAILED\n", failures, checks);
        return 1;
    }
    printf("test_uart: %d checks passed\n", checks);
    return 0;
}
