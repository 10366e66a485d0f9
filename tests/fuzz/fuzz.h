/* Shared by the libFuzzer harnesses (tests/fuzz/README.md). */
#ifndef FERRY_TESTS_FUZZ_H
#define FERRY_TESTS_FUZZ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "machine/machine.h"
#include "migrate/stream.h"

/* RAM a fuzzed stream may describe: big enough for the seeds, small
 * enough that thousands of executions per second stay cheap. */
#define FUZZ_MAX_RAM (32ull << 20)

/* A malloc'd copy of data with every complete record's CRC-32C
 * recomputed, so mutations reach the parsers instead of the CRC check.
 * `offset` is where records start (STREAM_HEADER_SIZE for a stream). */
uint8_t *fuzz_fix_crcs(const uint8_t *data, size_t size, size_t offset);

/* The configuration a receiving side starts with (no boot images, console
 * none, the RAM bound above). */
void fuzz_config(struct machine_config *cfg);

/* With FERRY_FUZZ_VERBOSE set (replaying one input by hand), prints
 * whether the input was accepted, or why not. */
void fuzz_report(bool accepted, const struct error *err);

/* Feeds data into one end of a socketpair from a thread (then drains
 * whatever the receiver answers) and returns the other end. */
struct fuzz_feeder;
int fuzz_feed_start(struct fuzz_feeder **out, const uint8_t *data, size_t size);
void fuzz_feed_join(struct fuzz_feeder *f);

#endif
