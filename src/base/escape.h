/* Text from a peer, a stream or a guest goes through here before it reaches
 * a terminal or a log: an ERROR record or a device name could otherwise
 * carry escape sequences that rewrite the operator's screen. */
#ifndef FERRY_BASE_ESCAPE_H
#define FERRY_BASE_ESCAPE_H

#include <stddef.h>

/* Copies at most len bytes of in to out (capacity cap, always
 * NUL-terminated when cap > 0): printable ASCII as is, a backslash as \\,
 * every other byte as \xNN. Stops early rather than cut an escape in half.
 * Returns out. */
char *escape_text(char *out, size_t cap, const void *in, size_t len);

/* Room escape_text needs for len bytes in the worst case (NUL included). */
#define ESCAPED_SIZE(len) ((len) * 4 + 1)

/* A peer's text escaped into a value that lives for one statement:
 *   error_set(err, "source gave up: %s", peer_text(body, len).s);
 * At most PEER_TEXT_MAX bytes of it are kept (an error message is short). */
#define PEER_TEXT_MAX 300
struct peer_text {
    char s[ESCAPED_SIZE(PEER_TEXT_MAX)];
};
struct peer_text peer_text(const void *in, size_t len);

#endif
