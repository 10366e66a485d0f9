/* Jobs and the machine's job slot (see job.h). */
#include "machine/job.h"

#include <time.h>

#include "machine/machine.h"

const char *job_kind_name(enum job_kind kind)
{
    switch (kind) {
    case JOB_MIGRATE: return "migration";
    case JOB_SAVE: return "save";
    case JOB_REPLICATE: return "replication";
    default: return "job";
    }
}

enum job_family job_family_of(enum job_kind kind)
{
    return kind == JOB_REPLICATE ? JOB_FAMILY_REPLICATION : JOB_FAMILY_MIGRATION;
}

void job_slot_init(struct job_slot *slot)
{
    pthread_mutex_init(&slot->lock, NULL);
    slot->current = NULL;
    for (unsigned i = 0; i < JOB_FAMILIES; i++)
        slot->last[i] = NULL;
}

void job_init(struct job *j, enum job_kind kind, const struct job_ops *ops, struct machine *m)
{
    j->kind = kind;
    j->ops = ops;
    j->m = m;
    pthread_mutex_init(&j->lock, NULL);
    /* Replication waits for epoch deadlines on CLOCK_MONOTONIC. */
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&j->cond, &ca);
    pthread_condattr_destroy(&ca);
    j->refs = 1;
    j->finished = false;
    j->joined = false;
    atomic_init(&j->cancel, false);
}

bool job_is_finished(struct job *j)
{
    pthread_mutex_lock(&j->lock);
    bool done = j->finished;
    pthread_mutex_unlock(&j->lock);
    return done;
}

void job_put(struct job *j)
{
    if (!j)
        return;
    pthread_mutex_lock(&j->lock);
    unsigned left = --j->refs;
    pthread_mutex_unlock(&j->lock);
    if (left == 0) {
        pthread_cond_destroy(&j->cond);
        pthread_mutex_destroy(&j->lock);
        j->ops->destroy(j);
    }
}

static struct job *job_ref(struct job *j)
{
    if (j) {
        pthread_mutex_lock(&j->lock);
        j->refs++;
        pthread_mutex_unlock(&j->lock);
    }
    return j;
}

/* The owner's side: joins a finished job's thread and moves it to the
 * family's "latest" place. Under the slot lock. */
static void reap_locked(struct job_slot *slot)
{
    struct job *j = slot->current;
    if (!j->joined) {
        pthread_join(j->thread, NULL);
        j->joined = true;
    }
    enum job_family f = job_family_of(j->kind);
    job_put(slot->last[f]);
    slot->last[f] = j;
    slot->current = NULL;
}

static int refuse(enum job_kind running, enum job_kind kind, struct error *err)
{
    return error_set(err, "a %s is already running on this VM: one job at a time (%s refused)",
                     job_kind_name(running), job_kind_name(kind));
}

int job_check_idle(struct machine *m, enum job_kind kind, struct error *err)
{
    struct job *j = job_get_running(m);
    if (!j)
        return 0;
    enum job_kind running = j->kind;
    job_put(j);
    return refuse(running, kind, err);
}

int job_start(struct machine *m, struct job *j, void *(*fn)(void *), struct error *err)
{
    struct job_slot *slot = &m->jobs;
    pthread_mutex_lock(&slot->lock);
    if (slot->current && !job_is_finished(slot->current)) {
        enum job_kind running = slot->current->kind;
        pthread_mutex_unlock(&slot->lock);
        return refuse(running, j->kind, err);
    }
    if (slot->current)
        reap_locked(slot);
    if (pthread_create(&j->thread, NULL, fn, j) != 0) {
        pthread_mutex_unlock(&slot->lock);
        return error_set(err, "cannot start the %s thread", job_kind_name(j->kind));
    }
    slot->current = j;
    pthread_mutex_unlock(&slot->lock);
    return 0;
}

struct job *job_get_running(struct machine *m)
{
    pthread_mutex_lock(&m->jobs.lock);
    struct job *j = m->jobs.current;
    if (j && job_is_finished(j))
        j = NULL;
    job_ref(j);
    pthread_mutex_unlock(&m->jobs.lock);
    return j;
}

struct job *job_get(struct machine *m, enum job_family family)
{
    pthread_mutex_lock(&m->jobs.lock);
    struct job *j = m->jobs.current;
    if (!j || job_family_of(j->kind) != family)
        j = m->jobs.last[family];
    job_ref(j);
    pthread_mutex_unlock(&m->jobs.lock);
    return j;
}

void job_finish(struct job *j)
{
    pthread_mutex_lock(&j->lock);
    j->finished = true;
    pthread_cond_broadcast(&j->cond);
    pthread_mutex_unlock(&j->lock);
}

void job_wait(struct job *j)
{
    pthread_mutex_lock(&j->lock);
    while (!j->finished)
        pthread_cond_wait(&j->cond, &j->lock);
    pthread_mutex_unlock(&j->lock);
}

void job_slot_destroy(struct job_slot *slot)
{
    pthread_mutex_lock(&slot->lock);
    if (slot->current) {
        if (!job_is_finished(slot->current))
            slot->current->ops->stop(slot->current);
        reap_locked(slot);
    }
    for (unsigned i = 0; i < JOB_FAMILIES; i++) {
        job_put(slot->last[i]);
        slot->last[i] = NULL;
    }
    pthread_mutex_unlock(&slot->lock);
}
