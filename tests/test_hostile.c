/*
 * test_hostile.c - a protocol core under attack: forged first datagrams
 * from made-up addresses, forged tokens, forged control datagrams and
 * acknowledgments, fragment bombs.  A live peer talks to the attacked core
 * all the while; every test checks that it keeps being served, that the
 * attacked core keeps no state for what is forged and stays within its
 * memory bounds, and that the counters say what was refused.
 *
 * Two cores, A (a server: validating addresses) and B (its client), are
 * joined by a perfect link driven with a virtual clock; forged datagrams
 * are encoded with the wire helpers and handed straight to A, and what A
 * answers to forged addresses is counted, never delivered.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "rmsg.h"
#include "tests.h"
#include "wire.h"

struct duel {
    struct rmsg_core *a, *b;
    struct udp_addr addr_a, addr_b;
    rmsg_time now;
    uint64_t rng;
    /* What A sent to addresses other than B's: the amplification count. */
    uint64_t stray_datagrams, stray_bytes, stray_retries;
    uint32_t b_cid, a_cid; /* the relation's ids, as B's datagrams show */
    uint8_t buf[WIRE_MAX_DATAGRAM];
};

static uint64_t rnd(struct duel *d)
{
    uint64_t z = (d->rng += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static struct udp_addr v4(uint32_t ip, uint16_t port)
{
    struct udp_addr a;
    memset(&a, 0, sizeof(a));
    struct sockaddr_in *s = (struct sockaddr_in *)&a.ss;
    s->sin_family = AF_INET;
    s->sin_addr.s_addr = htonl(ip);
    s->sin_port = htons(port);
    a.len = sizeof(*s);
    return a;
}

static int same(const struct udp_addr *x, const struct udp_addr *y)
{
    const struct sockaddr_in *p = (const struct sockaddr_in *)&x->ss;
    const struct sockaddr_in *q = (const struct sockaddr_in *)&y->ss;
    return p->sin_addr.s_addr == q->sin_addr.s_addr &&
           p->sin_port == q->sin_port;
}

static void duel_init(struct duel *d, const struct rmsg_config *cfg_a)
{
    memset(d, 0, sizeof(*d));
    d->rng = 99;
    d->addr_a = v4(0x0a000001, 4000);
    d->addr_b = v4(0x0a000002, 5000);
    CU_ASSERT_FATAL(rmsg_core_new(cfg_a, 1, &d->a) == 0);
    CU_ASSERT_FATAL(rmsg_core_new(NULL, 2, &d->b) == 0);
}

static void duel_free(struct duel *d)
{
    rmsg_core_free(d->a);
    rmsg_core_free(d->b);
}

/* Moves what both cores have to send; A's datagrams to anyone but B are
 * counted and dropped.  Returns how many datagrams moved. */
static int pump_once(struct duel *d)
{
    int moved = 0, n;
    struct udp_addr to;
    while ((n = rmsg_core_output(d->a, d->now, &to, d->buf,
                                 sizeof(d->buf))) > 0) {
        moved++;
        if (same(&to, &d->addr_b)) {
            rmsg_core_input(d->b, &d->addr_a, d->buf, (size_t)n, d->now);
        } else {
            d->stray_datagrams++;
            d->stray_bytes += (uint64_t)n;
            d->stray_retries += d->buf[1] == WIRE_RETRY;
        }
    }
    while ((n = rmsg_core_output(d->b, d->now, &to, d->buf,
                                 sizeof(d->buf))) > 0) {
        moved++;
        struct wire_packet w;
        if (wire_decode(d->buf, (size_t)n, &w) == WIRE_OK && w.dst_cid) {
            d->b_cid = w.src_cid;
            d->a_cid = w.dst_cid;
        }
        if (same(&to, &d->addr_a))
            rmsg_core_input(d->a, &d->addr_b, d->buf, (size_t)n, d->now);
    }
    return moved;
}

/* Runs the link until nothing moves and no timer is due within 50 ms. */
static void settle(struct duel *d)
{
    for (int i = 0; i < 100000; i++) {
        d->now += 100;
        if (pump_once(d) > 0)
            continue;
        rmsg_time na = rmsg_core_next(d->a), nb = rmsg_core_next(d->b);
        rmsg_time next = na < nb ? na : nb;
        if (next == RMSG_NEVER || next > d->now + 50000)
            return;
        if (next > d->now)
            d->now = next;
    }
}

/* B sends A one message; returns 1 when A received exactly it. */
static int b_to_a(struct duel *d, uint32_t tag)
{
    uint8_t m[8] = {'l', 'i', 'v', 'e'};
    memcpy(m + 4, &tag, 4);
    if (rmsg_core_send(d->b, &d->addr_a, m, sizeof(m), 0, RMSG_NEVER,
                       d->now) <= 0)
        return 0;
    settle(d);
    struct udp_addr from;
    void *got;
    size_t len;
    if (rmsg_core_recv(d->a, &from, &got, &len) != 0)
        return 0;
    int ok = len == sizeof(m) && memcmp(got, m, len) == 0 &&
             same(&from, &d->addr_b);
    free(got);
    return ok;
}

/* Encodes a forged datagram into d->buf and hands it to A as coming from
 * `from`.  Returns its length. */
static size_t forge(struct duel *d, struct wire_packet *w,
                    const struct udp_addr *from)
{
    size_t n = wire_encode(w, d->buf, sizeof(d->buf));
    CU_ASSERT_FATAL(n > 0);
    rmsg_core_input(d->a, from, d->buf, n, d->now);
    return n;
}

/* The first fragment of a new relation's first message: what a flood of
 * forged "hello"s consists of. */
static struct wire_packet first_fragment(struct duel *d, uint32_t msg_len,
                                         uint16_t payload_len)
{
    static uint8_t payload[1400];
    uint32_t cid = (uint32_t)rnd(d) | 1;
    struct wire_packet w = {.type = WIRE_DATA, .src_cid = cid, .seq = cid,
                            .msg_len = msg_len, .payload_len = payload_len,
                            .payload = payload};
    return w;
}

static struct udp_addr forged_addr(struct duel *d)
{
    return v4(0x0b000000 | (uint32_t)(rnd(d) & 0xffffff),
              (uint16_t)(1024 + rnd(d) % 60000));
}

/* ------------------------------------------------------------------------ */
/* A flood of forged first datagrams                                         */
/* ------------------------------------------------------------------------ */

/* 20000 first fragments from forged addresses, with B's messages in
 * between: A creates no state for any of them, answers each with one
 * RETRY no larger than what it answers, and B is served throughout. */
static void test_spoofed_flood(void)
{
    struct rmsg_config cfg;
    rmsg_config_default(&cfg);
    cfg.max_peers = 4;
    struct duel d;
    duel_init(&d, &cfg);
    CU_ASSERT(b_to_a(&d, 0));
    uint64_t in_bytes = 0, forged = 0;
    int served = 0;
    for (int i = 0; i < 20000; i++) {
        struct udp_addr from = forged_addr(&d);
        struct wire_packet w = first_fragment(
            &d, (uint32_t)(1 + rnd(&d) % (1u << 30)), (uint16_t)(rnd(&d) % 1354));
        if (w.payload_len > w.msg_len)
            w.payload_len = (uint16_t)w.msg_len;
        in_bytes += forge(&d, &w, &from);
        forged++;
        if (i % 16 == 15)
            pump_once(&d); /* A answers as it would between reads */
        if (i % 1000 == 999)
            served += b_to_a(&d, (uint32_t)i);
    }
    settle(&d);
    struct rmsg_stats st;
    rmsg_core_stats(d.a, NULL, &st);
    CU_ASSERT_EQUAL(st.peers, 1); /* B's relation only */
    CU_ASSERT_EQUAL(served, 20);
    CU_ASSERT_EQUAL(st.messages_received, 21);
    CU_ASSERT_EQUAL(st.address_checks, forged + 1); /* and B's first */
    CU_ASSERT_EQUAL(st.evicted, 0);
    CU_ASSERT_EQUAL(st.memory, 0);
    /* Each RETRY is smaller than the datagram that drew it; the few the
     * bounded reply queue could not hold are simply not sent. */
    CU_ASSERT(d.stray_retries == d.stray_datagrams);
    CU_ASSERT(d.stray_datagrams <= forged);
    CU_ASSERT(d.stray_bytes <= in_bytes);
    if (getenv("RMSG_TEST_VERBOSE") || d.stray_bytes > in_bytes)
        printf("\n  amplification: %.3f (%llu bytes answered to %llu "
               "received, %llu RETRYs)\n",
               (double)d.stray_bytes / (double)in_bytes,
               (unsigned long long)d.stray_bytes,
               (unsigned long long)in_bytes,
               (unsigned long long)d.stray_retries);
    duel_free(&d);
}

/* The smallest datagram that draws a RETRY (an empty first fragment) is
 * larger than the RETRY: the amplification factor is below 1 for every
 * datagram, not only on average. */
static void test_retry_never_larger(void)
{
    struct duel d;
    duel_init(&d, NULL);
    struct udp_addr from = forged_addr(&d);
    struct wire_packet w = first_fragment(&d, 0, 0);
    size_t in = forge(&d, &w, &from);
    pump_once(&d);
    CU_ASSERT_EQUAL(d.stray_retries, 1);
    CU_ASSERT(d.stray_bytes < in);
    if (getenv("RMSG_TEST_VERBOSE"))
        printf("\n  smallest cause %zu bytes, RETRY %llu bytes: %.3f\n", in,
               (unsigned long long)d.stray_bytes,
               (double)d.stray_bytes / (double)in);
    /* An ACK with no relation draws nothing at all. */
    struct wire_packet ack = {.type = WIRE_ACK, .src_cid = 77};
    forge(&d, &ack, &from);
    pump_once(&d);
    CU_ASSERT_EQUAL(d.stray_datagrams, 1);
    duel_free(&d);
}

/* ------------------------------------------------------------------------ */
/* Tokens                                                                    */
/* ------------------------------------------------------------------------ */

/* Sends a first fragment from `from` with the given cid and token and
 * reports whether A created a relation for it. */
static int try_token(struct duel *d, const struct udp_addr *from,
                     uint32_t cid, uint64_t token)
{
    struct rmsg_stats before, after;
    rmsg_core_stats(d->a, NULL, &before);
    static uint8_t one = 1;
    struct wire_packet w = {.type = WIRE_DATA, .flags = WIRE_FLAG_TOKEN,
                            .src_cid = cid, .seq = cid, .msg_len = 1,
                            .payload_len = 1, .payload = &one,
                            .token = token};
    forge(d, &w, from);
    rmsg_core_stats(d->a, NULL, &after);
    return after.peers > before.peers;
}

/* The RETRY A sends a forged address, caught. */
static uint64_t retry_token(struct duel *d, const struct udp_addr *from,
                            uint32_t cid)
{
    static uint8_t one = 1;
    struct wire_packet w = {.type = WIRE_DATA, .src_cid = cid, .seq = cid,
                            .msg_len = 1, .payload_len = 1, .payload = &one};
    forge(d, &w, from);
    struct udp_addr to;
    int n = rmsg_core_output(d->a, d->now, &to, d->buf, sizeof(d->buf));
    struct wire_packet r;
    CU_ASSERT_FATAL(n > 0);
    CU_ASSERT_FATAL(wire_decode(d->buf, (size_t)n, &r) == WIRE_OK);
    CU_ASSERT(r.type == WIRE_RETRY && r.dst_cid == cid && same(&to, from));
    return r.cookie;
}

/* A token works for the address and relation it was made for, during its
 * period and the next; not from another address, not for another
 * relation, not when guessed, not once it is old. */
static void test_tokens(void)
{
    struct duel d;
    duel_init(&d, NULL);
    d.now = 123456789;
    struct udp_addr x = v4(0x0c000001, 1111), y = v4(0x0c000002, 1111);
    uint64_t t = retry_token(&d, &x, 500);
    CU_ASSERT(!try_token(&d, &y, 500, t));     /* another address */
    CU_ASSERT(!try_token(&d, &x, 501, t));     /* another relation */
    CU_ASSERT(!try_token(&d, &x, 500, t ^ 1)); /* a guess */
    d.now += 25000000;                           /* two periods later */
    CU_ASSERT(!try_token(&d, &x, 500, t));
    t = retry_token(&d, &x, 500);
    d.now += 9000000; /* still the same period, or the next */
    CU_ASSERT(try_token(&d, &x, 500, t));
    struct rmsg_stats st;
    rmsg_core_stats(d.a, NULL, &st);
    CU_ASSERT_EQUAL(st.peers, 1);
    CU_ASSERT_EQUAL(st.messages_received, 1);
    duel_free(&d);
}

/* Without validation a relation starts with the first datagram; with it,
 * B's first message costs exactly one RETRY and arrives once. */
static void test_validation_switch(void)
{
    for (int on = 0; on <= 1; on++) {
        struct rmsg_config cfg;
        rmsg_config_default(&cfg);
        cfg.validate = on;
        struct duel d;
        duel_init(&d, &cfg);
        CU_ASSERT(b_to_a(&d, 1));
        CU_ASSERT(b_to_a(&d, 2));
        struct rmsg_stats sa, sb;
        rmsg_core_stats(d.a, NULL, &sa);
        rmsg_core_stats(d.b, NULL, &sb);
        CU_ASSERT_EQUAL(sa.address_checks, (uint64_t)on);
        CU_ASSERT_EQUAL(sb.retransmissions, (uint64_t)on);
        CU_ASSERT_EQUAL(sa.messages_received, 2);
        CU_ASSERT_EQUAL(sb.messages_sent, 2);
        duel_free(&d);
    }
}

/* ------------------------------------------------------------------------ */
/* Forged control and acknowledgments                                        */
/* ------------------------------------------------------------------------ */

/* Datagrams forged with B's address: a claim that B restarted (a new
 * relation), a RESET for a relation A does not have, acknowledgments of
 * data B never sent and SACK blocks beyond anything in flight.  None of
 * them may end B's relation, lose a message or deliver anything. */
static void test_forged_control(void)
{
    struct duel d;
    duel_init(&d, NULL);
    CU_ASSERT(b_to_a(&d, 1));
    /* "B restarted": A challenges B's address, B does not know the
     * relation and stays silent, the old relation stays. */
    struct wire_packet hello = first_fragment(&d, 4, 4);
    forge(&d, &hello, &d.addr_b);
    settle(&d);
    CU_ASSERT(b_to_a(&d, 2));
    /* A RESET from "B" naming a relation of A that does not exist. */
    struct wire_packet reset = {.type = WIRE_RESET, .src_cid = 1,
                                .dst_cid = 12345};
    forge(&d, &reset, &d.addr_b);
    CU_ASSERT(b_to_a(&d, 3));
    /* A queues a message for B; acknowledgments forged by someone who
     * knows the relation's ids (on the path) acknowledge far beyond what
     * A sent, or select blocks beyond it, before B's real one comes. */
    uint8_t m[5] = "reply";
    CU_ASSERT(rmsg_core_send(d.a, &d.addr_b, m, 5, 0, RMSG_NEVER, d.now) > 0);
    struct wire_packet ack = {.type = WIRE_ACK, .flags = WIRE_FLAG_ACK,
                              .src_cid = d.b_cid, .dst_cid = d.a_cid,
                              .ack = d.a_cid + 0x40000000u, .window = 4096,
                              .max_msg = 1u << 30};
    forge(&d, &ack, &d.addr_b);
    ack.ack = d.a_cid; /* nothing new acknowledged... */
    ack.nsack = 1;     /* ...but a block far beyond */
    ack.sack[0] = (struct wire_sack){d.a_cid + 100, d.a_cid + 200};
    forge(&d, &ack, &d.addr_b);
    settle(&d);
    void *got;
    size_t len;
    struct udp_addr from;
    CU_ASSERT_FATAL(rmsg_core_recv(d.b, &from, &got, &len) == 0);
    CU_ASSERT(len == 5 && memcmp(got, m, 5) == 0);
    free(got);
    CU_ASSERT(rmsg_core_recv(d.a, &from, &got, &len) == -EAGAIN);
    struct rmsg_stats sa, sb;
    rmsg_core_stats(d.a, NULL, &sa);
    rmsg_core_stats(d.b, NULL, &sb);
    CU_ASSERT_EQUAL(sa.resets, 0);
    CU_ASSERT_EQUAL(sb.resets, 0);
    CU_ASSERT_EQUAL(sa.messages_failed + sb.messages_failed, 0);
    CU_ASSERT_EQUAL(sa.messages_received, 3);
    CU_ASSERT_EQUAL(sa.messages_sent, 1);
    CU_ASSERT(sa.malformed >= 1); /* the acknowledgment of nothing sent */
    duel_free(&d);
}

/* ------------------------------------------------------------------------ */
/* Fragment bombs                                                            */
/* ------------------------------------------------------------------------ */

/* Proven peers (each answers its RETRY) send the first fragment of a
 * 1 GiB message and stop; one of them claims a length beyond msg_max.
 * Memory grows with the bytes that arrived, not with the lengths claimed,
 * stays within recv_total, and B is still served. */
static void test_fragment_bombs(void)
{
    struct rmsg_config cfg;
    rmsg_config_default(&cfg);
    cfg.max_peers = 64;
    cfg.msg_max = 1u << 30;
    struct duel d;
    duel_init(&d, &cfg);
    CU_ASSERT(b_to_a(&d, 1));
    static uint8_t payload[1354];
    for (int i = 0; i < 60; i++) {
        struct udp_addr from = v4(0x0d000000 + (uint32_t)i, 7000);
        uint32_t cid = 1000 + (uint32_t)i;
        uint64_t t = retry_token(&d, &from, cid);
        struct wire_packet w = {.type = WIRE_DATA, .flags = WIRE_FLAG_TOKEN,
                                .token = t, .src_cid = cid, .seq = cid,
                                .msg_len = i == 0 ? 0xffffffffu : 1u << 30,
                                .payload_len = sizeof(payload),
                                .payload = payload};
        forge(&d, &w, &from);
    }
    settle(&d);
    struct rmsg_stats st;
    rmsg_core_stats(d.a, NULL, &st);
    CU_ASSERT_EQUAL(st.peers, 61);
    CU_ASSERT(st.refused >= 1); /* the length beyond msg_max */
    /* 59 reassemblies begun: each holds what arrived, rounded up to the
     * first allocation, far from the 59 GiB claimed. */
    CU_ASSERT(st.memory <= 59u * (64u << 10));
    CU_ASSERT(st.memory <= cfg.recv_total);
    CU_ASSERT(b_to_a(&d, 2));
    duel_free(&d);
}

int test_hostile_register(void)
{
    CU_pSuite s = CU_add_suite("hostile", NULL, NULL);
    if (s == NULL ||
        !CU_add_test(s, "a flood of forged first datagrams", test_spoofed_flood) ||
        !CU_add_test(s, "a RETRY is never larger than its cause",
                     test_retry_never_larger) ||
        !CU_add_test(s, "address tokens", test_tokens) ||
        !CU_add_test(s, "validation on and off", test_validation_switch) ||
        !CU_add_test(s, "forged control and acknowledgments",
                     test_forged_control) ||
        !CU_add_test(s, "fragment bombs", test_fragment_bombs))
        return -1;
    return 0;
}
