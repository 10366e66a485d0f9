/* Shared by the subcommands in src/cli/. */
#ifndef FERRY_CLI_CLI_H
#define FERRY_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "base/error.h"

/* Exit status for command-line mistakes (a wrong flag, a bad value). */
#define EXIT_USAGE 2

int cmd_run(int argc, char **argv);
int cmd_ctl(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_save(int argc, char **argv);
int cmd_replicate(int argc, char **argv);
int cmd_switchover(int argc, char **argv);

/* Control-socket client helpers (src/cli/ctl.c). */
int ctl_connect(const char *path, struct error *err);
/* Sends one request line and returns the malloc'd response line. */
char *ctl_request(int fd, const char *line, struct error *err);

/* JSON conveniences on top (jansson). ctl_ask returns the parsed answer or
 * NULL with a message. ctl_call connects to PATH, sends req (consumed) and
 * returns 0 with an "ok": true answer in *resp, or 1 after printing the
 * error line. */
typedef struct json_t json_t;
json_t *ctl_ask(int fd, json_t *req, struct error *err);
int ctl_call(const char *path, json_t *req, json_t **resp);

/* Parses sizes like 256M, 1G, 65536, 64K. */
int cli_parse_size(const char *text, uint64_t *out, struct error *err);

/* Parses durations like 5ms, 300us, 1.5s, 800ns into nanoseconds. */
int cli_parse_duration(const char *text, double *ns);

/* Prints "ferry: <message>" as one line on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Matches `--name VALUE` or `--name=VALUE` at argv[*i]; on a match stores
 * the value, advances *i past it and returns 1. Returns -1 (after printing
 * an error) when the value is missing, 0 when argv[*i] is another flag. */
int cli_flag_value(int argc, char **argv, int *i, const char *name, const char **value);

/* ferry migrate's progress (migrate_progress.c), from a migrate-status
 * "migration" object: a terminal line rewritten in place, its clearing,
 * or one JSON line. */
void migrate_progress_line(json_t *mig, FILE *out);
void migrate_progress_clear(FILE *out);
void migrate_progress_json(json_t *mig, double t_ms, FILE *out);
/* TLS options (src/cli/tls_opts.c). cli_tls_flag matches one --tls-*
 * flag at argv[*i] like cli_flag_value; cli_tls_check says whether the
 * options fit the URI; cli_tls_json is their form in a control request. */
struct tls_config;
int cli_tls_flag(int argc, char **argv, int *i, struct tls_config *c);
int cli_tls_check(const char *uri, const struct tls_config *c);
json_t *cli_tls_json(const struct tls_config *c);

#endif
