/*
 * grade.c - the grader of question 3: timeout/retry.
 *
 * The student's library runs in separate sender and receiver processes
 * (common/drive.c), with the udp layer's fault injection on every socket:
 *   1. 100 messages, from empty to COMM_MSG_MAX bytes, over a network that
 *      drops 10% of datagrams, duplicates 5% and reorders 10% (messages
 *      and acknowledgments alike), arrive once each, in order, intact;
 *   2. two senders at once, each with its own numbering, over 10% loss;
 *   3. a send to a receiver that never answers sleeps (its CPU time over
 *      1.5 s stays under 5% of a core) and keeps sending the message
 *      again; once a receiver starts on that port, the send completes and
 *      the message arrives once;
 *   4. a message larger than COMM_MSG_MAX is refused;
 *   5. comm_recv still times out, and sleeps while it waits.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "comm.h"
#include "drive.h"
#include "harness.h"

#define LOSSY "drop=0.1,dup=0.05,reorder=0.1"

/* ------------------------------------------------------------------------ */
/* 1 and 2: delivery over a lossy network                                    */
/* ------------------------------------------------------------------------ */

static const size_t edge_sizes[] = {0, 1, COMM_MSG_MAX, 2, 1400, COMM_MSG_MAX,
                                    0, 3};

static void check_lossy(void)
{
    struct hw_stream s = {.seed = 31,
                          .count = 100,
                          .min = 1,
                          .max = 3000,
                          .fixed = edge_sizes,
                          .nfixed = 8,
                          .tag = -1};
    struct hw_rx_plan rx = {
        .faults = LOSSY ",seed=301", .streams = &s, .nstreams = 1};
    struct hw_tx_plan tx = {
        .faults = LOSSY ",seed=302", .stream = &s, .mode = HW_BLOCKING};
    double t = hw_transfer(&rx, &tx, 1, 25000);
    hw_detail("%d messages, %zu bytes in %.1f s", s.count, hw_stream_bytes(&s),
              t);
}

static void check_two_senders(void)
{
    struct hw_stream s[2] = {
        {.seed = 41, .count = 30, .min = 1, .max = 2000, .tag = 0},
        {.seed = 42, .count = 30, .min = 1, .max = 2000, .tag = 1},
    };
    struct hw_rx_plan rx = {
        .faults = "drop=0.1,seed=401", .streams = s, .nstreams = 2};
    struct hw_tx_plan tx[2] = {
        {.faults = "drop=0.1,seed=402", .stream = &s[0], .mode = HW_BLOCKING},
        {.faults = "drop=0.1,seed=403", .stream = &s[1], .mode = HW_BLOCKING},
    };
    double t = hw_transfer(&rx, tx, 2, 20000);
    hw_detail("2 x %d messages in %.1f s", s[0].count, t);
}

/* ------------------------------------------------------------------------ */
/* 3: a send nobody answers                                                  */
/* ------------------------------------------------------------------------ */

static const size_t one_size[] = {1000};
static const struct hw_stream one = {
    .seed = 51, .count = 1, .fixed = one_size, .nfixed = 1, .tag = -1};

/* arg: the silent socket; the helper closes its inherited copy, so that
 * the port is free once the check closes its own. */
static void blocked_sender(struct hw_proc *self, void *arg)
{
    int silent = *(int *)arg, port = UDP_Port(silent);
    close(silent);
    unsetenv("UDP_FAULTS");
    struct comm *c = NULL;
    struct sockaddr_in to;
    if (comm_open(0, &c) < 0 || comm_address("127.0.0.1", port, &to) < 0)
        hw_fail("comm_open or comm_address failed");
    size_t len;
    unsigned char *m = hw_stream_msg(&one, 0, &len);
    hw_say(self, "ready");
    int rc = comm_send(c, &to, m, len);
    hw_say(self, "returned %d", rc);
    comm_close(c);
    free(m);
}

/* Counts the datagrams that reach sd in `seconds`. */
static int count_copies(int sd, double seconds)
{
    char buf[65536];
    int copies = 0;
    double end = hw_now() + seconds;
    for (;;) {
        int left = (int)((end - hw_now()) * 1000);
        if (left <= 0)
            return copies;
        if (UDP_ReadTimeout(sd, NULL, buf, sizeof(buf), left) >= 0)
            copies++;
    }
}

static void check_blocked(void)
{
    unsetenv("UDP_FAULTS");
    int silent = UDP_Open(0);
    if (silent < 0)
        hw_fail("UDP_Open: %s", strerror(errno));
    int port = UDP_Port(silent);
    struct hw_proc s, r;
    char line[256];
    hw_spawn(&s, blocked_sender, &silent);
    hw_report(&s, line, sizeof(line), 5000, "the sender's comm_open");
    double cpu0 = hw_proc_cpu(s.pid), t0 = hw_now();
    int copies = count_copies(silent, 1.5);
    double cpu = hw_proc_cpu(s.pid) - cpu0, wall = hw_now() - t0;
    if (hw_line(&s, line, sizeof(line), 0) >= 0)
        hw_fail("comm_send returned (\"%s\") although nobody acknowledged",
                line);
    if (cpu0 >= 0 && cpu > 0.05 * wall)
        hw_fail("a send waiting for an acknowledgment used %.0f ms of CPU in "
                "%.1f s (at most 5%%): it spins",
                cpu * 1000, wall);
    if (copies < 2)
        hw_fail("the message was sent %d time(s) in %.1f s: it must be sent "
                "again when no acknowledgment comes",
                copies, wall);
    /* Now someone answers on that port. */
    UDP_Close(silent);
    struct hw_rx_plan rx = {.port = port, .streams = &one, .nstreams = 1};
    hw_receiver_start(&r, &rx);
    double t1 = hw_now();
    for (int got = 0; !got;) {
        int left = (int)(3000 - (hw_now() - t1) * 1000);
        if (left <= 0 || hw_line(&r, line, sizeof(line), left) < 0)
            hw_fail("a receiver started on the port, but the message had "
                    "not arrived 3 s later: does the sender give up?");
        if (strncmp(line, "error ", 6) == 0)
            hw_fail("receiver: %s", line + 6);
        got = strcmp(line, "done") == 0;
    }
    hw_report(&s, line, sizeof(line), 3000,
              "comm_send, after the message arrived,");
    if (strcmp(line, "returned 0") != 0)
        hw_fail("comm_send %s once the message was acknowledged", line);
    hw_receiver_quiet(&r, 300);
    hw_detail("%d copies in %.1f s using %.0f ms of CPU", copies, wall,
              cpu * 1000);
}

/* ------------------------------------------------------------------------ */
/* 4 and 5: the edges of the interface                                       */
/* ------------------------------------------------------------------------ */

static void check_too_large(void)
{
    unsetenv("UDP_FAULTS");
    struct comm *c = NULL;
    struct sockaddr_in self;
    if (comm_open(0, &c) < 0 ||
        comm_address("127.0.0.1", comm_port(c), &self) < 0)
        hw_fail("comm_open or comm_address failed");
    static unsigned char buf[COMM_MSG_MAX + 1];
    int rc = comm_send(c, &self, buf, sizeof(buf));
    if (rc != -EMSGSIZE)
        hw_fail("comm_send of COMM_MSG_MAX + 1 bytes returned %d, not "
                "-EMSGSIZE",
                rc);
}

static void silent_recv(struct hw_proc *self, void *arg)
{
    (void)arg;
    unsetenv("UDP_FAULTS");
    struct comm *c = NULL;
    if (comm_open(0, &c) < 0)
        hw_fail("comm_open failed");
    void *msg;
    size_t len;
    double t0 = hw_now();
    int rc = comm_recv(c, NULL, &msg, &len, 1000);
    hw_say(self, "%d %.3f", rc, hw_now() - t0);
}

static void check_recv_timeout(void)
{
    struct hw_proc p;
    char line[256];
    hw_spawn(&p, silent_recv, NULL);
    hw_report(&p, line, sizeof(line), 8000, "comm_recv(..., 1000)");
    int rc;
    double wall, cpu;
    if (sscanf(line, "%d %lf", &rc, &wall) != 2)
        hw_fail("the helper said %s", line);
    hw_reap(&p, 2000, &cpu, NULL);
    if (rc != -ETIMEDOUT || wall < 0.9 || wall > 3)
        hw_fail("comm_recv(..., 1000) returned %d after %.2f s: want "
                "-ETIMEDOUT after about 1 s",
                rc, wall);
    if (cpu > 0.05 * wall + 0.02)
        hw_fail("waiting %.2f s used %.0f ms of CPU: it spins", wall,
                cpu * 1000);
}

int main(void)
{
    hw_begin("q3: timeout/retry");
    hw_check("100 messages over " LOSSY " arrive once each, in order, intact",
             30, check_lossy);
    hw_check("two senders at once over 10% loss, each in order", 25,
             check_two_senders);
    hw_check("a send nobody acknowledges sleeps, retries, then completes", 15,
             check_blocked);
    hw_check("a message larger than COMM_MSG_MAX is refused", 5,
             check_too_large);
    hw_check("comm_recv times out, sleeping", 10, check_recv_timeout);
    return hw_end();
}
