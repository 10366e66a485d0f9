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
#include <sys/un.h>
#include <unistd.h>

#include "machine/machine.h"
#include "migrate/migration.h"
#include "migrate/replication.h"

#define MAX_LINE 65536

/* Serializes commands. A command that waits for a job (save, switchover,
 * replicate-stop) holds a reference to the job, not this lock, while it
 * waits: the job cannot go away under it, and other clients (a cancel, a
 * status poll) are served meanwhile. */
static pthread_mutex_t cmd_lock = PTHREAD_MUTEX_INITIALIZER;

#define MAX_CLIENTS 8

/* Each client gets its own thread, so a long request (save, switchover) or
 * a client polling migrate-status never blocks another client (a cancel). */
struct ctl_client {
    struct ctl_server *srv;
    int fd;
    pthread_t thread;
    bool used, done;
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
    struct ctl_client clients[MAX_CLIENTS];
    int client_connected;    /* number of connected clients, atomic */
};

static const char *state_name(enum migration_state s)
{
    static const char *names[] = {"none", "setup", "active", "completing", "completed",
                                  "failed", "cancelled"};
    return s <= MIG_CANCELLED ? names[s] : "unknown";
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
    if (st->paused_at_ns)
        json_object_set_new(o, "paused_at_monotonic_ns", json_integer((json_int_t)st->paused_at_ns));
    if (st->error[0])
        json_object_set_new(o, "error", json_string(st->error));
    if (st->channel[0])
        json_object_set_new(o, "channel", json_string(st->channel));
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

/* The request's "tls": {"cert", "key", "ca", "psk"} (paths), if any. */
static int tls_from_json(json_t *req, struct tls_config *c, const char **why)
{
    json_t *t = json_object_get(req, "tls");
    if (!t)
        return 0;
    static const struct {
        const char *name;
        size_t offset;
    } fields[] = {
        {"cert", offsetof(struct tls_config, cert)}, {"key", offsetof(struct tls_config, key)},
        {"ca", offsetof(struct tls_config, ca)}, {"psk", offsetof(struct tls_config, psk)},
    };
    if (!json_is_object(t)) {
        *why = "\"tls\" must be an object of paths: cert, key, ca or psk";
        return -1;
    }
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        json_t *v = json_object_get(t, fields[k].name);
        if (!v)
            continue;
        const char *s = json_string_value(v);
        if (!s || strlen(s) >= TLS_PATH_MAX) {
            *why = "\"tls\" paths must be strings shorter than 512 bytes";
            return -1;
        }
        strcpy((char *)c + fields[k].offset, s);
    }
    return 0;
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
    /* Auto-converge's share of time the vCPUs sleep (0: running freely). */
    json_object_set_new(o, "throttle_percent", json_integer(throttle_get(&m->throttle)));
    uint64_t resumed_at = __atomic_load_n(&m->resumed_at_ns, __ATOMIC_RELAXED);
    if (resumed_at)
        json_object_set_new(o, "resumed_at_monotonic_ns", json_integer((json_int_t)resumed_at));
    struct replication_status rs;
    replication_get_status(m, &rs);
    if (rs.state != REPL_NONE)
        json_object_set_new(o, "replication", replication_json(&rs));
    return o;
}

static json_t *cmd_migrate(struct machine *m, json_t *req, bool save)
{
    struct migration_params p = {.live = true, .max_downtime_ns = 5000000,
                                 .auto_converge = true, .max_throttle = 99};
    const char *uri = json_string_value(json_object_get(req, save ? "file" : "uri"));
    if (!uri || !*uri)
        return fail(save ? "save needs \"file\"" : "migrate needs \"uri\"");
    if (save)
        snprintf(p.uri, sizeof p.uri, "file:%s", uri);
    else
        snprintf(p.uri, sizeof p.uri, "%s", uri);
    json_t *v;
    if ((v = json_object_get(req, "live")))
        p.live = json_is_true(v);
    if ((v = json_object_get(req, "max_downtime_ms"))) {
        double ms = json_number_value(v);
        if (!json_is_number(v) || ms <= 0 || ms > 600000)
            return fail("max_downtime_ms must be a positive number of milliseconds");
        p.max_downtime_ns = (uint64_t)(ms * 1e6);
    }
    if ((v = json_object_get(req, "bandwidth"))) {
        double bw = json_number_value(v);
        if (!json_is_number(v) || bw < 0)
            return fail("bandwidth must be bytes per second (0 = unlimited)");
        p.bandwidth = (uint64_t)bw;
    }
    if ((v = json_object_get(req, "verify")))
        p.verify = json_is_true(v);
    if ((v = json_object_get(req, "auto_converge"))) {
        if (!json_is_boolean(v))
            return fail("auto_converge must be true or false");
        p.auto_converge = json_is_true(v);
    }
    if ((v = json_object_get(req, "max_throttle"))) {
        /* ferry ctl sends numbers as reals: a whole one is fine. */
        double t = json_number_value(v);
        if (!json_is_number(v) || t < 1 || t > 99 || (double)(long)t != t)
            return fail("max_throttle must be a whole percentage from 1 to 99");
        p.max_throttle = (unsigned)t;
    }
    const char *why;
    if (!save && tls_from_json(req, &p.tls, &why) < 0)
        return fail(why);
    if ((v = json_object_get(req, "compress")) &&
        (!json_is_string(v) || compress_mode_parse(json_string_value(v), &p.compress) < 0))
        return fail("compress must be \"auto\", \"zstd\" or \"none\"");
    if ((v = json_object_get(req, "stream_version")))
        p.stream_version = (uint32_t)json_integer_value(v);
    if (save) {
        p.live = false;
        p.keep_running = json_is_true(json_object_get(req, "keep_running"));
    }
    struct error err;
    if (migration_start(m, &p, &err) < 0)
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

char *ctl_handle(struct machine *m, const char *line)
{
    json_error_t jerr;
    json_t *req = json_loads(line, 0, &jerr), *resp;
    const char *cmd = req ? json_string_value(json_object_get(req, "cmd")) : NULL;
    /* These wait for the replication job, holding a reference to it. */
    bool waits = cmd && (strcmp(cmd, "switchover") == 0 || strcmp(cmd, "replicate-stop") == 0);
    if (!waits)
        pthread_mutex_lock(&cmd_lock);
    if (!req || !json_is_object(req)) {
        char msg[300];
        snprintf(msg, sizeof msg, "request is not a JSON object: %s", jerr.text);
        resp = fail(msg);
    } else if (!cmd) {
        resp = fail("request has no \"cmd\"");
    } else if (strcmp(cmd, "status") == 0) {
        resp = cmd_status(m);
    } else if (strcmp(cmd, "pause") == 0) {
        struct error err;
        resp = runstate_hold(m, HOLD_OPERATOR, &err) == 0 ? ok() : fail(err.msg);
    } else if (strcmp(cmd, "resume") == 0) {
        struct error err;
        resp = runstate_operator_resume(m, &err) == 0 ? ok() : fail(err.msg);
    } else if (strcmp(cmd, "migrate") == 0) {
        resp = cmd_migrate(m, req, false);
    } else if (strcmp(cmd, "save") == 0) {
        resp = cmd_migrate(m, req, true);
    } else if (strcmp(cmd, "migrate-status") == 0) {
        struct migration_status st;
        migration_get_status(m, &st);
        resp = ok();
        json_object_set_new(resp, "migration", migration_json(&st));
    } else if (strcmp(cmd, "migrate-cancel") == 0) {
        migration_cancel(m);
        resp = ok();
    } else if (strcmp(cmd, "replicate") == 0) {
        struct replication_params p = {.interval_ns = 25000000};
        const char *uri = json_string_value(json_object_get(req, "uri"));
        json_t *v = json_object_get(req, "interval_ms");
        struct error err;
        const char *why;
        if (!uri)
            resp = fail("replicate needs \"uri\"");
        else if (tls_from_json(req, &p.tls, &why) < 0)
            resp = fail(why);
        else if (v && (!json_is_number(v) || json_number_value(v) <= 0))
            resp = fail("interval_ms must be a positive number");
        else {
            snprintf(p.uri, sizeof p.uri, "%s", uri);
            if (v)
                p.interval_ns = (uint64_t)(json_number_value(v) * 1e6);
            resp = replication_start(m, &p, &err) < 0 ? fail(err.msg) : ok();
        }
    } else if (strcmp(cmd, "replicate-stop") == 0) {
        struct error err;
        resp = replication_stop(m, &err) < 0 ? fail(err.msg) : ok();
    } else if (strcmp(cmd, "switchover") == 0) {
        struct error err;
        if (replication_switchover(m, &err) < 0) {
            resp = fail(err.msg);
        } else {
            struct replication_status rs;
            replication_get_status(m, &rs);
            resp = ok();
            json_object_set_new(resp, "replication", replication_json(&rs));
        }
    } else if (strcmp(cmd, "replication-status") == 0) {
        struct replication_status rs;
        replication_get_status(m, &rs);
        resp = ok();
        json_object_set_new(resp, "replication", replication_json(&rs));
    } else if (strcmp(cmd, "quit") == 0) {
        machine_request_stop(m, MACHINE_QUIT, 0);
        machine_resume(m);
        resp = ok();
    } else {
        char msg[200];
        snprintf(msg, sizeof msg, "unknown command '%.100s'", cmd);
        resp = fail(msg);
    }
    if (!waits)
        pthread_mutex_unlock(&cmd_lock);
    char *out = json_dumps(resp, JSON_COMPACT);
    json_decref(resp);
    json_decref(req);
    return out;
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

static void serve_client(struct ctl_server *srv, int fd)
{
    char *buf = malloc(MAX_LINE);
    size_t len = 0;
    while (buf) {
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = srv->stop_pipe[0], .events = POLLIN}};
        if (poll(p, 2, -1) < 0 && errno != EINTR)
            break;
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
            char *resp = ctl_handle(srv->m, buf);
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
    serve_client(c->srv, c->fd);
    __atomic_sub_fetch(&c->srv->client_connected, 1, __ATOMIC_ACQ_REL);
    pthread_mutex_lock(&c->srv->lock);
    c->done = true;
    pthread_mutex_unlock(&c->srv->lock);
    return NULL;
}

/* Joins finished client threads; returns a free slot or NULL. */
static struct ctl_client *reap_clients(struct ctl_server *srv, bool all)
{
    struct ctl_client *free_slot = NULL;
    for (int i = 0; i < MAX_CLIENTS; i++) {
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
        if (!c) {
            write_line(fd, "{\"ok\":false,\"error\":\"too many control clients\"}");
            close(fd);
            continue;
        }
        *c = (struct ctl_client){.srv = srv, .fd = fd, .used = true};
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
    unlink(path); /* a stale socket of an earlier run */
    if (bind(srv->listen_fd, (struct sockaddr *)&addr, sizeof addr) < 0 ||
        listen(srv->listen_fd, 4) < 0) {
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
