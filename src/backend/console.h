/* The host end of the guest's serial console: the terminal (stdio, raw mode
 * when it is a tty, Ctrl-A x quits), a unix socket (one client at a time),
 * or a file (output only). Host resources only: nothing here is migrated. */
#ifndef FERRY_BACKEND_CONSOLE_H
#define FERRY_BACKEND_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <termios.h>

#include "base/error.h"

enum console_kind { CONSOLE_NONE, CONSOLE_STDIO, CONSOLE_SOCKET, CONSOLE_FILE };

struct console {
    enum console_kind kind;
    int in_fd;          /* fd to poll for input, -1 if none */
    int out_fd;         /* -1 if output is discarded */
    int listen_fd;      /* CONSOLE_SOCKET: listening socket, -1 otherwise */
    char *socket_path;
    bool tty_raw;       /* stdio on a tty switched to raw mode */
    struct termios saved_termios;
    bool escape_pending; /* saw Ctrl-A on stdio */
};

/* spec: "stdio", "none", "socket:PATH" or "file:PATH". */
int console_open(struct console *con, const char *spec, struct error *err);
void console_close(struct console *con);
void console_write(struct console *con, const uint8_t *buf, size_t len);

/* The fd the event loop should poll for readability (a client, the listening
 * socket, or stdin), or -1. */
int console_poll_fd(const struct console *con);

/* Called when console_poll_fd() is readable. Returns the number of input
 * bytes stored in buf (0 if none, e.g. a client connected or left), or
 * CONSOLE_QUIT when the user typed the quit escape (Ctrl-A x) on stdio. */
#define CONSOLE_QUIT (-2)
int console_read(struct console *con, uint8_t *buf, size_t cap);

#endif
