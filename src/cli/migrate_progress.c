/* ferry migrate's progress: a status line on a terminal, rewritten several
 * times a second within a round, or JSON lines (--progress-json). Both
 * come from the same migrate-status answer. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

static double num(json_t *o, const char *key) { return json_number_value(json_object_get(o, key)); }

/* "pre-copy round 3, throttled 30 %", "stop-and-copy", "setup". */
static void migrate_phase(json_t *mig, char *buf, size_t size)
{
    const char *state = json_string_value(json_object_get(mig, "state"));
    json_t *prog = json_object_get(mig, "progress");
    double throttle = num(mig, "throttle_percent");
    json_t *pc = json_object_get(mig, "postcopy_stats");
    if (state && strcmp(state, "postcopy-active") == 0 && pc)
        snprintf(buf, size, "post-copy %.0f %% received", num(pc, "received_percent"));
    else if (state && strcmp(state, "completing") == 0)
        snprintf(buf, size, "stop-and-copy");
    else if (state && strcmp(state, "active") == 0 && prog && throttle > 0)
        snprintf(buf, size, "pre-copy round %.0f, throttled %.0f %%", num(prog, "round"),
                 throttle);
    else if (state && strcmp(state, "active") == 0 && prog)
        snprintf(buf, size, "pre-copy round %.0f", num(prog, "round"));
    else
        snprintf(buf, size, "%s", state ? state : "?");
}

void migrate_progress_line(json_t *mig, FILE *out)
{
    char phase[64];
    migrate_phase(mig, phase, sizeof phase);
    json_t *prog = json_object_get(mig, "progress");
    if (!prog) {
        fprintf(out, "\r\033[K%s", phase);
        fflush(out);
        return;
    }
    double total = num(prog, "round_pages"), sent = num(prog, "round_sent");
    double eta_ms = num(prog, "round_eta_ms");
    char eta[32];
    if (eta_ms < 0)
        snprintf(eta, sizeof eta, "?");
    else
        snprintf(eta, sizeof eta, "%.1f s", eta_ms / 1e3);
    fprintf(out, "\r\033[K%s  pages %.0f/%.0f (%.0f %%)  %.1f MB/s  round left %s  dirty %.1f MB/s",
            phase, sent, total, total > 0 ? sent * 100 / total : 100.0,
            num(prog, "rate_bytes_s") / 1e6, eta,
            num(mig, "dirty_rate_pages_s") * 4096 / 1e6);
    fflush(out);
}

void migrate_progress_clear(FILE *out)
{
    fprintf(out, "\r\033[K");
    fflush(out);
}

void migrate_progress_json(json_t *mig, double t_ms, FILE *out)
{
    char phase[64];
    migrate_phase(mig, phase, sizeof phase);
    json_t *prog = json_object_get(mig, "progress");
    json_t *o = json_pack("{s:s, s:f, s:s, s:s, s:f, s:f, s:f, s:f}", "type", "progress",
                          "t_ms", t_ms, "state",
                          json_string_value(json_object_get(mig, "state")) ?: "?",
                          "phase", phase, "throttle_percent", num(mig, "throttle_percent"),
                          "dirty_rate_bytes_s", num(mig, "dirty_rate_pages_s") * 4096,
                          "bandwidth_bytes_s", num(mig, "bandwidth_bytes_s"),
                          "rounds_done", num(mig, "rounds"));
    if (prog) {
        json_object_set(o, "round", json_object_get(prog, "round"));
        json_object_set(o, "round_pages", json_object_get(prog, "round_pages"));
        json_object_set(o, "round_sent", json_object_get(prog, "round_sent"));
        json_object_set(o, "rate_bytes_s", json_object_get(prog, "rate_bytes_s"));
        json_object_set(o, "round_eta_ms", json_object_get(prog, "round_eta_ms"));
    }
    char *text = json_dumps(o, JSON_COMPACT);
    fprintf(out, "%s\n", text);
    fflush(out);
    free(text);
    json_decref(o);
}
