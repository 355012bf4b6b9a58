/*
 * simlink.h - a simulated network for driving protocol cores with a virtual
 * clock: nodes exchange datagrams over a link that loses, duplicates,
 * reorders, corrupts and delays them, all decided by one seeded generator,
 * so a run is a pure function of its seed.  A test that needs one datagram
 * lost or kept for later sets a hook that sees each of them.
 */
#ifndef RMSG_SIMLINK_H
#define RMSG_SIMLINK_H

#include <stddef.h>
#include <stdint.h>

#include "rmsg.h"

struct sim_faults {
    double drop, dup, reorder, corrupt; /* probabilities per datagram */
    rmsg_time delay_us;                 /* one-way base delay */
    rmsg_time jitter_us;                /* extra delay for reordered ones */
    /* A bottleneck on each node's way out, like a token-bucket qdisc:
     * datagrams leave at rate_bps bytes/s (28 bytes of IP and UDP headers
     * counted), waiting in a FIFO of queue_bytes; what does not fit is
     * dropped.  rate_bps 0: no bottleneck.  Random drop happens after it. */
    uint64_t rate_bps;
    size_t queue_bytes;
};

struct sim;

/* A link of n nodes (n <= 16), each with its own core built from cfg. */
struct sim *sim_new(int n, const struct rmsg_config *cfg,
                    const struct sim_faults *f, uint64_t seed);
void sim_free(struct sim *s);

struct rmsg_core *sim_core(struct sim *s, int node);
const struct udp_addr *sim_addr(struct sim *s, int node);
/* The node an address belongs to, or -1. */
int sim_node_of(struct sim *s, const struct udp_addr *a);
rmsg_time sim_now(const struct sim *s);
/* Replaces a node's core by a fresh one (a crash and restart). */
void sim_restart(struct sim *s, int node, uint64_t seed);
/* Makes a node silent (it neither sends nor receives) until further notice. */
void sim_silence(struct sim *s, int node, int silent);

/* A hook that sees each datagram as it is put on the link, before the
 * bottleneck and the faults: it returns 0 to drop the datagram (counted as
 * dropped), anything else to let it go on.  It may keep a copy of the
 * bytes, for instance to hand them to a core later (rmsg_core_input) as a
 * late duplicate. */
typedef int (*sim_hook)(void *arg, int from, int to, const uint8_t *d,
                        size_t len);
/* Sets the hook (fn NULL: none). */
void sim_set_hook(struct sim *s, sim_hook fn, void *arg);

/* Moves every core's output onto the link and delivers what is due, then
 * advances the clock to the next thing that will happen, but not beyond
 * `until`.  Returns 0, or -1 when nothing would ever happen again (the
 * clock then jumps to `until`). */
int sim_step(struct sim *s, rmsg_time until);

/* Counters of the link. */
struct sim_counts {
    uint64_t sent, dropped, duplicated, reordered, corrupted, delivered;
    uint64_t overflowed; /* dropped because the bottleneck queue was full */
};
void sim_counts(const struct sim *s, struct sim_counts *out);

/* A deterministic random number from the simulation's generator. */
uint64_t sim_rand(struct sim *s);

#endif
