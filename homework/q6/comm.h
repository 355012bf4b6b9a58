/*
 * comm.h - your communication library (question 6: asynchronous sends,
 * in-order delivery).
 *
 * Do not change this file: the grader compiles your comm.c against its own
 * copy of it.
 *
 * Question 5's calls and promises, and two more calls.  comm_send_async
 * hands the library a message and returns without waiting for it to be
 * acknowledged, so a program can send one message after another with many
 * in flight at once; comm_wait_all waits until everything handed over so
 * far has been acknowledged.  The receiver still gets each sender's
 * messages exactly once, whole, and in the order they were handed over
 * (whether with comm_send or comm_send_async), however the network loses,
 * duplicates, reorders or damages datagrams.
 *
 * Your library makes progress inside its calls (it may also use a thread
 * of its own, but need not): a program that has handed over messages then
 * calls comm_wait_all, comm_send or comm_recv, and that is when
 * retransmissions happen.
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

/* The most bytes of a message one datagram carries.  Keep fragments this
 * small or smaller: the grader compares windows of fragments, and a few
 * giant fragments would make any window look alike. */
#define COMM_FRAGMENT_MAX 8192

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

/* Sets how many fragments to one destination may be in flight: sent, and
 * not yet known to have arrived, counted from the oldest fragment not yet
 * acknowledged (so the receiver never needs room for more than that many
 * out of order).  1 is stop and wait: each fragment waits for the
 * acknowledgment of the one before.  Every value from 1 to 64 must be
 * accepted; a larger one may be lowered to what the library supports.
 * The default, before any call, is the library's own choice (at least 8).
 * Returns 0, or -EINVAL for fragments < 1. */
int comm_set_window(struct comm *c, int fragments);

/* Sends len bytes of msg (0 to COMM_MSG_MAX) to *to in fragments of at
 * most COMM_FRAGMENT_MAX bytes, a window of them in flight at a time, and
 * waits until the receiver's library has acknowledged all of it.  Each
 * fragment is sent again when its acknowledgment does not come in time:
 * the first time at most 250 ms after it was sent, and never more than
 * 1 s after the previous try.  It retries for ever, sleeping while it
 * waits.  Returns 0, or -EMSGSIZE when len > COMM_MSG_MAX, -EINVAL,
 * -ENOMEM.  The caller keeps msg. */
int comm_send(struct comm *c, const struct sockaddr_in *to, const void *msg,
              size_t len);

/* Hands the library a copy of len bytes of msg (0 to COMM_MSG_MAX) for
 * *to and returns, normally without waiting: the message is sent, a window
 * of fragments at a time, and resent, by this and later calls on the
 * endpoint.  It may wait (sleeping) only while more than COMM_QUEUE_MAX
 * bytes handed over are not yet acknowledged.  Messages to one destination
 * are delivered in the order they were handed over, those of comm_send
 * included.  Returns 0, or -EMSGSIZE, -EINVAL, -ENOMEM.  The caller keeps
 * msg and may reuse its buffer at once. */
#define COMM_QUEUE_MAX (16u << 20)
int comm_send_async(struct comm *c, const struct sockaddr_in *to,
                    const void *msg, size_t len);

/* Waits at most timeout_ms milliseconds (negative: as long as it takes)
 * until every message handed over so far, to every destination, has been
 * acknowledged by its receiver's library, sleeping while it waits and
 * resending what needs it.  Returns 0 at once when nothing is outstanding;
 * 0 once all is acknowledged; -ETIMEDOUT when timeout_ms passed first
 * (what is outstanding stays queued: wait again later). */
int comm_wait_all(struct comm *c, int timeout_ms);

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
