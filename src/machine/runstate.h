/* The VM's run state, and who holds it paused.
 *
 * One enum says what the guest is doing; it changes only through
 * runstate_transition(), which checks the state it leaves, so two threads
 * can never both think they moved it (a `resume` racing a migration's final
 * copy is refused instead of running the guest on two hosts).
 *
 * A pause is a counted hold with an owner: the operator (`ctl pause`), a
 * migration, a save or a replication epoch. The guest runs only when nobody
 * holds it; a holder releases only its own hold, so a replication epoch's
 * end never un-pauses what the operator paused, and `ctl resume` only drops
 * the operator's hold and is refused while a job holds one.
 *
 * Built on machine_pause()/machine_resume(): the first hold parks the vCPU
 * loop, the last release lets it go. Lock order: rs_lock is taken before
 * the machine's ctl_lock (inside machine_pause), never the other way, and
 * never from the vCPU loop. */
#ifndef FERRY_MACHINE_RUNSTATE_H
#define FERRY_MACHINE_RUNSTATE_H

#include <pthread.h>
#include <stdbool.h>

#include "base/error.h"

struct machine;

enum run_state {
    RUN_STATE_INCOMING = 0, /* being loaded from a stream, not run yet */
    RUN_STATE_STANDBY,      /* a standby holding checkpoints */
    RUN_STATE_RUNNING,
    RUN_STATE_PAUSED,       /* someone holds it (see the holds) */
    RUN_STATE_COMPLETING,   /* a job's final copy: the guest must not run */
    RUN_STATE_HANDOVER,     /* the destination has the final state: never run here */
    RUN_STATE_MIGRATED,     /* runs elsewhere now, or was saved and stopped */
    RUN_STATE_SHUTDOWN,     /* powered off or quit */
    /* Post-copy (src/migrate/postcopy.h). Source: the guest runs on the
     * destination, which still lacks pages this host sends; never run
     * here. Destination: the guest runs while its missing pages arrive. */
    RUN_STATE_POSTCOPY,
    /* Post-copy's connection broke: the state is split between the two
     * hosts. The source keeps its pages and never runs the guest; the
     * destination's guest is parked; `ferry migrate --resume` goes on. */
    RUN_STATE_POSTCOPY_PAUSED,
    RUN_STATE_COUNT,
};

enum hold_owner {
    HOLD_OPERATOR = 0,
    HOLD_MIGRATION,
    HOLD_SAVE,
    HOLD_REPLICATION,
    HOLD_ARBITER,     /* the replication arbiter's lease is not surely valid */
    HOLD_OWNERS,
};

struct runstate {
    pthread_mutex_t lock;          /* serializes changes (and the pause they make) */
    enum run_state state;          /* changed under lock, read atomically */
    unsigned holds[HOLD_OWNERS];   /* changed under lock, read atomically */
};

const char *runstate_name(enum run_state s);
const char *hold_owner_name(enum hold_owner who);

void runstate_init(struct runstate *rs, enum run_state initial);
void runstate_destroy(struct runstate *rs);

/* The current state. A machine whose loop was asked to stop (guest
 * poweroff, quit) reads as shut down unless it migrated: that request comes
 * from the vCPU loop, which never takes the runstate lock, and is final. */
enum run_state runstate_get(struct machine *m);

/* Moves from `from` to `to`; fails (naming both) if the state is not
 * `from`. */
int runstate_transition(struct machine *m, enum run_state from, enum run_state to,
                        struct error *err);

/* Takes a hold for `who`: the first hold parks the guest (RUNNING ->
 * PAUSED). The operator holds at most once (a second `pause` is a no-op).
 * Fails if the machine stopped or is not running or paused. */
int runstate_hold(struct machine *m, enum hold_owner who, struct error *err);
/* Drops one hold of `who`; the last hold gone resumes the guest (PAUSED ->
 * RUNNING). Fails if `who` holds nothing or a job's final copy or handover
 * is in progress. */
int runstate_release(struct machine *m, enum hold_owner who, struct error *err);
/* `ctl resume`: drops the operator's hold; refused while a job holds the
 * guest or its final copy or handover runs. No hold: nothing to do. */
int runstate_operator_resume(struct machine *m, struct error *err);
/* A job that ends without knowing whether the guest runs elsewhere hands
 * its hold to the operator (state -> PAUSED): only a person who checked
 * the other host may resume it. */
int runstate_hand_to_operator(struct machine *m, enum hold_owner from, enum run_state expect,
                              struct error *err);
/* Holds of `who` (for tests and status). */
unsigned runstate_holds(struct machine *m, enum hold_owner who);

#endif
