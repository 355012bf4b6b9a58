/*
 * fuzz_rpc_header.c - libFuzzer target for the rpc layer's header decoders
 * and the server's at-most-once bookkeeping (lib/amo.c).
 *
 * Every input is used twice.
 *
 * 1. As one rpc message: amo_message_type, amo_get_call and amo_get_reply
 *    decode it.  A header that decodes encodes back (amo_put_call,
 *    amo_put_reply) to the same bytes, its fields are in range, and a
 *    reply's status is one the client's table of outcomes covers.
 *
 * 2. As a script for the server's bookkeeping, the way rpc.c's on_request
 *    uses it (format below).  Calls come from a few clients with small ids
 *    and call numbers so that they collide; the script decides when the
 *    calls that were admitted finish or are abandoned.  Checked:
 *      - a call that was admitted to run (V_RUN) is never admitted again,
 *        unless it is idempotent or was abandoned (every copy after the
 *        first says RETRY, as a client's do: see admit);
 *      - V_REPLY hands out the cached reply of that very call, V_WAIT
 *        names a call that runs, V_IGNORE only calls below done_below,
 *        V_ANSWER only the statuses of amo.h;
 *      - the bookkeeping's counts agree with its lists (clients, bytes,
 *        running calls), and there are never more than max_clients;
 *      - nothing leaks, nothing is used after it was freed.
 *
 *    script = config { op }
 *    config = clients remembered (1 + b % 4), then cache bytes (b * 8)
 *    op     = kind byte (kind % 4):
 *      0 CALL   7 bytes: flags (bit 0 STATUS, bit 1 RETRY, bits 2-3 the
 *               server incarnation: 0, ours, another, ours), client
 *               (1 + b % 6), call (1 + b % 12), done_below (b % 14),
 *               proc (b % 4: 0-1 exist, 2 idempotent, 3 does not exist),
 *               address (b % 3), reply length (b)
 *      1 DONE   index byte: the call admitted to run that finishes, with
 *               the reply length given at its CALL
 *      2 ABANDON index byte: an admitted call given up (no memory)
 *      3 RAW    length byte, then a CALL header of that many bytes, which
 *               goes through amo_get_call and, when it decodes, amo_admit
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz.h"
#include "amo.h"
#include "rpc_marshal.h"


#define INCARNATION 0x1122334455667788ull
#define RUNNING_MAX 64
#define RAN_MAX 256

/* ------------------------------------------------------------------------ */
/* Part 1: one message                                                       */
/* ------------------------------------------------------------------------ */

static void check_call(const uint8_t *m, size_t len)
{
    struct call_header h;
    size_t body = 0;
    if (amo_get_call(m, len, &h, &body) != 0)
        return;
    CHECK(body == CALL_HEADER && body <= len);
    CHECK(h.type == T_CALL || h.type == T_STATUS);
    CHECK((h.flags & ~F_RETRY) == 0 && h.client != 0);
    CHECK(h.call != 0 || h.type == T_STATUS); /* STATUS 0: a client's hello */
    CHECK(amo_message_type(m, len) == h.type);
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    amo_put_call(&e, &h);
    CHECK(e.err == 0 && e.len == CALL_HEADER);
    CHECK(memcmp(e.buf, m, CALL_HEADER) == 0);
    rpc_enc_free(&e);
}

static void check_reply(const uint8_t *m, size_t len)
{
    struct reply_header h;
    size_t body = 0;
    if (amo_get_reply(m, len, &h, &body) != 0)
        return;
    CHECK(body == REPLY_HEADER && body <= len);
    /* The client turns -status into an index of an 8-entry table. */
    CHECK(h.status >= REPLY_BUSY && -(int64_t)h.status < 8);
    CHECK(amo_message_type(m, len) == T_REPLY);
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    amo_put_reply(&e, &h);
    CHECK(e.err == 0 && e.len == REPLY_HEADER);
    CHECK(memcmp(e.buf, m, REPLY_HEADER) == 0);
    rpc_enc_free(&e);
}

/* ------------------------------------------------------------------------ */
/* Part 2: the bookkeeping                                                   */
/* ------------------------------------------------------------------------ */

struct job {
    struct client *c;
    struct entry *e; /* NULL: idempotent */
    uint64_t client, call;
    size_t reply_len;
};

struct script {
    const uint8_t *p;
    size_t n;
    struct amo t;
    struct udp_addr addr[3];
    struct job run[RUNNING_MAX];
    int nrun;
    struct {
        uint64_t client, call;
    } ran[RAN_MAX], /* non-idempotent calls admitted to run, not abandoned */
        clients[RAN_MAX]; /* each client's highest call number so far */
    int nran, nclients;
};

static uint8_t byte(struct script *s)
{
    if (s->n == 0)
        return 0;
    s->n--;
    return *s->p++;
}

static int ran_find(const struct script *s, uint64_t client, uint64_t call)
{
    for (int i = 0; i < s->nran; i++)
        if (s->ran[i].client == client && s->ran[i].call == call)
            return i;
    return -1;
}

/* Whether a client would mark this copy RETRY: it has sent a call numbered
 * this or higher before (its calls are numbered in the order it first sends
 * them, over one ordered stream).  Records the call. */
static int seen_before(struct script *s, uint64_t client, uint64_t call)
{
    int i = 0;
    while (i < s->nclients && s->clients[i].client != client)
        i++;
    if (i == s->nclients) {
        if (s->nclients == RAN_MAX)
            return 1; /* cannot tell: say RETRY, which is always safe */
        s->clients[s->nclients].client = client;
        s->clients[s->nclients++].call = call;
        return 0;
    }
    int before = call <= s->clients[i].call;
    if (!before)
        s->clients[i].call = call;
    return before;
}

/* The counts of the bookkeeping agree with its lists. */
static void invariants(const struct amo *t)
{
    uint32_t n = 0;
    size_t bytes = 0;
    const struct client *prev = NULL;
    for (const struct client *c = t->oldest; c; prev = c, c = c->newer) {
        CHECK(c->older == prev);
        size_t cb = 0;
        int running = 0;
        for (const struct entry *e = c->calls; e; e = e->next) {
            cb += e->len;
            running += e->running;
            CHECK(e->running ? e->reply == NULL : 1);
        }
        CHECK(cb == c->bytes && running == c->running);
        bytes += cb;
        n++;
    }
    CHECK(prev == t->newest);
    CHECK(n == t->nclients && n <= t->max_clients && bytes == t->bytes);
}

/* One CALL or STATUS through amo_admit, checking its verdict.  A client
 * numbers its calls in the order it first sends them, sends each once
 * without RETRY and every later copy with it, and rmsg delivers each copy
 * once and in order: amo relies on that, so the harness keeps the promise
 * for the script (a plain copy of a call numbered no higher than one seen
 * before from that client becomes a RETRY). */
static void admit(struct script *s, const struct call_header *hdr, int from,
                  uint8_t proc, size_t reply_len)
{
    struct call_header copy = *hdr, *h = &copy;
    if (h->type == T_CALL && seen_before(s, h->client, h->call))
        h->flags |= F_RETRY;
    int exists = proc != 3, idem = proc == 2;
    struct client *c = NULL;
    struct entry *e = NULL;
    int32_t status = 0;
    enum verdict v = amo_admit(&s->t, h, &s->addr[from], exists, idem, &c,
                               &e, &status);
    switch (v) {
    case V_RUN: {
        CHECK(h->type == T_CALL && exists && c != NULL);
        if (!idem) {
            CHECK(e != NULL && e->running && e->call == h->call);
            CHECK(ran_find(s, h->client, h->call) < 0); /* at most once */
            if (s->nran < RAN_MAX)
                s->ran[s->nran++].client = h->client,
                s->ran[s->nran - 1].call = h->call;
        }
        if (s->nrun == RUNNING_MAX) { /* no room to track it: finish now */
            amo_done(&s->t, c, idem ? NULL : e, NULL, 0);
            break;
        }
        s->run[s->nrun++] = (struct job){c, idem ? NULL : e, h->client,
                                         h->call, reply_len};
        break;
    }
    case V_REPLY:
        CHECK(e != NULL && !e->running && e->call == h->call);
        break;
    case V_WAIT:
        CHECK(h->type == T_CALL && e != NULL && e->running &&
              e->call == h->call);
        break;
    case V_IGNORE:
        CHECK(c != NULL && h->call < c->done_below);
        break;
    case V_ANSWER:
        CHECK(status < 0 && status >= REPLY_BUSY);
        break;
    default:
        CHECK(0);
    }
}

/* A job admitted to run finishes (abandon = 0) or is given up. */
static void finish(struct script *s, uint8_t index, int abandon)
{
    if (s->nrun == 0)
        return;
    int k = index % s->nrun;
    struct job j = s->run[k];
    s->run[k] = s->run[--s->nrun];
    if (abandon && j.e) {
        amo_abandon(&s->t, j.c, j.e);
        int r = ran_find(s, j.client, j.call);
        if (r >= 0)
            s->ran[r] = s->ran[--s->nran];
        return;
    }
    uint8_t *reply = NULL;
    if (j.reply_len) {
        reply = malloc(j.reply_len);
        CHECK(reply != NULL);
        memset(reply, 0xAB, j.reply_len);
    }
    amo_done(&s->t, j.c, j.e, reply, j.reply_len);
}

static void op_call(struct script *s)
{
    uint8_t f = byte(s);
    static const uint64_t server[] = {0, INCARNATION, 0xdeadull, INCARNATION};
    struct call_header h = {
        .type = f & 1 ? T_STATUS : T_CALL,
        .flags = f & 2 ? F_RETRY : 0,
        .server = server[f >> 2 & 3],
    };
    h.client = 1 + byte(s) % 6;
    h.call = 1 + byte(s) % 12;
    h.done_below = byte(s) % 14;
    uint8_t proc = byte(s) % 4;
    h.proc = proc;
    int from = byte(s) % 3;
    size_t reply_len = byte(s);
    /* Through the wire format, as the server gets it. */
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    amo_put_call(&e, &h);
    CHECK(e.err == 0);
    struct call_header d;
    size_t body;
    CHECK(amo_get_call(e.buf, e.len, &d, &body) == 0);
    rpc_enc_free(&e);
    admit(s, &d, from, proc, reply_len);
}

static void op_raw(struct script *s)
{
    size_t len = byte(s);
    if (len > s->n)
        len = s->n;
    uint8_t *m = malloc(len ? len : 1);
    CHECK(m != NULL);
    memcpy(m, s->p, len);
    s->p += len;
    s->n -= len;
    struct call_header h;
    size_t body;
    if (amo_get_call(m, len, &h, &body) == 0)
        admit(s, &h, 0, (uint8_t)(h.proc % 4), 16);
    free(m);
}

static void bookkeeping(const uint8_t *data, size_t size)
{
    struct script *s = calloc(1, sizeof(*s));
    CHECK(s != NULL);
    s->p = data;
    s->n = size;
    uint32_t clients = 1 + byte(s) % 4;
    size_t bytes = (size_t)byte(s) * 8;
    CHECK(amo_init(&s->t, INCARNATION, clients, bytes) == 0);
    for (int i = 0; i < 3; i++) {
        s->addr[i].len = sizeof(struct sockaddr_in);
        s->addr[i].ss.ss_family = AF_INET;
        ((struct sockaddr_in *)&s->addr[i].ss)->sin_port = htons(
            (uint16_t)(5000 + i));
    }
    while (s->n > 0) {
        switch (byte(s) % 4) {
        case 0:
            op_call(s);
            break;
        case 1:
            finish(s, byte(s), 0);
            break;
        case 2:
            finish(s, byte(s), 1);
            break;
        default:
            op_raw(s);
            break;
        }
        invariants(&s->t);
    }
    while (s->nrun > 0) /* what still runs finishes */
        finish(s, 0, 0);
    invariants(&s->t);
    amo_free(&s->t);
    free(s);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    uint8_t *m = malloc(size ? size : 1);
    if (m == NULL)
        return 0;
    memcpy(m, data, size);
    check_call(m, size);
    check_reply(m, size);
    free(m);
    bookkeeping(data, size);
    return 0;
}
