/* The unit tests' checks: each CHECK counts, a failed one prints where and
 * what and the test carries on (main returns failures ? 1 : 0), so one run
 * shows every broken expectation, not only the first. */
#ifndef FERRY_TESTS_UNIT_CHECK_H
#define FERRY_TESTS_UNIT_CHECK_H

#include <stdio.h>

static int checks, failures;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        checks++;                                                                      \
        if (!(cond)) {                                                                 \
            failures++;                                                                \
            fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);   \
        }                                                                              \
    } while (0)

#define CHECK_EQ(a, b)                                                                 \
    do {                                                                               \
        unsigned long long a_ = (a), b_ = (b);                                         \
        checks++;                                                                      \
        if (a_ != b_) {                                                                \
            failures++;                                                                \
            fprintf(stderr, "%s:%d: %s == %s: got %#llx, want %#llx\n", __FILE__,      \
                    __LINE__, #a, #b, a_, b_);                                         \
        }                                                                              \
    } while (0)

#endif
