/* Placeholder until the file backend lands. */
#include "backend/disk.h"

int disk_file_open(const char *path, bool readonly, struct disk **out, struct error *err)
{
    (void)readonly;
    (void)out;
    return error_set(err, "--drive: file backend for %s is not available in this build", path);
}
