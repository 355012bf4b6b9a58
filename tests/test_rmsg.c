/*
 * test_rmsg.c - rmsg endpoints over real sockets on loopback: large
 * messages, pipelined sends with flush, injected faults, a dead peer, a
 * restarted peer, garbage thrown at an endpoint, and an interrupted poll.
 * Ephemeral ports only.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <CUnit/CUnit.h>

#include "rmsg.h"
#include "tests.h"

/* Byte k of message m. */
static uint8_t pattern(int m, size_t k)
{
    return (uint8_t)((k * 7 + (size_t)m * 13) ^ (k >> 9));
}

static void fill(uint8_t *b, size_t n, int m)
{
    for (size_t k = 0; k < n; k++)
        b[k] = pattern(m, k);
}

static int check(const uint8_t *b, size_t n, int m)
{
    for (size_t k = 0; k < n; k++)
        if (b[k] != pattern(m, k))
            return 0;
    return 1;
}

static struct udp_addr loopback(int port)
{
    struct udp_addr a;
    UDP_Resolve("127.0.0.1", port, AF_INET, &a);
    return a;
}

/* A receiver thread: takes `count` messages of the given sizes and checks
 * their order and content. */
struct sink {
    struct rmsg_endpoint *ep;
    int count;
    const size_t *sizes;
    int good;
};

static void *sink_run(void *arg)
{
    struct sink *s = arg;
    for (int m = 0; m < s->count; m++) {
        void *msg;
        size_t len;
        if (rmsg_recv(s->ep, NULL, &msg, &len, 20000) != 0)
            return NULL;
        int ok = len == s->sizes[m] && check(msg, len, m);
        free(msg);
        if (!ok)
            return NULL;
        s->good++;
    }
    /* Keep serving acknowledgments until the sender is satisfied. */
    void *msg;
    size_t len;
    if (rmsg_recv(s->ep, NULL, &msg, &len, 300) == 0)
        free(msg);
    return NULL;
}

/* Sends `count` messages from a to b with blocking or pipelined sends. */
static void transfer(const size_t *sizes, int count, int pipelined)
{
    struct rmsg_endpoint *a, *b;
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &a), 0);
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &b), 0);
    struct udp_addr to = loopback(rmsg_port(b));
    struct sink s = {b, count, sizes, 0};
    pthread_t t;
    pthread_create(&t, NULL, sink_run, &s);
    int failures = 0;
    for (int m = 0; m < count; m++) {
        uint8_t *buf = malloc(sizes[m] + 1);
        fill(buf, sizes[m], m);
        if (pipelined)
            failures += rmsg_send_async(a, &to, buf, sizes[m], 20000) <= 0;
        else
            failures += rmsg_send(a, &to, buf, sizes[m], 20000) != 0;
        free(buf);
    }
    CU_ASSERT_EQUAL(rmsg_flush(a, 20000), 0);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(failures, 0);
    CU_ASSERT_EQUAL(s.good, count);
    struct rmsg_stats st;
    rmsg_stats(a, NULL, &st);
    CU_ASSERT_EQUAL(st.messages_sent, (uint64_t)count);
    rmsg_close(a);
    rmsg_close(b);
}

static void test_blocking_round_trips(void)
{
    size_t sizes[] = {0, 1, 64, 1400, 5000, 100000, 0, 3};
    transfer(sizes, 8, 0);
}

static void test_large_message(void)
{
    size_t sizes[] = {16u << 20};
    transfer(sizes, 1, 0);
}

static void test_pipelined_in_order(void)
{
    enum { N = 2000 };
    static size_t sizes[N];
    for (int m = 0; m < N; m++)
        sizes[m] = (size_t)(m * 37 % 3000);
    transfer(sizes, N, 1);
}

/* Echoes `count` messages back to their sender.  The replies are queued,
 * not waited for: the last one's acknowledgment would come only once the
 * asker's endpoint ran again. */
struct echo {
    struct rmsg_endpoint *ep;
    int count;
};

static void *echo_run(void *arg)
{
    struct echo *e = arg;
    for (int m = 0; m < e->count; m++) {
        struct udp_addr from;
        void *msg;
        size_t len;
        if (rmsg_recv(e->ep, &from, &msg, &len, 20000) != 0)
            return NULL;
        int64_t r = rmsg_send_async(e->ep, &from, msg, len, 20000);
        free(msg);
        if (r <= 0)
            return NULL;
    }
    return NULL;
}

/* Requests and replies, one at a time: each is sent with nothing else to
 * send, so the rate samples they give are limited by the application, and
 * the congestion controller must not take them for the path's rate (it
 * would lower its pacing rate to the application's own and hold messages
 * back).  Such samples never end its startup, where it paces at 2.89
 * times the rate it measured; taken for the path's, they would end it
 * within a few round trips. */
static void test_request_reply_app_limited(void)
{
    enum { N = 300 };
    struct rmsg_endpoint *a, *b;
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &a), 0);
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &b), 0);
    struct udp_addr to = loopback(rmsg_port(b)), back = loopback(rmsg_port(a));
    struct echo e = {b, N};
    pthread_t t;
    pthread_create(&t, NULL, echo_run, &e);
    uint8_t req[64] = {1};
    int good = 0;
    for (int m = 0; m < N; m++) {
        void *rep = NULL;
        size_t len = 0;
        if (rmsg_send(a, &to, req, sizeof(req), 20000) == 0 &&
            rmsg_recv(a, NULL, &rep, &len, 20000) == 0 && len == sizeof(req))
            good++;
        free(rep);
    }
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(good, N);
    struct rmsg_stats sa, sb;
    CU_ASSERT_EQUAL(rmsg_stats(a, &to, &sa), 0);
    CU_ASSERT_EQUAL(rmsg_stats(b, &back, &sb), 0);
    CU_ASSERT(sa.delivery_rate > 0 && sb.delivery_rate > 0);
    CU_ASSERT(sa.pacing_rate >= 2 * sa.delivery_rate);
    CU_ASSERT(sb.pacing_rate >= 2 * sb.delivery_rate);
    if (sa.pacing_rate < 2 * sa.delivery_rate ||
        sb.pacing_rate < 2 * sb.delivery_rate)
        fprintf(stderr, "\n  pacing/delivery rate: asker %llu/%llu, "
                "answerer %llu/%llu\n", (unsigned long long)sa.pacing_rate,
                (unsigned long long)sa.delivery_rate,
                (unsigned long long)sb.pacing_rate,
                (unsigned long long)sb.delivery_rate);
    rmsg_close(a);
    rmsg_close(b);
}

/* The same transfers with the udp layer dropping, duplicating, reordering
 * and corrupting what both endpoints send. */
static void test_over_injected_faults(void)
{
    setenv("UDP_FAULTS", "drop=0.1,dup=0.05,reorder=0.1,corrupt=0.02,seed=7", 1);
    size_t sizes[] = {0, 10, 70000, 2u << 20, 1, 30000};
    transfer(sizes, 6, 0);
    static size_t many[300];
    for (int m = 0; m < 300; m++)
        many[m] = (size_t)(m * 101 % 5000);
    transfer(many, 300, 1);
    unsetenv("UDP_FAULTS");
}

/* Back pressure: with a small send_buffer, rmsg_send_async to a live peer
 * waits for room whenever the queue is full, never failing with -ENOBUFS,
 * and everything arrives in order; to a silent peer, once the queue is
 * full, it gives -ETIMEDOUT when its timeout passes. */
enum { BP_N = 60, BP_SIZE = 30000 };

static void test_back_pressure(void)
{
    struct rmsg_config cfg;
    rmsg_config_default(&cfg);
    cfg.send_buffer = 100000; /* three messages */
    struct rmsg_endpoint *a, *b;
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, &cfg, &a), 0);
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &b), 0);
    static size_t sizes[BP_N];
    for (int m = 0; m < BP_N; m++)
        sizes[m] = BP_SIZE;
    struct sink s = {b, BP_N, sizes, 0};
    pthread_t t;
    pthread_create(&t, NULL, sink_run, &s);
    struct udp_addr to = loopback(rmsg_port(b));
    uint8_t *buf = malloc(BP_SIZE);
    CU_ASSERT_FATAL(buf != NULL);
    int taken = 0;
    for (int m = 0; m < BP_N; m++) {
        fill(buf, BP_SIZE, m);
        taken += rmsg_send_async(a, &to, buf, BP_SIZE, 20000) > 0;
    }
    CU_ASSERT_EQUAL(taken, BP_N);
    CU_ASSERT_EQUAL(rmsg_flush(a, 20000), 0);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(s.good, BP_N);
    rmsg_close(b);

    struct rmsg_endpoint *gone;
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &gone), 0);
    to = loopback(rmsg_port(gone));
    rmsg_close(gone);
    for (int m = 0; m < 3; m++)
        CU_ASSERT(rmsg_send_async(a, &to, buf, BP_SIZE, 5000) > 0);
    int64_t r = rmsg_send_async(a, &to, buf, BP_SIZE, 300);
    if (r != -ETIMEDOUT)
        fprintf(stderr, "\n  a fourth message to a silent peer: %lld\n",
                (long long)r);
    CU_ASSERT_EQUAL(r, -ETIMEDOUT);
    free(buf);
    rmsg_close(a);
}

/* Nobody listens: the send fails with -ETIMEDOUT at its deadline, and a
 * pipelined message to the same peer is reported failed, not dropped. */
static void test_dead_peer(void)
{
    struct rmsg_endpoint *a, *gone;
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &a), 0);
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &gone), 0);
    struct udp_addr to = loopback(rmsg_port(gone));
    rmsg_close(gone);
    CU_ASSERT(rmsg_send_async(a, &to, "later", 5, 400) > 0);
    CU_ASSERT_EQUAL(rmsg_send(a, &to, "hello", 5, 300), -ETIMEDOUT);
    CU_ASSERT_EQUAL(rmsg_flush(a, 2000), 1);
    struct rmsg_event ev;
    CU_ASSERT_EQUAL(rmsg_failure(a, &ev), 0);
    CU_ASSERT_EQUAL(ev.error, -ETIMEDOUT);
    CU_ASSERT_EQUAL(rmsg_failure(a, &ev), -EAGAIN);
    rmsg_close(a);
}

/* The receiver restarts on the same port.  The first message sent into the
 * old relation fails with -ECONNRESET (the new receiver refuses datagrams of
 * a relation it never had, so nothing of it was delivered); the sender then
 * starts a new relation and messages arrive exactly once. */
static void test_peer_restart(void)
{
    struct rmsg_endpoint *a, *b;
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &a), 0);
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &b), 0);
    int port = rmsg_port(b);
    struct udp_addr to = loopback(port);
    size_t sizes[] = {100, 200};
    struct sink s = {b, 2, sizes, 0};
    pthread_t t;
    pthread_create(&t, NULL, sink_run, &s);
    for (int m = 0; m < 2; m++) {
        uint8_t buf[200];
        fill(buf, sizes[m], m);
        CU_ASSERT_EQUAL(rmsg_send(a, &to, buf, sizes[m], 5000), 0);
    }
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(s.good, 2);
    rmsg_close(b);
    CU_ASSERT_EQUAL_FATAL(rmsg_open(port, NULL, &b), 0);
    s = (struct sink){b, 2, sizes, 0};
    pthread_create(&t, NULL, sink_run, &s);
    int ok = 0;
    uint8_t buf[200];
    fill(buf, sizes[0], 0);
    CU_ASSERT_EQUAL(rmsg_send(a, &to, buf, sizes[0], 5000), -ECONNRESET);
    for (int m = 0; m < 2; m++) {
        fill(buf, sizes[m], m);
        ok += rmsg_send(a, &to, buf, sizes[m], 5000) == 0;
    }
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(ok, 2);
    CU_ASSERT_EQUAL(s.good, 2);
    rmsg_close(a);
    rmsg_close(b);
}

/* Many peers at once: twelve senders, each in its own thread over a lossy
 * network, pipeline messages to one receiver; each sender's messages must
 * arrive complete and in its own order, whatever the interleaving. */
enum { PEERS = 12, PER_PEER = 40 };

struct sender {
    struct rmsg_endpoint *ep;
    struct udp_addr to;
    int index, flushed;
};

static size_t peer_msg_size(int i, int m)
{
    return 8 + (size_t)(i * 977 + m * 131) % 20000;
}

static void *sender_run(void *arg)
{
    struct sender *s = arg;
    for (int m = 0; m < PER_PEER; m++) {
        size_t n = peer_msg_size(s->index, m);
        uint8_t *b = malloc(n);
        fill(b, n, s->index * PER_PEER + m);
        b[0] = (uint8_t)s->index;
        b[1] = (uint8_t)m;
        rmsg_send_async(s->ep, &s->to, b, n, 30000);
        free(b);
    }
    s->flushed = rmsg_flush(s->ep, 30000);
    /* Serve the last acknowledgments' retransmissions, if any. */
    void *msg;
    size_t len;
    if (rmsg_recv(s->ep, NULL, &msg, &len, 200) == 0)
        free(msg);
    return NULL;
}

static void test_many_peers(void)
{
    struct rmsg_endpoint *b;
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &b), 0);
    setenv("UDP_FAULTS", "drop=0.05,dup=0.02,reorder=0.05,seed=11", 1);
    struct sender s[PEERS];
    pthread_t t[PEERS];
    for (int i = 0; i < PEERS; i++) {
        s[i] = (struct sender){.to = loopback(rmsg_port(b)), .index = i};
        CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &s[i].ep), 0);
    }
    unsetenv("UDP_FAULTS");
    for (int i = 0; i < PEERS; i++)
        pthread_create(&t[i], NULL, sender_run, &s[i]);
    int next[PEERS] = {0}, bad = 0, got = 0;
    while (got < PEERS * PER_PEER && !bad) {
        void *msg;
        size_t len;
        if (rmsg_recv(b, NULL, &msg, &len, 30000) != 0)
            break;
        uint8_t *p = msg;
        int i = len >= 8 ? p[0] : -1, m = len >= 8 ? p[1] : -1;
        bad = i < 0 || i >= PEERS || m != next[i] ||
              len != peer_msg_size(i, m);
        if (!bad) {
            p[0] = pattern(i * PER_PEER + m, 0);
            p[1] = pattern(i * PER_PEER + m, 1);
            bad = !check(p, len, i * PER_PEER + m);
        }
        free(msg);
        next[i >= 0 && i < PEERS ? i : 0]++;
        got++;
    }
    for (int i = 0; i < PEERS; i++) {
        pthread_join(t[i], NULL);
        CU_ASSERT_EQUAL(s[i].flushed, 0);
        CU_ASSERT_EQUAL(next[i], PER_PEER);
        rmsg_close(s[i].ep);
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(got, PEERS * PER_PEER);
    struct rmsg_stats st;
    rmsg_stats(b, NULL, &st);
    CU_ASSERT_EQUAL(st.peers, PEERS);
    CU_ASSERT_EQUAL(st.messages_received, (uint64_t)PEERS * PER_PEER);
    rmsg_close(b);
}

/* A receiver that does not read: the sender fills the receiver's buffer,
 * then waits on a zero window (probing now and then, not flooding), the
 * receiver's memory stays within its configured buffer, and when the
 * reader starts everything arrives. */
enum { SLOW_N = 200, SLOW_SIZE = 20000 };

static void *slow_sender_run(void *arg)
{
    struct sender *s = arg;
    uint8_t *buf = malloc(SLOW_SIZE);
    for (int m = 0; m < SLOW_N; m++) {
        fill(buf, SLOW_SIZE, m);
        rmsg_send_async(s->ep, &s->to, buf, SLOW_SIZE, 60000);
    }
    free(buf);
    s->flushed = rmsg_flush(s->ep, 60000);
    return NULL;
}

static void test_slow_receiver(void)
{
    struct rmsg_config cfg;
    rmsg_config_default(&cfg);
    cfg.recv_buffer = 256 << 10;
    struct rmsg_endpoint *b;
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, &cfg, &b), 0);
    struct sender s = {.to = loopback(rmsg_port(b))};
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &s.ep), 0);
    pthread_t t;
    pthread_create(&t, NULL, slow_sender_run, &s);
    /* For 300 ms the receiving side runs but the application reads
     * nothing: the window closes. */
    for (int k = 0; k < 30; k++)
        rmsg_poll(b, 10);
    struct rmsg_stats sa, sb;
    rmsg_stats(b, NULL, &sb);
    rmsg_stats(s.ep, NULL, &sa);
    if (sb.memory > cfg.recv_buffer + 2 * SLOW_SIZE)
        fprintf(stderr, "\n  receiver holds %llu bytes, %llu messages\n", (unsigned long long)sb.memory, (unsigned long long)sb.messages_received);
    CU_ASSERT(sb.memory <= cfg.recv_buffer + 2 * SLOW_SIZE);
    CU_ASSERT(sb.messages_received > 0);
    CU_ASSERT(sb.messages_received < SLOW_N);
    CU_ASSERT(sa.retransmissions < 50);
    static size_t sizes[SLOW_N];
    for (int m = 0; m < SLOW_N; m++)
        sizes[m] = SLOW_SIZE;
    struct sink r = {b, SLOW_N, sizes, 0};
    sink_run(&r);
    pthread_join(t, NULL);
    CU_ASSERT_EQUAL(s.flushed, 0);
    CU_ASSERT_EQUAL(r.good, SLOW_N);
    rmsg_stats(s.ep, NULL, &sa);
    CU_ASSERT(sa.retransmissions < 100);
    rmsg_close(s.ep);
    rmsg_close(b);
}

/* CPU seconds this process has used so far. */
static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waiting costs nothing: a receive on a silent endpoint and a send to a
 * silent peer sleep until their deadline (under 1% of a core each). */
static void test_waiting_is_cheap(void)
{
    struct rmsg_endpoint *a, *gone;
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &a), 0);
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &gone), 0);
    struct udp_addr to = loopback(rmsg_port(gone));
    rmsg_close(gone);
    double t0 = cpu_seconds();
    void *msg;
    size_t len;
    CU_ASSERT_EQUAL(rmsg_recv(a, NULL, &msg, &len, 500), -ETIMEDOUT);
    double t1 = cpu_seconds();
    CU_ASSERT_EQUAL(rmsg_send(a, &to, "anyone?", 7, 1000), -ETIMEDOUT);
    double t2 = cpu_seconds();
    if (t1 - t0 > 0.005 || t2 - t1 > 0.010)
        fprintf(stderr, "\n  CPU while waiting: recv %.1f ms of 500, send "
                "%.1f ms of 1000\n", (t1 - t0) * 1e3, (t2 - t1) * 1e3);
    CU_ASSERT(t1 - t0 <= 0.005);
    CU_ASSERT(t2 - t1 <= 0.010);
    rmsg_close(a);
}

/* A thread blocked in rmsg_recv with no timeout is the endpoint's poller;
 * the thread that sends must wake it so that the poller's timers cover the
 * new message: a fifth of a's datagrams are lost, and a lost message is
 * only sent again when the poller's timer says so, in well under the two
 * seconds each send is given (a poller left asleep stalls for good).
 * rmsg_interrupt then ends the blocked receive. */
struct blocked_recv {
    struct rmsg_endpoint *ep;
    int result;
};

static void *recv_forever(void *arg)
{
    struct blocked_recv *br = arg;
    void *msg;
    size_t len;
    br->result = rmsg_recv(br->ep, NULL, &msg, &len, -1);
    if (br->result == 0)
        free(msg);
    return NULL;
}

static void test_sender_wakes_poller(void)
{
    enum { N = 60 };
    struct rmsg_endpoint *a, *b;
    setenv("UDP_FAULTS", "drop=0.2,seed=11", 1);
    int ra = rmsg_open(0, NULL, &a);
    unsetenv("UDP_FAULTS");
    CU_ASSERT_EQUAL_FATAL(ra, 0);
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &b), 0);
    size_t sizes[N];
    for (int m = 0; m < N; m++)
        sizes[m] = 100 + (size_t)m;
    struct sink s = {b, N, sizes, 0};
    struct blocked_recv br = {a, 1};
    pthread_t tb, tr;
    pthread_create(&tb, NULL, sink_run, &s);
    pthread_create(&tr, NULL, recv_forever, &br);
    struct udp_addr to = loopback(rmsg_port(b));
    int sent = 0;
    for (int m = 0; m < N; m++) {
        uint8_t buf[200];
        fill(buf, sizes[m], m);
        sent += rmsg_send(a, &to, buf, sizes[m], 2000) == 0;
    }
    CU_ASSERT_EQUAL(sent, N);
    rmsg_interrupt(a, 1);
    pthread_join(tr, NULL);
    CU_ASSERT_EQUAL(br.result, -EINTR);
    rmsg_interrupt(a, 0);
    pthread_join(tb, NULL);
    CU_ASSERT_EQUAL(s.good, N);
    struct rmsg_stats st;
    rmsg_stats(a, NULL, &st);
    CU_ASSERT(st.retransmissions > 0); /* the faults really hit */
    rmsg_close(a);
    rmsg_close(b);
}

/* rmsg_poll blocked in another thread returns -EINTR once rmsg_interrupt
 * is called, as every blocking call does (it returned 0, as if its time
 * had run out), and so does a poll started while the flag is on; with
 * the flag off again, a poll that runs out its time succeeds. */
struct poller {
    struct rmsg_endpoint *ep;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    int started, done, result;
};

static void *poll_run(void *arg)
{
    struct poller *p = arg;
    pthread_mutex_lock(&p->lock);
    p->started = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    int r = rmsg_poll(p->ep, 1000);
    pthread_mutex_lock(&p->lock);
    p->result = r;
    p->done = 1;
    pthread_cond_broadcast(&p->cond);
    pthread_mutex_unlock(&p->lock);
    return NULL;
}

static void test_poll_interrupted(void)
{
    struct poller p = {.lock = PTHREAD_MUTEX_INITIALIZER,
                       .cond = PTHREAD_COND_INITIALIZER};
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &p.ep), 0);
    pthread_t t;
    pthread_create(&t, NULL, poll_run, &p);
    /* Once it polls, give it about 200 ms of its 1000 (a wait for "done"
     * that should not come), then interrupt it. */
    struct timespec ts;
    pthread_mutex_lock(&p.lock);
    while (!p.started)
        pthread_cond_wait(&p.cond, &p.lock);
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_nsec += 200000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    while (!p.done && pthread_cond_timedwait(&p.cond, &p.lock, &ts) == 0)
        ;
    int early = p.done;
    rmsg_interrupt(p.ep, 1);
    pthread_mutex_unlock(&p.lock);
    pthread_join(t, NULL);
    CU_ASSERT_FALSE(early);
    CU_ASSERT_EQUAL(p.result, -EINTR);
    CU_ASSERT_EQUAL(rmsg_poll(p.ep, 1000), -EINTR);
    rmsg_interrupt(p.ep, 0);
    CU_ASSERT_EQUAL(rmsg_poll(p.ep, 10), 0);
    rmsg_close(p.ep);
}

/* An endpoint that validates addresses (a server on a fixed port does by
 * default) costs a new peer one RETRY and nothing else; one opened on an
 * ephemeral port does not validate unless told to. */
static void test_address_validation(void)
{
    struct rmsg_config cfg;
    rmsg_config_default(&cfg);
    cfg.validate = 1;
    struct rmsg_endpoint *a, *srv, *plain;
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &a), 0);
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, &cfg, &srv), 0);
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &plain), 0);
    struct rmsg_endpoint *to_ep[2] = {srv, plain};
    for (int i = 0; i < 2; i++) {
        struct sink s = {to_ep[i], 3, (size_t[]){5, 5, 5}, 0};
        pthread_t t;
        pthread_create(&t, NULL, sink_run, &s);
        struct udp_addr to = loopback(rmsg_port(to_ep[i]));
        for (int m = 0; m < 3; m++) {
            uint8_t buf[5];
            fill(buf, 5, m);
            CU_ASSERT_EQUAL(rmsg_send(a, &to, buf, 5, 5000), 0);
        }
        pthread_join(t, NULL);
        CU_ASSERT_EQUAL(s.good, 3);
        struct rmsg_stats st;
        rmsg_stats(to_ep[i], NULL, &st);
        CU_ASSERT_EQUAL(st.address_checks, i == 0 ? 1u : 0u);
    }
    rmsg_close(a);
    rmsg_close(srv);
    rmsg_close(plain);
}

/* Random bytes, truncated and forged headers: nothing is delivered,
 * nothing crashes, memory does not grow, everything is counted. */
static void test_garbage(void)
{
    struct rmsg_endpoint *b;
    CU_ASSERT_EQUAL_FATAL(rmsg_open(0, NULL, &b), 0);
    int fd = UDP_Open(0);
    struct udp_addr to = loopback(rmsg_port(b));
    uint64_t x = 42;
    uint8_t buf[1500];
    for (int i = 0; i < 3000; i++) {
        size_t n = (size_t)(i % 1500);
        for (size_t k = 0; k < n; k++) {
            x = x * 6364136223846793005ull + 1442695040888963407ull;
            buf[k] = (uint8_t)(x >> 56);
        }
        if (n > 0 && i % 3 == 0)
            buf[0] = 1; /* right version: reaches the checksum */
        UDP_SendTo(fd, buf, n, &to);
        /* Read as it comes (a timeout of 0 still reads), so that a slow
         * run (valgrind) does not overflow the socket's buffer. */
        if (i % 50 == 0) {
            void *msg;
            size_t len;
            CU_ASSERT_EQUAL(rmsg_recv(b, NULL, &msg, &len, 0), -ETIMEDOUT);
        }
    }
    void *msg;
    size_t len;
    CU_ASSERT_EQUAL(rmsg_recv(b, NULL, &msg, &len, 100), -ETIMEDOUT);
    struct rmsg_stats st;
    rmsg_stats(b, NULL, &st);
    CU_ASSERT_EQUAL(st.messages_received, 0);
    CU_ASSERT_EQUAL(st.peers, 0);
    CU_ASSERT_EQUAL(st.memory, 0);
    CU_ASSERT(st.malformed + st.corrupt >= 2000);
    UDP_Close(fd);
    rmsg_close(b);
}

int test_rmsg_register(void)
{
    CU_pSuite s = CU_add_suite("rmsg", NULL, NULL);
    if (s == NULL ||
        !CU_add_test(s, "blocking round trips", test_blocking_round_trips) ||
        !CU_add_test(s, "16 MiB message", test_large_message) ||
        !CU_add_test(s, "2000 pipelined messages in order",
                     test_pipelined_in_order) ||
        !CU_add_test(s, "request and reply: limited by the application",
                     test_request_reply_app_limited) ||
        !CU_add_test(s, "over injected faults", test_over_injected_faults) ||
        !CU_add_test(s, "back pressure", test_back_pressure) ||
        !CU_add_test(s, "dead peer", test_dead_peer) ||
        !CU_add_test(s, "peer restart", test_peer_restart) ||
        !CU_add_test(s, "garbage datagrams", test_garbage) ||
        !CU_add_test(s, "many peers at once", test_many_peers) ||
        !CU_add_test(s, "slow receiver", test_slow_receiver) ||
        !CU_add_test(s, "waiting is cheap", test_waiting_is_cheap) ||
        !CU_add_test(s, "a sender wakes a blocked receiver",
                     test_sender_wakes_poller) ||
        !CU_add_test(s, "address validation", test_address_validation) ||
        !CU_add_test(s, "rmsg_poll interrupted", test_poll_interrupted))
        return -1;
    return 0;
}
