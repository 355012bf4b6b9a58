/*
 * rmsg.h - reliable, ordered messages of any size over UDP.
 *
 * rmsg turns UDP datagrams into messages that arrive exactly once, in order,
 * intact, or are reported failed.  It has two levels that share one protocol:
 *
 *   - The protocol core (rmsg_core_*) is "sans I/O": it never reads a clock
 *     and never touches a socket.  Datagrams go in with rmsg_core_input,
 *     datagrams to send come out of rmsg_core_output into the caller's
 *     buffer, time is a parameter, and rmsg_core_next says when the core next
 *     needs to run.  The tests drive it over a simulated link with a virtual
 *     clock; a student can read it as the protocol alone.
 *
 *   - The endpoint (rmsg_open, rmsg_send, rmsg_recv, ...) runs the core over
 *     one UDP socket with the real clock.  Its calls block until done or until
 *     their timeout, sleeping in poll or on a condition variable; the calling
 *     thread does its own sending and receiving, so a round trip costs about
 *     what raw UDP costs.  Progress happens inside calls: an endpoint that no
 *     thread is calling into neither retransmits nor acknowledges.
 *
 * Errors: functions return >= 0 on success and a negative errno value on
 * failure (-EINVAL, -ENOMEM, -ETIMEDOUT, -EMSGSIZE, -ECONNRESET, ...).
 * The mechanisms (acknowledgments, RFC 6298 retransmission timer, selective
 * acknowledgment, fragmentation, flow control, relations and restarts) are
 * described at the top of rmsg.c; the wire format is in lib/wire.h.
 */
#ifndef RMSG_H
#define RMSG_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "udp.h"

/* ------------------------------------------------------------------------ */
/* Types and configuration                                                   */
/* ------------------------------------------------------------------------ */

/* Time in microseconds on the caller's clock (the endpoint uses
 * CLOCK_MONOTONIC).  RMSG_NEVER means "no deadline". */
typedef int64_t rmsg_time;
#define RMSG_NEVER INT64_MAX

/* Defaults, each overridable in struct rmsg_config. */
#define RMSG_DATAGRAM_DEFAULT   1400        /* bytes: fits a 1500-byte MTU */
#define RMSG_MSG_MAX_DEFAULT    (1u << 30)  /* 1 GiB */
#define RMSG_WINDOW_DEFAULT     4096        /* fragments */
#define RMSG_RECV_BUFFER_DEFAULT (16u << 20) /* bytes per peer */
#define RMSG_RECV_TOTAL_DEFAULT ((1056u) << 20) /* bytes for all peers: a
                                       message of msg_max, and two peers'
                                       recv_buffer besides */
#define RMSG_SEND_BUFFER_DEFAULT (16u << 20) /* bytes per peer */
#define RMSG_PEERS_DEFAULT      1024
#define RMSG_RTO_MIN_US         5000        /* 5 ms: a busy host may not
                                               run the receiver for a few
                                               ms; RACK finds most losses
                                               sooner */
#define RMSG_RTO_MAX_US         2000000     /* 2 s: cap on backoff */
#define RMSG_RTO_INITIAL_US     200000      /* 200 ms before any sample */
#define RMSG_ACK_DELAY_US       2000        /* hold a lone ack this long */
#define RMSG_VALIDATE_AUTO      (-1)

/* Settings of a core or endpoint.  Fill it with rmsg_config_default, then
 * change what you need. */
struct rmsg_config {
    size_t datagram_max;    /* largest datagram sent, header included:
                               110..65507 bytes */
    uint32_t msg_max;       /* largest message accepted from peers, bytes
                               (at least 1); what a peer is told is at most
                               recv_total, which has to hold it whole */
    uint32_t window;        /* fragments in flight per peer, and the most
                               the receiver buffers out of order (power of 2,
                               16..65536) */
    size_t recv_buffer;     /* per peer: bytes held out of order plus bytes
                               of whole messages not yet received by the
                               application, beyond which the advertised
                               window shrinks to zero */
    size_t recv_total;      /* all peers: bytes of reassembly and unread
                               messages; fragments beyond it are dropped.
                               A limit, not an allocation: memory follows
                               the bytes that arrive.  Several peers'
                               large messages in progress at once can
                               fill it together, and then wait for one
                               another until their deadlines: make it at
                               least as many largest messages as peers
                               may send at once */
    size_t send_buffer;     /* per peer: the most bytes of messages queued
                               and not yet acknowledged, each counted 128
                               bytes larger for its bookkeeping, plus 4
                               bytes a fragment for its CRC.  Below it the
                               queue holds what the path needs: the most of
                               4 MiB, two congestion windows and two
                               messages of the size being queued.  Beyond,
                               a send gets -ENOBUFS (a message to an empty
                               queue is always taken, whatever its size) */
    uint32_t max_peers;     /* peer relations held at once */
    uint32_t rto_min_us, rto_max_us, rto_initial_us;
    uint32_t ack_delay_us;  /* longest an acknowledgment waits for data to
                               ride on */
    int validate;           /* address validation: 1 on, 0 off, or
                               RMSG_VALIDATE_AUTO (the default): on for an
                               endpoint opened on a fixed port (a server),
                               off on an ephemeral one; a core on its own
                               takes it as on.  An endpoint that validates
                               keeps no state for, and never sends more
                               bytes than it received to, an address that
                               has not proven it receives (rmsg.c) */
    /* Tracing: when trace is not NULL, one line per protocol event. */
    void (*trace)(void *arg, const char *line);
    void *trace_arg;
};

/* Fills *cfg with the defaults above. */
void rmsg_config_default(struct rmsg_config *cfg);

/* Counters of an endpoint (all peers) or of one peer. */
struct rmsg_stats {
    uint64_t datagrams_sent, datagrams_received;
    uint64_t bytes_sent, bytes_received; /* datagram bytes, headers included */
    uint64_t messages_sent;      /* acknowledged */
    uint64_t messages_received;  /* delivered to the application */
    uint64_t messages_failed;    /* timed out, too large, peer restarted */
    uint64_t retransmissions;    /* fragments sent again */
    uint64_t timeouts;           /* retransmission timer expiries */
    uint64_t duplicates;         /* fragments received twice, dropped */
    uint64_t corrupt;            /* bad checksum, dropped */
    uint64_t malformed;          /* short, bad version, bad lengths, dropped */
    uint64_t refused;            /* no room: window, memory, peer table */
    uint64_t acks_sent;          /* pure acknowledgments */
    uint64_t resets;             /* relations restarted */
    uint64_t evicted;            /* idle relations set aside for room */
    uint64_t address_checks;     /* first datagrams from an unproven
                                    address answered with a RETRY */
    uint32_t peers;              /* relations now */
    uint32_t srtt_us, rttvar_us, rto_us; /* per peer; endpoint: last peer */
    uint32_t cwnd, in_flight;    /* fragments: congestion window, sent and
                                    not yet acknowledged */
    uint64_t delivery_rate;      /* bytes/s the path delivers (estimate) */
    uint64_t pacing_rate;        /* bytes/s the sender spaces data to */
    uint32_t min_rtt_us;         /* lowest recent round trip */
    uint64_t memory;             /* receive-side bytes held (reassembly,
                                    out of order, unread) */
};

/* ------------------------------------------------------------------------ */
/* The protocol core (sans I/O)                                              */
/* ------------------------------------------------------------------------ */

struct rmsg_core;

/* What happened to a message sent with RMSG_NOTIFY, or to any message that
 * failed: its id, its peer, and 0 (acknowledged) or the error. */
struct rmsg_event {
    uint64_t id;
    struct udp_addr peer;
    int error; /* 0, -ETIMEDOUT, -EMSGSIZE, -ECONNRESET */
};

/* Flags for rmsg_core_send. */
#define RMSG_NOTIFY 1 /* report the outcome, success included, as an event */

/* Creates a core.  seed makes its random choices (relation ids, cookies)
 * reproducible: the same seed, inputs and times give the same outputs.
 * Returns 0 and the core in *out, -EINVAL for a bad configuration, -ENOMEM. */
int rmsg_core_new(const struct rmsg_config *cfg, uint64_t seed,
                  struct rmsg_core **out);

/* Frees the core and every message it holds.  NULL is a no-op. */
void rmsg_core_free(struct rmsg_core *c);

/* Queues a copy of len bytes of msg for peer `to`, to be delivered whole and
 * in order after the messages queued before it.  It fails with -ETIMEDOUT if
 * not acknowledged by `deadline` (RMSG_NEVER: never).  Returns the message's
 * id (> 0), or -EMSGSIZE (larger than the peer accepts), -ENOBUFS (the
 * peer's queue is full, see send_buffer: try again once some are
 * acknowledged), -ENOMEM, -EINVAL.  The caller keeps msg. */
int64_t rmsg_core_send(struct rmsg_core *c, const struct udp_addr *to,
                       const void *msg, size_t len, int flags,
                       rmsg_time deadline, rmsg_time now);

/* Hands the core one received datagram.  Never fails: whatever is wrong
 * with the datagram is counted and it is dropped.  Returns 0. */
int rmsg_core_input(struct rmsg_core *c, const struct udp_addr *from,
                    const void *dgram, size_t len, rmsg_time now);

/* Runs due timers and writes the next datagram to send into buf (cap bytes,
 * at least datagram_max), its destination into *to.  Returns its length, or
 * 0 when nothing is to be sent now.  Call it until it returns 0. */
int rmsg_core_output(struct rmsg_core *c, rmsg_time now, struct udp_addr *to,
                     void *buf, size_t cap);

/* Like rmsg_core_output, but a DATA datagram is not copied whole into the
 * caller's buffer: head (cap bytes, at least RMSG_HEAD_MAX) gets its
 * header, and *body / *body_len the payload, which lies in the core's copy
 * of the message and must be sent right after the head as one datagram
 * (UDP_SendParts does; the checksum covers both).  For other datagrams
 * *body_len is 0.  The body stays valid until the next call of any other
 * rmsg_core_* function than rmsg_core_output_parts and rmsg_core_next, so
 * a batch of datagrams can be produced and then sent.  Returns the head's
 * length, 0 when nothing is to be sent now, or -EINVAL. */
int rmsg_core_output_parts(struct rmsg_core *c, rmsg_time now,
                           struct udp_addr *to, void *head, size_t cap,
                           const void **body, size_t *body_len);
#define RMSG_HEAD_MAX 320 /* bytes: the largest header, SACK blocks and all */

/* The time at which the core next needs rmsg_core_output called even if no
 * datagram arrives, or RMSG_NEVER. */
rmsg_time rmsg_core_next(struct rmsg_core *c);

/* The part of rmsg_core_next that must not run late: the timers that keep
 * data moving (pacing, loss detection among reordered fragments,
 * acknowledgments, and on a path that lost datagrams in the last two
 * seconds the tail loss probe).  The rest (retransmission and probe timers,
 * deadlines) are for when nothing comes back, and may run a few
 * milliseconds late without harm; a driver may sleep on a coarse timer
 * until them.  RMSG_NEVER when there is none. */
rmsg_time rmsg_core_next_strict(struct rmsg_core *c);

/* Takes the next whole message received from any peer.  On success returns
 * 0, stores the sender in *from and a malloc'd buffer the caller must free()
 * in *msg (NULL for an empty message) with its length in *len.  Returns
 * -EAGAIN when no message is waiting. */
int rmsg_core_recv(struct rmsg_core *c, struct udp_addr *from, void **msg,
                   size_t *len);

/* Gives back a message rmsg_core_recv returned, instead of free()ing it
 * (see rmsg_recycle).  Takes msg in every case; NULL is fine. */
void rmsg_core_recycle(struct rmsg_core *c, void *msg, size_t len);

/* Takes the next event (see struct rmsg_event).  Returns 0, or -EAGAIN. */
int rmsg_core_event(struct rmsg_core *c, struct rmsg_event *ev);

/* Asks for every pending acknowledgment to leave at the next output rather
 * than wait for data to ride on: call it when the application is about to
 * wait with nothing to send. */
void rmsg_core_ack_now(struct rmsg_core *c);

/* Sets (or, with fn NULL, removes) the trace callback of the core: one
 * line per protocol event.  Lines are only formatted while one is set. */
void rmsg_core_trace(struct rmsg_core *c,
                     void (*fn)(void *arg, const char *line), void *arg);

/* Messages queued or in flight but not yet acknowledged or failed. */
uint64_t rmsg_core_pending(const struct rmsg_core *c);

/* Copies the counters of all peers (peer == NULL) or of one peer into *st.
 * Returns 0, or -ENOENT when there is no relation with that peer. */
int rmsg_core_stats(const struct rmsg_core *c, const struct udp_addr *peer,
                    struct rmsg_stats *st);

/* ------------------------------------------------------------------------ */
/* The endpoint: the core over a UDP socket                                  */
/* ------------------------------------------------------------------------ */

struct rmsg_endpoint;

/* What "exactly once" covers: a message reaches the peer's application at
 * most once per instance of the peer.  When the receiving process crashes
 * after taking a message but before its acknowledgment left, the sender
 * (which never heard back) sends it again, and the instance that replaces
 * the crashed one on the same address takes it too: the new instance has
 * no memory of the old one's.  The rpc layer closes that gap for calls by
 * naming the server's incarnation in each one (see rpc.h). */

/* Opens an endpoint on `port` (0 = ephemeral) with cfg (NULL = defaults).
 * The socket is dual-stack when the host has IPv6.  RMSG_TRACE=1 in the
 * environment turns tracing on (to stderr); UDP_FAULTS applies as for any
 * socket of the udp layer.  Returns 0 and the endpoint in *out, or -errno. */
int rmsg_open(int port, const struct rmsg_config *cfg,
              struct rmsg_endpoint **out);

/* Closes the endpoint; messages not yet acknowledged are abandoned (call
 * rmsg_flush first to wait for them).  NULL is a no-op. */
void rmsg_close(struct rmsg_endpoint *ep);

/* The local port the endpoint is bound to. */
int rmsg_port(const struct rmsg_endpoint *ep);

/* Sends len bytes of msg to `to` and waits until the peer has acknowledged
 * the whole message, at most timeout_ms (negative: as long as it takes).
 * Returns 0, or -ETIMEDOUT (not acknowledged in time: it may or may not have
 * been delivered), -EMSGSIZE, -ECONNRESET (the peer restarted), -ENOMEM,
 * -EINVAL.  The caller keeps msg. */
int rmsg_send(struct rmsg_endpoint *ep, const struct udp_addr *to,
              const void *msg, size_t len, int timeout_ms);

/* Queues a copy of msg for `to` and returns its id (> 0): at once while the
 * peer's queue has room (see send_buffer), else as soon as acknowledgments
 * make room.  The message must be acknowledged within timeout_ms (negative:
 * no limit) or it is reported failed; rmsg_flush waits for all of them.
 * Errors as rmsg_core_send, but a full queue that does not make room within
 * timeout_ms gives -ETIMEDOUT. */
int64_t rmsg_send_async(struct rmsg_endpoint *ep, const struct udp_addr *to,
                        const void *msg, size_t len, int timeout_ms);

/* Like rmsg_send_async, but never waits: a full queue gives -ENOBUFS at
 * once.  For a thread that must not block on its peer, such as one that
 * also has to take the messages whose acknowledgments would make room. */
int64_t rmsg_send_nowait(struct rmsg_endpoint *ep, const struct udp_addr *to,
                         const void *msg, size_t len, int timeout_ms);

/* Waits until every message queued so far is acknowledged or failed, at
 * most timeout_ms (negative: as long as it takes).  Returns 0 when all were
 * acknowledged, the number of messages that failed since the last call
 * (> 0; their details come from rmsg_failure), or -ETIMEDOUT. */
int rmsg_flush(struct rmsg_endpoint *ep, int timeout_ms);

/* Takes the oldest unreported failure of an asynchronous send.  Returns 0
 * and fills *ev, or -EAGAIN when there is none. */
int rmsg_failure(struct rmsg_endpoint *ep, struct rmsg_event *ev);

/* Waits at most timeout_ms (negative: forever; 0: do not wait) for the next
 * whole message from any peer.  Returns 0 with the sender in *from (may be
 * NULL), a malloc'd buffer the caller frees with free() in *msg and its
 * length in *len; or -ETIMEDOUT. */
int rmsg_recv(struct rmsg_endpoint *ep, struct udp_addr *from, void **msg,
              size_t *len, int timeout_ms);

/* Gives back a message rmsg_recv returned (msg and its len), instead of
 * free()ing it: the endpoint may keep it, one message of 4 MiB or more at
 * most, to reassemble the next large message in.  Fresh memory for a
 * large message costs the kernel a page fault and a page of zeroes per
 * page; for 64 MiB messages on loopback that is more time than receiving
 * them.  The kept buffer is freed when a large message comes that it does
 * not fit (smaller than it, or less than half its size), and at
 * rmsg_close.  Takes msg in every case; NULL is fine. */
void rmsg_recycle(struct rmsg_endpoint *ep, void *msg, size_t len);

/* Runs the protocol for timeout_ms (>= 0) without taking any message:
 * datagrams are received and acknowledged, timers run.  For a thread that
 * wants the endpoint to make progress while it is not ready to receive
 * (an endpoint no thread calls into does nothing).  Returns 0, -EINTR
 * (rmsg_interrupt), or -EINVAL. */
int rmsg_poll(struct rmsg_endpoint *ep, int timeout_ms);

/* on != 0: every blocking call on ep (rmsg_send, rmsg_flush, rmsg_recv,
 * rmsg_poll), those waiting now and later ones, returns -EINTR until
 * rmsg_interrupt(ep, 0).  Safe from a signal handler and another thread:
 * this is how a server loop blocked in rmsg_recv is stopped. */
void rmsg_interrupt(struct rmsg_endpoint *ep, int on);

/* Copies the endpoint's counters (peer == NULL) or one peer's into *st.
 * Returns 0 or -ENOENT. */
int rmsg_stats(struct rmsg_endpoint *ep, const struct udp_addr *peer,
               struct rmsg_stats *st);

/* Sends trace lines to f (NULL turns tracing off). */
void rmsg_trace(struct rmsg_endpoint *ep, FILE *f);

#endif /* RMSG_H */
