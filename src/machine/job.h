/* Jobs: the long operations a VM runs on their own thread (migrate, save,
 * replicate). At most one runs per VM; starting another is refused with a
 * message naming the one that runs.
 *
 * A job is reference counted. The machine's job slot owns one reference
 * and is the only place that joins the thread and drops a finished job
 * (when the next job starts, or when the machine is destroyed). Anyone else
 * who wants to wait for a job or read its status (a `save` request that
 * answers when the file is complete, `switchover`, `replicate-stop`) takes
 * its own reference with job_get(), waits on the job's condition, and puts
 * it back: the job cannot be freed under it, and nobody but the owner joins.
 *
 * Each job type embeds struct job as its first member and uses its lock
 * and condition for its own state. */
#ifndef FERRY_MACHINE_JOB_H
#define FERRY_MACHINE_JOB_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "base/error.h"

struct machine;

enum job_kind { JOB_NONE = 0, JOB_MIGRATE, JOB_SAVE, JOB_REPLICATE };

/* Which status a job reports under: migrate and save share the migration
 * status. */
enum job_family { JOB_FAMILY_MIGRATION = 0, JOB_FAMILY_REPLICATION, JOB_FAMILIES };

struct job;
struct job_ops {
    /* Ask the thread to end soon (the VM is going away); non-blocking. */
    void (*stop)(struct job *j);
    /* Frees the job; called once, when the last reference is put. */
    void (*destroy)(struct job *j);
};

struct job {
    enum job_kind kind;
    const struct job_ops *ops;
    struct machine *m;
    pthread_mutex_t lock;   /* guards the job's state (the embedding type's too) */
    pthread_cond_t cond;    /* CLOCK_MONOTONIC; broadcast on state changes */
    unsigned refs;          /* under lock */
    bool finished;          /* under lock: the thread's work is done */
    bool joined;            /* the owner's: thread joined */
    pthread_t thread;
    atomic_bool cancel;     /* asks the thread to give up */
};

/* The machine's job slot (a field of struct machine). */
struct job_slot {
    pthread_mutex_t lock;
    struct job *current;               /* running or the latest */
    struct job *last[JOB_FAMILIES];    /* the latest finished of each family */
};

const char *job_kind_name(enum job_kind kind);
enum job_family job_family_of(enum job_kind kind);

void job_slot_init(struct job_slot *slot);
/* Stops and joins a running job and drops every job (machine teardown). */
void job_slot_destroy(struct job_slot *slot);

/* Initialises the common part; the caller's reference becomes the slot's
 * once job_start succeeds. */
void job_init(struct job *j, enum job_kind kind, const struct job_ops *ops, struct machine *m);
/* Installs j as the machine's job and starts its thread running fn(j).
 * Refused if another job runs (nothing is started; j is left to the
 * caller, who destroys it). */
int job_start(struct machine *m, struct job *j, void *(*fn)(void *), struct error *err);
/* Fails with job_start's refusal if a job runs: lets a starter report
 * that before checks that the running job's own effects would fail (its
 * pause). job_start still decides, atomically. */
int job_check_idle(struct machine *m, enum job_kind kind, struct error *err);
/* The running job, if any, of any kind: a new reference, or NULL. */
struct job *job_get_running(struct machine *m);
/* The running or latest job of a family: a new reference, or NULL. */
struct job *job_get(struct machine *m, enum job_family family);
void job_put(struct job *j);
/* Called by the job's thread when its work is done (last thing it does
 * with the job). */
void job_finish(struct job *j);
/* Waits until the job finished; the caller holds a reference. */
void job_wait(struct job *j);
bool job_is_finished(struct job *j);

#endif
