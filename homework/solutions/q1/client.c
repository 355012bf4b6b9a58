/*
 * client.c - question 1 (reference): sends each message given on the
 * command line to the server and prints the acknowledgment it gets back.
 *
 *     client HOST PORT MESSAGE...
 *
 * For each MESSAGE, in order: send its text (without the terminating '\0')
 * as one datagram, wait for the reply, print "client: <reply>" on a line of
 * its own.  Exits with status 0 once every message has its reply.
 */
#include <stdio.h>
#include "udp.h"

#define MSG_MAX 1000 /* the longest message this exchange carries, bytes */

int main(int argc, char *argv[])
{
    if (argc < 4) {
        fprintf(stderr, "usage: client HOST PORT MESSAGE...\n");
        return 2;
    }
    int sd = UDP_Open(0); /* a client does not care which port it has */
    if (sd < 0) {
        perror("client: UDP_Open");
        return 1;
    }
    struct sockaddr_in server;
    if (UDP_FillSockAddr(&server, argv[1], atoi(argv[2])) < 0) {
        perror("client: UDP_FillSockAddr");
        return 1;
    }

    for (int i = 3; i < argc; i++) {
        int len = (int)strlen(argv[i]);
        if (len > MSG_MAX) {
            fprintf(stderr, "client: message %d is too long\n", i - 2);
            return 1;
        }
        if (UDP_Write(sd, &server, argv[i], len) < 0) {
            perror("client: UDP_Write");
            return 1;
        }
        /* Without loss, the next datagram to arrive is the reply.  (Over a
         * real network this wait may last forever: question 3.) */
        char reply[MSG_MAX + 16];
        int n = UDP_Read(sd, NULL, reply, (int)sizeof(reply) - 1);
        if (n < 0) {
            perror("client: UDP_Read");
            return 1;
        }
        reply[n] = '\0';
        printf("client: %s\n", reply);
    }

    UDP_Close(sd);
    return 0;
}
