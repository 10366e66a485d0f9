/* ferry ctl PATH COMMAND...: send raw requests to a VM's control socket.
 *   ferry ctl /run/vm.sock status
 *   ferry ctl /run/vm.sock '{"cmd":"migrate","uri":"tcp:10.0.0.2:4444"}'
 * A bare word becomes {"cmd":"WORD"}; KEY=VALUE words after it become
 * fields (numbers and true/false as such, everything else as strings).
 * Prints each response line; exits 1 if any response says "ok": false. */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "cli/cli.h"

int ctl_connect(const char *path, struct error *err)
{
    struct sockaddr_un addr = {.sun_family = AF_UNIX};
    if (strlen(path) >= sizeof addr.sun_path)
        return error_set(err, "control socket path '%s' is too long", path);
    memcpy(addr.sun_path, path, strlen(path) + 1);
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0 || connect(fd, (struct sockaddr *)&addr, sizeof addr) < 0) {
        int e = errno;
        if (fd >= 0)
            close(fd);
        return error_set(err, "cannot reach the VM's control socket %s: %s", path, strerror(e));
    }
    return fd;
}

char *ctl_request(int fd, const char *line, struct error *err)
{
    size_t len = strlen(line);
    if (send(fd, line, len, MSG_NOSIGNAL) != (ssize_t)len || send(fd, "\n", 1, MSG_NOSIGNAL) != 1) {
        error_set(err, "control socket: %s", strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap);
    while (buf) {
        if (n + 1 == cap) {
            char *nb = realloc(buf, cap *= 2);
            if (!nb)
                break;
            buf = nb;
        }
        ssize_t r = read(fd, buf + n, 1);
        if (r <= 0) {
            error_set(err, "the VM closed the control connection");
            free(buf);
            return NULL;
        }
        if (buf[n] == '\n') {
            buf[n] = '\0';
            return buf;
        }
        n++;
    }
    free(buf);
    error_set(err, "out of memory");
    return NULL;
}

json_t *ctl_ask(int fd, json_t *req, struct error *err)
{
    char *line = json_dumps(req, JSON_COMPACT);
    char *resp = ctl_request(fd, line, err);
    free(line);
    if (!resp)
        return NULL;
    json_t *j = json_loads(resp, 0, NULL);
    free(resp);
    if (!j)
        error_set(err, "the VM answered something that is not JSON");
    return j;
}

int ctl_call(const char *path, json_t *req, json_t **resp_out)
{
    struct error err;
    int fd = ctl_connect(path, &err);
    json_t *j = fd < 0 ? NULL : ctl_ask(fd, req, &err);
    json_decref(req);
    if (fd >= 0)
        close(fd);
    if (!j) {
        cli_error("%s", err.msg);
        return 1;
    }
    if (!json_is_true(json_object_get(j, "ok"))) {
        const char *e = json_string_value(json_object_get(j, "error"));
        cli_error("%s", e ? e : "the VM's answer was not understood");
        json_decref(j);
        return 1;
    }
    *resp_out = j;
    return 0;
}

static json_t *word_value(const char *v)
{
    char *end;
    double d = strtod(v, &end);
    if (*v && !*end)
        return json_real(d);
    if (strcmp(v, "true") == 0)
        return json_true();
    if (strcmp(v, "false") == 0)
        return json_false();
    return json_string(v);
}

int cmd_ctl(int argc, char **argv)
{
    if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        printf("usage: ferry ctl PATH COMMAND [KEY=VALUE...]\n"
               "       ferry ctl PATH '{\"cmd\":\"status\"}'\n"
               "commands: status pause resume migrate migrate-status migrate-cancel save quit\n"
               "          takeover (a standby: manual failover)\n"
               "(see docs/control-protocol.md)\n");
        return 0;
    }
    if (argc < 3) {
        cli_error("usage: ferry ctl PATH COMMAND [KEY=VALUE...]");
        return EXIT_USAGE;
    }
    char *line;
    if (argv[2][0] == '{') {
        line = strdup(argv[2]);
    } else {
        json_t *req = json_pack("{s:s}", "cmd", argv[2]);
        for (int i = 3; i < argc; i++) {
            char *eq = strchr(argv[i], '=');
            if (!eq || eq == argv[i]) {
                json_decref(req);
                cli_error("'%s' is not KEY=VALUE", argv[i]);
                return EXIT_USAGE;
            }
            *eq = '\0';
            json_object_set_new(req, argv[i], word_value(eq + 1));
        }
        line = json_dumps(req, JSON_COMPACT);
        json_decref(req);
    }
    struct error err;
    int fd = ctl_connect(argv[1], &err);
    if (fd < 0) {
        free(line);
        cli_error("%s", err.msg);
        return 1;
    }
    char *resp = ctl_request(fd, line, &err);
    free(line);
    close(fd);
    if (!resp) {
        cli_error("%s", err.msg);
        return 1;
    }
    printf("%s\n", resp);
    json_t *j = json_loads(resp, 0, NULL);
    int rc = j && json_is_true(json_object_get(j, "ok")) ? 0 : 1;
    json_decref(j);
    free(resp);
    return rc;
}
