/*
 * rpc.c - rperf's rpc transport, both ends.
 *
 * Server.  For the test an rpc server takes the UDP port (as an rmsg
 * endpoint does for the rmsg transports) with two procedures:
 *
 *   PROC_ECHO  checks the request and returns it as the reply; with an
 *              empty request this is the null call (--lat)
 *   PROC_SINK  checks the request and returns nothing (--bw)
 *
 * rpc_serve runs in a thread of its own with no workers, so handlers run
 * one at a time and the test's counters need no lock, while the server's
 * main thread watches the control channel for the client's "done".  Each
 * request carries the pattern of its call's index (see rperf.h); the
 * server checks it, marks the index seen (a call that runs twice is a
 * failure of at-most-once, reported as such) and adds the request to an
 * order-free sum, because parallel calls arrive in any order.
 *
 * Client.  -P N clients, each a thread with its own rpc_client (and so its
 * own rmsg endpoint and identity), take call indexes from one shared
 * counter until the count, the byte total or the time is reached.  Each
 * call is a blocking rpc_call; latency is the time around it, recorded in
 * the thread's own histogram and merged at the end.  The datagrams a call
 * costs are counted from the clients' rmsg counters, both directions: the
 * request and acknowledgment going out, the reply (and any acknowledgment)
 * coming in.  The rpc server shows no counters of its endpoint, so the
 * server side's retransmissions are unknown (null in JSON).
 */
#define _GNU_SOURCE /* getnameinfo with -std=c11 */
#include "rperf.h"
#include "rpc.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define PROC_ECHO 1
#define PROC_SINK 2

/* A message of the pattern carries its index when it has 8 bytes. */
#define INDEXED_MIN 8

/* ======================================================================== */
/* Server                                                                   */
/* ======================================================================== */

/* The rpc settings of a test of messages of size bytes for `clients`
 * clients: messages that large, room to reassemble one per client while
 * another waits, and a reply cache that holds a reply per client. */
static void rpc_cfg_for(struct rpc_config *cfg, uint64_t size, uint32_t dgram,
                        uint32_t clients)
{
    rpc_config_default(cfg);
    rmsg_cfg_for(&cfg->rmsg, size, dgram);
    if (size > cfg->max_request) {
        cfg->max_request = (uint32_t)size;
        cfg->max_reply = (uint32_t)size;
    }
    size_t need = (size_t)clients * 2 * (size_t)size + cfg->rmsg.recv_buffer;
    if (need > cfg->rmsg.recv_total)
        cfg->rmsg.recv_total = need;
    cfg->cache_bytes += (size_t)clients * 2 * (size_t)size;
}

/* A request too short to carry its call's index: only its length can be
 * checked. */
static void account_short(struct stest *t, size_t len)
{
    if (t->mode == M_LAT && len != t->size)
        t->bad++;
    t->unchecked++;
}

/* A request that carries its call's index: every byte is checked, and the
 * index must not have been seen before (a call that ran twice). */
static void account_indexed(struct stest *t, const uint8_t *req, size_t len)
{
    int64_t idx = message_index(&t->pat, req);
    if (idx < 0 || (uint64_t)idx > t->top + (1u << 24)) {
        t->bad++;
        set_why(t->why, sizeof(t->why),
                "a request of no call of this test (corrupt, or foreign)");
        return;
    }
    uint64_t i = (uint64_t)idx;
    size_t want =
        t->mode == M_LAT ? (size_t)t->size : msg_len(t->size, t->total, i);
    if (check_message(&t->pat, req, len, want, i, "call", t->why,
                      sizeof(t->why)) != 0) {
        t->bad++;
        return;
    }
    if (seen_before(t, i)) {
        t->dup++;
        set_why(t->why, sizeof(t->why),
                "call %" PRIu64 " ran twice (at-most-once broken)", i);
        return;
    }
    if (i > t->top)
        t->top = i;
}

/* Checks, counts and sums one request, as a handler receives it. */
static void account_call(struct stest *t, const uint8_t *req, size_t len)
{
    if (len < INDEXED_MIN)
        account_short(t, len);
    else
        account_indexed(t, req, len);
    t->sum = sum_add(t->sum, req, len);
    count_arrival(t, len, now_ns());
}

/* PROC_ECHO: the request comes back as the reply. */
static int proc_echo(void *arg, const void *req, size_t len,
                     struct rpc_enc *reply)
{
    account_call(arg, req, len);
    if (len > 0)
        rpc_put_raw(reply, req, len);
    return 0;
}

/* PROC_SINK: the request is taken, the reply is empty. */
static int proc_sink(void *arg, const void *req, size_t len,
                     struct rpc_enc *reply)
{
    (void)reply;
    account_call(arg, req, len);
    return 0;
}

/* Opens the test's rpc server on the port (the caller has let go of its
 * UDP socket).  Returns 0, or -1 with the reason. */
int rpc_setup(struct stest *t)
{
    struct rpc_config cfg;
    rpc_cfg_for(&cfg, t->size, t->datagram, t->clients);
    int rc = rpc_server_open(t->srv->port, &cfg, &t->rpc);
    if (rc < 0) {
        set_why(t->why, sizeof(t->why), "rpc_server_open on port %d: %s",
                t->srv->port, strerror(-rc));
        return -1;
    }
    if (rpc_register(t->rpc, PROC_ECHO, proc_echo, t, 0) < 0 ||
        rpc_register(t->rpc, PROC_SINK, proc_sink, t, 0) < 0) {
        set_why(t->why, sizeof(t->why), "rpc_register: out of memory");
        return -1;
    }
    return 0;
}

static void *serve_thread(void *arg)
{
    struct stest *t = arg;
    int rc = rpc_serve(t->rpc, 0);
    if (rc < 0)
        set_why(t->why, sizeof(t->why), "rpc_serve: %s", strerror(-rc));
    return NULL;
}

/* Serves calls in a thread of its own until the client is done (or gone),
 * watching the control channel meanwhile. */
void serve_rpc(struct stest *t)
{
    pthread_t th;
    if (pthread_create(&th, NULL, serve_thread, t) != 0) {
        set_why(t->why, sizeof(t->why), "cannot start the rpc server thread");
        return;
    }
    while (!t->done) {
        struct pollfd p[2] = {{.fd = t->ctl->fd, .events = POLLIN},
                              {.fd = t->srv->listen_fd, .events = POLLIN}};
        poll(p, 2, 100);
        if (srv_check(t) < 0)
            break;
    }
    /* Returns once the last replies are acknowledged (the client's
     * rpc_client_close sends its last acknowledgments at once). */
    rpc_stop(t->rpc);
    pthread_join(th, NULL);
    struct rpc_server_stats st;
    rpc_server_stats(t->rpc, &st);
    t->cached = st.cached_replies;
}

void rpc_teardown(struct stest *t)
{
    rpc_server_close(t->rpc);
    t->rpc = NULL;
}

/* ======================================================================== */
/* Client                                                                   */
/* ======================================================================== */

/* What the clients of one test share. */
struct rpc_shared {
    struct ctest *t;
    uint32_t proc;
    atomic_uint_fast64_t next;  /* the index of the next call */
    atomic_uint_fast64_t calls; /* completed, for the progress line */
    atomic_uint_fast64_t bytes;
    atomic_int stop;    /* a client failed: all stop */
    atomic_int running; /* clients still calling */
};

/* One client: a thread with an rpc_client of its own. */
struct rpc_worker {
    struct rpc_shared *sh;
    struct rpc_client *c;
    pthread_t th;
    int started;
    struct hist *hist;               /* lat */
    uint64_t calls, bytes, sum, bad; /* completed calls */
    int64_t end_ns;                  /* when it made its last call */
    int failed;
    char why[200];
};

/* The length of call i, or -1 when the test has made all its calls. */
static int64_t call_len(const struct plan *pl, uint64_t i)
{
    if (pl->mode == M_LAT)
        return pl->count && i >= pl->count ? -1 : (int64_t)pl->size;
    if (pl->total && msg_len(pl->size, pl->total, i) == 0)
        return -1;
    return (int64_t)msg_len(pl->size, pl->total, i);
}

/* One call: call i of len bytes (the pattern stamped into buf), timed,
 * and its reply checked.  Returns 0, or -1 with the reason in w->why. */
static int one_call(struct rpc_worker *w, uint8_t *buf, uint64_t i, size_t len)
{
    struct ctest *t = w->sh->t;
    int lat = t->pl->mode == M_LAT;
    void *reply = NULL;
    size_t rlen = 0;
    pattern_stamp(&t->pat, buf, len, i);
    int64_t t0 = now_ns();
    int r = rpc_call(w->c, w->sh->proc, buf, len, &reply, &rlen,
                     msg_timeout_ms(len));
    int64_t t1 = now_ns();
    if (r != 0) {
        set_why(w->why, sizeof(w->why), "call %" PRIu64 ": %s", i,
                rpc_strerror(r));
        free(reply);
        return -1;
    }
    if (lat) {
        hist_record(w->hist, t1 - t0);
        if (check_message(&t->pat, reply, rlen, len, i, "reply", w->why,
                          sizeof(w->why)) != 0)
            w->bad++;
    } else if (rlen != 0) {
        w->bad++;
        set_why(w->why, sizeof(w->why),
                "call %" PRIu64 ": a reply of %zu "
                "bytes where none was due",
                i, rlen);
    }
    free(reply);
    w->calls++;
    w->bytes += len;
    w->sum = sum_add(w->sum, buf, len);
    atomic_fetch_add(&w->sh->calls, 1);
    atomic_fetch_add(&w->sh->bytes, len);
    return 0;
}

/* A client thread: calls until the test has all its calls, its time is
 * up, or a client failed. */
static void *rpc_worker_main(void *arg)
{
    struct rpc_worker *w = arg;
    struct ctest *t = w->sh->t;
    const struct plan *pl = t->pl;
    uint8_t *buf = xmalloc(pl->size ? (size_t)pl->size : 1);
    pattern_fill(&t->pat, buf, (size_t)pl->size);
    while (!atomic_load(&w->sh->stop)) {
        uint64_t i = atomic_fetch_add(&w->sh->next, 1);
        int64_t len = call_len(pl, i);
        if (len < 0 || (t->deadline && now_ns() >= t->deadline))
            break;
        if (one_call(w, buf, i, (size_t)len) < 0) {
            w->failed = 1;
            atomic_store(&w->sh->stop, 1);
            break;
        }
    }
    w->end_ns = now_ns();
    free(buf);
    atomic_fetch_sub(&w->sh->running, 1);
    return NULL;
}

/* The server's address as the control channel reached it, as text for
 * rpc_client_open. */
static int peer_host(const struct client *cl, char *host, size_t cap)
{
    return getnameinfo((const struct sockaddr *)&cl->peer, cl->peer_len, host,
                       (socklen_t)cap, NULL, 0, NI_NUMERICHOST) == 0
               ? 0
               : -1;
}

/* Opens every client before the clock starts.  Returns 0, or -1 after
 * FAIL. */
static int open_clients(struct ctest *t, struct rpc_worker *w, int n)
{
    char host[INET6_ADDRSTRLEN + 8];
    struct rpc_config cfg;
    rpc_cfg_for(&cfg, t->pl->size, t->pl->datagram, 1);
    if (peer_host(t->cl, host, sizeof(host)) < 0) {
        FAIL(t, "cannot name the server's address");
        return -1;
    }
    int port = t->cl->o->port;
    for (int k = 0; k < n; k++) {
        int rc = rpc_client_open(host, port, &cfg, &w[k].c);
        if (rc < 0) {
            FAIL(t, "rpc_client_open: %s", strerror(-rc));
            return -1;
        }
    }
    return 0;
}

/* The sum of every client's transport counters. */
static void sum_stats(struct rpc_worker *w, int n, struct rmsg_stats *sum)
{
    memset(sum, 0, sizeof(*sum));
    for (int k = 0; k < n; k++) {
        struct rmsg_stats st;
        if (w[k].c == NULL || rpc_client_stats(w[k].c, &st) != 0)
            continue;
        sum->datagrams_sent += st.datagrams_sent;
        sum->datagrams_received += st.datagrams_received;
        sum->retransmissions += st.retransmissions;
        sum->timeouts += st.timeouts;
    }
}

/* Lets the clients run, showing progress, until the last one ends. */
static void watch_clients(struct rpc_shared *sh, struct rpc_worker *w, int n)
{
    struct ctest *t = sh->t;
    int bytes = t->pl->mode == M_BW;
    while (atomic_load(&sh->running) > 0) {
        struct timespec ts = {0, 10000000};
        nanosleep(&ts, NULL);
        int64_t now = now_ns();
        if (!t->prog.on || now < t->prog.next)
            continue;
        struct rmsg_stats st;
        sum_stats(w, n, &st);
        progress_tick(&t->prog, now,
                      bytes ? atomic_load(&sh->bytes) : atomic_load(&sh->calls),
                      bytes, (double)st.retransmissions);
    }
}

/* Adds up what the clients did: counts, sums, histograms, the first
 * problem, and the time of the last call. */
static void gather(struct ctest *t, struct rpc_worker *w, int n)
{
    int64_t end = t->t0;
    for (int k = 0; k < n; k++) {
        if (!w[k].started)
            continue;
        t->msgs += w[k].calls;
        t->bytes += w[k].bytes;
        t->sum += w[k].sum;
        t->bad += w[k].bad;
        if (w[k].hist)
            hist_merge(t->hist, w[k].hist);
        if (w[k].why[0])
            set_why(t->f->why, sizeof(t->f->why), "%s", w[k].why);
        t->failed |= w[k].failed;
        end = w[k].end_ns > end ? w[k].end_ns : end;
    }
    t->t1 = end;
}

/* The client side of an rpc test: -P clients, each in its own thread. */
void client_rpc(struct ctest *t)
{
    const struct plan *pl = t->pl;
    int n = pl->clients > 0 ? pl->clients : 1;
    struct rpc_worker *w = xmalloc((size_t)n * sizeof(*w));
    memset(w, 0, (size_t)n * sizeof(*w));
    struct rpc_shared sh = {.t = t,
                            .proc = pl->mode == M_LAT ? PROC_ECHO : PROC_SINK};
    atomic_init(&sh.next, 0);
    atomic_init(&sh.calls, 0);
    atomic_init(&sh.bytes, 0);
    atomic_init(&sh.stop, 0);
    atomic_init(&sh.running, 0);
    if (open_clients(t, w, n) == 0) {
        for (int k = 0; k < n && pl->mode == M_LAT; k++) {
            w[k].hist = xmalloc(sizeof(*w[k].hist));
            memset(w[k].hist, 0, sizeof(*w[k].hist));
        }
        ct_start(t);
        for (int k = 0; k < n; k++) {
            w[k].sh = &sh;
            atomic_fetch_add(&sh.running, 1);
            w[k].started =
                pthread_create(&w[k].th, NULL, rpc_worker_main, &w[k]) == 0;
            if (!w[k].started) {
                atomic_fetch_sub(&sh.running, 1);
                FAIL(t, "cannot start client thread %d", k + 1);
                atomic_store(&sh.stop, 1);
            }
        }
        watch_clients(&sh, w, n);
        for (int k = 0; k < n; k++)
            if (w[k].started)
                pthread_join(w[k].th, NULL);
        ct_stop(t);
        gather(t, w, n);
        struct rmsg_stats st;
        sum_stats(w, n, &st);
        t->f->dgrams_sent = (double)st.datagrams_sent;
        t->f->dgrams_recv = (double)st.datagrams_received;
        t->f->retrans = (double)st.retransmissions;
        t->f->rto_timeouts = (double)st.timeouts;
    }
    for (int k = 0; k < n; k++) {
        rpc_client_close(w[k].c); /* sends its last acknowledgments */
        free(w[k].hist);
    }
    free(w);
}

/* What only rpc has: datagrams per call in both directions, the server's
 * cache, and the check that the server ran each completed call once. */
void rpc_figures(struct ctest *t, const struct sresult *r)
{
    struct figures *f = t->f;
    if (t->msgs > 0)
        f->dgrams_per_msg = (f->dgrams_sent + f->dgrams_recv) / (double)t->msgs;
    f->retrans_server = r->has_retrans ? (double)r->retrans : NAN;
    f->cached = (double)r->cached;
    f->intact = f->intact && r->bad == 0 && r->dup == 0 && r->msgs == t->msgs &&
                r->sum == t->sum;
    if (r->msgs != t->msgs)
        set_why(f->why, sizeof(f->why),
                "the server ran %" PRIu64 " calls, %" PRIu64 " completed here",
                r->msgs, t->msgs);
    else if (r->sum != t->sum && r->bad == 0 && r->dup == 0)
        set_why(f->why, sizeof(f->why), "checksums differ");
}
