/* Run state and pause holds (see runstate.h). */
#include "machine/runstate.h"

#include <stdatomic.h>

#include "machine/machine.h"

static const char *const state_names[RUN_STATE_COUNT] = {
    [RUN_STATE_INCOMING] = "incoming", [RUN_STATE_STANDBY] = "standby",
    [RUN_STATE_RUNNING] = "running",   [RUN_STATE_PAUSED] = "paused",
    [RUN_STATE_COMPLETING] = "completing", [RUN_STATE_HANDOVER] = "handing-over",
    [RUN_STATE_MIGRATED] = "migrated", [RUN_STATE_SHUTDOWN] = "shutdown",
    [RUN_STATE_POSTCOPY] = "postcopy-active", [RUN_STATE_POSTCOPY_PAUSED] = "postcopy-paused",
};
_Static_assert(sizeof state_names / sizeof state_names[0] == RUN_STATE_COUNT,
               "every run state has a name");

static const char *const owner_names[HOLD_OWNERS] = {
    [HOLD_OPERATOR] = "operator", [HOLD_MIGRATION] = "migration", [HOLD_SAVE] = "save",
    [HOLD_REPLICATION] = "replication", [HOLD_ARBITER] = "arbiter",
};

const char *runstate_name(enum run_state s)
{
    return (unsigned)s < RUN_STATE_COUNT ? state_names[s] : "unknown";
}

const char *hold_owner_name(enum hold_owner who)
{
    return (unsigned)who < HOLD_OWNERS ? owner_names[who] : "unknown";
}

void runstate_init(struct runstate *rs, enum run_state initial)
{
    pthread_mutex_init(&rs->lock, NULL);
    rs->state = initial;
    for (unsigned i = 0; i < HOLD_OWNERS; i++)
        rs->holds[i] = 0;
}

void runstate_destroy(struct runstate *rs)
{
    pthread_mutex_destroy(&rs->lock);
}

static unsigned total_holds(const struct runstate *rs)
{
    unsigned n = 0;
    for (unsigned i = 0; i < HOLD_OWNERS; i++)
        n += rs->holds[i];
    return n;
}

static bool loop_stopped(struct machine *m)
{
    return machine_stop_reason(m) != MACHINE_RUNNING;
}

/* Written under the lock, read without it: `status` must answer while a
 * job's hold waits for the vCPU loop to park (devices draining). */
static void set_state(struct runstate *rs, enum run_state s)
{
    __atomic_store_n(&rs->state, s, __ATOMIC_RELEASE);
}

enum run_state runstate_get(struct machine *m)
{
    enum run_state s = __atomic_load_n(&m->rs.state, __ATOMIC_ACQUIRE);
    if (s != RUN_STATE_MIGRATED && s != RUN_STATE_INCOMING && s != RUN_STATE_STANDBY &&
        loop_stopped(m))
        return RUN_STATE_SHUTDOWN;
    return s;
}

static int transition_locked(struct machine *m, enum run_state from, enum run_state to,
                             struct error *err)
{
    if (m->rs.state != from)
        return error_set(err, "the VM is %s, not %s: cannot become %s",
                         runstate_name(m->rs.state), runstate_name(from), runstate_name(to));
    set_state(&m->rs, to);
    return 0;
}

int runstate_transition(struct machine *m, enum run_state from, enum run_state to,
                        struct error *err)
{
    pthread_mutex_lock(&m->rs.lock);
    int rc = transition_locked(m, from, to, err);
    pthread_mutex_unlock(&m->rs.lock);
    return rc;
}

int runstate_hold(struct machine *m, enum hold_owner who, struct error *err)
{
    int rc = 0;
    pthread_mutex_lock(&m->rs.lock);
    if (who == HOLD_OPERATOR && m->rs.holds[HOLD_OPERATOR]) {
        /* Pausing a paused guest changes nothing. */
    } else if (total_holds(&m->rs)) {
        /* Parked already (PAUSED, or a job's final copy): count it. */
        __atomic_add_fetch(&m->rs.holds[who], 1, __ATOMIC_RELEASE);
    } else if (m->rs.state != RUN_STATE_RUNNING || loop_stopped(m)) {
        rc = error_set(err, "the VM is %s: nothing to pause", runstate_name(
                       loop_stopped(m) && m->rs.state == RUN_STATE_RUNNING ? RUN_STATE_SHUTDOWN
                                                                          : m->rs.state));
    } else if (machine_pause(m) < 0) {
        rc = error_set(err, "the machine stopped");
    } else {
        __atomic_add_fetch(&m->rs.holds[who], 1, __ATOMIC_RELEASE);
        set_state(&m->rs, RUN_STATE_PAUSED);
    }
    pthread_mutex_unlock(&m->rs.lock);
    return rc;
}

static int release_locked(struct machine *m, enum hold_owner who, struct error *err)
{
    if (!m->rs.holds[who])
        return error_set(err, "the %s holds no pause", hold_owner_name(who));
    if (m->rs.state != RUN_STATE_PAUSED)
        return error_set(err, "the VM is %s: the %s cannot release it",
                         runstate_name(m->rs.state), hold_owner_name(who));
    __atomic_sub_fetch(&m->rs.holds[who], 1, __ATOMIC_RELEASE);
    if (!total_holds(&m->rs)) {
        set_state(&m->rs, RUN_STATE_RUNNING);
        machine_resume(m);
    }
    return 0;
}

int runstate_release(struct machine *m, enum hold_owner who, struct error *err)
{
    pthread_mutex_lock(&m->rs.lock);
    int rc = release_locked(m, who, err);
    pthread_mutex_unlock(&m->rs.lock);
    return rc;
}

int runstate_operator_resume(struct machine *m, struct error *err)
{
    int rc = 0;
    pthread_mutex_lock(&m->rs.lock);
    enum run_state s = m->rs.state;
    if (s == RUN_STATE_COMPLETING || s == RUN_STATE_HANDOVER) {
        rc = error_set(err, "resume refused: the VM is %s (a %s's final copy)", runstate_name(s),
                       m->rs.holds[HOLD_SAVE] ? "save" : m->rs.holds[HOLD_REPLICATION]
                                                             ? "replication" : "migration");
    } else if ((s == RUN_STATE_POSTCOPY || s == RUN_STATE_POSTCOPY_PAUSED) &&
               m->rs.holds[HOLD_MIGRATION]) {
        rc = error_set(err, "resume refused: the VM is %s: its state is split between this host "
                       "and the post-copy destination, so it must not run here (finish with "
                       "ferry migrate --resume)", runstate_name(s));
    } else {
        for (unsigned i = 0; i < HOLD_OWNERS && rc == 0; i++)
            if (i != HOLD_OPERATOR && m->rs.holds[i])
                rc = error_set(err, "resume refused: the guest is paused by a %s in progress",
                               hold_owner_name((enum hold_owner)i));
        if (rc == 0 && m->rs.holds[HOLD_OPERATOR])
            rc = release_locked(m, HOLD_OPERATOR, err);
    }
    pthread_mutex_unlock(&m->rs.lock);
    return rc;
}

int runstate_hand_to_operator(struct machine *m, enum hold_owner from, enum run_state expect,
                              struct error *err)
{
    int rc = 0;
    pthread_mutex_lock(&m->rs.lock);
    if (!m->rs.holds[from]) {
        rc = error_set(err, "the %s holds no pause", hold_owner_name(from));
    } else if (transition_locked(m, expect, RUN_STATE_PAUSED, err) == 0) {
        __atomic_sub_fetch(&m->rs.holds[from], 1, __ATOMIC_RELEASE);
        __atomic_store_n(&m->rs.holds[HOLD_OPERATOR], 1, __ATOMIC_RELEASE);
    } else {
        rc = -1;
    }
    pthread_mutex_unlock(&m->rs.lock);
    return rc;
}

unsigned runstate_holds(struct machine *m, enum hold_owner who)
{
    return __atomic_load_n(&m->rs.holds[who], __ATOMIC_ACQUIRE);
}
