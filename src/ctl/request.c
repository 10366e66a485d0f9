#include "ctl/request.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "base/escape.h"
#include "migrate/pagecodec.h"
#include "transport/tls.h"

static const struct {
    const char *name;
    enum ctl_cmd cmd;
} commands[] = {
    {"status", CTL_STATUS}, {"pause", CTL_PAUSE}, {"resume", CTL_RESUME},
    {"migrate", CTL_MIGRATE}, {"save", CTL_SAVE}, {"migrate-status", CTL_MIGRATE_STATUS},
    {"migrate-cancel", CTL_MIGRATE_CANCEL}, {"replicate", CTL_REPLICATE},
    {"replicate-stop", CTL_REPLICATE_STOP}, {"switchover", CTL_SWITCHOVER},
    {"replication-status", CTL_REPLICATION_STATUS}, {"quit", CTL_QUIT},
    {"takeover", CTL_TAKEOVER},
    {"migrate-resume", CTL_MIGRATE_RESUME},
};

bool ctl_cmd_is_priority(enum ctl_cmd cmd)
{
    return cmd == CTL_STATUS || cmd == CTL_MIGRATE_STATUS || cmd == CTL_MIGRATE_CANCEL ||
           cmd == CTL_QUIT || cmd == CTL_TAKEOVER;
}

/* A JSON number, finite, within [min, max]; *out untouched when absent.
 * Returns -1 with a message naming the field otherwise. */
static int number_field(json_t *req, const char *key, double min, double max, const char *unit,
                        double *out, struct error *err)
{
    json_t *v = json_object_get(req, key);
    if (!v)
        return 0;
    double d = json_number_value(v);
    if (!json_is_number(v) || !isfinite(d) || d < min || d > max)
        return error_set(err, "%s must be a number of %s from %g to %g", key, unit, min, max);
    *out = d;
    return 0;
}

static int bool_field(json_t *req, const char *key, bool *out, struct error *err)
{
    json_t *v = json_object_get(req, key);
    if (!v)
        return 0;
    if (!json_is_boolean(v))
        return error_set(err, "%s must be true or false", key);
    *out = json_is_true(v);
    return 0;
}

/* A string field that fits in cap bytes with its prefix; NULL if absent. */
static int string_field(json_t *req, const char *key, const char **out, struct error *err)
{
    json_t *v = json_object_get(req, key);
    *out = NULL;
    if (!v)
        return 0;
    const char *s = json_string_value(v);
    if (!s || !*s)
        return error_set(err, "%s must be a non-empty string", key);
    if (strlen(s) != json_string_length(v))
        return error_set(err, "%s must not contain NUL characters", key);
    *out = s;
    return 0;
}

/* The request's "tls": {"cert", "key", "ca", "psk"} (paths), if any. */
static int tls_from_json(json_t *req, struct tls_config *c, struct error *err)
{
    json_t *t = json_object_get(req, "tls");
    if (!t)
        return 0;
    static const struct {
        const char *name;
        size_t offset;
    } fields[] = {
        {"cert", offsetof(struct tls_config, cert)}, {"key", offsetof(struct tls_config, key)},
        {"ca", offsetof(struct tls_config, ca)}, {"psk", offsetof(struct tls_config, psk)},
    };
    if (!json_is_object(t)) {
        return error_set(err, "\"tls\" must be an object of paths: cert, key, ca or psk");
    }
    for (size_t k = 0; k < sizeof fields / sizeof fields[0]; k++) {
        json_t *v = json_object_get(t, fields[k].name);
        if (!v)
            continue;
        const char *s = json_string_value(v);
        if (!s || strlen(s) >= TLS_PATH_MAX) {
            return error_set(err, "\"tls\" paths must be strings shorter than %d bytes",
                             TLS_PATH_MAX);
        }
        strcpy((char *)c + fields[k].offset, s);
    }
    return 0;
}

/* A network URI for migrate and replicate: what the docs name. */
static bool net_uri(const char *uri)
{
    return strncmp(uri, "tcp:", 4) == 0 || strncmp(uri, "tls:", 4) == 0;
}

static int parse_migrate(json_t *req, bool save, struct migration_params *p, struct error *err)
{
    *p = (struct migration_params){.live = true, .max_downtime_ns = 5000000,
                                   .auto_converge = true, .max_throttle = 99};
    const char *uri;
    if (string_field(req, save ? "file" : "uri", &uri, err) < 0)
        return -1;
    if (!uri)
        return error_set(err, save ? "save needs \"file\"" : "migrate needs \"uri\"");
    if (save) {
        if (strlen(uri) + 5 >= sizeof p->uri)
            return error_set(err, "file name is too long (at most %zu bytes)",
                             sizeof p->uri - 6);
        snprintf(p->uri, sizeof p->uri, "file:%s", uri);
    } else {
        /* Only what docs/control-protocol.md documents: saving to a file
         * is `save`, with its own checks. */
        if (!net_uri(uri))
            return error_set(err, "migrate takes a tcp:HOST:PORT or tls:HOST:PORT uri (use save "
                             "for files)");
        if (strlen(uri) >= sizeof p->uri)
            return error_set(err, "uri is too long (at most %zu bytes)", sizeof p->uri - 1);
        snprintf(p->uri, sizeof p->uri, "%s", uri);
    }
    double ms = 5, bw = 0, version = 0, throttle = 99, after = 0;
    const char *compress = NULL;
    if (bool_field(req, "live", &p->live, err) < 0 ||
        bool_field(req, "auto_converge", &p->auto_converge, err) < 0 ||
        number_field(req, "max_throttle", 1, 99, "a whole percentage", &throttle, err) < 0 ||
        string_field(req, "compress", &compress, err) < 0 ||
        number_field(req, "max_downtime_ms", CTL_MAX_DOWNTIME_MS_MIN, CTL_MAX_DOWNTIME_MS_MAX,
                     "milliseconds", &ms, err) < 0 ||
        number_field(req, "bandwidth", 0, CTL_BANDWIDTH_MAX, "bytes per second (0 = unlimited)",
                     &bw, err) < 0 ||
        bool_field(req, "verify", &p->verify, err) < 0 ||
        bool_field(req, "postcopy", &p->postcopy, err) < 0 ||
        number_field(req, "postcopy_after", 0, 30, "rounds", &after, err) < 0 ||
        bool_field(req, "copy_storage", &p->copy_storage, err) < 0 ||
        number_field(req, "stream_version", 1, 1000, "a stream version", &version, err) < 0)
        return -1;
    if (version != (double)(uint32_t)version)
        return error_set(err, "stream_version must be a whole number");
    if (throttle != (double)(unsigned)throttle)
        return error_set(err, "max_throttle must be a whole percentage from 1 to 99");
    p->max_throttle = (unsigned)throttle;
    if (after != (double)(uint32_t)after)
        return error_set(err, "postcopy_after must be a whole number of rounds");
    p->postcopy_after = (uint32_t)after;
    if (compress && compress_mode_parse(compress, &p->compress) < 0)
        return error_set(err, "compress must be \"auto\", \"zstd\" or \"none\"");
    if (!save && tls_from_json(req, &p->tls, err) < 0)
        return -1;
    p->max_downtime_ns = (uint64_t)(ms * 1e6);
    p->bandwidth = (uint64_t)bw;
    p->stream_version = (uint32_t)version;
    if (save) {
        p->live = false;
        if (bool_field(req, "keep_running", &p->keep_running, err) < 0)
            return -1;
    }
    return 0;
}

/* migrate-resume: an optional new uri for the destination. */
static int parse_resume(json_t *req, struct migration_params *p, struct error *err)
{
    const char *uri;
    if (string_field(req, "uri", &uri, err) < 0)
        return -1;
    if (uri && !net_uri(uri))
        return error_set(err, "migrate-resume takes a tcp:HOST:PORT or tls:HOST:PORT uri");
    if (uri && strlen(uri) >= sizeof p->uri)
        return error_set(err, "uri is too long (at most %zu bytes)", sizeof p->uri - 1);
    snprintf(p->uri, sizeof p->uri, "%s", uri ? uri : "");
    return 0;
}

static int parse_replicate(json_t *req, struct replication_params *p, struct error *err)
{
    *p = (struct replication_params){.interval_ns = 25000000};
    const char *uri;
    double ms = 25;
    if (string_field(req, "uri", &uri, err) < 0)
        return -1;
    if (!uri)
        return error_set(err, "replicate needs \"uri\"");
    if (!net_uri(uri))
        return error_set(err, "replicate takes a tcp:HOST:PORT or tls:HOST:PORT uri");
    if (strlen(uri) >= sizeof p->uri)
        return error_set(err, "uri is too long (at most %zu bytes)", sizeof p->uri - 1);
    snprintf(p->uri, sizeof p->uri, "%s", uri);
    if (number_field(req, "interval_ms", CTL_INTERVAL_MS_MIN, CTL_INTERVAL_MS_MAX,
                     "milliseconds", &ms, err) < 0 ||
        bool_field(req, "copy_storage", &p->copy_storage, err) < 0)
        return -1;
    p->interval_ns = (uint64_t)(ms * 1e6);
    return tls_from_json(req, &p->tls, err);
}

int ctl_parse_request(const char *line, struct ctl_request *out, struct error *err)
{
    json_error_t jerr;
    json_t *req = json_loads(line, JSON_REJECT_DUPLICATES, &jerr);
    int rc = -1;
    memset(out, 0, sizeof *out);
    if (!req || !json_is_object(req)) {
        error_set(err, "request is not a JSON object: %s", req ? "not an object" : jerr.text);
        goto done;
    }
    const char *cmd = json_string_value(json_object_get(req, "cmd"));
    if (!cmd) {
        error_set(err, "request has no \"cmd\"");
        goto done;
    }
    size_t i;
    for (i = 0; i < sizeof commands / sizeof commands[0]; i++)
        if (strcmp(cmd, commands[i].name) == 0)
            break;
    if (i == sizeof commands / sizeof commands[0]) {
        /* The client's text comes back in the answer: keep it printable. */
        error_set(err, "unknown command '%s'", peer_text(cmd, strlen(cmd) > 100 ? 100 : strlen(cmd)).s);
        goto done;
    }
    out->cmd = commands[i].cmd;
    if (out->cmd == CTL_MIGRATE || out->cmd == CTL_SAVE)
        rc = parse_migrate(req, out->cmd == CTL_SAVE, &out->mig, err);
    else if (out->cmd == CTL_REPLICATE)
        rc = parse_replicate(req, &out->repl, err);
    else if (out->cmd == CTL_MIGRATE_RESUME)
        rc = parse_resume(req, &out->mig, err);
    else
        rc = 0;
done:
    json_decref(req);
    return rc;
}
