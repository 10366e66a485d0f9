/* A standby's published state and the operator's requests (see
 * standby_state.h). */
#include "migrate/standby_state.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "machine/vclock.h"
#include "migrate/arbiter_etcd.h"

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct standby_state state;        /* under lock */
static uint64_t applied_at, last_heard;   /* vclock_host_ns, under lock */
static int conn_fd = -1;                  /* the primary's connection, under lock */

void standby_state_begin(const char *uri, uint64_t heartbeat_timeout_ns, bool fence,
                         const char *arbiter)
{
    pthread_mutex_lock(&lock);
    memset(&state, 0, sizeof state);
    state.phase = STANDBY_WAITING;
    snprintf(state.uri, sizeof state.uri, "%s", uri);
    snprintf(state.arbiter, sizeof state.arbiter, "%s", arbiter ? arbiter : "");
    state.heartbeat_timeout_ns = heartbeat_timeout_ns;
    state.fence = fence;
    applied_at = last_heard = 0;
    conn_fd = -1;
    pthread_mutex_unlock(&lock);
}

/* "ADDR:PORT" of the socket's peer (IPv4 or IPv6), or "?". */
static void peer_name(int fd, char *out, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char host[INET6_ADDRSTRLEN] = "?";
    unsigned port = 0;
    snprintf(out, cap, "?");
    if (getpeername(fd, (struct sockaddr *)&ss, &len) < 0)
        return;
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *a = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &a->sin_addr, host, sizeof host);
        port = ntohs(a->sin_port);
        snprintf(out, cap, "%s:%u", host, port);
    } else if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &a->sin6_addr, host, sizeof host);
        port = ntohs(a->sin6_port);
        snprintf(out, cap, "[%s]:%u", host, port);
    }
}

void standby_state_connected(int fd)
{
    char name[80];
    peer_name(fd, name, sizeof name);
    pthread_mutex_lock(&lock);
    conn_fd = fd;
    snprintf(state.primary, sizeof state.primary, "%s", name);
    if (state.phase == STANDBY_WAITING)
        state.phase = STANDBY_SYNCING;
    last_heard = vclock_host_ns();
    /* A request that came while the connection was being set up. */
    if (state.takeover_requested || state.quit_requested)
        shutdown(fd, SHUT_RDWR);
    pthread_mutex_unlock(&lock);
}

void standby_state_phase(enum standby_phase phase)
{
    pthread_mutex_lock(&lock);
    state.phase = phase;
    pthread_mutex_unlock(&lock);
}

void standby_state_record(uint64_t bytes, uint64_t staged)
{
    uint64_t now = vclock_host_ns();
    pthread_mutex_lock(&lock);
    last_heard = now;
    state.received_bytes += bytes;
    state.staged_bytes = staged;
    pthread_mutex_unlock(&lock);
}

void standby_state_applied(uint64_t epoch, uint64_t bytes, uint64_t pending_writes)
{
    uint64_t now = vclock_host_ns();
    pthread_mutex_lock(&lock);
    state.epoch = epoch;
    state.checkpoint_bytes = bytes;
    state.staged_bytes = 0;
    state.pending_writes = pending_writes;
    applied_at = now;
    if (state.phase == STANDBY_SYNCING)
        state.phase = STANDBY_PROTECTING;
    pthread_mutex_unlock(&lock);
}

void standby_state_token(uint64_t token)
{
    pthread_mutex_lock(&lock);
    state.fencing_token = token;
    pthread_mutex_unlock(&lock);
}

void standby_state_end(void)
{
    pthread_mutex_lock(&lock);
    state.phase = STANDBY_OFF;
    conn_fd = -1;
    pthread_mutex_unlock(&lock);
}

bool standby_state_active(void)
{
    pthread_mutex_lock(&lock);
    bool active = state.phase != STANDBY_OFF;
    pthread_mutex_unlock(&lock);
    return active;
}

void standby_state_get(struct standby_state *out)
{
    uint64_t now = vclock_host_ns();
    pthread_mutex_lock(&lock);
    *out = state;
    out->epoch_age_ns = applied_at && now > applied_at ? now - applied_at : 0;
    out->heartbeat_age_ns = last_heard && now > last_heard ? now - last_heard : 0;
    pthread_mutex_unlock(&lock);
}

int standby_request_takeover(struct error *err)
{
    int rc = 0;
    pthread_mutex_lock(&lock);
    if (state.phase == STANDBY_OFF)
        rc = error_set(err, "this VM is not a standby");
    else if (state.phase == STANDBY_TAKING_OVER || state.takeover_requested)
        rc = error_set(err, "a takeover is already under way");
    else if (state.quit_requested)
        rc = error_set(err, "the standby is quitting");
    else if (state.phase == STANDBY_REFUSED)
        rc = error_set(err, "not taking over: this standby refused a checkpoint and the primary "
                       "runs on unprotected");
    else if (!state.epoch || conn_fd < 0)
        rc = error_set(err, "no complete checkpoint arrived yet: nothing to take over");
    if (rc == 0) {
        state.takeover_requested = true;
        /* The standby's read fails at once: it takes over as after
         * losing the primary (fencing and arbiter included). */
        shutdown(conn_fd, SHUT_RDWR);
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

/* Before a primary connected the standby sits in accept(): end the
 * process the way SIGTERM does, once the answer had time to leave. */
static void *quit_later(void *arg)
{
    (void)arg;
    struct timespec ts = {0, 200 * 1000 * 1000};
    nanosleep(&ts, NULL);
    kill(getpid(), SIGTERM);
    return NULL;
}

int standby_request_quit(struct error *err)
{
    int rc = 0;
    pthread_mutex_lock(&lock);
    struct arbiter_status arb;
    arbiter_get_status(&arb);
    /* Waiting for the arbiter's key (perhaps for ever: the primary lives,
     * or there is no quorum) may be given up; past it, the takeover runs. */
    bool waiting_for_key = arb.state == ARBITER_ACQUIRING;
    if (state.phase == STANDBY_OFF)
        rc = error_set(err, "this VM is not a standby");
    else if ((state.phase == STANDBY_TAKING_OVER || state.takeover_requested) && !waiting_for_key)
        rc = error_set(err, "a takeover is under way: quit refused");
    if (rc == 0) {
        state.quit_requested = true;
        if (conn_fd >= 0) {
            shutdown(conn_fd, SHUT_RDWR);
        } else {
            pthread_t t;
            if (pthread_create(&t, NULL, quit_later, NULL) != 0)
                rc = error_set(err, "cannot start the quit thread");
            else
                pthread_detach(t);
        }
    }
    pthread_mutex_unlock(&lock);
    return rc;
}

bool standby_takeover_requested(void)
{
    pthread_mutex_lock(&lock);
    bool r = state.takeover_requested;
    pthread_mutex_unlock(&lock);
    return r;
}

bool standby_quit_requested(void)
{
    pthread_mutex_lock(&lock);
    bool r = state.quit_requested;
    pthread_mutex_unlock(&lock);
    return r;
}
