/*
 * server.c - question 1 (reference): a UDP server that acknowledges every
 * message.
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

    for (;;) {
        struct sockaddr_in from; /* UDP_Read says who sent the datagram */
        char text[MSG_MAX + 1];
        int n = UDP_Read(sd, &from, text, MSG_MAX);
        if (n < 0) {
            perror("server: UDP_Read");
            break;
        }
        text[n] = '\0'; /* datagrams are bytes, not strings */
        printf("server: got %s\n", text);

        /* The reply goes to the address the message came from: that is
         * how one server answers many clients. */
        char reply[MSG_MAX + 8];
        int len = snprintf(reply, sizeof(reply), "ack %s", text);
        if (UDP_Write(sd, &from, reply, len) < 0)
            perror("server: UDP_Write");
    }
    UDP_Close(sd);
    return 1;
}
