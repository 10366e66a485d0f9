/* Parsing and validating one control-protocol request line, apart from
 * carrying it out: every field a client sends is checked here (types,
 * finite numbers in range, URI schemes), so ctl.c only acts on values
 * that make sense, and the parser can be fuzzed on its own. */
#ifndef FERRY_CTL_REQUEST_H
#define FERRY_CTL_REQUEST_H

#include <stdbool.h>

#include "base/error.h"
#include "migrate/migration.h"
#include "migrate/replication.h"

enum ctl_cmd {
    CTL_STATUS, CTL_PAUSE, CTL_RESUME, CTL_MIGRATE, CTL_SAVE, CTL_MIGRATE_STATUS,
    CTL_MIGRATE_CANCEL, CTL_REPLICATE, CTL_REPLICATE_STOP, CTL_SWITCHOVER,
    CTL_REPLICATION_STATUS, CTL_QUIT, CTL_TAKEOVER, CTL_MIGRATE_RESUME,
};

struct ctl_request {
    enum ctl_cmd cmd;
    struct migration_params mig;     /* migrate, save */
    struct replication_params repl;  /* replicate */
};

/* Limits on numbers (docs/control-protocol.md). */
#define CTL_MAX_DOWNTIME_MS_MIN 0.001      /* 1 us */
#define CTL_MAX_DOWNTIME_MS_MAX 600000.0   /* 10 min */
#define CTL_BANDWIDTH_MAX 1e12             /* bytes/s (1 TB/s) */
#define CTL_INTERVAL_MS_MIN 0.1
#define CTL_INTERVAL_MS_MAX 3600000.0      /* 1 h */

/* Parses line into req; -1 with a message for the client otherwise. */
int ctl_parse_request(const char *line, struct ctl_request *req, struct error *err);

/* Commands served even when every client slot is taken (the reserved
 * slot): what an operator needs to regain control. */
bool ctl_cmd_is_priority(enum ctl_cmd cmd);

#endif
