/*
 * rpc.c - remote procedure calls with at-most-once semantics over rmsg.
 *
 * Every rpc message is one rmsg message (reliable, ordered, any size) that
 * starts with a header, big-endian (built and checked in lib/amo.c):
 *
 *   CALL   version u8 = 1, type u8 = 1, flags u16, proc u32, client u64,
 *          call u64, done_below u64, server u64, then the arguments
 *   STATUS the same header with type 3 and no arguments: "what became of
 *          this call?", sent while a call is slow; for call 0 it is a
 *          client's hello, answered with the server's incarnation
 *   REPLY  version u8 = 1, type u8 = 2, flags u16, status i32, server u64,
 *          call u64, then the results
 *
 *   flags     CALL/STATUS: 1 = RETRY (this call was sent before)
 *   client    the client instance's random identity
 *   call      the call's number, from 1, per client
 *   done_below the client holds the reply of every call below this number
 *   server    the server incarnation the client knows (0: none yet)
 *   status    >= 0: the handler's return value; < 0: one of REPLY_* below
 *
 * Why rmsg is not enough.  rmsg delivers each message once per relation,
 * but a relation can end (a restart, a timeout), and the client then has
 * to send the call again on a new one without knowing whether the first
 * copy ran.  So the server remembers, per client, the calls it has run
 * and their replies ("the reply cache"), and answers a repeated call from
 * it; a repeated call that arrives while the first still runs waits for
 * that run.  done_below lets the server forget replies the client has.  A
 * client the server no longer remembers may send a call again only if it
 * never sent it before (no RETRY flag); otherwise the server refuses it.
 * A call naming an earlier server incarnation is refused: it may have
 * run on the instance that crashed, and must not run on this one.  So
 * that every call names one, a new client first asks the server for its
 * incarnation (a hello, one round trip) and sends no call before the
 * answer.  A server that recreates the state of a client it had to
 * forget refuses a RETRY of any call older than the first it sees then.
 *
 * The server's bookkeeping (section "At-most-once") makes decisions only:
 * it never touches a socket or a clock, so the rules can be read, and
 * tested, apart from the transport.
 */
#define _POSIX_C_SOURCE 200809L
#include "rpc.h"

#include "amo.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define REPLY_TIMEOUT_MS 30000 /* how long a server retries a reply */
#define ROOM_RETRY_MS 2 /* a call that found the transport's queue full
                           tries again this often */

void rpc_config_default(struct rpc_config *cfg)
{
    memset(cfg, 0, sizeof(*cfg));
    rmsg_config_default(&cfg->rmsg);
    cfg->max_request = RPC_MAX_MESSAGE_DEFAULT;
    cfg->max_reply = RPC_MAX_MESSAGE_DEFAULT;
    cfg->cache_clients = RPC_CACHE_CLIENTS_DEFAULT;
    cfg->cache_bytes = RPC_CACHE_BYTES_DEFAULT;
}

/* The rmsg settings an rpc endpoint needs: messages as large as a request
 * or reply plus its header. */
static struct rmsg_config transport_config(const struct rpc_config *cfg)
{
    struct rmsg_config r = cfg->rmsg;
    uint64_t big = cfg->max_request > cfg->max_reply ? cfg->max_request
                                                     : cfg->max_reply;
    big += CALL_HEADER;
    r.msg_max = big > UINT32_MAX ? UINT32_MAX : (uint32_t)big;
    return r;
}

static uint64_t random64(void)
{
    uint64_t v = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        if (fread(&v, sizeof(v), 1, f) != 1)
            v = 0;
        fclose(f);
    }
    if (v == 0) {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        v = ((uint64_t)ts.tv_sec << 32) ^ (uint64_t)ts.tv_nsec ^
            (uint64_t)(uintptr_t)&v;
    }
    return v ? v : 1;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ------------------------------------------------------------------------ */
/* Server                                                                    */
/* ------------------------------------------------------------------------ */

struct proc {
    struct proc *next;
    uint32_t num;
    rpc_handler h;
    void *arg;
    int flags;
};

/* A call waiting for a worker. */
struct job {
    struct job *next;
    struct client *client; /* NULL: idempotent (not kept) */
    struct entry *entry;
    struct udp_addr to;    /* idempotent: where the reply goes */
    struct call_header h;
    struct proc *proc;
    void *msg; /* the CALL message; arguments from body on */
    size_t len, body;
};

struct rpc_server {
    struct rmsg_endpoint *ep;
    struct rpc_config cfg;
    struct proc *procs;
    pthread_mutex_t lock; /* the bookkeeping, the job queue */
    pthread_cond_t work, idle;
    struct amo amo;
    struct job *jobs, *jobs_tail;
    int busy; /* jobs taken by workers and not finished */
    atomic_int stop; /* lock-free: rpc_stop may run in a signal handler */
};

int rpc_server_open(int port, const struct rpc_config *cfg,
                    struct rpc_server **out)
{
    struct rpc_config def;
    if (cfg == NULL) {
        rpc_config_default(&def);
        cfg = &def;
    }
    if (out == NULL)
        return -EINVAL;
    struct rpc_server *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return -ENOMEM;
    s->cfg = *cfg;
    struct rmsg_config rc = transport_config(cfg);
    int err = amo_init(&s->amo, random64(), cfg->cache_clients,
                       cfg->cache_bytes);
    if (err == 0)
        err = rmsg_open(port, &rc, &s->ep);
    if (err) {
        free(s->amo.buckets);
        free(s);
        return err;
    }
    pthread_mutex_init(&s->lock, NULL);
    pthread_cond_init(&s->work, NULL);
    pthread_cond_init(&s->idle, NULL);
    *out = s;
    return 0;
}

int rpc_server_port(const struct rpc_server *s)
{
    return s ? rmsg_port(s->ep) : -EINVAL;
}

static struct proc *proc_find(const struct rpc_server *s, uint32_t num)
{
    struct proc *p = s->procs;
    while (p && p->num != num)
        p = p->next;
    return p;
}

int rpc_register(struct rpc_server *s, uint32_t proc, rpc_handler h,
                 void *arg, int flags)
{
    if (s == NULL || h == NULL || (flags & ~RPC_IDEMPOTENT))
        return -EINVAL;
    struct proc *p = proc_find(s, proc);
    if (p == NULL) {
        if ((p = calloc(1, sizeof(*p))) == NULL)
            return -ENOMEM;
        p->num = proc;
        p->next = s->procs;
        s->procs = p;
    }
    p->h = h;
    p->arg = arg;
    p->flags = flags;
    return 0;
}

/* Sends a REPLY message (the buffer is the caller's).  It never waits for
 * room in the client's queue: a server blocked on a client that is itself
 * blocked sending calls, with nobody taking the replies, would wait for
 * ever.  A reply that finds the queue full is not sent; the client asks
 * about the call (STATUS) and gets it from the cache then. */
static int64_t send_reply(struct rpc_server *s, const struct udp_addr *to,
                          const void *m, size_t len)
{
    return rmsg_send_nowait(s->ep, to, m, len, REPLY_TIMEOUT_MS);
}

/* A REPLY with a status and no results: a refusal or a STATUS answer. */
static void answer(struct rpc_server *s, const struct udp_addr *to,
                   uint64_t call, int32_t status)
{
    uint8_t buf[REPLY_HEADER];
    struct rpc_enc e;
    rpc_enc_init_fixed(&e, buf, sizeof(buf));
    amo_put_reply(&e, &(struct reply_header){status, s->amo.incarnation,
                                                call});
    if (e.err == 0)
        send_reply(s, to, buf, e.len);
}

/* A reply is encoded on the stack when it is this short: a null call
 * allocates nothing for its reply. */
#define REPLY_ON_STACK 256

/* Makes r an empty encoder for a reply, starting in buf. */
static void reply_start(struct rpc_server *s, struct rpc_enc *r,
                        uint8_t buf[REPLY_ON_STACK])
{
    rpc_enc_init_buffer(r, buf, REPLY_ON_STACK,
                        (size_t)s->cfg.max_reply + REPLY_HEADER);
}

/* Replaces what r holds with a REPLY with a status and no results. */
static void status_reply(struct rpc_server *s, struct rpc_enc *r,
                         uint8_t buf[REPLY_ON_STACK], uint64_t call,
                         int32_t status)
{
    rpc_enc_free(r);
    reply_start(s, r, buf);
    amo_put_reply(r, &(struct reply_header){status, s->amo.incarnation,
                                                call});
}

/* Runs one call's handler and builds its REPLY message in r. */
static void run_handler(struct rpc_server *s, struct job *j,
                        struct rpc_enc *r, uint8_t buf[REPLY_ON_STACK])
{
    reply_start(s, r, buf);
    amo_put_reply(r, &(struct reply_header){0, s->amo.incarnation,
                                                j->h.call});
    const uint8_t *args = (const uint8_t *)j->msg + j->body;
    int status = j->proc->h(j->proc->arg, args, j->len - j->body, r);
    if (status < 0)
        status = REPLY_NOPROC;
    if (r->err) { /* results over the limit (or no memory): say so */
        status_reply(s, r, buf, j->h.call, REPLY_TOO_LARGE);
        return;
    }
    /* The header went first so the results need no copy; its status field
     * (bytes 4 to 7) is filled in now that the handler has returned. */
    for (int k = 0; k < 4; k++)
        r->buf[4 + k] = (uint8_t)((uint32_t)status >> (24 - 8 * k));
}

/* Runs a job and records and sends its reply, then frees the job's
 * message, and the job itself unless it is the caller's (on_heap 0).
 * Called without the lock. */
static void run_job(struct rpc_server *s, struct job *j, int on_heap)
{
    uint8_t buf[REPLY_ON_STACK];
    struct rpc_enc r;
    run_handler(s, j, &r, buf);
    pthread_mutex_lock(&s->lock);
    /* A kept call's reply goes where its client's latest request came
     * from (a duplicate may have come from a new address). */
    const struct udp_addr *to = j->client ? &j->client->addr : &j->to;
    if (send_reply(s, to, r.buf, r.len) == -EMSGSIZE) {
        /* Larger than the client accepts: it ran, and its results cannot
         * be returned.  That is what the cache keeps, and says. */
        status_reply(s, &r, buf, j->h.call, REPLY_TOO_LARGE);
        send_reply(s, to, r.buf, r.len);
    }
    amo_done_enc(&s->amo, j->client, j->entry, &r);
    pthread_mutex_unlock(&s->lock);
    free(j->msg);
    if (on_heap)
        free(j);
}

/* Decides about one received message (taking msg): returns 1 and the job
 * to run in *j, or 0. */
static int on_request(struct rpc_server *s, const struct udp_addr *from,
                      void *msg, size_t len, struct job *j)
{
    struct call_header h;
    size_t body;
    if (amo_message_type(msg, len) == 0 ||
        amo_get_call(msg, len, &h, &body) != 0) {
        s->amo.st.malformed++;
        free(msg);
        return 0;
    }
    if (h.type == T_CALL && len - body > s->cfg.max_request) {
        /* More arguments than this server takes: it does not run. */
        answer(s, from, h.call, REPLY_TOO_LARGE);
        free(msg);
        return 0;
    }
    struct proc *p = proc_find(s, h.proc);
    struct client *c = NULL;
    struct entry *e = NULL;
    int32_t status = 0;
    enum verdict v = amo_admit(&s->amo, &h, from, p != NULL,
                               p && (p->flags & RPC_IDEMPOTENT), &c, &e,
                               &status);
    if (v == V_ANSWER)
        answer(s, from, h.call, status);
    if (v == V_REPLY)
        send_reply(s, from, e->reply, e->len);
    if (v != V_RUN) {
        free(msg);
        return 0;
    }
    *j = (struct job){.client = e ? c : NULL, .entry = e, .to = *from,
                      .h = h, .proc = p, .msg = msg, .len = len,
                      .body = body};
    return 1;
}

static void *worker(void *arg)
{
    struct rpc_server *s = arg;
    pthread_mutex_lock(&s->lock);
    for (;;) {
        while (s->jobs == NULL && !atomic_load(&s->stop))
            pthread_cond_wait(&s->work, &s->lock);
        struct job *j = s->jobs;
        if (j == NULL)
            break;
        s->jobs = j->next;
        if (s->jobs == NULL)
            s->jobs_tail = NULL;
        s->busy++;
        pthread_mutex_unlock(&s->lock);
        run_job(s, j, 1);
        pthread_mutex_lock(&s->lock);
        s->busy--;
        pthread_cond_broadcast(&s->idle);
    }
    pthread_mutex_unlock(&s->lock);
    return NULL;
}

int rpc_serve(struct rpc_server *s, int workers)
{
    if (s == NULL || workers < 0)
        return -EINVAL;
    pthread_t *pool = calloc(workers ? (size_t)workers : 1, sizeof(*pool));
    if (pool == NULL)
        return -ENOMEM;
    int started = 0;
    while (started < workers &&
           pthread_create(&pool[started], NULL, worker, s) == 0)
        started++;
    while (!atomic_load(&s->stop)) {
        struct udp_addr from;
        void *msg;
        size_t len;
        if (rmsg_recv(s->ep, &from, &msg, &len, -1) != 0)
            continue; /* -EINTR from rpc_stop, checked above */
        struct job job;
        pthread_mutex_lock(&s->lock);
        int run = on_request(s, &from, msg, len, &job);
        if (run && started > 0) {
            run = 0;
            struct job *j = malloc(sizeof(*j));
            if (j == NULL) { /* cannot run it now: forget it; the client
                                asks again */
                if (job.entry)
                    amo_abandon(&s->amo, job.client, job.entry);
                free(job.msg);
            } else {
                *j = job;
                *(s->jobs_tail ? &s->jobs_tail->next : &s->jobs) = j;
                s->jobs_tail = j;
                pthread_cond_signal(&s->work);
            }
        }
        pthread_mutex_unlock(&s->lock);
        if (run) /* no workers: here, with the job on the stack */
            run_job(s, &job, 0);
    }
    pthread_mutex_lock(&s->lock);
    pthread_cond_broadcast(&s->work);
    pthread_mutex_unlock(&s->lock);
    for (int i = 0; i < started; i++)
        pthread_join(pool[i], NULL);
    free(pool);
    rmsg_interrupt(s->ep, 0);
    rmsg_flush(s->ep, 1000); /* the last replies */
    return 0;
}

void rpc_stop(struct rpc_server *s)
{
    atomic_store(&s->stop, 1);
    rmsg_interrupt(s->ep, 1);
}

void rpc_server_close(struct rpc_server *s)
{
    if (s == NULL)
        return;
    rmsg_close(s->ep);
    while (s->jobs) {
        struct job *j = s->jobs;
        s->jobs = j->next;
        free(j->msg);
        free(j);
    }
    while (s->procs) {
        struct proc *p = s->procs;
        s->procs = p->next;
        free(p);
    }
    amo_free(&s->amo);
    pthread_mutex_destroy(&s->lock);
    pthread_cond_destroy(&s->work);
    pthread_cond_destroy(&s->idle);
    free(s);
}

void rpc_server_stats(struct rpc_server *s, struct rpc_server_stats *st)
{
    pthread_mutex_lock(&s->lock);
    *st = s->amo.st;
    st->clients = s->amo.nclients;
    st->cache_bytes = s->amo.bytes;
    pthread_mutex_unlock(&s->lock);
}

int rpc_server_transport_stats(struct rpc_server *s, struct rmsg_stats *st)
{
    if (s == NULL || st == NULL)
        return -EINVAL;
    return rmsg_stats(s->ep, NULL, st);
}

/* ------------------------------------------------------------------------ */
/* Client                                                                    */
/* ------------------------------------------------------------------------ */

/* A call in progress or completed and not yet collected. */
struct call {
    struct call *next;
    uint64_t id;
    uint32_t proc;
    uint8_t *msg; /* the CALL message, kept to send again (it lies after
                     the struct, in the same allocation); NULL once done */
    size_t len;
    int64_t deadline_ms; /* INT64_MAX: none */
    int64_t status_at;   /* when to ask about it next */
    int64_t retry_at;    /* cfg.retry_ms: when to send it again */
    int64_t msg_id;      /* rmsg id of the latest copy sent */
    int sent;            /* copies sent */
    int blocked;         /* the transport's queue was full: send it again
                            as soon as it has room */
    int done, outcome;
    void *reply;
    size_t reply_len;
};

struct rpc_client {
    struct rmsg_endpoint *ep;
    struct udp_addr server;
    struct rpc_config cfg;
    uint64_t id, next_call, incarnation;
    int64_t hello_at; /* while incarnation is 0: when to ask for it again */
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int receiving; /* a thread is in rmsg_recv for everybody */
    struct call *calls;
    struct call *spare; /* a short call's allocation, for the next */
};

/* Calls with arguments of up to this many bytes get an allocation of this
 * size, and the client keeps one that was done with for the next: a null
 * call then costs no malloc and free of its own. */
#define SHORT_CALL_ARGS 64

int rpc_client_open(const char *host, int port, const struct rpc_config *cfg,
                    struct rpc_client **out)
{
    struct rpc_config def;
    if (cfg == NULL) {
        rpc_config_default(&def);
        cfg = &def;
    }
    if (host == NULL || out == NULL || port <= 0 || port > 65535)
        return -EINVAL;
    struct rpc_client *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->cfg = *cfg;
    if (UDP_Resolve(host, port, AF_UNSPEC, &c->server) != 0) {
        free(c);
        return -EINVAL;
    }
    struct rmsg_config rc = transport_config(cfg);
    int err = rmsg_open(0, &rc, &c->ep);
    if (err) {
        free(c);
        return err;
    }
    c->id = random64();
    c->next_call = 1;
    pthread_mutex_init(&c->lock, NULL);
    pthread_cond_init(&c->changed, NULL);
    *out = c;
    return 0;
}

/* The number below which the client has every reply. */
static uint64_t done_below(const struct rpc_client *c)
{
    uint64_t low = c->next_call;
    for (const struct call *k = c->calls; k; k = k->next)
        if (!k->done && k->id < low)
            low = k->id;
    return low;
}

/* The milliseconds from now to a deadline, for rmsg (-1: none). */
static int timeout_left(int64_t deadline_ms, int64_t now)
{
    if (deadline_ms == INT64_MAX)
        return -1;
    int64_t left = deadline_ms - now;
    return left < 0 ? 0 : left > INT32_MAX ? INT32_MAX : (int)left;
}

/* Asks the server for its incarnation (a STATUS for call 0), unless asked
 * lately.  No call goes out before the answer: a call that names no
 * incarnation could run on an instance that crashes before replying and
 * then, sent again by rmsg, on its successor; one that names it is
 * refused by the successor.  Called locked. */
static void say_hello(struct rpc_client *c, int64_t now)
{
    if (now < c->hello_at)
        return;
    uint8_t m[CALL_HEADER];
    struct rpc_enc e;
    rpc_enc_init_fixed(&e, m, sizeof(m));
    amo_put_call(&e, &(struct call_header){.type = T_STATUS,
                                            .client = c->id,
                                            .done_below = done_below(c)});
    if (e.err == 0)
        rmsg_send_nowait(c->ep, &c->server, m, e.len, RPC_STATUS_INTERVAL_MS);
    c->hello_at = now + RPC_STATUS_INTERVAL_MS;
}

/* Sends (again) a call, or asks about it (T_STATUS), at time now (ms).
 * Called locked. */
static void send_call(struct rpc_client *c, struct call *k, uint8_t type,
                      int64_t now)
{
    if (k->msg == NULL)
        return; /* completed */
    if (c->incarnation == 0) {
        say_hello(c, now); /* the call goes once the server is known */
        return;
    }
    /* A call's stored copy gets the fresh header in place; a status
     * query is the header alone. */
    uint8_t query[CALL_HEADER];
    uint8_t *m = type == T_CALL ? k->msg : query;
    struct rpc_enc e;
    rpc_enc_init_fixed(&e, m, CALL_HEADER);
    struct call_header h = {.type = type, .flags = k->sent ? F_RETRY : 0,
                            .proc = k->proc, .client = c->id, .call = k->id,
                            .done_below = done_below(c),
                            .server = c->incarnation};
    amo_put_call(&e, &h);
    if (e.err == 0 && e.len == CALL_HEADER) {
        size_t len = type == T_CALL ? k->len : CALL_HEADER;
        int64_t left = k->deadline_ms == INT64_MAX ? -1
                       : k->deadline_ms > now ? k->deadline_ms - now : 0;
        /* Never waiting for room: this thread may be the one that has to
         * take the replies whose acknowledgments would make it. */
        int64_t id = rmsg_send_nowait(c->ep, &c->server, m, len,
                                      left > INT32_MAX ? INT32_MAX
                                                       : (int)left);
        if (type == T_CALL) {
            k->blocked = id == -ENOBUFS;
            if (id > 0) {
                k->msg_id = id;
                k->sent++;
            } else if (id != -ENOBUFS) {
                k->done = 1, k->outcome = (int)id;
            }
        }
    }
    k->status_at = now + RPC_STATUS_INTERVAL_MS;
}

/* The server's incarnation is known now: the calls waiting for it go, in
 * the order they were made.  The server's state for this client starts at
 * the first call it sees, and refuses a copy sent again of any call below
 * that one it does not know (see amo_admit): newest first, a status query
 * about an older call, sent before, would be refused. */
static void learned_incarnation(struct rpc_client *c, uint64_t incarnation)
{
    c->incarnation = incarnation;
    int64_t now = now_ms();
    size_t n = 0;
    for (struct call *k = c->calls; k; k = k->next)
        n += !k->done && k->sent == 0;
    /* c->calls is newest first: walk an array of them backwards. */
    struct call **v = n ? malloc(n * sizeof(*v)) : NULL;
    size_t i = 0;
    for (struct call *k = c->calls; k; k = k->next)
        if (!k->done && k->sent == 0) {
            if (v)
                v[i++] = k;
            else
                send_call(c, k, T_CALL, now); /* no memory: any order */
        }
    while (i > 0)
        send_call(c, v[--i], T_CALL, now);
    free(v);
}

static void complete(struct call *k, int outcome)
{
    if (k->done)
        return;
    k->done = 1;
    k->outcome = outcome;
    k->msg = NULL; /* never sent again; freed with k */
}

static struct call *call_find(struct rpc_client *c, uint64_t id)
{
    struct call *k = c->calls;
    while (k && k->id != id)
        k = k->next;
    return k;
}

/* A REPLY arrived.  Called locked; takes msg. */
static void on_reply(struct rpc_client *c, void *msg, size_t len)
{
    struct reply_header h;
    size_t body;
    struct call *k;
    if (amo_get_reply(msg, len, &h, &body) != 0) {
        /* Malformed.  If it names a call of ours and the server we know,
         * the call will get no better answer: it fails with -EPROTO. */
        uint64_t server = 0, call = 0;
        if (len >= REPLY_HEADER)
            for (int b = 0; b < 8; b++) {
                server = server << 8 | ((uint8_t *)msg)[8 + b];
                call = call << 8 | ((uint8_t *)msg)[16 + b];
            }
        if (len >= REPLY_HEADER && c->incarnation != 0 &&
            server == c->incarnation && (k = call_find(c, call)) != NULL)
            complete(k, -EPROTO);
        free(msg);
        return;
    }
    if (c->incarnation != 0 && h.server != c->incarnation &&
        h.status != REPLY_STALE) {
        free(msg); /* not from the server we know: forged, or very late */
        return;
    }
    if (c->incarnation == 0 && h.server != 0)
        learned_incarnation(c, h.server); /* the answer to say_hello */
    if ((k = call_find(c, h.call)) == NULL || k->done) {
        free(msg); /* the hello's answer, or a late copy of a reply */
        return;
    }
    if (h.status == REPLY_RUNNING) {
        k->status_at = now_ms() + RPC_STATUS_INTERVAL_MS;
    } else if (h.status == REPLY_UNKNOWN) {
        send_call(c, k, T_CALL, now_ms()); /* lost with a relation: again */
    } else if (h.status >= 0 && len - body > c->cfg.max_reply) {
        complete(k, -EMSGSIZE); /* it ran; its results are over our limit */
    } else if (h.status >= 0) {
        complete(k, h.status);
        if (len > body) {
            memmove(msg, (uint8_t *)msg + body, len - body);
            k->reply = msg;
            k->reply_len = len - body;
            return;
        }
    } else {
        static const int outcome[] = {0, -ENOSYS, -ESTALE, -ECONNABORTED,
                                      -EMSGSIZE, 0, 0, -EBUSY};
        /* A restarted server names its new incarnation: later calls go
         * to it, this one is refused. */
        if (h.status == REPLY_STALE)
            c->incarnation = h.server;
        complete(k, outcome[-h.status]);
    }
    free(msg);
}

/* rmsg could not deliver a copy of a call.  Called locked. */
static void on_failure(struct rpc_client *c, const struct rmsg_event *ev)
{
    struct call *k = c->calls;
    while (k && (k->done || k->msg_id != (int64_t)ev->id))
        k = k->next;
    if (k == NULL)
        return;
    if (ev->error == -ECONNRESET)
        send_call(c, k, T_CALL, now_ms()); /* a new relation; the server
                                              dedups, or refuses it if it
                                              is a new instance */
    else
        complete(k, ev->error);
}

/* Deadlines and slow calls, at time now (ms).  Called locked; returns when
 * next to look, and counts in *finished (if not NULL) the calls it ended. */
static int64_t check_calls(struct rpc_client *c, int *finished, int64_t now)
{
    int64_t next = INT64_MAX;
    int ended = 0;
    for (struct call *k = c->calls; k; k = k->next) {
        if (k->done)
            continue;
        if (now >= k->deadline_ms) {
            complete(k, -ETIMEDOUT);
            ended++;
            continue;
        }
        if (k->blocked) {
            send_call(c, k, T_CALL, now); /* room yet? */
            if (k->blocked)
                next = now + ROOM_RETRY_MS < next ? now + ROOM_RETRY_MS
                                                  : next;
        } else if (c->cfg.retry_ms && now >= k->retry_at) {
            send_call(c, k, T_CALL, now);
            k->retry_at = now + c->cfg.retry_ms;
        } else if (now >= k->status_at && k->sent > 0) {
            send_call(c, k, T_STATUS, now);
        }
        if (c->cfg.retry_ms)
            next = k->retry_at < next ? k->retry_at : next;
        if (k->sent > 0)
            next = k->status_at < next ? k->status_at : next;
        next = k->deadline_ms < next ? k->deadline_ms : next;
        if (c->incarnation == 0) { /* waiting for say_hello's answer */
            say_hello(c, now);
            next = c->hello_at < next ? c->hello_at : next;
        }
        ended += k->done; /* a send that failed for good */
    }
    if (finished)
        *finished = ended;
    return next;
}

/* One turn as the receiving thread: waits for a message until `until_ms`
 * at most.  Called locked; drops the lock while waiting. */
static void receive_once(struct rpc_client *c, int64_t until_ms)
{
    /* One clock reading for the checks and the wait: a call's round trip
     * reads the clock often enough as it is. */
    int64_t now = now_ms();
    int64_t next = check_calls(c, NULL, now);
    if (until_ms < next)
        next = until_ms;
    c->receiving = 1;
    pthread_mutex_unlock(&c->lock);
    void *msg = NULL;
    size_t len;
    struct udp_addr from;
    int r = rmsg_recv(c->ep, &from, &msg, &len, timeout_left(next, now));
    pthread_mutex_lock(&c->lock);
    c->receiving = 0;
    if (r == 0 && amo_message_type(msg, len) == T_REPLY &&
        UDP_SameAddr(&from, &c->server))
        on_reply(c, msg, len);
    else if (r == 0)
        free(msg); /* not a reply, or not from the server */
    struct rmsg_event ev;
    while (rmsg_failure(c->ep, &ev) == 0)
        on_failure(c, &ev);
    check_calls(c, NULL, now_ms());
    pthread_cond_broadcast(&c->changed);
}

int64_t rpc_call_async(struct rpc_client *c, uint32_t proc, const void *req,
                       size_t len, int timeout_ms)
{
    if (c == NULL || (req == NULL && len > 0))
        return -EINVAL;
    if (len > c->cfg.max_request ||
        len > SIZE_MAX - sizeof(struct call) - CALL_HEADER)
        return -EMSGSIZE;
    /* One allocation for the call and its message: a short call's is
     * the spare if there is one (taken under the lock), a long call's
     * arguments are copied before the lock is taken. */
    int short_call = len <= SHORT_CALL_ARGS;
    struct call *k = NULL;
    if (short_call) {
        pthread_mutex_lock(&c->lock);
        k = c->spare;
        c->spare = NULL;
    }
    if (k == NULL)
        k = malloc(sizeof(*k) + CALL_HEADER +
                   (short_call ? SHORT_CALL_ARGS : len));
    if (k == NULL) {
        if (short_call)
            pthread_mutex_unlock(&c->lock);
        return -ENOMEM;
    }
    uint8_t *m = (uint8_t *)(k + 1);
    if (len)
        memcpy(m + CALL_HEADER, req, len);
    if (!short_call)
        pthread_mutex_lock(&c->lock);
    int64_t now = now_ms();
    *k = (struct call){.id = c->next_call++, .proc = proc, .msg = m,
                       .len = CALL_HEADER + len,
                       .deadline_ms = timeout_ms < 0 ? INT64_MAX
                                                     : now + timeout_ms};
    k->next = c->calls;
    c->calls = k;
    k->retry_at = now + c->cfg.retry_ms;
    send_call(c, k, T_CALL, now);
    int64_t id = (int64_t)k->id;
    pthread_mutex_unlock(&c->lock);
    return id;
}

/* Hands a completed call's outcome to the caller and forgets it. */
static int collect(struct rpc_client *c, struct call *k, void **reply,
                   size_t *reply_len)
{
    struct call **pp = &c->calls;
    while (*pp != k)
        pp = &(*pp)->next;
    *pp = k->next;
    int outcome = k->outcome;
    if (reply) {
        *reply = k->reply;
        if (reply_len)
            *reply_len = k->reply_len;
    } else {
        free(k->reply);
    }
    if (k->len <= CALL_HEADER + SHORT_CALL_ARGS && c->spare == NULL)
        c->spare = k;
    else
        free(k);
    return outcome;
}

/* Waits until a matching call is done (id 0: any), at most timeout_ms. */
static int wait_for(struct rpc_client *c, int64_t id, int64_t *got,
                    void **reply, size_t *reply_len, int timeout_ms)
{
    if (reply)
        *reply = NULL;
    if (reply_len)
        *reply_len = 0;
    int64_t until = timeout_ms < 0 ? INT64_MAX : now_ms() + timeout_ms;
    pthread_mutex_lock(&c->lock);
    for (;;) {
        struct call *k = c->calls, *hit = NULL;
        for (; k; k = k->next)
            if ((id == 0 || k->id == (uint64_t)id) && (hit = k, k->done))
                break;
        if (hit == NULL) {
            pthread_mutex_unlock(&c->lock);
            return -ENOENT;
        }
        if (k && k->done) {
            if (got)
                *got = (int64_t)k->id;
            int r = collect(c, k, reply, reply_len);
            pthread_mutex_unlock(&c->lock);
            return r;
        }
        if (until != INT64_MAX && now_ms() >= until) {
            pthread_mutex_unlock(&c->lock);
            return -EAGAIN;
        }
        if (!c->receiving) {
            receive_once(c, until);
            continue;
        }
        /* Another thread receives, on a timeout it chose before this
         * call may have existed: deadlines (and sends waiting for room)
         * are kept from here as well. */
        int ended;
        int64_t t = now_ms(), next = check_calls(c, &ended, t);
        if (ended > 0) { /* this one perhaps; other waiters' perhaps */
            pthread_cond_broadcast(&c->changed);
            continue;
        }
        if (next > until)
            next = until;
        if (next <= t)
            continue;
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t wait = next == INT64_MAX ? 3600000 : next - t;
        ts.tv_sec += wait / 1000;
        ts.tv_nsec += wait % 1000 * 1000000;
        if (ts.tv_nsec >= 1000000000) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000;
        }
        pthread_cond_timedwait(&c->changed, &c->lock, &ts);
    }
}

int rpc_wait(struct rpc_client *c, int64_t id, void **reply,
             size_t *reply_len, int timeout_ms)
{
    if (c == NULL || id <= 0)
        return -EINVAL;
    return wait_for(c, id, NULL, reply, reply_len, timeout_ms);
}

int rpc_wait_any(struct rpc_client *c, int64_t *id, void **reply,
                 size_t *reply_len, int timeout_ms)
{
    if (c == NULL)
        return -EINVAL;
    return wait_for(c, 0, id, reply, reply_len, timeout_ms);
}

int rpc_call(struct rpc_client *c, uint32_t proc, const void *req,
             size_t len, void **reply, size_t *reply_len, int timeout_ms)
{
    int64_t id = rpc_call_async(c, proc, req, len, timeout_ms);
    if (id < 0)
        return (int)id;
    /* The call's own deadline ends it; the wait only needs to outlast it. */
    int r = rpc_wait(c, id, reply, reply_len, -1);
    return r;
}

void rpc_client_close(struct rpc_client *c)
{
    if (c == NULL)
        return;
    rmsg_close(c->ep);
    while (c->calls) {
        struct call *k = c->calls;
        c->calls = k->next;
        free(k->reply);
        free(k);
    }
    free(c->spare);
    pthread_mutex_destroy(&c->lock);
    pthread_cond_destroy(&c->changed);
    free(c);
}

int rpc_client_stats(struct rpc_client *c, struct rmsg_stats *st)
{
    if (c == NULL || st == NULL)
        return -EINVAL;
    return rmsg_stats(c->ep, NULL, st);
}

const char *rpc_strerror(int outcome)
{
    switch (outcome) {
    case 0:
        return "success";
    case -ETIMEDOUT:
        return "deadline passed: the call may or may not have run";
    case -ENOSYS:
        return "no such procedure: the call did not run";
    case -ESTALE:
        return "server restarted: the call did not run on the new instance";
    case -ECONNABORTED:
        return "server discarded this client's state: retry refused";
    case -EMSGSIZE:
        return "request or reply too large";
    case -EPROTO:
        return "malformed reply";
    case -EBUSY:
        return "server has no room for another client";
    default:
        return outcome > 0 ? "the procedure reported an error of its own"
                           : "error";
    }
}
