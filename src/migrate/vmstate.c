#include "migrate/vmstate.h"

#include <stdlib.h>
#include <string.h>

size_t vmstate_size(const struct vmstate *vs, uint32_t version)
{
    size_t n = 0;
    for (const struct vmfield *f = vs->fields; f->name; f++)
        if (f->since <= version)
            n += (size_t)f->width * f->count;
    return n;
}

/* Fields are integers of their width; the host is little-endian like the
 * stream, so an element is copied as is. */
void vmstate_save(const struct vmstate *vs, const void *obj, uint32_t version, uint8_t *buf)
{
    const uint8_t *base = obj;
    for (const struct vmfield *f = vs->fields; f->name; f++) {
        if (f->since > version)
            continue;
        size_t n = (size_t)f->width * f->count;
        memcpy(buf, base + f->offset, n);
        buf += n;
    }
}

/* Decodes buf over a copy of obj and checks it; *out gets the copy (the
 * caller frees it) when it passes. */
static int vmstate_decode(const struct vmstate *vs, const void *obj, uint32_t version,
                          const uint8_t *buf, size_t len, uint8_t **out, struct error *err)
{
    if (version < vs->min_version || version > vs->version)
        return error_set(err, "%s state version %u is not supported (this build loads %u..%u)",
                         vs->name, version, vs->min_version, vs->version);
    size_t want = vmstate_size(vs, version);
    if (len != want)
        return error_set(err, "%s state is %zu bytes, expected %zu for version %u", vs->name,
                         len, want, version);
    /* Work on a copy so a rejected state leaves the live one intact. */
    uint8_t *copy = malloc(vs->size);
    if (!copy)
        return error_set(err, "out of memory loading %s state", vs->name);
    memcpy(copy, obj, vs->size);
    for (const struct vmfield *f = vs->fields; f->name; f++) {
        if (f->since > version)
            continue;
        size_t n = (size_t)f->width * f->count;
        memcpy(copy + f->offset, buf, n);
        buf += n;
    }
    if (vs->check && vs->check(copy, err) < 0) {
        free(copy);
        return error_prefix(err, "%s state rejected", vs->name);
    }
    *out = copy;
    return 0;
}

int vmstate_load(const struct vmstate *vs, void *obj, uint32_t version, const uint8_t *buf,
                 size_t len, struct error *err)
{
    uint8_t *copy;
    if (vmstate_decode(vs, obj, version, buf, len, &copy, err) < 0)
        return -1;
    memcpy(obj, copy, vs->size);
    free(copy);
    return 0;
}

int vmstate_validate(const struct vmstate *vs, const void *obj, uint32_t version,
                     const uint8_t *buf, size_t len, struct error *err)
{
    uint8_t *copy;
    if (vmstate_decode(vs, obj, version, buf, len, &copy, err) < 0)
        return -1;
    free(copy);
    return 0;
}
