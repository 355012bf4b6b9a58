/*
 * comm.h - your communication library (question 4: messages of any size).
 *
 * Do not change this file: the grader compiles your comm.c against its own
 * copy of it.
 *
 * The calls and promises are question 3's, with one difference: a message
 * may now be far larger than a datagram (up to COMM_MSG_MAX bytes).  The
 * sending library cuts it into pieces that each fit in a datagram, sends
 * them (one at a time is fine here: question 5 makes it fast), and the
 * receiving library puts them back together and delivers the message
 * whole, in one buffer, exactly once, in order, byte for byte.
 *
 * The network may now also damage datagrams: a bit flipped anywhere, in
 * your header too.  A damaged datagram must never make its way into a
 * message (or be taken for an acknowledgment): check every datagram.
 *
 * Errors: a negative errno value (-EINVAL, -EMSGSIZE, -ETIMEDOUT, -ENOMEM,
 * ...); 0 or more on success.
 */
#ifndef COMM_H
#define COMM_H

#include <stddef.h>

#include "udp.h"

/* The largest message, in bytes (64 MiB).  A receiver never believes a
 * length beyond it, whatever a datagram says. */
#define COMM_MSG_MAX (64u << 20)

/* One endpoint: a UDP socket and whatever your library needs with it. */
struct comm;

/* Opens an endpoint on `port` (0: any free port, see comm_port).  Returns 0
 * and the endpoint in *out, or -errno (-EADDRINUSE, -ENOMEM, ...). */
int comm_open(int port, struct comm **out);

/* Closes the endpoint and frees it.  NULL is a no-op. */
void comm_close(struct comm *c);

/* The port the endpoint is bound to (host order). */
int comm_port(const struct comm *c);

/* Fills *addr with the IPv4 address of host and port.  Returns 0, or
 * -EINVAL, -EHOSTUNREACH. */
int comm_address(const char *host, int port, struct sockaddr_in *addr);

/* Sends len bytes of msg (0 to COMM_MSG_MAX) to *to and waits until the
 * receiver's library has acknowledged all of it.  Each piece is sent again
 * when its acknowledgment does not come in time: the first time at most
 * 250 ms after it was sent, and never more than 1 s after the previous
 * try.  It retries for ever, sleeping while it waits.  Returns 0, or
 * -EMSGSIZE when len > COMM_MSG_MAX, -EINVAL, -ENOMEM.  The caller keeps
 * msg. */
int comm_send(struct comm *c, const struct sockaddr_in *to, const void *msg,
              size_t len);

/* Waits at most timeout_ms milliseconds (negative: forever; 0: do not
 * wait) for the next whole message, acknowledging what arrives (again, for
 * copies) and delivering each message once.  On success returns 0, stores
 * its sender in *from (when from is not NULL), and a buffer the caller
 * must free() in *msg with its length in *len (*msg may be NULL when *len
 * is 0).  Returns -ETIMEDOUT when no whole message arrived in time.  The
 * wait sleeps. */
int comm_recv(struct comm *c, struct sockaddr_in *from, void **msg, size_t *len,
              int timeout_ms);

#endif /* COMM_H */
