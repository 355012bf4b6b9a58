/*
 * comm.h - your communication library (question 2).
 *
 * Do not change this file: the grader compiles your comm.c against its own
 * copy of it.  Everything your library keeps goes into struct comm, which
 * you define in comm.c (callers only ever hold a pointer to it).
 *
 * A message is a sequence of bytes (not a string: it may hold '\0' and has
 * no terminator).  In this question the library is still unreliable: one
 * message is one datagram, and a message the network loses is lost.
 *
 * Errors: every function that can fail returns a negative errno value
 * (-EINVAL, -EMSGSIZE, -ETIMEDOUT, -ENOMEM, ...) and 0 or more on success,
 * the convention of the library underneath (see README.md).
 */
#ifndef COMM_H
#define COMM_H

#include <stddef.h>

#include "udp.h"

/* The largest message, in bytes.  It fits in one UDP datagram with room
 * for a header of your own (questions 3 and on add one). */
#define COMM_MSG_MAX 65000

/* One endpoint: a UDP socket and whatever your library needs with it. */
struct comm;

/* Opens an endpoint on `port` (0: any free port, see comm_port).  Returns 0
 * and the endpoint in *out, or -errno (for example -EADDRINUSE when the
 * port is taken, -ENOMEM). */
int comm_open(int port, struct comm **out);

/* Closes the endpoint and frees it.  NULL is a no-op. */
void comm_close(struct comm *c);

/* The port the endpoint is bound to (host order). */
int comm_port(const struct comm *c);

/* Fills *addr with the IPv4 address of host (a name or a dotted address)
 * and port.  Returns 0, or a negative errno value (-EINVAL for a bad port,
 * -EHOSTUNREACH when the name does not resolve). */
int comm_address(const char *host, int port, struct sockaddr_in *addr);

/* Sends len bytes of msg to *to as one message.  Returns 0, or -EMSGSIZE
 * when len > COMM_MSG_MAX, -EINVAL, or another -errno from the socket.  The
 * caller keeps msg. */
int comm_send(struct comm *c, const struct sockaddr_in *to, const void *msg,
              size_t len);

/* Waits at most timeout_ms milliseconds (negative: forever; 0: do not
 * wait) for the next message.  On success returns 0, stores its sender in
 * *from (when from is not NULL), and a buffer the caller must free() in
 * *msg with its length in *len (*msg may be NULL when *len is 0).  Returns
 * -ETIMEDOUT when nothing arrived in time.  The wait sleeps: it never spins
 * on the CPU. */
int comm_recv(struct comm *c, struct sockaddr_in *from, void **msg, size_t *len,
              int timeout_ms);

#endif /* COMM_H */
