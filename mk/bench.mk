# mk/bench.mk - rperf, the measurement tool (tools/rperf/), its quick test
# and the standard benchmark suite.
#
#   make test-rperf   each transport briefly on loopback, the JSON fields,
#                     bad arguments and a server that is not there (a hook
#                     of `make test`)
#
# Included by the main Makefile after its variables.  rperf is one of
# $(TOOLS), so `make` builds it and `make install` installs it; being made
# of several files, it is linked here rather than by the Makefile's rule
# for one-file tools.  Its parts' objects cannot go to $(BUILD)/tools/rperf/,
# the binary's name.
.DEFAULT_GOAL := all

RPERF      = $(BUILD)/tools/rperf
RPERF_SRCS = tools/rperf/main.c tools/rperf/opts.c tools/rperf/util.c \
             tools/rperf/net.c tools/rperf/server.c tools/rperf/client.c \
             tools/rperf/report.c tools/rperf/rpc.c
RPERF_OBJS = $(RPERF_SRCS:tools/rperf/%.c=$(BUILD)/tools/rperf-parts/%.o)

$(RPERF): $(RPERF_OBJS) $(STATIC)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(RPERF_OBJS) $(STATIC) $(LDLIBS) -lm

$(RPERF_OBJS): $(BUILD)/tools/rperf-parts/%.o: tools/rperf/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PICFLAGS) $(DEPFLAGS) $(INCLUDES) -c $< -o $@

# ---------------------------------------------------------------------------
# The quick test

TEST_HOOKS += test-rperf

.PHONY: test-rperf

test-rperf: $(RPERF)
	sh tools/rperf/test.sh $(BUILD)

-include $(RPERF_OBJS:.o=.d)
