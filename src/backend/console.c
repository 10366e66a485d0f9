/* Console backends: stdio (raw tty with a Ctrl-A escape), a unix socket
 * with one client at a time, a file, or nothing. */
#include "backend/console.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#define CTRL_A 0x01

/* The terminal settings to put back at exit. A process has one stdin, so a
 * single saved copy is enough; atexit needs it outside the struct because
 * the console may be gone (or never closed) by then. */
static struct termios saved_tty;
static volatile bool saved_tty_valid;
static bool atexit_registered;

static void console_restore_tty(void)
{
    if (saved_tty_valid) {
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty);
        saved_tty_valid = false;
    }
}

/* Signals that would end the process without atexit. Synchronous faults
 * and abort always get a hook; termination signals only if nobody handles
 * them already (the CLI may install its own orderly-quit handlers, later
 * or earlier). The hook restores the terminal, reinstates the previous
 * action and lets the signal take it: a fault re-triggers on return, the
 * others are re-raised. */
static const int fatal_signals[] = { SIGSEGV, SIGBUS, SIGFPE, SIGILL, SIGABRT,
                                     SIGTERM, SIGHUP, SIGQUIT };
#define NFATAL (sizeof(fatal_signals) / sizeof(fatal_signals[0]))
static struct sigaction old_actions[NFATAL];

static void console_fatal_signal(int sig)
{
    int saved_errno = errno;
    if (saved_tty_valid)
        tcsetattr(STDIN_FILENO, TCSANOW, &saved_tty); /* async-signal-safe */
    for (size_t i = 0; i < NFATAL; i++) {
        if (fatal_signals[i] == sig) {
            sigaction(sig, &old_actions[i], NULL);
            if (sig != SIGSEGV && sig != SIGBUS && sig != SIGFPE && sig != SIGILL)
                raise(sig);
        }
    }
    errno = saved_errno;
}

static void console_install_restore_hooks(void)
{
    if (atexit_registered)
        return;
    atexit_registered = true;
    atexit(console_restore_tty);
    for (size_t i = 0; i < NFATAL; i++) {
        int sig = fatal_signals[i];
        if (sigaction(sig, NULL, &old_actions[i]) < 0)
            continue;
        bool termination = sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT;
        if (termination && old_actions[i].sa_handler != SIG_DFL)
            continue;
        struct sigaction sa = { .sa_handler = console_fatal_signal };
        sigemptyset(&sa.sa_mask);
        sigaction(sig, &sa, NULL);
    }
}

static int console_open_stdio(struct console *con, struct error *err)
{
    con->in_fd = STDIN_FILENO;
    con->out_fd = STDOUT_FILENO;
    if (!isatty(STDIN_FILENO))
        return 0; /* a pipe or file: plain pass-through */

    if (tcgetattr(STDIN_FILENO, &con->saved_termios) < 0)
        return error_set(err, "console: reading terminal settings: %s", strerror(errno));
    saved_tty = con->saved_termios;
    saved_tty_valid = true;
    console_install_restore_hooks();
    struct termios raw = con->saved_termios;
    cfmakeraw(&raw);
    /* Keep output processing so the host's own messages (on stderr, same
     * terminal) still start at column 0; the guest's \r\n is unaffected. */
    raw.c_oflag |= OPOST | ONLCR;
    if (tcsetattr(STDIN_FILENO, TCSANOW, &raw) < 0) {
        saved_tty_valid = false;
        return error_set(err, "console: setting raw mode: %s", strerror(errno));
    }
    con->tty_raw = true;
    return 0;
}

static int console_open_socket(struct console *con, const char *path, struct error *err)
{
    struct sockaddr_un addr = { .sun_family = AF_UNIX };
    if (!*path || strlen(path) >= sizeof(addr.sun_path))
        return error_set(err, "console: bad socket path '%s'", path);
    strcpy(addr.sun_path, path);

    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return error_set(err, "console: socket: %s", strerror(errno));
    /* Remove a stale socket from an earlier run, but never another kind
     * of file a mistyped path might name. */
    struct stat st;
    if (lstat(path, &st) == 0 && S_ISSOCK(st.st_mode))
        unlink(path);
    if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 1) < 0) {
        int e = errno;
        close(fd);
        return error_set(err, "console: listening on %s: %s", path, strerror(e));
    }
    con->socket_path = strdup(path);
    if (!con->socket_path) {
        close(fd);
        unlink(path);
        return error_set(err, "console: out of memory");
    }
    con->listen_fd = fd;
    return 0;
}

static int console_open_file(struct console *con, const char *path, struct error *err)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return error_set(err, "console: opening %s: %s", path, strerror(errno));
    con->out_fd = fd;
    return 0;
}

int console_open(struct console *con, const char *spec, struct error *err)
{
    *con = (struct console){ .in_fd = -1, .out_fd = -1, .listen_fd = -1 };
    if (!spec || !strcmp(spec, "none")) {
        con->kind = CONSOLE_NONE;
        return 0;
    }
    if (!strcmp(spec, "stdio")) {
        con->kind = CONSOLE_STDIO;
        return console_open_stdio(con, err);
    }
    if (!strncmp(spec, "socket:", 7)) {
        con->kind = CONSOLE_SOCKET;
        return console_open_socket(con, spec + 7, err);
    }
    if (!strncmp(spec, "file:", 5)) {
        con->kind = CONSOLE_FILE;
        return console_open_file(con, spec + 5, err);
    }
    return error_set(err, "console: unknown spec '%s' (want stdio, none, socket:PATH or file:PATH)",
                     spec);
}

static void console_drop_client(struct console *con)
{
    if (con->in_fd >= 0)
        close(con->in_fd);
    con->in_fd = -1;
    con->out_fd = -1;
}

void console_close(struct console *con)
{
    switch (con->kind) {
    case CONSOLE_STDIO:
        if (con->tty_raw) {
            tcsetattr(STDIN_FILENO, TCSANOW, &con->saved_termios);
            saved_tty_valid = false;
            con->tty_raw = false;
        }
        break; /* never close the process's stdin/stdout */
    case CONSOLE_SOCKET:
        console_drop_client(con);
        if (con->listen_fd >= 0)
            close(con->listen_fd);
        if (con->socket_path)
            unlink(con->socket_path);
        break;
    case CONSOLE_FILE:
        if (con->out_fd >= 0)
            close(con->out_fd);
        break;
    case CONSOLE_NONE:
        break;
    }
    free(con->socket_path);
    *con = (struct console){ .kind = CONSOLE_NONE, .in_fd = -1, .out_fd = -1, .listen_fd = -1 };
}

/* stdio and files: blocking is acceptable (the host is the bottleneck and
 * output must not be lost); wait out EAGAIN if someone made the fd
 * non-blocking. A dead output stops output, not the guest. */
static void console_write_all(struct console *con, const uint8_t *buf, size_t len)
{
    while (len) {
        ssize_t n = write(con->out_fd, buf, len);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            struct pollfd pfd = { .fd = con->out_fd, .events = POLLOUT };
            poll(&pfd, 1, -1);
        } else {
            con->out_fd = -1;
            return;
        }
    }
}

/* A socket client that stops reading must not stall the VM: what does not
 * fit in the socket buffer is dropped. */
static void console_send_client(struct console *con, const uint8_t *buf, size_t len)
{
    while (len) {
        ssize_t n = send(con->out_fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        } else if (n < 0 && errno == EINTR) {
            continue;
        } else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
            return;
        } else {
            console_drop_client(con);
            return;
        }
    }
}

void console_write(struct console *con, const uint8_t *buf, size_t len)
{
    if (!con || con->out_fd < 0)
        return;
    if (con->kind == CONSOLE_SOCKET)
        console_send_client(con, buf, len);
    else
        console_write_all(con, buf, len);
}

int console_poll_fd(const struct console *con)
{
    if (con->kind == CONSOLE_SOCKET && con->in_fd < 0)
        return con->listen_fd;
    return con->in_fd;
}

static int console_accept(struct console *con)
{
    int fd = accept4(con->listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (fd >= 0) {
        con->in_fd = fd;
        con->out_fd = fd;
    }
    return 0;
}

/* Ctrl-A x quits, Ctrl-A Ctrl-A sends one Ctrl-A, Ctrl-A + anything else is
 * swallowed. Output never exceeds input, so buf always has room. */
static int console_unescape(struct console *con, uint8_t *buf, size_t n)
{
    size_t out = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = buf[i];
        if (con->escape_pending) {
            con->escape_pending = false;
            if (c == 'x' || c == 'X')
                return CONSOLE_QUIT;
            if (c == CTRL_A)
                buf[out++] = CTRL_A;
        } else if (c == CTRL_A) {
            con->escape_pending = true;
        } else {
            buf[out++] = c;
        }
    }
    return (int)out;
}

int console_read(struct console *con, uint8_t *buf, size_t cap)
{
    if (con->kind == CONSOLE_SOCKET && con->in_fd < 0 && con->listen_fd >= 0)
        return console_accept(con);
    if (con->in_fd < 0 || cap == 0)
        return 0;
    if (cap > 0x10000)
        cap = 0x10000; /* keeps the count an int */

    ssize_t n = read(con->in_fd, buf, cap);
    if (n < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK))
        return 0;
    if (n <= 0) {
        /* EOF or error. A socket client leaving means listen again; stdin
         * ending (a test's pipe) just means no more input. */
        if (con->kind == CONSOLE_SOCKET)
            console_drop_client(con);
        else
            con->in_fd = -1;
        return 0;
    }
    if (con->kind == CONSOLE_STDIO && con->tty_raw)
        return console_unescape(con, buf, (size_t)n);
    return (int)n;
}
