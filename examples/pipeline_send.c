/*
 * pipeline_send.c - asynchronous, pipelined sending: queue many messages
 * without waiting for each acknowledgment, then flush once at the end.
 *
 * Usage: pipeline_send host port count [bytes] [async|sync]
 *
 *   build/examples/pipeline_recv 0                # listening on port N
 *   build/examples/pipeline_send 127.0.0.1 N 2000 1000
 *
 * async (the default) queues every message with rmsg_send_async, which
 * returns at once: many messages are in flight together, so the sender
 * pays one round trip for the lot instead of one per message.  rmsg still
 * delivers them in order, each exactly once.  rmsg_flush waits until all
 * are acknowledged (or says how many failed).  sync sends each with
 * rmsg_send, which waits for its acknowledgment (stop and wait): run both
 * and compare the messages per second.
 *
 * Message i carries: u32 i, u32 count, then `bytes` bytes where byte j is
 * (i * 31 + j) mod 256, so the receiver can check order and content.  At
 * the end the receiver sends back one message: u32 messages received,
 * u32 1 if all were in order and intact.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rmsg.h"
#include "rpc_marshal.h"

#define TIMEOUT_MS 30000

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* Writes message i of count into buf (8 + bytes long). */
static void fill(uint8_t *buf, uint32_t i, uint32_t count, size_t bytes)
{
    uint32_t v[2] = {i, count};
    for (int k = 0; k < 2; k++)
        for (int b = 0; b < 4; b++) /* big-endian, by hand */
            buf[k * 4 + b] = (uint8_t)(v[k] >> (24 - 8 * b));
    for (size_t j = 0; j < bytes; j++)
        buf[8 + j] = (uint8_t)(i * 31 + j);
}

/* Queues one message.  While the peer's queue is full, rmsg_send_async
 * itself lets the endpoint take in acknowledgments until they make room:
 * back pressure, up to TIMEOUT_MS. */
static int queue(struct rmsg_endpoint *ep, const struct udp_addr *to,
                 const uint8_t *buf, size_t len)
{
    int64_t id = rmsg_send_async(ep, to, buf, len, TIMEOUT_MS);
    return id < 0 ? (int)id : 0;
}

/* Reads the receiver's report: how many arrived, and in order or not. */
static int report(struct rmsg_endpoint *ep, uint32_t count)
{
    void *msg;
    size_t len;
    if (rmsg_recv(ep, NULL, &msg, &len, TIMEOUT_MS) < 0) {
        fprintf(stderr, "pipeline_send: no report from the receiver\n");
        return 1;
    }
    struct rpc_dec d;
    uint32_t got = 0, in_order = 0;
    rpc_dec_init(&d, msg, len);
    rpc_get_u32(&d, &got);
    rpc_get_u32(&d, &in_order);
    int bad = rpc_dec_end(&d) != 0 || got != count || in_order != 1;
    free(msg);
    printf("receiver: %u messages, %s\n", got,
           in_order == 1 ? "in order and intact" : "NOT IN ORDER OR DAMAGED");
    return bad;
}

int main(int argc, char *argv[])
{
    if (argc < 4) {
        fprintf(stderr, "usage: pipeline_send host port count [bytes] "
                        "[async|sync]\n");
        return 2;
    }
    uint32_t count = (uint32_t)atoi(argv[3]);
    size_t bytes = argc > 4 ? (size_t)atoi(argv[4]) : 1000;
    int sync = argc > 5 && strcmp(argv[5], "sync") == 0;
    struct udp_addr to;
    struct rmsg_endpoint *ep;
    uint8_t *buf = malloc(8 + bytes);
    if (buf == NULL || count == 0 ||
        UDP_Resolve(argv[1], atoi(argv[2]), AF_UNSPEC, &to) != 0 ||
        rmsg_open(0, NULL, &ep) < 0) {
        fprintf(stderr, "pipeline_send: cannot start\n");
        return 1;
    }
    double t0 = seconds();
    int rc = 0;
    for (uint32_t i = 0; i < count && rc == 0; i++) {
        fill(buf, i, count, bytes);
        rc = sync ? rmsg_send(ep, &to, buf, 8 + bytes, TIMEOUT_MS)
                  : queue(ep, &to, buf, 8 + bytes);
    }
    double queued = seconds() - t0;
    /* The final flush: returns once the last message is acknowledged. */
    int failed = rc == 0 ? rmsg_flush(ep, TIMEOUT_MS) : 0;
    double t = seconds() - t0;
    free(buf);
    if (rc < 0 || failed != 0) {
        struct rmsg_event ev = {0};
        if (failed > 0 && rmsg_failure(ep, &ev) == 0) /* the first: why */
            fprintf(stderr,
                    "pipeline_send: %d messages failed, the first "
                    "(id %llu): %s\n",
                    failed, (unsigned long long)ev.id, strerror(-ev.error));
        else
            fprintf(stderr, "pipeline_send: %s\n",
                    rc < 0 ? strerror(-rc) : "flush timed out");
        struct rmsg_stats st;
        rmsg_stats(ep, NULL, &st);
        fprintf(stderr,
                "pipeline_send: datagrams sent %llu, received %llu, "
                "retransmissions %llu, timeouts %llu, corrupt %llu, "
                "malformed %llu, refused %llu, resets %llu\n",
                (unsigned long long)st.datagrams_sent,
                (unsigned long long)st.datagrams_received,
                (unsigned long long)st.retransmissions,
                (unsigned long long)st.timeouts, (unsigned long long)st.corrupt,
                (unsigned long long)st.malformed,
                (unsigned long long)st.refused, (unsigned long long)st.resets);
        rmsg_close(ep);
        return 1;
    }
    printf("%s: %u messages of %zu bytes queued in %.3f s, all acknowledged "
           "after %.3f s (%.0f messages/s)\n",
           sync ? "sync" : "async", count, bytes, queued, t,
           count / (t > 0 ? t : 1e-9));
    int bad = report(ep, count);
    struct rmsg_stats st;
    rmsg_stats(ep, NULL, &st);
    printf("datagrams sent %llu, retransmissions %llu\n",
           (unsigned long long)st.datagrams_sent,
           (unsigned long long)st.retransmissions);
    rmsg_poll(ep, 300); /* so a lost last acknowledgment is sent again */
    rmsg_close(ep);
    return bad;
}
