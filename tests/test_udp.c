/*
 * test_udp.c - the udp layer over real loopback sockets.
 *
 * Every socket is bound to an ephemeral port, so runs can overlap.  Fault
 * rates are checked statistically: over N datagrams a probability p gives a
 * binomial count with mean Np and standard deviation sqrt(Np(1-p)), and the
 * tests allow five standard deviations (a false alarm about once in two
 * million runs).  Since the seed is fixed, a given build gives the same
 * counts every time anyway; the tolerance is for changes in the generator.
 * Receive buffers are enlarged and every burst is drained before the next,
 * so that the kernel never drops a datagram and disturbs the counts.
 */
#define _POSIX_C_SOURCE 200809L /* clock_gettime, setenv, fileno */

#include <dirent.h>
#include <math.h>
#include <sched.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <CUnit/CUnit.h>

#include "tests.h"
#include "udp.h"
#include "udp_faults.h"

/* ------------------------------------------------------------------------ */
/* Helpers                                                                   */
/* ------------------------------------------------------------------------ */

static uint64_t mono_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

static uint64_t cpu_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The IPv4 loopback address of fd's port. */
static struct udp_addr loop_to(int fd)
{
    struct udp_addr a;
    CU_ASSERT_FATAL(UDP_Resolve(NULL, UDP_Port(fd), AF_INET, &a) == 0);
    return a;
}

/* Opens an IPv4 socket with a receive buffer large enough for a burst. */
static int open_big(void)
{
    int fd = UDP_Open(0);
    CU_ASSERT_FATAL(fd >= 0);
    CU_ASSERT(UDP_SetBuffers(fd, 4 << 20, 1 << 20, NULL, NULL) == 0);
    return fd;
}

/* True when a binomial count k over n trials is within 5 sigma of n*p. */
static int near_binomial(uint64_t k, uint64_t n, double p)
{
    double mean = (double)n * p, sd = sqrt((double)n * p * (1 - p));
    int ok = fabs((double)k - mean) <= 5 * sd + 1;
    if (!ok)
        printf("\n  count %llu, expected %.0f +- %.0f\n", (unsigned long long)k,
               mean, 5 * sd);
    return ok;
}

/* Test payloads are 16 bytes: a sequence number and its complement, so that
 * a flipped bit anywhere shows, and where. */
enum { PAYLOAD = 16 };

static void payload_make(unsigned char *b, uint64_t seq)
{
    uint64_t inv = ~seq;
    memcpy(b, &seq, 8);
    memcpy(b + 8, &inv, 8);
}

/* The sequence number, or -1 for a corrupted payload; *bits counts the bits
 * that differ from an intact one. */
static int64_t payload_seq(const unsigned char *b, size_t len, int *bits)
{
    uint64_t seq, inv;
    *bits = 0;
    if (len != PAYLOAD)
        return -1;
    memcpy(&seq, b, 8);
    memcpy(&inv, b + 8, 8);
    *bits = __builtin_popcountll(seq ^ ~inv);
    return *bits == 0 ? (int64_t)seq : -1;
}

/* What a receiver saw of a run of numbered datagrams. */
struct seen {
    uint64_t received, dups, corrupt, one_bit;
    uint64_t inversions; /* arrived after a later datagram */
    uint64_t near;       /* ...at most 5 places later */
    int64_t highest;
    unsigned char *got; /* one flag per sequence number */
    uint64_t count;
};

static void seen_one(struct seen *s, const unsigned char *b, size_t len)
{
    int bits;
    int64_t seq = payload_seq(b, len, &bits);
    s->received++;
    if (seq < 0 || (uint64_t)seq >= s->count) {
        s->corrupt++;
        s->one_bit += bits == 1;
        return;
    }
    s->dups += s->got[seq];
    s->got[seq] = 1;
    if (seq < s->highest) {
        s->inversions++;
        s->near += s->highest - seq <= 5;
    } else
        s->highest = seq;
}

/* Receives on rx until `expected` datagrams have arrived in all (or two
 * seconds pass), pumping tx so that what it holds back keeps flowing. */
static void drain(int tx, int rx, uint64_t expected, struct seen *s)
{
    unsigned char bufs[64][64];
    struct udp_msg msgs[64];
    uint64_t give_up = mono_us() + 2000000;
    while (s->received < expected && mono_us() < give_up) {
        UDP_Pump(tx);
        for (int i = 0; i < 64; i++) {
            msgs[i].buf = bufs[i];
            msgs[i].len = sizeof(bufs[i]);
        }
        int n = UDP_RecvMany(rx, msgs, 64, 2);
        for (int i = 0; i < n; i++)
            seen_one(s, msgs[i].buf, msgs[i].len);
    }
}

/* Sends `count` numbered datagrams through a socket with the given faults,
 * in bursts that are drained before the next, and reports the sender's
 * counters and what arrived.  s->got is freed by the caller. */
static void run_faults(const char *spec, uint64_t count,
                       struct udp_fault_stats *st, struct seen *s)
{
    enum { BURST = 128 };
    char err[200];
    int tx = open_big(), rx = open_big();
    memset(s, 0, sizeof(*s));
    s->highest = -1;
    s->count = count;
    s->got = calloc(count, 1);
    CU_ASSERT_FATAL(s->got != NULL);
    CU_ASSERT_FATAL(UDP_SetFaults(tx, spec, err, sizeof(err)) == 0);
    struct udp_addr to = loop_to(rx);
    for (uint64_t i = 0; i < count;) {
        for (int j = 0; j < BURST && i < count; j++, i++) {
            unsigned char b[PAYLOAD];
            payload_make(b, i);
            CU_ASSERT(UDP_SendTo(tx, b, sizeof(b), &to) == PAYLOAD);
        }
        CU_ASSERT(UDP_FaultStats(tx, st) == 0);
        drain(tx, rx, st->sent - st->dropped + st->duplicated, s);
    }
    UDP_Close(tx);
    UDP_Close(rx);
}

/* ------------------------------------------------------------------------ */
/* The textbook calls                                                        */
/* ------------------------------------------------------------------------ */

/* A request and its reply, with nothing but the five calls (and UDP_Port). */
static void test_textbook_round_trip(void)
{
    int server = UDP_Open(0), client = UDP_Open(0);
    CU_ASSERT_FATAL(server >= 0 && client >= 0);
    struct sockaddr_in to, from, back;
    CU_ASSERT_FATAL(UDP_FillSockAddr(&to, "localhost", UDP_Port(server)) == 0);
    char msg[] = "hello world", buf[100];
    CU_ASSERT(UDP_Write(client, &to, msg, sizeof(msg)) == sizeof(msg));
    CU_ASSERT(UDP_Read(server, &from, buf, sizeof(buf)) == sizeof(msg));
    CU_ASSERT_STRING_EQUAL(buf, "hello world");
    CU_ASSERT(from.sin_family == AF_INET);
    CU_ASSERT(ntohs(from.sin_port) == UDP_Port(client));
    char reply[] = "goodbye world";
    CU_ASSERT(UDP_Write(server, &from, reply, sizeof(reply)) == sizeof(reply));
    CU_ASSERT(UDP_Read(client, &back, buf, sizeof(buf)) == sizeof(reply));
    CU_ASSERT_STRING_EQUAL(buf, "goodbye world");
    CU_ASSERT(ntohs(back.sin_port) == UDP_Port(server));
    CU_ASSERT(UDP_Close(server) == 0);
    CU_ASSERT(UDP_Close(client) == 0);
}

/* Port 0 gives distinct ephemeral ports; a busy port fails clearly. */
static void test_open_ephemeral(void)
{
    int a = UDP_Open(0), b = UDP_Open(0);
    CU_ASSERT_FATAL(a >= 0 && b >= 0);
    CU_ASSERT(UDP_Port(a) > 0);
    CU_ASSERT(UDP_Port(b) > 0);
    CU_ASSERT(UDP_Port(a) != UDP_Port(b));
    errno = 0;
    CU_ASSERT(UDP_Open(UDP_Port(a)) == -1);
    CU_ASSERT(errno == EADDRINUSE);
    UDP_Close(a);
    UDP_Close(b);
    errno = 0;
    CU_ASSERT(UDP_Port(-1) == -1 && errno == EBADF);
}

/* Ports outside 0..65535 and unknown families are refused, never 0. */
static void test_open_bad_arguments(void)
{
    errno = 0;
    CU_ASSERT(UDP_Open(-1) == -1 && errno == EINVAL);
    errno = 0;
    CU_ASSERT(UDP_Open(70000) == -1 && errno == EINVAL);
    errno = 0;
    CU_ASSERT(UDP_OpenDual(65536, AF_INET) == -1 && errno == EINVAL);
    errno = 0;
    CU_ASSERT(UDP_OpenDual(0, AF_UNIX) == -1 && errno == EAFNOSUPPORT);
    errno = 0;
    CU_ASSERT(UDP_Close(-1) == -1 && errno == EBADF);
}

static void test_fill_sockaddr(void)
{
    struct sockaddr_in a;
    memset(&a, 0x5a, sizeof(a));
    CU_ASSERT(UDP_FillSockAddr(&a, NULL, 4242) == 0);
    CU_ASSERT(a.sin_family == AF_INET);
    CU_ASSERT(a.sin_addr.s_addr == htonl(INADDR_ANY));
    CU_ASSERT(ntohs(a.sin_port) == 4242);
    CU_ASSERT(UDP_FillSockAddr(&a, "127.0.0.1", 7) == 0);
    CU_ASSERT(a.sin_addr.s_addr == htonl(INADDR_LOOPBACK));
    /* Names that fail without asking a DNS server, so the test is fast
     * everywhere. */
    errno = 0;
    CU_ASSERT(UDP_FillSockAddr(&a, "999.1.1.1", 7) == -1);
    CU_ASSERT(errno == EHOSTUNREACH);
    errno = 0;
    CU_ASSERT(UDP_FillSockAddr(&a, "bad host!", 7) == -1);
    CU_ASSERT(errno == EHOSTUNREACH);
    errno = 0;
    CU_ASSERT(UDP_FillSockAddr(NULL, NULL, 7) == -1 && errno == EINVAL);
    errno = 0;
    CU_ASSERT(UDP_FillSockAddr(&a, NULL, -1) == -1 && errno == EINVAL);
    char x = 0;
    errno = 0;
    CU_ASSERT(UDP_Write(0, NULL, &x, 1) == -1 && errno == EINVAL);
}

/* ------------------------------------------------------------------------ */
/* Timeouts                                                                  */
/* ------------------------------------------------------------------------ */

/* A 200 ms timeout waits 200 ms, asleep: under 20 ms of CPU. */
static void test_timeout_sleeps(void)
{
    int fd = UDP_Open(0);
    CU_ASSERT_FATAL(fd >= 0);
    char buf[16];
    struct sockaddr_in from;
    uint64_t c0 = cpu_us(), t0 = mono_us();
    errno = 0;
    int r = UDP_ReadTimeout(fd, &from, buf, sizeof(buf), 200);
    int e = errno;
    uint64_t t1 = mono_us(), c1 = cpu_us();
    CU_ASSERT(r == -1);
    CU_ASSERT(e == ETIMEDOUT);
    CU_ASSERT(t1 - t0 >= 200000);
    CU_ASSERT(t1 - t0 < 1000000);
    CU_ASSERT(c1 - c0 < 20000);
    UDP_Close(fd);
}

/* Timeout 0 polls once; data already there is returned at once. */
static void test_timeout_zero_and_ready(void)
{
    int a = UDP_Open(0), b = UDP_Open(0);
    CU_ASSERT_FATAL(a >= 0 && b >= 0);
    char buf[16];
    struct udp_msg m = {.buf = buf, .len = sizeof(buf)};
    errno = 0;
    CU_ASSERT(UDP_RecvFrom(a, buf, sizeof(buf), NULL, 0) == -1);
    CU_ASSERT(errno == ETIMEDOUT);
    errno = 0;
    CU_ASSERT(UDP_RecvMany(a, &m, 1, 0) == -1 && errno == ETIMEDOUT);
    struct udp_addr to = loop_to(a);
    CU_ASSERT(UDP_SendTo(b, "abc", 3, &to) == 3);
    struct sockaddr_in from;
    CU_ASSERT(UDP_ReadTimeout(a, &from, buf, sizeof(buf), 1000) == 3);
    CU_ASSERT(ntohs(from.sin_port) == UDP_Port(b));
    /* A datagram longer than the buffer is cut short, as recvfrom does. */
    CU_ASSERT(UDP_SendTo(b, "abcdef", 6, &to) == 6);
    CU_ASSERT(UDP_RecvFrom(a, buf, 4, NULL, 1000) == 4);
    UDP_Close(a);
    UDP_Close(b);
}

/* A blocking read ends at the socket's blocking timeout (the kernel's
 * tick may make it late, never early), asleep; 0 turns the timeout off
 * again, and a datagram that is there is returned at once. */
static void test_blocking_timeout(void)
{
    int a = UDP_OpenDual(0, AF_UNSPEC), b = UDP_Open(0);
    CU_ASSERT_FATAL(a >= 0 && b >= 0);
    CU_ASSERT(UDP_SetBlockingTimeout(a, -1) == -1 && errno == EINVAL);
    CU_ASSERT_FATAL(UDP_SetBlockingTimeout(a, 100000) == 0);
    char buf[16];
    struct udp_msg m[4];
    for (int i = 0; i < 4; i++)
        m[i] = (struct udp_msg){.buf = buf, .len = sizeof(buf)};
    uint64_t c0 = cpu_us(), t0 = mono_us();
    errno = 0;
    int r = UDP_RecvFrom(a, buf, sizeof(buf), NULL, -1);
    int e = errno;
    uint64_t t1 = mono_us();
    CU_ASSERT(r == -1 && e == ETIMEDOUT);
    CU_ASSERT(t1 - t0 >= 90000 && t1 - t0 < 1000000);
    errno = 0;
    r = UDP_RecvMany(a, m, 4, -1);
    e = errno;
    uint64_t t2 = mono_us(), c2 = cpu_us();
    CU_ASSERT(r == -1 && e == ETIMEDOUT);
    CU_ASSERT(t2 - t1 >= 90000 && t2 - t1 < 1000000);
    CU_ASSERT(c2 - c0 < 20000);
    struct udp_addr to;
    CU_ASSERT_FATAL(UDP_Resolve("127.0.0.1", UDP_Port(a), AF_INET, &to) == 0);
    CU_ASSERT(UDP_SendTo(b, "abc", 3, &to) == 3);
    CU_ASSERT(UDP_SendTo(b, "de", 2, &to) == 2);
    /* Both are taken by one blocking batch receive. */
    CU_ASSERT(UDP_RecvMany(a, m, 4, -1) == 2);
    CU_ASSERT(m[0].len == 3 && m[1].len == 2);
    CU_ASSERT(UDP_SetBlockingTimeout(a, 0) == 0);
    CU_ASSERT(UDP_SendTo(b, "f", 1, &to) == 1);
    CU_ASSERT(UDP_RecvFrom(a, buf, sizeof(buf), NULL, -1) == 1);
    UDP_Close(a);
    UDP_Close(b);
}

/* What one thread's UDP_Wake does to another blocked reading. */
struct blocked_reader {
    int fd, got, is_wake;
    size_t len;
};

static void *read_blocked(void *arg)
{
    struct blocked_reader *br = arg;
    char buf[16];
    struct udp_msg m = {.buf = buf, .len = sizeof(buf)};
    br->got = UDP_RecvMany(br->fd, &m, 1, -1);
    br->len = m.len;
    br->is_wake = br->got == 1 && UDP_IsWake(br->fd, &m);
    return NULL;
}

/* UDP_Wake ends a blocking read with no timeout, on an IPv4 and on a
 * dual-stack socket, with no faults and through faults that drop
 * everything; an empty
 * datagram from another socket is not taken for a wake-up. */
static void test_wake(void)
{
    int families[] = {AF_INET, AF_UNSPEC};
    for (int i = 0; i < 4; i++) {
        int fd = UDP_OpenDual(0, families[i % 2]);
        CU_ASSERT_FATAL(fd >= 0);
        if (i >= 2) /* the read waits in poll, for the faults' sake */
            CU_ASSERT(UDP_SetFaults(fd, "drop=1", NULL, 0) == 0);
        struct blocked_reader br = {.fd = fd, .got = -2};
        pthread_t t;
        CU_ASSERT_FATAL(pthread_create(&t, NULL, read_blocked, &br) == 0);
        CU_ASSERT(UDP_Wake(fd) == 0);
        pthread_join(t, NULL);
        CU_ASSERT(br.got == 1 && br.len == 0 && br.is_wake);
        UDP_Close(fd);
    }
    int a = UDP_Open(0), b = UDP_Open(0);
    CU_ASSERT_FATAL(a >= 0 && b >= 0);
    struct udp_addr to = loop_to(a);
    CU_ASSERT(UDP_SendTo(b, "", 0, &to) == 0);
    char buf[4];
    struct udp_msg m = {.buf = buf, .len = sizeof(buf)};
    CU_ASSERT(UDP_RecvMany(a, &m, 1, 1000) == 1 && m.len == 0);
    CU_ASSERT(!UDP_IsWake(a, &m));
    UDP_Close(a);
    UDP_Close(b);
}

/* ------------------------------------------------------------------------ */
/* Dual stack                                                                */
/* ------------------------------------------------------------------------ */

/* True when the host can bind ::1; otherwise says why it is skipping. */
static int have_ipv6(const char *test)
{
    int fd = UDP_OpenDual(0, AF_INET6);
    if (fd < 0) {
        printf("\n  skipping %s: no IPv6 on this host (%s)\n", test,
               strerror(errno));
        return 0;
    }
    struct udp_addr self;
    CU_ASSERT(UDP_Resolve(NULL, UDP_Port(fd), AF_INET6, &self) == 0);
    int ok = UDP_SendTo(fd, "x", 1, &self) == 1;
    char c;
    ok = ok && UDP_RecvFrom(fd, &c, 1, NULL, 500) == 1;
    UDP_Close(fd);
    if (!ok)
        printf("\n  skipping %s: ::1 does not answer\n", test);
    return ok;
}

/* An IPv6 dual-stack socket and an IPv4 socket talk both ways; the v4
 * sender is reported as plain IPv4. */
static void test_dual_stack_v4_peer(void)
{
    if (!have_ipv6("dual stack"))
        return;
    int v6 = UDP_OpenDual(0, AF_INET6), v4 = UDP_Open(0);
    CU_ASSERT_FATAL(v6 >= 0 && v4 >= 0);
    struct udp_addr to4, src;
    CU_ASSERT(UDP_Resolve("127.0.0.1", UDP_Port(v4), AF_INET, &to4) == 0);
    CU_ASSERT(UDP_SendTo(v6, "ping", 4, &to4) == 4);
    struct sockaddr_in from;
    char buf[16], text[64], want[64];
    CU_ASSERT(UDP_ReadTimeout(v4, &from, buf, sizeof(buf), 1000) == 4);
    CU_ASSERT(from.sin_family == AF_INET);
    CU_ASSERT(from.sin_addr.s_addr == htonl(INADDR_LOOPBACK));
    CU_ASSERT(ntohs(from.sin_port) == UDP_Port(v6));
    CU_ASSERT(UDP_Write(v4, &from, "pong", 4) == 4);
    CU_ASSERT(UDP_RecvFrom(v6, buf, sizeof(buf), &src, 1000) == 4);
    CU_ASSERT(memcmp(buf, "pong", 4) == 0);
    CU_ASSERT(src.ss.ss_family == AF_INET);
    CU_ASSERT(src.len == sizeof(struct sockaddr_in));
    snprintf(want, sizeof(want), "127.0.0.1:%d", UDP_Port(v4));
    CU_ASSERT_STRING_EQUAL(UDP_AddrString(&src, text, sizeof(text)), want);
    /* The textbook read on a dual-stack socket also sees IPv4. */
    CU_ASSERT(UDP_Write(v4, &from, "again", 5) == 5);
    CU_ASSERT(UDP_ReadTimeout(v6, &from, buf, sizeof(buf), 1000) == 5);
    CU_ASSERT(from.sin_family == AF_INET);
    CU_ASSERT(ntohs(from.sin_port) == UDP_Port(v4));
    int any = UDP_OpenDual(0, AF_UNSPEC);
    CU_ASSERT(any >= 0 && UDP_Port(any) > 0);
    UDP_Close(any);
    UDP_Close(v6);
    UDP_Close(v4);
}

/* Two IPv6 sockets over ::1, with batches on the way back. */
static void test_ipv6_loopback(void)
{
    if (!have_ipv6("::1 round trip"))
        return;
    int a = UDP_OpenDual(0, AF_INET6), b = UDP_OpenDual(0, AF_INET6);
    CU_ASSERT_FATAL(a >= 0 && b >= 0);
    struct udp_addr to, from;
    char buf[16], text[80], want[80];
    CU_ASSERT(UDP_Resolve("::1", UDP_Port(b), AF_INET6, &to) == 0);
    CU_ASSERT(UDP_SendTo(a, "six", 3, &to) == 3);
    CU_ASSERT(UDP_RecvFrom(b, buf, sizeof(buf), &from, 1000) == 3);
    CU_ASSERT(from.ss.ss_family == AF_INET6);
    snprintf(want, sizeof(want), "[::1]:%d", UDP_Port(a));
    CU_ASSERT_STRING_EQUAL(UDP_AddrString(&from, text, sizeof(text)), want);
    struct udp_msg m[2] = {{.buf = "one", .len = 3, .addr = from},
                           {.buf = "two", .len = 3, .addr = from}};
    CU_ASSERT(UDP_SendMany(b, m, 2) == 2);
    char r0[8], r1[8];
    struct udp_msg in[2] = {{.buf = r0, .len = sizeof(r0)},
                            {.buf = r1, .len = sizeof(r1)}};
    int got = UDP_RecvMany(a, in, 2, 1000);
    if (got == 1)
        got += UDP_RecvMany(a, in + 1, 1, 1000);
    CU_ASSERT(got == 2);
    CU_ASSERT(in[0].len == 3 && memcmp(r0, "one", 3) == 0);
    CU_ASSERT(in[1].addr.ss.ss_family == AF_INET6);
    UDP_Close(a);
    UDP_Close(b);
}

static void test_resolve_and_format(void)
{
    struct udp_addr a;
    char text[64];
    CU_ASSERT(UDP_Resolve(NULL, 80, AF_INET, &a) == 0);
    CU_ASSERT_STRING_EQUAL(UDP_AddrString(&a, text, sizeof(text)),
                           "127.0.0.1:80");
    CU_ASSERT(UDP_Resolve(NULL, 80, AF_UNSPEC, &a) == 0);
    CU_ASSERT_STRING_EQUAL(UDP_AddrString(&a, text, sizeof(text)),
                           "127.0.0.1:80");
    CU_ASSERT(UDP_Resolve(NULL, 443, AF_INET6, &a) == 0);
    CU_ASSERT_STRING_EQUAL(UDP_AddrString(&a, text, sizeof(text)), "[::1]:443");
    CU_ASSERT(UDP_Resolve("10.1.2.3", 9, AF_UNSPEC, &a) == 0);
    CU_ASSERT_STRING_EQUAL(UDP_AddrString(&a, text, sizeof(text)),
                           "10.1.2.3:9");
    CU_ASSERT(UDP_Resolve("localhost", 9, AF_INET, &a) == 0);
    CU_ASSERT(a.ss.ss_family == AF_INET);
    /* Truncation keeps the terminator. */
    CU_ASSERT_STRING_EQUAL(UDP_AddrString(&a, text, 4), "127");
    CU_ASSERT_STRING_EQUAL(UDP_AddrString(NULL, text, sizeof(text)), "?");
    errno = 0;
    CU_ASSERT(UDP_Resolve(NULL, 70000, AF_INET, &a) == -1 && errno == EINVAL);
    errno = 0;
    CU_ASSERT(UDP_Resolve(NULL, 1, AF_UNIX, &a) == -1 && errno == EINVAL);
    errno = 0;
    CU_ASSERT(UDP_Resolve(NULL, 1, AF_INET, NULL) == -1 && errno == EINVAL);
    errno = 0;
    CU_ASSERT(UDP_Resolve("999.1.1.1", 1, AF_INET, &a) == -1);
    CU_ASSERT(errno == EHOSTUNREACH);
}

/* ------------------------------------------------------------------------ */
/* Batches                                                                   */
/* ------------------------------------------------------------------------ */

static void test_batches(void)
{
    enum { N = 64 };
    int tx = UDP_Open(0), rx = open_big();
    CU_ASSERT_FATAL(tx >= 0);
    struct udp_addr to = loop_to(rx);
    static uint32_t out[N], in[N];
    struct udp_msg msgs[N];
    for (int i = 0; i < N; i++) {
        out[i] = 1000u + (uint32_t)i;
        msgs[i] = (struct udp_msg){.buf = &out[i], .len = 4, .addr = to};
    }
    CU_ASSERT(UDP_SendMany(tx, msgs, N) == N);
    int got = 0;
    while (got < N) {
        for (int i = got; i < N; i++)
            msgs[i] = (struct udp_msg){.buf = &in[i], .len = sizeof(in[i])};
        int r = UDP_RecvMany(rx, msgs + got, N - got, 1000);
        if (r <= 0)
            break;
        for (int i = got; i < got + r; i++) {
            CU_ASSERT(msgs[i].len == 4);
            CU_ASSERT(msgs[i].addr.ss.ss_family == AF_INET);
        }
        got += r;
    }
    CU_ASSERT(got == N);
    for (int i = 0; i < N; i++)
        CU_ASSERT(in[i] == 1000u + (uint32_t)i);
    errno = 0;
    CU_ASSERT(UDP_SendMany(tx, msgs, 0) == -1 && errno == EINVAL);
    errno = 0;
    CU_ASSERT(UDP_RecvMany(rx, NULL, 1, 0) == -1 && errno == EINVAL);
    UDP_Close(tx);
    UDP_Close(rx);
}

/* An empty datagram at the end of a run of equal ones to one peer (which
 * go out as one segmented send) is sent, and counted only once sent. */
static void test_batch_empty_last(void)
{
    int tx = UDP_Open(0), rx = open_big();
    CU_ASSERT_FATAL(tx >= 0);
    struct udp_addr to = loop_to(rx);
    static char out[3][100];
    struct udp_msg msgs[3] = {{.buf = out[0], .len = 100, .addr = to},
                              {.buf = out[1], .len = 100, .addr = to},
                              {.buf = out[2], .len = 0, .addr = to}};
    CU_ASSERT(UDP_SendMany(tx, msgs, 3) == 3);
    size_t lens[3] = {0};
    int got = 0;
    while (got < 3) {
        char in[128];
        struct udp_msg m = {.buf = in, .len = sizeof(in)};
        if (UDP_RecvMany(rx, &m, 1, 1000) != 1)
            break;
        lens[got++] = m.len;
    }
    CU_ASSERT(got == 3);
    CU_ASSERT(lens[0] == 100 && lens[1] == 100 && lens[2] == 0);
    UDP_Close(tx);
    UDP_Close(rx);
}

/* A descriptor closed with close() rather than UDP_Close, and reused by a
 * socket of another family, still sends: the library's memory of the old
 * socket's family is corrected, not trusted. */
static void test_reused_descriptor(void)
{
    int rx = UDP_Open(0);
    CU_ASSERT_FATAL(rx >= 0);
    struct sockaddr_in to;
    CU_ASSERT_FATAL(UDP_FillSockAddr(&to, "127.0.0.1", UDP_Port(rx)) == 0);
    for (int round = 0; round < 2; round++) {
        /* Round 0: a dual-stack socket replaced by a plain IPv4 one;
         * round 1: the other way round. */
        int fd = round == 0 ? UDP_OpenDual(0, AF_INET6)
                            : UDP_OpenDual(0, AF_INET);
        if (fd < 0 && round == 0) {
            printf("\n  skipping the IPv6 round: no IPv6 socket here\n");
            continue;
        }
        CU_ASSERT_FATAL(fd >= 0);
        CU_ASSERT(UDP_Write(fd, &to, "a", 1) == 1);
        close(fd);
        int again = socket(round == 0 ? AF_INET : AF_INET6, SOCK_DGRAM, 0);
        if (again != fd) { /* the number went elsewhere: nothing to test */
            if (again >= 0)
                close(again);
            continue;
        }
        if (round == 1) {
            int off = 0; /* dual stack, whatever the system's default */
            setsockopt(again, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
        }
        CU_ASSERT(UDP_Write(again, &to, "b", 1) == 1);
        struct udp_addr ua = loop_to(rx);
        CU_ASSERT(UDP_SendTo(again, "c", 1, &ua) == 1);
        close(again);
        char buf[4];
        for (int k = 0; k < 3; k++)
            CU_ASSERT(UDP_ReadTimeout(rx, NULL, buf, sizeof(buf), 1000) == 1);
    }
    UDP_Close(rx);
}

/* A batch on a faulty socket meets the faults datagram by datagram. */
static void test_batch_through_faults(void)
{
    enum { N = 10 };
    int tx = UDP_Open(0), rx = open_big();
    CU_ASSERT_FATAL(tx >= 0);
    CU_ASSERT(UDP_SetFaults(tx, "dup=1", NULL, 0) == 0);
    struct udp_addr to = loop_to(rx);
    struct udp_msg msgs[N];
    char c[N] = {0};
    for (int i = 0; i < N; i++)
        msgs[i] = (struct udp_msg){.buf = &c[i], .len = 1, .addr = to};
    CU_ASSERT(UDP_SendMany(tx, msgs, N) == N);
    int got = 0, r;
    while (got < 2 * N && (r = UDP_RecvMany(rx, msgs, N, 500)) > 0)
        got += r;
    CU_ASSERT(got == 2 * N);
    struct udp_fault_stats st;
    CU_ASSERT(UDP_FaultStats(tx, &st) == 0);
    CU_ASSERT(st.sent == N && st.duplicated == N);
    UDP_Close(tx);
    UDP_Close(rx);
}

/* ------------------------------------------------------------------------ */
/* Fault specifications                                                      */
/* ------------------------------------------------------------------------ */

static void test_parse_good(void)
{
    struct udp_fault_spec f;
    char err[200];
    CU_ASSERT(udp_fault_parse(NULL, &f, err, sizeof(err)) == 0);
    CU_ASSERT(!udp_fault_active(&f) && f.seed == 1);
    CU_ASSERT(udp_fault_parse("  ", &f, err, sizeof(err)) == 0);
    CU_ASSERT(!udp_fault_active(&f));
    CU_ASSERT(udp_fault_parse("drop=0.1,dup=0.05,reorder=0.1,corrupt=0.01,"
                              "delay=20ms,seed=42",
                              &f, err, sizeof(err)) == 0);
    CU_ASSERT_DOUBLE_EQUAL(f.drop, 0.1, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(f.dup, 0.05, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(f.reorder, 0.1, 1e-12);
    CU_ASSERT_DOUBLE_EQUAL(f.corrupt, 0.01, 1e-12);
    CU_ASSERT(f.delay_us == 20000 && f.jitter_us == 0 && f.seed == 42);
    CU_ASSERT(udp_fault_parse(" drop = 10% , jitter = 1.5ms , delay=2 ", &f,
                              err, sizeof(err)) == 0);
    CU_ASSERT_DOUBLE_EQUAL(f.drop, 0.1, 1e-12);
    CU_ASSERT(f.jitter_us == 1500 && f.delay_us == 2000 && f.seed == 1);
    CU_ASSERT(udp_fault_parse("delay=1s,jitter=250us,seed=18446744073709551615",
                              &f, err, sizeof(err)) == 0);
    CU_ASSERT(f.delay_us == 1000000 && f.jitter_us == 250);
    CU_ASSERT(f.seed == UINT64_MAX);
    CU_ASSERT(udp_fault_parse("drop=1,dup=0,corrupt=100%", &f, NULL, 0) == 0);
    CU_ASSERT(f.drop == 1.0 && f.dup == 0.0 && f.corrupt == 1.0);
    CU_ASSERT(udp_fault_parse("seed=0", &f, NULL, 0) == 0);
    CU_ASSERT(!udp_fault_active(&f) && f.seed == 0);
}

/* Malformed specifications, and what the message must name. */
static const struct {
    const char *spec, *named;
} bad_specs[] = {
    {"dorp=0.1", "unknown fault 'dorp'"},
    {"drop", "'drop'"},
    {"drop=abc", "'abc'"},
    {"drop=1.5", "drop=1.5"},
    {"drop=150%", "drop=150%"},
    {"drop=-0.1", "'-0.1'"},
    {"drop=.5", "'.5'"},
    {"drop=1.", "'1.'"},
    {"drop=0.1 0.2", "'0.1 0.2'"},
    {"drop=0.1,drop=0.2", "'drop' is given twice"},
    {"delay=5min", "'5min'"},
    {"delay=4000s", "delay=4000s"},
    {"jitter=", "'jitter'"},
    {"seed=-1", "'-1'"},
    {"seed=0x10", "'0x10'"},
    {"seed=18446744073709551616", "18446744073709551616"},
    {"drop=0.1,,dup=0.1", "item 2 is empty"},
    {"drop=0.1,", "item 2 is empty"},
    {",drop=0.1", "item 1 is empty"},
    {"=0.1", "unknown fault ''"},
};

/* Each malformed form fails with EINVAL, a message naming the bad part, the
 * output untouched, and the socket's previous faults still in force. */
static void test_parse_bad(void)
{
    int fd = UDP_Open(0), rx = UDP_Open(0);
    CU_ASSERT_FATAL(fd >= 0 && rx >= 0);
    struct udp_addr to = loop_to(rx);
    CU_ASSERT(UDP_SetFaults(fd, "drop=1", NULL, 0) == 0);
    for (size_t i = 0; i < sizeof(bad_specs) / sizeof(bad_specs[0]); i++) {
        char err[200] = "";
        struct udp_fault_spec f;
        memset(&f, 0x77, sizeof(f));
        errno = 0;
        CU_ASSERT(udp_fault_parse(bad_specs[i].spec, &f, err, sizeof(err)) ==
                  -1);
        CU_ASSERT(errno == EINVAL);
        CU_ASSERT(f.seed == 0x7777777777777777ull);
        errno = 0;
        CU_ASSERT(UDP_SetFaults(fd, bad_specs[i].spec, err, sizeof(err)) == -1);
        CU_ASSERT(errno == EINVAL);
        if (strstr(err, bad_specs[i].named) == NULL) {
            printf("\n  '%s': message '%s' does not name '%s'\n",
                   bad_specs[i].spec, err, bad_specs[i].named);
            CU_FAIL("message does not name the bad part");
        }
    }
    /* drop=1 is still in force: nothing gets through, everything counted. */
    CU_ASSERT(UDP_SendTo(fd, "x", 1, &to) == 1);
    char c;
    CU_ASSERT(UDP_RecvFrom(rx, &c, 1, NULL, 20) == -1 && errno == ETIMEDOUT);
    struct udp_fault_stats st;
    CU_ASSERT(UDP_FaultStats(fd, &st) == 0);
    CU_ASSERT(st.sent == 1 && st.dropped == 1);
    /* A message is cut to fit and always terminated. */
    char small[8];
    CU_ASSERT(UDP_SetFaults(fd, "dorp=1", small, sizeof(small)) == -1);
    CU_ASSERT(strlen(small) == sizeof(small) - 1);
    errno = 0;
    CU_ASSERT(UDP_SetFaults(-1, "drop=1", NULL, 0) == -1 && errno == EBADF);
    UDP_Close(fd);
    UDP_Close(rx);
}

/* ------------------------------------------------------------------------ */
/* Fault behaviour                                                           */
/* ------------------------------------------------------------------------ */

enum { RATE_N = 20000 };

static void test_drop_rate(void)
{
    struct udp_fault_stats st;
    struct seen s;
    run_faults("drop=0.1", RATE_N, &st, &s);
    CU_ASSERT(st.sent == RATE_N);
    CU_ASSERT(near_binomial(st.dropped, RATE_N, 0.1));
    CU_ASSERT(s.received == st.sent - st.dropped);
    CU_ASSERT(s.dups == 0 && s.corrupt == 0 && s.inversions == 0);
    CU_ASSERT(st.duplicated == 0 && st.corrupted == 0 && st.reordered == 0);
    free(s.got);
}

static void test_dup_rate(void)
{
    struct udp_fault_stats st;
    struct seen s;
    run_faults("dup=0.05", RATE_N, &st, &s);
    CU_ASSERT(near_binomial(st.duplicated, RATE_N, 0.05));
    CU_ASSERT(s.received == RATE_N + st.duplicated);
    CU_ASSERT(s.dups == st.duplicated);
    CU_ASSERT(st.dropped == 0);
    free(s.got);
}

/* Every corrupted datagram differs from the original in exactly one bit. */
static void test_corrupt_rate(void)
{
    struct udp_fault_stats st;
    struct seen s;
    run_faults("corrupt=0.02", RATE_N, &st, &s);
    CU_ASSERT(near_binomial(st.corrupted, RATE_N, 0.02));
    CU_ASSERT(s.received == RATE_N);
    CU_ASSERT(s.corrupt == st.corrupted);
    CU_ASSERT(s.one_bit == s.corrupt);
    CU_ASSERT(s.corrupt > 0);
    free(s.got);
}

/* Reordered datagrams arrive after a later one; none is lost. */
static void test_reorder_rate(void)
{
    struct udp_fault_stats st;
    struct seen s;
    run_faults("reorder=0.1", RATE_N, &st, &s);
    CU_ASSERT(near_binomial(st.reordered, RATE_N, 0.1));
    CU_ASSERT(s.received == RATE_N);
    CU_ASSERT(s.dups == 0);
    /* A reordered datagram at the end of a burst, or one whose successor
     * came more than 5 ms later, goes out in order. */
    CU_ASSERT(s.inversions > st.reordered / 2);
    CU_ASSERT(s.inversions <= st.reordered);
    /* It leaves right after the next datagram, not at the end of the burst:
     * run-away gaps need five reorders in a row or a 5 ms stall. */
    CU_ASSERT(s.near >= s.inversions * 9 / 10);
    free(s.got);
}

/* With nothing sent after it, a reordered datagram leaves within 5 ms. */
static void test_reorder_bounded_wait(void)
{
    int tx = UDP_Open(0), rx = UDP_Open(0);
    CU_ASSERT_FATAL(tx >= 0 && rx >= 0);
    CU_ASSERT(UDP_SetFaults(tx, "reorder=1", NULL, 0) == 0);
    struct udp_addr to = loop_to(rx);
    CU_ASSERT(UDP_SendTo(tx, "r", 1, &to) == 1);
    int next = UDP_FaultsNextMs(tx);
    CU_ASSERT(next >= 0 && next <= 5);
    char c;
    CU_ASSERT(UDP_RecvFrom(rx, &c, 1, NULL, 0) == -1); /* still held */
    CU_ASSERT(UDP_ReadTimeout(tx, NULL, &c, 1, 20) == -1 && errno == ETIMEDOUT);
    CU_ASSERT(UDP_RecvFrom(rx, &c, 1, NULL, 500) == 1);
    CU_ASSERT(UDP_FaultsNextMs(tx) == -1);
    UDP_Close(tx);
    UDP_Close(rx);
}

struct catcher {
    int fd, got;
    uint64_t at_us;
};

static void *catch_one(void *arg)
{
    struct catcher *c = arg;
    char buf[16];
    c->got = UDP_ReadTimeout(c->fd, NULL, buf, sizeof(buf), 3000);
    c->at_us = mono_us();
    return NULL;
}

/* Waits (up to 2 s, yielding) until the one thread besides this one is
 * asleep in the kernel, as /proc/self/task says.  Returns 1, or 0 when it
 * could not tell. */
static int other_thread_asleep(void)
{
    char self[32];
    snprintf(self, sizeof(self), "%ld", (long)getpid());
    uint64_t end = mono_us() + 2000000;
    while (mono_us() < end) {
        DIR *d = opendir("/proc/self/task");
        if (d == NULL)
            return 0;
        int asleep = 0;
        struct dirent *e;
        while ((e = readdir(d)) != NULL) {
            if (e->d_name[0] == '.' || strcmp(e->d_name, self) == 0)
                continue;
            char path[300], line[256];
            snprintf(path, sizeof(path), "/proc/self/task/%s/stat", e->d_name);
            FILE *f = fopen(path, "r");
            if (f == NULL)
                continue;
            const char *state = NULL;
            if (fgets(line, sizeof(line), f) && (state = strrchr(line, ')')))
                asleep = state[1] == ' ' && state[2] == 'S';
            fclose(f);
        }
        closedir(d);
        if (asleep)
            return 1;
        sched_yield();
    }
    return 0;
}

struct slow_reader {
    int fd, got;
};

static void *read_slowly(void *arg)
{
    struct slow_reader *r = arg;
    char buf[8];
    r->got = UDP_ReadTimeout(r->fd, NULL, buf, sizeof(buf), 5000);
    return NULL;
}

/* A thread reads on a socket with faults that hold nothing back; then
 * another thread turns delay on and sends.  The reader, asleep in poll
 * with a long timeout, still lets the held datagram out on time. */
static void test_delay_turned_on_under_a_reader(void)
{
    int s = UDP_Open(0), peer = UDP_Open(0);
    CU_ASSERT_FATAL(s >= 0 && peer >= 0);
    CU_ASSERT(UDP_SetFaults(s, "corrupt=0.000001", NULL, 0) == 0);
    struct slow_reader r = {.fd = s, .got = -2};
    pthread_t t;
    CU_ASSERT_FATAL(pthread_create(&t, NULL, read_slowly, &r) == 0);
    CU_ASSERT_FATAL(other_thread_asleep()); /* the reader is in its wait */
    char b[8];
    CU_ASSERT(UDP_SetFaults(s, "delay=20ms", NULL, 0) == 0);
    struct udp_addr to = loop_to(peer);
    uint64_t t0 = mono_us();
    CU_ASSERT(UDP_SendTo(s, "d", 1, &to) == 1);
    CU_ASSERT(UDP_RecvFrom(peer, b, sizeof(b), NULL, 2000) == 1);
    uint64_t took = mono_us() - t0;
    CU_ASSERT(took >= 20000 && took < 1000000);
    struct udp_addr back = loop_to(s);
    CU_ASSERT(UDP_SendTo(peer, "e", 1, &back) == 1); /* ends the read */
    pthread_join(t, NULL);
    CU_ASSERT(r.got == 1);
    UDP_Close(s);
    UDP_Close(peer);
}

/* A delayed datagram arrives no earlier than its delay, and while its sender
 * sleeps in a timed read on its own socket. */
static void test_delay(void)
{
    int tx = UDP_Open(0), rx = UDP_Open(0);
    CU_ASSERT_FATAL(tx >= 0 && rx >= 0);
    CU_ASSERT(UDP_SetFaults(tx, "delay=50ms", NULL, 0) == 0);
    struct udp_addr to = loop_to(rx);
    struct catcher c = {.fd = rx, .got = -2, .at_us = 0};
    pthread_t th;
    CU_ASSERT_FATAL(pthread_create(&th, NULL, catch_one, &c) == 0);
    uint64_t t0 = mono_us();
    CU_ASSERT(UDP_SendTo(tx, "late", 4, &to) == 4);
    int next = UDP_FaultsNextMs(tx);
    CU_ASSERT(next > 0 && next <= 50);
    char buf[8];
    CU_ASSERT(UDP_ReadTimeout(tx, NULL, buf, sizeof(buf), 150) == -1);
    CU_ASSERT(errno == ETIMEDOUT);
    uint64_t t1 = mono_us();
    pthread_join(th, NULL);
    CU_ASSERT(c.got == 4);
    CU_ASSERT(c.at_us >= t0 + 50000);
    CU_ASSERT(c.at_us <= t1);
    struct udp_fault_stats st;
    CU_ASSERT(UDP_FaultStats(tx, &st) == 0);
    CU_ASSERT(st.sent == 1 && st.delayed == 1);
    CU_ASSERT(UDP_FaultsNextMs(tx) == -1);
    UDP_Close(tx);
    UDP_Close(rx);
}

/* Jitter spreads datagrams sent together, so they arrive out of order. */
static void test_jitter(void)
{
    enum { N = 50 };
    int tx = UDP_Open(0), rx = open_big();
    CU_ASSERT_FATAL(tx >= 0);
    CU_ASSERT(UDP_SetFaults(tx, "jitter=20ms,seed=3", NULL, 0) == 0);
    struct udp_addr to = loop_to(rx);
    struct seen s = {.highest = -1, .count = N, .got = calloc(N, 1)};
    CU_ASSERT_FATAL(s.got != NULL);
    for (int i = 0; i < N; i++) {
        unsigned char b[PAYLOAD];
        payload_make(b, (uint64_t)i);
        CU_ASSERT(UDP_SendTo(tx, b, sizeof(b), &to) == PAYLOAD);
    }
    char c;
    CU_ASSERT(UDP_ReadTimeout(tx, NULL, &c, 1, 40) == -1);
    drain(tx, rx, N, &s);
    CU_ASSERT(s.received == N);
    CU_ASSERT(s.inversions > 0);
    struct udp_fault_stats st;
    CU_ASSERT(UDP_FaultStats(tx, &st) == 0);
    CU_ASSERT(st.delayed >= N - 2 && st.delayed <= N);
    free(s.got);
    UDP_Close(tx);
    UDP_Close(rx);
}

/* Sends n numbered datagrams with the spec, all at once, and records the
 * payloads in arrival order. */
static size_t record_run(const char *spec, int n, unsigned char (*out)[PAYLOAD],
                         size_t cap, struct udp_fault_stats *st)
{
    int tx = open_big(), rx = open_big();
    CU_ASSERT(UDP_SetFaults(tx, spec, NULL, 0) == 0);
    struct udp_addr to = loop_to(rx);
    for (int i = 0; i < n; i++) {
        unsigned char b[PAYLOAD];
        payload_make(b, (uint64_t)i);
        UDP_SendTo(tx, b, sizeof(b), &to);
    }
    UDP_FaultStats(tx, st);
    uint64_t expected = st->sent - st->dropped + st->duplicated;
    size_t got = 0;
    uint64_t give_up = mono_us() + 2000000;
    while (got < expected && got < cap && mono_us() < give_up) {
        UDP_Pump(tx);
        int r = UDP_RecvFrom(rx, out[got], PAYLOAD, NULL, 2);
        got += r == PAYLOAD;
    }
    UDP_Close(tx);
    UDP_Close(rx);
    return got;
}

/* The same seed and calls give the same faults and the same arrivals; a
 * different seed gives different ones. */
static void test_seed_determinism(void)
{
    enum { N = 500, CAP = 2 * N };
    static unsigned char a[CAP][PAYLOAD], b[CAP][PAYLOAD];
    const char *spec = "drop=0.1,dup=0.1,reorder=0.1,corrupt=0.05,seed=7";
    struct udp_fault_stats sa, sb, sc;
    size_t na = record_run(spec, N, a, CAP, &sa);
    size_t nb = record_run(spec, N, b, CAP, &sb);
    CU_ASSERT(memcmp(&sa, &sb, sizeof(sa)) == 0);
    CU_ASSERT(sa.dropped > 0 && sa.duplicated > 0 && sa.reordered > 0);
    /* The arrival order depends on time only if a send is preempted for more
     * than the 5 ms a reordered datagram may wait: try once more if so. */
    if (na != nb || memcmp(a, b, na * PAYLOAD) != 0)
        nb = record_run(spec, N, b, CAP, &sb);
    CU_ASSERT(na == nb);
    CU_ASSERT(na == sa.sent - sa.dropped + sa.duplicated);
    CU_ASSERT(memcmp(a, b, na * PAYLOAD) == 0);
    size_t nc = record_run("drop=0.1,dup=0.1,reorder=0.1,corrupt=0.05,seed=8",
                           N, b, CAP, &sc);
    CU_ASSERT(memcmp(&sa, &sc, sizeof(sa)) != 0);
    CU_ASSERT(na != nc || memcmp(a, b, na * PAYLOAD) != 0);
}

/* Runs UDP_Open(0) with UDP_FAULTS set, capturing what it prints. */
static int open_with_env(const char *value, char *printed, size_t cap)
{
    fflush(stderr);
    int saved = dup(2);
    FILE *tmp = tmpfile();
    CU_ASSERT_FATAL(saved >= 0 && tmp != NULL);
    dup2(fileno(tmp), 2);
    setenv("UDP_FAULTS", value, 1);
    errno = 0;
    int fd = UDP_Open(0);
    int e = errno;
    unsetenv("UDP_FAULTS");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    rewind(tmp);
    size_t n = fread(printed, 1, cap - 1, tmp);
    printed[n] = '\0';
    fclose(tmp);
    errno = e;
    return fd;
}

/* UDP_FAULTS applies at open; a malformed value fails the open. */
static void test_env_faults(void)
{
    char printed[300];
    int tx = open_with_env("drop=1, seed=5", printed, sizeof(printed));
    CU_ASSERT_FATAL(tx >= 0);
    CU_ASSERT(printed[0] == '\0');
    int rx = UDP_Open(0); /* opened after unsetenv: no faults */
    CU_ASSERT_FATAL(rx >= 0);
    struct udp_addr to = loop_to(rx);
    for (int i = 0; i < 10; i++)
        CU_ASSERT(UDP_SendTo(tx, "x", 1, &to) == 1);
    char c;
    CU_ASSERT(UDP_RecvFrom(rx, &c, 1, NULL, 20) == -1 && errno == ETIMEDOUT);
    struct udp_fault_stats st;
    CU_ASSERT(UDP_FaultStats(tx, &st) == 0 && st.dropped == 10);
    CU_ASSERT(UDP_FaultStats(rx, &st) == 0 && st.sent == 0);
    UDP_Close(tx);
    UDP_Close(rx);

    CU_ASSERT(open_with_env("drop=2", printed, sizeof(printed)) == -1);
    CU_ASSERT(errno == EINVAL);
    CU_ASSERT(strstr(printed, "UDP_FAULTS") != NULL);
    CU_ASSERT(strstr(printed, "drop=2") != NULL);
    CU_ASSERT(open_with_env("dorp=0.1", printed, sizeof(printed)) == -1);
    CU_ASSERT(errno == EINVAL);
    CU_ASSERT(strstr(printed, "unknown fault 'dorp'") != NULL);
    /* Blank means no faults. */
    tx = open_with_env(" ", printed, sizeof(printed));
    CU_ASSERT(tx >= 0);
    UDP_Close(tx);
}

/* Closing a socket sends what it holds, however long the delay. */
static void test_close_releases(void)
{
    int tx = UDP_Open(0), rx = UDP_Open(0);
    CU_ASSERT_FATAL(tx >= 0 && rx >= 0);
    CU_ASSERT(UDP_SetFaults(tx, "delay=10s", NULL, 0) == 0);
    struct udp_addr to = loop_to(rx);
    CU_ASSERT(UDP_SendTo(tx, "held", 4, &to) == 4);
    CU_ASSERT(UDP_FaultsNextMs(tx) > 9000);
    char buf[8];
    CU_ASSERT(UDP_RecvFrom(rx, buf, sizeof(buf), NULL, 0) == -1);
    CU_ASSERT(UDP_Close(tx) == 0);
    CU_ASSERT(UDP_RecvFrom(rx, buf, sizeof(buf), NULL, 1000) == 4);
    CU_ASSERT(memcmp(buf, "held", 4) == 0);
    UDP_Close(rx);
}

/* Turning faults off keeps the counters and lets held datagrams finish. */
static void test_faults_off(void)
{
    int tx = UDP_Open(0), rx = UDP_Open(0);
    CU_ASSERT_FATAL(tx >= 0 && rx >= 0);
    struct udp_fault_stats st;
    CU_ASSERT(UDP_FaultStats(tx, &st) == 0 && st.sent == 0);
    errno = 0;
    CU_ASSERT(UDP_FaultStats(-1, &st) == -1 && errno == EBADF);
    CU_ASSERT(UDP_FaultsNextMs(tx) == -1);
    CU_ASSERT(UDP_Pump(tx) == 0);
    CU_ASSERT(UDP_SetFaults(tx, "delay=30ms", NULL, 0) == 0);
    struct udp_addr to = loop_to(rx);
    CU_ASSERT(UDP_SendTo(tx, "a", 1, &to) == 1);
    CU_ASSERT(UDP_SetFaults(tx, "", NULL, 0) == 0);
    CU_ASSERT(UDP_SendTo(tx, "b", 1, &to) == 1);
    char c;
    CU_ASSERT(UDP_RecvFrom(rx, &c, 1, NULL, 500) == 1 && c == 'b');
    CU_ASSERT(UDP_ReadTimeout(tx, NULL, &c, 1, 60) == -1);
    CU_ASSERT(UDP_RecvFrom(rx, &c, 1, NULL, 500) == 1 && c == 'a');
    CU_ASSERT(UDP_FaultStats(tx, &st) == 0);
    CU_ASSERT(st.sent == 1 && st.delayed == 1);
    UDP_Close(tx);
    UDP_Close(rx);
}

/* ------------------------------------------------------------------------ */
/* Registration                                                              */
/* ------------------------------------------------------------------------ */

/* The suite must not inherit faults from whoever runs it. */
static int suite_init(void)
{
    unsetenv("UDP_FAULTS");
    return 0;
}

/* Segmented sends and coalesced receives: a run of equal datagrams goes
 * out as one (UDP_SEGMENT) and, with receive offload on, may come back as
 * one buffer; cut by .seg it gives back exactly the datagrams sent, in
 * order, each with its own contents.  Where the kernel cannot coalesce,
 * every buffer is one datagram (.seg 0) and the same checks hold. */
static void test_offloads(void)
{
    enum { N = 40, SIZE = 1000, LAST = 300 };
    int rx = UDP_Open(0), tx = UDP_Open(0);
    CU_ASSERT_FATAL(rx >= 0 && tx >= 0);
    int offload = UDP_ReceiveOffload(rx, 1) == 0;
    struct udp_addr to = loop_to(rx);
    static uint8_t out[N][SIZE];
    struct udp_msg m[N];
    for (int i = 0; i < N; i++) {
        memset(out[i], i + 1, SIZE);
        m[i] = (struct udp_msg){.buf = out[i], .len = i == N - 1 ? LAST : SIZE,
                                .addr = to};
    }
    CU_ASSERT_EQUAL(UDP_SendMany(tx, m, N), N);
    static uint8_t in[8][65536];
    int got = 0, bad = 0, coalesced = 0;
    while (got < N && !bad) {
        struct udp_msg r[8];
        for (int i = 0; i < 8; i++)
            r[i] = (struct udp_msg){.buf = in[i], .len = sizeof(in[i])};
        int n = UDP_RecvMany(rx, r, 8, 1000);
        if (n <= 0)
            break;
        for (int i = 0; i < n; i++) {
            size_t seg = r[i].seg ? r[i].seg : r[i].len;
            coalesced += r[i].seg != 0;
            for (size_t off = 0; off < r[i].len; off += seg, got++) {
                size_t part = r[i].len - off < seg ? r[i].len - off : seg;
                size_t want = got == N - 1 ? LAST : SIZE;
                bad |= got >= N || part != want ||
                       memcmp(in[i] + off, out[got], part) != 0;
            }
        }
    }
    CU_ASSERT_EQUAL(bad, 0);
    CU_ASSERT_EQUAL(got, N);
    if (!offload)
        CU_ASSERT_EQUAL(coalesced, 0);
    if (getenv("UDP_TEST_VERBOSE"))
        fprintf(stderr, "\n  offload %d: %d coalesced buffers\n", offload,
                coalesced);
    UDP_Close(rx);
    UDP_Close(tx);
}

int test_udp_register(void)
{
    static const struct {
        const char *name;
        void (*fn)(void);
    } tests[] = {
        {"textbook round trip", test_textbook_round_trip},
        {"ephemeral ports", test_open_ephemeral},
        {"bad open arguments", test_open_bad_arguments},
        {"UDP_FillSockAddr", test_fill_sockaddr},
        {"timeout sleeps", test_timeout_sleeps},
        {"timeout zero, data ready", test_timeout_zero_and_ready},
        {"blocking timeout", test_blocking_timeout},
        {"wake a blocked reader", test_wake},
        {"dual stack with an IPv4 peer", test_dual_stack_v4_peer},
        {"IPv6 loopback", test_ipv6_loopback},
        {"resolve and format", test_resolve_and_format},
        {"batches", test_batches},
        {"batch ending in an empty datagram", test_batch_empty_last},
        {"a descriptor reused after close()", test_reused_descriptor},
        {"batch through faults", test_batch_through_faults},
        {"fault spec: good forms", test_parse_good},
        {"fault spec: bad forms", test_parse_bad},
        {"drop rate", test_drop_rate},
        {"dup rate", test_dup_rate},
        {"corrupt rate", test_corrupt_rate},
        {"reorder rate", test_reorder_rate},
        {"reorder waits at most 5 ms", test_reorder_bounded_wait},
        {"delay", test_delay},
        {"delay turned on under a blocked reader",
         test_delay_turned_on_under_a_reader},
        {"jitter", test_jitter},
        {"seed determinism", test_seed_determinism},
        {"UDP_FAULTS at open", test_env_faults},
        {"close releases held datagrams", test_close_releases},
        {"faults off", test_faults_off},
        {"segmentation and receive offload", test_offloads},
    };
    CU_pSuite s = CU_add_suite("udp", suite_init, NULL);
    if (s == NULL)
        return -1;
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++)
        if (CU_add_test(s, tests[i].name, tests[i].fn) == NULL)
            return -1;
    return 0;
}
