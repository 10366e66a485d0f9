/* The control socket of a standby (ferry run --standby ... --control PATH):
 * it serves from the start, before a machine exists, answering from what
 * the standby publishes (migrate/standby_state.h): status, takeover (a
 * manual failover) and quit (end without taking over). */
#include "ctl/standby_ctl.h"

#include "migrate/arbiter_etcd.h"
#include "migrate/standby_state.h"

static const char *phase_name(enum standby_phase p)
{
    static const char *names[] = {"off", "waiting", "syncing", "protecting", "refused",
                                  "taking-over"};
    return p <= STANDBY_TAKING_OVER ? names[p] : "unknown";
}

static json_t *standby_status_json(void)
{
    struct standby_state st;
    standby_state_get(&st);
    json_t *o = json_pack("{s:b, s:s, s:s, s:s, s:I, s:I, s:I, s:I, s:b}", "ok", 1,
                          "role", "standby", "state", phase_name(st.phase), "listen", st.uri,
                          "epoch", (json_int_t)st.epoch,
                          "checkpoint_bytes", (json_int_t)st.checkpoint_bytes,
                          "staged_bytes", (json_int_t)st.staged_bytes,
                          "received_bytes", (json_int_t)st.received_bytes, "fence", st.fence);
    /* Ages only once there is something to be old. */
    json_object_set_new(o, "epoch_age_ms",
                        st.epoch ? json_real((double)st.epoch_age_ns / 1e6) : json_null());
    json_object_set_new(o, "primary", st.primary[0] ? json_string(st.primary) : json_null());
    json_object_set_new(o, "heartbeat_age_ms", st.primary[0]
                                                   ? json_real((double)st.heartbeat_age_ns / 1e6)
                                                   : json_null());
    json_object_set_new(o, "heartbeat_timeout_ms",
                        json_real((double)st.heartbeat_timeout_ns / 1e6));
    json_object_set_new(o, "pending_disk_writes", json_integer((json_int_t)st.pending_writes));
    if (st.arbiter[0]) {
        json_t *arb = arbiter_json();
        json_object_set_new(o, "arbiter", arb ? arb : json_pack("{s:s, s:s}", "state", "none",
                                                                "url", st.arbiter));
    }
    return o;
}

json_t *arbiter_json(void)
{
    struct arbiter_status a;
    arbiter_get_status(&a);
    if (a.state == ARBITER_NONE && !a.url[0])
        return NULL;
    json_t *o = json_pack("{s:s, s:s, s:I, s:I, s:i, s:f, s:f, s:f, s:I, s:I}", "state",
                          arbiter_state_name(a.state), "url", a.url,
                          "fencing_token", (json_int_t)a.token, "lease", (json_int_t)a.lease,
                          "ttl_s", (int)a.ttl_s, "valid_for_ms", a.valid_for_ms,
                          "last_renew_ms", a.last_renew_ms, "max_renew_ms", a.max_renew_ms,
                          "renewals", (json_int_t)a.renewals,
                          "renew_failures", (json_int_t)a.renew_failures);
    if (a.error[0])
        json_object_set_new(o, "error", json_string(a.error));
    return o;
}

static json_t *answer(int rc, const struct error *err)
{
    return rc == 0 ? json_pack("{s:b}", "ok", 1) : json_pack("{s:b, s:s}", "ok", 0, "error",
                                                             err->msg);
}

json_t *standby_ctl_execute(const struct ctl_request *req)
{
    struct error err;
    switch (req->cmd) {
    case CTL_STATUS:
        return standby_status_json();
    case CTL_TAKEOVER:
        return answer(standby_request_takeover(&err), &err);
    case CTL_QUIT:
        return answer(standby_request_quit(&err), &err);
    default:
        return json_pack("{s:b, s:s}", "ok", 0, "error",
                         "this VM is a standby: it answers status, takeover and quit");
    }
}
