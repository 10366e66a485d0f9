/* --tls-cert, --tls-key, --tls-ca and --tls-psk, shared by `ferry run`,
 * `ferry migrate` and `ferry replicate`. Paths are made absolute: the VM
 * process that reads them may run in another directory. */
#include <jansson.h>
#include <limits.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"
#include "transport/tls.h"

int cli_tls_flag(int argc, char **argv, int *i, struct tls_config *c)
{
    static const struct {
        const char *flag;
        size_t offset;
    } flags[] = {
        {"--tls-cert", offsetof(struct tls_config, cert)},
        {"--tls-key", offsetof(struct tls_config, key)},
        {"--tls-ca", offsetof(struct tls_config, ca)},
        {"--tls-psk", offsetof(struct tls_config, psk)},
    };
    for (size_t k = 0; k < sizeof flags / sizeof flags[0]; k++) {
        const char *v;
        int r = cli_flag_value(argc, argv, i, flags[k].flag, &v);
        if (r <= 0) {
            if (r < 0)
                return -1;
            continue;
        }
        char abs[PATH_MAX];
        if (!realpath(v, abs)) {
            cli_error("%s %s: no such file", flags[k].flag, v);
            return -1;
        }
        if (strlen(abs) >= TLS_PATH_MAX) {
            cli_error("%s: the path %s is too long", flags[k].flag, abs);
            return -1;
        }
        strcpy((char *)c + flags[k].offset, abs);
        return 1;
    }
    return 0;
}

/* A URI and the TLS options must agree: tls: needs credentials, and
 * credentials without tls: would silently go unused. */
int cli_tls_check(const char *uri, const struct tls_config *c)
{
    bool tls = strncmp(uri, "tls:", 4) == 0;
    if (!tls && !tls_config_empty(c)) {
        cli_error("--tls-* options need a tls:HOST:PORT address, not '%s'", uri);
        return -1;
    }
    struct error err;
    if (tls && tls_config_check(c, &err) < 0) {
        cli_error("%s", err.msg);
        return -1;
    }
    return 0;
}

json_t *cli_tls_json(const struct tls_config *c)
{
    return json_pack("{s:s, s:s, s:s, s:s}", "cert", c->cert, "key", c->key, "ca", c->ca, "psk",
                     c->psk);
}
