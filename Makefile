# spt: build with `make`; tests with `make test` (see README).
# SAN=1 builds with AddressSanitizer + UndefinedBehaviorSanitizer into build-san/.

CC ?= cc
SAN ?= 0
ifeq ($(SAN),1)
BUILD ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD ?= build
SANFLAGS :=
endif

CFLAGS ?= -O2 -g
CFLAGS += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -Wshadow -Wno-unused-parameter \
	  -Iinclude -Isrc -MMD -MP $(SANFLAGS)
LDFLAGS += $(SANFLAGS)
LDLIBS := -luring -lisal -lcrypto -lconfig -lpthread

SRCS := $(wildcard src/util/*.c src/iscsi/*.c src/spt/*.c src/scsi/*.c src/providers/*.c)
SRCS += $(wildcard src/ctl/*.c)
OBJS := $(SRCS:%.c=$(BUILD)/obj/%.o)
MAIN_OBJ := $(BUILD)/obj/src/main.o

TEST_SRCS := $(wildcard tests/unit/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

all: $(BUILD)/sptd $(BUILD)/libspt.a

$(BUILD)/sptd: $(MAIN_OBJ) $(OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

# libspt: what an in-process or external provider links against.
$(BUILD)/libspt.a: $(filter $(BUILD)/obj/src/scsi/%,$(OBJS))
	ar rcs $@ $^

$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c -o $@ $<

$(BUILD)/tests/%: tests/unit/%.c $(OBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(OBJS) $(LDLIBS) -lcmocka

unit: $(TEST_BINS)

test: all unit
	tests/run.sh

clean:
	rm -rf build build-san

.PHONY: all unit test clean
-include $(OBJS:.o=.d) $(MAIN_OBJ:.o=.d)

# The load generator of bench/ (libiscsi); not part of `all`: `make bench`.
# Without -Isrc: src/iscsi/ would shadow libiscsi's <iscsi/iscsi.h>.
bench: $(BUILD)/spt-bench

$(BUILD)/spt-bench: bench/spt-bench.c
	@mkdir -p $(dir $@)
	$(CC) $(filter-out -Isrc -Iinclude,$(CFLAGS)) $(LDFLAGS) -o $@ $< -liscsi

.PHONY: bench
-include $(BUILD)/spt-bench.d

# sptctl: the management CLI; speaks the control frames of src/ctl/frame.c.
all: $(BUILD)/sptctl

$(BUILD)/sptctl: $(BUILD)/obj/tools/sptctl.o $(BUILD)/obj/src/ctl/frame.o
	$(CC) $(LDFLAGS) -o $@ $^

-include $(BUILD)/obj/tools/sptctl.d

# libFuzzer harnesses (clang, ASan + UBSan) into build/fuzz/: `make fuzz`; see fuzz/README.md.
fuzz:
	$(MAKE) -f fuzz/Makefile

.PHONY: fuzz

# ---- libspt provider side and spt-memprovider (external providers) ----
# libspt.a also carries the provider-socket library (src/libspt/) and the
# frame codec it shares with sptd's control socket; src/libspt/ is not in
# sptd. The memprovider test runs the real binary, so it is built first.
LIBSPT_SRCS := $(wildcard src/libspt/*.c)
LIBSPT_OBJS := $(LIBSPT_SRCS:%.c=$(BUILD)/obj/%.o)

all: $(BUILD)/spt-memprovider

$(BUILD)/libspt.a: $(LIBSPT_OBJS) $(BUILD)/obj/src/ctl/frame.o

$(BUILD)/spt-memprovider: $(BUILD)/obj/tools/spt-memprovider.o $(BUILD)/obj/src/providers/ram.o \
			  $(BUILD)/libspt.a
	$(CC) $(LDFLAGS) -o $@ $^ -lcrypto -lpthread

$(BUILD)/tests/test_provider: tests/unit/test_provider.c $(BUILD)/libspt.a $(BUILD)/spt-memprovider
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -DMEMPROVIDER_BIN='"$(abspath $(BUILD))/spt-memprovider"' $(LDFLAGS) -o $@ $< \
		$(BUILD)/libspt.a -lcrypto -lpthread -lcmocka

-include $(LIBSPT_OBJS:.o=.d) $(BUILD)/obj/tools/spt-memprovider.d $(BUILD)/tests/test_provider.d
