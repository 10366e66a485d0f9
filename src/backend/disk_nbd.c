/* Placeholder until the NBD client lands. */
#include "backend/disk.h"

int disk_nbd_open(const char *url, bool readonly, struct disk **out, struct error *err)
{
    (void)readonly;
    (void)out;
    return error_set(err, "--drive: NBD backend for %s is not available in this build", url);
}
