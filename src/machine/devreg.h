/* The device registry: every piece of migratable state in the machine, in
 * the order a stream carries it (harts, then the platform devices, then
 * the occupied virtio slots), each with its state description and, for
 * devices with output the outside world sees, its replication hooks.
 * Devices are registered as the machine plugs them in; migration
 * (mstate.c) and replication (replicate.c) iterate the registry instead of
 * naming devices. */
#ifndef FERRY_MACHINE_DEVREG_H
#define FERRY_MACHINE_DEVREG_H

#include <stdint.h>

struct machine;
struct vmstate;
struct virtio_dev;
struct repl_hooks;

struct device_entry {
    const struct vmstate *vs;        /* the state description (vs->name in streams) */
    void *state;                     /* the described struct */
    uint32_t instance;               /* hart id, virtio slot, 0 */
    /* A state kept apart from its live object (a hart's wire struct):
     * `prepare` fills it from the object before a save or a load (fields a
     * record lacks keep the live values), `apply` puts a loaded one back
     * and rebuilds derived caches. NULL when `state` is the live state. */
    void (*prepare)(void *state, void *owner);
    void (*apply)(void *state, void *owner);
    void *owner;
    struct virtio_dev *vdev;         /* a virtio device's slot, else NULL */
    const struct repl_hooks *repl;   /* replication hooks, or NULL */
};

#define DEVREG_MAX 32

struct devreg {
    unsigned n;
    struct device_entry dev[DEVREG_MAX];
};

/* The harts and platform devices (aclint, plic, uart). */
void devreg_add_platform(struct machine *m);
/* The virtio device just plugged into `slot`. */
void devreg_add_virtio(struct machine *m, unsigned slot);

#endif
