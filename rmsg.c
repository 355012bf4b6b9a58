/*
 * rmsg.c - the reliable-message protocol core (sans I/O).
 *
 * This file is the protocol and nothing else: it never reads a clock and
 * never touches a socket.  rmsg_core_input takes a datagram, rmsg_core_output
 * produces the next datagram to send, time comes in as a parameter, and
 * rmsg_core_next says when to call again.  rmsg_endpoint.c runs it over a
 * socket; the tests run it over a simulated link.
 *
 * How a message travels
 *   A message is cut into fragments that fit one datagram.  Each fragment
 *   gets the next sequence number of its peer relation (32 bits, compared
 *   modulo 2^32) and carries the message length and its own offset, so the
 *   receiver can check that consecutive fragments really continue the same
 *   message.  The receiver places fragments by sequence number: the next
 *   expected one is appended to the message being reassembled, later ones
 *   wait in an out-of-order buffer, earlier ones are duplicates (acknowledged
 *   again, never delivered twice).  A message is delivered, as one buffer,
 *   when its last byte has arrived in order.
 *
 * Acknowledgments
 *   Every datagram to a peer carries a cumulative acknowledgment (all
 *   fragments below it arrived), the receive window and, when fragments
 *   arrived out of order, selective-acknowledgment (SACK) blocks.  A lone
 *   acknowledgment waits up to ack_delay_us for data going the other way to
 *   ride on (so a request and its reply cost two datagrams), except when
 *   fragments arrive out of order or several arrive at once: then it leaves
 *   at the end of the batch.
 *
 * Retransmission
 *   The sender keeps each unacknowledged fragment (a reference into its copy
 *   of the message).  Round-trip samples give SRTT, RTTVAR and RTO as RFC
 *   6298 says, never from a retransmitted fragment (Karn's rule; a copy
 *   sent again because the peer dropped every earlier one unread, asking
 *   for an address token, is timed), with the acknowledgment delay the
 *   peer reports subtracted.  Loss is found two
 *   ways: a fragment sent before one that has since been acknowledged, and
 *   outstanding for longer than a round trip plus a reordering allowance
 *   (a quarter of the shortest round trip, more once retransmissions prove
 *   to have been spurious) is lost (RACK, RFC 8985, which also finds lost
 *   retransmissions); and when the retransmission timer expires the oldest
 *   fragment is sent again and the timer doubles, up to rto_max_us.
 *
 * Congestion control
 *   How fast to send is lib/cc.c's decision, a BBR-style model of the path
 *   (its bottleneck rate and its empty-queue round trip) that random loss
 *   does not fool.  The core counts the bytes in flight, measures the
 *   delivery rate every acknowledgment shows, keeps what is in flight under
 *   the controller's window and spaces fragments out at its pacing rate;
 *   rmsg_core_next reports when the pacer lets the next one go.
 *
 * Flow control
 *   The receiver advertises how many more fragments it can hold: its
 *   configured window, less what out-of-order fragments and messages the
 *   application has not read yet take from recv_buffer.  The sender never
 *   sends beyond it; while it is zero the sender probes with one fragment,
 *   waiting one retransmission timeout and then twice as long each time
 *   (RFC 1122's persist timer).  A receiver whose application has not
 *   read recv_buffer bytes refuses even the probe, so it holds at most
 *   recv_buffer plus the message being reassembled.
 *
 * Relations
 *   Each side gives every peer relation a random id (cid), which is also
 *   where its sequence numbers start; datagrams carry the sender's cid and
 *   the receiver's as the sender knows it (0: not yet known).  Datagrams for
 *   a relation the receiver no longer has are answered with RESET, which
 *   makes the sender fail what it had outstanding (-ECONNRESET) and start a
 *   new relation: that is how a restarted peer is noticed.  A datagram that
 *   announces a new relation from an address that already has one may be a
 *   restart or a stale datagram: the receiver sends a CHALLENGE with a keyed
 *   cookie and only an ECHO of that cookie, which only a live peer can send,
 *   replaces the old relation.
 *
 * Address validation
 *   An endpoint that validates (servers do by default) keeps no state for
 *   the first datagram of a relation from an address it has not heard
 *   from: it answers with a RETRY carrying a keyed token, and only a
 *   datagram that brings the token back starts the relation, so forged
 *   source addresses can neither fill the peer table nor make the endpoint
 *   an amplifier (details in the section of that name below).
 *
 * Deadlines
 *   A message not acknowledged by its deadline fails with -ETIMEDOUT.  If
 *   none of its fragments had been sent it simply leaves the queue;
 *   otherwise the relation is reset and everything queued for the peer
 *   fails, since the stream cannot continue past a hole.
 *
 * Costs admitted: timers and output scan the peer list (O(peers)); loss
 * detection scans the window under loss (O(window)).  A heap and a
 * time-ordered list would fix both when they matter.
 */
#define _DEFAULT_SOURCE /* madvise and MADV_HUGEPAGE, where there are */
#include "rmsg.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cc.h"
#include "siphash.h"
#include "wire.h"

#define TLP_MIN_US 1000       /* earliest tail loss probe */
#define DEAD_CIDS 4           /* ended relations of a peer remembered */
#define LOSS_EPOCH 512        /* datagrams over which losses are counted */
#define LOSS_SHARE 200        /* lossy: more than 1/200 of them lost */
#define ACK_EVERY_FRAGS 8     /* an acknowledgment at least this often, */
#define ACK_EVERY_BYTES 65536 /* or this often with large fragments */
#define MSG_OVERHEAD 128 /* bytes a queued message costs beyond its own,
                            and its fragment CRCs (msg_cost) */
_Static_assert(RMSG_HEAD_MAX >= WIRE_HEAD_MAX, "RMSG_HEAD_MAX too small");
#define TOKEN_PERIOD_US 10000000 /* address tokens last one to two of these */
#define DELIVERY_BYTES 64 /* what an unread message costs beyond its own */
#define REASM_FIRST_BYTES 65536 /* first buffer of a long message; it doubles
                                   as bytes arrive, so memory follows what
                                   came, not a length a peer claims */
#define IP_UDP_BYTES 28      /* IPv4 and UDP headers: the path carries them */
#define CC_INITIAL_DGRAMS 32 /* initial congestion window */
#define PACE_BURST_US 1000   /* most a late sender may catch up at once */
#define ACK_DELAY_CAP_US 25000 /* most of a peer's ack delay the timer waits
                                  for: beyond, the peer is not calling in */

/* ------------------------------------------------------------------------ */
/* State                                                                     */
/* ------------------------------------------------------------------------ */

/* A message being sent.  It lives until it is acknowledged or failed and
 * no fragment in the send window refers to it. */
struct msg {
    struct msg *next;
    uint64_t id;
    uint8_t *data; /* the copy of the message, in the same allocation */
    uint32_t *fcrc; /* or NULL: fcrc[k] is the CRC of the payload_max
                       bytes from k * payload_max on (every whole
                       fragment), taken while copying; same allocation */
    size_t cost;      /* what it counts in the peer's queued_bytes */
    uint32_t len;
    uint32_t cut;     /* bytes already cut into fragments */
    uint32_t unacked; /* fragments cut and not yet acknowledged */
    int all_cut;      /* every fragment has a sequence number */
    int failed;       /* reported failed; kept for fragments in flight */
    int flags;
    int small; /* allocated with SMALL_MSG_BYTES (see msg_alloc) */
    size_t room; /* bytes allocated after the struct, for reuse */
    rmsg_time deadline;
};

/* Messages of up to this many bytes (CRCs included) all get an allocation
 * of this size, so that the core can keep one that was freed for the next
 * (c->spare): a request or a reply then costs no malloc and free. */
#define SMALL_MSG_BYTES 256

/* Buffers of at least this many bytes ask for huge pages (want_huge_pages),
 * and one of them is kept for the next large message (see msg_alloc and
 * rmsg_core_recycle). */
#define HUGE_BUFFER_BYTES ((size_t)4 << 20)

/* A fragment in the send window, indexed by sequence number. */
struct frag {
    struct msg *msg;
    uint32_t off;
    uint16_t len;
    uint8_t tx;      /* times transmitted */
    uint8_t sacked;  /* reported received out of order */
    uint8_t lost;    /* declared lost, waiting to be sent again */
    uint8_t in_pipe; /* counted in the peer's bytes in flight */
    uint8_t app_limited; /* sent while the sender had nothing more */
    uint8_t refused; /* the peer dropped every copy so far unread */
    rmsg_time sent;
    uint64_t order; /* transmission order, for RACK */
    /* Delivery-rate sampling (the state when this copy was sent). */
    uint64_t prior_delivered;
    rmsg_time prior_time, first_sent;
};

/* A fragment waiting in the receiver's out-of-order buffer. */
struct held {
    uint8_t *payload; /* its copy; NULL: in place, or the slot is empty */
    uint32_t msg_len, off;
    uint16_t len;
    uint8_t in_place; /* copied to its place in the reassembly buffer ... */
    uint32_t gen;     /* ... of the message p->rgen numbered */
};

/* Whether a slot of the receive ring holds a fragment. */
static int held_in(const struct held *h)
{
    return h->payload != NULL || h->in_place;
}

/* A whole message waiting for the application. */
struct delivery {
    struct peer *peer; /* NULL once the relation is gone */
    struct udp_addr from; /* the sender, set when peer becomes NULL */
    uint8_t *data;
    size_t len;
};

/* A first-in, first-out queue of items of one size in a ring that grows
 * by doubling: deliveries and events come and go with every message, and
 * taking them from a ring costs nothing like an allocation each. */
struct fifo {
    unsigned char *ring;
    size_t size; /* bytes of an item */
    uint32_t head, count, cap;
};

struct peer {
    struct peer *next;      /* all peers */
    struct peer *hash_next; /* same hash bucket */
    struct udp_addr addr;
    uint32_t my_cid, peer_cid; /* peer_cid 0: not known yet */
    rmsg_time last_heard;

    /* Sending. */
    struct msg *sendq, *sendq_tail; /* not yet acknowledged or failed */
    struct msg *cutting;            /* first message not wholly cut */
    size_t queued_bytes; /* msg_cost of the messages in sendq: tiny
                            messages are bounded too */
    rmsg_time deadline_next;        /* earliest deadline in sendq */
    uint32_t lost_hint;             /* no lost fragment below this */
    rmsg_time rack_at;              /* RACK reordering timer */
    uint32_t adv_wnd;               /* window last advertised */
    uint32_t unacked_frags;         /* arrived since our last ack */
    uint32_t unacked_bytes;         /* their payload */
    struct frag *sw;                /* ring of sw_cap fragment slots */
    uint32_t sw_cap;
    uint32_t snd_una, snd_nxt; /* oldest unacknowledged, next new */
    uint32_t peer_wnd;         /* fragments past snd_una the peer accepts */
    uint32_t peer_max_msg;     /* 0: not known yet */
    uint32_t lost;             /* fragments marked lost */
    struct cc cc;              /* congestion control: window and pacing */
    uint64_t pipe;             /* bytes sent, not acked, sacked or lost */
    uint64_t delivered;        /* bytes known to have arrived */
    rmsg_time delivered_time;  /* when `delivered` last grew */
    rmsg_time first_sent_time; /* send time of the newest delivered */
    uint64_t app_limited;      /* nonzero: idle until delivered passes it */
    rmsg_time pace_at;         /* the next fragment may leave then */
    uint64_t tx_order, rack_order;
    rmsg_time rack_sent;
    uint32_t reo_steps;  /* RACK's reordering allowance: 1 + this many
                            quarters of min_rtt (see judge_retransmission) */
    uint32_t reo_needed; /* retransmissions found needed since it grew */
    uint32_t srtt, rttvar, rto, min_rtt; /* microseconds */
    uint32_t ack_delay_max;              /* longest the peer held an ack */
    uint32_t rx_frag_size;               /* the peer's fragment size, for
                                            the trace */
    int have_rtt;
    int backoff; /* consecutive timer expiries */
    rmsg_time rto_at, probe_at;
    int probes; /* zero-window probes since the window was last open */
    int rto_probe; /* the timer expired: one fragment goes regardless */
    int has_token;  /* the peer asked for its address token (RETRY) */
    uint64_t token; /* which goes with every datagram until it answers */
    rmsg_time tlp_at; /* tail loss probe due (RMSG_NEVER: none) */
    /* Whether the path loses datagrams (see note_loss): losses found
     * among the last LOSS_EPOCH datagrams sent to the peer. */
    uint32_t epoch_sent, epoch_losses;
    int lossy;
    int tlp_sent;     /* a probe went and nothing was delivered since */

    /* Receiving. */
    uint32_t rcv_nxt;
    struct held *rw; /* ring of rw_cap slots from rcv_nxt */
    uint32_t rw_cap, held_count;
    uint32_t newest_first, newest_end; /* held fragments around the one
                                          that arrived last (see
                                          build_sacks); empty when equal */
    size_t held_bytes, unread_bytes;
    size_t held_alloc; /* of held_bytes, those in copies of their own */
    uint32_t rgen;     /* counts the messages begun (see hold_in_place) */
    uint8_t *rbuf; /* message being reassembled */
    uint32_t rlen, rgot, rcap;
    int reassembling, discarding;
    int ack_now;         /* send an acknowledgment at the next output */
    rmsg_time ack_at;    /* delayed acknowledgment due (RMSG_NEVER: none) */
    rmsg_time last_arrival; /* of the newest fragment; an acknowledgment
                               reports how long ago that was */

    /* Control datagrams to send. */
    int send_reset, send_challenge, send_echo;
    /* The peer's ids of relations that ended here: a late datagram of one
     * (a duplicate of its first, a retransmission, an ECHO) must not be
     * taken for a new relation and deliver again what it delivered. */
    uint32_t dead_cid[DEAD_CIDS];
    int dead_next;
    uint32_t ctl_cid; /* their cid for those */
    uint64_t echo_cookie;

    struct rmsg_stats st;
};

/* A relation set aside to make room in the peer table, remembered so that
 * its peer can carry on where it left off (see "Relations" at the top). */
struct tomb {
    struct udp_addr addr;
    uint32_t my_cid, peer_cid, snd_nxt, rcv_nxt, peer_max_msg;
    int used;
};

struct rmsg_core {
    struct rmsg_config cfg;
    uint32_t payload_max; /* bytes of message per fragment */
    uint32_t mss;         /* bytes on the wire of a full fragment */
    struct crc32c_shift *frag_shift; /* for payload_max bytes, made for the
                                        first message of several fragments;
                                        NULL before (or without memory) */
    uint64_t rng;
    uint64_t key[2]; /* cookie key */
    uint64_t next_id;
    struct peer *peers;
    struct peer *last; /* found last by peer_find */
    struct peer **buckets;
    uint32_t nbuckets, npeers;
    struct tomb *tombs; /* nbuckets / 2 slots, by address hash */
    struct msg *graveyard; /* freed during output, see msg_free */
    struct msg *spare;     /* a small message's allocation, for reuse */
    struct msg *big;       /* a large one, while more messages wait */
    void *rspare;          /* a large received message given back ... */
    size_t rspare_len;     /* ... and its length (rmsg_core_recycle) */
    int in_output;
    const void **out_body; /* rmsg_core_output_parts: where the DATA */
    size_t *out_body_len;  /* payload goes instead of into the buffer */
    int drain_pending; /* a held fragment waits for memory (drain_held) */
    struct fifo dq; /* struct delivery, for rmsg_core_recv */
    struct fifo evq; /* struct rmsg_event, for rmsg_core_event */
    size_t mem; /* reassembly + held + unread bytes, all peers */
    uint64_t pending;
    /* Stateless replies (RESET, CHALLENGE to an unknown relation). */
    struct stateless {
        struct udp_addr to;
        uint8_t type;
        uint32_t cid;
        uint64_t cookie;
    } sl[16];
    int nsl;
    /* rmsg_core_next and rmsg_core_next_strict, worked out together and
     * kept until a call that can change them (see timers_changed): a
     * driver asks several times between two datagrams. */
    int next_known;
    rmsg_time next_at, next_strict_at;
    struct rmsg_stats st; /* endpoint-wide counters */
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

/* splitmix64: the core's deterministic random numbers. */
static uint64_t next_rand(struct rmsg_core *c)
{
    uint64_t z = (c->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static uint32_t new_cid(struct rmsg_core *c)
{
    uint32_t v;
    do
        v = (uint32_t)next_rand(c);
    while (v == 0);
    return v;
}

/* Called on entry to every rmsg_core_* function that can change when the
 * core next has to run: the times rmsg_core_next keeps must be worked out
 * again. */
static void timers_changed(struct rmsg_core *c)
{
    c->next_known = 0;
}

static rmsg_time tmin(rmsg_time a, rmsg_time b)
{
    return a < b ? a : b;
}

/* The comparable parts of an address: family, port, address bytes. */
static size_t addr_key(const struct udp_addr *a, uint8_t key[20])
{
    memset(key, 0, 20);
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *s = (const struct sockaddr_in *)&a->ss;
        key[0] = 4;
        memcpy(key + 2, &s->sin_port, 2);
        memcpy(key + 4, &s->sin_addr, 4);
        return 8;
    }
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *s = (const struct sockaddr_in6 *)&a->ss;
        key[0] = 6;
        memcpy(key + 2, &s->sin6_port, 2);
        memcpy(key + 4, &s->sin6_addr, 16);
        return 20;
    }
    return 0;
}

static int addr_eq(const struct udp_addr *a, const struct udp_addr *b)
{
    if (a->ss.ss_family != b->ss.ss_family)
        return 0;
    if (a->ss.ss_family == AF_INET) {
        const struct sockaddr_in *x = (const struct sockaddr_in *)&a->ss;
        const struct sockaddr_in *y = (const struct sockaddr_in *)&b->ss;
        return x->sin_port == y->sin_port &&
               x->sin_addr.s_addr == y->sin_addr.s_addr;
    }
    if (a->ss.ss_family == AF_INET6) {
        const struct sockaddr_in6 *x = (const struct sockaddr_in6 *)&a->ss;
        const struct sockaddr_in6 *y = (const struct sockaddr_in6 *)&b->ss;
        return x->sin6_port == y->sin6_port &&
               memcmp(&x->sin6_addr, &y->sin6_addr, 16) == 0;
    }
    return 0;
}

static uint32_t addr_hash(const struct rmsg_core *c, const struct udp_addr *a)
{
    uint8_t k[20];
    size_t n = addr_key(a, k);
    return (uint32_t)siphash24(c->key, k, n);
}

/* The cookie a live peer must echo: a keyed hash of its address and cid. */
static uint64_t cookie_for(const struct rmsg_core *c, const struct udp_addr *a,
                           uint32_t cid)
{
    uint8_t k[24];
    size_t n = addr_key(a, k);
    memcpy(k + n, &cid, 4);
    return siphash24(c->key, k, n + 4);
}

/* The CRC field of an encoded datagram (at least a header long), for the
 * trace: the same number on the sender's and the receiver's line. */
static uint32_t load_crc(const void *dgram)
{
    const uint8_t *b = dgram;
    return (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 |
           (uint32_t)b[14] << 8 | b[15];
}

/* A datagram type's name, for the trace. */
static const char *type_name(uint8_t type)
{
    static const char *names[] = {"?", "DATA", "ACK", "CHALLENGE", "ECHO",
                                  "RESET", "RETRY"};
    return type < sizeof(names) / sizeof(names[0]) ? names[type] : "?";
}

/* One trace line when tracing is on, the arguments not even computed when
 * it is off (this runs on every datagram's path). */
#define TRACE(c, ...)                                                        \
    do {                                                                     \
        if ((c)->cfg.trace)                                                  \
            trace_line((c), __VA_ARGS__);                                    \
    } while (0)

/* One trace line; see TRACE. */
static void trace_line(const struct rmsg_core *c, rmsg_time now,
                       const struct udp_addr *a, const char *fmt, ...)
{
    char line[256], who[64];
    int n = snprintf(line, sizeof(line), "%lld.%06lld %s ",
                     (long long)(now / 1000000), (long long)(now % 1000000),
                     a ? UDP_AddrString(a, who, sizeof(who)) : "-");
    va_list ap;
    va_start(ap, fmt);
    if (n > 0 && (size_t)n < sizeof(line))
        vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
    va_end(ap);
    c->cfg.trace(c->cfg.trace_arg, line);
}

/* Item i (0: the oldest) of a fifo. */
static void *fifo_at(const struct fifo *q, uint32_t i)
{
    return q->ring + (size_t)((q->head + i) & (q->cap - 1)) * q->size;
}

/* The slot for a new item at the back (the caller fills it, by assignment
 * of its own type: a copy the compiler sees the size of), or NULL when
 * there is no memory for it. */
static void *fifo_slot(struct fifo *q)
{
    if (q->count == q->cap) {
        uint32_t ncap = q->cap ? q->cap * 2 : 16;
        unsigned char *n = malloc((size_t)ncap * q->size);
        if (n == NULL || ncap < q->cap) {
            free(n);
            return NULL;
        }
        for (uint32_t i = 0; i < q->count; i++)
            memcpy(n + (size_t)i * q->size, fifo_at(q, i), q->size);
        free(q->ring);
        q->ring = n;
        q->cap = ncap;
        q->head = 0;
    }
    return fifo_at(q, q->count++);
}

/* The oldest item, or NULL when empty; fifo_drop removes it. */
static void *fifo_front(const struct fifo *q)
{
    return q->count ? fifo_at(q, 0) : NULL;
}

static void fifo_drop(struct fifo *q)
{
    q->head = (q->head + 1) & (q->cap - 1);
    q->count--;
}

static void push_event(struct rmsg_core *c, const struct peer *p,
                       uint64_t id, int error)
{
    struct rmsg_event *ev = fifo_slot(&c->evq);
    if (ev) /* without, the outcome is still counted */
        *ev = (struct rmsg_event){.id = id, .peer = p->addr, .error = error};
}

/* Asks for huge pages under a large buffer about to be filled.  Without
 * them, filling 64 MiB faults 16,384 times, once per 4 KiB page, and on
 * this path that costs more than the copy.  The hint covers every page the
 * buffer touches: advising part of a mapping splits it in two, and realloc
 * cannot grow a split mapping in place.  It never changes what memory
 * holds; where it is refused nothing changes. */
static void want_huge_pages(void *buf, size_t len)
{
#ifdef MADV_HUGEPAGE
    if (len < HUGE_BUFFER_BYTES)
        return; /* before sysconf: most buffers are small */
    long page = sysconf(_SC_PAGESIZE);
    if (page <= 0)
        return;
    uintptr_t mask = (uintptr_t)page - 1;
    uintptr_t lo = (uintptr_t)buf & ~mask;
    uintptr_t hi = ((uintptr_t)buf + len + mask) & ~mask;
    (void)madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
#else
    (void)buf;
    (void)len;
#endif
}

/* Whether a kept allocation of `room` bytes should serve `want`: large
 * enough, and not more than twice what is needed. */
static int fits(size_t room, size_t want)
{
    return room >= want && room / 2 <= want;
}

/* An allocation for a message with `extra` bytes of CRCs and data.  A
 * large one comes from the large spare when it fits: a stream of large
 * messages then writes into memory it has used before, where fresh memory
 * would cost the kernel a page fault and a page of zeroes every 2 MiB or
 * 4 KiB (for 64 MiB messages that took more time than sending them). */
static struct msg *msg_alloc(struct rmsg_core *c, size_t extra)
{
    struct msg *m;
    int small = extra <= SMALL_MSG_BYTES;
    size_t room = small ? SMALL_MSG_BYTES : extra;
    if (small && c->spare) {
        m = c->spare;
        c->spare = NULL;
    } else if (!small && c->big && fits(c->big->room, extra)) {
        m = c->big;
        c->big = NULL;
        room = m->room;
    } else {
        if (!small && c->big) { /* this size has no use for it */
            free(c->big);
            c->big = NULL;
        }
        m = malloc(sizeof(*m) + room);
        if (m && !small)
            want_huge_pages(m, sizeof(*m) + room);
    }
    if (m) {
        m->small = small;
        m->room = room;
    }
    return m;
}

/* Gives a message's allocation back: a small one is kept as the spare if
 * there is none; a large one likewise as the large spare while other
 * messages are still queued (one of them may be the next large one), and
 * once none is, the large spare goes too: an idle sender keeps no large
 * memory.  Everything else is freed. */
static void msg_release(struct rmsg_core *c, struct msg *m)
{
    if (m->small && c->spare == NULL) {
        c->spare = m;
        return;
    }
    if (!m->small && m->room >= HUGE_BUFFER_BYTES && c->big == NULL &&
        c->pending > 0) {
        c->big = m;
        return;
    }
    free(m);
    if (c->pending == 0 && c->big) {
        free(c->big);
        c->big = NULL;
    }
}

/* Frees a message the core is done with.  Inside rmsg_core_output it goes
 * to the graveyard instead: a datagram output in pieces points into its
 * copy until the caller has sent it, so it is freed at the next call that
 * takes input (bury_dead). */
static void msg_free(struct rmsg_core *c, struct msg *m)
{
    if (c->in_output) {
        m->next = c->graveyard;
        c->graveyard = m;
    } else {
        msg_release(c, m);
    }
}

static void bury_dead(struct rmsg_core *c)
{
    while (c->graveyard) {
        struct msg *m = c->graveyard;
        c->graveyard = m->next;
        msg_release(c, m);
    }
}

/* ------------------------------------------------------------------------ */
/* Configuration and life cycle                                              */
/* ------------------------------------------------------------------------ */

void rmsg_config_default(struct rmsg_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    cfg->datagram_max = RMSG_DATAGRAM_DEFAULT;
    cfg->msg_max = RMSG_MSG_MAX_DEFAULT;
    cfg->window = RMSG_WINDOW_DEFAULT;
    cfg->recv_buffer = RMSG_RECV_BUFFER_DEFAULT;
    cfg->recv_total = RMSG_RECV_TOTAL_DEFAULT;
    cfg->send_buffer = RMSG_SEND_BUFFER_DEFAULT;
    cfg->max_peers = RMSG_PEERS_DEFAULT;
    cfg->rto_min_us = RMSG_RTO_MIN_US;
    cfg->rto_max_us = RMSG_RTO_MAX_US;
    cfg->rto_initial_us = RMSG_RTO_INITIAL_US;
    cfg->ack_delay_us = RMSG_ACK_DELAY_US;
    cfg->validate = RMSG_VALIDATE_AUTO;
}

static int config_ok(const struct rmsg_config *k)
{
    size_t overhead = WIRE_HEADER_BYTES + WIRE_DATA_BYTES;
    return k->datagram_max >= overhead + 64 &&
           k->datagram_max <= WIRE_MAX_DATAGRAM && k->window >= 16 &&
           k->window <= 65536 && (k->window & (k->window - 1)) == 0 &&
           k->max_peers >= 1 && k->rto_min_us >= 1 &&
           k->rto_min_us <= k->rto_max_us &&
           k->rto_initial_us >= k->rto_min_us &&
           k->rto_initial_us <= k->rto_max_us &&
           k->recv_total >= k->recv_buffer && k->recv_buffer >= 65536 &&
           k->msg_max >= 1; /* 0 on the wire means "not known yet" */
}

int rmsg_core_new(const struct rmsg_config *cfg, uint64_t seed,
                  struct rmsg_core **out)
{
    struct rmsg_config def;
    if (cfg == NULL) {
        rmsg_config_default(&def);
        cfg = &def;
    }
    if (out == NULL || !config_ok(cfg))
        return -EINVAL;
    struct rmsg_core *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->cfg = *cfg;
    c->cfg.validate = cfg->validate != 0;
    c->dq.size = sizeof(struct delivery);
    c->evq.size = sizeof(struct rmsg_event);
    c->payload_max =
        (uint32_t)(cfg->datagram_max - WIRE_HEADER_BYTES - WIRE_DATA_BYTES);
    if (c->payload_max > UINT16_MAX)
        c->payload_max = UINT16_MAX;
    c->mss = c->payload_max + WIRE_HEADER_BYTES + WIRE_DATA_BYTES + IP_UDP_BYTES;
    c->rng = seed;
    c->key[0] = next_rand(c);
    c->key[1] = next_rand(c);
    c->nbuckets = 16;
    while (c->nbuckets < cfg->max_peers * 2)
        c->nbuckets *= 2;
    c->buckets = calloc(c->nbuckets, sizeof(*c->buckets));
    c->tombs = calloc(c->nbuckets / 2, sizeof(*c->tombs));
    if (c->buckets == NULL || c->tombs == NULL) {
        free(c->buckets);
        free(c->tombs);
        free(c);
        return -ENOMEM;
    }
    *out = c;
    return 0;
}

static void peer_free(struct rmsg_core *c, struct peer *p);

void rmsg_core_free(struct rmsg_core *c)
{
    if (c == NULL)
        return;
    while (c->peers) {
        struct peer *p = c->peers;
        c->peers = p->next;
        peer_free(c, p);
    }
    c->in_output = 0;
    bury_dead(c);
    free(c->spare);
    free(c->big);
    free(c->rspare);
    for (uint32_t i = 0; i < c->dq.count; i++)
        free(((struct delivery *)fifo_at(&c->dq, i))->data);
    free(c->dq.ring);
    free(c->evq.ring);
    free(c->buckets);
    free(c->tombs);
    free(c->frag_shift);
    free(c);
}

/* ------------------------------------------------------------------------ */
/* Peers                                                                     */
/* ------------------------------------------------------------------------ */

/* The peer at address a, or NULL. */
static struct peer *peer_lookup(const struct rmsg_core *c,
                                const struct udp_addr *a)
{
    struct peer *p = c->buckets[addr_hash(c, a) & (c->nbuckets - 1)];
    while (p && !addr_eq(&p->addr, a))
        p = p->hash_next;
    return p;
}

/* peer_lookup, trying first the peer found last: most datagrams come from
 * the peer the one before came from, and hashing costs more than all the
 * rest of finding it. */
static struct peer *peer_find(struct rmsg_core *c, const struct udp_addr *a)
{
    if (c->last && addr_eq(&c->last->addr, a))
        return c->last;
    struct peer *p = peer_lookup(c, a);
    if (p)
        c->last = p;
    return p;
}

/* Starts (or restarts) the relation's streams: a fresh cid, sequence
 * numbers from it, nothing known about the peer. */
static void relation_start(struct rmsg_core *c, struct peer *p)
{
    p->my_cid = new_cid(c);
    p->peer_cid = 0;
    p->snd_una = p->snd_nxt = p->my_cid;
    p->peer_wnd = 16; /* until the peer says otherwise */
    p->peer_max_msg = 0;
    cc_init(&p->cc, c->mss, CC_INITIAL_DGRAMS);
    p->pipe = p->delivered = 0;
    /* Nothing has shown yet that the application keeps the path busy:
     * the samples of the first fragments sent (a hello, a lone request)
     * are limited by the application until the first is delivered. */
    p->app_limited = 1;
    p->delivered_time = p->first_sent_time = p->pace_at = 0;
    p->lost = 0;
    p->have_rtt = 0;
    p->ack_delay_max = 0;
    p->rto = c->cfg.rto_initial_us;
    p->backoff = 0;
    p->rto_at = p->probe_at = RMSG_NEVER;
    p->probes = 0;
    p->rto_probe = 0;
    p->has_token = 0;
    p->tlp_at = RMSG_NEVER;
    p->tlp_sent = 0;
    p->ack_at = RMSG_NEVER;
    p->ack_now = 0;
    p->rack_at = RMSG_NEVER;
    p->deadline_next = RMSG_NEVER;
    p->tx_order = p->rack_order = 0;
    p->reo_steps = p->reo_needed = 0;
    p->lost_hint = p->snd_una;
    p->rcv_nxt = 0;
    p->newest_first = p->newest_end = 0;
    p->unacked_frags = p->unacked_bytes = 0;
    p->adv_wnd = 0;
}

static int evict_idle_peer(struct rmsg_core *c, rmsg_time now);

/* A new peer with an empty relation, or NULL when the table is full (and
 * no idle relation can be set aside) or memory is short (counted as
 * refused). */
static struct peer *peer_new(struct rmsg_core *c, const struct udp_addr *a,
                             rmsg_time now)
{
    if (c->npeers >= c->cfg.max_peers)
        evict_idle_peer(c, now);
    if (c->npeers >= c->cfg.max_peers || addr_key(a, (uint8_t[20]){0}) == 0) {
        c->st.refused++;
        return NULL;
    }
    struct peer *p = calloc(1, sizeof(*p));
    if (p == NULL) {
        c->st.refused++;
        return NULL;
    }
    p->addr = *a;
    p->last_heard = now;
    relation_start(c, p);
    uint32_t b = addr_hash(c, a) & (c->nbuckets - 1);
    p->hash_next = c->buckets[b];
    c->buckets[b] = p;
    p->next = c->peers;
    c->peers = p;
    c->npeers++;
    return p;
}

/* Fails every message queued for the peer and drops both streams' state;
 * the peer structure itself stays. */
static void relation_clear(struct rmsg_core *c, struct peer *p, int error)
{
    for (struct msg *m = p->sendq, *n; m; m = n) {
        n = m->next;
        if (!m->failed) {
            push_event(c, p, m->id, error);
            p->st.messages_failed++;
            c->st.messages_failed++;
            c->pending--;
        }
    }
    /* Failed messages kept only for their fragments in flight ("zombies")
     * are freed with their last fragment; queued ones right after. */
    for (uint32_t s = p->snd_una; seq_lt(s, p->snd_nxt); s++) {
        struct frag *f = &p->sw[s & (p->sw_cap - 1)];
        struct msg *m = f->msg;
        f->msg = NULL;
        if (m && --m->unacked == 0 && m->failed)
            msg_free(c, m);
    }
    for (struct msg *m = p->sendq, *n; m; m = n) {
        n = m->next;
        msg_free(c, m);
    }
    p->sendq = p->sendq_tail = p->cutting = NULL;
    p->queued_bytes = 0;
    for (uint32_t i = 0; i < p->rw_cap; i++) {
        free(p->rw[i].payload);
        p->rw[i].payload = NULL;
        p->rw[i].in_place = 0;
    }
    c->mem -= p->held_alloc + p->rcap;
    p->held_bytes = p->held_alloc = 0;
    p->held_count = 0;
    p->newest_first = p->newest_end = 0;
    free(p->rbuf);
    p->rbuf = NULL;
    p->rcap = p->rlen = p->rgot = 0;
    p->reassembling = p->discarding = 0;
}

static void peer_free(struct rmsg_core *c, struct peer *p)
{
    relation_clear(c, p, -ECONNRESET);
    for (uint32_t i = 0; i < c->dq.count; i++) {
        struct delivery *d = fifo_at(&c->dq, i);
        if (d->peer == p) {
            d->peer = NULL; /* its bytes leave c->mem here, not later */
            d->from = p->addr;
        }
    }
    c->mem -= p->unread_bytes;
    free(p->sw);
    free(p->rw);
    free(p);
}

/* True when nothing is in progress with p in either direction: all it
 * sent has been delivered and acknowledged, all we sent it acknowledged,
 * nothing is held back.  Such a relation is fully described by its ids and
 * sequence numbers, so it can be set aside and taken up again. */
static int peer_quiescent(const struct peer *p)
{
    return p->peer_cid != 0 && p->sendq == NULL && p->snd_una == p->snd_nxt &&
           p->held_count == 0 && !p->reassembling && !p->discarding &&
           p->unread_bytes == 0 && !p->ack_now && p->ack_at == RMSG_NEVER &&
           !p->send_echo && !p->send_challenge;
}

static void peer_unlink(struct rmsg_core *c, struct peer *p)
{
    if (c->last == p)
        c->last = NULL;
    struct peer **pp = &c->buckets[addr_hash(c, &p->addr) & (c->nbuckets - 1)];
    while (*pp != p)
        pp = &(*pp)->hash_next;
    *pp = p->hash_next;
    for (pp = &c->peers; *pp != p;)
        pp = &(*pp)->next;
    *pp = p->next;
    c->npeers--;
}

/* Makes room in a full peer table: the relation heard from longest ago
 * among those quiescent and silent for at least rto_max (so the peer is
 * not retrying anything) becomes a tombstone.  A tombstone slot is chosen
 * by address hash and a newer one overwrites an older; a peer whose
 * tombstone is gone gets RESET on its next datagram, as after a restart.
 * Returns 1 when a relation was set aside.  O(peers): it runs only when the
 * table is full. */
static int evict_idle_peer(struct rmsg_core *c, rmsg_time now)
{
    struct peer *victim = NULL;
    for (struct peer *p = c->peers; p; p = p->next)
        if (peer_quiescent(p) && now - p->last_heard >= c->cfg.rto_max_us &&
            (victim == NULL || p->last_heard < victim->last_heard))
            victim = p;
    if (victim == NULL)
        return 0;
    struct tomb *t = &c->tombs[addr_hash(c, &victim->addr) &
                               (c->nbuckets / 2 - 1)];
    *t = (struct tomb){.addr = victim->addr, .my_cid = victim->my_cid,
                       .peer_cid = victim->peer_cid,
                       .snd_nxt = victim->snd_nxt, .rcv_nxt = victim->rcv_nxt,
                       .peer_max_msg = victim->peer_max_msg, .used = 1};
    TRACE(c, now, &victim->addr, "evict idle relation");
    peer_unlink(c, victim);
    c->st.evicted++;
    peer_free(c, victim);
    return 1;
}

/* The tombstone of the relation with `a` set aside by evict_idle_peer, or
 * NULL. */
static struct tomb *tomb_of(struct rmsg_core *c, const struct udp_addr *a)
{
    struct tomb *t = &c->tombs[addr_hash(c, a) & (c->nbuckets / 2 - 1)];
    return t->used && addr_eq(&t->addr, a) ? t : NULL;
}

/* Takes up a relation set aside by evict_idle_peer, when its peer sends on
 * it again (the datagram's cids match the tombstone's) or when this side
 * has something to send it (dst_cid and src_cid 0: whatever the
 * tombstone's).  Returns the peer, or NULL when there is no such
 * tombstone. */
static struct peer *peer_revive(struct rmsg_core *c,
                                const struct udp_addr *from, uint32_t dst_cid,
                                uint32_t src_cid, rmsg_time now)
{
    struct tomb *t = tomb_of(c, from);
    if (t == NULL || ((dst_cid | src_cid) != 0 &&
                      (t->my_cid != dst_cid || t->peer_cid != src_cid)))
        return NULL;
    struct peer *p = peer_new(c, from, now);
    if (p == NULL)
        return NULL;
    p->my_cid = t->my_cid;
    p->peer_cid = t->peer_cid;
    p->snd_una = p->snd_nxt = p->lost_hint = t->snd_nxt;
    p->rcv_nxt = t->rcv_nxt;
    p->peer_max_msg = t->peer_max_msg;
    t->used = 0;
    TRACE(c, now, from, "revive relation");
    return p;
}

/* Grows a ring of fragment slots so that `need` slots fit, re-placing the
 * entries from `base` on (a slot's index is its sequence number modulo the
 * capacity).  Returns 0 or -ENOMEM. */
static int ring_grow(void **ring, uint32_t *cap, size_t size, uint32_t base,
                     uint32_t need, uint32_t max)
{
    if (need <= *cap)
        return 0;
    if (need > max)
        return -ENOMEM;
    uint32_t ncap = *cap ? *cap : 64;
    while (ncap < need)
        ncap *= 2;
    unsigned char *n = calloc(ncap, size);
    if (n == NULL)
        return -ENOMEM;
    unsigned char *o = *ring;
    for (uint32_t i = 0; i < *cap; i++) {
        uint32_t s = base + i;
        memcpy(n + (size_t)(s & (ncap - 1)) * size,
               o + (size_t)(s & (*cap - 1)) * size, size);
    }
    free(o);
    *ring = n;
    *cap = ncap;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Sending                                                                   */
/* ------------------------------------------------------------------------ */

/* What a queued message of len bytes counts against send_buffer: itself,
 * its bookkeeping, and the most fragment CRCs it may keep. */
static size_t msg_cost(const struct rmsg_core *c, size_t len)
{
    return len + MSG_OVERHEAD +
           sizeof(uint32_t) * (len / c->payload_max + 1);
}

/* How many bytes the peer's queue may hold with a message that costs
 * `cost` (msg_cost) added: send_buffer at most, but not much more than the
 * path takes.  A message queued far ahead of what is in flight is sent
 * long after it was copied in, when its bytes have left the cache and the
 * kernel reads them from memory a second time: on loopback a 16 MiB queue
 * costs a fifth more CPU per byte than a 4 MiB one.  SEND_QUEUE_MIN keeps
 * a fast short path busy, two congestion windows a long fat one, and room
 * for two messages of this size lets one be copied in while the other is
 * sent. */
#define SEND_QUEUE_MIN (4u << 20)
static size_t send_limit(const struct rmsg_core *c, const struct peer *p,
                         size_t cost)
{
    uint64_t want = 2 * (uint64_t)cost;
    if (want < 2 * p->cc.cwnd)
        want = 2 * p->cc.cwnd;
    if (want < SEND_QUEUE_MIN)
        want = SEND_QUEUE_MIN;
    return want < c->cfg.send_buffer ? (size_t)want : c->cfg.send_buffer;
}

/* How many fragment CRCs a message of len bytes keeps (see copy_in):
 * one per whole fragment, rounded up to an even count so that the message
 * bytes after them stay 8-byte aligned; 0 for a message of one fragment,
 * or when the shift that combines them cannot be had. */
static size_t whole_frag_crcs(struct rmsg_core *c, size_t len)
{
    size_t n = len / c->payload_max;
    if (n == 0)
        return 0;
    if (c->frag_shift == NULL) {
        c->frag_shift = malloc(sizeof(*c->frag_shift));
        if (c->frag_shift == NULL)
            return 0;
        crc32c_shift_init(c->frag_shift, c->payload_max);
    }
    return n + (n & 1);
}

/* Copies the message into m.  With room for fragment CRCs it takes each
 * whole fragment's CRC while copying, as the bytes pass through the cache
 * from a buffer the application has most likely just written: by the time
 * the fragment is sent they are long out of the cache, and the CRC of a
 * large datagram would read them from memory a second time. */
static void copy_in(struct rmsg_core *c, struct msg *m, const void *data)
{
    const uint8_t *src = data;
    size_t off = 0, pm = c->payload_max;
    if (m->fcrc)
        for (size_t k = 0; off + pm <= m->len; k++, off += pm)
            m->fcrc[k] = crc32c_copy(0, m->data + off, src + off, pm);
    if (off < m->len)
        memcpy(m->data + off, src + off, m->len - off);
}

int64_t rmsg_core_send(struct rmsg_core *c, const struct udp_addr *to,
                       const void *data, size_t len, int flags,
                       rmsg_time deadline, rmsg_time now)
{
    if (c == NULL || to == NULL || (data == NULL && len > 0) ||
        (flags & ~RMSG_NOTIFY))
        return -EINVAL;
    timers_changed(c);
    bury_dead(c);
    if (len > UINT32_MAX)
        return -EMSGSIZE;
    struct peer *p = peer_find(c, to);
    if (p && p->peer_max_msg && len > p->peer_max_msg)
        return -EMSGSIZE;
    /* A full queue takes no more, but an empty one takes any size. */
    size_t cost = msg_cost(c, len);
    if (p && p->sendq && p->queued_bytes + cost > send_limit(c, p, cost))
        return -ENOBUFS;
    size_t nfcrc = whole_frag_crcs(c, len);
    if (len > SIZE_MAX - sizeof(struct msg) - nfcrc * sizeof(uint32_t))
        return -ENOMEM;
    struct msg *m = msg_alloc(c, nfcrc * sizeof(uint32_t) + len);
    if (m == NULL)
        return -ENOMEM;
    /* A relation set aside while idle is taken up again: a new one would
     * look to the peer like a restart of this side. */
    if (p == NULL && (p = peer_revive(c, to, 0, 0, now)) == NULL &&
        (p = peer_new(c, to, now)) == NULL) {
        msg_release(c, m);
        return -ENOMEM;
    }
    uint32_t *fcrc = (uint32_t *)(m + 1);
    int small = m->small;
    size_t room = m->room;
    *m = (struct msg){.data = (uint8_t *)(fcrc + nfcrc),
                      .fcrc = nfcrc ? fcrc : NULL,
                      .len = (uint32_t)len, .small = small, .room = room};
    copy_in(c, m, data);
    m->id = ++c->next_id;
    m->flags = flags;
    m->deadline = deadline;
    if (p->sendq_tail)
        p->sendq_tail->next = m;
    else
        p->sendq = m;
    p->sendq_tail = m;
    if (p->cutting == NULL)
        p->cutting = m;
    m->cost = cost;
    p->queued_bytes += cost;
    p->deadline_next = tmin(p->deadline_next, deadline);
    c->pending++;
    TRACE(c, now, to, "queue msg=%llu len=%zu", (unsigned long long)m->id,
          len);
    return (int64_t)m->id;
}

/* Removes m from the peer's queue. */
static void sendq_unlink(struct peer *p, struct msg *m)
{
    struct msg **pp = &p->sendq, *prev = NULL;
    while (*pp && *pp != m) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp == NULL)
        return;
    if (p->cutting == m)
        p->cutting = m->next;
    p->queued_bytes -= m->cost;
    *pp = m->next;
    if (p->sendq_tail == m)
        p->sendq_tail = prev;
    m->next = NULL;
}

/* Reports m finished (error 0: acknowledged) and frees it unless fragments
 * in flight still refer to it. */
static void msg_finish(struct rmsg_core *c, struct peer *p, struct msg *m,
                       int error, rmsg_time now)
{
    sendq_unlink(p, m);
    c->pending--;
    if (error == 0) {
        p->st.messages_sent++;
        c->st.messages_sent++;
        if (m->flags & RMSG_NOTIFY)
            push_event(c, p, m->id, 0);
    } else {
        p->st.messages_failed++;
        c->st.messages_failed++;
        push_event(c, p, m->id, error);
    }
    TRACE(c, now, &p->addr, "msg=%llu %s", (unsigned long long)m->id,
          error == 0 ? "acked" : strerror(-error));
    m->failed = 1;
    if (m->unacked == 0)
        msg_free(c, m);
}

/* The first message with bytes (or an empty message) not yet cut. */
static struct msg *next_to_cut(const struct peer *p)
{
    return p->cutting;
}

/* Cuts the next fragment into the send window.  Returns the slot, or NULL
 * when there is nothing to cut or no room to send it. */
static struct frag *cut_fragment(struct rmsg_core *c, struct peer *p)
{
    struct msg *m = next_to_cut(p);
    if (m == NULL)
        return NULL;
    uint32_t in_flight = p->snd_nxt - p->snd_una;
    if (in_flight >= p->peer_wnd || in_flight >= c->cfg.window)
        return NULL;
    /* The peer's size limit is learned from its first acknowledgment: a
     * long message sends only its first fragment until then. */
    if (p->peer_max_msg == 0 && m->cut > 0)
        return NULL;
    if (ring_grow((void **)&p->sw, &p->sw_cap, sizeof(struct frag),
                  p->snd_una, in_flight + 1, c->cfg.window) != 0)
        return NULL;
    struct frag *f = &p->sw[p->snd_nxt & (p->sw_cap - 1)];
    /* Until the peer answers, a fragment leaves room for the address
     * token it may ask for. */
    uint32_t room = c->payload_max - (p->peer_cid ? 0 : WIRE_COOKIE_BYTES);
    uint32_t n = m->len - m->cut;
    if (n > room)
        n = room;
    *f = (struct frag){.msg = m, .off = m->cut, .len = (uint16_t)n};
    m->cut += n;
    m->unacked++;
    m->all_cut = m->cut == m->len;
    if (m->all_cut)
        p->cutting = m->next;
    p->snd_nxt++;
    return f;
}

/* ------------------------------------------------------------------------ */
/* Receiving: reassembly and delivery                                        */
/* ------------------------------------------------------------------------ */

/* The largest message taken from a peer: msg_max, but no more than
 * recv_total, which has to hold it whole.  Peers are told it, and fail a
 * larger message with -EMSGSIZE. */
static uint32_t msg_max_accepted(const struct rmsg_core *c)
{
    return c->cfg.msg_max < c->cfg.recv_total ? c->cfg.msg_max
                                              : (uint32_t)c->cfg.recv_total;
}

/* The window to advertise: free room in recv_buffer, in fragments. */
static uint32_t recv_window(const struct rmsg_core *c, const struct peer *p)
{
    size_t used = p->held_bytes + p->unread_bytes;
    if (used >= c->cfg.recv_buffer || c->mem >= c->cfg.recv_total)
        return 0;
    size_t w = (c->cfg.recv_buffer - used) / c->payload_max;
    return w < c->cfg.window ? (uint32_t)w : c->cfg.window;
}

/* Hands a whole message to the application's queue. */
static void deliver(struct rmsg_core *c, struct peer *p, rmsg_time now)
{
    if (p->rcap > p->rlen) {
        /* A recycled buffer larger than its message: trimmed to it, so
         * that what the application holds and what it gives back are the
         * length it is told (in place: the pages stay). */
        void *n = realloc(p->rbuf, p->rlen ? p->rlen : 1);
        if (n)
            p->rbuf = n;
        c->mem -= p->rcap - p->rlen;
        p->rcap = p->rlen;
    }
    struct delivery *d = fifo_slot(&c->dq);
    if (d == NULL) {
        /* Cannot happen in a way we can recover from without losing the
         * message; count it as refused rather than crash. */
        c->st.refused++;
        free(p->rbuf);
        c->mem -= p->rcap;
    } else {
        d->peer = p;
        d->data = p->rbuf;
        d->len = p->rlen;
        /* The buffer stays counted in c->mem, and a delivery costs
         * DELIVERY_BYTES besides, so that even empty messages the
         * application does not read close the window. */
        p->unread_bytes += p->rcap + DELIVERY_BYTES;
        c->mem += DELIVERY_BYTES;
        p->st.messages_received++;
        c->st.messages_received++;
        TRACE(c, now, &p->addr, "deliver len=%u", p->rlen);
        /* A message of several fragments is bulk, not a request waiting
         * for a reply to carry its acknowledgment: acknowledge it now, so
         * a receiver that stops calling after it does not leave the
         * sender retrying. */
        if (p->rlen > c->payload_max)
            p->ack_now = 1;
    }
    p->rbuf = NULL;
    p->rcap = p->rlen = p->rgot = 0;
    p->reassembling = 0;
}

/* Makes room for `need` bytes of the message being reassembled.  Short
 * messages get their whole buffer at once; long ones grow by doubling, so
 * memory follows the bytes that really arrived, not a length a peer claims. */
static int reasm_reserve(struct rmsg_core *c, struct peer *p, uint32_t need)
{
    if (need <= p->rcap)
        return 0;
    uint32_t ncap = p->rcap ? p->rcap : REASM_FIRST_BYTES;
    while (ncap < need)
        ncap = ncap > UINT32_MAX / 2 ? UINT32_MAX : ncap * 2;
    if (ncap > p->rlen)
        ncap = p->rlen;
    if (c->mem + (ncap - p->rcap) > c->cfg.recv_total)
        return -ENOMEM;
    uint8_t *n = realloc(p->rbuf, ncap);
    if (n == NULL)
        return -ENOMEM;
    want_huge_pages(n, ncap);
    c->mem += ncap - p->rcap;
    p->rbuf = n;
    p->rcap = ncap;
    return 0;
}

/* A large message starts: it is reassembled in the buffer the application
 * gave back (rmsg_core_recycle) if that fits it and the memory limit
 * allows, which spares the kernel mapping and zeroing fresh pages for it.
 * A spare that does not fit is of no use to this stream of messages and
 * is freed.  Nothing new is allocated: a peer that announces a large
 * message gets memory that exists already, or none. */
static void reasm_take_spare(struct rmsg_core *c, struct peer *p)
{
    if (c->rspare == NULL)
        return;
    if (!fits(c->rspare_len, p->rlen)) {
        free(c->rspare);
        c->rspare = NULL;
        return;
    }
    if (c->mem + c->rspare_len > c->cfg.recv_total)
        return;
    p->rbuf = c->rspare;
    p->rcap = (uint32_t)c->rspare_len;
    c->mem += c->rspare_len;
    c->rspare = NULL;
}

/* Appends one in-order fragment to the message it belongs to.  Returns 0,
 * or -ENOMEM when it cannot be taken now (it is not consumed, so the sender
 * will send it again). */
static int consume(struct rmsg_core *c, struct peer *p, uint32_t msg_len,
                   uint32_t off, const uint8_t *data, uint16_t len,
                   const uint8_t *placed, rmsg_time now)
{
    if (off == 0 && p->reassembling && !p->discarding && p->rgot == 0 &&
        msg_len == p->rlen) {
        /* The first fragment again, after a first try found no memory:
         * the message begun stands, with what was placed ahead in it. */
    } else if (off == 0) {
        /* A new message.  One still partial was abandoned by the sender. */
        if (p->reassembling) {
            free(p->rbuf);
            c->mem -= p->rcap;
            p->rbuf = NULL;
            p->rcap = 0;
        }
        p->rgen++;
        p->reassembling = 1;
        p->rlen = msg_len;
        p->rgot = 0;
        p->discarding = msg_len > msg_max_accepted(c);
        if (p->discarding) {
            p->st.refused++;
            c->st.refused++;
        } else if (msg_len >= HUGE_BUFFER_BYTES) {
            reasm_take_spare(c, p);
        }
    } else if (!p->reassembling || off != p->rgot || msg_len != p->rlen) {
        /* Does not continue the message in progress: a broken or hostile
         * sender.  Skip the rest of whatever it is. */
        p->st.malformed++;
        c->st.malformed++;
        p->reassembling = 1;
        p->discarding = 1;
        p->rlen = msg_len;
        p->rgot = off;
    }
    if (!p->discarding && len > 0) {
        if (reasm_reserve(c, p, p->rgot + len) != 0)
            return -ENOMEM;
        if (placed != p->rbuf + p->rgot) /* not already there */
            memcpy(p->rbuf + p->rgot, data, len);
    }
    p->rgot += len;
    if (p->rgot == p->rlen) {
        if (p->discarding) {
            free(p->rbuf);
            c->mem -= p->rcap;
            p->rbuf = NULL;
            p->rcap = p->rlen = p->rgot = 0;
            p->reassembling = p->discarding = 0;
        } else {
            deliver(c, p, now);
        }
    }
    return 0;
}

/* A fragment that arrived ahead of a gap, of the message being reassembled,
 * goes straight to its place in the reassembly buffer when it can be told
 * to belong there: the same length of message, and the offset it must have
 * if the fragments missing before it are as long as itself, as a sender
 * cuts all of a message's fragments but the last (which is shorter, says
 * nothing, and is held apart).  A fragment of the next message cannot
 * pass for one of this: its offset would put the two messages' first
 * fragments at the same sequence number.  The slot notes which message it
 * went into (p->rgen), and drain_held takes the bytes from the buffer only
 * while that message is still the one in progress.  Returns 1 when it was
 * copied. */
static int hold_in_place(struct rmsg_core *c, struct peer *p,
                         const struct wire_packet *w)
{
    uint64_t at = (uint64_t)p->rgot +
                  (uint64_t)(w->seq - p->rcv_nxt) * w->payload_len;
    if (!p->reassembling || p->discarding || w->payload_len == 0 ||
        w->msg_len != p->rlen || w->frag_off != at ||
        (uint64_t)w->frag_off + w->payload_len >= p->rlen ||
        reasm_reserve(c, p, w->frag_off + w->payload_len) != 0)
        return 0;
    memcpy(p->rbuf + w->frag_off, w->payload, w->payload_len);
    p->rw[w->seq & (p->rw_cap - 1)].gen = p->rgen;
    return 1;
}

/* Stores a fragment that arrived ahead of a gap.  Returns 0 or -ENOMEM. */
static int hold(struct rmsg_core *c, struct peer *p,
                const struct wire_packet *w)
{
    uint32_t ahead = w->seq - p->rcv_nxt;
    if (ring_grow((void **)&p->rw, &p->rw_cap, sizeof(struct held),
                  p->rcv_nxt, ahead + 1, c->cfg.window) != 0)
        return -ENOMEM;
    struct held *h = &p->rw[w->seq & (p->rw_cap - 1)];
    if (held_in(h)) {
        p->st.duplicates++;
        c->st.duplicates++;
        return 0;
    }
    if (p->held_bytes + p->unread_bytes + w->payload_len > c->cfg.recv_buffer)
        return -ENOMEM;
    if (hold_in_place(c, p, w)) {
        h->in_place = 1;
    } else {
        if (c->mem + w->payload_len > c->cfg.recv_total)
            return -ENOMEM;
        h->payload = malloc(w->payload_len ? w->payload_len : 1);
        if (h->payload == NULL)
            return -ENOMEM;
        memcpy(h->payload, w->payload, w->payload_len);
        p->held_alloc += w->payload_len;
        c->mem += w->payload_len;
    }
    h->msg_len = w->msg_len;
    h->off = w->frag_off;
    h->len = w->payload_len;
    if (p->newest_first != p->newest_end && w->seq == p->newest_end)
        p->newest_end++;
    else if (p->newest_first != p->newest_end && w->seq + 1 == p->newest_first)
        p->newest_first--;
    else
        p->newest_first = w->seq, p->newest_end = w->seq + 1;
    p->held_count++;
    p->held_bytes += w->payload_len;
    return 0;
}

/* Frees the held copy of fragment seq, if there is one. */
static void release_held(struct rmsg_core *c, struct peer *p, uint32_t seq)
{
    if (p->held_count == 0)
        return;
    struct held *h = &p->rw[seq & (p->rw_cap - 1)];
    if (!held_in(h))
        return;
    p->held_count--;
    p->held_bytes -= h->len;
    if (!h->in_place) {
        p->held_alloc -= h->len;
        c->mem -= h->len;
    }
    free(h->payload);
    h->payload = NULL;
    h->in_place = 0;
}

/* Moves held fragments that have become in order into their messages.  One
 * that cannot be taken now (no memory) stays held, to be tried again when
 * memory is freed or the next fragment arrives. */
static void drain_held(struct rmsg_core *c, struct peer *p, rmsg_time now)
{
    while (p->held_count > 0) {
        struct held *h = &p->rw[p->rcv_nxt & (p->rw_cap - 1)];
        if (!held_in(h))
            break;
        /* As for a fragment arriving in order: while the application has
         * recv_buffer bytes unread, nothing more goes in. */
        int taken = -ENOBUFS;
        if (p->unread_bytes < c->cfg.recv_buffer) {
            const uint8_t *data = h->payload, *placed = NULL;
            if (h->in_place && h->gen == p->rgen && p->rbuf != NULL &&
                p->reassembling && !p->discarding && h->off == p->rgot &&
                h->msg_len == p->rlen &&
                (uint64_t)h->off + h->len <= p->rcap) {
                data = placed = p->rbuf + h->off;
            } else if (h->in_place && p->reassembling) {
                /* The message it was copied into is not the one in
                 * progress: only a sender that broke its own message gets
                 * here, and the rest of that message is skipped.  (Not
                 * reassembling, consume itself finds it out of place.) */
                p->st.malformed++;
                c->st.malformed++;
                p->discarding = 1;
            }
            taken = consume(c, p, h->msg_len, h->off, data, h->len, placed,
                            now);
        }
        if (taken != 0) {
            /* The sender counts it as arrived (we said so) and will not
             * send it again: it must go in once memory is freed. */
            c->drain_pending = 1;
            break;
        }
        release_held(c, p, p->rcv_nxt);
        p->rcv_nxt++;
    }
    /* The newest arrival's run, once all in order, is forgotten, so that
     * it is never taken for one ahead of rcv_nxt when sequence numbers
     * come round again. */
    if (!seq_lt(p->rcv_nxt, p->newest_end))
        p->newest_first = p->newest_end = p->rcv_nxt;
}

/* A DATA fragment from an established relation. */
static void on_data(struct rmsg_core *c, struct peer *p,
                    const struct wire_packet *w, const uint8_t *placed,
                    rmsg_time now)
{
    p->last_arrival = now;
    p->unacked_frags++;
    p->unacked_bytes += w->payload_len;
    uint32_t ahead = w->seq - p->rcv_nxt;
    int taken;
    if (seq_lt(w->seq, p->rcv_nxt)) {
        p->st.duplicates++;
        c->st.duplicates++;
        p->ack_now = 1; /* our acknowledgment was probably lost */
        return;
    }
    if (ahead >= c->cfg.window) {
        taken = -ENOMEM;
    } else if (ahead > 0) {
        taken = hold(c, p, w);
        p->ack_now = 1; /* report the gap at once: fast retransmit */
    } else if (p->unread_bytes >= c->cfg.recv_buffer) {
        /* The application is not reading: even the next fragment in
         * order (a window probe) waits until it does. */
        taken = -ENOBUFS;
    } else {
        /* A copy of this fragment may be held already: it arrived ahead of
         * a gap and could not be taken when the gap filled.  Once this copy
         * is taken the held one goes (left in the ring, it would be read
         * one ring length later as another fragment); while neither can
         * be taken it stays, because the sender, told it arrived, will not
         * send it again. */
        taken = consume(c, p, w->msg_len, w->frag_off, w->payload,
                        w->payload_len, placed, now);
        if (taken == 0) {
            release_held(c, p, w->seq);
            p->rcv_nxt++;
            drain_held(c, p, now);
        } else if (p->held_count > 0 &&
                   held_in(&p->rw[w->seq & (p->rw_cap - 1)])) {
            c->drain_pending = 1; /* taken when memory is freed */
        }
    }
    if (taken != 0) {
        p->st.refused++;
        c->st.refused++;
        p->ack_now = 1;
        return;
    }
    /* Acknowledge every few fragments at once (the sender's window keeps
     * moving), a lone fragment after ack_delay_us (a reply may carry it). */
    if (p->unacked_frags >= ACK_EVERY_FRAGS ||
        p->unacked_bytes >= ACK_EVERY_BYTES || p->held_count > 0)
        p->ack_now = 1;
    else if (p->ack_at == RMSG_NEVER)
        p->ack_at = now + c->cfg.ack_delay_us;
}

/* ------------------------------------------------------------------------ */
/* Congestion control: bytes in flight, delivery rate, pacing                */
/* ------------------------------------------------------------------------ */

/* The model and its modes are in lib/cc.h.  The core's part is to count
 * the bytes in flight ("pipe": sent, and neither acknowledged, selectively
 * acknowledged nor declared lost), to measure the delivery rate each
 * acknowledgment shows, and to space fragments out at the pacing rate. */

static uint64_t frag_bytes(const struct frag *f)
{
    return (uint64_t)f->len + WIRE_HEADER_BYTES + WIRE_DATA_BYTES +
           IP_UDP_BYTES;
}

static void pipe_leave(struct peer *p, struct frag *f)
{
    if (f->in_pipe) {
        f->in_pipe = 0;
        p->pipe -= frag_bytes(f);
    }
}

static void mark_lost(struct peer *p, struct frag *f, uint32_t seq)
{
    if (!f->lost) {
        f->lost = 1;
        p->lost++;
    }
    pipe_leave(p, f);
    if (seq_lt(seq, p->lost_hint))
        p->lost_hint = seq;
}

/* Counts a loss found (by RACK, the probe or the timer; some are
 * spurious, as when a busy receiver is late), with the fragment found lost
 * (NULL: none) for the controller; a flight the peer refused unread
 * (resend_flight) is not a loss.  A path is lossy when more than one
 * datagram in LOSS_SHARE of those sent lately was found lost: enough to
 * tell a network that drops one in a hundred from a loaded host that is
 * late now and then (see peer_next_strict). */
static void note_loss(struct peer *p, const struct frag *f)
{
    if (f)
        cc_on_lost(&p->cc, frag_bytes(f));
    if (++p->epoch_losses * LOSS_SHARE > LOSS_EPOCH)
        p->lossy = 1;
}

/* Counts a datagram sent, and ends the epoch. */
static void note_sent(struct peer *p)
{
    if (++p->epoch_sent < LOSS_EPOCH)
        return;
    p->lossy = p->epoch_losses * LOSS_SHARE > LOSS_EPOCH;
    p->epoch_sent = p->epoch_losses = 0;
}

/* True when the congestion window and the pacer let a fragment leave. */
static int may_send_data(const struct peer *p, rmsg_time now)
{
    return p->pipe < p->cc.cwnd && p->pace_at <= now;
}

/* Notes at sending what the delivery-rate sample of this copy will need:
 * how much had been delivered, and when (the method of Cheng et al.,
 * draft-cheng-iccrg-delivery-rate-estimation).  Then the pacer: the next
 * fragment may leave one datagram-time later at the pacing rate; a sender
 * that slept past its turn may catch up by a short burst only. */
static void on_frag_sent(struct peer *p, struct frag *f, rmsg_time now)
{
    if (p->pipe == 0) {
        p->first_sent_time = now;
        p->delivered_time = now;
    }
    f->prior_delivered = p->delivered;
    f->prior_time = p->delivered_time;
    f->first_sent = p->first_sent_time;
    f->app_limited = p->app_limited != 0;
    f->in_pipe = 1;
    p->pipe += frag_bytes(f);
    uint64_t rate = p->cc.pacing_rate;
    if (rate == 0)
        return;
    rmsg_time gap = (rmsg_time)(frag_bytes(f) * 1000000 / rate);
    rmsg_time burst = gap * 64 < PACE_BURST_US ? gap * 64 : PACE_BURST_US;
    if (p->pace_at < now - burst)
        p->pace_at = now - burst;
    p->pace_at += gap;
}

/* The newest fragment an acknowledgment reports delivered: its delivery
 * rate sample is the freshest. */
struct rate_pick {
    const struct frag *f;
    uint64_t order, prior_delivered;
    rmsg_time prior_time, first_sent, sent;
    int app_limited;
};

static void on_frag_delivered(struct peer *p, struct frag *f,
                              struct rate_pick *pick)
{
    pipe_leave(p, f);
    p->delivered += frag_bytes(f);
    if (pick->f == NULL || f->order > pick->order)
        *pick = (struct rate_pick){f, f->order, f->prior_delivered,
                                   f->prior_time, f->first_sent, f->sent,
                                   f->app_limited};
}

/* Turns an acknowledgment's deliveries into a rate sample for the
 * controller: bytes delivered since the picked fragment left, over the
 * longer of its send and acknowledgment intervals (the shorter would
 * overstate the rate when sends or acks bunch up). */
static void rate_sample(struct rmsg_core *c, struct peer *p,
                        const struct rate_pick *pick, uint64_t acked,
                        uint32_t rtt_us, rmsg_time now)
{
    if (pick->f == NULL)
        return;
    struct cc_sample rs = {.acked = acked, .delivered = p->delivered,
                           .prior_delivered = pick->prior_delivered,
                           .app_limited = pick->app_limited,
                           .rtt_us = rtt_us, .inflight = p->pipe};
    p->delivered_time = now;
    p->first_sent_time = pick->sent;
    rmsg_time send_span = pick->sent - pick->first_sent;
    rmsg_time ack_span = now - pick->prior_time;
    rmsg_time span = send_span > ack_span ? send_span : ack_span;
    if (span > 0 && span >= (rmsg_time)p->cc.min_rtt_us)
        rs.rate = (p->delivered - pick->prior_delivered) * 1000000 /
                  (uint64_t)span;
    if (p->app_limited && p->delivered > p->app_limited)
        p->app_limited = 0;
    enum cc_mode was = p->cc.mode;
    cc_on_ack(&p->cc, &rs, p->have_rtt ? p->srtt : 0, now);
    if (p->cc.mode != was) {
        static const char *mode[] = {"startup", "drain", "probe-bw",
                                     "probe-rtt"};
        TRACE(c, now, &p->addr,
              "cc %s bw=%lluB/s min_rtt=%uus cwnd=%llu pipe=%llu",
              mode[p->cc.mode], (unsigned long long)p->cc.bw,
              p->cc.min_rtt_us, (unsigned long long)p->cc.cwnd,
              (unsigned long long)p->pipe);
    }
}

/* With nothing to send and room in the window, the sender is limited by
 * the application, not the path: samples until what is in flight now has
 * been delivered say so. */
static void note_app_limited(struct peer *p)
{
    if (p->cutting == NULL && p->lost == 0 && p->pipe < p->cc.cwnd)
        p->app_limited = p->delivered + p->pipe ? p->delivered + p->pipe : 1;
}

/* ------------------------------------------------------------------------ */
/* Acknowledgments, round trips and loss                                     */
/* ------------------------------------------------------------------------ */

/* RFC 6298 section 2: the timeout from SRTT and RTTVAR, within bounds.
 * The peer may hold an acknowledgment back (ack_delay_us) hoping to send
 * it with data: the timer allows for that too, or every lone message
 * would be sent twice.  (QUIC's probe timeout does the same with
 * max_ack_delay, RFC 9002 section 6.2.1.) */
static void update_rto(const struct rmsg_core *c, struct peer *p)
{
    uint64_t rto = (uint64_t)p->srtt + 4 * (uint64_t)p->rttvar +
                   p->ack_delay_max;
    if (rto < c->cfg.rto_min_us)
        rto = c->cfg.rto_min_us;
    if (rto > c->cfg.rto_max_us)
        rto = c->cfg.rto_max_us;
    p->rto = (uint32_t)rto;
}

/* RFC 6298 section 2: fold one round-trip sample into SRTT and RTTVAR. */
static void rtt_sample(const struct rmsg_core *c, struct peer *p,
                       uint32_t r)
{
    if (r == 0)
        r = 1;
    if (!p->have_rtt) {
        p->srtt = r;
        p->rttvar = r / 2;
        p->min_rtt = r;
        p->have_rtt = 1;
    } else {
        uint32_t d = p->srtt > r ? p->srtt - r : r - p->srtt;
        p->rttvar = p->rttvar - p->rttvar / 4 + d / 4; /* beta = 1/4 */
        p->srtt = p->srtt - p->srtt / 8 + r / 8;       /* alpha = 1/8 */
        if (r < p->min_rtt)
            p->min_rtt = r;
    }
    update_rto(c, p);
}

/* Releases a fragment that the peer has acknowledged cumulatively. */
static void frag_acked(struct rmsg_core *c, struct peer *p, struct frag *f,
                       rmsg_time now)
{
    struct msg *m = f->msg;
    if (f->lost)
        p->lost--;
    f->msg = NULL;
    if (m == NULL)
        return;
    m->unacked--;
    if (m->failed) {
        if (m->unacked == 0)
            msg_free(c, m);
    } else if (m->unacked == 0 && m->all_cut) {
        msg_finish(c, p, m, 0, now);
    }
}

/* Remembers the newest transmission that is known to have arrived; RACK
 * measures every other fragment against it. */
static void rack_note(struct peer *p, const struct frag *f,
                      struct frag **newest)
{
    if (f->order > p->rack_order) {
        p->rack_order = f->order;
        p->rack_sent = f->sent;
    }
    if (f->tx == 1 && (*newest == NULL || f->order > (*newest)->order))
        *newest = (struct frag *)f;
}

/* A retransmitted fragment has just been acknowledged.  If that came
 * sooner after the retransmission than any round trip ever measured on
 * the path, the acknowledgment was for an earlier copy: the fragment had
 * not been lost but overtaken, and the retransmission was spurious.  As
 * RFC 8985 (section 6.2) does on DSACK, RACK then allows for more
 * reordering, a quarter of min_rtt more each time, up to a round trip;
 * after REO_RESET retransmissions in a row that proved needed it falls
 * back to its first allowance.  (A veth pair between two namespaces on a
 * two-core machine reorders bursts of datagrams whenever the sending
 * thread moves between cores.) */
#define REO_RESET 16
static void judge_retransmission(struct rmsg_core *c, struct peer *p,
                                 const struct frag *f, rmsg_time now)
{
    if (f->tx < 2 || !p->have_rtt)
        return;
    if (now - f->sent < (rmsg_time)p->min_rtt) {
        p->reo_needed = 0;
        if ((rmsg_time)(p->reo_steps + 1) * p->min_rtt / 4 >= p->srtt)
            return;
        p->reo_steps++;
        TRACE(c, now, &p->addr,
              "spurious retransmission: reordering allowance %u/4 min_rtt",
              p->reo_steps + 1);
    } else if (++p->reo_needed >= REO_RESET && p->reo_steps > 0) {
        p->reo_steps = 0;
        p->reo_needed = 0;
        TRACE(c, now, &p->addr, "reordering allowance back to 1/4 min_rtt");
    }
}

/* RACK (RFC 8985): a fragment sent before one that has arrived is lost
 * once a round trip plus a reordering allowance has passed since it was
 * sent.  Those not yet old enough set the RACK timer. */
static void detect_losses(struct rmsg_core *c, struct peer *p, rmsg_time now)
{
    p->rack_at = RMSG_NEVER;
    if (p->rack_order == 0)
        return;
    rmsg_time rtt = p->have_rtt ? p->srtt : c->cfg.rto_initial_us;
    rmsg_time reo = (p->have_rtt ? p->min_rtt : rtt) / 4 + 1;
    if (p->have_rtt && p->reo_steps > 0) {
        reo += (rmsg_time)p->reo_steps * p->min_rtt / 4;
        if (reo > (rmsg_time)p->srtt + 1)
            reo = (rmsg_time)p->srtt + 1;
    }
    for (uint32_t s = p->snd_una; seq_lt(s, p->snd_nxt); s++) {
        struct frag *f = &p->sw[s & (p->sw_cap - 1)];
        if (f->order >= p->rack_order) {
            if (f->tx == 1)
                break; /* first sendings are in sequence order */
            continue;
        }
        if (f->sacked || f->lost || f->msg == NULL)
            continue;
        rmsg_time due = f->sent + rtt + reo;
        if (now >= due) {
            mark_lost(p, f, s);
            note_loss(p, f);
        } else {
            p->rack_at = tmin(p->rack_at, due);
        }
    }
}

/* Schedules the tail loss probe two round trips (plus the peer's ack delay
 * when only one fragment is out, since that one ack may be held) from now,
 * at least TLP_MIN_US, and only if it comes before the retransmission
 * timer. */
static void arm_tlp(struct peer *p, rmsg_time now)
{
    p->tlp_at = RMSG_NEVER;
    if (!p->have_rtt || p->tlp_sent || p->snd_una == p->snd_nxt)
        return;
    rmsg_time pto = 2 * (rmsg_time)p->srtt;
    if (p->snd_nxt - p->snd_una == 1)
        pto += p->ack_delay_max;
    if (pto < TLP_MIN_US)
        pto = TLP_MIN_US;
    if (now + pto < p->rto_at)
        p->tlp_at = now + pto;
}

/* Fails queued messages longer than the peer accepts (learned late). */
static void enforce_peer_max(struct rmsg_core *c, struct peer *p,
                             rmsg_time now)
{
    for (struct msg *m = p->sendq, *n; m; m = n) {
        n = m->next;
        if (m->len <= p->peer_max_msg)
            continue;
        if (p->cutting == m)
            p->cutting = m->next;
        m->all_cut = 1; /* the rest of it is never sent */
        msg_finish(c, p, m, -EMSGSIZE, now);
    }
}

/* The acknowledgment fields of a datagram from an established relation. */
static void on_ack(struct rmsg_core *c, struct peer *p,
                   const struct wire_packet *w, rmsg_time now)
{
    if (seq_lt(p->snd_nxt, w->ack)) {
        /* Acknowledges what was never sent: forged or broken. */
        p->st.malformed++;
        c->st.malformed++;
        return;
    }
    int fresh = !seq_lt(w->ack, p->snd_una);
    /* The size limit first: a message over it that the receiver refused
     * (and acknowledged, to skip it) must fail, not count as delivered. */
    if (fresh && w->max_msg != p->peer_max_msg) {
        p->peer_max_msg = w->max_msg ? w->max_msg : 1;
        enforce_peer_max(c, p, now);
    }
    struct frag *newest = NULL;
    struct rate_pick pick = {0};
    uint64_t before = p->delivered;
    uint32_t acked = 0;
    for (; fresh && seq_lt(p->snd_una, w->ack); p->snd_una++, acked++) {
        struct frag *f = &p->sw[p->snd_una & (p->sw_cap - 1)];
        if (!f->sacked) {
            judge_retransmission(c, p, f, now);
            rack_note(p, f, &newest);
            on_frag_delivered(p, f, &pick);
        }
        frag_acked(c, p, f, now);
    }
    for (int i = 0; i < w->nsack; i++) {
        uint32_t a = w->sack[i].first, e = w->sack[i].end;
        if (seq_lt(a, p->snd_una))
            a = p->snd_una;
        if (seq_lt(p->snd_nxt, e))
            e = p->snd_nxt;
        for (uint32_t s = a; seq_lt(s, e); s++) {
            struct frag *f = &p->sw[s & (p->sw_cap - 1)];
            if (f->sacked || f->msg == NULL)
                continue;
            f->sacked = 1;
            if (f->lost) {
                f->lost = 0;
                p->lost--;
            }
            judge_retransmission(c, p, f, now);
            rack_note(p, f, &newest);
            on_frag_delivered(p, f, &pick);
        }
    }
    uint32_t rtt = 0;
    if (fresh && w->ack_delay_us > p->ack_delay_max)
        p->ack_delay_max = w->ack_delay_us < ACK_DELAY_CAP_US
                               ? w->ack_delay_us : ACK_DELAY_CAP_US;
    if (newest) {
        rmsg_time r = now - newest->sent;
        if (r > (rmsg_time)w->ack_delay_us)
            r -= w->ack_delay_us;
        rtt = r > UINT32_MAX ? UINT32_MAX : r > 0 ? (uint32_t)r : 1;
        rtt_sample(c, p, rtt);
    }
    rate_sample(c, p, &pick, p->delivered - before, rtt, now);
    if (fresh) {
        p->peer_wnd = w->window;
        if (w->window > 0)
            p->probes = 0;
    }
    /* Anything newly delivered, selectively acknowledged too, shows the
     * path works: the retransmission timer restarts (as Linux does; RACK
     * finds the holes, the timer is for when nothing comes back at all). */
    if (p->delivered > before) {
        p->backoff = 0;
        p->rto_at = p->snd_una == p->snd_nxt ? RMSG_NEVER : now + p->rto;
        p->tlp_sent = 0;
        arm_tlp(p, now);
    }
    if (seq_lt(p->lost_hint, p->snd_una))
        p->lost_hint = p->snd_una;
    detect_losses(c, p, now);
}

/* ------------------------------------------------------------------------ */
/* Relations: new peers, restarts, stale datagrams                           */
/* ------------------------------------------------------------------------ */

/* True when cid names a relation with p that ended here. */
static int dead_relation(const struct peer *p, uint32_t cid)
{
    for (int i = 0; i < DEAD_CIDS; i++)
        if (p->dead_cid[i] == cid)
            return 1;
    return 0;
}

/* Takes cid as the peer's side of the relation: its stream starts there. */
static void adopt(struct peer *p, uint32_t cid)
{
    p->peer_cid = cid;
    p->rcv_nxt = cid;
    p->newest_first = p->newest_end = cid;
}

/* Queues a reply for which no relation exists (bounded; extra ones are
 * dropped, the peer will send again). */
static void stateless_reply(struct rmsg_core *c, const struct udp_addr *to,
                            uint8_t type, uint32_t cid, uint64_t cookie)
{
    if (c->nsl >= (int)(sizeof(c->sl) / sizeof(c->sl[0])))
        return;
    c->sl[c->nsl++] = (struct stateless){.to = *to, .type = type, .cid = cid,
                                         .cookie = cookie};
}

/* Ends the relation with p and starts a new one (new cid, empty streams).
 * Messages with a fragment on the old relation fail with `error`: the
 * peer may or may not have them.  Messages not yet begun cannot have
 * arrived, so they wait for the new relation instead. */
static void relation_reset(struct rmsg_core *c, struct peer *p, int error,
                           rmsg_time now, const char *why)
{
    TRACE(c, now, &p->addr, "reset relation (%s)", why);
    struct msg *unsent = p->cutting, *tail = p->sendq_tail;
    size_t bytes = 0;
    if (unsent && (unsent->cut > 0 || unsent->all_cut))
        unsent = unsent->next; /* begun: it fails; those after it wait */
    if (unsent) {
        struct msg **pp = &p->sendq, *prev = NULL;
        while (*pp != unsent) {
            prev = *pp;
            pp = &(*pp)->next;
        }
        *pp = NULL;
        p->sendq_tail = prev;
        for (struct msg *m = unsent; m; m = m->next)
            bytes += m->cost;
        p->queued_bytes -= bytes;
        p->cutting = NULL;
    }
    if (p->peer_cid != 0) {
        p->dead_cid[p->dead_next] = p->peer_cid;
        p->dead_next = (p->dead_next + 1) % DEAD_CIDS;
    }
    /* The path is the same: what is known of its round trip stays, for
     * the new relation's timers (without the old one's backoff). */
    int have_rtt = p->have_rtt;
    uint32_t srtt = p->srtt, rttvar = p->rttvar, min_rtt = p->min_rtt;
    uint32_t ack_delay_max = p->ack_delay_max;
    relation_clear(c, p, error);
    relation_start(c, p);
    if (have_rtt) {
        p->have_rtt = 1;
        p->srtt = srtt;
        p->rttvar = rttvar;
        p->min_rtt = min_rtt;
        p->ack_delay_max = ack_delay_max;
        update_rto(c, p);
    }
    p->st.resets++;
    c->st.resets++;
    if (unsent) {
        p->sendq = p->cutting = unsent;
        p->sendq_tail = tail;
        p->queued_bytes = bytes;
        p->deadline_next = 0; /* recomputed at the next timer run */
    }
}

/* ------------------------------------------------------------------------ */
/* Address validation                                                        */
/* ------------------------------------------------------------------------ */

/* A datagram's source address can be forged, and the first datagram of a
 * relation from an address we have never heard from proves nothing: were
 * we to create state for it, a flood of such datagrams with forged
 * addresses would fill the peer table; were we to answer with more than
 * it carried, we would amplify an attack on whoever owns the address.  So
 * an endpoint that validates addresses (cfg.validate) answers such a
 * datagram with a RETRY carrying a token and keeps nothing: the token is
 * a keyed hash of the address, the relation's id and the time (in
 * TOKEN_PERIOD_US steps), so checking it needs no memory either, as with
 * TCP's SYN cookies and QUIC's Retry.  Only a sender that really receives
 * at its address can send the token back; its datagrams carry it until it
 * hears from us, and the one that does is taken as the relation's first.
 * A RETRY (40 bytes) is smaller than any datagram that can draw one (46
 * bytes at least), so an endpoint never sends an unproven address more
 * bytes than it received from it. */

static uint64_t token_for(const struct rmsg_core *c, const struct udp_addr *a,
                          uint32_t cid, uint64_t epoch)
{
    uint8_t k[40];
    size_t n = addr_key(a, k);
    memcpy(k + n, &cid, 4);
    memcpy(k + n + 4, &epoch, 8);
    k[n + 12] = 'T'; /* never equal to a cookie's input */
    return siphash24(c->key, k, n + 13);
}

/* True when a relation may start with this datagram from an unknown
 * address; otherwise a RETRY answers it (only DATA draws one). */
static int address_proven(struct rmsg_core *c, const struct udp_addr *from,
                          const struct wire_packet *w, rmsg_time now)
{
    if (!c->cfg.validate)
        return 1;
    uint64_t epoch = (uint64_t)(now < 0 ? 0 : now) / TOKEN_PERIOD_US;
    if ((w->flags & WIRE_FLAG_TOKEN) &&
        (w->token == token_for(c, from, w->src_cid, epoch) ||
         (epoch > 0 && w->token == token_for(c, from, w->src_cid, epoch - 1))))
        return 1;
    if (w->type == WIRE_DATA) {
        c->st.address_checks++;
        stateless_reply(c, from, WIRE_RETRY, w->src_cid,
                        token_for(c, from, w->src_cid, epoch));
    }
    return 0;
}

/* The peer dropped everything we had in flight unread (it asked for an
 * address token, or challenged a relation it did not know yet): it goes
 * again at once, instead of when the retransmission timer says.  An
 * acknowledgment can then only be for the copy sent next, so that copy
 * counts as a first sending (send_frag): its round trip is measured
 * (Karn's rule is for copies that might each have arrived), though it is
 * still counted as sent again.  Otherwise the hello of every new relation
 * with a peer that validates addresses left the transfer after it without
 * a round trip, paced at the hello's own tiny rate: a first 1 MiB message
 * on loopback waited 10 to 30 ms after its first fragment. */
static void resend_flight(struct peer *p)
{
    for (uint32_t s = p->snd_una; seq_lt(s, p->snd_nxt); s++) {
        struct frag *f = &p->sw[s & (p->sw_cap - 1)];
        if (f->msg != NULL && !f->sacked) {
            mark_lost(p, f, s);
            f->refused = 1;
        }
    }
    p->rto_probe = 1;
}

/* The peer validates addresses and has not seen our token. */
static void on_retry(struct rmsg_core *c, struct peer *p, uint64_t token,
                     rmsg_time now)
{
    p->has_token = 1;
    p->token = token;
    resend_flight(p);
    TRACE(c, now, &p->addr, "retry: address token, sending again");
}

/* Control datagrams: RESET, CHALLENGE, ECHO, RETRY. */
static void on_control(struct rmsg_core *c, struct peer *p,
                       const struct udp_addr *from,
                       const struct wire_packet *w, rmsg_time now)
{
    if (w->type == WIRE_RESET) {
        if (p && w->dst_cid == p->my_cid)
            relation_reset(c, p, -ECONNRESET, now, "peer has no relation");
        return;
    }
    if (w->type == WIRE_RETRY) {
        if (p && w->dst_cid == p->my_cid && p->peer_cid == 0)
            on_retry(c, p, w->cookie, now);
        return;
    }
    if (w->type == WIRE_CHALLENGE) {
        if (p && w->dst_cid == p->my_cid) {
            p->send_echo = 1;
            p->ctl_cid = w->src_cid;
            p->echo_cookie = w->cookie;
            /* The peer still had an older relation with us, and dropped
             * what came on this one until the ECHO, which goes first. */
            if (p->peer_cid == 0)
                resend_flight(p);
        }
        return;
    }
    /* ECHO: proof that relation src_cid is alive at this address. */
    if (w->cookie != cookie_for(c, from, w->src_cid))
        return;
    if (p == NULL && (p = peer_new(c, from, now)) == NULL)
        return;
    if (p->peer_cid == w->src_cid || dead_relation(p, w->src_cid))
        return;
    if (p->peer_cid != 0)
        relation_reset(c, p, -ECONNRESET, now, "peer restarted");
    adopt(p, w->src_cid);
    p->ack_now = 1;
}

/* Decides whether a DATA or ACK datagram belongs to the relation we have
 * with its sender, creating one for a new peer.  Returns the peer to
 * process it with, or NULL to drop it. */
static struct peer *relation_for(struct rmsg_core *c, struct peer *p,
                                 const struct udp_addr *from,
                                 const struct wire_packet *w, rmsg_time now)
{
    if (p == NULL) {
        if (w->dst_cid != 0) {
            p = peer_revive(c, from, w->dst_cid, w->src_cid, now);
            if (p == NULL)
                stateless_reply(c, from, WIRE_RESET, w->src_cid, 0);
            return p;
        }
        if (!address_proven(c, from, w, now))
            return NULL;
        if ((p = peer_new(c, from, now)) != NULL)
            adopt(p, w->src_cid);
        return p;
    }
    if ((w->dst_cid != 0 && w->dst_cid != p->my_cid) ||
        (w->src_cid != p->peer_cid && dead_relation(p, w->src_cid))) {
        /* Meant for, or part of, a relation that no longer exists. */
        stateless_reply(c, from, WIRE_RESET, w->src_cid, 0);
        return NULL;
    }
    if (p->peer_cid == 0) {
        adopt(p, w->src_cid);
        return p;
    }
    if (w->src_cid == p->peer_cid)
        return p;
    if (w->dst_cid == 0) {
        /* A new relation from an address we know: a restart, or a stale
         * datagram.  Only a live peer can echo the challenge. */
        p->send_challenge = 1;
        p->ctl_cid = w->src_cid;
    }
    return NULL;
}

/* The trace line of a datagram that arrived.  A fragment's number i/n is
 * worked out from its offset and length: every fragment but the last is
 * full, so its length is the sender's fragment size (remembered per peer
 * for the last one). */
static void trace_input(struct rmsg_core *c, struct peer *p,
                        const struct udp_addr *from,
                        const struct wire_packet *w, const void *dgram,
                        size_t len, rmsg_time now)
{
    uint32_t crc = load_crc(dgram);
    if (w->type != WIRE_DATA) {
        TRACE(c, now, from, "in %s ack=%u win=%u sack=%u bytes=%zu crc=%08x",
              type_name(w->type), w->ack, w->window, w->nsack, len, crc);
        return;
    }
    uint32_t size = w->payload_len;
    int last = w->frag_off + w->payload_len == w->msg_len;
    if (p && !last && size > 0)
        p->rx_frag_size = size;
    else if (p && last && w->frag_off > 0)
        size = p->rx_frag_size;
    if (size == 0 || (last && w->frag_off > 0 && p == NULL))
        size = w->msg_len ? w->msg_len : 1; /* unknown: count it as one */
    uint32_t i = w->frag_off / size + 1;
    uint32_t n = w->msg_len ? (uint32_t)(((uint64_t)w->msg_len + size - 1) /
                                         size) : 1;
    TRACE(c, now, from, "in DATA seq=%u ack=%u frag=%u/%u len=%u msg=%u "
          "win=%u sack=%u bytes=%zu crc=%08x", w->seq, w->ack, i,
          n < i ? i : n, w->payload_len, w->msg_len, w->window, w->nsack,
          len, crc);
}

/* A DATA datagram that continues, in order, the message an established
 * peer is sending: its payload is checked while it is copied to its place
 * in the reassembly buffer (wire_decode_split), so a large fragment is
 * read once, not once for the check and again for the copy.  Everything
 * this decides on was checked before or is checked again by consume, which
 * copies from the datagram unless the bytes are already in place; a
 * corrupt datagram leaves bytes beyond what was received, which the
 * fragment sent again overwrites.  Returns 1 when the payload was right
 * (*placed: where it went), 0 when the datagram is corrupt, -1 when this
 * path does not apply (nothing done). */
static int place_in_order(struct rmsg_core *c, struct peer *p,
                          const struct wire_packet *w, const uint8_t **placed)
{
    if (p == NULL || p->peer_cid == 0 || w->src_cid != p->peer_cid ||
        w->dst_cid != p->my_cid || w->seq != p->rcv_nxt ||
        w->frag_off == 0 || w->payload_len == 0 || !p->reassembling ||
        p->discarding || w->frag_off != p->rgot || w->msg_len != p->rlen ||
        p->unread_bytes >= c->cfg.recv_buffer ||
        reasm_reserve(c, p, p->rgot + w->payload_len) != 0)
        return -1;
    uint8_t *dst = p->rbuf + p->rgot;
    if (!wire_payload_copy(w, dst))
        return 0;
    *placed = dst;
    return 1;
}

int rmsg_core_input(struct rmsg_core *c, const struct udp_addr *from,
                    const void *dgram, size_t len, rmsg_time now)
{
    struct wire_packet w;
    timers_changed(c);
    bury_dead(c);
    c->st.datagrams_received++;
    c->st.bytes_received += len;
    int r = wire_decode_split(dgram, len, &w);
    struct peer *p = peer_find(c, from);
    const uint8_t *placed = NULL;
    if (r == WIRE_OK && w.type == WIRE_DATA) {
        int in_place = place_in_order(c, p, &w, &placed);
        if (in_place < 0 ? !wire_payload_ok(&w) : in_place == 0)
            r = WIRE_ERR_CHECKSUM;
    }
    if (r != WIRE_OK) {
        int bad_sum = r == WIRE_ERR_CHECKSUM;
        (*(bad_sum ? &c->st.corrupt : &c->st.malformed))++;
        if (p)
            (*(bad_sum ? &p->st.corrupt : &p->st.malformed))++;
        TRACE(c, now, from, "in drop %s len=%zu bytes=%zu crc=%08x",
              r == WIRE_ERR_CHECKSUM ? "corrupt" : "malformed", len, len,
              len >= WIRE_HEADER_BYTES ? load_crc(dgram) : 0u);
        return 0;
    }
    if (c->cfg.trace)
        trace_input(c, p, from, &w, dgram, len, now);
    if (w.type != WIRE_DATA && w.type != WIRE_ACK) {
        on_control(c, p, from, &w, now);
        return 0;
    }
    if ((p = relation_for(c, p, from, &w, now)) == NULL)
        return 0;
    p->last_heard = now;
    p->st.datagrams_received++;
    p->st.bytes_received += len;
    if (w.flags & WIRE_FLAG_ACK)
        on_ack(c, p, &w, now);
    if (w.type == WIRE_DATA)
        on_data(c, p, &w, placed, now);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Timers                                                                    */
/* ------------------------------------------------------------------------ */

/* Messages past their deadline fail; see "Deadlines" at the top. */
static void expire_messages(struct rmsg_core *c, struct peer *p,
                            rmsg_time now)
{
    if (now < p->deadline_next)
        return;
    p->deadline_next = RMSG_NEVER;
    for (struct msg *m = p->sendq, *n; m; m = n) {
        n = m->next;
        if (m->deadline > now) {
            p->deadline_next = tmin(p->deadline_next, m->deadline);
            continue;
        }
        if (m->cut == 0 && !(m->len == 0 && m->all_cut)) {
            msg_finish(c, p, m, -ETIMEDOUT, now);
            continue;
        }
        relation_reset(c, p, -ETIMEDOUT, now, "deadline passed");
        return;
    }
}

/* The retransmission timer: the oldest fragment not known to have arrived
 * is sent again at once, whatever the window, and the timer backs off
 * (RFC 6298 section 5); the congestion window falls to its minimum.  Only
 * the oldest: on a busy two-core machine a receiver can be held up for
 * longer than the timer without anything being lost, and marking the whole
 * flight lost (as RFC 8985 allows) would then send it all twice.  If the
 * rest was lost too, RACK finds it as soon as this copy is acknowledged. */
static void retransmission_timer(struct rmsg_core *c, struct peer *p,
                                 rmsg_time now)
{
    if (p->rto_at > now)
        return;
    if (p->snd_una == p->snd_nxt) {
        p->rto_at = RMSG_NEVER;
        return;
    }
    p->st.timeouts++;
    c->st.timeouts++;
    struct frag *oldest = NULL;
    for (uint32_t s = p->snd_una; seq_lt(s, p->snd_nxt); s++) {
        struct frag *f = &p->sw[s & (p->sw_cap - 1)];
        if (!f->sacked && f->msg != NULL) {
            mark_lost(p, f, s);
            p->rto_probe = 1;
            oldest = f;
            break;
        }
    }
    note_loss(p, oldest);
    if (p->backoff < 30)
        p->backoff++;
    uint64_t rto = (uint64_t)p->rto * 2;
    p->rto = rto > c->cfg.rto_max_us ? c->cfg.rto_max_us : (uint32_t)rto;
    cc_on_timeout(&p->cc);
    p->rto_at = now + p->rto;
    TRACE(c, now, &p->addr, "timeout rto=%uus backoff=%d", p->rto,
          p->backoff);
}

/* The tail loss probe (RFC 8985 section 7): when the last fragments of a
 * flight are lost, nothing arrives after them for RACK to notice, and only
 * the retransmission timer would help, late and with its penalty.  Two
 * round trips after the last sending with nothing acknowledged, the
 * newest outstanding fragment is sent again; its acknowledgment (with
 * SACK) lets RACK repair the rest.  One probe per episode; the window is
 * not touched. */
static void tail_loss_probe(struct rmsg_core *c, struct peer *p,
                            rmsg_time now)
{
    if (p->tlp_at > now)
        return;
    p->tlp_at = RMSG_NEVER;
    if (p->tlp_sent || p->snd_una == p->snd_nxt)
        return;
    for (uint32_t s = p->snd_nxt - 1; seq_le(p->snd_una, s); s--) {
        struct frag *f = &p->sw[s & (p->sw_cap - 1)];
        if (f->sacked || f->msg == NULL)
            continue;
        mark_lost(p, f, s);
        note_loss(p, f);
        p->rto_probe = 1;
        p->tlp_sent = 1;
        /* The timer waits for the probe's answer (it does not move when
         * it is due later anyway: a probe lost too is then no later). */
        rmsg_time answer = now + 2 * (rmsg_time)p->srtt + p->ack_delay_max;
        if (p->rto_at < answer)
            p->rto_at = answer;
        TRACE(c, now, &p->addr, "tail loss probe seq=%u", s);
        return;
    }
}

static void run_timers(struct rmsg_core *c, struct peer *p, rmsg_time now)
{
    expire_messages(c, p, now);
    /* A wake-up late by a scheduler tick (see peer_next_strict) may find
     * the probe and the retransmission timer both due.  The probe was to
     * go first, and it holds the timer back for its answer, which usually
     * makes the timeout (it would shrink the window to nothing) moot. */
    if (p->tlp_at <= p->rto_at) {
        tail_loss_probe(c, p, now);
        retransmission_timer(c, p, now);
    } else {
        retransmission_timer(c, p, now);
        tail_loss_probe(c, p, now);
    }
    if (p->rack_at <= now)
        detect_losses(c, p, now);
    if (p->ack_at <= now)
        p->ack_now = 1;
}

/* ------------------------------------------------------------------------ */
/* Output                                                                    */
/* ------------------------------------------------------------------------ */

/* SACK blocks for the fragments held out of order: the newest arrival's
 * run, then the rest lowest first. */
static int build_sacks(const struct peer *p, struct wire_sack *out, int max)
{
    int n = 0;
    /* First the run of held fragments around the newest arrival (RFC 2018
     * section 4): with more gaps than blocks, the lowest blocks alone
     * would keep the sender from hearing of what arrives now until the
     * gaps below it fill, and then it would hear of it all at once, which
     * looks like a burst of delivery far beyond the path's rate. */
    uint32_t first = p->newest_first, end = p->newest_end;
    if (seq_lt(first, p->rcv_nxt))
        first = p->rcv_nxt;
    if (seq_lt(first, end) && n < max)
        out[n++] = (struct wire_sack){first, end};
    uint32_t seen = 0;
    int lowest = n;
    for (uint32_t i = 1; i < p->rw_cap && seen < p->held_count && n < max;
         i++) {
        uint32_t s = p->rcv_nxt + i;
        if (!held_in(&p->rw[s & (p->rw_cap - 1)]))
            continue;
        seen++;
        if (lowest < n && out[n - 1].end == s)
            out[n - 1].end = s + 1;
        else if (lowest == 1 && !seq_lt(s, first) && seq_lt(s, end))
            continue; /* already reported in the first block */
        else
            out[n++] = (struct wire_sack){s, s + 1};
    }
    return n;
}

/* Fills the header fields every datagram to p carries; `room` is how many
 * SACK blocks fit. */
static void fill_header(struct rmsg_core *c, struct peer *p,
                        struct wire_packet *w, int room, rmsg_time now)
{
    w->src_cid = p->my_cid;
    w->dst_cid = p->peer_cid;
    if (p->peer_cid == 0) {
        if (p->has_token) {
            w->flags = WIRE_FLAG_TOKEN;
            w->token = p->token;
        }
        return;
    }
    w->flags = WIRE_FLAG_ACK;
    w->ack = p->rcv_nxt;
    w->window = p->adv_wnd = recv_window(c, p);
    w->max_msg = msg_max_accepted(c);
    rmsg_time held = p->unacked_frags ? now - p->last_arrival : 0;
    w->ack_delay_us = held > UINT32_MAX ? UINT32_MAX : (uint32_t)held;
    if (p->held_count > 0 && room > 0)
        w->nsack = (uint8_t)build_sacks(p, w->sack, room);
    p->ack_now = 0;
    p->ack_at = RMSG_NEVER;
    p->unacked_frags = p->unacked_bytes = 0;
}

/* Encodes w and does the bookkeeping every datagram shares. */
static int emit(struct rmsg_core *c, struct peer *p, struct wire_packet *w,
                int retx, void *buf, size_t cap, rmsg_time now)
{
    int parts = c->out_body != NULL && w->type == WIRE_DATA;
    size_t n = parts ? wire_encode_head(w, buf, cap) : wire_encode(w, buf, cap);
    if (n == 0)
        return 0;
    if (parts) {
        *c->out_body = w->payload;
        *c->out_body_len = w->payload_len;
    }
    size_t total = n + (parts ? w->payload_len : 0);
    c->st.datagrams_sent++;
    c->st.bytes_sent += total;
    if (p) {
        p->st.datagrams_sent++;
        p->st.bytes_sent += total;
    }
    if (c->cfg.trace && p) {
        /* bytes and crc identify the datagram: the receiver's "in" line
         * of the same datagram shows the same two. */
        uint32_t pm = c->payload_max, crc = load_crc(buf);
        if (w->type == WIRE_DATA)
            TRACE(c, now, &p->addr,
                  "out DATA seq=%u ack=%u frag=%u/%u len=%u win=%u sack=%u "
                  "bytes=%zu crc=%08x%s",
                  w->seq, w->ack, w->frag_off / pm + 1,
                  w->msg_len ? (w->msg_len + pm - 1) / pm : 1,
                  w->payload_len, w->window, w->nsack, total, crc,
                  retx ? " retx" : "");
        else
            TRACE(c, now, &p->addr,
                  "out %s ack=%u win=%u sack=%u bytes=%zu crc=%08x",
                  type_name(w->type), w->ack, w->window, w->nsack, total,
                  crc);
    }
    return (int)n;
}

/* Sends (or sends again) one fragment. */
static int send_frag(struct rmsg_core *c, struct peer *p, uint32_t seq,
                     void *buf, size_t cap, rmsg_time now)
{
    struct frag *f = &p->sw[seq & (p->sw_cap - 1)];
    struct wire_packet w;
    wire_packet_clear(&w, WIRE_DATA);
    size_t used = WIRE_HEADER_BYTES + WIRE_DATA_BYTES + f->len;
    size_t fit = (c->cfg.datagram_max - used) / WIRE_SACK_BYTES;
    fill_header(c, p, &w, fit > WIRE_MAX_SACK ? WIRE_MAX_SACK : (int)fit,
                now);
    w.seq = seq;
    w.msg_len = f->msg->len;
    w.frag_off = f->off;
    w.payload_len = f->len;
    w.payload = f->msg->data ? f->msg->data + f->off : NULL;
    if (f->msg->fcrc && f->len == c->payload_max &&
        f->off % c->payload_max == 0) {
        w.payload_shift = c->frag_shift;
        w.payload_crc = f->msg->fcrc[f->off / c->payload_max];
    }
    int again = f->tx > 0;
    if (again) {
        p->st.retransmissions++;
        c->st.retransmissions++;
    }
    if (f->refused) {
        f->refused = 0;
        f->tx = 0; /* the first copy the peer will read (resend_flight) */
    }
    if (f->tx < UINT8_MAX)
        f->tx++;
    f->sent = now;
    f->order = ++p->tx_order;
    note_sent(p);
    on_frag_sent(p, f, now);
    if (p->rto_at == RMSG_NEVER)
        p->rto_at = now + p->rto;
    arm_tlp(p, now);
    return emit(c, p, &w, again, buf, cap, now);
}

/* send_frag, then what a call finding nothing more to send would note: a
 * driver often skips that call (it asks rmsg_core_next instead), and the
 * rate samples of a request or a reply must still be known to be limited
 * by the application. */
static int send_frag_noted(struct rmsg_core *c, struct peer *p, uint32_t seq,
                           void *buf, size_t cap, rmsg_time now)
{
    int n = send_frag(c, p, seq, buf, cap, now);
    note_app_limited(p);
    return n;
}

/* The lowest fragment marked lost, or -1. */
static int64_t next_lost(struct peer *p)
{
    if (p->lost == 0)
        return -1;
    if (seq_lt(p->lost_hint, p->snd_una))
        p->lost_hint = p->snd_una;
    for (uint32_t s = p->lost_hint; seq_lt(s, p->snd_nxt); s++) {
        struct frag *f = &p->sw[s & (p->sw_cap - 1)];
        if (f->lost) {
            p->lost_hint = s;
            return s;
        }
    }
    p->lost = 0; /* cannot happen; keep the count honest */
    return -1;
}

/* Control datagrams for p, if any are pending. */
static int control_output(struct rmsg_core *c, struct peer *p, void *buf,
                          size_t cap, rmsg_time now)
{
    if (!p->send_echo && !p->send_challenge)
        return 0; /* the usual case: no packet to build (or to zero) */
    struct wire_packet w = {.src_cid = p->my_cid, .dst_cid = p->ctl_cid};
    if (p->send_echo) {
        p->send_echo = 0;
        w.type = WIRE_ECHO;
        w.cookie = p->echo_cookie;
    } else {
        p->send_challenge = 0;
        w.type = WIRE_CHALLENGE;
        w.cookie = cookie_for(c, &p->addr, p->ctl_cid);
    }
    return emit(c, p, &w, 0, buf, cap, now);
}

/* The next datagram for peer p, or 0. */
static int peer_output(struct rmsg_core *c, struct peer *p, void *buf,
                       size_t cap, rmsg_time now)
{
    int n = control_output(c, p, buf, cap, now);
    if (n > 0)
        return n;
    int ok = may_send_data(p, now);
    int64_t lost = ok || p->rto_probe ? next_lost(p) : -1;
    p->rto_probe = 0;
    if (lost >= 0) {
        struct frag *f = &p->sw[(uint32_t)lost & (p->sw_cap - 1)];
        f->lost = 0;
        p->lost--;
        return send_frag_noted(c, p, (uint32_t)lost, buf, cap, now);
    }
    /* A zero window is probed with one fragment, then by the timer. */
    uint32_t wnd = p->peer_wnd;
    if (wnd == 0 && p->snd_una == p->snd_nxt && p->cutting) {
        if (p->probe_at == RMSG_NEVER) {
            /* The persist timer backs off like the retransmission timer. */
            uint64_t wait = (uint64_t)p->rto << (p->probes < 16 ? p->probes : 16);
            p->probe_at = now + (rmsg_time)(wait < c->cfg.rto_max_us
                                                ? wait : c->cfg.rto_max_us);
        }
        if (now >= p->probe_at) {
            p->peer_wnd = 1;
            p->probe_at = RMSG_NEVER;
            p->probes++;
        }
    }
    uint32_t seq = p->snd_nxt;
    struct frag *f = ok ? cut_fragment(c, p) : NULL;
    p->peer_wnd = p->peer_wnd == 1 && wnd == 0 ? 0 : p->peer_wnd;
    if (f)
        return send_frag_noted(c, p, seq, buf, cap, now);
    note_app_limited(p);
    if (p->ack_now && p->peer_cid != 0) {
        struct wire_packet w;
        wire_packet_clear(&w, WIRE_ACK);
        fill_header(c, p, &w, WIRE_MAX_SACK, now);
        p->st.acks_sent++;
        c->st.acks_sent++;
        return emit(c, p, &w, 0, buf, cap, now);
    }
    return 0;
}

/* The next datagram, for either output call. */
static int output(struct rmsg_core *c, rmsg_time now, struct udp_addr *to,
                  void *buf, size_t cap)
{
    if (c->nsl > 0) {
        struct stateless *s = &c->sl[--c->nsl];
        struct wire_packet w = {.type = s->type, .src_cid = 1,
                                .dst_cid = s->cid, .cookie = s->cookie};
        *to = s->to;
        int n = emit(c, NULL, &w, 0, buf, cap, now);
        if (n > 0)
            TRACE(c, now, to, "out %s dst=%u bytes=%d crc=%08x",
                  type_name(s->type), s->cid, n, load_crc(buf));
        return n;
    }
    for (struct peer *p = c->peers; p; p = p->next) {
        run_timers(c, p, now);
        int n = peer_output(c, p, buf, cap, now);
        if (n > 0) {
            *to = p->addr;
            return n;
        }
    }
    return 0;
}

int rmsg_core_output(struct rmsg_core *c, rmsg_time now, struct udp_addr *to,
                     void *buf, size_t cap)
{
    if (c == NULL || to == NULL || buf == NULL || cap < c->cfg.datagram_max)
        return -EINVAL;
    timers_changed(c);
    bury_dead(c); /* nothing points into them: no pieces are out */
    return output(c, now, to, buf, cap);
}

int rmsg_core_output_parts(struct rmsg_core *c, rmsg_time now,
                           struct udp_addr *to, void *head, size_t cap,
                           const void **body, size_t *body_len)
{
    if (c == NULL || to == NULL || head == NULL || body == NULL ||
        body_len == NULL || cap < RMSG_HEAD_MAX)
        return -EINVAL;
    timers_changed(c);
    *body = NULL;
    *body_len = 0;
    c->in_output = 1;
    c->out_body = body;
    c->out_body_len = body_len;
    int n = output(c, now, to, head, cap);
    c->out_body = NULL;
    c->out_body_len = NULL;
    c->in_output = 0;
    return n;
}

/* When p next has a datagram to send (0: now; RMSG_NEVER: not until
 * something arrives or a timer runs). */
static rmsg_time peer_due(const struct rmsg_core *c, const struct peer *p)
{
    if (p->send_echo || p->send_challenge || (p->ack_now && p->peer_cid != 0) ||
        (p->rto_probe && p->lost > 0))
        return 0;
    if (p->pipe >= p->cc.cwnd)
        return RMSG_NEVER;
    if (p->lost > 0)
        return p->pace_at;
    if (p->cutting == NULL)
        return RMSG_NEVER;
    uint32_t in_flight = p->snd_nxt - p->snd_una;
    if (p->peer_max_msg == 0 && p->cutting->cut > 0)
        return RMSG_NEVER;
    if (in_flight >= p->peer_wnd || in_flight >= c->cfg.window)
        return RMSG_NEVER;
    return p->pace_at;
}

/* The next time p must run to keep data moving: sending (pacing), finding
 * a loss among reordered fragments (RACK), acknowledging.  Late, these
 * stall a transfer. */
static rmsg_time peer_next_strict(const struct rmsg_core *c,
                                  const struct peer *p)
{
    rmsg_time t = tmin(tmin(peer_due(c, p), p->rack_at), p->ack_at);
    /* A request or reply alone in flight on a lossy path (note_loss): a
     * tail loss probe that fires late is a round
     * trip that takes longer, so there it keeps data moving too.  (With a
     * flight of bulk data RACK finds the losses, and a punctual probe
     * would only fire at data queued behind a slow link.) */
    if (p->lossy && p->tlp_at != RMSG_NEVER && p->snd_nxt - p->snd_una <= 2)
        t = tmin(t, p->tlp_at);
    return t;
}

/* Works out both times in one pass over the peers, unless known. */
static void next_times(struct rmsg_core *c)
{
    if (c->next_known)
        return;
    rmsg_time t = RMSG_NEVER, strict = RMSG_NEVER;
    if (c->nsl > 0)
        t = strict = 0;
    for (struct peer *p = c->peers; p; p = p->next) {
        rmsg_time ps = peer_next_strict(c, p);
        strict = tmin(strict, ps);
        /* The others are for when nothing comes back: the deadline, the
         * retransmission and tail-probe timers, the persist timer. */
        t = tmin(t, ps);
        t = tmin(t, p->deadline_next);
        t = tmin(t, p->rto_at);
        t = tmin(t, p->tlp_at);
        if (p->peer_wnd == 0 && p->cutting && p->snd_una == p->snd_nxt)
            t = tmin(t, p->probe_at == RMSG_NEVER ? 0 : p->probe_at);
    }
    c->next_at = t;
    c->next_strict_at = strict;
    c->next_known = 1;
}

rmsg_time rmsg_core_next(struct rmsg_core *c)
{
    next_times(c);
    return c->next_at;
}

rmsg_time rmsg_core_next_strict(struct rmsg_core *c)
{
    next_times(c);
    return c->next_strict_at;
}

/* ------------------------------------------------------------------------ */
/* The application's side                                                    */
/* ------------------------------------------------------------------------ */

int rmsg_core_recv(struct rmsg_core *c, struct udp_addr *from, void **msg,
                   size_t *len)
{
    struct delivery *d = fifo_front(&c->dq);
    if (d == NULL)
        return -EAGAIN;
    struct peer *dp = d->peer;
    uint8_t *data = d->data;
    size_t dlen = d->len;
    if (from)
        *from = dp ? dp->addr : d->from;
    fifo_drop(&c->dq); /* d is not to be read from here on */
    if (dp) {
        /* See deliver: the buffer (its capacity is its length once
         * whole) and the delivery's own cost. */
        struct peer *p = dp;
        size_t acct = dlen + DELIVERY_BYTES;
        if (acct > p->unread_bytes)
            acct = p->unread_bytes;
        p->unread_bytes -= acct;
        c->mem -= acct;
        /* Reopen a window that had closed (or nearly). */
        if ((p->adv_wnd < c->cfg.window / 4 &&
             recv_window(c, p) >= p->adv_wnd + c->cfg.window / 4) ||
            (p->adv_wnd == 0 && recv_window(c, p) > 0)) {
            p->ack_now = 1;
            timers_changed(c);
        }
    }
    if (c->drain_pending) { /* memory was freed: held fragments may go in */
        timers_changed(c);
        c->drain_pending = 0;
        for (struct peer *p = c->peers; p; p = p->next)
            if (p->held_count > 0) {
                rmsg_time then = p->last_arrival;
                uint32_t was = p->rcv_nxt;
                drain_held(c, p, then);
                if (p->rcv_nxt != was)
                    p->ack_now = 1;
            }
    }
    *msg = data;
    *len = dlen;
    return 0;
}

void rmsg_core_recycle(struct rmsg_core *c, void *msg, size_t len)
{
    if (c == NULL || len < HUGE_BUFFER_BYTES || len > UINT32_MAX ||
        (c->rspare && c->rspare_len >= len)) {
        free(msg);
        return;
    }
    free(c->rspare);
    c->rspare = msg;
    c->rspare_len = len;
}

int rmsg_core_event(struct rmsg_core *c, struct rmsg_event *ev)
{
    struct rmsg_event *front = fifo_front(&c->evq);
    if (front == NULL)
        return -EAGAIN;
    *ev = *front;
    fifo_drop(&c->evq);
    return 0;
}

void rmsg_core_ack_now(struct rmsg_core *c)
{
    timers_changed(c);
    for (struct peer *p = c->peers; p; p = p->next)
        if (p->ack_at != RMSG_NEVER)
            p->ack_now = 1;
}

void rmsg_core_trace(struct rmsg_core *c,
                     void (*fn)(void *arg, const char *line), void *arg)
{
    c->cfg.trace = fn;
    c->cfg.trace_arg = arg;
}

uint64_t rmsg_core_pending(const struct rmsg_core *c)
{
    return c->pending;
}

int rmsg_core_stats(const struct rmsg_core *c, const struct udp_addr *peer,
                    struct rmsg_stats *st)
{
    const struct peer *p = NULL;
    if (peer) {
        p = peer_lookup(c, peer);
        if (p == NULL)
            return -ENOENT;
        *st = p->st;
        st->memory = p->held_alloc + p->unread_bytes + p->rcap;
    } else {
        *st = c->st;
        st->peers = c->npeers;
        st->memory = c->mem;
        p = c->peers;
    }
    if (p) {
        st->srtt_us = p->srtt;
        st->rttvar_us = p->rttvar;
        st->rto_us = p->rto;
        st->cwnd = (uint32_t)(p->cc.cwnd / c->mss);
        st->in_flight = p->snd_nxt - p->snd_una;
        st->delivery_rate = p->cc.bw;
        st->pacing_rate = p->cc.pacing_rate;
        st->min_rtt_us = p->cc.min_rtt_us;
    }
    return 0;
}
