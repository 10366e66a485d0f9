/* Fuzzes the replication standby (ferry run --standby): the initial copy,
 * staging and applying checkpoints, heartbeats, the switchover. */
#include <stdlib.h>

#include "fuzz.h"
#include "migrate/migration.h"
#include "migrate/receive.h"
#include "migrate/replication.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *buf = fuzz_fix_crcs(data, size, STREAM_HEADER_SIZE);
    struct fuzz_feeder *feeder;
    int fd = fuzz_feed_start(&feeder, buf, size);
    static struct machine m;
    struct machine_config cfg;
    struct error err;
    fuzz_config(&cfg);
    struct migration_in *in = calloc(1, sizeof *in);
    if (!in)
        abort();
    in->ep.fd = fd;
    if (stream_init(&in->s, fd, &err) < 0)
        abort();
    struct standby_params p = {.uri = "tcp:fuzz:1", .heartbeat_timeout_ns = 200000000ull};
    bool ok = receive_handshake(in, &m, &cfg, &err) == 0 && standby_serve(in, &m, &p, &err) == 0;
    fuzz_report(ok, &err);
    if (ok) {
        migration_receive_started(&m);
        machine_destroy(&m);
    }
    fuzz_feed_join(feeder);
    free(buf);
    return 0;
}
