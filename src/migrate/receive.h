/* Shared by the receiving sides (migration destination, restore, standby):
 * accept a stream, build the machine its MACHINE record describes with the
 * local backends, and report failures back to the sender. */
#ifndef FERRY_MIGRATE_RECEIVE_H
#define FERRY_MIGRATE_RECEIVE_H

#include <stdint.h>

#include "base/error.h"
#include "migrate/stream.h"
#include "transport/transport.h"

struct machine;
struct machine_config;

struct migration_in {
    struct endpoint ep;
    struct stream s;
    uint64_t t_end;  /* when the END record came (vclock_host_ns) */
    uint64_t t_go;   /* when GO came (0: none, e.g. a standby's takeover) */
    uint8_t *zbuf;   /* a PAGES_Z record's PAGES body (pagecodec.h) */
    size_t zcap;
    struct postcopy_recv *pc; /* post-copy's part (postcopy_recv.c), or NULL */
    char uri[256];   /* where it listened: post-copy recovery listens there again */
    struct blockcopy_in *storage; /* --copy-storage: the disks received (blockcopy.h) */
};

/* Listens on uri, accepts one sender, reads the header and MACHINE record,
 * and initialises m (devices quiesced until the guest resumes). */
int receive_open(struct migration_in **out, struct machine *m, struct machine_config *cfg,
                 const char *uri, const char *what, struct error *err);
/* The part of receive_open after the connection: reads the header (and
 * MACHINE record) from in->s and builds m. On failure frees in. Separate
 * for the fuzzers (tests/fuzz), which feed a socketpair or a memfd. */
int receive_handshake(struct migration_in *in, struct machine *m, struct machine_config *cfg,
                      struct error *err);
/* The rest of migration_receive after receive_open: the state, READY,
 * GO. On failure destroys m and frees in; on success m->incoming = in. */
int incoming_complete(struct migration_in *in, struct machine *m, struct error *err);
/* The largest RAM a stream may describe when --max-mem is not given. */
uint64_t receive_default_max_ram(void);
/* Sends ERROR to the sender (if it listens), destroys m, frees in. */
void receive_fail(struct migration_in *in, struct machine *m, const char *msg);
/* Recomputes interrupt lines after device state was loaded. */
void receive_loaded(struct machine *m);
void incoming_free(struct migration_in *in);

#endif
