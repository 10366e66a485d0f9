/* Registered readers of the dirty log (see dirty_reader.h). */
#include "machine/dirty_reader.h"

#include "machine/machine.h"

void dirty_registry_init(struct dirty_registry *reg)
{
    pthread_mutex_init(&reg->lock, NULL);
    reg->reader = NULL;
}

void dirty_registry_destroy(struct dirty_registry *reg)
{
    pthread_mutex_destroy(&reg->lock);
}

int dirty_reader_open(struct machine *m, struct dirty_reader *r, const char *owner,
                      struct error *err)
{
    struct dirty_registry *reg = &m->dirty_readers;
    int rc = 0;
    pthread_mutex_lock(&reg->lock);
    if (reg->reader)
        rc = error_set(err, "the dirty log is being read by a %s: a %s cannot start",
                       reg->reader->owner, owner);
    else {
        r->m = m;
        r->owner = owner;
        reg->reader = r;
    }
    pthread_mutex_unlock(&reg->lock);
    return rc;
}

int64_t dirty_reader_harvest(struct dirty_reader *r, uint64_t *out, struct error *err)
{
    struct dirty_registry *reg = &r->m->dirty_readers;
    int64_t n;
    pthread_mutex_lock(&reg->lock);
    if (reg->reader != r) {
        n = error_set(err, "the %s is not the dirty log's registered reader", r->owner);
    } else {
        n = machine_dirty_sync_remote(r->m, out);
        if (n < 0)
            error_set(err, "the machine stopped");
    }
    pthread_mutex_unlock(&reg->lock);
    return n;
}

void dirty_reader_close(struct dirty_reader *r)
{
    if (!r->m)
        return;
    struct dirty_registry *reg = &r->m->dirty_readers;
    pthread_mutex_lock(&reg->lock);
    if (reg->reader == r)
        reg->reader = NULL;
    pthread_mutex_unlock(&reg->lock);
    r->m = NULL;
}
