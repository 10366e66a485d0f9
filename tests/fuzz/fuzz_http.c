/* Fuzzes the replication arbiter's HTTP answer parser (an etcd member's
 * answer: status line, headers, plain or chunked body). */
#include <stdlib.h>
#include <string.h>

#include "migrate/http_post.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > HTTP_MAX_HEADER + HTTP_MAX_BODY + 64)
        return 0; /* the client never reads more */
    char *buf = malloc(size + 1);
    struct http_answer *ans = malloc(sizeof *ans);
    if (!buf || !ans)
        abort();
    memcpy(buf, data, size);
    struct error err;
    if (http_parse_answer(buf, size, ans, &err) == 0) {
        if (ans->len > HTTP_MAX_BODY || ans->body[ans->len] != '\0' || ans->status < 100 ||
            ans->status > 599)
            abort();
    }
    free(buf);
    free(ans);
    return 0;
}
