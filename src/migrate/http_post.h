/* A small HTTP/1.1 client for one thing: POST a JSON body to HOST:PORT and
 * read the answer, within a total deadline, with strict bounds on what it
 * accepts (etcd's v3 JSON gateway, migrate/arbiter_etcd.c).
 *
 * One request per connection ("Connection: close"); the answer is read to
 * the end of the connection or of its declared length. Accepted: a status
 * line "HTTP/1.x NNN", at most HTTP_MAX_HEADER bytes of headers, a body of
 * at most HTTP_MAX_BODY bytes, plain, with Content-Length, or chunked.
 * Anything else is an error, never a guess. */
#ifndef FERRY_MIGRATE_HTTP_POST_H
#define FERRY_MIGRATE_HTTP_POST_H

#include <stddef.h>
#include <stdint.h>

#include "base/error.h"

#define HTTP_MAX_HEADER 8192
#define HTTP_MAX_BODY 65536

struct http_answer {
    int status;                   /* e.g. 200 */
    size_t len;
    char body[HTTP_MAX_BODY + 1]; /* NUL-terminated */
};

/* POSTs body (JSON) to http://host:port/path; waits at most timeout_ms in
 * all (connect, send, receive). 0, or -1 with a message. */
int http_post_json(const char *host, const char *port, const char *path, const char *body,
                   int timeout_ms, struct http_answer *out, struct error *err);

/* Parses a complete answer (got bytes in buf, which has room for one more:
 * it is NUL-terminated and changed in place) into out. Exposed for the
 * fuzzer (tests/fuzz/fuzz_http.c). */
int http_parse_answer(char *buf, size_t got, struct http_answer *out, struct error *err);
/* Splits a chunked body in place; -1 if malformed. Exposed for tests. */
int http_dechunk(char *buf, size_t len, size_t *out_len);

#endif
