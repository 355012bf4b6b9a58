/*
 * drive.c - transfers through the student's library: a receiver that
 * checks every message against the stream it expects, senders, and the
 * check-side loop that watches them (see drive.h).
 */
#define _POSIX_C_SOURCE 200809L

#include "drive.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"

#ifndef HW_Q
#define HW_Q 3
#endif

#define MAX_STREAMS 8

/* ------------------------------------------------------------------------ */
/* Streams                                                                   */
/* ------------------------------------------------------------------------ */

size_t hw_stream_len(const struct hw_stream *s, int i)
{
    size_t len;
    if (i < s->nfixed)
        len = s->fixed[i];
    else
        len = s->min +
              hw_rand(s->seed, (uint32_t)i, (uint32_t)(s->max - s->min + 1));
    if (s->tag >= 0 && len == 0)
        len = 1;
    return len;
}

unsigned char *hw_stream_msg(const struct hw_stream *s, int i, size_t *len)
{
    *len = hw_stream_len(s, i);
    unsigned char *m = malloc(*len > 0 ? *len : 1);
    if (m == NULL)
        hw_fail("out of memory for a %zu-byte test message", *len);
    hw_fill(m, *len, s->seed, (uint32_t)i);
    if (s->tag >= 0)
        m[0] = (unsigned char)s->tag;
    return m;
}

size_t hw_stream_bytes(const struct hw_stream *s)
{
    size_t total = 0;
    for (int i = 0; i < s->count; i++)
        total += hw_stream_len(s, i);
    return total;
}

/* Does msg equal message i of s? */
static int is_msg(const struct hw_stream *s, int i, const void *msg, size_t len,
                  size_t *diff)
{
    size_t want;
    unsigned char *m = hw_stream_msg(s, i, &want);
    size_t at = 0;
    while (at < len && at < want && ((const unsigned char *)msg)[at] == m[at])
        at++;
    free(m);
    if (diff != NULL)
        *diff = at;
    return len == want && at == len;
}

/* ------------------------------------------------------------------------ */
/* The receiver                                                              */
/* ------------------------------------------------------------------------ */

static void set_faults(const char *faults)
{
    if (faults != NULL)
        setenv("UDP_FAULTS", faults, 1);
    else
        unsetenv("UDP_FAULTS");
}

static struct comm *open_endpoint(const char *faults, int port)
{
    set_faults(faults);
    struct comm *c = NULL;
    int rc = comm_open(port, &c);
    if (rc < 0 || c == NULL)
        hw_fail("comm_open(%d) returned %d (%s)", port, rc,
                rc < 0 ? strerror(-rc) : "and no endpoint");
    return c;
}

/* Names sender s in messages ("" when there is one). */
static const char *who(const struct hw_rx_plan *plan, int s)
{
    static char buf[32];
    if (plan->nstreams <= 1)
        return "";
    snprintf(buf, sizeof(buf), " from sender %d", s);
    return buf;
}

/* Fails with what msg is when it is not message i of stream s. */
static void judge(const struct hw_rx_plan *plan, int s, int i, const void *msg,
                  size_t len)
{
    const struct hw_stream *st = &plan->streams[s];
    size_t diff;
    if (is_msg(st, i, msg, len, &diff))
        return;
    int lo = i - 8 < 0 ? 0 : i - 8, hi = i + 8 < st->count ? i + 8 : st->count;
    for (int j = lo; j < hi; j++) {
        if (j == i || !is_msg(st, j, msg, len, NULL))
            continue;
        if (j < i)
            hw_fail("message %d%s was delivered again when message %d was "
                    "due: a duplicate got through",
                    j, who(plan, s), i);
        hw_fail("message %d%s was delivered when message %d was due: "
                "message %d was lost, or overtaken",
                j, who(plan, s), i, i);
    }
    hw_fail("message %d%s arrived damaged: %zu bytes (%zu sent), the first "
            "wrong byte at offset %zu",
            i, who(plan, s), len, hw_stream_len(st, i), diff);
}

static void receiver(struct hw_proc *self, void *arg)
{
    const struct hw_rx_plan *plan = arg;
    struct comm *c = open_endpoint(plan->faults, plan->port);
    hw_say(self, "port %d", comm_port(c));
    int next[MAX_STREAMS] = {0}, complete = 0;
    for (;;) {
        void *msg = NULL;
        size_t len = 0;
        int rc = comm_recv(c, NULL, &msg, &len, 500);
        if (rc == -ETIMEDOUT)
            continue;
        if (rc < 0)
            hw_fail("the receiver's comm_recv returned %d (%s)", rc,
                    strerror(-rc));
        int s = 0;
        if (plan->nstreams > 1) {
            s = len > 0 ? ((unsigned char *)msg)[0] : -1;
            if (s < 0 || s >= plan->nstreams)
                hw_fail("a %zu-byte message arrived that no sender sent "
                        "(damaged?)",
                        len);
        }
        const struct hw_stream *st = &plan->streams[s];
        if (next[s] >= st->count)
            hw_fail("a message%s arrived after all %d had: one was "
                    "delivered twice",
                    who(plan, s), st->count);
        judge(plan, s, next[s], msg, len);
        free(msg);
        next[s]++;
        hw_say(self, "got %d %d", s, next[s]);
        if (next[s] == st->count && ++complete == plan->nstreams)
            hw_say(self, "done");
    }
}

int hw_receiver_start(struct hw_proc *p, const struct hw_rx_plan *plan)
{
    if (plan->nstreams < 1 || plan->nstreams > MAX_STREAMS)
        hw_fail("grader bug: %d streams", plan->nstreams);
    hw_spawn(p, receiver, (void *)plan);
    char line[256];
    hw_report(p, line, sizeof(line), 5000, "the receiver's comm_open");
    int port;
    if (sscanf(line, "port %d", &port) != 1 || port <= 0 || port > 65535)
        hw_fail("the receiver's comm_port gave \"%s\"", line);
    return port;
}

/* ------------------------------------------------------------------------ */
/* Senders                                                                   */
/* ------------------------------------------------------------------------ */

/* Sends message i the way the plan says. */
static void send_one(struct comm *c, const struct hw_tx_plan *plan,
                     const struct sockaddr_in *to, int i)
{
    size_t len;
    unsigned char *m = hw_stream_msg(plan->stream, i, &len);
    int rc;
    const char *call = "comm_send";
#if HW_Q >= 6
    if (plan->mode == HW_ASYNC) {
        call = "comm_send_async";
        rc = comm_send_async(c, to, m, len);
    } else
#endif
        rc = comm_send(c, to, m, len);
    /* The library must have taken its own copy by now. */
    memset(m, 0xa5, len);
    free(m);
    if (rc < 0)
        hw_fail("%s of message %d (%zu bytes) returned %d (%s)", call, i, len,
                rc, strerror(-rc));
}

static void sender(struct hw_proc *self, void *arg)
{
    const struct hw_tx_plan *plan = arg;
    struct comm *c = open_endpoint(plan->faults, 0);
    struct sockaddr_in to;
    int rc = comm_address("127.0.0.1", plan->port, &to);
    if (rc < 0)
        hw_fail("comm_address(\"127.0.0.1\", %d) returned %d", plan->port, rc);
#if HW_Q >= 5
    if (plan->window > 0 && (rc = comm_set_window(c, plan->window)) < 0)
        hw_fail("comm_set_window(%d) returned %d", plan->window, rc);
#endif
    double t0 = hw_now();
    for (int i = 0; i < plan->stream->count; i++)
        send_one(c, plan, &to, i);
#if HW_Q >= 6
    if (plan->mode == HW_ASYNC && (rc = comm_wait_all(c, 60000)) != 0)
        hw_fail("comm_wait_all returned %d (%s)", rc, strerror(-rc));
#endif
    hw_say(self, "sent %.6f", hw_now() - t0);
    comm_close(c);
}

void hw_sender_start(struct hw_proc *p, const struct hw_tx_plan *plan)
{
#if HW_Q < 6
    if (plan->mode == HW_ASYNC)
        hw_fail("grader bug: asynchronous sends before question 6");
#endif
    hw_spawn(p, sender, (void *)plan);
}

/* ------------------------------------------------------------------------ */
/* Watching a transfer                                                       */
/* ------------------------------------------------------------------------ */

/* Describes how far the transfer got, for a failure message. */
static const char *progress(const struct hw_rx_plan *plan, const int *got,
                            const double *sent, int ntx)
{
    static char buf[600];
    size_t o = 0;
    for (int s = 0; s < plan->nstreams; s++)
        o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%d of %d",
                              s ? ", " : "the receiver had ", got[s],
                              plan->streams[s].count);
    o += (size_t)snprintf(buf + o, sizeof(buf) - o, " messages");
    for (int i = 0; i < ntx && o < sizeof(buf); i++) {
        if (sent[i] >= 0)
            o += (size_t)snprintf(buf + o, sizeof(buf) - o,
                                  "; sender %d had finished after %.2f s", i,
                                  sent[i]);
        else
            o += (size_t)snprintf(buf + o, sizeof(buf) - o,
                                  "; sender %d had not finished", i);
    }
    return buf;
}

/* Handles one report line from the receiver. */
static int rx_line(const char *line, int *got, int *done)
{
    int s, k;
    if (sscanf(line, "got %d %d", &s, &k) == 2 && s >= 0 && s < MAX_STREAMS)
        got[s] = k;
    else if (strcmp(line, "done") == 0)
        *done = 1;
    else if (strncmp(line, "error ", 6) == 0)
        hw_fail("receiver: %s", line + 6);
    return 0;
}

double hw_transfer_wait(struct hw_proc *rx, const struct hw_rx_plan *plan,
                        struct hw_proc *tx, int ntx, int limit_ms)
{
    int got[MAX_STREAMS] = {0}, done = 0, finished = 0;
    double sent[MAX_STREAMS], slowest = 0, end = hw_now() + limit_ms / 1e3;
    double all_sent = -1; /* when the last sender finished */
    char line[1200];
    for (int i = 0; i < ntx; i++)
        sent[i] = -1;
    while (!done || finished < ntx) {
        if (hw_now() > end)
            hw_fail("after %.1f s, %s", limit_ms / 1e3,
                    progress(plan, got, sent, ntx));
        /* Every sender is sure it is done: what is missing is lost. */
        if (all_sent >= 0 && hw_now() > all_sent + 5)
            hw_fail("5 s after the last sender finished, %s",
                    progress(plan, got, sent, ntx));
        int n = hw_line(rx, line, sizeof(line), done ? 0 : 20);
        if (n >= 0)
            rx_line(line, got, &done);
        if (n == HW_EOF)
            hw_fail("the receiver process died; %s",
                    progress(plan, got, sent, ntx));
        for (int i = 0; i < ntx; i++) {
            if (sent[i] >= 0)
                continue;
            n = hw_line(&tx[i], line, sizeof(line), done ? 20 : 0);
            if (n == HW_EOF)
                hw_fail("sender %d died without a word; %s", i,
                        progress(plan, got, sent, ntx));
            if (n < 0)
                continue;
            if (strncmp(line, "error ", 6) == 0 && ntx > 1)
                hw_fail("sender %d: %s", i, line + 6);
            if (strncmp(line, "error ", 6) == 0)
                hw_fail("sender: %s", line + 6);
            if (sscanf(line, "sent %lf", &sent[i]) == 1) {
                if (++finished == ntx)
                    all_sent = hw_now();
                if (sent[i] > slowest)
                    slowest = sent[i];
            }
        }
    }
    return slowest;
}

void hw_receiver_quiet(struct hw_proc *rx, int ms)
{
    char line[1200];
    int got[MAX_STREAMS] = {0}, done = 0;
    double end = hw_now() + ms / 1e3;
    for (;;) {
        int left = (int)((end - hw_now()) * 1000);
        if (left <= 0)
            return;
        int n = hw_line(rx, line, sizeof(line), left);
        if (n == HW_EOF)
            hw_fail("the receiver process died after the transfer");
        if (n >= 0)
            rx_line(line, got, &done);
    }
}

double hw_transfer(const struct hw_rx_plan *rx, const struct hw_tx_plan *tx,
                   int ntx, int limit_ms)
{
    struct hw_proc r, s[MAX_STREAMS];
    if (ntx < 1 || ntx > MAX_STREAMS)
        hw_fail("grader bug: %d senders", ntx);
    int port = hw_receiver_start(&r, rx);
    struct hw_tx_plan plans[MAX_STREAMS];
    for (int i = 0; i < ntx; i++) {
        plans[i] = tx[i];
        plans[i].port = port;
        hw_sender_start(&s[i], &plans[i]);
    }
    double t = hw_transfer_wait(&r, rx, s, ntx, limit_ms);
    hw_receiver_quiet(&r, 300);
    for (int i = 0; i < ntx; i++)
        hw_reap(&s[i], 1000, NULL, NULL);
    hw_reap(&r, 0, NULL, NULL);
    return t;
}
