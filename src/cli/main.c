/* ferry: a virtual machine monitor for RISC-V guests that moves running VMs
 * between hosts. One source file per subcommand. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

void cli_error(const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    /* One line, always: newlines inside a message would break scripts
     * that read the first line of stderr. */
    for (char *p = msg; *p; p++)
        if (*p == '\n')
            *p = ' ';
    fprintf(stderr, "ferry: %s\n", msg);
}

int cli_parse_size(const char *text, uint64_t *out, struct error *err)
{
    char *end;
    if (!text || !*text || *text == '-')
        return error_set(err, "invalid size '%s'", text ? text : "");
    unsigned long long v = strtoull(text, &end, 10);
    if (end == text)
        return error_set(err, "invalid size '%s' (expected e.g. 256M or 1G)", text);
    unsigned shift = 0;
    switch (*end) {
    case 'k': case 'K': shift = 10; end++; break;
    case 'm': case 'M': shift = 20; end++; break;
    case 'g': case 'G': shift = 30; end++; break;
    case '\0': break;
    default: return error_set(err, "invalid size '%s' (expected e.g. 256M or 1G)", text);
    }
    if (*end == 'i' && shift) end++;
    if (*end == 'B' || *end == 'b') end++;
    if (*end != '\0')
        return error_set(err, "invalid size '%s' (expected e.g. 256M or 1G)", text);
    if (v > (UINT64_MAX >> shift))
        return error_set(err, "size '%s' is too large", text);
    *out = (uint64_t)v << shift;
    return 0;
}

int cli_parse_duration(const char *text, double *ns)
{
    char *end;
    double v = strtod(text, &end);
    /* A day at most: callers convert to integer nanoseconds. */
    if (end == text || !(v > 0) || v > 86400e9)
        return -1;
    if (strcmp(end, "ms") == 0) *ns = v * 1e6;
    else if (strcmp(end, "us") == 0) *ns = v * 1e3;
    else if (strcmp(end, "s") == 0) *ns = v * 1e9;
    else if (strcmp(end, "ns") == 0) *ns = v;
    else return -1;
    if (*ns > 86400e9)
        return -1;
    return 0;
}

int cli_flag_value(int argc, char **argv, int *i, const char *name, const char **value)
{
    size_t n = strlen(name);
    const char *arg = argv[*i];
    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '=') {
        *value = arg + n + 1;
        return 1;
    }
    if (arg[n] != '\0')
        return 0;
    if (*i + 1 >= argc) {
        cli_error("%s needs a value (see 'ferry run --help')", name);
        return -1;
    }
    *value = argv[++*i];
    return 1;
}

static void usage(FILE *out)
{
    fprintf(out,
            "usage: ferry <command> [options]\n"
            "\n"
            "commands:\n"
            "  run       boot a virtual machine (default: the built-in Linux guest)\n"
            "  migrate   move a running VM to another host (live by default)\n"
            "  save      save a running VM to a file (restore with run --restore)\n"
            "  replicate protect a running VM with a standby on another host\n"
            "  switchover move a replicated VM to its standby\n"
            "  ctl       send raw requests to a VM's control socket\n"
            "\n"
            "'ferry <command> --help' describes a command's options.\n");
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (strcmp(cmd, "--help") == 0 || strcmp(cmd, "-h") == 0 || strcmp(cmd, "help") == 0) {
        usage(stdout);
        return 0;
    }
    if (strcmp(cmd, "run") == 0)
        return cmd_run(argc - 1, argv + 1);
    if (strcmp(cmd, "ctl") == 0)
        return cmd_ctl(argc - 1, argv + 1);
    if (strcmp(cmd, "migrate") == 0)
        return cmd_migrate(argc - 1, argv + 1);
    if (strcmp(cmd, "save") == 0)
        return cmd_save(argc - 1, argv + 1);
    if (strcmp(cmd, "replicate") == 0)
        return cmd_replicate(argc - 1, argv + 1);
    if (strcmp(cmd, "switchover") == 0)
        return cmd_switchover(argc - 1, argv + 1);
    cli_error("unknown command '%s' (try 'ferry --help')", cmd);
    return EXIT_USAGE;
}
