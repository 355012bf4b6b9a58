# rmsg - reliable messages and at-most-once RPC over UDP.
#
#   make            library (static and shared), examples and tools in build/
#   make test       build and run the CUnit suites (installs CUnit if root)
#   make check      clean sanitizer build (ASan + UBSan) and the whole suite
#   make demo       the demonstration over an injected lossy network
#   make install    headers, libraries and rmsg.pc under $(DESTDIR)$(PREFIX)
#   make uninstall  removes what install put there
#   make format     applies .clang-format to every C file
#   make clean      removes build/
#
# CC, CFLAGS, LDFLAGS, PREFIX and DESTDIR may be overridden.  Dependency and
# position-independence flags live in their own variables so that overriding
# CFLAGS never loses them.

CC      ?= cc
# -O3: about 4% fewer instructions per round trip than -O2 (callgrind,
# rperf --lat), most of it in the per-datagram code.
CFLAGS  ?= -std=c11 -Wall -Wextra -Werror -O3 -g
LDFLAGS ?=
PREFIX  ?= /usr/local
BUILD   ?= build

DEPFLAGS = -MMD -MP
# The library's global functions may be inlined into each other: nothing is
# meant to interpose on them.
PICFLAGS = -fPIC -fno-semantic-interposition
INCLUDES = -I. -Ilib -Itests
LDLIBS   = -lpthread

VERSION = 0.1.0

# The library: the three public layers and their internal helpers.
LIB_SRCS = udp.c rmsg.c rmsg_endpoint.c rpc.c rpc_marshal.c lib/amo.c \
           lib/cc.c lib/crc32c.c lib/siphash.c lib/wire.c
LIB_HDRS = udp.h rmsg.h rpc.h rpc_marshal.h
LIB_OBJS = $(LIB_SRCS:%.c=$(BUILD)/%.o)

EXAMPLES = udp_client udp_server rmsg_client rmsg_server counter_server \
           counter_client
TOOLS    = rperf
TEST_SRCS = tests/run.c tests/test_udp.c tests/test_crc32c.c tests/test_cc.c \
            tests/test_wire.c \
            tests/simlink.c tests/test_rmsg_sim.c tests/test_rmsg.c \
            tests/test_rpc.c tests/test_marshal.c tests/test_rpc_sim.c \
            tests/test_hostile.c
TEST_OBJS = $(TEST_SRCS:%.c=$(BUILD)/%.o)

STATIC = $(BUILD)/librmsg.a
SHARED = $(BUILD)/librmsg.so
EXAMPLE_BINS = $(EXAMPLES:%=$(BUILD)/examples/%)
TOOL_BINS    = $(TOOLS:%=$(BUILD)/tools/%)
TEST_BIN     = $(BUILD)/tests/run

# Each part of the tree beyond the library (the stub generator, homework,
# fuzzing, ...) keeps its rules in a fragment of its own under mk/.  A
# fragment may add to EXAMPLES, TOOLS and TEST_HOOKS (targets that `make
# test` runs after the suites, in order) and define its own targets.
TEST_HOOKS =
-include $(sort $(wildcard mk/*.mk))
# A fragment's first rule must not become the default goal.
.DEFAULT_GOAL := all

.PHONY: all test check demo netns-bench install uninstall format clean cunit

all: $(STATIC) $(SHARED) $(EXAMPLE_BINS) $(TOOL_BINS)

# ---------------------------------------------------------------------------
# Compiling and linking

$(BUILD)/%.o: %.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PICFLAGS) $(DEPFLAGS) $(INCLUDES) -c $< -o $@

$(STATIC): $(LIB_OBJS)
	@rm -f $@
	$(AR) rcs $@ $^

$(SHARED): $(LIB_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -shared -Wl,-soname,librmsg.so -o $@ $^ $(LDLIBS)

$(BUILD)/examples/%: $(BUILD)/examples/%.o $(STATIC)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(LDLIBS)

$(BUILD)/tools/%: $(BUILD)/tools/%.o $(STATIC)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(LDLIBS) -lm

$(TEST_BIN): $(TEST_OBJS) $(STATIC) | cunit
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(TEST_OBJS) $(STATIC) -lcunit $(LDLIBS) -lm

# The test objects need CUnit's headers before they compile.
$(TEST_OBJS): | cunit

# ---------------------------------------------------------------------------
# Tests

# Installs CUnit when it is missing and we are root; otherwise says how.
cunit:
	@sh tests/need-cunit.sh "$(CC)"

# Runs every suite; the runner's exit status counts failed assertions.
test: all $(TEST_BIN)
	RMSG_BUILD=$(BUILD) $(TEST_BIN)
	sh tests/examples.sh $(BUILD)
	RMSG_BUILD=$(BUILD) bash tests/netns.sh
	@for t in $(TEST_HOOKS); do \
	    $(MAKE) --no-print-directory BUILD=$(BUILD) $$t || exit 1; done

# A clean build under AddressSanitizer and UndefinedBehaviorSanitizer.
SAN_FLAGS = -std=c11 -Wall -Wextra -Werror -O1 -g -fno-omit-frame-pointer \
            -fsanitize=address,undefined -fno-sanitize-recover=all
check:
	rm -rf $(BUILD)/san
	$(MAKE) --no-print-directory BUILD=$(BUILD)/san CFLAGS="$(SAN_FLAGS)" \
	    LDFLAGS="-fsanitize=address,undefined" test

demo: all
	sh examples/demo.sh $(BUILD)

# rmsg and TCP across two network namespaces at 0-10% kernel drop and over a
# 100 Mbit/s link (root only; prints a table).
netns-bench: all
	RMSG_BUILD=$(BUILD) bash tests/netns.sh bench

# ---------------------------------------------------------------------------
# Installing

BINDIR = $(PREFIX)/bin
LIBDIR = $(PREFIX)/lib
INCDIR = $(PREFIX)/include
PCDIR  = $(LIBDIR)/pkgconfig

$(BUILD)/rmsg.pc: rmsg.pc.in Makefile
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(VERSION)|g' \
	    rmsg.pc.in > $@

install: $(STATIC) $(SHARED) $(BUILD)/rmsg.pc $(TOOL_BINS)
	install -d $(DESTDIR)$(INCDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PCDIR) \
	    $(DESTDIR)$(BINDIR)
	install -m 755 $(TOOL_BINS) $(DESTDIR)$(BINDIR)
	install -m 644 $(LIB_HDRS) $(DESTDIR)$(INCDIR)
	install -m 644 $(STATIC) $(DESTDIR)$(LIBDIR)
	install -m 755 $(SHARED) $(DESTDIR)$(LIBDIR)
	install -m 644 $(BUILD)/rmsg.pc $(DESTDIR)$(PCDIR)

uninstall:
	rm -f $(TOOLS:%=$(DESTDIR)$(BINDIR)/%)
	rm -f $(LIB_HDRS:%=$(DESTDIR)$(INCDIR)/%)
	rm -f $(DESTDIR)$(LIBDIR)/librmsg.a $(DESTDIR)$(LIBDIR)/librmsg.so
	rm -f $(DESTDIR)$(PCDIR)/rmsg.pc

# ---------------------------------------------------------------------------
# Housekeeping

format:
	clang-format -i $$(git ls-files '*.c' '*.h')

clean:
	rm -rf $(BUILD)

# Keep example and tool objects: they are intermediate to make, but
# rebuilding them every time is wasted work.
.SECONDARY:

-include $(LIB_OBJS:.o=.d) $(TEST_OBJS:.o=.d) \
         $(EXAMPLES:%=$(BUILD)/examples/%.d) $(TOOLS:%=$(BUILD)/tools/%.d)
