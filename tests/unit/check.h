/* The unit tests' checks: each CHECK counts, a failed one prints where and
 * what and the test carries on (main returns failures ? 1 : 0), so one run
 * shows every broken expectation, not only the first.
 *
 *   CHECK(cond)                       prints the condition when it fails
 *   CHECK(cond, "fmt", args...)       and a printf-style message
 *   CHECK_EQ(a, b)                    prints both values
 *
 * The counters are atomic: threads of a test may check too. */
#ifndef FERRY_TESTS_UNIT_CHECK_H
#define FERRY_TESTS_UNIT_CHECK_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int checks, failures;

/* fmt always starts with ": " (so it is never empty, which -Wformat
 * rejects); that alone means no message was given. */
__attribute__((format(printf, 4, 5), unused))
static void check_failed(const char *file, int line, const char *cond, const char *fmt, ...)
{
    __atomic_fetch_add(&failures, 1, __ATOMIC_RELAXED);
    flockfile(stderr);
    fprintf(stderr, "FAIL %s:%d: check failed: %s", file, line, cond);
    if (strcmp(fmt, ": ") != 0) {
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
    }
    fputc('\n', stderr);
    funlockfile(stderr);
}

#define CHECK(cond, ...)                                                               \
    do {                                                                               \
        __atomic_fetch_add(&checks, 1, __ATOMIC_RELAXED);                              \
        if (!(cond))                                                                   \
            check_failed(__FILE__, __LINE__, #cond, ": " __VA_ARGS__);                 \
    } while (0)

#define CHECK_EQ(a, b)                                                                 \
    do {                                                                               \
        unsigned long long a_ = (a), b_ = (b);                                         \
        __atomic_fetch_add(&checks, 1, __ATOMIC_RELAXED);                              \
        if (a_ != b_)                                                                  \
            check_failed(__FILE__, __LINE__, #a " == " #b, ": got %#llx, want %#llx",  \
                         a_, b_);                                                      \
    } while (0)

#endif
