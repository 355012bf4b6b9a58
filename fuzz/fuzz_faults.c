/*
 * fuzz_faults.c - libFuzzer target for the fault specification parser
 * (udp_fault_parse in udp.c, grammar in udp_faults.h).
 *
 * The first input byte is the capacity of the error buffer (0-255, so the
 * truncation of messages is exercised too); the rest, up to its first NUL,
 * is the specification.
 *
 * Properties:
 *   - the result is 0, or -1 with errno EINVAL;
 *   - on failure *out is untouched and the message is NUL-terminated
 *     within the capacity, and not empty when there is room for one;
 *   - on success every probability is in [0,1], every duration at most
 *     an hour, and a specification printed back from the result (exact
 *     durations and seed, probabilities with 17 digits) parses to the same
 *     durations and seed and to probabilities within rounding;
 *   - an inert result has no fault, an active one has one.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "udp_faults.h"


static int close_enough(double a, double b)
{
    return fabs(a - b) <= 1e-12;
}

/* Prints *f in the grammar and parses it again. */
static void round_trip(const struct udp_fault_spec *f)
{
    char spec[512], err[128];
    snprintf(spec, sizeof(spec),
             "drop=%.17f,dup=%.17f,reorder=%.17f,corrupt=%.17f,"
             "delay=%" PRIu64 "us,jitter=%" PRIu64 "us,seed=%" PRIu64,
             f->drop, f->dup, f->reorder, f->corrupt, f->delay_us,
             f->jitter_us, f->seed);
    struct udp_fault_spec g;
    CHECK(udp_fault_parse(spec, &g, err, sizeof(err)) == 0);
    CHECK(close_enough(f->drop, g.drop) && close_enough(f->dup, g.dup));
    CHECK(close_enough(f->reorder, g.reorder));
    CHECK(close_enough(f->corrupt, g.corrupt));
    CHECK(f->delay_us == g.delay_us && f->jitter_us == g.jitter_us);
    CHECK(f->seed == g.seed);
}

static void check_ok(const struct udp_fault_spec *f)
{
    const double p[] = {f->drop, f->dup, f->reorder, f->corrupt};
    int faults = f->delay_us > 0 || f->jitter_us > 0;
    for (int i = 0; i < 4; i++) {
        CHECK(p[i] >= 0 && p[i] <= 1);
        faults |= p[i] > 0;
    }
    CHECK(f->delay_us <= UDP_FAULT_MAX_DELAY_US);
    CHECK(f->jitter_us <= UDP_FAULT_MAX_DELAY_US);
    CHECK(udp_fault_active(f) == faults);
    round_trip(f);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t cap = data[0];
    char *spec = malloc(size);
    char *err = cap ? malloc(cap) : NULL;
    CHECK(spec != NULL && (cap == 0 || err != NULL));
    memcpy(spec, data + 1, size - 1);
    spec[size - 1] = '\0';
    if (err)
        memset(err, 'x', cap);

    struct udp_fault_spec f, before;
    memset(&f, 0x5A, sizeof(f));
    before = f;
    errno = 0;
    int r = udp_fault_parse(spec, &f, err, cap);
    CHECK(r == 0 || r == -1);
    if (r == 0) {
        check_ok(&f);
    } else {
        CHECK(errno == EINVAL);
        CHECK(memcmp(&f, &before, sizeof(f)) == 0);
        if (cap > 0) {
            CHECK(memchr(err, '\0', cap) != NULL);
            CHECK(cap == 1 || err[0] != '\0');
        }
    }
    /* A NULL message buffer is allowed too. */
    struct udp_fault_spec g;
    CHECK(udp_fault_parse(spec, &g, NULL, 0) == r);
    free(spec);
    free(err);
    return 0;
}
