/* ThreadSanitizer settings built into the TSan build (make tsan); nothing
 * in other builds. Every suppression below is an intended race, with the
 * reason it is benign. Anything else TSan reports is a bug. */
#if defined(__SANITIZE_THREAD__)

const char *__tsan_default_options(void);
const char *__tsan_default_suppressions(void);

const char *__tsan_default_options(void)
{
    /* Both stacks of a lock-order inversion; a report fails the test that
     * saw it (tests/run.py looks for "ThreadSanitizer" in the output, and
     * the process exits 66). */
    return "second_deadlock_stack=1";
}

const char *__tsan_default_suppressions(void)
{
    return "";
}

#endif
