# mk/rpcgen.mk - the stub generator (tools/rpcgen), the calc example built
# from examples/calc.x, and the generator's tests (make test-rpcgen).
#
# Generated C goes into $(BUILD)/.../gen/, never into the tree, and is made
# again whenever its interface file or the generator changes.  Everything
# is compiled with the Makefile's CC, CFLAGS and LDFLAGS, so `make check`
# builds and runs all of it under the sanitizers too.

RPCGEN      = $(BUILD)/tools/rpcgen
RPCGEN_SRCS = tools/rpcgen/util.c tools/rpcgen/lex.c tools/rpcgen/parse.c \
              tools/rpcgen/check.c tools/rpcgen/emit.c \
              tools/rpcgen/emit_header.c tools/rpcgen/emit_client.c \
              tools/rpcgen/emit_server.c
# Its parts' objects cannot go to $(BUILD)/tools/rpcgen/, the binary's name.
RPCGEN_OBJS = $(RPCGEN_SRCS:tools/rpcgen/%.c=$(BUILD)/tools/rpcgen-parts/%.o)

TOOLS      += rpcgen
EXAMPLES   += calc_server calc_client
TEST_HOOKS += test-rpcgen

.PHONY: test-rpcgen rpcgen-golden

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

$(BUILD)/tests/rpcgen/gen/%.h $(BUILD)/tests/rpcgen/gen/%_clnt.c \
$(BUILD)/tests/rpcgen/gen/%_svc.c: tests/rpcgen/%.x $(RPCGEN)
	@mkdir -p $(@D)
	$(RPCGEN) -o $(@D) $<

CALC_GEN     = $(BUILD)/examples/gen
RPCGEN_TGEN  = $(BUILD)/tests/rpcgen/gen
RPCGEN_GEN_OBJS = $(CALC_GEN)/calc_clnt.o $(CALC_GEN)/calc_svc.o \
                  $(RPCGEN_TGEN)/ref_clnt.o $(RPCGEN_TGEN)/ref_svc.o \
                  $(RPCGEN_TGEN)/skew_clnt.o $(RPCGEN_TGEN)/v2_clnt.o \
                  $(RPCGEN_TGEN)/skew_svc.o $(RPCGEN_TGEN)/v2_svc.o

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

# ---------------------------------------------------------------------------
# Tests: the golden files, every error message, the loopback round trip of
# every type (a CUnit program), and the example run as a user would.

RPCGEN_TEST     = $(BUILD)/tests/rpcgen/roundtrip
RPCGEN_TEST_OBJ = $(BUILD)/tests/rpcgen/roundtrip.o
RPCGEN_TEST_GEN = $(RPCGEN_TGEN)/ref_clnt.o $(RPCGEN_TGEN)/ref_svc.o \
                  $(RPCGEN_TGEN)/skew_clnt.o $(RPCGEN_TGEN)/v2_clnt.o

$(RPCGEN_TEST_OBJ): tests/rpcgen/roundtrip.c $(RPCGEN_TGEN)/ref.h \
                    $(RPCGEN_TGEN)/skew.h $(RPCGEN_TGEN)/v2.h | cunit
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PICFLAGS) $(DEPFLAGS) $(INCLUDES) -I$(RPCGEN_TGEN) \
	    -c $< -o $@

$(RPCGEN_TEST): $(RPCGEN_TEST_OBJ) $(RPCGEN_TEST_GEN) $(STATIC) | cunit
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $(RPCGEN_TEST_OBJ) $(RPCGEN_TEST_GEN) \
	    $(STATIC) -lcunit $(LDLIBS)

# Every generated file must compile, the skeletons the test does not link
# included.
test-rpcgen: $(RPCGEN) $(RPCGEN_TEST) $(RPCGEN_GEN_OBJS) \
             $(BUILD)/examples/calc_server $(BUILD)/examples/calc_client
	sh tests/rpcgen/golden.sh $(RPCGEN)
	sh tests/rpcgen/errors.sh $(RPCGEN)
	$(RPCGEN_TEST)
	sh tests/rpcgen/example.sh $(BUILD)

# After a deliberate change to the generated code: rewrite the golden
# files, then review the diff before committing it.
rpcgen-golden: $(RPCGEN)
	$(RPCGEN) -o tests/rpcgen/golden tests/rpcgen/ref.x

-include $(RPCGEN_OBJS:.o=.d) $(RPCGEN_GEN_OBJS:.o=.d) \
         $(RPCGEN_TEST_OBJ:.o=.d)

