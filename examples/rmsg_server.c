/*
 * rmsg_server.c - the textbook exchange again, over reliable messages.
 *
 * Where udp_server had to hope its reply arrived, here rmsg_send returns
 * only once the client has acknowledged it, and a lost datagram is sent
 * again by the library.  Usage: rmsg_server [port] [count]
 * (port 0 picks a free port and prints it).
 */
#include <stdio.h>
#include <stdlib.h>

#include "rmsg.h"

int main(int argc, char *argv[])
{
    int port = argc > 1 ? atoi(argv[1]) : 10000;
    int count = argc > 2 ? atoi(argv[2]) : 0; /* 0 = serve forever */
    struct rmsg_endpoint *ep;
    int rc = rmsg_open(port, NULL, &ep);
    if (rc < 0) {
        fprintf(stderr, "rmsg_server: cannot open port %d: %s\n", port,
                strerror(-rc));
        return 1;
    }
    printf("listening on port %d\n", rmsg_port(ep));
    fflush(stdout);
    for (int served = 0; count <= 0 || served < count; served++) {
        struct udp_addr from;
        void *msg;
        size_t len;
        if (rmsg_recv(ep, &from, &msg, &len, -1) < 0)
            break;
        char reply[128];
        int n = snprintf(reply, sizeof(reply), "goodbye world (got %zu bytes)",
                         len);
        free(msg);
        rc = rmsg_send(ep, &from, reply, (size_t)n + 1, 5000);
        if (rc < 0)
            fprintf(stderr, "rmsg_server: reply failed: %s\n", strerror(-rc));
    }
    rmsg_flush(ep, 2000);
    rmsg_close(ep);
    return 0;
}
