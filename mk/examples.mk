# mk/examples.mk - the examples beyond the textbook pair and rtrace, the
# tool that draws RMSG_TRACE logs as message diagrams.
#
# Included by the main Makefile after its variables.

EXAMPLES += file_send file_recv kv_server kv_client pipeline_send \
            pipeline_recv discovery echo_service lb_client fault_preview
TOOLS    += rtrace
TEST_HOOKS += test-examples-more

.PHONY: test-examples-more

# Every new example on loopback, with and without UDP_FAULTS, and rtrace on
# real two-process traces checked against fault_preview.
test-examples-more: all
	sh tests/examples_more.sh $(BUILD)
