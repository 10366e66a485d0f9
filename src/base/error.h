/* Errors are values: a function that can fail takes a `struct error *` and
 * returns -1 (or NULL) after filling in a one-line, human-readable message. */
#ifndef FERRY_BASE_ERROR_H
#define FERRY_BASE_ERROR_H

struct error {
    char msg[512];
};

/* Formats the message into err (if non-NULL) and returns -1, so callers can
 * write `return error_set(err, "...")`. */
int error_set(struct error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Prefixes an existing message with context: "opening disk: <old message>". */
int error_prefix(struct error *err, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

#endif
