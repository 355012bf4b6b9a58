/*
 * udp_client.c - the textbook's first exercise: send a message to the server,
 * wait for its acknowledgment, print it.
 *
 *     udp_client host port [count]
 *
 * sends `count` messages (default 1), one at a time.
 *
 * A pure textbook client would call UDP_Read and wait forever.  That is fine
 * on a quiet network, but with UDP_FAULTS set (or a real lossy network) one
 * lost message or reply would hang it.  So this client waits at most one
 * second with UDP_ReadTimeout and sends again when nothing came: the
 * retransmission of question 3, in miniature.  (The server may then see a
 * message twice; making that harmless is the rest of the question.)
 */
#include <stdio.h>
#include "udp.h"

#define BUFFER_SIZE 1000
#define TIMEOUT_MS  1000
#define MAX_TRIES   10

int main(int argc, char *argv[])
{
    if (argc < 3) {
        fprintf(stderr, "usage: udp_client host port [count]\n");
        exit(2);
    }
    int count = argc > 3 ? atoi(argv[3]) : 1;

    int sd = UDP_Open(0); /* any free port will do for a client */
    if (sd < 0) {
        perror("udp_client: UDP_Open");
        exit(1);
    }
    struct sockaddr_in server;
    if (UDP_FillSockAddr(&server, argv[1], atoi(argv[2])) < 0) {
        perror("udp_client: UDP_FillSockAddr");
        exit(1);
    }

    for (int i = 0; i < count; i++) {
        char message[BUFFER_SIZE], expected[BUFFER_SIZE + 8];
        sprintf(message, "hello world %d", i);
        sprintf(expected, "ack: %s", message);

        int tries = 0, acked = 0;
        while (!acked && tries++ < MAX_TRIES) {
            int rc = UDP_Write(sd, &server, message, (int)strlen(message) + 1);
            assert(rc >= 0);
            /* Wait for the reply.  A late reply to an earlier try of an
             * earlier message is not ours: skip it and keep waiting. */
            for (;;) {
                struct sockaddr_in from;
                char reply[BUFFER_SIZE + 8];
                rc = UDP_ReadTimeout(sd, &from, reply, (int)sizeof(reply) - 1,
                                     TIMEOUT_MS);
                if (rc < 0) {
                    printf("client:: no reply, sending again\n");
                    break;
                }
                reply[rc] = '\0';
                if (strcmp(reply, expected) == 0) {
                    printf("client:: got reply [size:%d contents:(%s)]\n", rc,
                           reply);
                    acked = 1;
                    break;
                }
            }
        }
        if (!acked) {
            fprintf(stderr, "udp_client: no reply after %d tries\n", MAX_TRIES);
            exit(1);
        }
    }
    UDP_Close(sd);
    return 0;
}
