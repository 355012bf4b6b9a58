# mk/homework.mk - the homework (homework/, questions 1 to 7 of the
# textbook's distributed-systems chapter) in `make test`.
#
# Included by the main Makefile after its variables.  `make test` runs
# test-homework after the suites: every grader against the reference
# solutions (must pass) and the untouched starter code (must fail).  Under
# `make check` the sanitizer CFLAGS and LDFLAGS go through to the homework
# build, whose code links with the sanitized library in the same BUILD.

TEST_HOOKS += test-homework

.PHONY: test-homework homework-lib homework-rperf

test-homework: homework-lib homework-rperf
	$(MAKE) --no-print-directory -C homework verify \
	    BUILD=$(abspath $(BUILD)) CFLAGS="$(CFLAGS)" LDFLAGS="$(LDFLAGS)"

# What homework/Makefile asks for: the library (questions 1 to 6) and
# rperf (question 7).
homework-lib: $(STATIC)
	@:

homework-rperf: $(BUILD)/tools/rperf
	@:
