/*
 * comm.c - question 2 (reference): the calls of comm.h over the
 * textbook's udp layer.  Still unreliable: one message is one datagram.
 *
 * This is the only file that calls UDP_* functions; client.c and server.c
 * use comm.h alone.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "comm.h"
#include "udp.h"

/* Room for the largest datagram UDP carries, so that a message slightly
 * too long is seen whole (and can be refused) rather than cut. */
#define DATAGRAM_MAX 65536

/* Everything the library keeps for one endpoint. */
struct comm {
    int fd;                 /* the UDP socket */
    char buf[DATAGRAM_MAX]; /* where datagrams land before being copied */
};

int comm_open(int port, struct comm **out)
{
    struct comm *c = malloc(sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->fd = UDP_Open(port);
    if (c->fd < 0) {
        int err = errno;
        free(c);
        return -err;
    }
    *out = c;
    return 0;
}

void comm_close(struct comm *c)
{
    if (c == NULL)
        return;
    UDP_Close(c->fd);
    free(c);
}

int comm_port(const struct comm *c)
{
    return UDP_Port(c->fd);
}

int comm_address(const char *host, int port, struct sockaddr_in *addr)
{
    /* UDP_FillSockAddr predates const; it does not write to the name. */
    if (host == NULL || UDP_FillSockAddr(addr, (char *)host, port) < 0)
        return host == NULL ? -EINVAL : -errno;
    return 0;
}

int comm_send(struct comm *c, const struct sockaddr_in *to, const void *msg,
              size_t len)
{
    if (c == NULL || to == NULL || (msg == NULL && len > 0))
        return -EINVAL;
    if (len > COMM_MSG_MAX)
        return -EMSGSIZE;
    struct sockaddr_in dst = *to; /* UDP_Write's parameters are not const */
    if (UDP_Write(c->fd, &dst, (char *)msg, (int)len) < 0)
        return -errno;
    return 0;
}

int comm_recv(struct comm *c, struct sockaddr_in *from, void **msg, size_t *len,
              int timeout_ms)
{
    if (c == NULL || msg == NULL || len == NULL)
        return -EINVAL;
    int n = UDP_ReadTimeout(c->fd, from, c->buf, DATAGRAM_MAX, timeout_ms);
    if (n < 0)
        return -errno;
    void *copy = NULL;
    if (n > 0) {
        copy = malloc((size_t)n);
        if (copy == NULL)
            return -ENOMEM;
        memcpy(copy, c->buf, (size_t)n);
    }
    *msg = copy;
    *len = (size_t)n;
    return 0;
}
