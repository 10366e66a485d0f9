# ferry — build, test and benchmark entry points.
#   make            release build: build/ferry
#   make asan       sanitized build: build/asan/ferry (ASan + UBSan)
#   make tsan       ThreadSanitizer build: build/tsan/ferry and build/tsan/unit/*
#   make guest      guest kernel + initramfs (cached outside the checkout)
#   make test       everything above, then the whole test suite
#   make bench      benchmarks (bench/), printing tables
#   make fuzz       the libFuzzer harnesses for FUZZ_SECONDS each (default 600)

CC ?= gcc
BUILD := build
SRCS := $(wildcard src/*/*.c)
LIB_SRCS := $(filter-out src/cli/%,$(SRCS))
CLI_SRCS := $(filter src/cli/%,$(SRCS))
UNIT_SRCS := $(wildcard tests/unit/*.c)

WARN := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-format-truncation
BASE_CFLAGS := -std=gnu11 $(WARN) -Isrc -g -MMD -MP -D_GNU_SOURCE
LDLIBS := -lfdt -lxxhash -ljansson -lssl -lcrypto -lzstd -lpthread -lm

REL_CFLAGS := $(BASE_CFLAGS) -O2
# float-cast-overflow is not part of gcc's "undefined": a double too large
# for its integer (a client's 1e300) must abort the sanitized build too.
SAN_FLAGS := -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
ASAN_CFLAGS := $(BASE_CFLAGS) -O1 $(SAN_FLAGS)
# -Wno-tsan: TSan does not model fences; virtio's only order device accesses
# to guest RAM against the guest's own, which TSan does not see either.
TSAN_CFLAGS := $(BASE_CFLAGS) -O1 -fsanitize=thread -fno-omit-frame-pointer -Wno-tsan

REL_OBJS := $(patsubst %.c,$(BUILD)/rel/%.o,$(SRCS))
ASAN_OBJS := $(patsubst %.c,$(BUILD)/asan/%.o,$(SRCS))
REL_LIB_OBJS := $(patsubst %.c,$(BUILD)/rel/%.o,$(LIB_SRCS))
ASAN_LIB_OBJS := $(patsubst %.c,$(BUILD)/asan/%.o,$(LIB_SRCS))
TSAN_OBJS := $(patsubst %.c,$(BUILD)/tsan/%.o,$(SRCS))
TSAN_LIB_OBJS := $(patsubst %.c,$(BUILD)/tsan/%.o,$(LIB_SRCS))

.PHONY: all asan tsan guest isa unit test bench demo clean netns-up netns-down fuzz fuzz-build \
	fuzz-smoke
all: $(BUILD)/ferry

$(BUILD)/ferry: $(REL_OBJS)
	$(CC) $(REL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/asan/ferry: $(ASAN_OBJS)
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(LDLIBS)

asan: $(BUILD)/asan/ferry

$(BUILD)/tsan/ferry: $(TSAN_OBJS)
	$(CC) $(TSAN_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tsan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(TSAN_CFLAGS) -c -o $@ $<

$(BUILD)/rel/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(REL_CFLAGS) -c -o $@ $<

$(BUILD)/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -c -o $@ $<

# Unit tests: each tests/unit/NAME.c is a program linked against the
# sanitized library objects.
UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))
$(BUILD)/unit/%: tests/unit/%.c $(ASAN_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -Itests -o $@ $^ $(LDLIBS)
unit: $(UNIT_BINS)

# The same unit tests under ThreadSanitizer (tests/run.py --variant runs them).
TSAN_UNIT_BINS := $(patsubst tests/unit/%.c,$(BUILD)/tsan/unit/%,$(UNIT_SRCS))
$(BUILD)/tsan/unit/%: tests/unit/%.c $(TSAN_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(TSAN_CFLAGS) -Itests -o $@ $^ $(LDLIBS)
tsan: $(BUILD)/tsan/ferry $(TSAN_UNIT_BINS)

# Bare-metal ISA test programs (tests/isa/*.S), built with the cross compiler.
isa:
	$(MAKE) -C tests/isa BUILD=$(abspath $(BUILD))/isa

guest:
	guest/build.sh $(BUILD)/guest

# The suite under ASan/UBSan, then (--variant) the unit tests and the Linux
# tests that exercise threads (SMP boot, a migration, a replication) under
# ThreadSanitizer; one summary line for both.
TSAN_TESTS := unit/,linux/boot/smp_4,linux/migrate/live_memdirty,linux/replicate/switchover,linux/migrate_converge/auto_converge
# Two tests at a time: most of a guest test's time is one busy hart, and CI
# has two cores (tests/run.py --jobs; timing-sensitive tests run alone).
TEST_JOBS ?= 2
NPROC := $(shell nproc 2>/dev/null || echo 2)
# The five builds (release, ASan, TSan, fuzzers, ISA programs) compile in
# parallel whatever flags `make test` was given; the guest has its own.
test:
	$(MAKE) -j$(NPROC) all asan unit isa tsan fuzz-build
	$(MAKE) guest fuzz-smoke
	tests/run.py --jobs $(TEST_JOBS) --ferry $(BUILD)/asan/ferry --variant $(BUILD)/tsan/ferry=$(TSAN_TESTS)

# libFuzzer harnesses (tests/fuzz/README.md), built with clang: the library
# again with coverage, ASan and UBSan; seeds written by make-seeds.
FUZZ_CC := clang
FUZZ_SAN := -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
FUZZ_CFLAGS := $(BASE_CFLAGS) -Wno-unknown-warning-option -Wno-unknown-pragmas -O1 -fsanitize=fuzzer-no-link $(FUZZ_SAN) -Itests/fuzz
FUZZERS := restore incoming standby ctl http
FUZZ_LIB_OBJS := $(patsubst %.c,$(BUILD)/fuzz/obj/%.o,$(LIB_SRCS) tests/fuzz/fuzz_common.c)
FUZZ_BINS := $(patsubst %,$(BUILD)/fuzz/fuzz_%,$(FUZZERS))
.SECONDARY: $(FUZZ_LIB_OBJS) $(patsubst %,$(BUILD)/fuzz/obj/tests/fuzz/fuzz_%.o,$(FUZZERS))
$(BUILD)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c -o $@ $<
$(BUILD)/fuzz/fuzz_%: $(BUILD)/fuzz/obj/tests/fuzz/fuzz_%.o $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)
$(BUILD)/fuzz/make-seeds: tests/fuzz/make_seeds.c $(ASAN_LIB_OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(LDLIBS)
$(BUILD)/fuzz/seeds.stamp: $(BUILD)/fuzz/make-seeds
	rm -rf $(BUILD)/fuzz/seeds
	$(BUILD)/fuzz/make-seeds $(BUILD)/fuzz/seeds
	touch $@
fuzz-build: $(FUZZ_BINS) $(BUILD)/fuzz/seeds.stamp
# In make test: about 60 s in all, fixed seed, fresh corpus from the seeds.
fuzz-smoke: fuzz-build
	tests/fuzz/run.sh smoke $(BUILD)/fuzz 15
FUZZ_SECONDS ?= 600
fuzz: fuzz-build
	tests/fuzz/run.sh long $(BUILD)/fuzz $(FUZZ_SECONDS)

bench: all guest
	bench/run-all.sh

demo: all guest
	scripts/demo.py

# "Two hosts on one machine" network namespaces (docs/two-hosts.md).
netns-up:
	scripts/netns.sh up

netns-down:
	scripts/netns.sh down

clean:
	rm -rf $(BUILD)

-include $(REL_OBJS:.o=.d) $(ASAN_OBJS:.o=.d) $(TSAN_OBJS:.o=.d) $(FUZZ_LIB_OBJS:.o=.d) \
         $(patsubst %,$(BUILD)/fuzz/obj/tests/fuzz/fuzz_%.d,$(FUZZERS))
