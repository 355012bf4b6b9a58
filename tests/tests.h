/*
 * tests.h - the suites the runner knows, and small helpers they share.
 */
#ifndef RMSG_TESTS_H
#define RMSG_TESTS_H

/* Each returns 0 once its suite is registered, -1 on a CUnit error. */
int test_crc32c_register(void);
int test_cc_register(void);
int test_udp_register(void);
int test_wire_register(void);
int test_rmsg_sim_register(void);
int test_rmsg_register(void);
int test_rpc_register(void);
int test_marshal_register(void);
int test_rpc_sim_register(void);
int test_hostile_register(void);

#endif
