/* Fuzzes the live migration receiver (ferry run --incoming) over a
 * socketpair: handshake, rounds with PING/PONG, final state, READY/GO. */
#include <stdlib.h>

#include "fuzz.h"
#include "migrate/migration.h"
#include "migrate/receive.h"

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
    bool ok = receive_handshake(in, &m, &cfg, &err) == 0 && incoming_complete(in, &m, &err) == 0;
    fuzz_report(ok, &err);
    if (ok) {
        migration_receive_started(&m);
        migration_receive_stop(&m); /* a post-copy's receiver */
        machine_destroy(&m);
    }
    fuzz_feed_join(feeder);
    free(buf);
    return 0;
}
