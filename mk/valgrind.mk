# The CUnit suites under valgrind's memcheck: no leak, no error.
#
#   make valgrind                  every suite, every seed: about 7 minutes
#                                  on an idle 2-core machine
#   make valgrind VALGRIND_SEEDS=1 the simulations replay one seed each
#                                  (RMSG_SIM_SEED): about 1 minute
#   make valgrind VALGRIND_SUITES="udp rmsg"   only some suites
#
# Installs valgrind with apt-get when it is missing and we are root.
# VALGRIND_FLAGS adds options (e.g. --suppressions=FILE, --track-origins=yes).

VALGRIND        ?= valgrind
VALGRIND_SEEDS  ?=
VALGRIND_SUITES ?=
VALGRIND_FLAGS  ?=
VALGRIND_OPTS    = --tool=memcheck --leak-check=full \
                   --errors-for-leak-kinds=definite,indirect \
                   --error-exitcode=1 $(VALGRIND_FLAGS)

.PHONY: valgrind valgrind-tool

valgrind-tool:
	@command -v $(VALGRIND) >/dev/null 2>&1 || { \
	    if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
	        echo "valgrind is missing: installing it with apt-get"; \
	        DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
	        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	            valgrind >/dev/null; \
	    else \
	        echo "error: make valgrind needs valgrind. Install it with:" >&2; \
	        echo "    sudo apt-get install valgrind" >&2; exit 1; \
	    fi; }

valgrind: $(TEST_BIN) | valgrind-tool
	RMSG_BUILD=$(BUILD) $(if $(VALGRIND_SEEDS),RMSG_SIM_SEED=$(VALGRIND_SEEDS)) \
	    $(VALGRIND) $(VALGRIND_OPTS) $(TEST_BIN) $(VALGRIND_SUITES)
