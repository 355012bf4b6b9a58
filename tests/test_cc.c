/*
 * test_cc.c - the congestion controller alone, fed rounds of made-up
 * acknowledgments: when STARTUP ends and when it must not.
 *
 * Each round here is one acknowledgment that starts a round (it reports
 * data sent after the previous round's end), carrying the round's
 * delivery rate; the losses found during a round are reported before the
 * acknowledgment that ends it, as the core does.
 */
#include <stdint.h>

#include <CUnit/CUnit.h>

#include "cc.h"
#include "tests.h"

#define MSS 1428
#define RTT_US 10000

struct feed {
    struct cc cc;
    uint64_t delivered;
    rmsg_time now;
};

static void feed_start(struct feed *f)
{
    cc_init(&f->cc, MSS, 10);
    f->delivered = 0;
    f->now = 1000000;
}

/* One round: `dgrams` datagrams delivered at `rate` bytes/s, `lost` more
 * found lost on the way. */
static void round_of(struct feed *f, uint64_t dgrams, uint64_t lost,
                     uint64_t rate)
{
    for (uint64_t i = 0; i < lost; i++)
        cc_on_lost(&f->cc, MSS);
    uint64_t prior = f->delivered;
    f->delivered += dgrams * MSS;
    f->now += RTT_US;
    struct cc_sample rs = {.acked = dgrams * MSS, .delivered = f->delivered,
                           .prior_delivered = prior, .rate = rate,
                           .rtt_us = RTT_US, .inflight = 0};
    cc_on_ack(&f->cc, &rs, RTT_US, f->now);
}

/* A fresh controller through `rounds` rounds in which the delivery rate
 * doubles, from 1 MB/s, without loss; STARTUP must still be on.  Returns
 * the last round's rate. */
static uint64_t grow(struct feed *f, int rounds)
{
    feed_start(f);
    uint64_t rate = 0;
    for (int r = 0; r < rounds; r++)
        round_of(f, 10u << r, 0, rate = 1000000u << r);
    CU_ASSERT_EQUAL(f->cc.mode, CC_STARTUP);
    return rate;
}

/* The rule of BBR: three rounds in a row without a quarter more bandwidth
 * end STARTUP, and not two. */
static void test_startup_ends_when_bw_is_flat(void)
{
    struct feed f;
    uint64_t rate = grow(&f, 6);
    round_of(&f, 640, 0, rate);
    round_of(&f, 640, 0, rate);
    CU_ASSERT_EQUAL(f.cc.mode, CC_STARTUP);
    round_of(&f, 640, 0, rate);
    CU_ASSERT_NOT_EQUAL(f.cc.mode, CC_STARTUP);
    CU_ASSERT_EQUAL(f.cc.full, 1);
}

/* A round that loses a quarter of what it carried ends STARTUP at once,
 * even while the bandwidth still seems to grow (the samples of a recovery
 * can make it look so). */
static void test_startup_ends_on_heavy_loss(void)
{
    struct feed f;
    uint64_t rate = grow(&f, 5);
    /* 90 delivered, 30 lost: a quarter of 120, judged as the round ends. */
    round_of(&f, 90, 30, rate * 2);
    CU_ASSERT_NOT_EQUAL(f.cc.mode, CC_STARTUP);
    CU_ASSERT_EQUAL(f.cc.full, 1);
}

/* Just under a quarter, or a quarter of a round too small to tell (fewer
 * than 8 datagrams lost), leaves STARTUP going. */
static void test_startup_survives_light_loss(void)
{
    struct feed f;
    feed_start(&f);
    uint64_t rate = 1000000;
    round_of(&f, 10, 0, rate);
    round_of(&f, 21, 7, rate *= 2); /* 7 of 28 lost */
    round_of(&f, 40, 0, rate *= 2);
    CU_ASSERT_EQUAL(f.cc.mode, CC_STARTUP);
    round_of(&f, 91, 30, rate *= 2); /* 30 of 121: under a quarter */
    round_of(&f, 160, 0, rate *= 2);
    CU_ASSERT_EQUAL(f.cc.mode, CC_STARTUP);
    CU_ASSERT_EQUAL(f.cc.full, 0);
}

/* Random loss of 5% in every round, however large the rounds grow, is not
 * a reason to stop growing. */
static void test_startup_survives_random_loss(void)
{
    struct feed f;
    feed_start(&f);
    uint64_t rate = 1000000;
    for (int r = 0; r < 12; r++, rate *= 2) {
        uint64_t sent = 20u << r;
        round_of(&f, sent - sent / 20, sent / 20, rate);
    }
    CU_ASSERT_EQUAL(f.cc.mode, CC_STARTUP);
    CU_ASSERT_EQUAL(f.cc.full, 0);
}

int test_cc_register(void)
{
    CU_pSuite s = CU_add_suite("cc", NULL, NULL);
    if (s == NULL ||
        !CU_add_test(s, "STARTUP ends when bandwidth is flat",
                     test_startup_ends_when_bw_is_flat) ||
        !CU_add_test(s, "STARTUP ends on a round losing a quarter",
                     test_startup_ends_on_heavy_loss) ||
        !CU_add_test(s, "STARTUP survives light loss",
                     test_startup_survives_light_loss) ||
        !CU_add_test(s, "STARTUP survives 5% random loss",
                     test_startup_survives_random_loss))
        return -1;
    return 0;
}
