/*
 * seeds.c - writes the fuzz targets' seed corpora (make fuzz-seeds).
 *
 *   seeds DIR      writes DIR/wire/, DIR/core/, DIR/rpc_header/,
 *                  DIR/marshal/ and DIR/faults/
 *
 * The datagrams are real: two cores built the way fuzz_core.c builds them
 * (same settings, same seeds, so the same relation ids) exchange messages,
 * lose one datagram, and restart, which makes them send every type of
 * datagram; one of each kind is kept.  The other seeds are small valid
 * inputs of each target's format: a handful each, since libFuzzer finds
 * the rest.  Built with the ordinary compiler against the plain library.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "amo.h"
#include "fuzz_core.h"
#include "rmsg.h"
#include "rpc_marshal.h"
#include "wire.h"

static const char *root;

/* A seed being written. */
struct out {
    uint8_t b[8192];
    size_t n;
};

static void put(struct out *o, const void *p, size_t n)
{
    if (o->n + n > sizeof(o->b)) {
        fprintf(stderr, "seeds: a seed is too long\n");
        exit(1);
    }
    memcpy(o->b + o->n, p, n);
    o->n += n;
}

static void put8(struct out *o, unsigned v)
{
    uint8_t b = (uint8_t)v;
    put(o, &b, 1);
}

static void save(const char *target, const char *name, const void *p,
                 size_t n)
{
    char path[512];
    snprintf(path, sizeof(path), "%s/%s", root, target);
    mkdir(root, 0755);
    if (mkdir(path, 0755) != 0 && errno != EEXIST) {
        perror(path);
        exit(1);
    }
    snprintf(path, sizeof(path), "%s/%s/%s", root, target, name);
    FILE *f = fopen(path, "wb");
    if (f == NULL || fwrite(p, 1, n, f) != n || fclose(f) != 0) {
        perror(path);
        exit(1);
    }
}

static void save_out(const char *target, const char *name,
                     const struct out *o)
{
    save(target, name, o->b, o->n);
}

/* ------------------------------------------------------------------------ */
/* Real datagrams                                                            */
/* ------------------------------------------------------------------------ */

#define CAPTURE_MAX 4096

static struct {
    uint8_t *b[CAPTURE_MAX];
    size_t len[CAPTURE_MAX];
    int n;
} cap;

static void addr(struct udp_addr *a, int i)
{
    memset(a, 0, sizeof(*a));
    struct sockaddr_in *s = (struct sockaddr_in *)&a->ss;
    s->sin_family = AF_INET;
    s->sin_port = htons((uint16_t)(1000 + i));
    s->sin_addr.s_addr = htonl(0x0a000001u + (uint32_t)i);
    a->len = sizeof(*s);
}

/* Moves every datagram of both cores to the other, dropping datagram
 * number `drop` of the whole run (-1: none), and keeps a copy of each. */
static void exchange(struct rmsg_core *c[2], const struct udp_addr a[2],
                     rmsg_time now, int drop)
{
    static int count;
    uint8_t buf[65536];
    struct udp_addr to;
    for (int moved = 1; moved;) {
        moved = 0;
        for (int i = 0; i < 2; i++) {
            int n;
            while ((n = rmsg_core_output(c[i], now, &to, buf,
                                         sizeof(buf))) > 0) {
                moved = 1;
                if (cap.n < CAPTURE_MAX) {
                    cap.b[cap.n] = malloc((size_t)n);
                    memcpy(cap.b[cap.n], buf, (size_t)n);
                    cap.len[cap.n++] = (size_t)n;
                }
                if (count++ != drop)
                    rmsg_core_input(c[1 - i], &a[i], buf, (size_t)n, now);
            }
        }
    }
}

static void drain(struct rmsg_core *c)
{
    struct udp_addr from;
    void *m;
    size_t len;
    struct rmsg_event ev;
    while (rmsg_core_recv(c, &from, &m, &len) == 0)
        free(m);
    while (rmsg_core_event(c, &ev) == 0)
        ;
}

/* The configuration fuzz_core.c builds for config byte 0x01. */
static void config(struct rmsg_config *k)
{
    rmsg_config_default(k);
    k->datagram_max = 200;
    k->window = 16;
    k->max_peers = 8;
}

static void run_cores(rmsg_time *now, struct rmsg_core *c[2],
                      const struct udp_addr a[2], int rounds, int drop)
{
    for (int r = 0; r < rounds; r++) {
        exchange(c, a, *now, drop);
        drain(c[0]);
        drain(c[1]);
        *now += 3000;
    }
}

/* A conversation that makes the cores send each kind of datagram. */
static void capture(void)
{
    struct rmsg_config k;
    config(&k);
    struct rmsg_core *c[2];
    struct udp_addr a[2];
    addr(&a[0], 0);
    addr(&a[1], 1);
    rmsg_core_new(&k, 1, &c[0]);
    rmsg_core_new(&k, 2, &c[1]);
    rmsg_time now = 1000000;
    static uint8_t msg[3000];
    memset(msg, 0x42, sizeof(msg));
    rmsg_core_send(c[1], &a[0], msg, 0, 0, RMSG_NEVER, now);
    rmsg_core_send(c[1], &a[0], msg, 100, 0, RMSG_NEVER, now);
    rmsg_core_send(c[1], &a[0], msg, 3000, 0, RMSG_NEVER, now);
    rmsg_core_send(c[0], &a[1], msg, 50, 0, RMSG_NEVER, now);
    run_cores(&now, c, a, 100, 3); /* the fourth datagram is lost */
    /* B restarts: its new relation is challenged, and it echoes. */
    rmsg_core_free(c[1]);
    rmsg_core_new(&k, 3, &c[1]);
    rmsg_core_send(c[1], &a[0], msg, 10, 0, RMSG_NEVER, now);
    run_cores(&now, c, a, 100, -1);
    /* A restarts: B's next datagram names a relation A no longer has. */
    rmsg_core_free(c[0]);
    rmsg_core_new(&k, 4, &c[0]);
    rmsg_core_send(c[1], &a[0], msg, 10, 0, RMSG_NEVER, now);
    run_cores(&now, c, a, 200, -1);
    /* A new client C writes to A, which has never heard of it: A asks for
     * an address token (RETRY) and C sends again with it. */
    rmsg_core_free(c[1]);
    rmsg_core_new(&k, 5, &c[1]);
    addr(&a[1], 2);
    rmsg_core_send(c[1], &a[0], msg, 20, 0, RMSG_NEVER, now);
    run_cores(&now, c, a, 20, -1);
    rmsg_core_free(c[0]);
    rmsg_core_free(c[1]);
}

/* One datagram of each kind: type, acknowledgment flag, address token,
 * SACK blocks. */
static void wire_seeds(void)
{
    static const char *names[] = {"?",    "data",  "ack",  "challenge",
                                  "echo", "reset", "retry"};
    enum { TYPES = sizeof(names) / sizeof(names[0]) };
    int seen[TYPES][2][2][2] = {{{{0}}}};
    for (int i = 0; i < cap.n; i++) {
        struct wire_packet p;
        if (wire_decode(cap.b[i], cap.len[i], &p) != WIRE_OK ||
            p.type >= TYPES)
            continue;
        int f = (p.flags & WIRE_FLAG_ACK) != 0, s = p.nsack > 0;
        int t = (p.flags & WIRE_FLAG_TOKEN) != 0;
        if (seen[p.type][f][t][s]++)
            continue;
        char name[64];
        snprintf(name, sizeof(name), "%s%s%s%s", names[p.type],
                 f && p.type != WIRE_ACK ? "-ack" : "", t ? "-token" : "",
                 s ? "-sack" : "");
        save("wire", name, cap.b[i], cap.len[i]);
    }
}

/* The first captured datagram of a type (0: any) with or without SACK
 * blocks (-1: either). */
static int find(int type, int sack)
{
    for (int i = 0; i < cap.n; i++) {
        struct wire_packet p;
        if (wire_decode(cap.b[i], cap.len[i], &p) == WIRE_OK &&
            (type == 0 || p.type == type) &&
            (sack < 0 || (p.nsack > 0) == sack))
            return i;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Programs for the core target                                              */
/* ------------------------------------------------------------------------ */

static void op(struct out *o, int kind, int arg)
{
    put8(o, FUZZ_OP(kind, arg));
}

/* Pump, deliver, take and let time pass, `n` times. */
static void settle(struct out *o, int n)
{
    for (int i = 0; i < n; i++) {
        op(o, OP_FLUSH, 0);
        op(o, OP_RECV, 0);
        op(o, OP_TIME, 0);
        put8(o, 20); /* 8 ms */
    }
}

static void inject(struct out *o, int arg, const uint8_t *b, size_t n)
{
    op(o, OP_INJECT, arg);
    put8(o, (unsigned)(n >> 8));
    put8(o, (unsigned)n);
    put(o, b, n);
}

static void core_seeds(void)
{
    struct out o;

    /* Messages both ways over a clean network. */
    o.n = 0;
    put8(&o, 0x01);
    op(&o, OP_SEND, 0), put8(&o, 30);
    op(&o, OP_SEND, ARG_B), put8(&o, 100);
    op(&o, OP_SEND, ARG_B), put8(&o, 0);
    settle(&o, 6);
    save_out("core", "exchange", &o);

    /* Every network action on a multi-fragment message. */
    o.n = 0;
    put8(&o, 0x01);
    op(&o, OP_SEND, ARG_B), put8(&o, 120);
    op(&o, OP_PUMP, 0);
    static const uint8_t actions[] = {4, 0, 5, 6, 7, 0, 0, 4, 0};
    for (size_t i = 0; i < sizeof(actions); i++) {
        op(&o, OP_DELIVER, 1), put8(&o, actions[i]);
        if (actions[i] == 7)
            put8(&o, 20), put8(&o, 0x10);
        op(&o, OP_DELIVER, 0), put8(&o, 0);
    }
    op(&o, OP_ACK_NOW, 0);
    settle(&o, 4);
    op(&o, OP_TIME, ARG_LONG), put8(&o, 30);
    settle(&o, 4);
    op(&o, OP_STATS, 0);
    save_out("core", "lossy", &o);

    /* Attackers: real datagrams replayed and edited, and raw bytes. */
    o.n = 0;
    put8(&o, 0x21);
    op(&o, OP_SEND, ARG_B), put8(&o, 70);
    op(&o, OP_PUMP, 0);
    int d = find(WIRE_DATA, -1);
    inject(&o, ARG_FROM(0) | ARG_FIXCRC, cap.b[d], cap.len[d]);
    inject(&o, ARG_FROM(1) | ARG_FIXCRC, cap.b[d], cap.len[d]);
    inject(&o, ARG_FROM(2), cap.b[d], cap.len[d]);
    op(&o, OP_MUTATE, ARG_FROM(0)), put8(&o, 0), put8(&o, 1);
    put8(&o, 1), put8(&o, WIRE_RESET);
    op(&o, OP_MUTATE, ARG_FROM(1)), put8(&o, 0), put8(&o, 2);
    put8(&o, 1), put8(&o, WIRE_CHALLENGE), put8(&o, 3), put8(&o, 0);
    settle(&o, 4);
    save_out("core", "attack", &o);

    /* Restarts of either side, a short deadline, then quiet. */
    o.n = 0;
    put8(&o, 0x02);
    op(&o, OP_SEND, ARG_B), put8(&o, 10);
    settle(&o, 2);
    op(&o, OP_RESTART, ARG_B);
    op(&o, OP_SEND, ARG_B), put8(&o, 11);
    op(&o, OP_SEND, ARG_SHORT), put8(&o, 12);
    settle(&o, 3);
    op(&o, OP_RESTART, 0);
    op(&o, OP_SEND, ARG_B), put8(&o, 13);
    settle(&o, 3);
    save_out("core", "restart", &o);

    /* A receiver with little memory that does not read: window zero. */
    o.n = 0;
    put8(&o, 0x80 | 0x40 | 0x02);
    for (int i = 0; i < 6; i++)
        op(&o, OP_SEND, ARG_B), put8(&o, 200);
    for (int i = 0; i < 10; i++) {
        op(&o, OP_FLUSH, 0);
        op(&o, OP_TIME, ARG_LONG), put8(&o, 10);
    }
    settle(&o, 4);
    save_out("core", "window-zero", &o);

    /* A full peer table: attackers open relations of their own. */
    o.n = 0;
    put8(&o, 0x20 | 0x01);
    int a = find(WIRE_DATA, 0);
    for (int s = 0; s < 3; s++)
        inject(&o, ARG_FROM(s) | ARG_FIXCRC, cap.b[a], cap.len[a]);
    op(&o, OP_SEND, ARG_B), put8(&o, 40);
    settle(&o, 4);
    save_out("core", "peer-table", &o);
}

/* ------------------------------------------------------------------------ */
/* rpc headers, marshalling, fault specifications                            */
/* ------------------------------------------------------------------------ */

static void rpc_header_seeds(void)
{
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    amo_put_call(&e, &(struct call_header){T_CALL, 0, 1, 7, 1, 1, 0});
    rpc_put_i32(&e, 5);
    save("rpc_header", "call", e.buf, e.len);
    rpc_enc_free(&e);
    amo_put_call(&e, &(struct call_header){T_STATUS, F_RETRY, 1, 7, 3, 2,
                                           0x1122334455667788ull});
    save("rpc_header", "status", e.buf, e.len);
    rpc_enc_free(&e);
    amo_put_reply(&e, &(struct reply_header){0, 0x1122334455667788ull, 1});
    rpc_put_i64(&e, 6);
    save("rpc_header", "reply", e.buf, e.len);
    rpc_enc_free(&e);

    /* Scripts: two clients, a duplicate, a RETRY, a STATUS, completions
     * and an abandon; then more clients than are remembered. */
    static const uint8_t script[] = {
        1, 64,
        0, 0x00, 0, 0, 0, 0, 0, 8,  /* client 1 call 1 */
        0, 0x00, 0, 0, 0, 0, 0, 8,  /* the same again: waits */
        0, 0x01, 0, 0, 0, 0, 0, 0,  /* STATUS of it: running */
        1, 0,                       /* it finishes */
        0, 0x06, 0, 0, 0, 0, 1, 0,  /* RETRY, ours: cached reply */
        0, 0x00, 1, 1, 0, 2, 2, 4,  /* client 2, idempotent */
        0, 0x00, 1, 1, 0, 2, 2, 4,  /* runs again */
        1, 0, 1, 0,
        0, 0x00, 0, 1, 2, 0, 0, 4,  /* client 1 call 2, done_below 2 */
        2, 0,                       /* abandoned */
        0, 0x08, 2, 0, 0, 0, 0, 0,  /* another incarnation: stale */
        0, 0x00, 3, 0, 0, 3, 0, 0,  /* no such procedure */
        0, 0x00, 4, 0, 0, 0, 0, 200, 1, 0, /* evicts the others */
        0, 0x02, 0, 0, 0, 0, 0, 0,  /* RETRY from a forgotten client */
    };
    save("rpc_header", "script", script, sizeof(script));
}

static void marshal_seeds(void)
{
    /* One of each getter, over the values encoded in that order. */
    static const uint8_t prog[] = {0x00, 0x01, 0x02, 0x03, 0x04, 0x05,
                                   0x06, 0x07, 0x08, 0x09, 0x0a, 0xeb,
                                   0xfc, 0x4d, 0xde, 0x00, 0x0f};
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    rpc_put_u8(&e, 200);
    rpc_put_u16(&e, 40000);
    rpc_put_u32(&e, 3000000000u);
    rpc_put_u64(&e, UINT64_MAX);
    rpc_put_i8(&e, -5);
    rpc_put_i16(&e, -300);
    rpc_put_i32(&e, INT32_MIN);
    rpc_put_i64(&e, -1);
    rpc_put_bool(&e, true);
    rpc_put_double(&e, -0.0);
    rpc_put_bytes(&e, "abc", 3);
    rpc_put_string(&e, "hello");
    rpc_put_string(&e, "short");
    rpc_put_raw(&e, "wxyz", 4);
    rpc_put_count(&e, 1);
    rpc_put_u8(&e, 7);
    struct out o = {.n = 0};
    put8(&o, sizeof(prog));
    put(&o, prog, sizeof(prog));
    put(&o, e.buf, e.len);
    save_out("marshal", "every-type", &o);
    rpc_enc_free(&e);

    /* Truncated in the middle of a string. */
    static const uint8_t cut[] = {2, 0xeb, 0x0f, 0, 0, 0, 9, 'h', 'i'};
    save("marshal", "truncated-string", cut, sizeof(cut));
}

static void faults_seeds(void)
{
    static const char *specs[] = {
        "drop=0.1,dup=0.05,reorder=0.1,corrupt=0.01,delay=20ms,seed=42",
        "drop=10%,jitter=2ms",
        " delay = 1.5s , jitter=100us ",
        "seed=18446744073709551615",
        "drop=0.1,drop=0.2",
        "delay=3601s",
    };
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        struct out o = {.n = 0};
        put8(&o, i == 3 ? 8 : 128); /* one with a short error buffer */
        put(&o, specs[i], strlen(specs[i]));
        char name[32];
        snprintf(name, sizeof(name), "spec-%zu", i + 1);
        save_out("faults", name, &o);
    }
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: seeds DIR\n");
        return 2;
    }
    root = argv[1];
    capture();
    wire_seeds();
    core_seeds();
    rpc_header_seeds();
    marshal_seeds();
    faults_seeds();
    for (int i = 0; i < cap.n; i++)
        free(cap.b[i]);
    return 0;
}
