/*
 * server.c - question 2 (reference): question 1's server on the library.
 *
 *     server PORT        (PORT 0: any free port)
 *
 * Prints "listening on port N", then answers every message, from whoever
 * sent it, with the message "ack " followed by the text it received.  Uses
 * comm.h only: no UDP_* calls here.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"

int main(int argc, char *argv[])
{
    int port = argc > 1 ? atoi(argv[1]) : 10000;
    struct comm *c;
    int rc = comm_open(port, &c);
    if (rc < 0) {
        fprintf(stderr, "server: comm_open: %s\n", strerror(-rc));
        return 1;
    }
    printf("listening on port %d\n", comm_port(c));
    fflush(stdout); /* whoever started us is waiting for this line */

    for (;;) {
        struct sockaddr_in from;
        void *msg;
        size_t len;
        rc = comm_recv(c, &from, &msg, &len, -1);
        if (rc < 0) {
            fprintf(stderr, "server: comm_recv: %s\n", strerror(-rc));
            break;
        }
        char reply[COMM_MSG_MAX];
        int n = snprintf(reply, sizeof(reply), "ack %.*s", (int)len,
                         len > 0 ? (char *)msg : "");
        free(msg);
        if (n >= (int)sizeof(reply))
            n = (int)sizeof(reply) - 1; /* the text was cut to fit */
        rc = comm_send(c, &from, reply, (size_t)n);
        if (rc < 0)
            fprintf(stderr, "server: comm_send: %s\n", strerror(-rc));
    }
    comm_close(c);
    return 1;
}
