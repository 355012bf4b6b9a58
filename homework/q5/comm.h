/*
 * comm.h - your communication library (question 5: many fragments in
 * flight).
 *
 * Do not change this file: the grader compiles your comm.c against its own
 * copy of it.
 *
 * The calls and promises are question 4's: messages of any size up to
 * COMM_MSG_MAX, delivered whole, exactly once, in order, byte for byte,
 * over a network that loses, duplicates, reorders and damages datagrams.
 * What changes is speed: comm_send no longer waits for each fragment's
 * acknowledgment before sending the next.  Up to a window of fragments may
 * be in flight at once, each marked so that the receiver puts it in its
 * place whatever order the fragments arrive in.  comm_set_window sets that
 * window; a window of 1 is question 4's stop and wait.
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
