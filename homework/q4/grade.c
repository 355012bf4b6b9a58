/*
 * grade.c - the grader of question 4: messages of any size.
 *
 * Senders and receivers of the student's library in separate processes
 * (common/drive.c):
 *   1. messages from 0 bytes to 8 MiB on a clean network arrive whole, in
 *      order, one buffer each;
 *   2. about 1 MiB in large and small messages over a network that drops,
 *      duplicates, reorders and damages datagrams arrives intact;
 *   3. 100 messages over a network that damages 10% of datagrams (in the
 *      header as much as in the data) arrive undamaged: a library without
 *      a checksum of its own cannot pass;
 *   4. a message larger than COMM_MSG_MAX is refused.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "drive.h"
#include "harness.h"

#define FAULTY "drop=0.02,dup=0.02,reorder=0.05,corrupt=0.01"

static void check_clean(void)
{
    static const size_t sizes[] = {0,       1,      65000,   65537,
                                   1048579, 100000, 8 << 20, 2};
    struct hw_stream s = {
        .seed = 61, .count = 8, .fixed = sizes, .nfixed = 8, .tag = -1};
    struct hw_rx_plan rx = {.streams = &s, .nstreams = 1};
    struct hw_tx_plan tx = {.stream = &s, .mode = HW_BLOCKING};
    double t = hw_transfer(&rx, &tx, 1, 25000);
    hw_detail("%.1f MiB in %.2f s", hw_stream_bytes(&s) / 1048576.0, t);
}

static void check_faulty(void)
{
    static const size_t sizes[] = {200000, 0, 70001, 1, 300000, 150000};
    struct hw_stream s = {.seed = 62,
                          .count = 12,
                          .min = 1,
                          .max = 100000,
                          .fixed = sizes,
                          .nfixed = 6,
                          .tag = -1};
    struct hw_rx_plan rx = {
        .faults = FAULTY ",seed=621", .streams = &s, .nstreams = 1};
    struct hw_tx_plan tx = {
        .faults = FAULTY ",seed=622", .stream = &s, .mode = HW_BLOCKING};
    double t = hw_transfer(&rx, &tx, 1, 25000);
    hw_detail("%.2f MiB in %.1f s", hw_stream_bytes(&s) / 1048576.0, t);
}

static void check_damage(void)
{
    struct hw_stream s = {
        .seed = 63, .count = 100, .min = 1, .max = 2000, .tag = -1};
    struct hw_rx_plan rx = {
        .faults = "corrupt=0.1,seed=631", .streams = &s, .nstreams = 1};
    struct hw_tx_plan tx = {
        .faults = "corrupt=0.1,seed=632", .stream = &s, .mode = HW_BLOCKING};
    double t = hw_transfer(&rx, &tx, 1, 20000);
    hw_detail("%d messages in %.1f s", s.count, t);
}

static void check_too_large(void)
{
    unsetenv("UDP_FAULTS");
    struct comm *c = NULL;
    struct sockaddr_in self;
    if (comm_open(0, &c) < 0 ||
        comm_address("127.0.0.1", comm_port(c), &self) < 0)
        hw_fail("comm_open or comm_address failed");
    size_t n = (size_t)COMM_MSG_MAX + 1;
    unsigned char *big = calloc(1, n);
    if (big == NULL)
        hw_fail("out of memory");
    int rc = comm_send(c, &self, big, n);
    if (rc != -EMSGSIZE)
        hw_fail("comm_send of COMM_MSG_MAX + 1 bytes returned %d, not "
                "-EMSGSIZE",
                rc);
}

int main(void)
{
    hw_begin("q4: messages of any size");
    hw_check("0 bytes to 8 MiB on a clean network, whole and in order", 30,
             check_clean);
    hw_check("1 MiB in 12 messages over " FAULTY ", intact", 30, check_faulty);
    hw_check("100 messages over corrupt=0.1 arrive undamaged", 25,
             check_damage);
    hw_check("a message larger than COMM_MSG_MAX is refused", 10,
             check_too_large);
    return hw_end();
}
