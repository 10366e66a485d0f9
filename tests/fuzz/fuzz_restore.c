/* Fuzzes restoring a save file (ferry run --restore): header, MACHINE
 * record, pages, device and hart state, clock. */
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "fuzz.h"
#include "migrate/migration.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = fuzz_fix_crcs(data, size, STREAM_HEADER_SIZE);
    int fd = memfd_create("fuzz-save", MFD_CLOEXEC);
    if (fd < 0 || write(fd, buf, size) != (ssize_t)size)
        abort();
    free(buf);
    char uri[64];
    snprintf(uri, sizeof uri, "file:/proc/self/fd/%d", fd);
    static struct machine m;
    struct machine_config cfg;
    struct error err;
    fuzz_config(&cfg);
    bool ok = migration_receive(&m, &cfg, uri, &err) == 0;
    fuzz_report(ok, &err);
    if (ok) {
        migration_receive_started(&m);
        machine_destroy(&m);
    }
    close(fd);
    return 0;
}
