/* Control requests to a standby (see standby_ctl.c). */
#ifndef FERRY_CTL_STANDBY_CTL_H
#define FERRY_CTL_STANDBY_CTL_H

#include <jansson.h>

#include "ctl/request.h"

/* The answer to req while this process is a standby. */
json_t *standby_ctl_execute(const struct ctl_request *req);

#endif
