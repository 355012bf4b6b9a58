/*
 * cc.h - congestion control for rmsg's senders (internal).
 *
 * A model-based controller in the manner of BBR (Cardwell et al., "BBR:
 * Congestion-Based Congestion Control", ACM Queue 14(5), 2016): instead of
 * reading every loss as congestion, as TCP Reno and CUBIC do, it measures
 * the two numbers that describe a path,
 *
 *   bw      the bottleneck's delivery rate: the highest rate at which
 *           acknowledgments reported data arriving over the last ten
 *           round trips, and
 *   min_rtt the round-trip time with no queue: the lowest sample of the
 *           last ten seconds,
 *
 * and sends at about bw (pacing) with about two bandwidth-delay products
 * in flight (the window).  Random loss does not lower bw, so goodput
 * survives a lossy path; a slower link lowers bw, so the sender fills it
 * without overrunning its queue.
 *
 * The controller is sans-I/O like the core: the core reports what each
 * acknowledgment told it (a "rate sample") and the times, and reads back
 * the window and the pacing rate.  All sizes are bytes on the wire.
 *
 * Before any sample the application did not limit has measured the path
 * (a new relation, or one that has only carried requests and replies),
 * the sender paces at least at the initial window per round trip; the
 * first measured rate replaces that, higher or lower.
 *
 * Modes, as BBR has them:
 *   STARTUP   doubles the rate every round trip (gain 2.89) until bw stops
 *             growing by a quarter for three rounds, or a round loses a
 *             quarter of what it carried (as BBR v2 leaves it on loss);
 *   DRAIN     sends slower (gain 1/2.89) until the queue startup built is
 *             gone;
 *   PROBE_BW  cruises at bw, one round in eight at 1.25 bw to find more
 *             room and the next at 0.75 bw to drain what that built;
 *   PROBE_RTT when min_rtt has not been seen for ten seconds, holds four
 *             datagrams in flight for 200 ms so the queue empties and the
 *             true round trip can be measured again.
 */
#ifndef RMSG_CC_H
#define RMSG_CC_H

#include <stdint.h>

#include "rmsg.h"

#define CC_BW_ROUNDS 10            /* bw is the max over this many rounds
                                      (at most 32: a bit each, path_rounds) */
#define CC_MIN_RTT_WINDOW_US 10000000 /* min_rtt is refreshed this often */
#define CC_PROBE_RTT_US 200000     /* time held at four datagrams */
#define CC_MIN_CWND_DGRAMS 4

enum cc_mode { CC_STARTUP, CC_DRAIN, CC_PROBE_BW, CC_PROBE_RTT };

/* What one acknowledgment taught the sender. */
struct cc_sample {
    uint64_t acked;           /* bytes newly delivered (acked or sacked) */
    uint64_t delivered;       /* all bytes delivered so far, this one too */
    uint64_t prior_delivered; /* `delivered` when the newest of them left */
    uint64_t rate;            /* delivery rate, bytes/s; 0: no sample */
    int app_limited;          /* the sender had nothing to send then */
    uint32_t rtt_us;          /* round-trip sample; 0: none */
    uint64_t inflight;        /* bytes in flight after this ack */
};

struct cc {
    enum cc_mode mode;
    uint32_t mss;               /* bytes of one full datagram */
    uint64_t bw;                /* bytes/s, max of bw_round[] */
    uint64_t bw_round[CC_BW_ROUNDS];
    uint32_t path_rounds;       /* bit i: round i of bw_round[] had a
                                   sample the application did not limit */
    int paced_by_path;          /* pacing_rate came from such a bw */
    uint64_t initial_cwnd;      /* bytes */
    uint64_t round, next_round_delivered;
    uint32_t min_rtt_us;        /* 0: not measured yet */
    rmsg_time min_rtt_at;
    uint64_t full_bw;           /* startup: bw three rounds ago */
    int full_count, full;
    uint64_t round_lost;        /* datagrams found lost this round */
    uint64_t round_lost_bytes;  /* and their bytes */
    uint64_t round_delivered;   /* `delivered` when this round began */
    int cycle;                  /* PROBE_BW phase, 0..7 */
    rmsg_time cycle_at;
    rmsg_time probe_rtt_end;    /* RMSG_NEVER until inflight is low */
    uint32_t probe_rtt_min;
    enum cc_mode before_probe_rtt;
    int recovering;             /* after a timeout, until a round passes */
    uint64_t recover_round, prior_cwnd;
    uint32_t pacing_gain, cwnd_gain; /* x256 */
    uint64_t pacing_rate;       /* bytes/s; 0: do not pace */
    uint64_t cwnd;              /* bytes allowed in flight */
};

/* Starts a controller for datagrams of up to mss bytes with an initial
 * window of initial_dgrams datagrams. */
void cc_init(struct cc *cc, uint32_t mss, uint32_t initial_dgrams);

/* Folds in what an acknowledgment reported.  srtt_us (0: unknown) sets the
 * pacing rate until a sample the application did not limit has measured
 * the path. */
void cc_on_ack(struct cc *cc, const struct cc_sample *rs, uint32_t srtt_us,
               rmsg_time now);

/* A datagram of `bytes` was found lost (by RACK, a probe or the timer). */
void cc_on_lost(struct cc *cc, uint64_t bytes);
/* The retransmission timer expired: the path may have changed completely,
 * so the window falls to its minimum and grows back as acks return. */
void cc_on_timeout(struct cc *cc);

/* The bandwidth-delay product at the given gain (x256), bytes. */
uint64_t cc_bdp(const struct cc *cc, uint32_t gain);

#endif
