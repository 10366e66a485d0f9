/* ferry replicate PATH tcp:HOST:PORT [--interval 25ms]: protect the VM
 * behind control socket PATH with a standby (ferry run --standby ...).
 * ferry replicate PATH --stop ends protection; ferry replicate PATH
 * --status shows it. ferry switchover PATH moves the VM to the standby. */
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli/cli.h"
#include "transport/tls.h"

static void print_replication(json_t *r)
{
    char *text = json_dumps(r, JSON_INDENT(2));
    printf("%s\n", text);
    free(text);
}

int cmd_replicate(int argc, char **argv)
{
    const char *path = NULL, *uri = NULL;
    bool stop = false, status = false, copy_storage = false;
    double interval_ms = 25;
    struct tls_config tls;
    memset(&tls, 0, sizeof tls);
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r;
        if ((r = cli_tls_flag(argc, argv, &i, &tls)) != 0) {
            if (r < 0)
                return EXIT_USAGE;
            continue;
        }
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            printf("usage: ferry replicate PATH tcp:HOST:PORT|tls:HOST:PORT [--interval 25ms]\n"
                   "         [--tls-cert FILE --tls-key FILE --tls-ca FILE | --tls-psk FILE]\n"
                   "         [--copy-storage]  the standby keeps its own copy of the disks\n"
                   "                           (into its --drive file=PATH, as PATH.partial\n"
                   "                           until it takes over)\n"
                   "       ferry replicate PATH --stop | --status\n"
                   "The standby runs: ferry run --standby tcp:ADDR:PORT [--fence CMD]\n"
                   "(tls: on both sides; without --tls-* here the VM's own credentials,\n"
                   "from its ferry run --tls-*, are used)\n");
            return 0;
        } else if (strcmp(argv[i], "--stop") == 0) {
            stop = true;
        } else if (strcmp(argv[i], "--status") == 0) {
            status = true;
        } else if (strcmp(argv[i], "--copy-storage") == 0) {
            copy_storage = true;
        } else if ((r = cli_flag_value(argc, argv, &i, "--interval", &v)) != 0) {
            double ns;
            if (r < 0)
                return EXIT_USAGE;
            if (cli_parse_duration(v, &ns) < 0) {
                cli_error("--interval must be a duration like 25ms, not '%s'", v);
                return EXIT_USAGE;
            }
            interval_ms = ns / 1e6;
        } else if (argv[i][0] == '-') {
            cli_error("unknown option '%s' for 'ferry replicate' (try --help)", argv[i]);
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
    if (!path || (!stop && !status && !uri)) {
        cli_error("usage: ferry replicate PATH tcp:HOST:PORT [--interval 25ms] | --stop | --status");
        return EXIT_USAGE;
    }
    json_t *resp;
    if (stop || status) {
        if (ctl_call(path, json_pack("{s:s}", "cmd", stop ? "replicate-stop" : "replication-status"),
                     &resp))
            return 1;
        if (status)
            print_replication(json_object_get(resp, "replication"));
        else
            printf("replication stopped: the VM runs unprotected\n");
        json_decref(resp);
        return 0;
    }
    if (strncmp(uri, "tcp:", 4) != 0 && strncmp(uri, "tls:", 4) != 0) {
        cli_error("standby must be tcp:HOST:PORT or tls:HOST:PORT, not '%s'", uri);
        return EXIT_USAGE;
    }
    if (!tls_config_empty(&tls) && cli_tls_check(uri, &tls) < 0)
        return EXIT_USAGE;
    if (ctl_call(path, json_pack("{s:s, s:s, s:f, s:o, s:b}", "cmd", "replicate", "uri", uri,
                                 "interval_ms", interval_ms, "tls", cli_tls_json(&tls),
                                 "copy_storage", copy_storage), &resp))
        return 1;
    json_decref(resp);
    /* Wait until the first checkpoint is acknowledged (or it fails). */
    for (int tries = 0; tries < 6000; tries++) {
        if (ctl_call(path, json_pack("{s:s}", "cmd", "replication-status"), &resp))
            return 1;
        const char *state = json_string_value(json_object_get(json_object_get(resp, "replication"), "state"));
        if (state && strcmp(state, "syncing") != 0) {
            bool protected_ = strcmp(state, "protected") == 0;
            if (protected_)
                printf("protected: standby %s has checkpoint %lld, every %.0f ms\n", uri,
                       json_integer_value(json_object_get(json_object_get(resp, "replication"), "acked_epoch")),
                       interval_ms);
            else
                cli_error("replication %s: %s", state,
                          json_string_value(json_object_get(json_object_get(resp, "replication"), "error")) ?: "");
            json_decref(resp);
            return protected_ ? 0 : 1;
        }
        json_decref(resp);
        struct timespec ts = {0, 10 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    cli_error("the standby did not acknowledge a first checkpoint within a minute");
    return 1;
}

int cmd_switchover(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: ferry switchover PATH\n"
               "Moves a replicated VM to its standby: one last checkpoint, then the standby\n"
               "runs the guest and this VM ends.\n");
        return 0;
    }
    if (argc != 2) {
        cli_error("usage: ferry switchover PATH");
        return EXIT_USAGE;
    }
    json_t *resp;
    if (ctl_call(argv[1], json_pack("{s:s}", "cmd", "switchover"), &resp))
        return 1;
    json_t *r = json_object_get(resp, "replication");
    const char *bound = json_string_value(json_object_get(r, "switchover_downtime_bound_reason"));
    /* Say what the figure is: measured, or an upper bound and why. */
    printf("switched over to %s: downtime %s%.2f ms (%s%s; one checkpoint of %lld bytes)\n",
           json_string_value(json_object_get(r, "uri")), bound ? "at most " : "",
           json_number_value(json_object_get(r, "switchover_downtime_ms")),
           bound ? "an upper bound: " : "measured", bound ? bound : "",
           json_integer_value(json_object_get(r, "last_checkpoint_bytes")));
    json_decref(resp);
    return 0;
}
