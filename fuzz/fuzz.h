/*
 * fuzz.h - what every fuzz target shares: libFuzzer's entry point and the
 * check that turns a broken property into a crash libFuzzer reports.
 */
#ifndef RMSG_FUZZ_H
#define RMSG_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* A property every input must keep: abort (a "crash" with a reproducer)
 * when it does not. */
#define CHECK(cond)                                                         \
    do {                                                                    \
        if (!(cond))                                                        \
            abort();                                                        \
    } while (0)

#endif
