/*
 * run.c - the test runner: registers every suite and runs them.
 *
 * CUnit's basic runner returns success even when assertions fail, so the exit
 * status is taken from CU_get_number_of_tests_failed() (and a run that
 * executed no test at all is a failure too).
 *
 *   build/tests/run            every suite
 *   build/tests/run udp rmsg   only the suites whose names start with these
 */
#include <stdio.h>
#include <string.h>

#include <CUnit/Basic.h>

#include "tests.h"

/* One entry per suite: its name and the function that registers it. */
static const struct {
    const char *name;
    int (*add)(void);
} suites[] = {
    {"crc32c", test_crc32c_register},
    {"cc", test_cc_register},
    {"udp", test_udp_register},
    {"wire", test_wire_register},
    {"rmsg-sim", test_rmsg_sim_register},
    {"rmsg", test_rmsg_register},
    {"hostile", test_hostile_register},
    {"marshal", test_marshal_register},
    {"rpc-sim", test_rpc_sim_register},
    {"rpc", test_rpc_register},
};

/* True when the suite was asked for on the command line (or nothing was). */
static int wanted(const char *name, int argc, char **argv)
{
    if (argc < 2)
        return 1;
    for (int i = 1; i < argc; i++)
        if (strncmp(name, argv[i], strlen(argv[i])) == 0)
            return 1;
    return 0;
}

int main(int argc, char **argv)
{
    if (CU_initialize_registry() != CUE_SUCCESS) {
        fprintf(stderr, "run: cannot initialise CUnit: %s\n", CU_get_error_msg());
        return 2;
    }
    for (size_t i = 0; i < sizeof(suites) / sizeof(suites[0]); i++) {
        if (!wanted(suites[i].name, argc, argv))
            continue;
        if (suites[i].add() != 0) {
            fprintf(stderr, "run: cannot register suite %s: %s\n",
                    suites[i].name, CU_get_error_msg());
            CU_cleanup_registry();
            return 2;
        }
    }
    CU_basic_set_mode(CU_BRM_VERBOSE);
    CU_basic_run_tests();
    unsigned failed = CU_get_number_of_tests_failed() +
                      CU_get_number_of_suites_failed();
    unsigned ran = CU_get_number_of_tests_run();
    CU_cleanup_registry();
    if (ran == 0) {
        fprintf(stderr, "run: no test was run\n");
        return 1;
    }
    printf("%u passed, %u failed\n", ran - failed, failed);
    return failed == 0 ? 0 : 1;
}
