/*
 * client.c - question 2 (reference): question 1's client on the library.
 *
 *     client HOST PORT MESSAGE...
 *
 * For each MESSAGE, in order: send its text (without the '\0') as one
 * message, wait for the reply, print "client: <reply>".  Exits with status
 * 0 once every message has its reply.  Uses comm.h only: no UDP_* calls.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"

int main(int argc, char *argv[])
{
    if (argc < 4) {
        fprintf(stderr, "usage: client HOST PORT MESSAGE...\n");
        return 2;
    }
    struct comm *c;
    int rc = comm_open(0, &c);
    if (rc < 0) {
        fprintf(stderr, "client: comm_open: %s\n", strerror(-rc));
        return 1;
    }
    struct sockaddr_in server;
    rc = comm_address(argv[1], atoi(argv[2]), &server);
    if (rc < 0) {
        fprintf(stderr, "client: %s: %s\n", argv[1], strerror(-rc));
        return 1;
    }

    for (int i = 3; i < argc; i++) {
        rc = comm_send(c, &server, argv[i], strlen(argv[i]));
        void *reply = NULL;
        size_t len = 0;
        if (rc == 0)
            rc = comm_recv(c, NULL, &reply, &len, -1);
        if (rc < 0) {
            fprintf(stderr, "client: message %d: %s\n", i - 2, strerror(-rc));
            comm_close(c);
            return 1;
        }
        printf("client: %.*s\n", (int)len, len > 0 ? (char *)reply : "");
        free(reply);
    }

    comm_close(c);
    return 0;
}
