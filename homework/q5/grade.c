/*
 * grade.c - the grader of question 5: many fragments in flight.
 *
 * Senders and receivers of the student's library in separate processes
 * (common/drive.c):
 *   1. over a network that delays every datagram by 5 ms each way, one
 *      sender sends a 256 KiB message with a window of 1 fragment (stop and
 *      wait) and then another with a window of 8, in the same run; the
 *      pipelined send must be at least 3 times as fast;
 *   2. 3 MiB in six messages with the default window over a network that
 *      drops, duplicates, reorders and damages datagrams arrive intact;
 *   3. 4 MiB with a window of 32 over heavy reordering arrive intact: each
 *      fragment must find its place whatever the order;
 *   4. comm_set_window accepts 1 to 64 and refuses 0.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "drive.h"
#include "harness.h"

#define DELAY   "delay=5ms"
#define FAULTY  "drop=0.03,dup=0.03,reorder=0.1,corrupt=0.01"
#define SPEEDUP 3.0

/* ------------------------------------------------------------------------ */
/* 1: stop and wait against a window, in the same run                        */
/* ------------------------------------------------------------------------ */

static const size_t two_sizes[] = {256 << 10, 256 << 10};
static const struct hw_stream two = {
    .seed = 71, .count = 2, .fixed = two_sizes, .nfixed = 2, .tag = -1};

/* Sends message 0 with window 1 and message 1 with window 8; reports the
 * time of each. */
static void timed_sender(struct hw_proc *self, void *arg)
{
    int port = *(int *)arg;
    setenv("UDP_FAULTS", DELAY ",seed=712", 1);
    struct comm *c = NULL;
    struct sockaddr_in to;
    if (comm_open(0, &c) < 0 || comm_address("127.0.0.1", port, &to) < 0)
        hw_fail("comm_open or comm_address failed");
    double t[2];
    const int window[2] = {1, 8};
    for (int i = 0; i < 2; i++) {
        int rc = comm_set_window(c, window[i]);
        if (rc < 0)
            hw_fail("comm_set_window(%d) returned %d", window[i], rc);
        size_t len;
        unsigned char *m = hw_stream_msg(&two, i, &len);
        double t0 = hw_now();
        rc = comm_send(c, &to, m, len);
        t[i] = hw_now() - t0;
        free(m);
        if (rc < 0)
            hw_fail("comm_send with a window of %d returned %d", window[i], rc);
    }
    hw_say(self, "times %.6f %.6f", t[0], t[1]);
    comm_close(c);
}

static void check_speedup(void)
{
    struct hw_rx_plan rx = {
        .faults = DELAY ",seed=711", .streams = &two, .nstreams = 1};
    struct hw_proc r, s;
    int port = hw_receiver_start(&r, &rx);
    hw_spawn(&s, timed_sender, &port);
    char line[1200];
    hw_report(&s, line, sizeof(line), 25000,
              "sending 256 KiB twice (window 1, then 8)");
    double t1, t8;
    if (sscanf(line, "times %lf %lf", &t1, &t8) != 2)
        hw_fail("the sender said %s", line);
    hw_transfer_wait(&r, &rx, NULL, 0, 5000);
    hw_receiver_quiet(&r, 300);
    double kib = two_sizes[0] / 1024.0;
    if (t1 < SPEEDUP * t8)
        hw_fail("stop and wait took %.3f s (%.0f KiB/s), a window of 8 "
                "%.3f s (%.0f KiB/s): %.1f times as fast, not %.0f",
                t1, kib / t1, t8, kib / t8, t1 / t8, SPEEDUP);
    hw_detail("window 1: %.0f KiB/s, window 8: %.0f KiB/s, %.1f times as "
              "fast",
              kib / t1, kib / t8, t1 / t8);
}

/* ------------------------------------------------------------------------ */
/* 2 and 3: a window over a bad network                                      */
/* ------------------------------------------------------------------------ */

static void check_faulty(void)
{
    static const size_t sizes[] = {1 << 20, 0, 3, 2 << 20, 100000, 1};
    struct hw_stream s = {
        .seed = 72, .count = 6, .fixed = sizes, .nfixed = 6, .tag = -1};
    struct hw_rx_plan rx = {
        .faults = FAULTY ",seed=721", .streams = &s, .nstreams = 1};
    struct hw_tx_plan tx = {
        .faults = FAULTY ",seed=722", .stream = &s, .mode = HW_BLOCKING};
    double t = hw_transfer(&rx, &tx, 1, 25000);
    hw_detail("%.1f MiB in %.1f s", hw_stream_bytes(&s) / 1048576.0, t);
}

static void check_reorder(void)
{
    static const size_t sizes[] = {4 << 20, 10};
    struct hw_stream s = {
        .seed = 73, .count = 2, .fixed = sizes, .nfixed = 2, .tag = -1};
    struct hw_rx_plan rx = {
        .faults = "reorder=0.3,seed=731", .streams = &s, .nstreams = 1};
    struct hw_tx_plan tx = {.faults = "reorder=0.3,dup=0.05,seed=732",
                            .stream = &s,
                            .mode = HW_BLOCKING,
                            .window = 32};
    double t = hw_transfer(&rx, &tx, 1, 20000);
    hw_detail("4 MiB in %.2f s", t);
}

/* ------------------------------------------------------------------------ */
/* 4: the window call itself                                                 */
/* ------------------------------------------------------------------------ */

static void check_window_call(void)
{
    unsetenv("UDP_FAULTS");
    struct comm *c = NULL;
    if (comm_open(0, &c) < 0)
        hw_fail("comm_open failed");
    const int good[] = {1, 2, 8, 32, 64};
    for (int i = 0; i < 5; i++) {
        int rc = comm_set_window(c, good[i]);
        if (rc != 0)
            hw_fail("comm_set_window(%d) returned %d, not 0", good[i], rc);
    }
    int rc = comm_set_window(c, 0);
    if (rc != -EINVAL)
        hw_fail("comm_set_window(0) returned %d, not -EINVAL", rc);
    comm_close(c);
}

int main(void)
{
    hw_begin("q5: many fragments in flight");
    hw_check("over " DELAY " each way, a window of 8 beats stop and wait "
             "3 times over",
             30, check_speedup);
    hw_check("3 MiB over " FAULTY ", intact", 30, check_faulty);
    hw_check("4 MiB with a window of 32 over heavy reordering, intact", 25,
             check_reorder);
    hw_check("comm_set_window accepts 1 to 64, refuses 0", 5,
             check_window_call);
    return hw_end();
}
