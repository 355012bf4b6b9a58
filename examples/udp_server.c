/*
 * udp_server.c - the textbook's first exercise: a server that answers every
 * message with an acknowledgment.
 *
 *     udp_server [port] [count]
 *
 * port defaults to 10000; port 0 asks the system for a free one and prints
 * "listening on port N".  The server stops after `count` messages (default:
 * never).  Only the textbook's calls are used, plus UDP_Port to learn the
 * port that 0 picked.
 */
#include <stdio.h>
#include "udp.h"

#define BUFFER_SIZE 1000

int main(int argc, char *argv[])
{
    int port = argc > 1 ? atoi(argv[1]) : 10000;
    int count = argc > 2 ? atoi(argv[2]) : 0; /* 0 = serve forever */

    int sd = UDP_Open(port); /* -1 on failure, never 0 */
    if (sd < 0) {
        perror("udp_server: UDP_Open");
        exit(1);
    }
    if (port == 0) {
        printf("listening on port %d\n", UDP_Port(sd));
        fflush(stdout); /* a script may be waiting for this line */
    }

    for (int served = 0; count == 0 || served < count; served++) {
        struct sockaddr_in addr; /* filled in with the client's address */
        char message[BUFFER_SIZE];
        int rc = UDP_Read(sd, &addr, message, BUFFER_SIZE - 1);
        if (rc < 0) {
            perror("udp_server: UDP_Read");
            exit(1);
        }
        message[rc] = '\0'; /* the client may not have sent a terminator */
        printf("server:: read message [size:%d contents:(%s)]\n", rc, message);

        /* Answer the sender: its address came with the message. */
        char reply[BUFFER_SIZE + 8];
        sprintf(reply, "ack: %s", message);
        rc = UDP_Write(sd, &addr, reply, (int)strlen(reply) + 1);
        assert(rc >= 0);
    }
    UDP_Close(sd);
    return 0;
}
