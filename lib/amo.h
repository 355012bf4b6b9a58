/*
 * amo.h - the rpc layer's wire format and its at-most-once bookkeeping
 * (internal).  Nothing here touches a socket or a clock: messages are bytes,
 * decisions are return values, so the rules can be read, and tested over a
 * simulated network, apart from the transport.  rpc.c runs them over rmsg
 * endpoints; tests/test_rpc_sim.c over simulated rmsg cores.  The format
 * and the rules are described at the top of rpc.c.
 */
#ifndef RPC_AMO_H
#define RPC_AMO_H

#include <stddef.h>
#include <stdint.h>

#include "rpc.h"

#define AMO_VERSION 1 /* of the rpc header */
#define T_CALL 1
#define T_REPLY 2
#define T_STATUS 3
#define F_RETRY 1
#define CALL_HEADER 40
#define REPLY_HEADER 24

/* Negative statuses of a REPLY: why the call did not (or could not) run. */
enum {
    REPLY_NOPROC = -1,    /* no such procedure */
    REPLY_STALE = -2,     /* meant for an earlier server incarnation */
    REPLY_DISCARDED = -3, /* client state discarded; a RETRY refused */
    REPLY_TOO_LARGE = -4, /* request or reply over the limit */
    REPLY_RUNNING = -5,   /* STATUS: still running */
    REPLY_UNKNOWN = -6,   /* STATUS: never arrived; send it again */
    REPLY_BUSY = -7,      /* no room to remember another client */
};

struct call_header {
    uint8_t type;
    uint16_t flags;
    uint32_t proc;
    uint64_t client, call, done_below, server;
};

struct reply_header {
    int32_t status;
    uint64_t server, call;
};

/* A reply this short is kept in its entry, with no allocation of its own
 * (a null call's is REPLY_HEADER bytes). */
#define ENTRY_INLINE 40

/* A call of one client that the server has run or is running. */
struct entry {
    struct entry *next;
    uint64_t call;
    int running;
    int32_t status;
    uint8_t *reply; /* the whole REPLY message, header included: inline,
                       or malloc'd */
    size_t len;
    uint8_t inline_reply[ENTRY_INLINE];
};

/* Entries freed are kept for the next calls, up to this many: a call that
 * runs then costs no allocation for its bookkeeping. */
#define AMO_SPARE 32

struct client {
    struct client *hash_next;
    struct client *older, *newer; /* least recently used order */
    uint64_t id, done_below;
    uint64_t floor; /* the first call this state saw, or just above the
                       last one dropped to keep the cache in bounds: a
                       copy of an earlier call sent before, that the state
                       does not know, may have run on state discarded
                       since, and is refused */
    struct udp_addr addr; /* where replies go: the latest request's */
    struct entry *calls;
    int running;
    size_t bytes;
};

struct amo {
    uint64_t incarnation;
    struct client **buckets;
    uint32_t nbuckets, nclients, max_clients;
    struct client *oldest, *newest;
    size_t bytes, max_bytes;
    size_t entries; /* calls kept, each costing ENTRY_COST of max_bytes */
    struct entry *spare; /* freed entries for reuse, AMO_SPARE at most */
    unsigned nspare;
    struct rpc_server_stats st;
};

/* What to do with a CALL or STATUS. */
enum verdict {
    V_RUN,    /* run the handler (the entry is marked running) */
    V_REPLY,  /* send e->reply (cached) */
    V_WAIT,   /* it runs already: its reply will go out when done */
    V_ANSWER, /* send a reply with status *status and no results */
    V_IGNORE, /* a late duplicate of a call the client has the reply of */
};


void amo_put_call(struct rpc_enc *e, const struct call_header *h);

void amo_put_reply(struct rpc_enc *e, const struct reply_header *h);

/* The type of an rpc message (0: not one), checking its version. */
int amo_message_type(const uint8_t *m, size_t len);

/* Decodes a CALL or STATUS header; *body gets the arguments' offset.
 * Returns 0 or -EBADMSG. */
int amo_get_call(const void *m, size_t len, struct call_header *h,
                           size_t *body);

int amo_get_reply(const void *m, size_t len, struct reply_header *h,
                            size_t *body);

int amo_init(struct amo *t, uint64_t incarnation, uint32_t max_clients,
             size_t max_bytes);

/* Decides what a CALL or STATUS from `from` gets; see the top of the file.
 * `idempotent` says whether the procedure skips the cache; `exists`
 * whether it exists at all. */
enum verdict amo_admit(struct amo *t, const struct call_header *h,
                              const struct udp_addr *from, int exists,
                              int idempotent, struct client **cl,
                              struct entry **out, int32_t *status);

/* Records the reply of a call that ran (e NULL: an idempotent one, not
 * kept), then trims the cache to its byte budget. */
void amo_done(struct amo *t, struct client *c, struct entry *e,
                     uint8_t *reply, size_t len);

/* amo_done for a reply still in its encoder: a short one is copied into
 * the entry, a long one's buffer taken (or copied, if it is the caller's).
 * r is left empty. */
void amo_done_enc(struct amo *t, struct client *c, struct entry *e,
                  struct rpc_enc *r);

/* Forgets a call that was admitted but cannot be run after all (no
 * memory): the client will ask again and it runs then. */
void amo_abandon(struct amo *t, struct client *c, struct entry *e);

void amo_free(struct amo *t);

#endif
