# mk/rpcgen.mk - the stub generator (tools/rpcgen).
#
# Everything is compiled with the Makefile's CC, CFLAGS and LDFLAGS, so
# `make check` builds it under the sanitizers too.

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

# The generator needs nothing but libc.
$(RPCGEN): $(BUILD)/tools/rpcgen.o $(RPCGEN_OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^

$(RPCGEN_OBJS): $(BUILD)/tools/rpcgen-parts/%.o: tools/rpcgen/%.c
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PICFLAGS) $(DEPFLAGS) $(INCLUDES) -c $< -o $@

-include $(RPCGEN_OBJS:.o=.d)

.DEFAULT_GOAL := $(rpcgen_default_goal)
