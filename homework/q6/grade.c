/*
 * grade.c - the grader of question 6: asynchronous sends, in-order
 * delivery, waiting for all.
 *
 * Senders and receivers of the student's library in separate processes
 * (common/drive.c):
 *   1. 500 messages handed over with comm_send_async, then comm_wait_all,
 *      over a network that drops, duplicates, reorders and damages
 *      datagrams, arrive once each, in order, intact; the sender exits the
 *      moment comm_wait_all returns, so a wait that returned early would
 *      leave messages undelivered;
 *   2. over a network that delays every datagram by 10 ms each way, 200
 *      small messages sent asynchronously take at most a fifth of the time
 *      200 round trips would (the round trip is measured in the same run
 *      with one comm_send): many are really in flight at once;
 *   3. comm_wait_all returns 0 at once with nothing outstanding; with the
 *      receiver stopped (SIGSTOP) it returns -ETIMEDOUT after its timeout,
 *      having slept; once the receiver runs again it returns 0, and the
 *      sender exits at once, and every message arrives;
 *   4. two asynchronous senders at once: each one's messages in its order.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "drive.h"
#include "harness.h"

#define FAULTY "drop=0.03,dup=0.03,reorder=0.1,corrupt=0.01"
#define DELAY  "delay=10ms"

/* Opens the helper's endpoint and the address of the receiver on port. */
static struct comm *open_to(const char *faults, int port,
                            struct sockaddr_in *to)
{
    if (faults != NULL)
        setenv("UDP_FAULTS", faults, 1);
    else
        unsetenv("UDP_FAULTS");
    struct comm *c = NULL;
    if (comm_open(0, &c) < 0 || comm_address("127.0.0.1", port, to) < 0)
        hw_fail("comm_open or comm_address failed");
    return c;
}

/* Hands over messages [from, to) of s asynchronously. */
static void send_range(struct comm *c, const struct sockaddr_in *dst,
                       const struct hw_stream *s, int from, int to)
{
    for (int i = from; i < to; i++) {
        size_t len;
        unsigned char *m = hw_stream_msg(s, i, &len);
        int rc = comm_send_async(c, dst, m, len);
        memset(m, 0x5a, len); /* the library must have its own copy */
        free(m);
        if (rc < 0)
            hw_fail("comm_send_async of message %d returned %d (%s)", i, rc,
                    strerror(-rc));
    }
}

/* ------------------------------------------------------------------------ */
/* 1 and 4: in order over a bad network                                      */
/* ------------------------------------------------------------------------ */

static void check_faulty(void)
{
    static const size_t sizes[] = {0, 200000, 1, 65537, 150000};
    struct hw_stream s = {.seed = 81,
                          .count = 500,
                          .min = 1,
                          .max = 20000,
                          .fixed = sizes,
                          .nfixed = 5,
                          .tag = -1};
    struct hw_rx_plan rx = {
        .faults = FAULTY ",seed=811", .streams = &s, .nstreams = 1};
    struct hw_tx_plan tx = {
        .faults = FAULTY ",seed=812", .stream = &s, .mode = HW_ASYNC};
    double t = hw_transfer(&rx, &tx, 1, 25000);
    hw_detail("%d messages, %.1f MiB in %.1f s", s.count,
              hw_stream_bytes(&s) / 1048576.0, t);
}

static void check_two_senders(void)
{
    struct hw_stream s[2] = {
        {.seed = 84, .count = 200, .min = 1, .max = 5000, .tag = 0},
        {.seed = 85, .count = 200, .min = 1, .max = 5000, .tag = 1},
    };
    struct hw_rx_plan rx = {
        .faults = "drop=0.05,seed=841", .streams = s, .nstreams = 2};
    struct hw_tx_plan tx[2] = {
        {.faults = "drop=0.05,seed=842", .stream = &s[0], .mode = HW_ASYNC},
        {.faults = "drop=0.05,seed=843", .stream = &s[1], .mode = HW_ASYNC},
    };
    double t = hw_transfer(&rx, tx, 2, 20000);
    hw_detail("2 x %d messages in %.1f s", s[0].count, t);
}

/* ------------------------------------------------------------------------ */
/* 2: many in flight                                                         */
/* ------------------------------------------------------------------------ */

static const struct hw_stream small = {
    .seed = 82, .count = 201, .min = 100, .max = 300, .tag = -1};

/* One comm_send (a round trip), then 200 messages asynchronously. */
static void flight_sender(struct hw_proc *self, void *arg)
{
    struct sockaddr_in to;
    struct comm *c = open_to(DELAY ",seed=822", *(int *)arg, &to);
    size_t len;
    unsigned char *m = hw_stream_msg(&small, 0, &len);
    double t0 = hw_now();
    int rc = comm_send(c, &to, m, len);
    double rtt = hw_now() - t0;
    free(m);
    if (rc < 0)
        hw_fail("comm_send returned %d", rc);
    t0 = hw_now();
    send_range(c, &to, &small, 1, small.count);
    if ((rc = comm_wait_all(c, 20000)) != 0)
        hw_fail("comm_wait_all returned %d", rc);
    hw_say(self, "times %.6f %.6f", rtt, hw_now() - t0);
    comm_close(c);
}

static void check_in_flight(void)
{
    struct hw_rx_plan rx = {
        .faults = DELAY ",seed=821", .streams = &small, .nstreams = 1};
    struct hw_proc r, s;
    int port = hw_receiver_start(&r, &rx);
    hw_spawn(&s, flight_sender, &port);
    char line[1200];
    hw_report(&s, line, sizeof(line), 20000, "the sender");
    double rtt, all;
    if (sscanf(line, "times %lf %lf", &rtt, &all) != 2)
        hw_fail("the sender said %s", line);
    hw_transfer_wait(&r, &rx, NULL, 0, 5000);
    hw_receiver_quiet(&r, 300);
    int n = small.count - 1;
    double per_rtt = n * rtt / all;
    if (per_rtt < 5)
        hw_fail("one comm_send took %.1f ms; %d asynchronous messages took "
                "%.0f ms: %.1f per round trip, not 5 or more",
                rtt * 1000, n, all * 1000, per_rtt);
    hw_detail("round trip %.1f ms, %d messages in %.0f ms: %.0f per round "
              "trip",
              rtt * 1000, n, all * 1000, per_rtt);
}

/* ------------------------------------------------------------------------ */
/* 3: waiting for all                                                        */
/* ------------------------------------------------------------------------ */

static const struct hw_stream twenty = {
    .seed = 83, .count = 20, .min = 1, .max = 3000, .tag = -1};

static void waiting_sender(struct hw_proc *self, void *arg)
{
    struct sockaddr_in to;
    struct comm *c = open_to(NULL, *(int *)arg, &to);
    double t0 = hw_now();
    int rc0 = comm_wait_all(c, 1000);
    double w0 = hw_now() - t0;
    send_range(c, &to, &twenty, 0, twenty.count);
    double cpu = hw_cpu();
    t0 = hw_now();
    int rc1 = comm_wait_all(c, 1000);
    double w1 = hw_now() - t0;
    cpu = hw_cpu() - cpu;
    hw_say(self, "waited %d %.3f %d %.3f %.4f", rc0, w0, rc1, w1, cpu);
    char line[64];
    if (hw_line(self, line, sizeof(line), 20000) < 0)
        return;
    t0 = hw_now();
    int rc2 = comm_wait_all(c, 10000);
    hw_say(self, "flushed %d %.3f", rc2, hw_now() - t0);
    comm_close(c); /* and exit at once: nothing is left to resend */
}

static void check_wait_all(void)
{
    struct hw_rx_plan rx = {.streams = &twenty, .nstreams = 1};
    struct hw_proc r, s;
    int port = hw_receiver_start(&r, &rx);
    kill(r.pid, SIGSTOP);
    hw_spawn(&s, waiting_sender, &port);
    char line[1200];
    hw_report(&s, line, sizeof(line), 10000,
              "comm_send_async of 20 messages and comm_wait_all(..., 1000)");
    int rc0, rc1;
    double w0, w1, cpu;
    if (sscanf(line, "waited %d %lf %d %lf %lf", &rc0, &w0, &rc1, &w1, &cpu) !=
        5)
        hw_fail("the sender said %s", line);
    if (rc0 != 0 || w0 > 0.2)
        hw_fail("with nothing sent, comm_wait_all returned %d after %.2f s: "
                "want 0 at once",
                rc0, w0);
    if (rc1 != -ETIMEDOUT || w1 < 0.9 || w1 > 3)
        hw_fail("with the receiver stopped, comm_wait_all(..., 1000) "
                "returned %d after %.2f s: want -ETIMEDOUT after about 1 s",
                rc1, w1);
    if (cpu > 0.05 * w1 + 0.01)
        hw_fail("comm_wait_all used %.0f ms of CPU in %.2f s of waiting: it "
                "spins",
                cpu * 1000, w1);
    kill(r.pid, SIGCONT);
    hw_say(&s, "go");
    hw_report(&s, line, sizeof(line), 15000,
              "comm_wait_all, with the receiver running again,");
    int rc2;
    double w2;
    if (sscanf(line, "flushed %d %lf", &rc2, &w2) != 2 || rc2 != 0)
        hw_fail("with the receiver running again, comm_wait_all said: %s",
                line);
    hw_transfer_wait(&r, &rx, NULL, 0, 5000);
    hw_receiver_quiet(&r, 300);
    hw_detail("-ETIMEDOUT after %.2f s using %.0f ms of CPU; 0 after %.2f s "
              "more",
              w1, cpu * 1000, w2);
}

int main(void)
{
    hw_begin("q6: asynchronous sends, in order, waiting for all");
    hw_check("500 asynchronous messages over " FAULTY
             " arrive once each, in order",
             30, check_faulty);
    hw_check("over " DELAY " each way, many messages are in flight at once", 25,
             check_in_flight);
    hw_check("comm_wait_all waits, sleeping, for every acknowledgment", 30,
             check_wait_all);
    hw_check("two asynchronous senders at once, each in order", 25,
             check_two_senders);
    return hw_end();
}
