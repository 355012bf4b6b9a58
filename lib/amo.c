/*
 * amo.c - the rpc header and the server's at-most-once bookkeeping (see
 * amo.h; the rules are described at the top of rpc.c).
 */
#include "amo.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* ------------------------------------------------------------------------ */
/* Wire                                                                      */
/* ------------------------------------------------------------------------ */

void amo_put_call(struct rpc_enc *e, const struct call_header *h)
{
    rpc_put_u8(e, AMO_VERSION);
    rpc_put_u8(e, h->type);
    rpc_put_u16(e, h->flags);
    rpc_put_u32(e, h->proc);
    rpc_put_u64(e, h->client);
    rpc_put_u64(e, h->call);
    rpc_put_u64(e, h->done_below);
    rpc_put_u64(e, h->server);
}

void amo_put_reply(struct rpc_enc *e, const struct reply_header *h)
{
    rpc_put_u8(e, AMO_VERSION);
    rpc_put_u8(e, T_REPLY);
    rpc_put_u16(e, 0);
    rpc_put_i32(e, h->status);
    rpc_put_u64(e, h->server);
    rpc_put_u64(e, h->call);
}

/* The type of an rpc message (0: not one), checking its version. */
int amo_message_type(const uint8_t *m, size_t len)
{
    if (len < 2 || m[0] != AMO_VERSION)
        return 0;
    return m[1];
}

/* Decodes a CALL or STATUS header; *body gets the arguments' offset.
 * Returns 0 or -EBADMSG. */
int amo_get_call(const void *m, size_t len, struct call_header *h,
                           size_t *body)
{
    struct rpc_dec d;
    uint8_t version;
    rpc_dec_init(&d, m, len);
    rpc_get_u8(&d, &version);
    rpc_get_u8(&d, &h->type);
    rpc_get_u16(&d, &h->flags);
    rpc_get_u32(&d, &h->proc);
    rpc_get_u64(&d, &h->client);
    rpc_get_u64(&d, &h->call);
    rpc_get_u64(&d, &h->done_below);
    int err = rpc_get_u64(&d, &h->server);
    if (err || version != AMO_VERSION || (h->type != T_CALL && h->type != T_STATUS) ||
        (h->flags & ~F_RETRY) || h->client == 0 ||
        (h->call == 0 && h->type != T_STATUS)) /* STATUS 0: a hello */
        return -EBADMSG;
    *body = d.off;
    return 0;
}

int amo_get_reply(const void *m, size_t len, struct reply_header *h,
                            size_t *body)
{
    struct rpc_dec d;
    uint8_t version, type;
    uint16_t flags;
    rpc_dec_init(&d, m, len);
    rpc_get_u8(&d, &version);
    rpc_get_u8(&d, &type);
    rpc_get_u16(&d, &flags);
    rpc_get_i32(&d, &h->status);
    rpc_get_u64(&d, &h->server);
    int err = rpc_get_u64(&d, &h->call);
    if (err || version != AMO_VERSION || type != T_REPLY || flags != 0 ||
        h->status < REPLY_BUSY)
        return -EBADMSG;
    *body = d.off;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* At-most-once: the server's bookkeeping (no I/O)                           */
/* ------------------------------------------------------------------------ */

int amo_init(struct amo *t, uint64_t incarnation, uint32_t max_clients,
             size_t max_bytes)
{
    memset(t, 0, sizeof(*t));
    t->incarnation = incarnation;
    t->max_clients = max_clients ? max_clients : 1;
    t->max_bytes = max_bytes;
    t->nbuckets = 16;
    while (t->nbuckets < t->max_clients)
        t->nbuckets *= 2;
    t->buckets = calloc(t->nbuckets, sizeof(*t->buckets));
    return t->buckets ? 0 : -ENOMEM;
}

static struct client **bucket(struct amo *t, uint64_t id)
{
    uint64_t h = id * 0x9E3779B97F4A7C15ull;
    return &t->buckets[(h >> 32) & (t->nbuckets - 1)];
}

static void lru_unlink(struct amo *t, struct client *c)
{
    *(c->older ? &c->older->newer : &t->oldest) = c->newer;
    *(c->newer ? &c->newer->older : &t->newest) = c->older;
    c->older = c->newer = NULL;
}

static void lru_push(struct amo *t, struct client *c)
{
    c->older = t->newest;
    c->newer = NULL;
    *(t->newest ? &t->newest->newer : &t->oldest) = c;
    t->newest = c;
}

/* What a kept call costs the budget besides its reply's bytes. */
#define ENTRY_COST sizeof(struct entry)

/* Bytes counted against max_bytes: replies and their calls' bookkeeping. */
static size_t budget_used(const struct amo *t)
{
    return t->bytes + t->entries * ENTRY_COST;
}

static void entry_free(struct amo *t, struct client *c, struct entry *e)
{
    c->bytes -= e->len;
    t->bytes -= e->len;
    t->entries--;
    free(e->reply);
    free(e);
}

static void client_free(struct amo *t, struct client *c)
{
    struct client **pp = bucket(t, c->id);
    while (*pp != c)
        pp = &(*pp)->hash_next;
    *pp = c->hash_next;
    lru_unlink(t, c);
    while (c->calls) {
        struct entry *e = c->calls;
        c->calls = e->next;
        entry_free(t, c, e);
    }
    free(c);
    t->nclients--;
}

/* Discards the least recently used client with nothing running (except
 * `keep`).  Returns 1 if one was discarded. */
static int evict_one(struct amo *t, const struct client *keep)
{
    for (struct client *c = t->oldest; c; c = c->newer)
        if (c != keep && c->running == 0) {
            client_free(t, c);
            t->st.evicted++;
            return 1;
        }
    return 0;
}

/* Forgets the finished call of c with the lowest number, reply and all,
 * and moves c's floor above it: a copy of it sent again is refused from
 * now on, never run again.  Returns 1 if there was one. */
static int drop_oldest_call(struct amo *t, struct client *c)
{
    struct entry **oldest = NULL;
    for (struct entry **pp = &c->calls; *pp; pp = &(*pp)->next)
        if (!(*pp)->running && (oldest == NULL || (*pp)->call < (*oldest)->call))
            oldest = pp;
    if (oldest == NULL)
        return 0;
    struct entry *e = *oldest;
    *oldest = e->next;
    if (c->floor <= e->call)
        c->floor = e->call + 1;
    entry_free(t, c, e);
    t->st.dropped_replies++;
    return 1;
}

/* Brings the cache within max_bytes less `room`: whole clients with
 * nothing running go first, least recently used first (never `keep`);
 * then finished calls of `keep`, oldest first, then of the others.
 * Returns 1 if it fits. */
static int trim(struct amo *t, struct client *keep, size_t room)
{
    while (budget_used(t) + room > t->max_bytes) {
        if (evict_one(t, keep) || (keep && drop_oldest_call(t, keep)))
            continue;
        struct client *c = t->oldest;
        while (c && !drop_oldest_call(t, c))
            c = c->newer;
        if (c == NULL)
            return 0;
    }
    return 1;
}

static struct client *client_find(struct amo *t, uint64_t id)
{
    struct client *c = *bucket(t, id);
    while (c && c->id != id)
        c = c->hash_next;
    return c;
}

static struct client *client_new(struct amo *t, uint64_t id)
{
    if (t->nclients >= t->max_clients && !evict_one(t, NULL))
        return NULL;
    struct client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->id = id;
    c->done_below = 1;
    struct client **b = bucket(t, id);
    c->hash_next = *b;
    *b = c;
    lru_push(t, c);
    t->nclients++;
    return c;
}

/* The client holds every reply below done_below: those are forgotten. */
static void forget_below(struct amo *t, struct client *c, uint64_t done_below)
{
    if (done_below <= c->done_below)
        return;
    c->done_below = done_below;
    for (struct entry **pp = &c->calls; *pp;) {
        struct entry *e = *pp;
        if (e->call < done_below && !e->running) {
            *pp = e->next;
            entry_free(t, c, e);
        } else {
            pp = &e->next;
        }
    }
}

static struct entry *entry_find(struct client *c, uint64_t call)
{
    struct entry *e = c->calls;
    while (e && e->call != call)
        e = e->next;
    return e;
}

/* Decides what a CALL or STATUS from `from` gets; see the top of the file.
 * `idempotent` says whether the procedure skips the cache; `exists`
 * whether it exists at all. */
enum verdict amo_admit(struct amo *t, const struct call_header *h,
                              const struct udp_addr *from, int exists,
                              int idempotent, struct client **cl,
                              struct entry **out, int32_t *status)
{
    if (h->server != 0 && h->server != t->incarnation) {
        t->st.stale++;
        *status = REPLY_STALE;
        return V_ANSWER;
    }
    if (h->type == T_CALL && !exists) {
        t->st.no_such_proc++;
        *status = REPLY_NOPROC;
        return V_ANSWER;
    }
    if (h->type == T_STATUS && h->call == 0) {
        /* A client's hello: it learns this incarnation from the answer
         * before it sends any call (see say_hello in rpc.c). */
        *status = REPLY_UNKNOWN;
        return V_ANSWER;
    }
    struct client *c = client_find(t, h->client);
    if (c == NULL && (h->flags & F_RETRY || h->type == T_STATUS)) {
        t->st.refused++;
        *status = REPLY_DISCARDED;
        return V_ANSWER;
    }
    if (c == NULL) {
        if ((c = client_new(t, h->client)) == NULL) {
            *status = REPLY_BUSY;
            return V_ANSWER;
        }
        c->floor = h->call;
    }
    lru_unlink(t, c);
    lru_push(t, c);
    c->addr = *from;
    forget_below(t, c, h->done_below);
    *cl = c;
    if (h->call < c->done_below)
        return V_IGNORE;
    struct entry *e = entry_find(c, h->call);
    if (e == NULL && (h->flags & F_RETRY) && h->call < c->floor) {
        /* Sent before, and below every call this state has seen (or kept):
         * it may have run with state the server discarded, so it must not
         * run now.  A call the state knows is answered as usual. */
        t->st.refused++;
        *status = REPLY_DISCARDED;
        return V_ANSWER;
    }
    if (h->type == T_STATUS) {
        *status = e ? REPLY_RUNNING : REPLY_UNKNOWN;
        t->st.in_progress += e && e->running;
        if (e && !e->running) {
            *out = e;
            return V_REPLY;
        }
        return V_ANSWER;
    }
    if (idempotent)
        return V_RUN; /* at-least-once: no entry, run every copy */
    if (e) {
        *out = e;
        (*(e->running ? &t->st.waited : &t->st.cached_replies))++;
        return e->running ? V_WAIT : V_REPLY;
    }
    if (!trim(t, c, ENTRY_COST) || (e = calloc(1, sizeof(*e))) == NULL) {
        *status = REPLY_BUSY; /* every byte is held by calls running */
        return V_ANSWER;
    }
    t->entries++;
    e->call = h->call;
    e->running = 1;
    e->next = c->calls;
    c->calls = e;
    c->running++;
    *out = e;
    return V_RUN;
}

/* Records the reply of a call that ran (e NULL: an idempotent one, not
 * kept), then trims the cache to its byte budget. */
void amo_done(struct amo *t, struct client *c, struct entry *e,
                     uint8_t *reply, size_t len)
{
    t->st.calls++;
    if (c == NULL || e == NULL) {
        free(reply);
        return;
    }
    e->running = 0;
    c->running--;
    e->reply = reply;
    e->len = len;
    c->bytes += len;
    t->bytes += len;
    trim(t, c, 0); /* the reply has gone out already */
}

/* Forgets a call that was admitted but cannot be run after all (no
 * memory): the client will ask again and it runs then. */
void amo_abandon(struct amo *t, struct client *c, struct entry *e)
{
    struct entry **pp = &c->calls;
    while (*pp != e)
        pp = &(*pp)->next;
    *pp = e->next;
    c->running--;
    entry_free(t, c, e);
}

void amo_free(struct amo *t)
{
    while (t->oldest)
        client_free(t, t->oldest);
    free(t->buckets);
}
