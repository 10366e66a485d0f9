/* Arbitration between a replicated VM's primary and standby by an etcd
 * cluster (docs/replication.md, "Arbitration"): whoever runs the guest
 * holds KEY, attached to a lease it keeps alive.
 *
 *   --arbiter etcd://HOST:PORT[,HOST:PORT...]/KEY   (numeric addresses)
 *
 * Primary: takes KEY when it starts (refused if another holds it) and
 * renews its lease every TTL/3. Output (held frames, held disk writes) may
 * be released only while the lease is surely valid: until the send time of
 * the last successful renewal plus the TTL, less a margin. A primary that
 * cannot renew in time closes the gate and pauses its guest (a hold owned
 * by the arbiter, never released by ferry: once another may hold KEY, only
 * a person may decide).
 *
 * Standby: before taking over (failover, manual takeover, switchover) it
 * must take KEY itself with a lease of its own: it retries until the old
 * lease expired or was revoked, or the operator gives up. The revision of
 * its successful transaction is the fencing token (given to --fence as
 * $FERRY_FENCING_TOKEN). After the takeover it renews like a primary.
 *
 * The etcd v3 API through its JSON gateway (/v3/..., etcd 3.4+), over
 * HTTP/1.1 (migrate/http_post.h); every request has a deadline. */
#ifndef FERRY_MIGRATE_ARBITER_ETCD_H
#define FERRY_MIGRATE_ARBITER_ETCD_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"

struct machine;
struct arbiter;

#define ARBITER_MAX_ENDPOINTS 7
#define ARBITER_DEFAULT_TTL_S 3

enum arbiter_state {
    ARBITER_NONE = 0,    /* not holding, not trying */
    ARBITER_ACQUIRING,   /* waiting for KEY */
    ARBITER_HOLDING,     /* holds KEY, lease renewed */
    ARBITER_SUSPENDED,   /* could not renew in time: gate closed, guest paused;
                          * a late renewal that succeeds restores HOLDING */
    ARBITER_LOST,        /* the lease is gone: never held again by this process */
    ARBITER_RELEASED,    /* revoked on purpose (switchover) */
};

struct arbiter_status {
    enum arbiter_state state;
    char url[300];
    uint64_t token;              /* revision KEY was taken at */
    int64_t lease;
    unsigned ttl_s;
    double valid_for_ms;         /* how long the lease is surely valid (<= 0: not) */
    double last_renew_ms;        /* the last renewal's round trip */
    double max_renew_ms;
    uint64_t renewals, renew_failures;
    char error[256];             /* the last failure */
};

/* Parses url; nothing is contacted yet. */
int arbiter_open(const char *url, unsigned ttl_s, struct arbiter **out, struct error *err);
void arbiter_close(struct arbiter *a);

/* Primary: one attempt to take KEY (refused, naming the holder's value, if
 * someone holds it). */
int arbiter_take(struct arbiter *a, const char *who, struct error *err);
/* Standby: retries taking KEY until it succeeds or give_up() says so
 * (checked between attempts, every ~100 ms). */
int arbiter_take_wait(struct arbiter *a, const char *who, bool (*give_up)(void), struct error *err);
uint64_t arbiter_token(const struct arbiter *a);

/* Renews the lease from a thread of its own; m (may be NULL until set) is
 * paused by the arbiter's hold if the lease is lost. */
int arbiter_keep(struct arbiter *a, struct error *err);
void arbiter_set_machine(struct arbiter *a, struct machine *m);
/* Revokes the lease (switchover: the standby may take KEY at once). The
 * gate closes first. */
int arbiter_release(struct arbiter *a, struct error *err);

/* The process's arbiter (set by arbiter_keep / arbiter_take_wait), or NULL. */
struct arbiter *arbiter_current(void);
/* True when no arbiter is configured, or its lease is surely valid now:
 * held output may be released. */
bool arbiter_may_release(void);
void arbiter_get_status(struct arbiter_status *out);
const char *arbiter_state_name(enum arbiter_state s);

#endif
