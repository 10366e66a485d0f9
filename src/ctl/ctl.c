#include "ctl/ctl.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "machine/machine.h"
#include "migrate/migration.h"
#include "migrate/postcopy.h"
#include "migrate/replication.h"
#include "ctl/request.h"
#include "ctl/standby_ctl.h"
#include "migrate/arbiter_etcd.h"
#include "migrate/standby_state.h"

#define MAX_LINE 65536

/* Serializes commands. A command that waits for a job (save, switchover,
 * replicate-stop) holds a reference to the job, not this lock, while it
 * waits: the job cannot go away under it, and other clients (a cancel, a
 * status poll) are served meanwhile. */
static pthread_mutex_t cmd_lock = PTHREAD_MUTEX_INITIALIZER;

#define MAX_CLIENTS 8
/* One more slot, used only when the others are all taken, serving only the
 * commands that regain control (ctl_cmd_is_priority): idle or hostile
 * clients cannot lock the operator out of migrate-cancel or quit. */
#define RESERVED_SLOT MAX_CLIENTS
/* A client that sends nothing for this long is disconnected (the reserved
 * slot's is short: it must be free for the next operator). */
#define CLIENT_IDLE_MS 30000
#define RESERVED_IDLE_MS 2000
#define SLOT_WAIT_MS 500

/* Each client gets its own thread, so a long request (save, switchover) or
 * a client polling migrate-status never blocks another client (a cancel). */
struct ctl_client {
    struct ctl_server *srv;
    int fd;
    pthread_t thread;
    bool used, done;
    bool priority_only;      /* the reserved slot */
};

struct ctl_server {
    struct machine *m;       /* set by ctl_serve, under lock */
    bool stopping;           /* under lock */
    pthread_cond_t serve_cond;
    int listen_fd;
    int stop_pipe[2];
    char path[108];
    pthread_t thread;
    pthread_mutex_t lock;
    struct ctl_client clients[MAX_CLIENTS + 1];
    int client_connected;    /* number of connected clients, atomic */
};

static const char *state_name(enum migration_state s)
{
    static const char *names[] = {"none", "setup", "active", "completing", "completed",
                                  "failed", "cancelled", "postcopy-active", "postcopy-paused"};
    return s <= MIG_POSTCOPY_PAUSED ? names[s] : "unknown";
}

static json_t *migration_json(const struct migration_status *st)
{
    json_t *rounds = json_array();
    for (uint32_t i = 0; i < st->rounds && i < MIG_MAX_ROUNDS; i++) {
        const struct migration_round *r = &st->round[i];
        json_array_append_new(rounds, json_pack(
            "{s:i, s:I, s:I, s:I, s:f, s:I, s:f, s:f}", "round", (int)r->round,
            "pages", (json_int_t)r->pages, "zero_pages", (json_int_t)r->zero_pages,
            "bytes", (json_int_t)r->bytes, "duration_ms", (double)r->duration_ns / 1e6,
            "dirtied", (json_int_t)r->dirtied, "dirty_rate_pages_s", r->dirty_rate,
            "bandwidth_bytes_s", r->bandwidth));
        json_object_set_new(json_array_get(rounds, i), "throttle_percent",
                            json_integer(r->throttle));
    }
    json_t *o = json_pack(
        "{s:s, s:s, s:b, s:b, s:i, s:I, s:f, s:f, s:f, s:f, s:f, s:f, s:I, s:I, s:I, s:I, s:b, "
        "s:o}",
        "state", state_name(st->state), "uri", st->uri, "live", st->live,
        "converged", st->converged, "rounds", (int)st->rounds,
        "remaining_pages", (json_int_t)st->remaining_pages,
        "dirty_rate_pages_s", st->dirty_rate, "bandwidth_bytes_s", st->bandwidth,
        "total_ms", (double)st->total_ns / 1e6, "downtime_ms", (double)st->downtime_ns / 1e6,
        "predicted_downtime_ms", (double)st->predicted_downtime_ns / 1e6,
        "max_downtime_ms", (double)st->max_downtime_ns / 1e6,
        "wire_bytes", (json_int_t)st->wire_bytes, "pages", (json_int_t)st->pages,
        "zero_pages", (json_int_t)st->zero_pages, "ram_pages", (json_int_t)st->ram_pages,
        "verified", st->verified, "round_table", rounds);
    json_object_set_new(o, "auto_converge", json_boolean(st->auto_converge));
    json_object_set_new(o, "throttle_percent", json_integer(st->throttle));
    json_object_set_new(o, "throttle_max_percent", json_integer(st->throttle_max));
    if (st->progress_round && (st->state == MIG_ACTIVE || st->state == MIG_COMPLETING)) {
        /* Within the round now running: for a display between rounds. */
        json_object_set_new(o, "progress", json_pack(
            "{s:i, s:I, s:I, s:f, s:f}", "round", (int)st->progress_round,
            "round_pages", (json_int_t)st->round_pages, "round_sent", (json_int_t)st->round_sent,
            "rate_bytes_s", st->rate, "round_eta_ms",
            st->round_eta_ns < 0 ? -1.0 : st->round_eta_ns / 1e6));
    }
    if (st->handover_ns)
        json_object_set_new(o, "handover_ms", json_real((double)st->handover_ns / 1e6));
    json_object_set_new(o, "postcopy", json_boolean(st->postcopy));
    if (st->postcopy)
        json_object_set_new(o, "postcopy_stats", json_pack(
            "{s:f, s:I, s:I, s:I, s:f, s:I, s:I, s:f, s:f, s:f, s:I}",
            "time_ms", (double)st->postcopy_ns / 1e6,
            "pages", (json_int_t)st->postcopy_pages, "sent", (json_int_t)st->postcopy_sent,
            "requested", (json_int_t)st->postcopy_requested,
            "received_percent", st->postcopy_pages
                ? (double)st->postcopy_sent * 100.0 / (double)st->postcopy_pages : 100.0,
            "fault_pages", (json_int_t)st->fault_pages,
            "on_demand_pages", (json_int_t)st->fault_pages,
            "fault_median_ms", (double)st->fault_median_ns / 1e6,
            "fault_p99_ms", (double)st->fault_p99_ns / 1e6,
            "fault_max_ms", (double)st->fault_max_ns / 1e6,
            "recoveries", (json_int_t)st->postcopy_pauses));
    if (st->state == MIG_COMPLETED && st->handover_ns) {
        json_object_set_new(o, "downtime_measured", json_boolean(!st->downtime_bound[0]));
        if (st->downtime_bound[0])
            json_object_set_new(o, "downtime_bound_reason", json_string(st->downtime_bound));
    }
    if (st->paused_at_ns)
        json_object_set_new(o, "paused_at_monotonic_ns", json_integer((json_int_t)st->paused_at_ns));
    if (st->error[0])
        json_object_set_new(o, "error", json_string(st->error));
    if (st->channel[0])
        json_object_set_new(o, "channel", json_string(st->channel));
    if (st->copy_storage)
        json_object_set_new(o, "storage", json_pack(
            "{s:i, s:I, s:I, s:I, s:I}", "disks", (int)st->storage.disks,
            "blocks", (json_int_t)st->storage.blocks,
            "zero_blocks", (json_int_t)st->storage.zero_blocks,
            "bytes", (json_int_t)st->storage.bytes,
            "remaining_bytes", (json_int_t)st->storage_remaining));
    const struct pagecodec_stats *z = &st->codec;
    json_object_set_new(o, "compress", json_pack(
        "{s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:f, s:f, s:b}",
        "mode", compress_mode_name(st->compress),
        "page_record_bytes", (json_int_t)z->page_record_bytes,
        "sent_record_bytes", (json_int_t)z->sent_record_bytes,
        "zstd_records", (json_int_t)z->zstd_records, "plain_records", (json_int_t)z->plain_records,
        "delta_pages", (json_int_t)z->delta_pages, "delta_bytes", (json_int_t)z->delta_bytes,
        "zstd_in_bytes", (json_int_t)z->zstd_in_bytes, "zstd_out_bytes", (json_int_t)z->zstd_out_bytes,
        "zstd_mb_s", z->zstd_ns ? (double)z->zstd_in_bytes / (double)z->zstd_ns * 1e3 : 0.0,
        "link_mb_s", z->link_bytes_per_s / 1e6, "zstd_active", z->zstd_active));
    return o;
}

static json_t *replication_json(const struct replication_status *st)
{
    static const char *names[] = {"none", "syncing", "protected", "switching", "switched",
                                  "stopped", "unprotected"};
    json_t *o = json_pack(
        "{s:s, s:s, s:I, s:I, s:f, s:f, s:f, s:I, s:f, s:f, s:f, s:I}",
        "state", st->state <= REPL_UNPROTECTED ? names[st->state] : "unknown", "uri", st->uri,
        "epoch", (json_int_t)st->epoch, "acked_epoch", (json_int_t)st->acked_epoch,
        "interval_ms", (double)st->interval_ns / 1e6,
        "achieved_interval_ms", st->achieved_interval_ms,
        "checkpoints_per_s", st->checkpoints_per_s,
        "last_checkpoint_bytes", (json_int_t)st->last_checkpoint_bytes,
        "last_pause_ms", (double)st->last_pause_ns / 1e6,
        "max_pause_ms", (double)st->max_pause_ns / 1e6,
        "switchover_downtime_ms", (double)st->switchover_downtime_ns / 1e6,
        "held_frames", (json_int_t)st->held_frames);
    json_object_set_new(o, "protected", json_boolean(st->state == REPL_PROTECTED));
    if (st->switchover_handover_ns) {
        json_object_set_new(o, "switchover_handover_ms",
                            json_real((double)st->switchover_handover_ns / 1e6));
        json_object_set_new(o, "switchover_downtime_measured",
                            json_boolean(!st->switchover_downtime_bound[0]));
        if (st->switchover_downtime_bound[0])
            json_object_set_new(o, "switchover_downtime_bound_reason",
                                json_string(st->switchover_downtime_bound));
    }
    if (st->error[0])
        json_object_set_new(o, "error", json_string(st->error));
    return o;
}

static json_t *ok(void) { return json_pack("{s:b}", "ok", 1); }
static json_t *fail(const char *msg) { return json_pack("{s:b, s:s}", "ok", 0, "error", msg); }

static json_t *cmd_status(struct machine *m)
{
    struct migration_status st;
    migration_get_status(m, &st);
    const char *state = runstate_name(runstate_get(m));
    json_t *o = json_pack("{s:b, s:s, s:i, s:I, s:I, s:f}", "ok", 1, "state", state,
                          "harts", (int)m->nharts, "ram_bytes", (json_int_t)m->bus.ram.size,
                          "instructions", (json_int_t)machine_instructions(m),
                          "guest_time_s", (double)vclock_ns(&m->clock) / 1e9);
    if (st.state != MIG_NONE)
        json_object_set_new(o, "migration", migration_json(&st));
    struct job *job = job_get_running(m);
    if (job) {
        json_object_set_new(o, "job", json_string(job_kind_name(job->kind)));
        job_put(job);
    }
    json_t *holds = json_array();
    for (unsigned i = 0; i < HOLD_OWNERS; i++)
        if (runstate_holds(m, (enum hold_owner)i))
            json_array_append_new(holds, json_string(hold_owner_name((enum hold_owner)i)));
    json_object_set_new(o, "paused_by", holds);
    uint64_t pc_missing, pc_total;
    if (postcopy_recv_progress(&pc_missing, &pc_total))
        json_object_set_new(o, "postcopy_incoming", json_pack(
            "{s:I, s:I}", "missing_pages", (json_int_t)pc_missing,
            "pages", (json_int_t)pc_total));
    /* Auto-converge's share of time the vCPUs sleep (0: running freely). */
    json_object_set_new(o, "throttle_percent", json_integer(throttle_get(&m->throttle)));
    uint64_t resumed_at = __atomic_load_n(&m->resumed_at_ns, __ATOMIC_RELAXED);
    if (resumed_at)
        json_object_set_new(o, "resumed_at_monotonic_ns", json_integer((json_int_t)resumed_at));
    struct replication_status rs;
    replication_get_status(m, &rs);
    if (rs.state != REPL_NONE)
        json_object_set_new(o, "replication", replication_json(&rs));
    json_t *arb = arbiter_json();
    if (arb)
        json_object_set_new(o, "arbiter", arb);
    return o;
}

static json_t *cmd_migrate(struct machine *m, const struct migration_params *p, bool save)
{
    struct error err;
    if (migration_start(m, p, &err) < 0)
        return fail(err.msg);
    if (!save)
        return ok();
    /* save answers when the file is complete: wait for this job (our own
     * reference: a later job cannot free it), not whatever runs then. */
    struct job *job = migration_job(m);
    pthread_mutex_unlock(&cmd_lock);
    job_wait(job);
    pthread_mutex_lock(&cmd_lock);
    struct migration_status st;
    migration_job_status(job, &st);
    job_put(job);
    if (st.state != MIG_COMPLETED)
        return fail(st.error[0] ? st.error : "save failed");
    json_t *o = ok();
    json_object_set_new(o, "migration", migration_json(&st));
    return o;
}

/* Carries out a parsed request (ctl/request.c checked every field). */
static json_t *ctl_execute(struct machine *m, const struct ctl_request *req)
{
    struct error err;
    /* A standby has no running machine to act on until it takes over. */
    if (standby_state_active())
        return standby_ctl_execute(req);
    switch (req->cmd) {
    case CTL_STATUS:
        return cmd_status(m);
    case CTL_PAUSE:
        return runstate_hold(m, HOLD_OPERATOR, &err) == 0 ? ok() : fail(err.msg);
    case CTL_RESUME:
        return runstate_operator_resume(m, &err) == 0 ? ok() : fail(err.msg);
    case CTL_MIGRATE:
        return cmd_migrate(m, &req->mig, false);
    case CTL_SAVE:
        return cmd_migrate(m, &req->mig, true);
    case CTL_MIGRATE_STATUS: {
        struct migration_status st;
        migration_get_status(m, &st);
        json_t *resp = ok();
        json_object_set_new(resp, "migration", migration_json(&st));
        return resp;
    }
    case CTL_MIGRATE_CANCEL:
        migration_cancel(m);
        return ok();
    case CTL_MIGRATE_RESUME:
        return migration_resume_postcopy(m, req->mig.uri, &err) < 0 ? fail(err.msg) : ok();
    case CTL_REPLICATE:
        return replication_start(m, &req->repl, &err) < 0 ? fail(err.msg) : ok();
    case CTL_REPLICATE_STOP:
        return replication_stop(m, &err) < 0 ? fail(err.msg) : ok();
    case CTL_SWITCHOVER: {
        if (replication_switchover(m, &err) < 0)
            return fail(err.msg);
        struct replication_status rs;
        replication_get_status(m, &rs);
        json_t *resp = ok();
        json_object_set_new(resp, "replication", replication_json(&rs));
        return resp;
    }
    case CTL_REPLICATION_STATUS: {
        struct replication_status rs;
        replication_get_status(m, &rs);
        json_t *resp = ok();
        json_object_set_new(resp, "replication", replication_json(&rs));
        return resp;
    }
    case CTL_QUIT:
        machine_request_stop(m, MACHINE_QUIT, 0);
        machine_resume(m);
        return ok();
    case CTL_TAKEOVER:
        return fail("this VM is not a standby: nothing to take over");
    }
    return fail("unknown command");
}

/* Handles one line; with priority_only (the reserved slot) only the
 * commands that regain control are served. */
static char *ctl_handle_line(struct machine *m, const char *line, bool priority_only)
{
    struct ctl_request req;
    struct error err;
    json_t *resp;
    if (ctl_parse_request(line, &req, &err) < 0) {
        resp = fail(err.msg);
    } else if (priority_only && !ctl_cmd_is_priority(req.cmd)) {
        resp = fail("too many control clients: this connection is served only status, "
                    "migrate-status, migrate-cancel and quit");
    } else {
        /* These wait for the replication job, holding a reference to it. */
        bool waits = req.cmd == CTL_SWITCHOVER || req.cmd == CTL_REPLICATE_STOP;
        if (!waits)
            pthread_mutex_lock(&cmd_lock);
        resp = ctl_execute(m, &req);
        if (!waits)
            pthread_mutex_unlock(&cmd_lock);
    }
    char *out = json_dumps(resp, JSON_COMPACT);
    json_decref(resp);
    return out;
}

char *ctl_handle(struct machine *m, const char *line)
{
    return ctl_handle_line(m, line, false);
}

static bool write_line(int fd, const char *s)
{
    size_t len = strlen(s);
    while (len) {
        ssize_t n = send(fd, s, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return false;
        s += n;
        len -= (size_t)n;
    }
    return send(fd, "\n", 1, MSG_NOSIGNAL) == 1;
}

static void serve_client(struct ctl_server *srv, struct ctl_client *c)
{
    int fd = c->fd;
    char *buf = malloc(MAX_LINE);
    size_t len = 0;
    while (buf) {
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = srv->stop_pipe[0], .events = POLLIN}};
        int n_ready = poll(p, 2, c->priority_only ? RESERVED_IDLE_MS : CLIENT_IDLE_MS);
        if (n_ready < 0 && errno != EINTR)
            break;
        if (n_ready == 0) {
            write_line(fd, "{\"ok\":false,\"error\":\"idle for too long: disconnected\"}");
            break;
        }
        if (p[1].revents)
            break;
        if (!p[0].revents)
            continue;
        ssize_t n = read(fd, buf + len, MAX_LINE - 1 - len);
        if (n <= 0)
            break;
        len += (size_t)n;
        char *nl;
        while ((nl = memchr(buf, '\n', len))) {
            *nl = '\0';
            char *resp = ctl_handle_line(srv->m, buf, c->priority_only);
            bool sent = resp && write_line(fd, resp);
            free(resp);
            len -= (size_t)(nl + 1 - buf);
            memmove(buf, nl + 1, len);
            if (!sent)
                goto out;
        }
        if (len == MAX_LINE - 1) {
            write_line(fd, "{\"ok\":false,\"error\":\"request line too long\"}");
            break;
        }
    }
out:
    free(buf);
    close(fd);
}

static void *client_thread(void *arg)
{
    struct ctl_client *c = arg;
    serve_client(c->srv, c);
    __atomic_sub_fetch(&c->srv->client_connected, 1, __ATOMIC_ACQ_REL);
    pthread_mutex_lock(&c->srv->lock);
    c->done = true;
    pthread_mutex_unlock(&c->srv->lock);
    return NULL;
}

/* Joins finished client threads; returns a free slot (the reserved one
 * last) or NULL. */
static struct ctl_client *reap_clients(struct ctl_server *srv, bool all)
{
    struct ctl_client *free_slot = NULL;
    for (int i = 0; i <= RESERVED_SLOT; i++) {
        struct ctl_client *c = &srv->clients[i];
        pthread_mutex_lock(&srv->lock);
        bool finished = c->used && c->done;
        bool used = c->used;
        pthread_mutex_unlock(&srv->lock);
        if (finished || (all && used)) {
            pthread_join(c->thread, NULL);
            c->used = false;
            used = false;
        }
        if (!used && !free_slot)
            free_slot = c;
    }
    return free_slot;
}

static void *ctl_thread(void *arg)
{
    struct ctl_server *srv = arg;
    /* Opened before there is a machine (a destination binds its socket
     * before the stream comes, so that creating it is not part of the
     * guest's downtime): clients wait in the backlog until ctl_serve. */
    pthread_mutex_lock(&srv->lock);
    while (!srv->m && !srv->stopping)
        pthread_cond_wait(&srv->serve_cond, &srv->lock);
    bool stop = srv->stopping;
    pthread_mutex_unlock(&srv->lock);
    while (!stop) {
        struct pollfd p[2] = {{.fd = srv->listen_fd, .events = POLLIN},
                              {.fd = srv->stop_pipe[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        if (!p[0].revents)
            continue;
        int fd = accept4(srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd < 0)
            continue;
        struct ctl_client *c = reap_clients(srv, false);
        /* A client that just hung up may not have been noticed yet by its
         * thread: give the slots a moment before turning this one away. */
        for (int waited = 0; !c && waited < SLOT_WAIT_MS; waited += 10) {
            usleep(10000);
            c = reap_clients(srv, false);
        }
        if (!c) {
            write_line(fd, "{\"ok\":false,\"error\":\"too many control clients\"}");
            close(fd);
            continue;
        }
        *c = (struct ctl_client){.srv = srv, .fd = fd, .used = true,
                                 .priority_only = c == &srv->clients[RESERVED_SLOT]};
        __atomic_add_fetch(&srv->client_connected, 1, __ATOMIC_ACQ_REL);
        if (pthread_create(&c->thread, NULL, client_thread, c) != 0) {
            __atomic_sub_fetch(&srv->client_connected, 1, __ATOMIC_ACQ_REL);
            c->used = false;
            close(fd);
        }
    }
    /* Client threads see the stop pipe and end; wait for them. */
    reap_clients(srv, true);
    return NULL;
}

/* Makes PATH free for our socket: nothing there, or a stale socket (no
 * one accepts on it: an earlier run that died). A live socket belongs to
 * another VM and anything else is not ours to delete: refuse both. */
static int ctl_claim_path(const char *path, struct error *err)
{
    struct stat st;
    if (lstat(path, &st) < 0) {
        if (errno == ENOENT)
            return 0;
        return error_set(err, "control socket %s: %s", path, strerror(errno));
    }
    if (!S_ISSOCK(st.st_mode))
        return error_set(err, "refusing to use %s as the control socket: it exists and is not "
                         "a socket", path);
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    memcpy(addr.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return error_set(err, "control socket: %s", strerror(errno));
    int rc = connect(fd, (struct sockaddr *)&addr, sizeof addr);
    int e = errno;
    close(fd);
    if (rc == 0 || e == EAGAIN)
        return error_set(err, "refusing to start: %s is the live control socket of another "
                         "VM", path);
    if (e != ECONNREFUSED)
        return error_set(err, "control socket %s: %s", path, strerror(e));
    if (unlink(path) < 0 && errno != ENOENT) /* stale: an earlier run's */
        return error_set(err, "cannot remove the stale control socket %s: %s", path,
                         strerror(errno));
    return 0;
}

int ctl_open(const char *path, struct ctl_server **out, struct error *err)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path)
        return error_set(err, "--control path '%s' is too long for a unix socket", path);
    struct ctl_server *srv = calloc(1, sizeof *srv);
    if (!srv)
        return error_set(err, "out of memory");
    pthread_mutex_init(&srv->lock, NULL);
    pthread_cond_init(&srv->serve_cond, NULL);
    snprintf(srv->path, sizeof srv->path, "%s", path);
    memcpy(addr.sun_path, path, strlen(path) + 1);
    srv->listen_fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (srv->listen_fd < 0 || pipe(srv->stop_pipe) < 0) {
        free(srv);
        return error_set(err, "control socket: %s", strerror(errno));
    }
    if (ctl_claim_path(path, err) < 0) {
        close(srv->listen_fd);
        close(srv->stop_pipe[0]);
        close(srv->stop_pipe[1]);
        free(srv);
        return -1;
    }
    /* 0600 whatever the umask: whoever can connect can save the VM's
     * memory anywhere this process may write. The umask covers the moment
     * between bind and chmod (it only ever narrows other threads' modes). */
    mode_t old_mask = umask(0177);
    int bound = bind(srv->listen_fd, (struct sockaddr *)&addr, sizeof addr);
    umask(old_mask);
    if (bound < 0 || chmod(path, 0600) < 0 || listen(srv->listen_fd, 16) < 0) {
        int e = errno;
        close(srv->listen_fd);
        close(srv->stop_pipe[0]);
        close(srv->stop_pipe[1]);
        free(srv);
        return error_set(err, "cannot create control socket %s: %s", path, strerror(e));
    }
    if (pthread_create(&srv->thread, NULL, ctl_thread, srv) != 0) {
        close(srv->listen_fd);
        close(srv->stop_pipe[0]);
        close(srv->stop_pipe[1]);
        unlink(path);
        free(srv);
        return error_set(err, "cannot start the control thread");
    }
    *out = srv;
    return 0;
}

void ctl_serve(struct ctl_server *srv, struct machine *m)
{
    pthread_mutex_lock(&srv->lock);
    srv->m = m;
    pthread_cond_broadcast(&srv->serve_cond);
    pthread_mutex_unlock(&srv->lock);
}

int ctl_start(struct machine *m, const char *path, struct ctl_server **out, struct error *err)
{
    if (ctl_open(path, out, err) < 0)
        return -1;
    ctl_serve(*out, m);
    return 0;
}

void ctl_stop(struct ctl_server *srv, int linger_ms)
{
    if (!srv)
        return;
    /* Let a connected client (ferry migrate polling for its report) read
     * the final state before the socket goes away. */
    for (int waited = 0; waited < linger_ms &&
                         __atomic_load_n(&srv->client_connected, __ATOMIC_ACQUIRE); waited += 10)
        usleep(10000);
    pthread_mutex_lock(&srv->lock);
    srv->stopping = true;
    pthread_cond_broadcast(&srv->serve_cond);
    pthread_mutex_unlock(&srv->lock);
    if (write(srv->stop_pipe[1], "x", 1) < 0) {
    }
    pthread_join(srv->thread, NULL);
    close(srv->listen_fd);
    close(srv->stop_pipe[0]);
    close(srv->stop_pipe[1]);
    unlink(srv->path);
    pthread_cond_destroy(&srv->serve_cond);
    pthread_mutex_destroy(&srv->lock);
    free(srv);
}
