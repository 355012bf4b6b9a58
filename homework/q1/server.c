/*
 * server.c - question 1: a UDP server that acknowledges every message.
 *
 *     server PORT        (PORT 0: any free port)
 *
 * Prints "listening on port N" once, then answers every datagram it
 * receives, from whoever sent it, with the datagram "ack " followed by the
 * text it received.  It never stops on its own.
 */
#include <stdio.h>
#include "udp.h"

#define MSG_MAX 1000 /* the longest message this exchange carries, bytes */

int main(int argc, char *argv[])
{
    int port = argc > 1 ? atoi(argv[1]) : 10000;
    int sd = UDP_Open(port);
    if (sd < 0) {
        perror("server: UDP_Open");
        return 1;
    }
    printf("listening on port %d\n", UDP_Port(sd));
    fflush(stdout); /* whoever started us is waiting for this line */

    /* TODO(student): forever:
     *   - receive one datagram with UDP_Read; the address it fills in is the
     *     sender's,
     *   - print "server: got <text>" (optional, for you),
     *   - send "ack <text>" back to that address with UDP_Write.
     * Remember that the bytes received are not a C string: nothing
     * guarantees a terminating '\0'. */

    UDP_Close(sd);
    return 0;
}
