/*
 * test_rpc_sim.c - at-most-once over the simulated network.
 *
 * rmsg cores joined by the simulated link (tests/simlink.c) carry the rpc
 * layer's messages; the server runs the real bookkeeping (lib/amo.c) the
 * way rpc.c does, with handlers that take a random while (virtual time), so
 * copies of a call arrive while it still runs; the clients resend their
 * calls every 30 ms until answered, as a classic RPC client over UDP does,
 * so the server sees many copies; and it remembers fewer clients than there
 * are, so some are evicted and their retransmitted calls refused (and,
 * when all it remembers are busy, a newcomer is turned away).  The
 * lecture's incrementBy counter must end within the successful increments
 * plus those whose fate is unknown (timed out or refused), and no call may
 * ever run twice.  Every run is a function of its seed; a failure prints it
 * and RMSG_SIM_SEED replays it (RMSG_TRACE=1 adds the rmsg trace).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <CUnit/CUnit.h>

#include "amo.h"
#include "simlink.h"
#include "tests.h"

enum { NCLIENTS = 3, MAX_CALLS = 1000, MAX_JOBS = 64 };
#define RETRY_US 30000
#define CALL_DEADLINE_US 3000000

struct sim_client {
    uint64_t id;
    int next;            /* calls begun */
    int busy;            /* a call is outstanding */
    int32_t by;
    rmsg_time retry_at, deadline;
    int sends;
    int ok, unknown;     /* unknown: timed out or refused after a resend */
    int refused;         /* no room for this client: did not run */
    int64_t sum_ok, sum_unknown;
};

struct job {
    struct client *c;
    struct entry *e;
    uint64_t call;
    int32_t by;
    uint32_t token;
    rmsg_time done_at;
};

struct world {
    struct sim *sim;
    struct amo amo;
    struct sim_client cl[NCLIENTS];
    struct job jobs[MAX_JOBS];
    int njobs;
    int calls; /* per client, this run */
    int64_t counter;
    uint8_t runs[NCLIENTS * MAX_CALLS];
    char why[160];
};

static void send_msg(struct world *w, int from, int to, const void *m,
                     size_t len)
{
    rmsg_core_send(sim_core(w->sim, from), sim_addr(w->sim, to), m, len, 0,
                   RMSG_NEVER, sim_now(w->sim));
}

/* A client sends its outstanding call (again, with RETRY, after the first). */
static void client_send(struct world *w, int i)
{
    struct sim_client *k = &w->cl[i];
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    struct call_header h = {.type = T_CALL, .flags = k->sends ? F_RETRY : 0,
                            .proc = 1, .client = k->id,
                            .call = (uint64_t)k->next,
                            .done_below = (uint64_t)k->next};
    amo_put_call(&e, &h);
    rpc_put_u32(&e, (uint32_t)(i * MAX_CALLS + k->next - 1)); /* token */
    rpc_put_i32(&e, k->by);
    send_msg(w, i + 1, 0, e.buf, e.len);
    rpc_enc_free(&e);
    k->sends++;
    k->retry_at = sim_now(w->sim) + RETRY_US;
}

static void client_finish(struct sim_client *k, int ok)
{
    if (ok) {
        k->ok++;
        k->sum_ok += k->by;
    } else {
        k->unknown++;
        k->sum_unknown += k->by;
    }
    k->busy = 0;
}

/* Clients: begin calls, resend, give up at the deadline, take replies. */
static int run_clients(struct world *w)
{
    rmsg_time now = sim_now(w->sim);
    for (int i = 0; i < NCLIENTS; i++) {
        struct sim_client *k = &w->cl[i];
        if (!k->busy && k->next < w->calls) {
            k->next++;
            k->busy = 1;
            k->sends = 0;
            k->by = 1 + (int32_t)(sim_rand(w->sim) % 5);
            k->deadline = now + CALL_DEADLINE_US;
            client_send(w, i);
        } else if (k->busy && now >= k->deadline) {
            client_finish(k, 0);
        } else if (k->busy && now >= k->retry_at) {
            client_send(w, i);
        }
        struct udp_addr from;
        void *m;
        size_t len, body;
        while (rmsg_core_recv(sim_core(w->sim, i + 1), &from, &m, &len) == 0) {
            struct reply_header r;
            int good = amo_get_reply(m, len, &r, &body) == 0;
            if (good && k->busy && r.call == (uint64_t)k->next) {
                if (r.status == 0)
                    client_finish(k, 1);
                else if (r.status == REPLY_DISCARDED)
                    client_finish(k, 0);
                else if (r.status == REPLY_BUSY) /* it did not run */
                    k->busy = 0, k->refused++;
                else
                    snprintf(w->why, sizeof(w->why), "client %d call %d: "
                             "status %d", i, k->next, (int)r.status);
            }
            free(m);
        }
    }
    return w->why[0] ? -1 : 0;
}

/* The server: admits what arrives, runs handlers that take a while. */
static void server_take(struct world *w, const struct udp_addr *from,
                        void *m, size_t len)
{
    struct call_header h;
    size_t body;
    struct client *c = NULL;
    struct entry *e = NULL;
    int32_t status = 0;
    int to = sim_node_of(w->sim, from);
    if (amo_get_call(m, len, &h, &body) != 0) {
        snprintf(w->why, sizeof(w->why), "server got a malformed call");
        return;
    }
    enum verdict v = amo_admit(&w->amo, &h, from, 1, 0, &c, &e, &status);
    if (v == V_REPLY) {
        send_msg(w, 0, to, e->reply, e->len);
    } else if (v == V_ANSWER) {
        struct rpc_enc r;
        rpc_enc_init(&r, 0);
        amo_put_reply(&r, &(struct reply_header){status, 0, h.call});
        send_msg(w, 0, to, r.buf, r.len);
        rpc_enc_free(&r);
    } else if (v == V_RUN && w->njobs < MAX_JOBS) {
        struct rpc_dec d;
        struct job *j = &w->jobs[w->njobs++];
        rpc_dec_init(&d, (uint8_t *)m + body, len - body);
        rpc_get_u32(&d, &j->token);
        rpc_get_i32(&d, &j->by);
        j->c = c;
        j->e = e;
        j->call = h.call;
        j->done_at = sim_now(w->sim) +
                     (rmsg_time)(sim_rand(w->sim) % 80000); /* 0-80 ms */
    } else if (v == V_RUN) {
        amo_abandon(&w->amo, c, e);
    }
}

static void server_jobs(struct world *w)
{
    for (int k = 0; k < w->njobs;) {
        struct job *j = &w->jobs[k];
        if (j->done_at > sim_now(w->sim)) {
            k++;
            continue;
        }
        w->counter += j->by;
        if (j->token < NCLIENTS * MAX_CALLS && w->runs[j->token]++ > 0)
            snprintf(w->why, sizeof(w->why), "token %u ran twice", j->token);
        struct rpc_enc r;
        rpc_enc_init(&r, 0);
        amo_put_reply(&r, &(struct reply_header){0, w->amo.incarnation,
                                                 j->call});
        rpc_put_i64(&r, w->counter);
        size_t len;
        uint8_t *reply = rpc_enc_take(&r, &len);
        send_msg(w, 0, sim_node_of(w->sim, &j->c->addr), reply, len);
        amo_done(&w->amo, j->c, j->e, reply, len);
        w->jobs[k] = w->jobs[--w->njobs];
    }
}

static int run_server(struct world *w)
{
    struct udp_addr from;
    void *m;
    size_t len;
    while (rmsg_core_recv(sim_core(w->sim, 0), &from, &m, &len) == 0) {
        server_take(w, &from, m, len);
        free(m);
    }
    server_jobs(w);
    return w->why[0] ? -1 : 0;
}

static int all_done(const struct world *w)
{
    for (int i = 0; i < NCLIENTS; i++)
        if (w->cl[i].busy || w->cl[i].next < w->calls)
            return 0;
    return 1;
}

static int run_one(uint64_t seed, int calls, char *why, size_t cap)
{
    struct rmsg_config cfg;
    rmsg_config_default(&cfg);
    cfg.rto_initial_us = 50000;
    uint64_t mix = seed * 0x9E3779B97F4A7C15ull + 7;
    struct sim_faults f = {.drop = (double)(mix % 300) / 1000.0,
                           .dup = 0.05, .reorder = 0.1, .corrupt = 0.02,
                           .delay_us = 1000 + (rmsg_time)(mix % 5000),
                           .jitter_us = 3000};
    struct world *w = calloc(1, sizeof(*w));
    w->sim = sim_new(NCLIENTS + 1, &cfg, &f, seed);
    w->calls = calls;
    /* Odd seeds: room for two of the three clients, so evictions and
     * refusals happen; even seeds: room for all. */
    int tight = (int)(seed & 1);
    amo_init(&w->amo, sim_rand(w->sim) | 1, tight ? NCLIENTS - 1 : NCLIENTS,
             1 << 20);
    for (int i = 0; i < NCLIENTS; i++)
        w->cl[i].id = sim_rand(w->sim) | 1;
    int rc = 0;
    rmsg_time start = sim_now(w->sim);
    while (rc == 0 && !all_done(w)) {
        rc = run_clients(w);
        if (rc == 0)
            rc = run_server(w);
        sim_step(w->sim, sim_now(w->sim) + 1000);
        if (rc == 0 && sim_now(w->sim) - start > 3600 * 1000000LL) {
            snprintf(w->why, sizeof(w->why), "not done after an hour");
            rc = -1;
        }
    }
    int64_t ok = 0, unknown = 0;
    int calls_ok = 0;
    for (int i = 0; i < NCLIENTS; i++) {
        ok += w->cl[i].sum_ok;
        unknown += w->cl[i].sum_unknown;
        calls_ok += w->cl[i].ok;
    }
    if (rc == 0 && (w->counter < ok || w->counter > ok + unknown))
        snprintf(w->why, sizeof(w->why), "counter %" PRId64 " outside [%"
                 PRId64 ", %" PRId64 "]", w->counter, ok, ok + unknown), rc = -1;
    if (rc == 0 && !tight && calls_ok < NCLIENTS * calls * 9 / 10)
        snprintf(w->why, sizeof(w->why), "only %d calls succeeded",
                 calls_ok), rc = -1;
    if (rc != 0)
        snprintf(why, cap, "%s (drop %.2f)", w->why, f.drop);
    if (getenv("RMSG_SIM_VERBOSE"))
        fprintf(stderr, "seed %" PRIu64 ": ok %d, runs %" PRIu64 ", cached "
                "%" PRIu64 ", waited %" PRIu64 ", evicted %" PRIu64
                ", refused %" PRIu64 "\n", seed, calls_ok, w->amo.st.calls,
                w->amo.st.cached_replies, w->amo.st.waited,
                w->amo.st.evicted, w->amo.st.refused);
    amo_free(&w->amo);
    sim_free(w->sim);
    free(w);
    return rc;
}

static void run_seeds(uint64_t first, uint64_t count, int calls)
{
    const char *one = getenv("RMSG_SIM_SEED");
    if (one) {
        first = strtoull(one, NULL, 0);
        count = 1;
    }
    int failed = 0;
    for (uint64_t s = first; s < first + count && !failed; s++) {
        char why[200];
        if (run_one(s, calls, why, sizeof(why)) != 0) {
            fprintf(stderr, "\n  rpc-sim: seed %" PRIu64 " failed: %s\n"
                    "  replay: RMSG_SIM_SEED=%" PRIu64
                    " build/tests/run rpc-sim\n", s, why, s);
            failed = 1;
        }
    }
    CU_ASSERT_EQUAL(failed, 0);
}

static void test_counter_many_seeds(void)
{
    run_seeds(1, 200, 60);
}

/* Fewer seeds, thousands of calls per client. */
static void test_counter_long_runs(void)
{
    run_seeds(1000, 6, 1000);
}

/* Admits call `call` of client 7 from a fixed address. */
static enum verdict admit(struct amo *t, uint64_t call, uint64_t done_below,
                          struct client **c, struct entry **e)
{
    struct call_header h = {.type = T_CALL, .client = 7, .call = call,
                            .done_below = done_below};
    struct udp_addr from = {0};
    int32_t status = 0;
    *e = NULL;
    return amo_admit(t, &h, &from, 1, 0, c, e, &status);
}

/* The reply cache keeps what went out byte for byte, whether the reply was
 * short enough to live in its entry, built on the caller's stack, or moved
 * to the heap; entries freed and used again start clean. */
static void test_cache_keeps_replies(void)
{
    struct amo t;
    CU_ASSERT_EQUAL_FATAL(amo_init(&t, 99, 4, 1 << 20), 0);
    static const size_t sizes[] = {REPLY_HEADER, ENTRY_INLINE,
                                   ENTRY_INLINE + 1, 200, 5000};
    enum { N = sizeof(sizes) / sizeof(sizes[0]) };
    uint8_t want[N][5000];
    for (uint64_t round = 0; round < 3; round++) {
        for (size_t i = 0; i < N; i++) {
            uint64_t call = round * N + i + 1;
            struct client *c;
            struct entry *e;
            CU_ASSERT_EQUAL_FATAL(admit(&t, call, round * N + 1, &c, &e),
                                  V_RUN);
            CU_ASSERT_PTR_NOT_NULL_FATAL(e);
            CU_ASSERT(e->running && e->reply == NULL && e->len == 0);
            uint8_t stack[256];
            struct rpc_enc r;
            rpc_enc_init_buffer(&r, stack, sizeof(stack), 0);
            for (size_t k = 0; k < sizes[i]; k++)
                want[i][k] = (uint8_t)(call * 31 + k);
            CU_ASSERT_EQUAL(rpc_put_raw(&r, want[i], sizes[i]), 0);
            amo_done_enc(&t, c, e, &r);
            CU_ASSERT_EQUAL(r.len, 0);
            memset(stack, 0, sizeof(stack)); /* the cache must not need it */
        }
        for (size_t i = 0; i < N; i++) {
            struct client *c;
            struct entry *e;
            uint64_t call = round * N + i + 1;
            CU_ASSERT_EQUAL_FATAL(admit(&t, call, round * N + 1, &c, &e),
                                  V_REPLY);
            CU_ASSERT_EQUAL_FATAL(e->len, sizes[i]);
            CU_ASSERT(memcmp(e->reply, want[i], sizes[i]) == 0);
            CU_ASSERT_EQUAL(e->reply == e->inline_reply,
                            sizes[i] <= ENTRY_INLINE);
        }
    }
    /* Every round's admissions took the entries the round before freed;
     * a call that shows the client has every reply frees them all, and
     * takes one of them. */
    CU_ASSERT_EQUAL(t.nspare, 0);
    CU_ASSERT_EQUAL(t.entries, N);
    struct client *c;
    struct entry *e;
    CU_ASSERT_EQUAL(admit(&t, 3 * N + 1, 3 * N + 1, &c, &e), V_RUN);
    CU_ASSERT_EQUAL(t.entries, 1);
    CU_ASSERT_EQUAL(t.nspare, N - 1);
    amo_free(&t); /* spares too: ASan would see a leak */
    CU_ASSERT_EQUAL(t.nspare, 0);
}

int test_rpc_sim_register(void)
{
    CU_pSuite s = CU_add_suite("rpc-sim", NULL, NULL);
    if (s == NULL ||
        !CU_add_test(s, "200 seeds: incrementBy, resent calls, evictions",
                     test_counter_many_seeds) ||
        !CU_add_test(s, "6 seeds, 1000 calls per client",
                     test_counter_long_runs) ||
        !CU_add_test(s, "the reply cache keeps replies byte for byte",
                     test_cache_keeps_replies))
        return -1;
    return 0;
}
