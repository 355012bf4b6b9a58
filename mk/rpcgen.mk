# mk/rpcgen.mk - the stub generator (tools/rpcgen) and the calc example
# built from examples/calc.x.
#
# Generated C goes into $(BUILD)/.../gen/, never into the tree, and is made
# again whenever its interface file or the generator changes.  Everything
# is compiled with the Makefile's CC, CFLAGS and LDFLAGS, so `make check`
# builds and runs all of it under the sanitizers too.

# This fragment is read before the Makefile's first rule: keep `all` the
# default goal.
rpcgen_default_goal := $(.DEFAULT_GOAL)

RPCGEN      = $(BUILD)/tools/rpcgen
RPCGEN_SRCS = tools/rpcgen/util.c tools/rpcgen/lex.c tools/rpcgen/parse.c \
              tools/rpcgen/check.c tools/rpcgen/emit.c \
              tools/rpcgen/emit_header.c tools/rpcgen/emit_client.c \
              tools/rpcgen/emit_server.c
# Its parts' objects cannot go to $(BUILD)/tools/rpcgen/, the binary's name.
RPCGEN_OBJS = $(RPCGEN_SRCS:tools/rpcgen/%.c=$(BUILD)/tools/rpcgen-parts/%.o)

TOOLS      += rpcgen
EXAMPLES   += calc_server calc_client

# The generator needs nothing but libc.
$(RPCGEN): $(BUILD)/tools/rpcgen.o $(RPCGEN_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^

$(RPCGEN_OBJS): $(BUILD)/tools/rpcgen-parts/%.o: tools/rpcgen/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PICFLAGS) $(DEPFLAGS) $(INCLUDES) -c $< -o $@

# ---------------------------------------------------------------------------
# Interface files to C: one run writes all three files.

$(BUILD)/examples/gen/%.h $(BUILD)/examples/gen/%_clnt.c \
$(BUILD)/examples/gen/%_svc.c: examples/%.x $(RPCGEN)
	@mkdir -p $(@D)
	$(RPCGEN) -o $(@D) $<

CALC_GEN     = $(BUILD)/examples/gen
RPCGEN_GEN_OBJS = $(CALC_GEN)/calc_clnt.o $(CALC_GEN)/calc_svc.o

# Generated sources live in the build directory, so the Makefile's
# $(BUILD)/%.o: %.c does not find them.
$(RPCGEN_GEN_OBJS): %.o: %.c
	$(CC) $(CFLAGS) $(PICFLAGS) $(DEPFLAGS) $(INCLUDES) -c $< -o $@

# ---------------------------------------------------------------------------
# The example: a calculator service from examples/calc.x.

CALC_OBJS = $(BUILD)/examples/calc_client.o $(BUILD)/examples/calc_server.o
$(CALC_OBJS): $(BUILD)/examples/%.o: examples/%.c $(CALC_GEN)/calc.h
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PICFLAGS) $(DEPFLAGS) $(INCLUDES) -I$(CALC_GEN) \
	    -c $< -o $@

$(BUILD)/examples/calc_client: $(BUILD)/examples/calc_client.o \
                               $(CALC_GEN)/calc_clnt.o $(STATIC)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/examples/calc_server: $(BUILD)/examples/calc_server.o \
                               $(CALC_GEN)/calc_svc.o $(STATIC)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

-include $(RPCGEN_OBJS:.o=.d) $(RPCGEN_GEN_OBJS:.o=.d)

.DEFAULT_GOAL := $(rpcgen_default_goal)
