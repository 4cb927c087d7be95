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
LDLIBS := -luring -lisal -lcrypto -lconfig -lpthread -lmicrohttpd -lrbd -lrados

SRCS := $(wildcard src/util/*.c src/iscsi/*.c src/spt/*.c src/scsi/*.c src/providers/*.c)
SRCS += $(wildcard src/ctl/*.c)
OBJS := $(SRCS:%.c=$(BUILD)/obj/%.o)
MAIN_OBJ := $(BUILD)/obj/src/main.o $(BUILD)/obj/src/sptd_conf.o

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

# ---- install / uninstall ----------------------------------------------------
# `make install [PREFIX=/usr/local] [DESTDIR=/staging]`: sptd and sptctl
# (admin tools: sbin), spt-memprovider (bin), libspt.a with its headers and
# pkg-config file, man pages, the systemd unit, the docs and examples.
# No root needed with a DESTDIR; `make uninstall` takes the same variables.
PREFIX ?= /usr/local
BINDIR ?= $(PREFIX)/bin
SBINDIR ?= $(PREFIX)/sbin
LIBDIR ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
DATADIR ?= $(PREFIX)/share
MANDIR ?= $(DATADIR)/man
DOCDIR ?= $(DATADIR)/doc/spt
PKGCONFIGDIR ?= $(LIBDIR)/pkgconfig
# under the prefix: systemd reads /usr/lib/systemd/system and /usr/local/lib/systemd/system
SYSTEMDUNITDIR ?= $(PREFIX)/lib/systemd/system
# /etc for a system installation (PREFIX=/usr), else below the prefix
SYSCONFDIR ?= $(if $(filter /usr,$(PREFIX)),/etc,$(PREFIX)/etc)
INSTALL ?= install

SPT_VERSION := $(shell sed -n 's/^\#define SPTD_VERSION "\(.*\)"/\1/p' src/main.c)
MAN_PAGES := $(wildcard man/*.[1-8])
SPT_HEADERS := $(wildcard include/spt/*.h)
SPT_EXAMPLES := $(wildcard examples/python/*.py examples/python/*.md)
SPT_EXAMPLE_CONFS := $(wildcard examples/*.conf)

install: all
	$(INSTALL) -d $(DESTDIR)$(SBINDIR) $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) \
		$(DESTDIR)$(INCLUDEDIR)/spt $(DESTDIR)$(PKGCONFIGDIR) $(DESTDIR)$(SYSTEMDUNITDIR) \
		$(DESTDIR)$(DOCDIR)/examples/python $(DESTDIR)$(SYSCONFDIR)/default
	$(INSTALL) -m 0755 $(BUILD)/sptd $(BUILD)/sptctl $(DESTDIR)$(SBINDIR)/
	$(INSTALL) -m 0755 $(BUILD)/spt-memprovider $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 0644 $(BUILD)/libspt.a $(DESTDIR)$(LIBDIR)/
	$(INSTALL) -m 0644 $(SPT_HEADERS) $(DESTDIR)$(INCLUDEDIR)/spt/
	set -e; for page in $(MAN_PAGES); do \
		sec=$${page##*.}; \
		$(INSTALL) -d $(DESTDIR)$(MANDIR)/man$$sec; \
		$(INSTALL) -m 0644 $$page $(DESTDIR)$(MANDIR)/man$$sec/; \
	done
	@# the unit and spt.pc name this installation's paths (written in place:
	@# an install by another user must not need to write to the build tree)
	sed -e 's|/usr/sbin/sptd|$(SBINDIR)/sptd|' -e 's|/etc/default/sptd|$(SYSCONFDIR)/default/sptd|' \
		packaging/sptd.service >$(DESTDIR)$(SYSTEMDUNITDIR)/sptd.service
	chmod 0644 $(DESTDIR)$(SYSTEMDUNITDIR)/sptd.service
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' \
		-e 's|@VERSION@|$(SPT_VERSION)|' packaging/spt.pc.in >$(DESTDIR)$(PKGCONFIGDIR)/spt.pc
	chmod 0644 $(DESTDIR)$(PKGCONFIGDIR)/spt.pc
	$(INSTALL) -m 0644 README.md $(DESTDIR)$(DOCDIR)/
	$(INSTALL) -m 0644 $(SPT_EXAMPLES) $(DESTDIR)$(DOCDIR)/examples/python/
	$(INSTALL) -m 0644 packaging/sptd.default $(DESTDIR)$(DOCDIR)/examples/sptd.default
	set -e; for f in $(SPT_EXAMPLE_CONFS); do $(INSTALL) -m 0644 $$f $(DESTDIR)$(DOCDIR)/examples/; done
	@# the admin's settings survive a reinstall; 0600: it may hold CHAP secrets
	test -e $(DESTDIR)$(SYSCONFDIR)/default/sptd || \
		$(INSTALL) -m 0600 packaging/sptd.default $(DESTDIR)$(SYSCONFDIR)/default/sptd

# Removes what install put there; /etc/default/sptd only if still as shipped.
uninstall:
	rm -f $(DESTDIR)$(SBINDIR)/sptd $(DESTDIR)$(SBINDIR)/sptctl $(DESTDIR)$(BINDIR)/spt-memprovider \
		$(DESTDIR)$(LIBDIR)/libspt.a $(DESTDIR)$(PKGCONFIGDIR)/spt.pc \
		$(DESTDIR)$(SYSTEMDUNITDIR)/sptd.service \
		$(addprefix $(DESTDIR)$(INCLUDEDIR)/spt/,$(notdir $(SPT_HEADERS)))
	set -e; for page in $(MAN_PAGES); do \
		rm -f $(DESTDIR)$(MANDIR)/man$${page##*.}/$${page##*/}; \
	done
	rm -f $(DESTDIR)$(DOCDIR)/README.md $(DESTDIR)$(DOCDIR)/examples/sptd.default \
		$(addprefix $(DESTDIR)$(DOCDIR)/examples/python/,$(notdir $(SPT_EXAMPLES))) \
		$(addprefix $(DESTDIR)$(DOCDIR)/examples/,$(notdir $(SPT_EXAMPLE_CONFS)))
	@# only the directories that are spt's own, and only when empty
	-rmdir $(DESTDIR)$(DOCDIR)/examples/python $(DESTDIR)$(DOCDIR)/examples $(DESTDIR)$(DOCDIR) \
		$(DESTDIR)$(INCLUDEDIR)/spt 2>/dev/null
	if cmp -s packaging/sptd.default $(DESTDIR)$(SYSCONFDIR)/default/sptd; then \
		rm -f $(DESTDIR)$(SYSCONFDIR)/default/sptd; fi

.PHONY: install uninstall
