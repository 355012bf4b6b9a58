/*
 * fuzz_core.c - libFuzzer target for the rmsg protocol core's input path.
 *
 * Two live cores, A and B, send each other messages; the input (format in
 * fuzz_core.h) decides what each sends, when time passes, and what the
 * network does with every datagram: deliver, drop, duplicate, reorder, or
 * flip bits.  Three attacker addresses inject datagrams into either core:
 * raw bytes (with or without a correct CRC-32C) or real datagrams taken
 * from a channel, edited and re-checksummed, so that the fuzzer reaches the
 * state machine behind the checksum with the relation ids of a live
 * exchange.  An input may also forge datagrams from a core's real peer,
 * which switches off the checks that a forger can defeat.
 *
 * Properties (any violation aborts, which libFuzzer reports as a crash):
 *   - every datagram a core sends decodes, is at most datagram_max bytes
 *     and goes to an address it heard from or was asked to send to, whether
 *     taken whole or as head and payload (rmsg_core_output_parts);
 *   - a core delivers from its peer only messages the peer sent, byte for
 *     byte, each once, in the order they were sent (unless forged), within
 *     each of its incarnations;
 *   - every message gets at most one outcome; one reported acknowledged
 *     was delivered (unless either side was forged);
 *   - receive memory never exceeds recv_total, the peer table max_peers;
 *   - once every deadline has passed, over a faithful network, nothing is
 *     pending and every message has its outcome;
 *   - nothing leaks (LeakSanitizer) or is read out of bounds (ASan).
 *
 * Restarts.  A relation starts with data, without a handshake, so a
 * receiver that restarts before its acknowledgment reaches the sender, or
 * that gets a delayed copy of a relation's first datagram after it
 * restarted, delivers again, in its new incarnation, a message the old one
 * had delivered (fuzz/regressions/core/restart-redelivery).  That is
 * reported as a protocol limitation; until it is settled the order check
 * starts afresh with each incarnation of the receiver, unless
 * FUZZ_STRICT_RESTART is set in the environment.
 */
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "fuzz_core.h"
#include "crc32c.h"
#include "rmsg.h"
#include "wire.h"


#define NADDR 5      /* A, B, three attackers */
#define CHAN_MAX 256 /* datagrams a channel holds; more are lost */
#define MSGS_MAX 128 /* messages per side and input */
#define OUT_MAX 256  /* datagrams taken from a core per pump */
#define BUF_BYTES 65536
#define T0 1000000   /* the clocks start at 1 s */

struct dgram {
    uint8_t *b;
    size_t len;
};

/* Datagrams on their way into one core, oldest first. */
struct chan {
    struct dgram q[CHAN_MAX];
    int n;
};

enum { PENDING, ACKED, FAILED };

/* A core and the harness's record of what it sent and received. */
struct side {
    struct rmsg_core *core;
    struct rmsg_config cfg;
    int inc;    /* incarnation: restarts so far */
    int forged; /* a datagram from its peer's address was forged */
    int nsent;
    struct {
        int64_t id;
        int inc;
        uint32_t len;
        int state;
    } sent[MSGS_MAX];
    uint8_t got[MSGS_MAX]; /* received from the peer */
    int next;              /* one past the last index received */
};

struct world {
    struct side s[2];
    struct chan ch[2]; /* ch[i]: into core i */
    struct udp_addr addr[NADDR];
    rmsg_time now, last_deadline;
    uint64_t seed;
    uint8_t buf[BUF_BYTES];
};

/* The input, read a byte at a time; 0 once it runs out. */
struct in {
    const uint8_t *p;
    size_t n;
};

static int more(const struct in *in)
{
    return in->n > 0;
}

static uint8_t byte(struct in *in)
{
    if (in->n == 0)
        return 0;
    in->n--;
    return *in->p++;
}

/* ------------------------------------------------------------------------ */
/* Set-up                                                                    */
/* ------------------------------------------------------------------------ */

static void sink(void *arg, const char *line)
{
    CHECK(strlen(line) < 4096);
    if (arg)
        fprintf(stderr, "%s %s\n", (const char *)arg, line);
}

static void set_addr(struct udp_addr *a, int i)
{
    memset(a, 0, sizeof(*a));
    if (i == 3) { /* one attacker speaks IPv6 */
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&a->ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(4000);
        s6->sin6_addr.s6_addr[0] = 0x20;
        s6->sin6_addr.s6_addr[1] = 0x01;
        s6->sin6_addr.s6_addr[15] = 1;
        a->len = sizeof(*s6);
        return;
    }
    struct sockaddr_in *s4 = (struct sockaddr_in *)&a->ss;
    s4->sin_family = AF_INET;
    s4->sin_port = htons((uint16_t)(1000 + i));
    s4->sin_addr.s_addr = htonl(0x0a000001u + (uint32_t)i);
    a->len = sizeof(*s4);
}

static int addr_index(const struct world *w, const struct udp_addr *a)
{
    for (int i = 0; i < NADDR; i++)
        if (a->len == w->addr[i].len &&
            memcmp(&a->ss, &w->addr[i].ss, a->len) == 0)
            return i;
    return -1;
}

static void configure(struct world *w, uint8_t c)
{
    static const size_t dgram[] = {110, 200, 1400, 4000};
    static const uint32_t window[] = {16, 32, 128, 1024};
    for (int i = 0; i < 2; i++) {
        struct rmsg_config *k = &w->s[i].cfg;
        rmsg_config_default(k);
        k->datagram_max = dgram[c & 3];
        k->window = window[c >> 2 & 3];
        k->max_peers = 8;
        /* FUZZ_TRACE=1 prints the trace of a reproducer. */
        if ((c & 0x40) || getenv("FUZZ_TRACE")) {
            k->trace = sink;
            k->trace_arg = getenv("FUZZ_TRACE") ? (void *)(i ? "B" : "A")
                                                 : NULL;
        }
    }
    struct rmsg_config *a = &w->s[0].cfg;
    if (c & 0x10)
        a->msg_max = 3000;
    if (c & 0x20)
        a->max_peers = 2;
    if (c & 0x80)
        a->recv_buffer = a->recv_total = 65536;
}

static void start_core(struct world *w, int i)
{
    CHECK(rmsg_core_new(&w->s[i].cfg, w->seed++, &w->s[i].core) == 0);
}

/* ------------------------------------------------------------------------ */
/* Messages: every byte is a function of (sender, index, length)            */
/* ------------------------------------------------------------------------ */

static void fill_msg(uint8_t *m, size_t len, int from, int index)
{
    m[0] = 0xA5;
    m[1] = (uint8_t)from;
    m[2] = (uint8_t)(index >> 24);
    m[3] = (uint8_t)(index >> 16);
    m[4] = (uint8_t)(index >> 8);
    m[5] = (uint8_t)index;
    uint32_t x = (uint32_t)(from * 7919 + index * 104729) | 1;
    for (size_t k = 6; k < len; k++) {
        x ^= x << 13, x ^= x >> 17, x ^= x << 5;
        m[k] = (uint8_t)x;
    }
}

/* Core i delivered a message from its peer: check it and record it. */
static void on_message(struct world *w, int i, const uint8_t *m, size_t len)
{
    struct side *me = &w->s[i], *peer = &w->s[1 - i];
    int from = 1 - i;
    int index = len >= 6 ? (int)((uint32_t)m[2] << 24 | (uint32_t)m[3] << 16 |
                                 (uint32_t)m[4] << 8 | m[5])
                         : -1;
    int genuine = len >= 8 && m[0] == 0xA5 && m[1] == from && index >= 0 &&
                  index < peer->nsent && peer->sent[index].len == len;
    if (genuine) {
        uint8_t *want = malloc(len);
        CHECK(want != NULL);
        fill_msg(want, len, from, index);
        genuine = memcmp(want, m, len) == 0;
        free(want);
    }
    if (me->forged)
        return; /* a forger can make it deliver anything */
    CHECK(genuine);            /* never a message that was not sent */
    CHECK(index >= me->next); /* never twice, never out of order */
    me->next = index + 1;
    me->got[index] = 1;
}

/* Takes every message and event of core i. */
static void take(struct world *w, int i)
{
    struct udp_addr from;
    void *m;
    size_t len;
    while (rmsg_core_recv(w->s[i].core, &from, &m, &len) == 0) {
        int a = addr_index(w, &from);
        CHECK(a >= 0 && a != i); /* a sender the core heard from */
        CHECK((m == NULL) == (len == 0));
        if (a == 1 - i)
            on_message(w, i, m, len);
        free(m);
    }
}

/* Core i's events: each message's outcome, reported once. */
static void events(struct world *w, int i)
{
    struct side *me = &w->s[i], *peer = &w->s[1 - i];
    struct rmsg_event ev;
    while (rmsg_core_event(me->core, &ev) == 0) {
        CHECK(ev.error == 0 || ev.error == -ETIMEDOUT ||
              ev.error == -EMSGSIZE || ev.error == -ECONNRESET);
        int k = 0;
        while (k < me->nsent && !(me->sent[k].inc == me->inc &&
                                  me->sent[k].id == (int64_t)ev.id))
            k++;
        CHECK(k < me->nsent); /* an outcome of a message it was given */
        CHECK(me->sent[k].state == PENDING);
        me->sent[k].state = ev.error == 0 ? ACKED : FAILED;
        /* Acknowledged means delivered (the receiver's queue was taken
         * just before). */
        if (ev.error == 0 && !me->forged && !peer->forged)
            CHECK(peer->got[k]);
    }
}

static void take_all(struct world *w)
{
    take(w, 0);
    take(w, 1);
    events(w, 0);
    events(w, 1);
}

static void send_msg(struct world *w, int i, uint8_t b, int short_deadline)
{
    struct side *me = &w->s[i];
    if (me->nsent == MSGS_MAX)
        return;
    uint32_t len = b < 64 ? 8u + b : 8u + (uint32_t)(b - 63) * (b - 63);
    uint8_t *m = malloc(len);
    CHECK(m != NULL);
    fill_msg(m, len, i, me->nsent);
    rmsg_time deadline = w->now + (short_deadline ? 50000 : 10000000);
    int64_t id = rmsg_core_send(me->core, &w->addr[1 - i], m, len,
                                RMSG_NOTIFY, deadline, w->now);
    free(m);
    CHECK(id > 0 || id == -EMSGSIZE || id == -ENOBUFS || id == -ENOMEM);
    if (id <= 0)
        return;
    if (deadline > w->last_deadline)
        w->last_deadline = deadline;
    me->sent[me->nsent].id = id;
    me->sent[me->nsent].inc = me->inc;
    me->sent[me->nsent].len = len;
    me->sent[me->nsent].state = PENDING;
    me->nsent++;
}

/* ------------------------------------------------------------------------ */
/* The network                                                               */
/* ------------------------------------------------------------------------ */

static void push(struct chan *c, const uint8_t *b, size_t len)
{
    if (c->n == CHAN_MAX)
        return; /* a full queue drops */
    uint8_t *copy = malloc(len ? len : 1);
    CHECK(copy != NULL);
    memcpy(copy, b, len);
    c->q[c->n++] = (struct dgram){copy, len};
}

static struct dgram pop(struct chan *c)
{
    struct dgram d = c->q[0];
    memmove(&c->q[0], &c->q[1], (size_t)(c->n - 1) * sizeof(c->q[0]));
    c->n--;
    return d;
}

/* The next datagram of core i into w->buf, whole (parts = 0) or as the
 * head and the payload rmsg_core_output_parts gives, put together here as
 * a sender puts them together on the wire.  Returns its length or 0. */
static int next_datagram(struct world *w, int i, int parts,
                         struct udp_addr *to)
{
    if (!parts) {
        int n = rmsg_core_output(w->s[i].core, w->now, to, w->buf,
                                 sizeof(w->buf));
        CHECK(n >= 0);
        return n;
    }
    const void *body = NULL;
    size_t body_len = 0;
    int n = rmsg_core_output_parts(w->s[i].core, w->now, to, w->buf,
                                   RMSG_HEAD_MAX, &body, &body_len);
    CHECK(n >= 0 && n <= RMSG_HEAD_MAX);
    if (n == 0)
        return 0;
    CHECK(body_len == 0 || body != NULL);
    CHECK((size_t)n + body_len <= sizeof(w->buf));
    if (body_len)
        memcpy(w->buf + n, body, body_len);
    return n + (int)body_len;
}

/* Moves what both cores have to send into the channels. */
static void pump(struct world *w, int parts)
{
    for (int i = 0; i < 2; i++) {
        for (int k = 0; k < OUT_MAX; k++) {
            struct udp_addr to;
            int n = next_datagram(w, i, parts, &to);
            if (n == 0)
                break;
            struct wire_packet p;
            CHECK((size_t)n <= w->s[i].cfg.datagram_max);
            CHECK(wire_decode(w->buf, (size_t)n, &p) == WIRE_OK);
            int a = addr_index(w, &to);
            CHECK(a >= 0 && a != i); /* only to someone it heard from */
            if (a == 1 - i)
                push(&w->ch[1 - i], w->buf, (size_t)n);
        }
    }
}

/* Core i receives d from address index `from`. */
static void input(struct world *w, int i, int from, const uint8_t *b,
                  size_t len)
{
    CHECK(rmsg_core_input(w->s[i].core, &w->addr[from], b, len, w->now) ==
          0);
}

/* What the network does with the first datagram into core i. */
static void deliver(struct world *w, int i, struct in *in)
{
    struct chan *c = &w->ch[i];
    if (c->n == 0)
        return;
    uint8_t action = byte(in) & 7;
    if (action == 6) { /* to the back of the queue */
        struct dgram d = pop(c);
        c->q[c->n++] = d;
        return;
    }
    if (action == 5) { /* a copy now, the original later */
        input(w, i, 1 - i, c->q[0].b, c->q[0].len);
        return;
    }
    struct dgram d = pop(c);
    if (action == 7 && d.len > 0) {
        /* At most 8 bits in one byte: CRC-32C catches every such error. */
        uint8_t pos = byte(in), mask = byte(in);
        d.b[pos % d.len] ^= mask ? mask : 1;
    }
    if (action != 4)
        input(w, i, 1 - i, d.b, d.len);
    free(d.b);
}

static void flush(struct world *w)
{
    for (int round = 0; round < 8; round++) {
        pump(w, round & 1);
        if (w->ch[0].n == 0 && w->ch[1].n == 0)
            return;
        for (int i = 0; i < 2; i++)
            while (w->ch[i].n > 0) {
                struct dgram d = pop(&w->ch[i]);
                input(w, i, 1 - i, d.b, d.len);
                free(d.b);
            }
    }
}

static void fix_crc(uint8_t *b, size_t len)
{
    if (len < WIRE_HEADER_BYTES)
        return;
    memset(b + 12, 0, 4);
    uint32_t c = crc32c(0, b, len);
    b[12] = (uint8_t)(c >> 24);
    b[13] = (uint8_t)(c >> 16);
    b[14] = (uint8_t)(c >> 8);
    b[15] = (uint8_t)c;
}

/* Source 0-2: an attacker; 3: the victim's real peer (a forgery). */
static int source(struct world *w, int victim, int s)
{
    if (s == 3) {
        w->s[victim].forged = 1;
        return 1 - victim;
    }
    return 2 + s;
}

static void inject(struct world *w, uint8_t arg, struct in *in)
{
    int victim = arg & ARG_B;
    size_t len = (size_t)byte(in) << 8;
    len |= byte(in);
    if (len > in->n)
        len = in->n;
    uint8_t *b = malloc(len ? len : 1);
    CHECK(b != NULL);
    memcpy(b, in->p, len);
    in->p += len;
    in->n -= len;
    if (arg & ARG_FIXCRC)
        fix_crc(b, len);
    input(w, victim, source(w, victim, arg >> 1 & 3), b, len);
    free(b);
}

static void mutate(struct world *w, uint8_t arg, struct in *in)
{
    int victim = arg & ARG_B;
    struct chan *c = &w->ch[victim];
    uint8_t index = byte(in), edits = byte(in) & 3;
    if (c->n == 0)
        return;
    struct dgram *d = &c->q[index % c->n];
    uint8_t *b = malloc(d->len ? d->len : 1);
    CHECK(b != NULL);
    memcpy(b, d->b, d->len);
    for (int e = 0; e < edits; e++) {
        uint8_t pos = byte(in), val = byte(in);
        if (d->len > 0)
            b[pos % d->len] = val;
    }
    fix_crc(b, d->len);
    input(w, victim, source(w, victim, arg >> 1 & 3), b, d->len);
    free(b);
}

/* ------------------------------------------------------------------------ */
/* Time, restarts, statistics                                                */
/* ------------------------------------------------------------------------ */

/* A core restarts with its memory lost.  What it had delivered was the
 * application's.  The new instance may be given again a message the old
 * one delivered (the first datagram of a relation carries data and no
 * proof that the sender is not replaying it): see "Restarts" at the top.
 * FUZZ_STRICT_RESTART=1 keeps the ordering check across incarnations. */
static void restart(struct world *w, int i, int validate)
{
    take(w, i);
    rmsg_core_free(w->s[i].core);
    w->s[i].inc++;
    if (!getenv("FUZZ_STRICT_RESTART"))
        w->s[i].next = 0;
    w->s[i].cfg.validate = validate;
    start_core(w, i);
}

static void stats(struct world *w)
{
    for (int i = 0; i < 2; i++) {
        struct rmsg_stats st;
        CHECK(rmsg_core_stats(w->s[i].core, NULL, &st) == 0);
        CHECK(st.memory <= w->s[i].cfg.recv_total);
        CHECK(st.peers <= w->s[i].cfg.max_peers);
        /* The strict timers are some of all the timers. */
        CHECK(rmsg_core_next_strict(w->s[i].core) >=
              rmsg_core_next(w->s[i].core));
        for (int a = 0; a < NADDR; a++) {
            int r = rmsg_core_stats(w->s[i].core, &w->addr[a], &st);
            CHECK(r == 0 || r == -ENOENT);
        }
    }
}

/* After the input: a faithful network until every deadline has passed;
 * then every message must have its outcome. */
static void finish(struct world *w)
{
    rmsg_time end = w->last_deadline + 5000000;
    if (end < w->now + 3000000)
        end = w->now + 3000000;
    for (int round = 0; round < 5000 && w->now < end; round++) {
        flush(w);
        take_all(w);
        stats(w);
        rmsg_time t = rmsg_core_next(w->s[0].core);
        rmsg_time u = rmsg_core_next(w->s[1].core);
        t = u < t ? u : t;
        if (t == RMSG_NEVER)
            t = end;
        w->now = t > w->now ? t : w->now + 1000;
    }
    if (w->now < end)
        return; /* too busy to finish in time: no verdict */
    flush(w);
    take_all(w);
    for (int i = 0; i < 2; i++) {
        struct side *s = &w->s[i];
        CHECK(rmsg_core_pending(s->core) == 0);
        for (int k = 0; k < s->nsent; k++)
            CHECK(s->sent[k].inc != s->inc || s->sent[k].state != PENDING);
    }
}

static void run(struct world *w, struct in *in)
{
    while (more(in)) {
        uint8_t op = byte(in), arg = op >> 4;
        switch (op & 15) {
        case OP_SEND:
            send_msg(w, arg & ARG_B, byte(in), arg & ARG_SHORT);
            break;
        case OP_PUMP:
            pump(w, arg & 1);
            break;
        case OP_DELIVER:
            deliver(w, arg & 1 ? 0 : 1, in);
            break;
        case OP_FLUSH:
            flush(w);
            break;
        case OP_TIME: {
            rmsg_time b = byte(in);
            w->now += (b * b + 1) * 20 * (arg & ARG_LONG ? 64 : 1);
            break;
        }
        case OP_RECV:
            take_all(w);
            break;
        case OP_INJECT:
            inject(w, arg, in);
            break;
        case OP_MUTATE:
            mutate(w, arg, in);
            break;
        case OP_RESTART:
            restart(w, arg & ARG_B, arg & ARG_NOVALIDATE ? 0 : 1);
            break;
        case OP_ACK_NOW:
            rmsg_core_ack_now(w->s[0].core);
            rmsg_core_ack_now(w->s[1].core);
            break;
        case OP_STATS:
            stats(w);
            break;
        default:
            deliver(w, 0, in);
            deliver(w, 1, in);
            break;
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1)
        return 0;
    struct world *w = calloc(1, sizeof(*w));
    CHECK(w != NULL);
    for (int i = 0; i < NADDR; i++)
        set_addr(&w->addr[i], i);
    w->now = T0;
    w->seed = 1;
    configure(w, data[0]);
    start_core(w, 0);
    start_core(w, 1);
    struct in in = {data + 1, size - 1};
    run(w, &in);
    finish(w);
    for (int i = 0; i < 2; i++) {
        rmsg_core_free(w->s[i].core);
        while (w->ch[i].n > 0)
            free(pop(&w->ch[i]).b);
    }
    free(w);
    return 0;
}
