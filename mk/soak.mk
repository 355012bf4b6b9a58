# The soak test: rmsg senders and receivers and rpc clients and servers
# for a long time over an injected bad network, with restarts (tools/soak.c).
#
#   make soak DURATION=30m     (seconds, or a number with unit s, m or h;
#                               default 60 s; SOAK_FLAGS adds options)
#
# It prints a summary and fails on any lost, duplicated or reordered
# message, any call run twice, a counter out of bounds, or memory that grew.

DURATION   ?= 60
SOAK_FLAGS ?=
SOAK_BIN    = $(BUILD)/tools/soak

.PHONY: soak

$(SOAK_BIN): $(BUILD)/tools/soak.o $(STATIC)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $< $(STATIC) $(LDLIBS) -lm

soak: $(SOAK_BIN)
	$(SOAK_BIN) -d $(DURATION) $(SOAK_FLAGS)

-include $(BUILD)/tools/soak.d
