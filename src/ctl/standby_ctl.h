/* Control requests to a standby (see standby_ctl.c). */
#ifndef FERRY_CTL_STANDBY_CTL_H
#define FERRY_CTL_STANDBY_CTL_H

#include <jansson.h>

#include "ctl/request.h"

/* The answer to req while this process is a standby. */
json_t *standby_ctl_execute(const struct ctl_request *req);
/* The process's arbiter (migrate/arbiter_etcd.h) as JSON, or NULL. */
json_t *arbiter_json(void);

#endif
