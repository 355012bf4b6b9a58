/*
 * fault_preview.c - shows what a fault specification does to the first
 * datagrams a socket sends: which are dropped, duplicated, corrupted,
 * held back for reordering.
 *
 * Usage: fault_preview SPEC [count]
 *
 *   build/examples/fault_preview drop=0.2,dup=0.1,seed=42 10
 *   1 sent
 *   2 sent
 *   3 dropped
 *   ...
 *   10 duplicated
 *   total: 10 sent, 1 dropped, 1 duplicated, 0 corrupted, 0 reordered
 *
 * The udp layer's faults come from a seeded generator, drawn in a fixed
 * order for each datagram, so the same specification gives the same fate
 * to the n-th datagram of any socket, whatever it contains and whenever
 * it is sent.  That makes a lossy run repeatable: a program run with
 * UDP_FAULTS=SPEC loses exactly the datagrams listed here (counting every
 * datagram its socket sends, retransmissions and acknowledgments too).
 * The tests use it to check that rtrace marks the right ones as lost.
 *
 * It sends `count` small datagrams to itself through UDP_SetFaults and
 * reads UDP_FaultStats after each one to see what happened to it.
 */
#include <stdio.h>
#include "udp.h"

int main(int argc, char *argv[])
{
    if (argc < 2) {
        fprintf(stderr, "usage: fault_preview SPEC [count]\n");
        return 2;
    }
    int count = argc > 2 ? atoi(argv[2]) : 20;
    int sd = UDP_Open(0);
    struct sockaddr_in self;
    char err[128];
    if (sd < 0 || UDP_FillSockAddr(&self, "127.0.0.1", UDP_Port(sd)) < 0) {
        perror("fault_preview");
        return 1;
    }
    if (UDP_SetFaults(sd, argv[1], err, sizeof(err)) < 0) {
        fprintf(stderr, "fault_preview: %s\n", err);
        return 1;
    }
    struct udp_fault_stats before, after;
    UDP_FaultStats(sd, &before);
    after = before;
    for (int i = 1; i <= count; i++) {
        char msg[] = "x";
        if (UDP_Write(sd, &self, msg, 1) < 0) {
            perror("fault_preview: UDP_Write");
            return 1;
        }
        UDP_FaultStats(sd, &after);
        printf("%d", i);
        if (after.dropped > before.dropped)
            printf(" dropped");
        if (after.corrupted > before.corrupted)
            printf(" corrupted");
        if (after.duplicated > before.duplicated)
            printf(" duplicated");
        if (after.reordered > before.reordered)
            printf(" reordered");
        if (after.dropped == before.dropped &&
            after.corrupted == before.corrupted &&
            after.duplicated == before.duplicated &&
            after.reordered == before.reordered)
            printf(" sent");
        printf("\n");
        before = after;
        /* Empty our own receive buffer so it never fills up. */
        char buf[16];
        while (UDP_ReadTimeout(sd, NULL, buf, sizeof(buf), 0) >= 0)
            ;
    }
    printf("total: %llu sent, %llu dropped, %llu duplicated, %llu corrupted, "
           "%llu reordered\n",
           (unsigned long long)after.sent, (unsigned long long)after.dropped,
           (unsigned long long)after.duplicated,
           (unsigned long long)after.corrupted,
           (unsigned long long)after.reordered);
    UDP_Close(sd);
    return 0;
}
