/*
 * test_rpc.c - rpc over real sockets on loopback: the outcomes a caller can
 * act on, the lecture's incrementBy counter over a lossy network with the
 * at-most-once accounting checked call by call, a duplicate arriving while
 * the first copy runs, a server restarting on the same port, a client
 * restarting, eviction of old clients, forged requests, and the reply
 * cache's bound.  Ephemeral ports only; slow handlers block on a condition
 * variable, never on sleep.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <CUnit/CUnit.h>

#include "amo.h"
#include "rpc.h"
#include "tests.h"

enum { P_ECHO = 1, P_INCR = 2, P_FAIL = 3, P_SLOW = 4, P_INCR_IDEM = 5 };

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

static int h_echo(void *arg, const void *req, size_t len, struct rpc_enc *r)
{
    (void)arg;
    rpc_put_bytes(r, req, len);
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

/* Waits at the gate (the test opens it), counting how many are inside. */
static int h_slow(void *arg, const void *req, size_t len, struct rpc_enc *r)
{
    struct world *w = arg;
    (void)req, (void)len;
    pthread_mutex_lock(&w->lock);
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
    CU_ASSERT_EQUAL_FATAL(rpc_client_open("127.0.0.1", rpc_server_port(sv.s),
                                          NULL, &lc.c), 0);
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
    struct rpc_client *c;
    CU_ASSERT_EQUAL_FATAL(rpc_client_open("127.0.0.1", rpc_server_port(sv.s),
                                          NULL, &c), 0);
    static uint8_t big[2000];
    CU_ASSERT_EQUAL(rpc_call(c, P_ECHO, big, sizeof(big), NULL, NULL, 5000),
                    -EMSGSIZE);
    CU_ASSERT_EQUAL(rpc_call(c, P_ECHO, big, 100, NULL, NULL, 5000), 0);
    rpc_client_close(c);
    server_stop(&sv);
    world_free(&w);
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
        !CU_add_test(s, "reply too large", test_reply_too_large))
        return -1;
    return 0;
}
