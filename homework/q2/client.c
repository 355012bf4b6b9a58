/*
 * client.c - question 2: question 1's client, rewritten on your library.
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
        /* TODO(student): comm_send argv[i], comm_recv the reply, print
         * "client: <reply>" (the reply is len bytes, not a C string: print
         * it with "%.*s"), free it. */
    }

    comm_close(c);
    return 0;
}
