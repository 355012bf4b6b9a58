# Fuzzing: libFuzzer targets for every parser that sees outside bytes
# (fuzz/fuzz_*.c), built with clang into $(BUILD)/fuzz/.
#
#   make fuzz             each target FUZZ_SECONDS (default 60) in turn
#   make fuzz-ci          replays fuzz/regressions/ and the seed corpora,
#                         then each target FUZZ_CI_SECONDS (default 15)
#   make fuzz-seeds       regenerates the committed seed corpora
#   make fuzz-build       only builds the targets
#
# FUZZ_CC (default clang) must support -fsanitize=fuzzer; fuzz/need-clang.sh
# installs it when run as root.  FUZZ_FLAGS adds libFuzzer options, e.g.
# FUZZ_FLAGS=-use_value_profile=1.  One target runs at a time, one process.

FUZZ_CC         ?= clang
FUZZ_SECONDS    ?= 60
FUZZ_CI_SECONDS ?= 15
FUZZ_FLAGS      ?=
FUZZ_DIR         = $(BUILD)/fuzz
FUZZ_SAN         = -fsanitize=address,undefined -fno-sanitize-recover=all
FUZZ_CFLAGS      = -std=c11 -Wall -Wextra -Werror -O1 -g \
                   -fno-omit-frame-pointer $(FUZZ_SAN)
FUZZ_TARGETS     = wire core rpc_header marshal faults
# The stub generator's front end (tools/rpcgen/), when it is in the tree.
FUZZ_RPCGEN_OBJS = $(patsubst %.c,$(FUZZ_DIR)/obj/%.o,\
                       $(wildcard tools/rpcgen/*.c))
ifneq ($(wildcard tools/rpcgen/parse.c),)
FUZZ_TARGETS    += rpcgen
endif
FUZZ_LIB_OBJS    = $(LIB_SRCS:%.c=$(FUZZ_DIR)/obj/%.o)
FUZZ_BINS        = $(FUZZ_TARGETS:%=$(FUZZ_DIR)/fuzz_%)

.PHONY: fuzz fuzz-ci fuzz-build fuzz-seeds fuzz-clang

fuzz-build: $(FUZZ_BINS)

# The library and the targets with coverage instrumentation; only the link
# brings in libFuzzer's main.
$(FUZZ_DIR)/obj/%.o: %.c | fuzz-clang
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(DEPFLAGS) \
	    $(INCLUDES) -c $< -o $@

$(FUZZ_DIR)/fuzz_%: $(FUZZ_DIR)/obj/fuzz/fuzz_%.o $(FUZZ_LIB_OBJS)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LDLIBS) -lm

# rpcgen needs nothing of the library, only its own parts.
$(FUZZ_DIR)/fuzz_rpcgen: $(FUZZ_DIR)/obj/fuzz/fuzz_rpcgen.o $(FUZZ_RPCGEN_OBJS)
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^

fuzz-clang:
	@sh fuzz/need-clang.sh "$(FUZZ_CC)"

# Every target runs even after one failed; the status says whether any did.
fuzz: $(FUZZ_BINS)
	@fail=""; for t in $(FUZZ_TARGETS); do \
	    sh fuzz/run.sh $(FUZZ_DIR) $$t $(FUZZ_SECONDS) $(FUZZ_FLAGS) \
	        || fail="$$fail $$t"; done; \
	if [ -n "$$fail" ]; then echo "fuzz: FAILED:$$fail"; exit 1; fi

fuzz-ci: $(FUZZ_BINS)
	@fail=""; for t in $(FUZZ_TARGETS); do \
	    sh fuzz/run.sh $(FUZZ_DIR) $$t $(FUZZ_CI_SECONDS) $(FUZZ_FLAGS) \
	        || fail="$$fail $$t"; done; \
	if [ -n "$$fail" ]; then echo "fuzz: FAILED:$$fail"; exit 1; fi

# The seed corpora come from a real exchange between cores: a plain build
# of fuzz/seeds.c writes them.
$(FUZZ_DIR)/seeds: $(BUILD)/fuzz/seeds.o $(STATIC)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(LDLIBS) -lm

fuzz-seeds: $(FUZZ_DIR)/seeds
	$(FUZZ_DIR)/seeds fuzz/corpus
	@if [ -d tools/rpcgen ]; then mkdir -p fuzz/corpus/rpcgen && \
	    cp examples/calc.x tests/rpcgen/*.x fuzz/corpus/rpcgen/; fi

-include $(FUZZ_LIB_OBJS:.o=.d) $(FUZZ_TARGETS:%=$(FUZZ_DIR)/obj/fuzz/fuzz_%.d) \
         $(FUZZ_RPCGEN_OBJS:.o=.d) $(BUILD)/fuzz/seeds.d
