/* ferry migrate PATH tcp:HOST:PORT: move the VM behind control socket PATH
 * to a destination started with `ferry run --incoming tcp:...`. Shows
 * progress on a terminal and ends with a report (or JSON with --json). */
#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "transport/tls.h"

static void migrate_usage(FILE *out)
{
    fprintf(out,
            "usage: ferry migrate PATH tcp:HOST:PORT|tls:HOST:PORT [options]\n"
            "       ferry migrate --resume PATH [tcp:HOST:PORT|tls:HOST:PORT]\n"
            "\n"
            "  --tls-cert FILE --tls-key FILE --tls-ca FILE\n"
            "                      TLS credentials for a tls: destination (both sides\n"
            "                      verify each other); default: the VM's own, from its\n"
            "                      ferry run --tls-* options\n"
            "  --tls-psk FILE      instead: a pre-shared key in hex (chmod 600)\n"
            "  --compress MODE     none (default), zstd (compress page batches when it\n"
            "                      saves bytes) or auto (only while it saves time, from\n"
            "                      measurements); both send re-sent pages as deltas\n"
            "  --non-live          pause the guest first, then copy (no pre-copy rounds)\n"
            "  --max-downtime T    cap on the pause, e.g. 5ms (default), 300ms, 1s\n"
            "  --bandwidth LIMIT   cap on the copy rate in bytes/s, e.g. 100M, 1G\n"
            "  --verify            compare a hash of all RAM and device state (and, with\n"
            "                      --copy-storage, a SHA-256 of each disk image)\n"
            "  --copy-storage      copy the VM's local disks in the stream: the\n"
            "                      destination receives each into its own --drive\n"
            "                      file=PATH (as PATH.partial, created sparse; renamed to\n"
            "                      PATH when the guest runs there)\n"
            "  --no-auto-converge  never throttle the guest: give up instead when pre-copy\n"
            "                      cannot meet --max-downtime (--auto-converge: the default)\n"
            "  --max-throttle P    most of the time the vCPUs may sleep, e.g. 99%% (default)\n"
            "  --postcopy          when pre-copy cannot meet --max-downtime (after\n"
            "                      auto-converge), switch to post-copy: the guest moves\n"
            "                      at once and fetches its remaining pages on demand\n"
            "  --postcopy-after N  switch to post-copy after N pre-copy rounds (N >= 1)\n"
            "  --resume            finish a post-copy whose connection broke\n"
            "                      (postcopy-paused), to the destination's --incoming\n"
            "                      address again or the one given\n"
            "  --json              print the final report as JSON\n"
            "  --progress-json     progress as JSON lines (several a second), then the\n"
            "                      final report as one line {\"type\": \"report\", ...}\n"
            "\n"
            "--max-downtime is a cap: the guest is never stopped for a final copy predicted\n"
            "to take longer. When rounds do not converge, auto-converge throttles the vCPUs\n"
            "(20 %%, then +10 %% a round); otherwise the migration fails with the guest\n"
            "running here and says what would have converged.\n"
            "\n"
            "During post-copy the source keeps its copy of every page and never runs the\n"
            "guest again; if the source host dies before post-copy ends, the VM is lost\n"
            "(docs/postcopy.md).\n");
}

static double num(json_t *o, const char *key) { return json_number_value(json_object_get(o, key)); }

static void print_report(json_t *mig)
{
    const char *state = json_string_value(json_object_get(mig, "state"));
    printf("migration %s: %s\n", state, json_string_value(json_object_get(mig, "uri")));
    bool postcopy = json_is_true(json_object_get(mig, "postcopy"));
    printf("  mode               %s\n", postcopy ? "live (pre-copy, then post-copy)"
                                    : json_is_true(json_object_get(mig, "live")) ? "live (pre-copy)"
                                                                                : "non-live");
    printf("  total time         %.1f ms\n", num(mig, "total_ms"));
    const char *bound = json_string_value(json_object_get(mig, "downtime_bound_reason"));
    if (bound)
        printf("  downtime           at most %.2f ms (an upper bound, not measured: %s)\n",
               num(mig, "downtime_ms"), bound);
    else
        printf("  downtime           %.2f ms measured (source pause to destination running)\n",
               num(mig, "downtime_ms"));
    if (json_object_get(mig, "handover_ms"))
        printf("  handover           %.2f ms (source pause to RUNNING heard back)\n",
               num(mig, "handover_ms"));
    printf("  predicted downtime %.2f ms (target %.2f ms)%s\n", num(mig, "predicted_downtime_ms"),
           num(mig, "max_downtime_ms"),
           postcopy ? " - switched to post-copy: the pause sent no pages"
           : state && strcmp(state, "completed") == 0 && json_is_true(json_object_get(mig, "live")) &&
                   !json_is_true(json_object_get(mig, "converged"))
               ? " - pre-copy did not converge; stopped and copied anyway" : "");
    if (json_is_true(json_object_get(mig, "live")))
        printf("  throttle           %.0f %% reached (auto-converge %s)\n",
               num(mig, "throttle_max_percent"),
               json_is_true(json_object_get(mig, "auto_converge")) ? "on" : "off");
    printf("  bytes on the wire  %.0f (%.1f MiB)\n", num(mig, "wire_bytes"),
           num(mig, "wire_bytes") / 1048576.0);
    printf("  pages sent         %.0f (%.0f zero pages skipped as flags; RAM has %.0f)\n",
           num(mig, "pages"), num(mig, "zero_pages"), num(mig, "ram_pages"));
    json_t *pc = json_object_get(mig, "postcopy_stats");
    if (pc) {
        printf("  post-copy          %.1f ms; %.0f of %.0f pages sent (%.0f asked for by the "
               "destination)%s\n", num(pc, "time_ms"), num(pc, "sent"), num(pc, "pages"),
               num(pc, "requested"),
               num(pc, "recoveries") > 0 ? ", recovered from a broken connection" : "");
        printf("  fault latency      %.0f pages fetched on demand: median %.3f ms, p99 %.3f ms, "
               "max %.3f ms\n", num(pc, "on_demand_pages"), num(pc, "fault_median_ms"),
               num(pc, "fault_p99_ms"), num(pc, "fault_max_ms"));
    }
    json_t *st = json_object_get(mig, "storage");
    if (st)
        printf("  storage            %.0f disk(s): %.0f blocks sent (%.0f zero blocks as flags), "
               "%.1f MiB of data\n", num(st, "disks"), num(st, "blocks"), num(st, "zero_blocks"),
               num(st, "bytes") / 1048576.0);
    if (json_is_true(json_object_get(mig, "verified")))
        printf("  verified           state hash matched on the destination\n");
    json_t *rounds = json_object_get(mig, "round_table");
    if (json_array_size(rounds)) {
        printf("  %5s %9s %9s %11s %9s %10s %12s %10s %9s\n", "round", "pages", "zero",
               "bytes", "ms", "dirtied", "dirty MB/s", "MB/s", "throttle");
        size_t i;
        json_t *r;
        json_array_foreach(rounds, i, r) {
            printf("  %5.0f %9.0f %9.0f %11.0f %9.2f %10.0f %12.1f %10.1f %7.0f %%\n",
                   num(r, "round"), num(r, "pages"), num(r, "zero_pages"), num(r, "bytes"),
                   num(r, "duration_ms"), num(r, "dirtied"),
                   num(r, "dirty_rate_pages_s") * 4096 / 1e6, num(r, "bandwidth_bytes_s") / 1e6,
                   num(r, "throttle_percent"));
        }
    }
    json_t *z = json_object_get(mig, "compress");
    if (z && strcmp(json_string_value(json_object_get(z, "mode")), "none") != 0) {
        printf("  compression        %s: page records %.1f MiB -> %.1f MiB sent; zstd on %.0f of "
               "%.0f records%s; %.0f re-sent pages as deltas (%.1f KiB)\n",
               json_string_value(json_object_get(z, "mode")), num(z, "page_record_bytes") / 1048576.0,
               num(z, "sent_record_bytes") / 1048576.0, num(z, "zstd_records"),
               num(z, "zstd_records") + num(z, "plain_records"),
               json_is_true(json_object_get(z, "zstd_active")) ? " (on at the end)" : "",
               num(z, "delta_pages"), num(z, "delta_bytes") / 1024.0);
    }
    const char *channel = json_string_value(json_object_get(mig, "channel"));
    if (channel && *channel)
        printf("  channel            %s\n", channel);
    const char *e = json_string_value(json_object_get(mig, "error"));
    if (e)
        printf("  error              %s\n", e);
}

int cmd_migrate(int argc, char **argv)
{
    const char *path = NULL, *uri = NULL;
    bool live = true, verify = false, as_json = false, progress_json = false;
    bool copy_storage = false;
    bool auto_converge = true, postcopy = false, resume = false;
    int max_throttle = 99, postcopy_after = 0;
    double downtime_ns = 5e6;
    uint64_t bandwidth = 0;
    struct tls_config tls;
    memset(&tls, 0, sizeof tls);
    const char *compress = "none";
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if ((r = cli_tls_flag(argc, argv, &i, &tls)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            continue;
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            migrate_usage(stdout);
            return 0;
        } else if (strcmp(argv[i], "--non-live") == 0) {
            live = false;
        } else if (strcmp(argv[i], "--verify") == 0) {
            verify = true;
        } else if (strcmp(argv[i], "--copy-storage") == 0) {
            copy_storage = true;
        } else if (strcmp(argv[i], "--json") == 0) {
            as_json = true;
        } else if (strcmp(argv[i], "--progress-json") == 0) {
            progress_json = true;
        } else if (strcmp(argv[i], "--auto-converge") == 0) {
            auto_converge = true;
        } else if (strcmp(argv[i], "--no-auto-converge") == 0) {
            auto_converge = false;
        } else if (strcmp(argv[i], "--postcopy") == 0) {
            postcopy = true;
        } else if (strcmp(argv[i], "--resume") == 0) {
            resume = true;
        } else if ((r = cli_flag_value(argc, argv, &i, "--postcopy-after", &v)) != 0) {
            char *end;
            if (r < 0)
                return EXIT_USAGE;
            long n = strtol(v, &end, 10);
            if (!isdigit((unsigned char)*v) || *end || n < 1 || n > 30) {
                cli_error("--postcopy-after must be a number of rounds from 1 to 30, not '%s'", v);
                return EXIT_USAGE;
            }
            postcopy_after = (int)n;
        } else if ((r = cli_flag_value(argc, argv, &i, "--max-throttle", &v)) != 0) {
            char *end;
            if (r < 0)
                return EXIT_USAGE;
            long pct = strtol(v, &end, 10);
            if (*end == '%')
                end++;
            if (!isdigit((unsigned char)*v) || *end || pct < 1 || pct > 99) {
                cli_error("--max-throttle must be a percentage from 1%% to 99%%, not '%s'", v);
                return EXIT_USAGE;
            }
            max_throttle = (int)pct;
        } else if ((r = cli_flag_value(argc, argv, &i, "--max-downtime", &v)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            if (cli_parse_duration(v, &downtime_ns) < 0) {
                cli_error("--max-downtime must be a duration like 5ms or 1s, not '%s'", v);
                return EXIT_USAGE;
            }
        } else if ((r = cli_flag_value(argc, argv, &i, "--compress", &v)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            if (strcmp(v, "none") != 0 && strcmp(v, "zstd") != 0 && strcmp(v, "auto") != 0) {
                cli_error("--compress must be auto, zstd or none, not '%s'", v);
                return EXIT_USAGE;
            }
            compress = v;
        } else if ((r = cli_flag_value(argc, argv, &i, "--bandwidth", &v)) != 0) {
            struct error err;
            if (r < 0)
                return EXIT_USAGE;
            if (cli_parse_size(v, &bandwidth, &err) < 0 || bandwidth == 0) {
                cli_error("--bandwidth must be a rate in bytes/s like 100M or 1G, not '%s'", v);
                return EXIT_USAGE;
            }
        } else if (argv[i][0] == '-') {
            cli_error("unknown option '%s' for 'ferry migrate' (try --help)", argv[i]);
            return EXIT_USAGE;
        } else if (!path) {
            path = argv[i];
        } else if (!uri) {
            uri = argv[i];
        } else {
            cli_error("unexpected argument '%s'", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!path || (!uri && !resume)) {
        cli_error("usage: ferry migrate PATH tcp:HOST:PORT [options]");
        return EXIT_USAGE;
    }
    if (uri && strncmp(uri, "tcp:", 4) != 0 && strncmp(uri, "tls:", 4) != 0) {
        cli_error("destination must be tcp:HOST:PORT or tls:HOST:PORT, not '%s'", uri);
        return EXIT_USAGE;
    }
    if (!tls_config_empty(&tls) && cli_tls_check(uri, &tls) < 0)
        return EXIT_USAGE;
    struct error err;
    int fd = ctl_connect(path, &err);
    if (fd < 0) {
        cli_error("%s", err.msg);
        return 1;
    }
    json_t *req;
    if (resume) {
        req = json_pack("{s:s}", "cmd", "migrate-resume");
        if (uri)
            json_object_set_new(req, "uri", json_string(uri));
    } else {
        req = json_pack("{s:s, s:s, s:b, s:f, s:I, s:b, s:b, s:i, s:o, s:s, s:b, s:i, s:b}", "cmd",
                        "migrate", "uri", uri, "live", live, "max_downtime_ms",
                        downtime_ns / 1e6, "bandwidth", (json_int_t)bandwidth, "verify",
                        verify, "auto_converge", auto_converge, "max_throttle", max_throttle,
                        "tls", cli_tls_json(&tls), "compress", compress, "postcopy", postcopy,
                        "postcopy_after", postcopy_after, "copy_storage", copy_storage);
    }
    json_t *resp = ctl_ask(fd, req, &err);
    json_decref(req);
    if (!resp || !json_is_true(json_object_get(resp, "ok"))) {
        cli_error("%s", resp ? json_string_value(json_object_get(resp, "error")) : err.msg);
        json_decref(resp);
        close(fd);
        return 1;
    }
    json_decref(resp);

    bool tty = isatty(STDOUT_FILENO) && !as_json && !progress_json;
    json_t *mig = NULL;
    struct timespec t_start;
    clock_gettime(CLOCK_MONOTONIC, &t_start);
    for (;;) {
        json_t *q = json_pack("{s:s}", "cmd", "migrate-status");
        json_t *st = ctl_ask(fd, q, &err);
        json_decref(q);
        if (!st) {
            cli_error("lost the VM's control socket: %s", err.msg);
            json_decref(mig);
            close(fd);
            return 1;
        }
        json_decref(mig);
        mig = json_incref(json_object_get(st, "migration"));
        json_decref(st);
        const char *state = json_string_value(json_object_get(mig, "state"));
        if (!state || (strcmp(state, "setup") && strcmp(state, "active") &&
                       strcmp(state, "completing") && strcmp(state, "postcopy-active")))
            break;
        /* Within a round too: the status carries the round's progress. */
        if (tty) {
            migrate_progress_line(mig, stdout);
        } else if (progress_json) {
            struct timespec now;
            clock_gettime(CLOCK_MONOTONIC, &now);
            migrate_progress_json(mig, (double)(now.tv_sec - t_start.tv_sec) * 1e3 +
                                  (double)(now.tv_nsec - t_start.tv_nsec) / 1e6, stdout);
        }
        struct timespec ts = {0, 100 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    close(fd);
    if (tty)
        migrate_progress_clear(stdout);
    const char *state = json_string_value(json_object_get(mig, "state"));
    bool completed = state && strcmp(state, "completed") == 0;
    if (progress_json) {
        json_t *line = json_pack("{s:s, s:O}", "type", "report", "migration", mig);
        char *text = json_dumps(line, JSON_COMPACT);
        printf("%s\n", text);
        free(text);
        json_decref(line);
    } else if (as_json) {
        char *text = json_dumps(mig, JSON_INDENT(2));
        printf("%s\n", text);
        free(text);
    } else {
        print_report(mig);
    }
    if (!completed) {
        const char *e = json_string_value(json_object_get(mig, "error"));
        cli_error("migration %s: %s", state ? state : "failed", e ? e : "no reason given");
    }
    json_decref(mig);
    return completed ? 0 : 1;
}

int cmd_save(int argc, char **argv)
{
    const char *path = NULL, *file = NULL;
    bool keep_running = false;
    int stream_version = 0;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: ferry save PATH FILE [--keep-running]\n"
                   "Saves the VM behind control socket PATH to FILE and stops it (or keeps\n"
                   "it running with --keep-running). Resume with: ferry run --restore FILE\n");
            return 0;
        } else if (strcmp(argv[i], "--keep-running") == 0) {
            keep_running = true;
        } else if ((r = cli_flag_value(argc, argv, &i, "--stream-version", &v)) != 0) {
            /* For writing compatibility fixtures of older stream versions. */
            char *end;
            if (r < 0)
                return EXIT_USAGE;
            long sv = strtol(v, &end, 10);
            if (*v == '\0' || *end || sv < 1 || sv > 1000) {
                cli_error("--stream-version must be a stream version number, not '%s'", v);
                return EXIT_USAGE;
            }
            stream_version = (int)sv;
        } else if (argv[i][0] == '-') {
            cli_error("unknown option '%s' for 'ferry save' (try --help)", argv[i]);
            return EXIT_USAGE;
        } else if (!path) {
            path = argv[i];
        } else if (!file) {
            file = argv[i];
        } else {
            cli_error("unexpected argument '%s'", argv[i]);
            return EXIT_USAGE;
        }
    }
    if (!path || !file) {
        cli_error("usage: ferry save PATH FILE [--keep-running]");
        return EXIT_USAGE;
    }
    json_t *req = json_pack("{s:s, s:s, s:b}", "cmd", "save", "file", file, "keep_running",
                            keep_running), *resp;
    if (stream_version)
        json_object_set_new(req, "stream_version", json_integer(stream_version));
    if (ctl_call(path, req, &resp))
        return 1;
    json_t *mig = json_object_get(resp, "migration");
    printf("saved to %s: %.0f bytes, %.0f pages (%.0f zero), %.1f ms\n", file,
           num(mig, "wire_bytes"), num(mig, "pages"), num(mig, "zero_pages"), num(mig, "total_ms"));
    json_decref(resp);
    return 0;
}
