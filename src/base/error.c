#include "base/error.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

int error_set(struct error *err, const char *fmt, ...)
{
    if (err) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->msg, sizeof err->msg, fmt, ap);
        va_end(ap);
    }
    return -1;
}

int error_prefix(struct error *err, const char *fmt, ...)
{
    if (err) {
        char prefix[256], old[sizeof err->msg];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(prefix, sizeof prefix, fmt, ap);
        va_end(ap);
        memcpy(old, err->msg, sizeof old);
        /* Assemble by hand: a long message is cut at the buffer's end. */
        size_t cap = sizeof err->msg, len = strnlen(prefix, sizeof prefix);
        memcpy(err->msg, prefix, len);
        if (len + 2 < cap) {
            memcpy(err->msg + len, ": ", 2);
            len += 2;
        }
        size_t rest = strnlen(old, sizeof old);
        if (rest > cap - 1 - len)
            rest = cap - 1 - len;
        memcpy(err->msg + len, old, rest);
        err->msg[len + rest] = '\0';
    }
    return -1;
}
