/*
 * comm.h - your communication library (question 3: timeout/retry).
 *
 * Do not change this file: the grader compiles your comm.c against its own
 * copy of it.  Everything your library keeps goes into struct comm, which
 * you define in comm.c.
 *
 * The calls are question 2's; what changes is what comm_send promises.  It
 * now returns only once the receiver's library has acknowledged the
 * message, and it keeps sending it again, as long as it takes, until then.
 * The receiver's library acknowledges every message it receives and hands
 * each message to its application exactly once, in the order each sender
 * sent them, however often the network loses, duplicates or reorders
 * datagrams (messages, or acknowledgments).
 *
 * A message is a sequence of bytes of any value, at most COMM_MSG_MAX of
 * them: it still fits in one datagram, with your header.
 *
 * Errors: a negative errno value (-EINVAL, -EMSGSIZE, -ETIMEDOUT, -ENOMEM,
 * ...); 0 or more on success.
 */
#ifndef COMM_H
#define COMM_H

#include <stddef.h>

#include "udp.h"

/* The largest message, in bytes: one UDP datagram (at most 65507 bytes of
 * payload) leaves room for a header of up to 507 bytes. */
#define COMM_MSG_MAX 65000

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

/* Sends len bytes of msg to *to and waits until the receiver's library has
 * acknowledged them.  When no acknowledgment comes within a timeout, the
 * message goes again: the first time at most 250 ms after the first
 * sending, and never more than 1 s after the previous one (a timeout that
 * grows after each loss is fine).  It retries for ever: there is no
 * failure for "the receiver does not answer".  While it waits the caller
 * sleeps (in UDP_ReadTimeout, say), never spinning on the CPU.  Returns 0,
 * or -EMSGSIZE when len > COMM_MSG_MAX, -EINVAL, -ENOMEM.  The caller
 * keeps msg. */
int comm_send(struct comm *c, const struct sockaddr_in *to, const void *msg,
              size_t len);

/* Waits at most timeout_ms milliseconds (negative: forever; 0: do not
 * wait) for the next message, acknowledging every message that arrives
 * (again, if it is a copy of one already received: its first
 * acknowledgment may have been lost) and delivering each only once.  On
 * success returns 0, stores its sender in *from (when from is not NULL),
 * and a buffer the caller must free() in *msg with its length in *len
 * (*msg may be NULL when *len is 0).  Returns -ETIMEDOUT when nothing
 * arrived in time.  The wait sleeps. */
int comm_recv(struct comm *c, struct sockaddr_in *from, void **msg, size_t *len,
              int timeout_ms);

#endif /* COMM_H */
