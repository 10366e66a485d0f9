/* Declarative descriptions of migratable state.
 *
 * Each device keeps its migratable state in one plain struct and describes
 * it next to itself with a `struct vmstate`: a name, a version, the oldest
 * version it can still load, and its fields (offset, integer width, count,
 * and the version that introduced the field). Saving writes the fields in
 * order as little-endian integers; loading an older version leaves fields
 * introduced later at the value the caller put there (zero after reset).
 * Host resources (fds, threads, pointers) never appear in a description. */
#ifndef FERRY_MIGRATE_VMSTATE_H
#define FERRY_MIGRATE_VMSTATE_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

struct vmfield {
    const char *name;
    size_t offset;
    uint8_t width;       /* bytes per element: 1, 2, 4 or 8 */
    uint32_t count;      /* array length (1 for scalars) */
    uint32_t since;      /* first description version that has the field */
};

struct vmstate {
    const char *name;
    uint32_t version;
    uint32_t min_version;
    size_t size;                   /* sizeof the described struct */
    const struct vmfield *fields;  /* terminated by a field with name NULL */
    /* Checks a loaded copy before it replaces the live state: nothing from a
     * stream is trusted (indexes, sizes, enum values). May be NULL. */
    int (*check)(const void *obj, struct error *err);
};

#define VMFIELD(type, member, since_) \
    {#member, offsetof(type, member), sizeof(((type *)0)->member), 1, since_}
#define VMFIELD_ARRAY(type, member, since_)                                       \
    {#member, offsetof(type, member), sizeof(((type *)0)->member[0]),             \
     sizeof(((type *)0)->member) / sizeof(((type *)0)->member[0]), since_}
#define VMFIELD_END {NULL, 0, 0, 0, 0}

/* Bytes the state takes in a stream at description version `version`. */
size_t vmstate_size(const struct vmstate *vs, uint32_t version);

/* Serializes `obj` at description version `version` (normally
 * vs->version; older only to write compatibility fixtures) into buf
 * (vmstate_size bytes). */
void vmstate_save(const struct vmstate *vs, const void *obj, uint32_t version, uint8_t *buf);

/* Loads `len` bytes saved at `version` into obj. Fails without touching
 * obj when the version is outside [min_version, version], the length does
 * not match, or the description's check rejects the values. */
int vmstate_load(const struct vmstate *vs, void *obj, uint32_t version, const uint8_t *buf,
                 size_t len, struct error *err);
/* vmstate_load's checks without the load: would these bytes load into obj?
 * (A standby checks a whole checkpoint before applying any of it.) */
int vmstate_validate(const struct vmstate *vs, const void *obj, uint32_t version,
                     const uint8_t *buf, size_t len, struct error *err);

#endif
