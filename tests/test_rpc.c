/*
 * test_rpc.c - rpc over real sockets on loopback: the outcomes a caller can
 * act on, the lecture's incrementBy counter over a lossy network with the
 * at-most-once accounting checked call by call, a duplicate arriving while
 * the first copy runs, a server restarting on the same port, a client
 * restarting, eviction of old clients, forged requests, and the reply
 * cache's bound; then one regression test for each defect a review of the
 * rpc layer found (commit 8294a8c).  Ephemeral ports only; slow handlers
 * block on a condition variable, never on sleep.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <CUnit/CUnit.h>

#include "amo.h"
#include "rpc.h"
#include "tests.h"

enum { P_ECHO = 1, P_INCR = 2, P_FAIL = 3, P_SLOW = 4, P_INCR_IDEM = 5,
       P_BIG = 6 };
enum { BIG_REPLY = 100000 }; /* bytes of results P_BIG returns */

/* The server side of the tests: a counter, a record of which (client,
 * token) pairs ran, and a gate that slow calls wait at. */
struct world {
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int64_t counter;
    uint64_t runs;
    uint8_t *seen; /* one byte per token: how often it ran */
    int64_t *result; /* per token: the value its run returned */
    size_t nseen;
    int twice;     /* a token ran more than once */
    int slow_in, gate_open;
};

/* Echoes the request (as bytes: a length, then the request), counting its
 * runs. */
static int h_echo(void *arg, const void *req, size_t len, struct rpc_enc *r)
{
    struct world *w = arg;
    pthread_mutex_lock(&w->lock);
    w->runs++;
    pthread_mutex_unlock(&w->lock);
    rpc_put_bytes(r, req, len);
    return 0;
}

/* Returns BIG_REPLY bytes of results whatever it is asked, counting its
 * runs. */
static int h_big(void *arg, const void *req, size_t len, struct rpc_enc *r)
{
    static const uint8_t zeros[BIG_REPLY];
    struct world *w = arg;
    (void)req, (void)len;
    pthread_mutex_lock(&w->lock);
    w->runs++;
    pthread_mutex_unlock(&w->lock);
    rpc_put_raw(r, zeros, sizeof(zeros));
    return 0;
}

/* incrementBy(token u32, by i32) -> new value i64.  Records the token. */
static int h_incr(void *arg, const void *req, size_t len, struct rpc_enc *r)
{
    struct world *w = arg;
    struct rpc_dec d;
    uint32_t token;
    int32_t by;
    rpc_dec_init(&d, req, len);
    rpc_get_u32(&d, &token);
    rpc_get_i32(&d, &by);
    if (rpc_dec_end(&d) != 0)
        return 22; /* the caller sees this code */
    pthread_mutex_lock(&w->lock);
    w->counter += by;
    w->runs++;
    if (token < w->nseen && w->seen[token]++ > 0)
        w->twice = 1;
    int64_t v = w->counter;
    if (token < w->nseen)
        w->result[token] = v;
    pthread_mutex_unlock(&w->lock);
    rpc_put_i64(r, v);
    return 0;
}

static int h_fail(void *arg, const void *req, size_t len, struct rpc_enc *r)
{
    (void)arg, (void)req, (void)len, (void)r;
    return 7;
}

/* Waits at the gate (the test opens it), counting how many are inside.
 * A request of one u32 is a token, recorded as h_incr does. */
static int h_slow(void *arg, const void *req, size_t len, struct rpc_enc *r)
{
    struct world *w = arg;
    uint32_t token = UINT32_MAX;
    if (len == 4) {
        struct rpc_dec d;
        rpc_dec_init(&d, req, len);
        rpc_get_u32(&d, &token);
    }
    pthread_mutex_lock(&w->lock);
    if (token < w->nseen && w->seen[token]++ > 0)
        w->twice = 1;
    w->slow_in++;
    w->runs++;
    pthread_cond_broadcast(&w->cond);
    while (!w->gate_open)
        pthread_cond_wait(&w->cond, &w->lock);
    pthread_mutex_unlock(&w->lock);
    rpc_put_u32(r, 42);
    return 0;
}

struct server {
    struct rpc_server *s;
    pthread_t thread;
    int workers;
};

static void *serve(void *arg)
{
    struct server *sv = arg;
    rpc_serve(sv->s, sv->workers);
    return NULL;
}

static void world_init(struct world *w, size_t tokens)
{
    memset(w, 0, sizeof(*w));
    pthread_mutex_init(&w->lock, NULL);
    pthread_cond_init(&w->cond, NULL);
    w->nseen = tokens;
    w->seen = calloc(tokens ? tokens : 1, 1);
    w->result = calloc(tokens ? tokens : 1, sizeof(*w->result));
}

static void world_free(struct world *w)
{
    free(w->seen);
    free(w->result);
    pthread_mutex_destroy(&w->lock);
    pthread_cond_destroy(&w->cond);
}

static int server_start(struct server *sv, struct world *w, int port,
                        int workers, const struct rpc_config *cfg)
{
    int r = rpc_server_open(port, cfg, &sv->s);
    if (r != 0)
        return r;
    rpc_register(sv->s, P_ECHO, h_echo, w, 0);
    rpc_register(sv->s, P_INCR, h_incr, w, 0);
    rpc_register(sv->s, P_FAIL, h_fail, w, 0);
    rpc_register(sv->s, P_SLOW, h_slow, w, 0);
    rpc_register(sv->s, P_INCR_IDEM, h_incr, w, RPC_IDEMPOTENT);
    rpc_register(sv->s, P_BIG, h_big, w, 0);
    sv->workers = workers;
    pthread_create(&sv->thread, NULL, serve, sv);
    return 0;
}

static void server_stop(struct server *sv)
{
    rpc_stop(sv->s);
    pthread_join(sv->thread, NULL);
    rpc_server_close(sv->s);
}

/* A client of the server on loopback (cfg NULL: defaults); the test
 * stops if it cannot be opened. */
static struct rpc_client *client_of(const struct server *sv,
                                    const struct rpc_config *cfg)
{
    struct rpc_client *c = NULL;
    CU_ASSERT_EQUAL_FATAL(rpc_client_open("127.0.0.1", rpc_server_port(sv->s),
                                          cfg, &c), 0);
    return c;
}

/* incrementBy over rpc: returns the outcome, the new value in *v. */
static int incr(struct rpc_client *c, uint32_t proc, uint32_t token,
                int32_t by, int64_t *v, int timeout_ms)
{
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    rpc_put_u32(&e, token);
    rpc_put_i32(&e, by);
    void *reply;
    size_t len;
    int r = rpc_call(c, proc, e.buf, e.len, &reply, &len, timeout_ms);
    rpc_enc_free(&e);
    if (r == 0) {
        struct rpc_dec d;
        rpc_dec_init(&d, reply, len);
        rpc_get_i64(&d, v);
        if (rpc_dec_end(&d) != 0)
            r = -EPROTO;
    }
    free(reply);
    return r;
}

/* ------------------------------------------------------------------------ */

static void test_outcomes(void)
{
    struct world w;
    world_init(&w, 16);
    struct server sv;
    CU_ASSERT_EQUAL_FATAL(server_start(&sv, &w, 0, 0, NULL), 0);
    struct rpc_config cfg;
    rpc_config_default(&cfg);
    cfg.max_request = 1 << 20;
    struct rpc_client *c;
    CU_ASSERT_EQUAL_FATAL(rpc_client_open("127.0.0.1",
                                          rpc_server_port(sv.s), &cfg, &c), 0);
    /* Success, with results of several sizes (a megabyte too). */
    size_t sizes[] = {0, 1, 1000, 100000, 1 << 20};
    for (int i = 0; i < 5; i++) {
        uint8_t *m = malloc(sizes[i] + 1);
        for (size_t k = 0; k < sizes[i]; k++)
            m[k] = (uint8_t)(k * 31 + i);
        void *reply;
        size_t len;
        CU_ASSERT_EQUAL(rpc_call(c, P_ECHO, m, sizes[i], &reply, &len, 5000),
                        0);
        struct rpc_dec d;
        const void *back;
        size_t n;
        rpc_dec_init(&d, reply, len);
        CU_ASSERT_EQUAL(rpc_get_bytes(&d, &back, &n), 0);
        CU_ASSERT_EQUAL(n, sizes[i]);
        CU_ASSERT(n == sizes[i] && (n == 0 || memcmp(back, m, n) == 0));
        free(reply);
        free(m);
    }
    int64_t v = 0;
    CU_ASSERT_EQUAL(incr(c, P_INCR, 0, 5, &v, 5000), 0);
    CU_ASSERT_EQUAL(v, 5);
    /* The handler's own code; a missing procedure; a bad request. */
    CU_ASSERT_EQUAL(rpc_call(c, P_FAIL, "x", 1, NULL, NULL, 5000), 7);
    CU_ASSERT_EQUAL(rpc_call(c, 99, "x", 1, NULL, NULL, 5000), -ENOSYS);
    CU_ASSERT_EQUAL(rpc_call(c, P_INCR, "x", 1, NULL, NULL, 5000), 22);
    uint8_t *big = calloc(1, (1 << 20) + 1);
    CU_ASSERT_EQUAL(rpc_call(c, P_ECHO, big, (1 << 20) + 1, NULL, NULL, 5000),
                    -EMSGSIZE);
    free(big);
    /* Asynchronous calls, collected in any order. */
    int64_t ids[8];
    for (int i = 0; i < 8; i++)
        ids[i] = rpc_call_async(c, P_ECHO, &i, sizeof(i), 5000);
    for (int i = 7; i >= 0; i--) {
        void *reply;
        size_t len;
        CU_ASSERT_EQUAL(rpc_wait(c, ids[i], &reply, &len, 5000), 0);
        CU_ASSERT_EQUAL(len, 4 + sizeof(int));
        CU_ASSERT(len == 4 + sizeof(int) &&
                  memcmp((uint8_t *)reply + 4, &i, sizeof(i)) == 0);
        free(reply);
    }
    CU_ASSERT_EQUAL(rpc_wait(c, ids[0], NULL, NULL, 0), -ENOENT);
    CU_ASSERT(rpc_call_async(c, P_INCR, NULL, 0, 5000) > 0);
    int64_t got = 0;
    CU_ASSERT_EQUAL(rpc_wait_any(c, &got, NULL, NULL, 5000), 22);
    CU_ASSERT(got > 0);
    CU_ASSERT_EQUAL(rpc_wait_any(c, &got, NULL, NULL, 0), -ENOENT);
    rpc_client_close(c);
    /* A server that is not there: the deadline passes. */
    CU_ASSERT_EQUAL_FATAL(rpc_client_open("127.0.0.1", 9, NULL, &c), 0);
    CU_ASSERT_EQUAL(rpc_call(c, P_ECHO, "x", 1, NULL, NULL, 300), -ETIMEDOUT);
    rpc_client_close(c);
    server_stop(&sv);
    world_free(&w);
}

/* The lecture's counter: clients in threads make many incrementBy calls
 * over a network that drops, duplicates, reorders and corrupts.  The
 * server's total must equal the successful increments plus at most the
 * timed-out ones, no token may run twice, and every success carries a
 * value the counter really had. */
enum { CLIENTS = 4, CALLS = 1000 };

struct counter_client {
    int index, port, ok, timed_out, other;
    int64_t sum_ok, sum_timeout;
    int64_t *got; /* per token: the value the call returned (0: none) */
};

static void *counter_run(void *arg)
{
    struct counter_client *cc = arg;
    struct rpc_client *c;
    if (rpc_client_open("127.0.0.1", cc->port, NULL, &c) != 0)
        return NULL;
    for (int i = 0; i < CALLS; i++) {
        int32_t by = 1 + (cc->index * 7 + i) % 5;
        int64_t v;
        int r = incr(c, P_INCR, (uint32_t)(cc->index * CALLS + i), by, &v,
                     10000);
        if (r == 0 && v >= by) {
            cc->ok++;
            cc->sum_ok += by;
            cc->got[cc->index * CALLS + i] = v;
        } else if (r == -ETIMEDOUT) {
            cc->timed_out++;
            cc->sum_timeout += by;
        } else {
            cc->other++;
        }
    }
    rpc_client_close(c);
    return NULL;
}

static void counter_over_faults(int workers)
{
    struct world w;
    world_init(&w, CLIENTS * CALLS);
    struct server sv;
    setenv("UDP_FAULTS",
           "drop=0.1,dup=0.05,reorder=0.1,corrupt=0.02,delay=1ms,jitter=1ms,seed=3",
           1);
    int64_t *got = calloc(CLIENTS * CALLS, sizeof(*got));
    CU_ASSERT_EQUAL_FATAL(server_start(&sv, &w, 0, workers, NULL), 0);
    struct counter_client cc[CLIENTS];
    pthread_t t[CLIENTS];
    for (int i = 0; i < CLIENTS; i++) {
        cc[i] = (struct counter_client){.index = i, .got = got,
                                        .port = rpc_server_port(sv.s)};
        pthread_create(&t[i], NULL, counter_run, &cc[i]);
    }
    int64_t ok = 0, maybe = 0, calls = 0;
    for (int i = 0; i < CLIENTS; i++) {
        pthread_join(t[i], NULL);
        ok += cc[i].sum_ok;
        maybe += cc[i].sum_timeout;
        calls += cc[i].ok;
        CU_ASSERT_EQUAL(cc[i].other, 0);
    }
    /* Replies the clients confirmed having are forgotten: what is left is
     * at most each client's last reply. */
    struct rpc_server_stats st;
    rpc_server_stats(sv.s, &st);
    CU_ASSERT(st.cache_bytes <= CLIENTS * 64);
    /* The faults reached the server's transport too. */
    struct rmsg_stats ts;
    CU_ASSERT_EQUAL(rpc_server_transport_stats(sv.s, &ts), 0);
    CU_ASSERT(ts.messages_received >= (uint64_t)calls);
    CU_ASSERT(ts.retransmissions > 0);
    CU_ASSERT_EQUAL(rpc_server_transport_stats(NULL, &ts), -EINVAL);
    server_stop(&sv);
    unsetenv("UDP_FAULTS");
    CU_ASSERT(w.counter >= ok);
    CU_ASSERT(w.counter <= ok + maybe);
    CU_ASSERT_EQUAL(w.twice, 0);
    CU_ASSERT(calls >= CLIENTS * CALLS * 9 / 10);
    /* Every success carries the result of its own (single) run. */
    int wrong = 0;
    for (int t = 0; t < CLIENTS * CALLS; t++)
        wrong += got[t] != 0 && got[t] != w.result[t];
    CU_ASSERT_EQUAL(wrong, 0);
    free(got);
    world_free(&w);
}

static void test_counter_over_faults(void)
{
    counter_over_faults(0);
}

static void test_counter_worker_pool(void)
{
    counter_over_faults(3);
}

/* ------------------------------------------------------------------------ */
/* Hand-made requests: duplicates, forgeries, many clients                   */
/* ------------------------------------------------------------------------ */

/* A CALL message as a client would send it (see rpc.c for the layout). */
static void *make_call(uint32_t proc, uint64_t client, uint64_t call,
                       uint64_t done_below, uint16_t flags, size_t *len)
{
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    rpc_put_u8(&e, 1);
    rpc_put_u8(&e, 1);
    rpc_put_u16(&e, flags);
    rpc_put_u32(&e, proc);
    rpc_put_u64(&e, client);
    rpc_put_u64(&e, call);
    rpc_put_u64(&e, done_below);
    rpc_put_u64(&e, 0);
    rpc_put_u32(&e, (uint32_t)(client * 2 + call)); /* a unique token */
    rpc_put_i32(&e, 1);
    return rpc_enc_take(&e, len);
}

/* Receives one reply and returns its status (or -1000 on timeout). */
static int reply_status(struct rmsg_endpoint *ep, int timeout_ms)
{
    void *m;
    size_t len;
    if (rmsg_recv(ep, NULL, &m, &len, timeout_ms) != 0)
        return -1000;
    struct rpc_dec d;
    uint8_t v, t;
    uint16_t f;
    int32_t st = -2000;
    rpc_dec_init(&d, m, len);
    rpc_get_u8(&d, &v);
    rpc_get_u8(&d, &t);
    rpc_get_u16(&d, &f);
    rpc_get_i32(&d, &st);
    free(m);
    return st;
}

/* The same call arrives twice while its handler is still running: the
 * second copy waits for the first run and never starts another. */
static void test_duplicate_while_running(void)
{
    struct world w;
    world_init(&w, 4);
    struct server sv;
    CU_ASSERT_EQUAL_FATAL(server_start(&sv, &w, 0, 2, NULL), 0);
    struct rmsg_endpoint *ep;
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &ep), 0);
    struct udp_addr to;
    UDP_Resolve("127.0.0.1", rpc_server_port(sv.s), AF_INET, &to);
    size_t len;
    void *m = make_call(P_SLOW, 77, 1, 1, 0, &len);
    CU_ASSERT_EQUAL(rmsg_send(ep, &to, m, len, 5000), 0);
    pthread_mutex_lock(&w.lock);
    while (w.slow_in == 0)
        pthread_cond_wait(&w.cond, &w.lock);
    pthread_mutex_unlock(&w.lock);
    void *again = make_call(P_SLOW, 77, 1, 1, 1, &len);
    CU_ASSERT_EQUAL(rmsg_send(ep, &to, again, len, 5000), 0);
    CU_ASSERT_EQUAL(rmsg_send(ep, &to, again, len, 5000), 0);
    struct rpc_server_stats st;
    for (int k = 0; k < 100; k++) { /* until the server has seen both */
        rpc_server_stats(sv.s, &st);
        if (st.waited >= 2)
            break;
        rmsg_poll(ep, 10);
    }
    CU_ASSERT_EQUAL(st.waited, 2);
    pthread_mutex_lock(&w.lock);
    w.gate_open = 1;
    pthread_cond_broadcast(&w.cond);
    pthread_mutex_unlock(&w.lock);
    CU_ASSERT_EQUAL(reply_status(ep, 5000), 0);
    /* Once done, a copy is answered from the cache. */
    CU_ASSERT_EQUAL(rmsg_send(ep, &to, again, len, 5000), 0);
    CU_ASSERT_EQUAL(reply_status(ep, 5000), 0);
    rpc_server_stats(sv.s, &st);
    CU_ASSERT_EQUAL(w.runs, 1);
    CU_ASSERT_EQUAL(st.calls, 1);
    CU_ASSERT_EQUAL(st.cached_replies, 1);
    free(m);
    free(again);
    rmsg_close(ep);
    server_stop(&sv);
    world_free(&w);
}

/* The server remembers few clients: old ones are discarded, a discarded
 * client's new call runs, and its retransmitted call is refused, not run
 * again.  Thousands of clients keep the cache within its bounds. */
static void test_eviction_and_bounds(void)
{
    struct world w;
    world_init(&w, 5000);
    struct rpc_config cfg;
    rpc_config_default(&cfg);
    cfg.cache_clients = 64;
    cfg.cache_bytes = 16 << 10;
    struct server sv;
    CU_ASSERT_EQUAL_FATAL(server_start(&sv, &w, 0, 0, &cfg), 0);
    struct rmsg_endpoint *ep;
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &ep), 0);
    struct udp_addr to;
    UDP_Resolve("127.0.0.1", rpc_server_port(sv.s), AF_INET, &to);
    int ok = 0;
    struct rpc_server_stats st;
    for (uint64_t client = 1; client <= 2000; client++) {
        size_t len;
        void *m = make_call(P_INCR, client, 1, 1, 0, &len);
        rmsg_send_async(ep, &to, m, len, 5000);
        free(m);
        if (client % 100 == 0) {
            for (int k = 0; k < 100; k++)
                ok += reply_status(ep, 5000) == 0;
            rpc_server_stats(sv.s, &st);
            CU_ASSERT(st.clients <= 64);
            CU_ASSERT(st.cache_bytes <= (16 << 10));
        }
    }
    CU_ASSERT_EQUAL(ok, 2000);
    CU_ASSERT_EQUAL(w.runs, 2000);
    rpc_server_stats(sv.s, &st);
    CU_ASSERT(st.evicted >= 2000 - 64);
    /* Client 1 is long forgotten: its call 1 sent again is refused... */
    size_t len;
    void *m = make_call(P_INCR, 1, 1, 1, 1, &len);
    CU_ASSERT_EQUAL(rmsg_send(ep, &to, m, len, 5000), 0);
    CU_ASSERT_EQUAL(reply_status(ep, 5000), -3);
    free(m);
    /* ...and its next call, never sent before, runs. */
    m = make_call(P_INCR, 1, 2, 2, 0, &len);
    CU_ASSERT_EQUAL(rmsg_send(ep, &to, m, len, 5000), 0);
    CU_ASSERT_EQUAL(reply_status(ep, 5000), 0);
    free(m);
    CU_ASSERT_EQUAL(w.runs, 2001);
    CU_ASSERT_EQUAL(w.twice, 0);
    rmsg_close(ep);
    server_stop(&sv);
    world_free(&w);
}

/* Truncated and forged headers: dropped and counted, nothing runs, the
 * server keeps serving. */
static void test_forged_requests(void)
{
    struct world w;
    world_init(&w, 4);
    struct server sv;
    CU_ASSERT_EQUAL_FATAL(server_start(&sv, &w, 0, 0, NULL), 0);
    struct rmsg_endpoint *ep;
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &ep), 0);
    struct udp_addr to;
    UDP_Resolve("127.0.0.1", rpc_server_port(sv.s), AF_INET, &to);
    size_t len;
    uint8_t *m = make_call(P_INCR, 5, 1, 1, 0, &len);
    for (size_t cut = 0; cut < 40; cut++) /* every truncated header */
        rmsg_send_async(ep, &to, m, cut, 5000);
    uint8_t bad[48];
    memcpy(bad, m, sizeof(bad));
    bad[0] = 9; /* version */
    rmsg_send_async(ep, &to, bad, sizeof(bad), 5000);
    memcpy(bad, m, sizeof(bad));
    bad[1] = 2; /* a REPLY sent to a server */
    rmsg_send_async(ep, &to, bad, sizeof(bad), 5000);
    memcpy(bad, m, sizeof(bad));
    bad[3] = 0x80; /* unknown flag */
    rmsg_send_async(ep, &to, bad, sizeof(bad), 5000);
    memset(bad + 8, 0, 8); /* client id 0 */
    rmsg_send_async(ep, &to, bad, sizeof(bad), 5000);
    CU_ASSERT_EQUAL(rmsg_flush(ep, 5000), 0);
    CU_ASSERT_EQUAL(rmsg_send(ep, &to, m, len, 5000), 0);
    CU_ASSERT_EQUAL(reply_status(ep, 5000), 0);
    struct rpc_server_stats st;
    rpc_server_stats(sv.s, &st);
    CU_ASSERT_EQUAL(st.malformed, 44);
    CU_ASSERT_EQUAL(w.runs, 1);
    free(m);
    rmsg_close(ep);
    server_stop(&sv);
    world_free(&w);
}

/* The server restarts on the same port while a call is in its hands: the
 * caller learns "server restarted", the call does not run on the new
 * instance, and new calls go to the new instance.  The crashed instance is
 * played by a bare rmsg endpoint that takes the call and never answers.
 * A restarted client is a new client. */
static void test_server_restart(void)
{
    struct world w;
    world_init(&w, 16);
    struct server sv;
    CU_ASSERT_EQUAL_FATAL(server_start(&sv, &w, 0, 0, NULL), 0);
    int port = rpc_server_port(sv.s);
    struct rpc_client *c;
    CU_ASSERT_EQUAL_FATAL(rpc_client_open("127.0.0.1", port, NULL, &c), 0);
    int64_t v;
    CU_ASSERT_EQUAL(incr(c, P_INCR, 0, 1, &v, 5000), 0);
    server_stop(&sv);
    /* The instance that will crash: it receives the call, then dies. */
    struct rmsg_endpoint *doomed;
    CU_ASSERT_EQUAL_FATAL(rmsg_open(port, NULL, &doomed), 0);
    int64_t id = rpc_call_async(c, P_INCR, "\0\0\0\1\0\0\0\1", 8, 10000);
    CU_ASSERT(id > 0);
    void *taken = NULL;
    size_t len;
    for (int k = 0; k < 50 && taken == NULL; k++) {
        rpc_wait(c, id, NULL, NULL, 20); /* keeps the client going */
        rmsg_recv(doomed, NULL, &taken, &len, 20);
    }
    CU_ASSERT_PTR_NOT_NULL(taken);
    free(taken);
    rmsg_close(doomed);
    struct world w2;
    world_init(&w2, 16);
    CU_ASSERT_EQUAL_FATAL(server_start(&sv, &w2, port, 0, NULL), 0);
    CU_ASSERT_EQUAL(rpc_wait(c, id, NULL, NULL, 10000), -ESTALE);
    CU_ASSERT_EQUAL(w2.runs, 0);
    /* New calls go to the new instance. */
    CU_ASSERT_EQUAL(incr(c, P_INCR, 1, 1, &v, 5000), 0);
    CU_ASSERT_EQUAL(v, 1);
    CU_ASSERT_EQUAL(w2.runs, 1);
    rpc_client_close(c);
    /* A restarted client is a new client: its first call runs. */
    CU_ASSERT_EQUAL_FATAL(rpc_client_open("127.0.0.1", port, NULL, &c), 0);
    CU_ASSERT_EQUAL(incr(c, P_INCR, 2, 1, &v, 5000), 0);
    CU_ASSERT_EQUAL(v, 2);
    rpc_client_close(c);
    server_stop(&sv);
    world_free(&w);
    world_free(&w2);
}

/* A client's very first call, taken by an instance that then crashes
 * before its reply leaves, must not run on the instance that restarts on
 * the same port, although rmsg, which never heard back, may hand it over.
 * The client asks for the incarnation first (the crashing instance, a
 * bare rmsg endpoint here, answers the hello as a server would), so the
 * call names it, and the new instance refuses it: "server restarted". */
static void test_first_call_across_a_crash(void)
{
    struct rmsg_endpoint *doomed;
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &doomed), 0);
    int port = rmsg_port(doomed);
    struct rpc_client *c;
    CU_ASSERT_EQUAL_FATAL(rpc_client_open("127.0.0.1", port, NULL, &c), 0);
    int64_t id = rpc_call_async(c, P_INCR, "\0\0\0\1\0\0\0\1", 8, 10000);
    CU_ASSERT(id > 0);
    int took_call = 0, answered = 0;
    for (int k = 0; k < 100 && !took_call; k++) {
        rpc_wait(c, id, NULL, NULL, 20); /* keeps the client going */
        struct udp_addr from;
        void *m = NULL;
        size_t len;
        if (rmsg_recv(doomed, &from, &m, &len, 20) != 0)
            continue;
        struct call_header h;
        size_t body;
        if (amo_get_call(m, len, &h, &body) == 0 && h.type == T_STATUS &&
            h.call == 0) {
            uint8_t r[REPLY_HEADER];
            struct rpc_enc e;
            rpc_enc_init_fixed(&e, r, sizeof(r));
            amo_put_reply(&e, &(struct reply_header){REPLY_UNKNOWN, 777, 0});
            answered = rmsg_send_async(doomed, &from, r, e.len, 1000) > 0;
        } else if (amo_get_call(m, len, &h, &body) == 0 &&
                   h.type == T_CALL) {
            took_call = 1;
            CU_ASSERT_EQUAL(h.server, 777); /* the call names its instance */
        }
        free(m);
    }
    CU_ASSERT(answered);
    CU_ASSERT(took_call);
    rmsg_close(doomed); /* the crash: no reply, no acknowledgment kept */
    struct world w;
    world_init(&w, 16);
    struct server sv;
    CU_ASSERT_EQUAL_FATAL(server_start(&sv, &w, port, 0, NULL), 0);
    CU_ASSERT_EQUAL(rpc_wait(c, id, NULL, NULL, 10000), -ESTALE);
    CU_ASSERT_EQUAL(w.runs, 0);
    int64_t v;
    CU_ASSERT_EQUAL(incr(c, P_INCR, 5, 1, &v, 5000), 0); /* later ones run */
    CU_ASSERT_EQUAL(w.runs, 1);
    rpc_client_close(c);
    server_stop(&sv);
    world_free(&w);
}

/* A handler that runs far longer than any retransmission timeout: the
 * client does not send the call again into a second run; it asks how the
 * call is doing, hears "still running", and keeps waiting. */
struct long_call {
    struct rpc_client *c;
    int outcome;
};

static void *long_call_run(void *arg)
{
    struct long_call *lc = arg;
    lc->outcome = rpc_call(lc->c, P_SLOW, NULL, 0, NULL, NULL, 20000);
    return NULL;
}

static void test_long_call(void)
{
    struct world w;
    world_init(&w, 4);
    struct server sv;
    CU_ASSERT_EQUAL_FATAL(server_start(&sv, &w, 0, 1, NULL), 0);
    struct long_call lc = {0};
    lc.c = client_of(&sv, NULL);
    pthread_t t;
    pthread_create(&t, NULL, long_call_run, &lc);
    /* Hold the handler until the client has asked about it three times
     * (about three quarters of a second). */
    struct rpc_server_stats st = {0};
    pthread_mutex_lock(&w.lock);
    while (st.in_progress < 3) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 50000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&w.cond, &w.lock, &ts);
        pthread_mutex_unlock(&w.lock);
        rpc_server_stats(sv.s, &st);
        pthread_mutex_lock(&w.lock);
    }
    w.gate_open = 1;
    pthread_cond_broadcast(&w.cond);
    pthread_mutex_unlock(&w.lock);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(lc.outcome, 0);
    CU_ASSERT_EQUAL(w.runs, 1);
    rpc_server_stats(sv.s, &st);
    CU_ASSERT_EQUAL(st.calls, 1);
    CU_ASSERT(st.in_progress >= 3);
    rpc_client_close(lc.c);
    server_stop(&sv);
    world_free(&w);
}

/* Results larger than the server may send: the call ran, the caller gets
 * -EMSGSIZE, and the server goes on serving. */
static void test_reply_too_large(void)
{
    struct world w;
    world_init(&w, 4);
    struct rpc_config cfg;
    rpc_config_default(&cfg);
    cfg.max_reply = 1000;
    struct server sv;
    CU_ASSERT_EQUAL_FATAL(server_start(&sv, &w, 0, 0, &cfg), 0);
    struct rpc_client *c = client_of(&sv, NULL);
    static uint8_t big[2000];
    CU_ASSERT_EQUAL(rpc_call(c, P_ECHO, big, sizeof(big), NULL, NULL, 5000),
                    -EMSGSIZE);
    CU_ASSERT_EQUAL(rpc_call(c, P_ECHO, big, 100, NULL, NULL, 5000), 0);
    rpc_client_close(c);
    server_stop(&sv);
    world_free(&w);
}

/* ------------------------------------------------------------------------ */
/* Regressions: the defects a review of the rpc layer found (8294a8c)       */
/* ------------------------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits until n slow calls are inside h_slow, at most timeout_ms.
 * Returns 1 if they are. */
static int wait_inside(struct world *w, int n, int timeout_ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&w->lock);
    while (w->slow_in < n &&
           pthread_cond_timedwait(&w->cond, &w->lock, &ts) == 0)
        ;
    int inside = w->slow_in >= n;
    pthread_mutex_unlock(&w->lock);
    return inside;
}

/* Lets every slow call, now and later, through the gate. */
static void gate_open(struct world *w)
{
    pthread_mutex_lock(&w->lock);
    w->gate_open = 1;
    pthread_cond_broadcast(&w->cond);
    pthread_mutex_unlock(&w->lock);
}

/* One rpc_call in a thread of its own, results kept. */
struct caller {
    struct rpc_client *c;
    uint32_t proc;
    int timeout_ms;
    int outcome;
    void *reply;
    size_t len;
    atomic_int finished;
};

static void *caller_run(void *arg)
{
    struct caller *k = arg;
    k->outcome = rpc_call(k->c, k->proc, "x", 1, &k->reply, &k->len,
                          k->timeout_ms);
    atomic_store(&k->finished, 1);
    return NULL;
}

/* A REPLY message as a server would send it (see rpc.c for the layout),
 * with `flags` in its flags field, where 0 is the only valid value. */
static void *make_reply(int32_t status, uint64_t server, uint64_t call,
                        uint16_t flags, const void *results, size_t n,
                        size_t *len)
{
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    rpc_put_u8(&e, 1);
    rpc_put_u8(&e, 2);
    rpc_put_u16(&e, flags);
    rpc_put_i32(&e, status);
    rpc_put_u64(&e, server);
    rpc_put_u64(&e, call);
    rpc_put_raw(&e, results, n);
    return rpc_enc_take(&e, len);
}

#define FAKE_INCARNATION 777

/* One turn of a bare rmsg endpoint playing a server of incarnation
 * FAKE_INCARNATION: a client's hello is answered as a server would.
 * Returns 1 with the sender and header of a CALL (taken), 0 for anything
 * else or nothing within timeout_ms. */
static int fake_turn(struct rmsg_endpoint *ep, struct udp_addr *from,
                     struct call_header *h, int timeout_ms)
{
    void *m;
    size_t len, body;
    if (rmsg_recv(ep, from, &m, &len, timeout_ms) != 0)
        return 0;
    int ok = amo_get_call(m, len, h, &body) == 0;
    free(m);
    if (ok && h->type == T_STATUS && h->call == 0) {
        size_t n;
        void *r = make_reply(REPLY_UNKNOWN, FAKE_INCARNATION, 0, 0, NULL, 0,
                             &n);
        rmsg_send_async(ep, from, r, n, 1000);
        free(r);
    }
    return ok && h->type == T_CALL;
}

/* Two slow calls started before the client has heard the server's
 * incarnation go out together once it has.  They went newest first, so
 * the server's state for the client began at call 2, and the status query
 * about call 1 (sent before, so flagged RETRY) was refused: a call that
 * ran once and succeeded came back -ECONNABORTED.  The handlers hold the
 * gate until the client has asked about both. */
struct two_waits {
    struct rpc_client *c;
    int64_t id[2];
    int outcome[2];
};

static void *two_waits_run(void *arg)
{
    struct two_waits *tw = arg;
    for (int i = 0; i < 2; i++)
        tw->outcome[i] = rpc_wait(tw->c, tw->id[i], NULL, NULL, 10000);
    return NULL;
}

static void test_calls_before_hello(void)
{
    struct world w;
    world_init(&w, 4);
    struct server sv;
    CU_ASSERT_EQUAL_FATAL(server_start(&sv, &w, 0, 4, NULL), 0);
    struct two_waits tw = {0};
    tw.c = client_of(&sv, NULL);
    tw.id[0] = rpc_call_async(tw.c, P_SLOW, "\0\0\0\1", 4, 10000);
    tw.id[1] = rpc_call_async(tw.c, P_SLOW, "\0\0\0\2", 4, 10000);
    CU_ASSERT(tw.id[0] > 0 && tw.id[1] > 0);
    pthread_t t;
    pthread_create(&t, NULL, two_waits_run, &tw);
    CU_ASSERT(wait_inside(&w, 2, 5000));
    /* Each call is asked about after RPC_STATUS_INTERVAL_MS: answered
     * "still running", or refused. */
    struct rpc_server_stats st = {0};
    for (int64_t until = now_ms() + 5000;
         st.in_progress + st.refused < 2 && now_ms() < until;) {
        wait_inside(&w, 3, 10); /* a pause: no third call comes */
        rpc_server_stats(sv.s, &st);
    }
    CU_ASSERT(st.in_progress + st.refused >= 2);
    gate_open(&w);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(tw.outcome[0], 0);
    CU_ASSERT_EQUAL(tw.outcome[1], 0);
    CU_ASSERT_EQUAL(w.seen[1], 1);
    CU_ASSERT_EQUAL(w.seen[2], 1);
    CU_ASSERT_EQUAL(w.runs, 2);
    rpc_server_stats(sv.s, &st);
    CU_ASSERT_EQUAL(st.refused, 0);
    rpc_client_close(tw.c);
    server_stop(&sv);
    world_free(&w);
}

/* Forty 1 MiB calls started at once, echoed by a server with no workers,
 * before and after the client knows the server's incarnation.  Client
 * and server both queued with a send that waits for room, each while
 * being the only taker of the other's messages: rpc_call_async blocked
 * for the whole 20 s deadline and the calls timed out.  Now every start
 * returns at once and every call succeeds with its own bytes back. */
enum { PIPELINED = 40, PIPELINED_SIZE = 1 << 20 };

/* One round of the calls, m their arguments.  Returns how many came back
 * right; the slowest start's milliseconds go to *slowest. */
static int pipelined_round(struct rpc_client *c, uint8_t *m, int64_t *slowest)
{
    int64_t ids[PIPELINED] = {0};
    *slowest = 0;
    for (int i = 0; i < PIPELINED && *slowest < 1000; i++) {
        memcpy(m, &i, sizeof(i)); /* each call's bytes its own */
        int64_t t0 = now_ms();
        /* Deadlines far beyond the second or two this takes, so that a
         * slow run (under valgrind, tens of seconds) still completes.  A
         * call that blocks (the defect) blocks until its deadline: after
         * one, no more are made. */
        ids[i] = rpc_call_async(c, P_ECHO, m, PIPELINED_SIZE, 120000);
        if (now_ms() - t0 > *slowest)
            *slowest = now_ms() - t0;
    }
    int ok = 0;
    for (int i = 0; i < PIPELINED; i++) {
        void *reply;
        size_t len;
        if (ids[i] <= 0 || rpc_wait(c, ids[i], &reply, &len, 130000) != 0)
            continue;
        struct rpc_dec d;
        const void *back;
        size_t n;
        rpc_dec_init(&d, reply, len);
        ok += rpc_get_bytes(&d, &back, &n) == 0 && n == PIPELINED_SIZE &&
              memcmp(back, &i, sizeof(i)) == 0 &&
              memcmp((const uint8_t *)back + sizeof(i), m + sizeof(i),
                     PIPELINED_SIZE - sizeof(i)) == 0;
        free(reply);
    }
    return ok;
}

static void test_pipelined_large_calls(void)
{
    struct world w;
    world_init(&w, 0);
    struct server sv;
    CU_ASSERT_EQUAL_FATAL(server_start(&sv, &w, 0, 0, NULL), 0);
    struct rpc_client *c = client_of(&sv, NULL);
    uint8_t *m = malloc(PIPELINED_SIZE);
    CU_ASSERT_PTR_NOT_NULL_FATAL(m);
    for (size_t k = 0; k < PIPELINED_SIZE; k++)
        m[k] = (uint8_t)(k * 7 + (k >> 11));
    /* Round 0 starts before the hello's answer, round 1 after. */
    for (int round = 0; round < 2; round++) {
        int64_t slowest;
        CU_ASSERT_EQUAL(pipelined_round(c, m, &slowest), PIPELINED);
        if (slowest >= 1000)
            fprintf(stderr, "\n  round %d: an rpc_call_async took %lld ms\n",
                    round, (long long)slowest);
        CU_ASSERT(slowest < 1000);
    }
    CU_ASSERT_EQUAL(w.runs, 2 * PIPELINED);
    free(m);
    rpc_client_close(c);
    server_stop(&sv);
    world_free(&w);
}

/* One slow call holds the client's done_below at its number, so the
 * server may forget none of the later replies on the client's word: it
 * kept every one, 10 MB against a bound of 1 MiB.  Now the oldest
 * finished calls go (dropped_replies), and the cache stays in bounds. */
static void test_cache_bound_behind_slow_call(void)
{
    struct world w;
    world_init(&w, 0);
    struct rpc_config cfg;
    rpc_config_default(&cfg);
    cfg.cache_bytes = 1 << 20;
    struct server sv;
    CU_ASSERT_EQUAL_FATAL(server_start(&sv, &w, 0, 2, &cfg), 0);
    struct caller slow = {.proc = P_SLOW, .timeout_ms = 10000};
    slow.c = client_of(&sv, NULL);
    pthread_t t;
    pthread_create(&t, NULL, caller_run, &slow);
    CU_ASSERT(wait_inside(&w, 1, 5000));
    int ok = 0;
    uint64_t most = 0;
    struct rpc_server_stats st;
    for (int i = 0; i < 100; i++) {
        void *reply;
        size_t len;
        ok += rpc_call(slow.c, P_BIG, NULL, 0, &reply, &len, 5000) == 0 &&
              len == BIG_REPLY;
        free(reply);
        rpc_server_stats(sv.s, &st);
        if (st.cache_bytes > most)
            most = st.cache_bytes;
    }
    if (most > cfg.cache_bytes)
        fprintf(stderr, "\n  the cache held %llu bytes of replies\n",
                (unsigned long long)most);
    CU_ASSERT_EQUAL(ok, 100);
    CU_ASSERT(most <= cfg.cache_bytes);
    CU_ASSERT(st.dropped_replies > 0);
    gate_open(&w);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(slow.outcome, 0);
    free(slow.reply);
    rpc_client_close(slow.c);
    server_stop(&sv);
    world_free(&w);
}

/* Results larger than the client accepts (the server's own limit is the
 * default): the call ran once, and the caller gets -EMSGSIZE, not
 * -ETIMEDOUT after a hang.  The client goes on calling.  Here the client
 * takes at most 1000 bytes either way, as in the review's reproduction. */
static void reply_over_client_limit(uint32_t max_request)
{
    struct world w;
    world_init(&w, 0);
    struct server sv;
    CU_ASSERT_EQUAL_FATAL(server_start(&sv, &w, 0, 0, NULL), 0);
    struct rpc_config cfg;
    rpc_config_default(&cfg);
    cfg.max_request = max_request;
    cfg.max_reply = 1000;
    struct rpc_client *c = client_of(&sv, &cfg);
    void *reply = NULL;
    size_t len = 0;
    int r = rpc_call(c, P_BIG, "x", 1, &reply, &len, 3000);
    if (r != -EMSGSIZE)
        fprintf(stderr, "\n  max_request %u, max_reply 1000: %d, %zu bytes\n",
                max_request, r, len);
    CU_ASSERT_EQUAL(r, -EMSGSIZE);
    CU_ASSERT_PTR_NULL(reply);
    free(reply);
    CU_ASSERT_EQUAL(w.runs, 1);
    CU_ASSERT_EQUAL(rpc_call(c, P_ECHO, "x", 1, NULL, NULL, 3000), 0);
    rpc_client_close(c);
    server_stop(&sv);
    world_free(&w);
}

static void test_reply_over_client_limit(void)
{
    reply_over_client_limit(1000);
}

/* The same with the client's max_request left at its default: max_reply
 * alone says how large a reply the client accepts (rpc.h). */
static void test_reply_over_client_max_reply(void)
{
    reply_over_client_limit(RPC_MAX_MESSAGE_DEFAULT);
}

/* A thread in a slow call with no deadline receives for the client, on a
 * timeout chosen before the next call existed (the next status query, up
 * to RPC_STATUS_INTERVAL_MS away): a 20 ms call waiting for it returned
 * after up to 250 ms.  A generous bound on the lateness, below that. */
static void test_deadline_while_another_receives(void)
{
    struct world w;
    world_init(&w, 0);
    struct server sv;
    CU_ASSERT_EQUAL_FATAL(server_start(&sv, &w, 0, 4, NULL), 0);
    struct caller slow = {.proc = P_SLOW, .timeout_ms = -1};
    slow.c = client_of(&sv, NULL);
    pthread_t t;
    pthread_create(&t, NULL, caller_run, &slow);
    CU_ASSERT(wait_inside(&w, 1, 5000)); /* its thread receives now */
    int64_t worst = 0;
    for (int i = 0; i < 10; i++) {
        int64_t t0 = now_ms();
        CU_ASSERT_EQUAL(rpc_call(slow.c, P_SLOW, NULL, 0, NULL, NULL, 20),
                        -ETIMEDOUT);
        if (now_ms() - t0 > worst)
            worst = now_ms() - t0;
    }
    if (worst >= 150)
        fprintf(stderr, "\n  a 20 ms call returned after %lld ms\n",
                (long long)worst);
    CU_ASSERT(worst < 150);
    gate_open(&w);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(slow.outcome, 0);
    free(slow.reply);
    rpc_client_close(slow.c);
    server_stop(&sv);
    world_free(&w);
}

/* An endpoint that is not the server sends the client a REPLY for its
 * call 1, once naming the server's real incarnation and once a made-up
 * one: the client took replies from any address, and the forged bytes
 * completed the call.  The server, a bare rmsg endpoint here so that the
 * test knows the client's address, answers after the forgeries have been
 * acknowledged (so are ahead of it in the client's queue): its reply must
 * be the call's outcome. */
static void test_forged_reply(void)
{
    struct rmsg_endpoint *real, *evil;
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &real), 0);
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &evil), 0);
    struct caller k = {.proc = P_ECHO, .timeout_ms = 3000};
    CU_ASSERT_EQUAL_FATAL(rpc_client_open("127.0.0.1", rmsg_port(real), NULL,
                                          &k.c), 0);
    pthread_t t;
    pthread_create(&t, NULL, caller_run, &k);
    struct udp_addr from;
    struct call_header h;
    int took = 0;
    for (int i = 0; i < 200 && !took; i++)
        took = fake_turn(real, &from, &h, 20);
    CU_ASSERT(took);
    if (took) {
        CU_ASSERT_EQUAL(h.call, 1);
        const uint64_t named[2] = {FAKE_INCARNATION, 0xdeadbeef};
        for (int i = 0; i < 2; i++) {
            size_t n;
            void *r = make_reply(0, named[i], h.call, 0, "FORGED", 6, &n);
            CU_ASSERT_EQUAL(rmsg_send(evil, &from, r, n, 2000), 0);
            free(r);
        }
        size_t n;
        void *r = make_reply(0, FAKE_INCARNATION, h.call, 0, "GENUINE", 7, &n);
        CU_ASSERT(rmsg_send_async(real, &from, r, n, 2000) > 0);
        free(r);
        /* Served until the call is over (the client's acknowledgment may
         * never come: it has what it wanted). */
        for (int i = 0; i < 200 && !atomic_load(&k.finished); i++)
            rmsg_poll(real, 10);
    }
    pthread_join(t, NULL);
    int forged = k.outcome == 0 && k.len == 6 &&
                 memcmp(k.reply, "FORGED", 6) == 0;
    if (forged)
        fprintf(stderr, "\n  the forged reply completed the call\n");
    CU_ASSERT(!forged);
    CU_ASSERT_EQUAL(k.outcome, 0);
    CU_ASSERT(k.outcome == 0 && k.len == 7 &&
              memcmp(k.reply, "GENUINE", 7) == 0);
    free(k.reply);
    rpc_client_close(k.c);
    rmsg_close(evil);
    rmsg_close(real);
}

/* More arguments than the server's max_request: refused with -EMSGSIZE
 * before any handler runs (it ran, with all 10000 bytes).  At the limit
 * a call runs. */
static void test_request_over_server_limit(void)
{
    struct world w;
    world_init(&w, 0);
    struct rpc_config cfg;
    rpc_config_default(&cfg);
    cfg.max_request = 100;
    struct server sv;
    CU_ASSERT_EQUAL_FATAL(server_start(&sv, &w, 0, 0, &cfg), 0);
    struct rpc_client *c = client_of(&sv, NULL);
    static uint8_t args[10000];
    CU_ASSERT_EQUAL(rpc_call(c, P_ECHO, args, sizeof(args), NULL, NULL, 3000),
                    -EMSGSIZE);
    CU_ASSERT_EQUAL(w.runs, 0);
    CU_ASSERT_EQUAL(rpc_call(c, P_ECHO, args, 100, NULL, NULL, 3000), 0);
    CU_ASSERT_EQUAL(w.runs, 1);
    rpc_client_close(c);
    server_stop(&sv);
    world_free(&w);
}

/* A server that answers the hello properly, then the CALL with a REPLY
 * whose flags field is 1: the reply was dropped as malformed and the call
 * waited out its deadline (-ETIMEDOUT).  It names a call of ours and the
 * server we know, so the call fails at once with -EPROTO (rpc.h). */
struct malformed_server {
    struct rmsg_endpoint *ep;
    atomic_int stop;
    int answered;
};

static void *malformed_server_run(void *arg)
{
    struct malformed_server *ms = arg;
    while (!atomic_load(&ms->stop)) { /* served until the call is over */
        struct udp_addr from;
        struct call_header h;
        if (!fake_turn(ms->ep, &from, &h, 20))
            continue;
        size_t n;
        void *r = make_reply(0, FAKE_INCARNATION, h.call, 1, "x", 1, &n);
        ms->answered += rmsg_send_async(ms->ep, &from, r, n, 1000) > 0;
        free(r);
    }
    return NULL;
}

static void test_malformed_reply(void)
{
    struct malformed_server ms = {0};
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &ms.ep), 0);
    struct rpc_client *c;
    CU_ASSERT_EQUAL_FATAL(rpc_client_open("127.0.0.1", rmsg_port(ms.ep), NULL,
                                          &c), 0);
    pthread_t t;
    pthread_create(&t, NULL, malformed_server_run, &ms);
    CU_ASSERT_EQUAL(rpc_call(c, P_ECHO, "x", 1, NULL, NULL, 3000), -EPROTO);
    atomic_store(&ms.stop, 1);
    pthread_join(t, NULL);
    CU_ASSERT(ms.answered >= 1);
    rpc_client_close(c);
    rmsg_close(ms.ep);
}

int test_rpc_register(void)
{
    CU_pSuite s = CU_add_suite("rpc", NULL, NULL);
    if (s == NULL || !CU_add_test(s, "outcomes", test_outcomes) ||
        !CU_add_test(s, "incrementBy over faults", test_counter_over_faults) ||
        !CU_add_test(s, "incrementBy, worker pool", test_counter_worker_pool) ||
        !CU_add_test(s, "duplicate while running",
                     test_duplicate_while_running) ||
        !CU_add_test(s, "eviction and cache bounds",
                     test_eviction_and_bounds) ||
        !CU_add_test(s, "forged requests", test_forged_requests) ||
        !CU_add_test(s, "server restart", test_server_restart) ||
        !CU_add_test(s, "first call across a crash",
                     test_first_call_across_a_crash) ||
        !CU_add_test(s, "long call", test_long_call) ||
        !CU_add_test(s, "reply too large", test_reply_too_large) ||
        !CU_add_test(s, "two slow calls before the hello's answer",
                     test_calls_before_hello) ||
        !CU_add_test(s, "40 pipelined 1 MiB calls, no workers",
                     test_pipelined_large_calls) ||
        !CU_add_test(s, "reply cache bounded behind a slow call",
                     test_cache_bound_behind_slow_call) ||
        !CU_add_test(s, "reply over the client's limits",
                     test_reply_over_client_limit) ||
        !CU_add_test(s, "reply over the client's max_reply alone",
                     test_reply_over_client_max_reply) ||
        !CU_add_test(s, "deadlines kept while another thread receives",
                     test_deadline_while_another_receives) ||
        !CU_add_test(s, "forged reply from another port", test_forged_reply) ||
        !CU_add_test(s, "request over the server's max_request",
                     test_request_over_server_limit) ||
        !CU_add_test(s, "malformed reply", test_malformed_reply))
        return -1;
    return 0;
}
