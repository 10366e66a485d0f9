/* Fuzzes the control protocol's request parser (one JSON line). */
#include <stdlib.h>
#include <string.h>

#include "ctl/request.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *line = malloc(size + 1);
    if (!line)
        abort();
    memcpy(line, data, size);
    line[size] = '\0';
    struct ctl_request req;
    struct error err;
    if (ctl_parse_request(line, &req, &err) == 0) {
        /* What the parser accepts must be in range for ctl.c to act on. */
        if ((req.cmd == CTL_MIGRATE || req.cmd == CTL_SAVE) &&
            (req.mig.max_downtime_ns == 0 || req.mig.uri[0] == '\0'))
            abort();
        if (req.cmd == CTL_REPLICATE && req.repl.interval_ns == 0)
            abort();
    }
    free(line);
    return 0;
}
