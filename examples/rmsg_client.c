/*
 * rmsg_client.c - sends "hello world" messages over rmsg and prints each
 * reply.  Usage: rmsg_client host port [count]
 *
 * Try it over a bad network:
 *   UDP_FAULTS=drop=0.2,dup=0.1,reorder=0.1 build/examples/rmsg_client ...
 * and RMSG_TRACE=1 to watch every datagram, acknowledgment and retry.
 */
#include <stdio.h>
#include <stdlib.h>

#include "rmsg.h"

int main(int argc, char *argv[])
{
    if (argc < 3) {
        fprintf(stderr, "usage: rmsg_client host port [count]\n");
        return 2;
    }
    int count = argc > 3 ? atoi(argv[3]) : 1;
    struct udp_addr server;
    if (UDP_Resolve(argv[1], atoi(argv[2]), AF_UNSPEC, &server) != 0) {
        fprintf(stderr, "rmsg_client: cannot resolve %s\n", argv[1]);
        return 1;
    }
    struct rmsg_endpoint *ep;
    int rc = rmsg_open(0, NULL, &ep);
    if (rc < 0) {
        fprintf(stderr, "rmsg_client: %s\n", strerror(-rc));
        return 1;
    }
    int failed = 0;
    for (int i = 0; i < count; i++) {
        char message[64];
        int n = snprintf(message, sizeof(message), "hello world %d", i);
        rc = rmsg_send(ep, &server, message, (size_t)n + 1, 5000);
        void *reply = NULL;
        size_t len = 0;
        if (rc == 0)
            rc = rmsg_recv(ep, NULL, &reply, &len, 5000);
        if (rc < 0) {
            fprintf(stderr, "rmsg_client: message %d: %s\n", i, strerror(-rc));
            failed++;
            continue;
        }
        printf("client got reply: %.*s\n", (int)len, (char *)reply);
        free(reply);
    }
    struct rmsg_stats st;
    rmsg_stats(ep, NULL, &st);
    printf("datagrams sent %llu, retransmissions %llu, duplicates %llu, "
           "corrupt %llu\n", (unsigned long long)st.datagrams_sent,
           (unsigned long long)st.retransmissions,
           (unsigned long long)st.duplicates, (unsigned long long)st.corrupt);
    /* Let the last acknowledgment leave before we go. */
    void *extra;
    size_t len;
    if (rmsg_recv(ep, NULL, &extra, &len, 200) == 0)
        free(extra);
    rmsg_close(ep);
    return failed ? 1 : 0;
}
