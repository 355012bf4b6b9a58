/*
 * rpc.h - remote procedure calls with at-most-once semantics, over rmsg.
 *
 * A call looks like a local call to the client (rpc_call) and like a plain
 * function to the server (an rpc_handler).  What differs is failure, and
 * the library says exactly what happened:
 *
 *   0            the procedure ran, once, and this is its reply
 *   > 0          the handler ran, once, and reported this error code of
 *                its own (whatever positive value it returned)
 *   -ETIMEDOUT   the deadline passed: the call may or may not have run
 *   -ENOSYS      the server has no such procedure: it did not run
 *   -ESTALE      the server restarted: the call did not run on the new
 *                instance (it may have run on the one that crashed)
 *   -ECONNABORTED the server had to discard this client's state, and the
 *                call had been sent before: it was refused rather than
 *                risk running it twice (it may have run once)
 *   -EMSGSIZE    the request or the reply is larger than allowed: it did
 *                not run (request) or ran (reply too large to return)
 *   -EBUSY       the server has no room to remember another client or
 *                call (every remembered one has a call running, or
 *                cache_bytes is held by calls running): it did not run
 *   -EPROTO      a reply that makes no sense (a broken or hostile server)
 *   -EINVAL, -ENOMEM
 *
 * At-most-once (the lectures' definition): each client instance has a
 * random 64-bit identity and numbers its calls.  The server keeps, per
 * client, the replies it may still have to send again; a request that
 * arrives again is answered from that cache, and one that arrives while
 * the first copy still runs waits for it, never starting a second run.
 * Clients report the number below which they hold every reply, so the
 * server can free those; the cache is bounded, and a client whose state
 * was discarded has retransmitted calls refused (-ECONNABORTED), never run
 * again.  Each server instance has a random incarnation number: a call
 * meant for an earlier instance is refused (-ESTALE).  Procedures
 * registered RPC_IDEMPOTENT skip the cache (at-least-once), so a course
 * can show the two semantics side by side.
 *
 * Messages travel over rmsg, so they are reliable, ordered and of any
 * size; the rpc layer adds the call/reply header described in rpc.c.
 * Errors follow the library's convention: >= 0 success, negative errno.
 */
#ifndef RPC_H
#define RPC_H

#include <stddef.h>
#include <stdint.h>

#include "rmsg.h"
#include "rpc_marshal.h"

/* ------------------------------------------------------------------------ */
/* Configuration                                                             */
/* ------------------------------------------------------------------------ */

#define RPC_MAX_MESSAGE_DEFAULT (64u << 20) /* request or reply, bytes */
#define RPC_CACHE_CLIENTS_DEFAULT 4096     /* clients remembered */
#define RPC_CACHE_BYTES_DEFAULT (64u << 20) /* cached replies, all clients */
#define RPC_STATUS_INTERVAL_MS 250 /* a client asks after a slow call */

struct rpc_config {
    struct rmsg_config rmsg;  /* the transport underneath */
    uint32_t max_request;     /* bytes of arguments accepted / sent */
    uint32_t max_reply;       /* bytes of results accepted / sent */
    uint32_t cache_clients;   /* server: clients whose state is kept */
    size_t cache_bytes;       /* server: bytes of replies kept, each kept
                                 call counting 64 bytes or so more for its
                                 bookkeeping.  Past it go first whole
                                 clients with nothing running, then the
                                 oldest finished calls (a copy of one sent
                                 again is refused, -ECONNABORTED) */
    uint32_t retry_ms;        /* client: 0 (default) sends each call once
                                 and relies on rmsg; > 0 also sends it again
                                 every retry_ms until its reply arrives, as
                                 a classic RPC client over UDP does.  The
                                 copies show what the reply cache is for:
                                 an RPC_IDEMPOTENT procedure runs once per
                                 copy that reaches the server. */
};

/* Fills *cfg with the defaults above and rmsg's defaults. */
void rpc_config_default(struct rpc_config *cfg);

/* ------------------------------------------------------------------------ */
/* Server                                                                    */
/* ------------------------------------------------------------------------ */

struct rpc_server;

/* A procedure.  It gets the request bytes (valid during the call) and the
 * user pointer given at registration, appends its results to *reply (see
 * rpc_marshal.h; the library sends them), and returns 0, or a positive
 * code of its own that reaches the caller as rpc_call's return value
 * (any results appended are then sent too).  A negative return is taken
 * as "no such procedure" for this request (-ENOSYS at the caller). */
typedef int (*rpc_handler)(void *arg, const void *req, size_t len,
                           struct rpc_enc *reply);

#define RPC_IDEMPOTENT 1 /* rpc_register flag: run again on duplicates */

/* Opens a server on `port` (0: ephemeral) with cfg (NULL: defaults).
 * Returns 0 and the server in *out, or -errno. */
int rpc_server_open(int port, const struct rpc_config *cfg,
                    struct rpc_server **out);

/* The port the server listens on. */
int rpc_server_port(const struct rpc_server *s);

/* Registers procedure number `proc` (registering it again replaces it).
 * Call before rpc_serve.  Returns 0, -EINVAL or -ENOMEM. */
int rpc_register(struct rpc_server *s, uint32_t proc, rpc_handler h,
                 void *arg, int flags);

/* Serves calls until rpc_stop.  workers == 0: handlers run one at a time
 * in the calling thread; workers > 0: the calling thread receives and
 * that many threads run handlers (for handlers that block).  Returns 0
 * once stopped, or -errno if it could not start. */
int rpc_serve(struct rpc_server *s, int workers);

/* Makes rpc_serve return soon, after the calls running now have replied.
 * Safe from another thread and from a signal handler. */
void rpc_stop(struct rpc_server *s);

/* Frees the server (after rpc_serve has returned).  NULL is a no-op. */
void rpc_server_close(struct rpc_server *s);

struct rpc_server_stats {
    uint64_t calls;          /* requests that ran a handler */
    uint64_t cached_replies; /* duplicates answered from the cache */
    uint64_t waited;         /* duplicates that arrived while running */
    uint64_t in_progress;    /* status queries answered "still running" */
    uint64_t stale;          /* refused: meant for an earlier instance */
    uint64_t refused;        /* refused: client state discarded */
    uint64_t no_such_proc;
    uint64_t malformed;      /* requests with a bad header, dropped */
    uint64_t clients;        /* clients remembered now */
    uint64_t evicted;        /* clients whose state was discarded */
    uint64_t cache_bytes;    /* bytes of replies kept now */
    uint64_t dropped_replies; /* finished calls forgotten, oldest first, to
                                 keep a client within cache_bytes; a copy
                                 of one sent again is refused */
};

void rpc_server_stats(struct rpc_server *s, struct rpc_server_stats *st);

/* The server's transport counters (its rmsg endpoint's, all clients
 * together: datagrams, retransmissions, ...).  Returns 0 or -EINVAL. */
int rpc_server_transport_stats(struct rpc_server *s, struct rmsg_stats *st);

/* ------------------------------------------------------------------------ */
/* Client                                                                    */
/* ------------------------------------------------------------------------ */

struct rpc_client;

/* Opens a client of the server at host:port (a name or an IPv4/IPv6
 * address).  The client gets a new random identity: a restarted client is
 * a new client.  Returns 0 and the client in *out, -EINVAL (bad host),
 * or -errno. */
int rpc_client_open(const char *host, int port, const struct rpc_config *cfg,
                    struct rpc_client **out);

/* Calls procedure `proc` with len bytes of req and waits at most
 * timeout_ms (negative: as long as it takes) for the outcome (see the
 * table at the top).  On 0 or a positive return, *reply is a malloc'd
 * buffer the caller frees (NULL when the reply is empty) and *reply_len
 * its length; otherwise *reply is NULL.  reply may be NULL to discard the
 * results.  Safe from several threads. */
int rpc_call(struct rpc_client *c, uint32_t proc, const void *req,
             size_t len, void **reply, size_t *reply_len, int timeout_ms);

/* Starts a call and returns its id (> 0) at once, or -EMSGSIZE, -ENOMEM,
 * -EINVAL.  The call must be completed by its deadline (timeout_ms from
 * now; negative: none); collect it with rpc_wait or rpc_wait_any. */
int64_t rpc_call_async(struct rpc_client *c, uint32_t proc, const void *req,
                       size_t len, int timeout_ms);

/* Waits at most timeout_ms for call `id` (from rpc_call_async) and returns
 * its outcome as rpc_call does; the call is then forgotten.  If timeout_ms
 * passes first, returns -EAGAIN and the call stays pending.  -ENOENT: no
 * such pending call. */
int rpc_wait(struct rpc_client *c, int64_t id, void **reply,
             size_t *reply_len, int timeout_ms);

/* Like rpc_wait for whichever pending call completes first; its id goes to
 * *id.  -ENOENT when nothing is pending, -EAGAIN on timeout. */
int rpc_wait_any(struct rpc_client *c, int64_t *id, void **reply,
                 size_t *reply_len, int timeout_ms);

/* Closes the client; pending calls are abandoned.  NULL is a no-op. */
void rpc_client_close(struct rpc_client *c);

/* The client's transport counters (retransmissions, round trip, ...). */
int rpc_client_stats(struct rpc_client *c, struct rmsg_stats *st);

/* A short phrase for any outcome above, e.g. for printing. */
const char *rpc_strerror(int outcome);

#endif /* RPC_H */
