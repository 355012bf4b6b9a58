# mk/bench.mk - rperf, the measurement tool (tools/rperf/), its quick test
# and the standard benchmark suite.
#
#   make bench        the suite (bench/run.sh): loopback, and as root two
#                     network namespaces at 0-10% kernel drop; writes
#                     bench/RESULTS.md, results.json and results.svg (about
#                     5 minutes; BENCH_QUICK=1 for a trial of seconds,
#                     BENCH_NETNS=0 to skip the namespaces)
#   make test-rperf   each transport briefly on loopback, the JSON fields,
#                     bad arguments and a server that is not there (a hook
#                     of `make test`)
#
# Included by the main Makefile after its variables.  rperf is one of
# $(TOOLS), so `make` builds it and `make install` installs it; being made
# of several files, it is linked here rather than by the Makefile's rule
# for one-file tools.  Its parts' objects cannot go to $(BUILD)/tools/rperf/,
# the binary's name.

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
# The suite.  benchplot (tools/benchplot.c: the SVG and the table) is built
# by the Makefile's rule for one-file tools but is not one of $(TOOLS): it
# serves the suite and is not installed.

BENCHPLOT = $(BUILD)/tools/benchplot

.PHONY: bench

bench: $(RPERF) $(BENCHPLOT)
	bash bench/run.sh $(BUILD)

# ---------------------------------------------------------------------------
# The quick test

TEST_HOOKS += test-rperf

.PHONY: test-rperf

test-rperf: $(RPERF)
	sh tools/rperf/test.sh $(BUILD)

-include $(RPERF_OBJS:.o=.d) $(BUILD)/tools/benchplot.d
