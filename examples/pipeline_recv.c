/*
 * pipeline_recv.c - receives the stream pipeline_send sends and checks that
 * every message arrived once, in order, intact.
 *
 * Usage: pipeline_recv [port]   (0: any free port; prints the port)
 *
 * The sender may have hundreds of messages in flight at once, and the
 * network may lose, duplicate and reorder their datagrams; rmsg still
 * hands them to us in the order they were sent.  So we simply expect
 * message 0, then 1, then 2, ... and say so at the first one that is not
 * the one we expect.  When the last has arrived we send the sender a
 * report (see pipeline_send.c) and exit: 0 if all was well.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rmsg.h"
#include "rpc_marshal.h"

#define IDLE_MS 30000 /* the stream stalled: give up */

static struct rmsg_endpoint *endpoint; /* for the signal handler */

/* SIGTERM or ^C: make the blocked rmsg_recv return, so that we can still
 * say how far we got (rmsg_interrupt is safe in a signal handler). */
static void on_signal(int sig)
{
    (void)sig;
    rmsg_interrupt(endpoint, 1);
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/* Whether msg is message `want`, with the contents the sender writes. */
static int check(const uint8_t *msg, size_t len, uint32_t want, uint32_t *count)
{
    if (len < 8 || get32(msg) != want)
        return 0;
    *count = get32(msg + 4);
    for (size_t j = 0; j < len - 8; j++)
        if (msg[8 + j] != (uint8_t)(want * 31 + j))
            return 0;
    return 1;
}

int main(int argc, char *argv[])
{
    struct rmsg_endpoint *ep;
    int rc = rmsg_open(argc > 1 ? atoi(argv[1]) : 10003, NULL, &ep);
    if (rc < 0) {
        fprintf(stderr, "pipeline_recv: %s\n", strerror(-rc));
        return 1;
    }
    endpoint = ep;
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("listening on port %d\n", rmsg_port(ep));
    fflush(stdout);
    struct udp_addr from;
    uint32_t next = 0, count = 1, in_order = 1;
    uint64_t bytes = 0;
    while (next < count) {
        void *msg;
        size_t len;
        rc = rmsg_recv(ep, &from, &msg, &len, next ? IDLE_MS : -1);
        if (rc < 0)
            break;
        if (!check(msg, len, next, &count)) {
            printf("OUT OF ORDER OR DAMAGED: expected message %u, got %u\n",
                   next, len >= 4 ? get32(msg) : 0);
            in_order = 0;
            free(msg);
            break;
        }
        bytes += len;
        next++;
        free(msg);
    }
    if (rc < 0) {
        struct rmsg_stats st;
        rmsg_stats(ep, NULL, &st);
        fprintf(stderr,
                "pipeline_recv: stream ended after %u messages: %s "
                "(datagrams received %llu, sent %llu, duplicates %llu, "
                "corrupt %llu, malformed %llu, refused %llu, resets %llu)\n",
                next, strerror(-rc), (unsigned long long)st.datagrams_received,
                (unsigned long long)st.datagrams_sent,
                (unsigned long long)st.duplicates,
                (unsigned long long)st.corrupt,
                (unsigned long long)st.malformed,
                (unsigned long long)st.refused, (unsigned long long)st.resets);
        rmsg_close(ep);
        return 1;
    }
    if (in_order)
        printf("received %u messages in order, %llu bytes, every one intact\n",
               next, (unsigned long long)bytes);
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    rpc_put_u32(&e, next);
    rpc_put_u32(&e, in_order);
    rc = e.err ? e.err : rmsg_send(ep, &from, e.buf, e.len, 10000);
    if (rc < 0)
        fprintf(stderr, "pipeline_recv: report not acknowledged: %s\n",
                strerror(-rc));
    rpc_enc_free(&e);
    rmsg_close(ep);
    return in_order ? 0 : 1;
}
