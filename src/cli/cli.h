/* Shared by the subcommands in src/cli/. */
#ifndef FERRY_CLI_CLI_H
#define FERRY_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "base/error.h"

/* Exit status for command-line mistakes (a wrong flag, a bad value). */
#define EXIT_USAGE 2

int cmd_run(int argc, char **argv);

/* Parses sizes like 256M, 1G, 65536, 64K. */
int cli_parse_size(const char *text, uint64_t *out, struct error *err);

/* Prints "ferry: <message>" as one line on stderr. */
void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Matches `--name VALUE` or `--name=VALUE` at argv[*i]; on a match stores
 * the value, advances *i past it and returns 1. Returns -1 (after printing
 * an error) when the value is missing, 0 when argv[*i] is another flag. */
int cli_flag_value(int argc, char **argv, int *i, const char *name, const char **value);

#endif
