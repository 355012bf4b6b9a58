/*
 * test_rmsg.c - rmsg endpoints over real sockets on loopback: large
 * messages, pipelined sends with flush, injected faults, a dead peer, a
 * restarted peer, and garbage thrown at an endpoint.  Ephemeral ports only.
 */
#define _POSIX_C_SOURCE 200809L
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

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
        if (i % 200 == 0) {
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
        !CU_add_test(s, "over injected faults", test_over_injected_faults) ||
        !CU_add_test(s, "dead peer", test_dead_peer) ||
        !CU_add_test(s, "peer restart", test_peer_restart) ||
        !CU_add_test(s, "garbage datagrams", test_garbage))
        return -1;
    return 0;
}
