/*
 * server.c - question 2: question 1's server, rewritten on your library.
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

    /* TODO(student): forever: comm_recv a message (waiting as long as it
     * takes), comm_send "ack <text>" back to its sender, free the
     * message. */

    comm_close(c);
    return 0;
}
