#include "machine/signals.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "machine/machine.h"
#include "migrate/migration.h"

static int signal_pipe[2] = {-1, -1};
static pthread_mutex_t watch_lock = PTHREAD_MUTEX_INITIALIZER;
static struct machine *watched;     /* under watch_lock */
static char control_path[108];

static void on_signal(int sig)
{
    int saved = errno;
    unsigned char b = (unsigned char)sig;
    if (write(signal_pipe[1], &b, 1) < 0) {
        /* full pipe: a signal is already pending */
    }
    errno = saved;
}

static void *watch_thread(void *arg)
{
    (void)arg;
    for (;;) {
        unsigned char sig;
        ssize_t n = read(signal_pipe[0], &sig, 1);
        if (n < 0 && errno == EINTR)
            continue;
        if (n != 1)
            return NULL;
        pthread_mutex_lock(&watch_lock);
        struct machine *m = watched;
        if (m) {
            struct migration_status st;
            migration_get_status(m, &st);
            bool migrating = st.state == MIG_SETUP || st.state == MIG_ACTIVE ||
                             st.state == MIG_COMPLETING;
            fprintf(stderr, "ferry: %s: stopping the VM%s\n", strsignal(sig),
                    migrating ? " (the migration is cancelled first)" : "");
            /* Cancel before stopping: a migration past READY must not send
             * GO for a guest this process is about to drop. */
            if (migrating)
                migration_cancel(m);
            machine_request_stop(m, MACHINE_QUIT, 128 + sig);
            pthread_mutex_unlock(&watch_lock);
            continue;
        }
        pthread_mutex_unlock(&watch_lock);
        /* No guest runs here: waiting for or reading a stream. Nothing to
         * keep; the peer sees the connection close. */
        fprintf(stderr, "ferry: %s: exiting (no guest was running here)\n", strsignal(sig));
        pthread_mutex_lock(&watch_lock);
        if (control_path[0])
            unlink(control_path);
        _exit(128 + sig);
    }
}

void signals_set_control_path(const char *path)
{
    pthread_mutex_lock(&watch_lock);
    snprintf(control_path, sizeof control_path, "%s", path ? path : "");
    pthread_mutex_unlock(&watch_lock);
}

int signals_watch(void)
{
    if (signal_pipe[0] >= 0)
        return 0;
    if (pipe2(signal_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
        return -1;
    /* Only the write end is non-blocking: the watcher sleeps in read. */
    fcntl(signal_pipe[0], F_SETFL, fcntl(signal_pipe[0], F_GETFL) & ~O_NONBLOCK);
    pthread_t t;
    if (pthread_create(&t, NULL, watch_thread, NULL) != 0)
        return -1;
    pthread_detach(t);
    struct sigaction sa = {.sa_handler = on_signal, .sa_flags = SA_RESTART};
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    return 0;
}

void signals_set_machine(struct machine *m)
{
    pthread_mutex_lock(&watch_lock);
    watched = m;
    pthread_mutex_unlock(&watch_lock);
}
