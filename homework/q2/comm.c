/*
 * comm.c - your communication library (question 2): the calls of comm.h
 * over the textbook's udp layer.
 *
 * This is the only file of yours that calls UDP_* functions; client.c and
 * server.c use comm.h alone.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "udp.h"

/* Everything the library keeps for one endpoint. */
struct comm {
    int fd; /* the UDP socket */
    /* TODO(student): anything else you need. */
};

int comm_open(int port, struct comm **out)
{
    /* TODO(student): open a UDP socket on `port` with UDP_Open (it returns
     * -1 and sets errno on failure: turn that into -errno), allocate a
     * struct comm for it, store it in *out, return 0. */
    (void)port;
    (void)out;
    return -ENOSYS;
}

void comm_close(struct comm *c)
{
    /* TODO(student): close the socket and free c (NULL: do nothing). */
    (void)c;
}

int comm_port(const struct comm *c)
{
    /* TODO(student): UDP_Port tells which port the socket is bound to. */
    (void)c;
    return -ENOSYS;
}

int comm_address(const char *host, int port, struct sockaddr_in *addr)
{
    /* TODO(student): UDP_FillSockAddr does the work. */
    (void)host;
    (void)port;
    (void)addr;
    return -ENOSYS;
}

int comm_send(struct comm *c, const struct sockaddr_in *to, const void *msg,
              size_t len)
{
    /* TODO(student): refuse messages larger than COMM_MSG_MAX, then send
     * the message as one datagram with UDP_Write. */
    (void)c;
    (void)to;
    (void)msg;
    (void)len;
    return -ENOSYS;
}

int comm_recv(struct comm *c, struct sockaddr_in *from, void **msg, size_t *len,
              int timeout_ms)
{
    /* TODO(student): wait for one datagram with UDP_ReadTimeout (it
     * sleeps in poll; -1 with errno ETIMEDOUT when nothing came), then hand
     * the caller a malloc'd copy of exactly the bytes received. */
    (void)c;
    (void)from;
    (void)msg;
    (void)len;
    (void)timeout_ms;
    return -ENOSYS;
}
