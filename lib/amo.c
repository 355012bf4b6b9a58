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

/* The headers are fixed-size, so each is built (or checked) whole, a field
 * at a time from a byte array, with one length check instead of one per
 * field: every call and every reply goes through these. */

/* Big-endian fields at fixed offsets. */
static void store16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static void store32(uint8_t *p, uint32_t v)
{
    store16(p, (uint16_t)(v >> 16));
    store16(p + 2, (uint16_t)v);
}

static void store64(uint8_t *p, uint64_t v)
{
    store32(p, (uint32_t)(v >> 32));
    store32(p + 4, (uint32_t)v);
}

static uint16_t load16(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static uint32_t load32(const uint8_t *p)
{
    return (uint32_t)load16(p) << 16 | load16(p + 2);
}

static uint64_t load64(const uint8_t *p)
{
    return (uint64_t)load32(p) << 32 | load32(p + 4);
}

/* The layouts: see the top of rpc.c. */
void amo_put_call(struct rpc_enc *e, const struct call_header *h)
{
    uint8_t b[CALL_HEADER];
    b[0] = AMO_VERSION;
    b[1] = h->type;
    store16(b + 2, h->flags);
    store32(b + 4, h->proc);
    store64(b + 8, h->client);
    store64(b + 16, h->call);
    store64(b + 24, h->done_below);
    store64(b + 32, h->server);
    rpc_put_raw(e, b, sizeof(b));
}

void amo_put_reply(struct rpc_enc *e, const struct reply_header *h)
{
    uint8_t b[REPLY_HEADER];
    b[0] = AMO_VERSION;
    b[1] = T_REPLY;
    store16(b + 2, 0);
    store32(b + 4, (uint32_t)h->status);
    store64(b + 8, h->server);
    store64(b + 16, h->call);
    rpc_put_raw(e, b, sizeof(b));
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
    if (len < CALL_HEADER)
        return -EBADMSG;
    const uint8_t *b = m;
    uint8_t version = b[0];
    h->type = b[1];
    h->flags = load16(b + 2);
    h->proc = load32(b + 4);
    h->client = load64(b + 8);
    h->call = load64(b + 16);
    h->done_below = load64(b + 24);
    h->server = load64(b + 32);
    if (version != AMO_VERSION || (h->type != T_CALL && h->type != T_STATUS) ||
        (h->flags & ~F_RETRY) || h->client == 0 ||
        (h->call == 0 && h->type != T_STATUS)) /* STATUS 0: a hello */
        return -EBADMSG;
    *body = CALL_HEADER;
    return 0;
}

int amo_get_reply(const void *m, size_t len, struct reply_header *h,
                            size_t *body)
{
    if (len < REPLY_HEADER)
        return -EBADMSG;
    const uint8_t *b = m;
    uint8_t version = b[0], type = b[1];
    uint16_t flags = load16(b + 2);
    uint32_t status = load32(b + 4);
    /* Two's complement by arithmetic: converting an unsigned value out of
     * int32_t's range is implementation-defined. */
    h->status = status < 0x80000000u ? (int32_t)status
                                     : -(int32_t)(0xFFFFFFFFu - status) - 1;
    h->server = load64(b + 8);
    h->call = load64(b + 16);
    if (version != AMO_VERSION || type != T_REPLY || flags != 0 ||
        h->status < REPLY_BUSY)
        return -EBADMSG;
    *body = REPLY_HEADER;
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
    if (e->reply != e->inline_reply)
        free(e->reply);
    if (t->nspare < AMO_SPARE) {
        e->next = t->spare;
        t->spare = e;
        t->nspare++;
    } else {
        free(e);
    }
}

/* A cleared entry: a spare one if there is one. */
static struct entry *entry_new(struct amo *t)
{
    struct entry *e = t->spare;
    if (e == NULL)
        return calloc(1, sizeof(*e));
    t->spare = e->next;
    t->nspare--;
    memset(e, 0, offsetof(struct entry, inline_reply));
    return e;
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
    if (!trim(t, c, ENTRY_COST) || (e = entry_new(t)) == NULL) {
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

void amo_done_enc(struct amo *t, struct client *c, struct entry *e,
                  struct rpc_enc *r)
{
    uint8_t *reply = NULL;
    size_t len = 0;
    if (c && e && r->len <= ENTRY_INLINE) {
        if (r->len > 0)
            memcpy(e->inline_reply, r->buf, r->len);
        reply = e->inline_reply;
        len = r->len;
    } else if (c && e) {
        reply = rpc_enc_take(r, &len);
    }
    rpc_enc_free(r);
    amo_done(t, c, e, reply, len);
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
    while (t->spare) {
        struct entry *e = t->spare;
        t->spare = e->next;
        free(e);
    }
    t->nspare = 0;
    free(t->buckets);
}
