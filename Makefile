# ferry — build, test and benchmark entry points.
#   make            release build: build/ferry
#   make asan       sanitized build: build/asan/ferry (ASan + UBSan)
#   make guest      guest kernel + initramfs (cached outside the checkout)
#   make test       everything above, then the whole test suite
#   make bench      benchmarks (bench/), printing tables

CC ?= gcc
BUILD := build
SRCS := $(wildcard src/*/*.c)
LIB_SRCS := $(filter-out src/cli/%,$(SRCS))
CLI_SRCS := $(filter src/cli/%,$(SRCS))
UNIT_SRCS := $(wildcard tests/unit/*.c)

WARN := -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter -Wno-format-truncation
BASE_CFLAGS := -std=gnu11 $(WARN) -Isrc -g -MMD -MP -D_GNU_SOURCE
LDLIBS := -lfdt -lxxhash -ljansson -lpthread -lm

REL_CFLAGS := $(BASE_CFLAGS) -O2
# float-cast-overflow is not part of gcc's "undefined": a double too large
# for its integer (a client's 1e300) must abort the sanitized build too.
SAN_FLAGS := -fsanitize=address,undefined,float-cast-overflow -fno-sanitize-recover=all \
	-fno-omit-frame-pointer
ASAN_CFLAGS := $(BASE_CFLAGS) -O1 $(SAN_FLAGS)

REL_OBJS := $(patsubst %.c,$(BUILD)/rel/%.o,$(SRCS))
ASAN_OBJS := $(patsubst %.c,$(BUILD)/asan/%.o,$(SRCS))
REL_LIB_OBJS := $(patsubst %.c,$(BUILD)/rel/%.o,$(LIB_SRCS))
ASAN_LIB_OBJS := $(patsubst %.c,$(BUILD)/asan/%.o,$(LIB_SRCS))

.PHONY: all asan guest isa unit test bench demo clean netns-up netns-down
all: $(BUILD)/ferry

$(BUILD)/ferry: $(REL_OBJS)
	$(CC) $(REL_CFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/asan/ferry: $(ASAN_OBJS)
	$(CC) $(ASAN_CFLAGS) -o $@ $^ $(LDLIBS)

asan: $(BUILD)/asan/ferry

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

# Bare-metal ISA test programs (tests/isa/*.S), built with the cross compiler.
isa:
	$(MAKE) -C tests/isa BUILD=$(abspath $(BUILD))/isa

guest:
	guest/build.sh $(BUILD)/guest

test: all asan unit isa guest
	tests/run.py --ferry $(BUILD)/asan/ferry

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

-include $(REL_OBJS:.o=.d) $(ASAN_OBJS:.o=.d)
