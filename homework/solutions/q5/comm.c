/*
 * comm.c - question 5 (reference): messages of any size with many
 * fragments in flight, over the textbook's udp layer.
 *
 * Fragments.  Every message is cut into fragments of at most FRAGMENT
 * bytes (a 1500-byte Ethernet frame holds one); each carries the length
 * of its message and its offset in it.  Fragments to one destination are
 * numbered in one sequence across messages, so the sequence number alone
 * says where a fragment goes in the stream of everything sent there.
 *
 * Sliding window.  Up to `window` fragments past the oldest one not yet
 * acknowledged may be in flight (question 5: 1 is stop and wait).  Each
 * fragment has its own retransmission timer: the RFC 6298 estimate from
 * round trips (never sampled on a fragment sent twice: Karn's rule), at
 * least 20 ms, doubled for every time the fragment has been sent before,
 * at most 1 s.  A sender makes progress only inside a call on its
 * endpoint: there is no thread, as in the library underneath.
 *
 * Acknowledgments.  The receiver acknowledges every data datagram with
 * both the number of that fragment (a selective acknowledgment, so that
 * fragments that overtook a lost one are not sent again) and the number
 * below which it has every fragment (a cumulative one, which repairs a
 * lost acknowledgment).  The sender frees a message when all its
 * fragments, and all before them, are acknowledged: messages complete in
 * order, which is what comm_send waits for.  (The queue behind the window
 * holds any number of messages, which is all question 6 needs.)
 *
 * Receiving in order.  Per sender instance, the receiver takes the
 * fragment it expects next into the message being assembled, keeps
 * fragments up to WINDOW_MAX ahead of it in a reorder buffer indexed by
 * sequence number, and after each in-order fragment takes as many buffered
 * ones as follow.  A message is delivered when its last byte is in, so
 * messages from one sender come out in the order they were sent.  Copies
 * of fragments already taken are acknowledged again, never used twice.
 *
 * Damage.  A CRC-32 over each whole datagram (header included, its own
 * field taken as 0); a datagram that fails it is dropped as if lost.
 *
 * Restarts.  A sender is its address plus an instance number that
 * comm_open draws at random; a program restarted on the same port starts
 * a new sequence.  (State for senders that went away is never freed:
 * fine for a homework, not for a long-lived server.)
 *
 * Wire format: a 24-byte header in network byte order, then the data.
 *
 *     0      1      2      4          8          12         16         20
 *     +------+------+------+----------+----------+----------+----------+-------
 *     | kind | vers | rsvd | instance | sequence | msg len  |  offset  |  CRC
 *     +------+------+------+----------+----------+----------+----------+-------
 *
 * kind 1 is data.  kind 2 is an acknowledgment: no data; instance and
 * sequence echo the fragment acknowledged, "msg len" holds the cumulative
 * acknowledgment instead.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm.h"
#include "udp.h"

#define HEADER         24
#define FRAGMENT       1400
#define KIND_DATA      1
#define KIND_ACK       2
#define VERSION        3
#define WINDOW_DEFAULT 32
#define WINDOW_MAX     256    /* fragments; the reorder buffer too */
#define RTO_INITIAL_US 100000 /* before the first round trip */
#define RTO_MIN_US     20000
#define RTO_MAX_US     1000000
#define SOCKET_BUFFER  (2 << 20) /* a window's burst must fit in it */

_Static_assert(FRAGMENT <= COMM_FRAGMENT_MAX, "fragments too large");

/* ------------------------------------------------------------------------ */
/* State                                                                     */
/* ------------------------------------------------------------------------ */

/* A message queued for sending, until all its fragments are acknowledged. */
struct message {
    unsigned char *data;
    uint32_t len;
    uint64_t ordinal; /* its number among the messages to its destination */
};

/* One fragment of a queued message. */
struct frag {
    struct message *m;
    uint32_t off, len;
    int last;  /* the message's last fragment */
    int tries; /* times sent */
    int acked;
    int64_t sent_us; /* when last sent */
    int64_t due_us;  /* when to send it again */
};

/* Everything we send to one destination.  frags is a ring holding the
 * fragments from sequence number una on; the first nsent have been sent. */
struct outbound {
    struct sockaddr_in addr;
    struct frag *frags;
    size_t cap, head, count, nsent;
    uint32_t una;          /* oldest fragment not acknowledged */
    uint64_t queued, done; /* messages queued, messages acknowledged */
    int64_t srtt_us, rttvar_us, rto_us;
    struct outbound *next;
};

/* A fragment that arrived ahead of its turn. */
struct slot {
    int used;
    uint32_t seq, msg_len, off, len;
    unsigned char *data;
};

/* Everything we receive from one sender instance. */
struct inbound {
    struct sockaddr_in addr;
    uint32_t instance;
    uint32_t expected;  /* the next fragment to take */
    unsigned char *msg; /* the message being assembled, or NULL */
    uint32_t msg_len, have;
    struct slot slots[WINDOW_MAX]; /* indexed by sequence % WINDOW_MAX */
    struct inbound *next;
};

/* A whole message received, not yet taken by comm_recv. */
struct delivery {
    struct sockaddr_in from;
    void *msg;
    size_t len;
    struct delivery *next;
};

struct comm {
    int fd;
    uint32_t instance;
    int window;
    struct outbound *outs;
    struct inbound *ins;
    struct delivery *head, *tail;
    unsigned char buf[65536];
    unsigned char dg[HEADER + FRAGMENT];
};

/* One parsed datagram. */
struct dgram {
    int kind;
    uint32_t instance, seq, msg_len, offset;
    const unsigned char *data;
    size_t len;
};

/* ------------------------------------------------------------------------ */
/* Small helpers: time, byte order, CRC-32, the header                       */
/* ------------------------------------------------------------------------ */

static int64_t now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static int same_addr(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
    return a->sin_addr.s_addr == b->sin_addr.s_addr &&
           a->sin_port == b->sin_port;
}

/* The CRC-32 of Ethernet and zip (reflected polynomial 0xEDB88320). */
static uint32_t crc32(const unsigned char *p, size_t n)
{
    static uint32_t table[256];
    if (table[1] == 0) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t r = i;
            for (int k = 0; k < 8; k++)
                r = r & 1 ? (r >> 1) ^ 0xEDB88320u : r >> 1;
            table[i] = r;
        }
    }
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++)
        crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

static void header(unsigned char *p, int kind, uint32_t instance, uint32_t seq,
                   uint32_t msg_len, uint32_t offset)
{
    p[0] = (unsigned char)kind;
    p[1] = VERSION;
    p[2] = p[3] = 0;
    put_u32(p + 4, instance);
    put_u32(p + 8, seq);
    put_u32(p + 12, msg_len);
    put_u32(p + 16, offset);
    put_u32(p + 20, 0);
}

/* Seals a datagram of n bytes with its CRC and sends it. */
static void send_dgram(struct comm *c, const struct sockaddr_in *to,
                       unsigned char *p, size_t n)
{
    put_u32(p + 20, crc32(p, n));
    struct sockaddr_in dst = *to;
    UDP_Write(c->fd, &dst, (char *)p, (int)n);
}

/* Checks and parses a received datagram.  Returns 0, or -1 for anything
 * short, damaged or not ours. */
static int parse(unsigned char *p, size_t n, struct dgram *d)
{
    if (n < HEADER || p[1] != VERSION)
        return -1;
    uint32_t crc = get_u32(p + 20);
    put_u32(p + 20, 0);
    if (crc32(p, n) != crc)
        return -1;
    d->kind = p[0];
    d->instance = get_u32(p + 4);
    d->seq = get_u32(p + 8);
    d->msg_len = get_u32(p + 12);
    d->offset = get_u32(p + 16);
    d->data = p + HEADER;
    d->len = n - HEADER;
    return 0;
}

static uint32_t random_instance(void)
{
    uint32_t v = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f == NULL || fread(&v, sizeof(v), 1, f) != 1)
        v = (uint32_t)now_us() * 2654435761u ^ (uint32_t)getpid();
    if (f != NULL)
        fclose(f);
    return v;
}

/* ------------------------------------------------------------------------ */
/* Receive window: reorder buffer, reassembly, in-order delivery             */
/* ------------------------------------------------------------------------ */

static struct inbound *
find_inbound(struct comm *c, const struct sockaddr_in *from, uint32_t instance)
{
    for (struct inbound *in = c->ins; in != NULL; in = in->next)
        if (in->instance == instance && same_addr(&in->addr, from))
            return in;
    struct inbound *in = calloc(1, sizeof(*in));
    if (in == NULL)
        return NULL;
    in->addr = *from;
    in->instance = instance;
    in->next = c->ins;
    c->ins = in;
    return in;
}

/* Queues a whole message (buf, which the queue now owns) for comm_recv. */
static int deliver(struct comm *c, const struct sockaddr_in *from, void *buf,
                   size_t len)
{
    struct delivery *d = malloc(sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    d->from = *from;
    d->msg = buf;
    d->len = len;
    d->next = NULL;
    if (c->tail != NULL)
        c->tail->next = d;
    else
        c->head = d;
    c->tail = d;
    return 0;
}

/* Adds the in-order fragment (msg_len, off, data, len) to the message
 * being assembled and delivers the message when complete.  Returns 0, or
 * -1 when it cannot be taken (a sender breaking the rules, or no memory):
 * it is then neither used nor acknowledged. */
static int take(struct comm *c, struct inbound *in, uint32_t msg_len,
                uint32_t off, const unsigned char *data, size_t len)
{
    if (off == 0 && in->msg == NULL) {
        if (msg_len > COMM_MSG_MAX)
            return -1;
        in->msg = malloc(msg_len > 0 ? msg_len : 1);
        if (in->msg == NULL)
            return -1;
        in->msg_len = msg_len;
        in->have = 0;
    }
    if (in->msg == NULL || off != in->have || msg_len != in->msg_len ||
        len > in->msg_len - in->have)
        return -1;
    memcpy(in->msg + in->have, data, len);
    in->have += (uint32_t)len;
    if (in->have == in->msg_len) {
        if (deliver(c, &in->addr, in->msg, in->msg_len) < 0) {
            in->have -= (uint32_t)len;
            return -1;
        }
        in->msg = NULL;
    }
    in->expected++;
    return 0;
}

/* Takes the buffered fragments that now follow in order. */
static void drain(struct comm *c, struct inbound *in)
{
    for (;;) {
        struct slot *s = &in->slots[in->expected % WINDOW_MAX];
        if (!s->used || s->seq != in->expected ||
            take(c, in, s->msg_len, s->off, s->data, s->len) < 0)
            return;
        free(s->data);
        s->data = NULL;
        s->used = 0;
    }
}

/* Keeps a copy of a fragment that came ahead of its turn.  Returns 0, or
 * -1 without memory. */
static int hold(struct inbound *in, const struct dgram *d)
{
    struct slot *s = &in->slots[d->seq % WINDOW_MAX];
    if (s->used)
        return 0; /* a copy of one we hold already */
    s->data = malloc(d->len > 0 ? d->len : 1);
    if (s->data == NULL)
        return -1;
    memcpy(s->data, d->data, d->len);
    s->seq = d->seq;
    s->msg_len = d->msg_len;
    s->off = d->offset;
    s->len = (uint32_t)d->len;
    s->used = 1;
    return 0;
}

static void on_data(struct comm *c, const struct sockaddr_in *from,
                    const struct dgram *d)
{
    struct inbound *in = find_inbound(c, from, d->instance);
    if (in == NULL)
        return;
    int32_t ahead = (int32_t)(d->seq - in->expected); /* wrap-safe */
    if (ahead >= WINDOW_MAX)
        return; /* beyond the reorder buffer: let it come again */
    if (ahead == 0) {
        if (take(c, in, d->msg_len, d->offset, d->data, d->len) < 0)
            return;
        drain(c, in);
    } else if (ahead > 0 && hold(in, d) < 0) {
        return;
    }
    unsigned char ack[HEADER];
    header(ack, KIND_ACK, d->instance, d->seq, in->expected, 0);
    send_dgram(c, from, ack, HEADER);
}

/* ------------------------------------------------------------------------ */
/* Send window: queue, transmit, timers, acknowledgments                     */
/* ------------------------------------------------------------------------ */

static struct frag *frag_at(struct outbound *o, size_t i)
{
    return &o->frags[(o->head + i) % o->cap];
}

static struct outbound *find_outbound(struct comm *c,
                                      const struct sockaddr_in *to, int create)
{
    for (struct outbound *o = c->outs; o != NULL; o = o->next)
        if (same_addr(&o->addr, to))
            return o;
    struct outbound *o = create ? calloc(1, sizeof(*o)) : NULL;
    if (o == NULL)
        return NULL;
    o->addr = *to;
    o->rto_us = RTO_INITIAL_US;
    o->next = c->outs;
    c->outs = o;
    return o;
}

/* Makes room for n more fragments in o's ring.  Returns 0 or -ENOMEM. */
static int reserve(struct outbound *o, size_t n)
{
    if (o->count + n <= o->cap)
        return 0;
    size_t cap = o->cap ? o->cap : 64;
    while (cap < o->count + n)
        cap *= 2;
    struct frag *f = malloc(cap * sizeof(*f));
    if (f == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < o->count; i++)
        f[i] = *frag_at(o, i);
    free(o->frags);
    o->frags = f;
    o->cap = cap;
    o->head = 0;
    return 0;
}

/* Queues a copy of msg for `to`, cut into fragments.  Returns 0 and the
 * destination and the message's ordinal, or -errno. */
static int enqueue(struct comm *c, const struct sockaddr_in *to,
                   const void *msg, size_t len, struct outbound **op,
                   uint64_t *ordinal)
{
    if (c == NULL || to == NULL || (msg == NULL && len > 0))
        return -EINVAL;
    if (len > COMM_MSG_MAX)
        return -EMSGSIZE;
    size_t nfrags = len == 0 ? 1 : (len + FRAGMENT - 1) / FRAGMENT;
    struct outbound *o = find_outbound(c, to, 1);
    struct message *m = malloc(sizeof(*m));
    unsigned char *copy = malloc(len > 0 ? len : 1);
    if (o == NULL || m == NULL || copy == NULL || reserve(o, nfrags) < 0) {
        free(m);
        free(copy);
        return -ENOMEM;
    }
    if (len > 0)
        memcpy(copy, msg, len);
    *m = (struct message){
        .data = copy, .len = (uint32_t)len, .ordinal = ++o->queued};
    for (size_t i = 0; i < nfrags; i++) {
        struct frag *f = frag_at(o, o->count++);
        size_t off = i * FRAGMENT;
        *f = (struct frag){
            .m = m,
            .off = (uint32_t)off,
            .len = (uint32_t)(len - off < FRAGMENT ? len - off : FRAGMENT),
            .last = i + 1 == nfrags};
    }
    *op = o;
    *ordinal = m->ordinal;
    return 0;
}

/* Sends fragment i of o (sequence number una + i) and sets its timer. */
static void transmit(struct comm *c, struct outbound *o, size_t i, int64_t now)
{
    struct frag *f = frag_at(o, i);
    header(c->dg, KIND_DATA, c->instance, o->una + (uint32_t)i, f->m->len,
           f->off);
    memcpy(c->dg + HEADER, f->m->data + f->off, f->len);
    send_dgram(c, &o->addr, c->dg, HEADER + f->len);
    int64_t rto = o->rto_us << (f->tries < 6 ? f->tries : 6);
    f->tries++;
    f->sent_us = now;
    f->due_us = now + (rto < RTO_MAX_US ? rto : RTO_MAX_US);
}

/* Retransmits what is due, sends what the window allows, and returns the
 * earliest timer left (-1: none). */
static int64_t run_timers(struct comm *c, int64_t now)
{
    int64_t next = -1;
    for (struct outbound *o = c->outs; o != NULL; o = o->next) {
        while (o->nsent < o->count && o->nsent < (size_t)c->window)
            transmit(c, o, o->nsent++, now);
        for (size_t i = 0; i < o->nsent; i++) {
            struct frag *f = frag_at(o, i);
            if (f->acked)
                continue;
            if (now >= f->due_us)
                transmit(c, o, i, now);
            if (next < 0 || f->due_us < next)
                next = f->due_us;
        }
    }
    return next;
}

/* RFC 6298: a new round-trip sample r updates the estimate and timeout. */
static void rtt_sample(struct outbound *o, int64_t r)
{
    if (o->srtt_us == 0) {
        o->srtt_us = r;
        o->rttvar_us = r / 2;
    } else {
        int64_t err = o->srtt_us > r ? o->srtt_us - r : r - o->srtt_us;
        o->rttvar_us = (3 * o->rttvar_us + err) / 4;
        o->srtt_us = (7 * o->srtt_us + r) / 8;
    }
    int64_t rto = o->srtt_us + 4 * o->rttvar_us;
    o->rto_us = rto < RTO_MIN_US   ? RTO_MIN_US
                : rto > RTO_MAX_US ? RTO_MAX_US
                                   : rto;
}

/* Drops acknowledged fragments from the front of the window, completing
 * messages in order. */
static void advance(struct outbound *o)
{
    while (o->nsent > 0 && frag_at(o, 0)->acked) {
        struct frag *f = frag_at(o, 0);
        if (f->last) {
            o->done = f->m->ordinal;
            free(f->m->data);
            free(f->m);
        }
        o->head = (o->head + 1) % o->cap;
        o->count--;
        o->nsent--;
        o->una++;
    }
}

static void on_ack(struct comm *c, const struct sockaddr_in *from,
                   const struct dgram *d, int64_t now)
{
    struct outbound *o = find_outbound(c, from, 0);
    if (o == NULL || d->instance != c->instance)
        return;
    uint32_t i = d->seq - o->una; /* the fragment acknowledged */
    if (i < o->nsent) {
        struct frag *f = frag_at(o, i);
        if (!f->acked && f->tries == 1) /* Karn: only unambiguous samples */
            rtt_sample(o, now - f->sent_us);
        f->acked = 1;
    }
    int32_t below = (int32_t)(d->msg_len - o->una); /* all before is in */
    for (int32_t k = 0; k < below && (size_t)k < o->nsent; k++)
        frag_at(o, (size_t)k)->acked = 1;
    advance(o);
}

/* ------------------------------------------------------------------------ */
/* Driver: the one place that waits                                          */
/* ------------------------------------------------------------------------ */

/* Runs the timers, then waits until the deadline (microseconds, -1: none)
 * or the next timer for one datagram and handles it.  Returns 0 after one
 * step, -ETIMEDOUT once the deadline has passed, or another -errno. */
static int pump(struct comm *c, int64_t deadline)
{
    int64_t now = now_us();
    int64_t until = run_timers(c, now);
    if (deadline >= 0 && (until < 0 || deadline < until))
        until = deadline;
    int wait = until < 0      ? -1
               : until <= now ? 0
                              : (int)((until - now + 999) / 1000);
    struct sockaddr_in from;
    int n = UDP_ReadTimeout(c->fd, &from, (char *)c->buf, sizeof(c->buf), wait);
    if (n < 0) {
        if (errno != ETIMEDOUT && errno != EINTR)
            return -errno;
        return deadline >= 0 && now_us() >= deadline ? -ETIMEDOUT : 0;
    }
    struct dgram d;
    if (parse(c->buf, (size_t)n, &d) < 0)
        return 0; /* damaged or not ours: as if lost */
    if (d.kind == KIND_DATA)
        on_data(c, &from, &d);
    else if (d.kind == KIND_ACK)
        on_ack(c, &from, &d, now_us());
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The interface                                                             */
/* ------------------------------------------------------------------------ */

int comm_send(struct comm *c, const struct sockaddr_in *to, const void *msg,
              size_t len)
{
    struct outbound *o;
    uint64_t ordinal;
    int rc = enqueue(c, to, msg, len, &o, &ordinal);
    while (rc == 0 && o->done < ordinal)
        rc = pump(c, -1);
    return rc;
}

int comm_set_window(struct comm *c, int fragments)
{
    if (c == NULL || fragments < 1)
        return -EINVAL;
    c->window = fragments < WINDOW_MAX ? fragments : WINDOW_MAX;
    return 0;
}

int comm_recv(struct comm *c, struct sockaddr_in *from, void **msg, size_t *len,
              int timeout_ms)
{
    if (c == NULL || msg == NULL || len == NULL)
        return -EINVAL;
    int64_t deadline = timeout_ms < 0 ? -1 : now_us() + timeout_ms * 1000LL;
    while (c->head == NULL) {
        int rc = pump(c, deadline);
        if (rc < 0)
            return rc;
    }
    struct delivery *d = c->head;
    c->head = d->next;
    if (c->head == NULL)
        c->tail = NULL;
    if (from != NULL)
        *from = d->from;
    *msg = d->msg;
    *len = d->len;
    free(d);
    return 0;
}

int comm_open(int port, struct comm **out)
{
    struct comm *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->fd = UDP_Open(port);
    if (c->fd < 0) {
        int err = errno;
        free(c);
        return -err;
    }
    /* Best effort: the kernel may grant less, and then a burst of a whole
     * window may partly overflow; retransmission repairs that. */
    UDP_SetBuffers(c->fd, SOCKET_BUFFER, SOCKET_BUFFER, NULL, NULL);
    c->instance = random_instance();
    c->window = WINDOW_DEFAULT;
    *out = c;
    return 0;
}

static void free_outbound(struct outbound *o)
{
    for (size_t i = 0; i < o->count; i++) {
        struct frag *f = frag_at(o, i);
        if (f->last) {
            free(f->m->data);
            free(f->m);
        }
    }
    free(o->frags);
    free(o);
}

void comm_close(struct comm *c)
{
    if (c == NULL)
        return;
    UDP_Close(c->fd);
    while (c->outs != NULL) {
        struct outbound *o = c->outs;
        c->outs = o->next;
        free_outbound(o);
    }
    while (c->ins != NULL) {
        struct inbound *in = c->ins;
        c->ins = in->next;
        for (int i = 0; i < WINDOW_MAX; i++)
            free(in->slots[i].data);
        free(in->msg);
        free(in);
    }
    while (c->head != NULL) {
        struct delivery *d = c->head;
        c->head = d->next;
        free(d->msg);
        free(d);
    }
    free(c);
}

int comm_port(const struct comm *c)
{
    return UDP_Port(c->fd);
}

int comm_address(const char *host, int port, struct sockaddr_in *addr)
{
    if (host == NULL || addr == NULL)
        return -EINVAL;
    if (UDP_FillSockAddr(addr, (char *)host, port) < 0)
        return -errno;
    return 0;
}
