#include "backend/disk.h"

#include <stdlib.h>
#include <string.h>

int disk_open(const char *spec, struct disk **out, struct error *err)
{
    char *copy = strdup(spec);
    if (!copy)
        return error_set(err, "out of memory");
    bool readonly = false, receiving = false;
    char *target = NULL;
    int rc = -1;
    /* Split "a,b,c" into options; the first names the target. */
    for (char *save = NULL, *opt = strtok_r(copy, ",", &save); opt;
         opt = strtok_r(NULL, ",", &save)) {
        if (!target && (strncmp(opt, "file=", 5) == 0 || strncmp(opt, "nbd://", 6) == 0)) {
            target = opt;
        } else if (strcmp(opt, "readonly=on") == 0 || strcmp(opt, "readonly") == 0) {
            readonly = true;
        } else if (strcmp(opt, "readonly=off") == 0) {
            readonly = false;
        } else if (strcmp(opt, "receiving") == 0) {
            receiving = true; /* a storage copy's destination (src/migrate/blockcopy.c) */
        } else {
            error_set(err, "--drive: unknown option '%s' (expected file=PATH or "
                      "nbd://HOST:PORT/EXPORT, optionally ,readonly=on)", opt);
            goto out;
        }
    }
    if (!target) {
        error_set(err, "--drive: '%s' names no file=PATH or nbd://HOST:PORT/EXPORT", spec);
        goto out;
    }
    size_t n = strlen(target), sn = strlen(DISK_PARTIAL_SUFFIX);
    if (strncmp(target, "file=", 5) == 0 && !receiving && n > sn &&
        strcmp(target + n - sn, DISK_PARTIAL_SUFFIX) == 0) {
        error_set(err, "--drive: %s is an incomplete storage copy (a migration that did not "
                  "finish): refusing to use it", target + 5);
        goto out;
    }
    if (strncmp(target, "file=", 5) == 0)
        rc = disk_file_open(target + 5, readonly, out, err);
    else
        rc = disk_nbd_open(target, readonly, out, err);
out:
    free(copy);
    return rc;
}

void disk_close(struct disk *d)
{
    if (d)
        d->ops->close(d);
}
