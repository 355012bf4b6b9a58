/*
 * cc.c - BBR-style congestion control (see cc.h for the model).
 *
 * Gains are fixed point with 256 = 1.0.  Rates are bytes per second,
 * times microseconds, sizes bytes.
 */
#include "cc.h"

#include <string.h>

#define UNIT 256
#define GAIN_HIGH 739 /* 2/ln 2 = 2.885: doubles the rate each round */
#define GAIN_DRAIN 89 /* 1/2.885 */
#define GAIN_CWND 512 /* two bandwidth-delay products in flight */

/* PROBE_BW's eight phases: probe up, drain the probe, cruise. */
static const uint32_t cycle_gain[8] = {320, 192, 256, 256, 256, 256, 256, 256};

void cc_init(struct cc *cc, uint32_t mss, uint32_t initial_dgrams)
{
    memset(cc, 0, sizeof(*cc));
    cc->mode = CC_STARTUP;
    cc->mss = mss;
    cc->pacing_gain = GAIN_HIGH;
    cc->cwnd_gain = GAIN_HIGH;
    cc->cwnd = cc->initial_cwnd = (uint64_t)mss * initial_dgrams;
    cc->probe_rtt_end = RMSG_NEVER;
}

uint64_t cc_bdp(const struct cc *cc, uint32_t gain)
{
    if (cc->bw == 0 || cc->min_rtt_us == 0)
        return 0;
    return cc->bw * cc->min_rtt_us / 1000000 * gain / UNIT;
}

/* The most data one pacing burst may carry: about a millisecond at the
 * current rate, at least two datagrams, at most 64 KB or two datagrams
 * if they are larger (BBR's send quantum).  The window keeps room for three of them so that the
 * receiver's batched acknowledgments do not stall the sender. */
static uint64_t quantum(const struct cc *cc)
{
    uint64_t q = cc->pacing_rate / 1000;
    if (q < 2 * (uint64_t)cc->mss)
        q = 2 * (uint64_t)cc->mss;
    uint64_t cap = 65536 > 2 * (uint64_t)cc->mss ? 65536 : 2 * (uint64_t)cc->mss;
    return q > cap ? cap : q;
}

/* STARTUP also ends when a round loses a quarter of the datagrams it
 * carried, at least LOSS_FULL_DGRAMS of them (BBR v2's rule, at a higher
 * threshold than its 2% so that random loss of a few per cent, which says
 * nothing about the path's capacity, does not end it).  Without, a queue
 * shallower than the path's bandwidth-delay product overflows while the
 * samples of the recovery are limited by the sender, which the rule of
 * three flat rounds ignores: a 1 Gbit/s path with a 50 ms round trip
 * stayed ten rounds in STARTUP at 2.89 times its rate, losing a third of
 * every flight. */
#define LOSS_FULL_DGRAMS 8
static void check_loss(struct cc *cc, const struct cc_sample *rs)
{
    if (cc->full || cc->round_lost < LOSS_FULL_DGRAMS)
        return;
    uint64_t carried = rs->delivered - cc->round_delivered +
                       cc->round_lost_bytes;
    if (cc->round_lost_bytes * 4 >= carried)
        cc->full = 1;
}

/* A round trip ends when data sent after the previous round's end is
 * acknowledged; the bw filter keeps one maximum per round. */
static int update_round(struct cc *cc, const struct cc_sample *rs)
{
    if (rs->prior_delivered < cc->next_round_delivered)
        return 0;
    check_loss(cc, rs);
    cc->round_lost = cc->round_lost_bytes = 0;
    cc->round_delivered = rs->delivered;
    cc->next_round_delivered = rs->delivered;
    cc->round++;
    cc->bw_round[cc->round % CC_BW_ROUNDS] = 0;
    cc->path_rounds &= ~(1u << (cc->round % CC_BW_ROUNDS));
    return 1;
}

static void update_bw(struct cc *cc, const struct cc_sample *rs)
{
    /* A sample taken while the sender had nothing to send shows what the
     * application offered, not what the path carries: it may only raise
     * the estimate. */
    if (rs->rate == 0 || (rs->app_limited && rs->rate < cc->bw))
        return;
    int i = (int)(cc->round % CC_BW_ROUNDS);
    if (rs->rate > cc->bw_round[i])
        cc->bw_round[i] = rs->rate;
    if (!rs->app_limited)
        cc->path_rounds |= 1u << i;
    cc->bw = 0;
    for (i = 0; i < CC_BW_ROUNDS; i++)
        if (cc->bw_round[i] > cc->bw)
            cc->bw = cc->bw_round[i];
}

/* Whether a round the bw filter still covers had a sample the application
 * did not limit: bw then tells something of the path. */
static int path_measured(const struct cc *cc)
{
    return cc->path_rounds != 0 && cc->bw > 0;
}

/* STARTUP ends when three rounds in a row did not raise bw by 25%. */
static void check_full(struct cc *cc, const struct cc_sample *rs)
{
    if (cc->full || rs->app_limited)
        return;
    if (cc->bw >= cc->full_bw * 5 / 4) {
        cc->full_bw = cc->bw;
        cc->full_count = 0;
        return;
    }
    if (++cc->full_count >= 3)
        cc->full = 1;
}

static void set_mode(struct cc *cc, enum cc_mode m, rmsg_time now)
{
    cc->mode = m;
    switch (m) {
    case CC_STARTUP:
        cc->pacing_gain = cc->cwnd_gain = GAIN_HIGH;
        break;
    case CC_DRAIN:
        cc->pacing_gain = GAIN_DRAIN;
        cc->cwnd_gain = GAIN_HIGH;
        break;
    case CC_PROBE_BW:
        cc->cycle = 2; /* start cruising; the probe comes in six rounds */
        cc->cycle_at = now;
        cc->pacing_gain = cycle_gain[cc->cycle];
        cc->cwnd_gain = GAIN_CWND;
        break;
    case CC_PROBE_RTT:
        cc->pacing_gain = cc->cwnd_gain = UNIT;
        cc->probe_rtt_end = RMSG_NEVER;
        cc->probe_rtt_min = UINT32_MAX;
        break;
    }
}

/* PROBE_BW moves to its next phase after one min_rtt, except that the
 * drain phase ends as soon as the queue is gone. */
static void advance_cycle(struct cc *cc, const struct cc_sample *rs,
                          rmsg_time now)
{
    int due = now - cc->cycle_at > (rmsg_time)cc->min_rtt_us;
    if (cc->cycle == 1 && rs->inflight <= cc_bdp(cc, UNIT))
        due = 1;
    if (!due)
        return;
    cc->cycle = (cc->cycle + 1) % 8;
    cc->cycle_at = now;
    cc->pacing_gain = cycle_gain[cc->cycle];
}

/* min_rtt: the lowest sample, refreshed when it is ten seconds old by
 * entering PROBE_RTT (unless the sender is idle anyway). */
static void update_min_rtt(struct cc *cc, const struct cc_sample *rs,
                           rmsg_time now)
{
    if (rs->rtt_us == 0)
        return;
    int expired = now - cc->min_rtt_at > CC_MIN_RTT_WINDOW_US;
    if (cc->min_rtt_us == 0 || rs->rtt_us <= cc->min_rtt_us) {
        cc->min_rtt_us = rs->rtt_us;
        cc->min_rtt_at = now;
    } else if (expired && cc->mode != CC_PROBE_RTT) {
        if (rs->app_limited) { /* idle enough: the sample is fresh */
            cc->min_rtt_us = rs->rtt_us;
            cc->min_rtt_at = now;
            return;
        }
        cc->before_probe_rtt = cc->full ? CC_PROBE_BW : CC_STARTUP;
        set_mode(cc, CC_PROBE_RTT, now);
    }
    if (cc->mode == CC_PROBE_RTT && rs->rtt_us < cc->probe_rtt_min)
        cc->probe_rtt_min = rs->rtt_us;
}

static void probe_rtt(struct cc *cc, const struct cc_sample *rs,
                      rmsg_time now)
{
    uint64_t low = (uint64_t)CC_MIN_CWND_DGRAMS * cc->mss;
    if (cc->probe_rtt_end == RMSG_NEVER) {
        if (rs->inflight <= low)
            cc->probe_rtt_end = now + CC_PROBE_RTT_US;
        return;
    }
    if (now < cc->probe_rtt_end)
        return;
    if (cc->probe_rtt_min != UINT32_MAX)
        cc->min_rtt_us = cc->probe_rtt_min;
    cc->min_rtt_at = now;
    set_mode(cc, cc->before_probe_rtt, now);
}

static void update_mode(struct cc *cc, const struct cc_sample *rs,
                        rmsg_time now)
{
    if (cc->mode == CC_STARTUP && cc->full)
        set_mode(cc, CC_DRAIN, now);
    if (cc->mode == CC_DRAIN && rs->inflight <= cc_bdp(cc, UNIT))
        set_mode(cc, CC_PROBE_BW, now);
    if (cc->mode == CC_PROBE_BW)
        advance_cycle(cc, rs, now);
    if (cc->mode == CC_PROBE_RTT)
        probe_rtt(cc, rs, now);
}

/* Pacing follows bw times the mode's gain; while in STARTUP that rate only
 * rises, so one slow sample cannot stall it.
 *
 * Until a sample the application did not limit has measured the path,
 * bw is at most what the application offered: a lone request, a hello
 * and its answer.  Paced at that, a transfer that follows starts at a
 * trickle (a first exchange that waited 30 ms for a busy receiver once
 * sent 1 MiB calls a fragment per 130 ms) and takes many slow rounds to
 * climb.  So until then the rate is at least the initial window per
 * smoothed round trip, at the mode's gain.  It is not a floor: the first
 * rate measured on the path replaces it, higher or lower, so a slow link
 * is not overrun for longer than that first window. */
static void update_pacing(struct cc *cc, uint32_t srtt_us)
{
    int measured = path_measured(cc);
    uint64_t rate = cc->bw * cc->pacing_gain / UNIT;
    if (!measured && srtt_us > 0) {
        uint64_t seed =
            cc->initial_cwnd * 1000000 / srtt_us * cc->pacing_gain / UNIT;
        if (seed > rate)
            rate = seed;
    }
    if (rate == 0)
        return;
    if (cc->mode == CC_STARTUP && measured && cc->paced_by_path &&
        rate < cc->pacing_rate)
        return;
    cc->pacing_rate = rate;
    cc->paced_by_path = measured;
}

static void update_cwnd(struct cc *cc, const struct cc_sample *rs)
{
    uint64_t low = (uint64_t)CC_MIN_CWND_DGRAMS * cc->mss;
    if (cc->mode == CC_PROBE_RTT) {
        cc->cwnd = low;
        return;
    }
    uint64_t target = cc_bdp(cc, cc->cwnd_gain) + 3 * quantum(cc);
    if (cc->recovering) {
        if (cc->round > cc->recover_round) {
            cc->recovering = 0;
            if (cc->cwnd < cc->prior_cwnd)
                cc->cwnd = cc->prior_cwnd;
        } else {
            cc->cwnd += rs->acked;
        }
    } else if (cc->full) {
        cc->cwnd = cc->cwnd + rs->acked < target ? cc->cwnd + rs->acked
                                                 : target;
    } else if (cc->cwnd < target || cc->bw == 0) {
        cc->cwnd += rs->acked;
    }
    if (cc->cwnd < low)
        cc->cwnd = low;
}

void cc_on_ack(struct cc *cc, const struct cc_sample *rs, uint32_t srtt_us,
               rmsg_time now)
{
    int round_start = update_round(cc, rs);
    update_bw(cc, rs);
    if (round_start)
        check_full(cc, rs);
    update_min_rtt(cc, rs, now);
    update_mode(cc, rs, now);
    update_pacing(cc, srtt_us);
    update_cwnd(cc, rs);
}

void cc_on_lost(struct cc *cc, uint64_t bytes)
{
    cc->round_lost++;
    cc->round_lost_bytes += bytes;
}

void cc_on_timeout(struct cc *cc)
{
    if (!cc->recovering)
        cc->prior_cwnd = cc->cwnd;
    cc->recovering = 1;
    cc->recover_round = cc->round + 1;
    cc->cwnd = (uint64_t)CC_MIN_CWND_DGRAMS * cc->mss;
}
