/*
 * soak.c - rmsg and rpc for a long time over an injected bad network, with
 * restarts, checking that nothing is lost, duplicated or run twice and that
 * memory stays flat.
 *
 *   soak [-d DURATION] [-f SPEC] [-s SEED] [-p PAIRS] [-c CLIENTS] [-q]
 *
 * DURATION is seconds, or a number with unit s, m or h (default 60 s);
 * SPEC is a fault specification (default: $UDP_FAULTS, or the one below);
 * each socket gets it with a seed of its own.  Exit status 0 when no
 * violation was seen, 1 otherwise, 2 for a bad command line.
 *
 * One process, many threads, all over loopback:
 *
 *   rmsg   PAIRS senders and receivers.  A sender queues batches of
 *          messages (rmsg_send_async, then rmsg_flush) and resends, as new
 *          messages, those that fail.  Every message carries its stream
 *          (one per sender incarnation), a number n unique and increasing
 *          within the stream, its length and a CRC-32C over the rest, whose
 *          bytes are a function of (stream, n).  The receiver checks the
 *          bytes, that n was really sent, and that n is larger than the last
 *          n of that stream it received (in order, never twice).  After each
 *          flush the sender checks that every acknowledged message was
 *          received (acknowledged means delivered, whatever restarts).
 *
 *   rpc    one server (two worker threads) and CLIENTS clients, half of
 *          them resending calls every 30 ms like a classic RPC client over
 *          UDP.  incrementBy(1) adds to a counter that outlives server
 *          restarts, as a database would: at the end it must lie between
 *          the calls that succeeded and those plus the ones whose outcome
 *          is unknown (timed out, stale, aborted).  record(stream, k) marks
 *          call k of a client incarnation in a table and fails the run if
 *          it was already marked: a non-idempotent call never runs twice.
 *
 *   restarts  every endpoint, server and client closes and opens again at
 *          random intervals (receivers and servers on the same port), a
 *          sender sometimes in the middle of a batch.
 *
 *   memory the resident set (VmRSS) is sampled every second; its peak in
 *          the last minute is compared with its peak in the first minute
 *          and, in runs of 10 minutes or more, half way through (the
 *          windows are a quarter of the run when it lasts under four
 *          minutes); see memory_flat.
 *
 * Fault counters come from UDP_FaultStats on each endpoint's socket, which
 * the library does not expose: the socket an open created is found by
 * comparing the process's socket descriptors before and after it, with
 * opens and closes serialised by one lock.
 *
 * Checker state is bounded (rings of STREAMS streams and RING numbers per
 * stream) so that the checker's own memory stays flat too.
 */
#define _POSIX_C_SOURCE 200809L
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "rmsg.h"
#include "rpc.h"
#include "udp.h"

#define DEFAULT_FAULTS                                                      \
    "drop=0.05,dup=0.02,reorder=0.05,corrupt=0.01,delay=1ms,jitter=2ms"
#define MAX_PAIRS 8
#define MAX_CLIENTS 16
#define STREAMS 256   /* streams remembered (ring) */
#define RING 4096     /* numbers remembered per stream (ring) */
#define BATCH_MAX 32  /* messages per batch */
#define BATCH_BYTES (2u << 20)
#define MSG_DEADLINE_MS 3000
#define RPC_TIMEOUT_MS 2000
#define SEEN_TIMEOUT_MS 10000 /* an acknowledged message must show up */
#define MAX_REPORTS 20        /* violations printed in full */
#define HDR 24                /* message header bytes */
#define MAGIC 0x534f414bu     /* "SOAK" */

enum { PROC_INCR = 1, PROC_RECORD = 2 };

/* ------------------------------------------------------------------------ */
/* Shared state                                                              */
/* ------------------------------------------------------------------------ */

/* One stream of numbers (a sender's messages, a client's record calls). */
struct stream {
    uint32_t id;     /* 0: unused */
    uint64_t next;   /* numbers below it have been handed out */
    uint64_t last;   /* receiver: one past the last number seen (0: none) */
    uint8_t seen[RING / 8];
};

struct totals {
    uint64_t msgs_queued, msgs_acked, msgs_failed, msgs_delivered;
    uint64_t msgs_abandoned, msgs_stale, bytes_delivered, batches;
    uint64_t calls_ok, calls_timeout, calls_stale, calls_aborted;
    uint64_t calls_busy, calls_other, incr_ok, incr_unknown;
    uint64_t runs_incr, runs_record, record_unchecked, waits;
    uint64_t restart_send, restart_send_abrupt, restart_recv;
    uint64_t restart_server, restart_client;
    struct udp_fault_stats faults;
};

static struct {
    pthread_mutex_t lock; /* everything below */
    volatile int stop;
    int quiet;
    int64_t start_ms, end_ms, window_ms;
    char spec[512];
    int spec_has_seed;
    uint64_t seed, sockets;
    struct stream msg_streams[STREAMS], call_streams[STREAMS];
    uint32_t stream_ids;
    int rx_port[MAX_PAIRS];
    int rpc_port;
    int64_t counter; /* incrementBy's, outlives server restarts */
    struct totals t;
    uint64_t violations;
    long rss_first_kb, rss_mid_kb, rss_last_kb, rss_now_kb;
} g = {.lock = PTHREAD_MUTEX_INITIALIZER};

/* Opens and closes of endpoints, so their sockets can be told apart. */
static pthread_mutex_t fd_lock = PTHREAD_MUTEX_INITIALIZER;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* splitmix64: each thread has its own state. */
static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A random interval of mean `mean_ms`, uniform in [mean/2, 3*mean/2]. */
static int64_t around(uint64_t *s, int64_t mean_ms)
{
    return mean_ms / 2 + (int64_t)(rnd(s) % (uint64_t)(mean_ms + 1));
}

/* Records a violation; the first few are printed. */
static void violation(const char *fmt, ...)
{
    pthread_mutex_lock(&g.lock);
    uint64_t n = ++g.violations;
    pthread_mutex_unlock(&g.lock);
    if (n > MAX_REPORTS)
        return;
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "soak: VIOLATION at %.1f s: ",
            (double)(now_ms() - g.start_ms) / 1000);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static int stopping(void)
{
    return g.stop || now_ms() >= g.end_ms;
}

/* Sleeps up to ms, waking early when the run ends. */
static void nap(int64_t ms)
{
    int64_t until = now_ms() + ms;
    while (!stopping() && now_ms() < until)
        sleep_ms(20);
}

/* ------------------------------------------------------------------------ */
/* Streams                                                                   */
/* ------------------------------------------------------------------------ */

/* A new stream in ring r.  Called locked. */
static struct stream *stream_new(struct stream *r)
{
    uint32_t id = ++g.stream_ids;
    struct stream *s = &r[id % STREAMS];
    memset(s, 0, sizeof(*s));
    s->id = id;
    return s;
}

/* Hands out the next number of s, forgetting the one RING below it.
 * Called locked. */
static uint64_t stream_take(struct stream *s)
{
    uint64_t n = s->next++;
    s->seen[(n % RING) / 8] &= (uint8_t)~(1u << (n % 8));
    return n;
}

static int seen(const struct stream *s, uint64_t n)
{
    return s->seen[(n % RING) / 8] >> (n % 8) & 1;
}

static void mark(struct stream *s, uint64_t n)
{
    s->seen[(n % RING) / 8] |= (uint8_t)(1u << (n % 8));
}

/* ------------------------------------------------------------------------ */
/* Sockets and their fault counters                                          */
/* ------------------------------------------------------------------------ */

/* Fills set[fd] = 1 for every socket descriptor of the process below max. */
static void socket_fds(uint8_t *set, int max)
{
    memset(set, 0, (size_t)max);
    DIR *d = opendir("/proc/self/fd");
    if (d == NULL)
        return;
    struct dirent *e;
    struct stat st;
    while ((e = readdir(d)) != NULL) {
        int fd = atoi(e->d_name);
        if (e->d_name[0] != '.' && fd >= 0 && fd < max &&
            fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode))
            set[fd] = 1;
    }
    closedir(d);
}

#define MAX_FD 4096

/* The socket that appeared since `before`, given its faults; -1 if none. */
static int new_socket(const uint8_t *before)
{
    static uint8_t after[MAX_FD];
    socket_fds(after, MAX_FD);
    for (int fd = 0; fd < MAX_FD; fd++) {
        if (!after[fd] || before[fd])
            continue;
        char spec[600];
        uint64_t n = ++g.sockets;
        if (g.spec_has_seed)
            snprintf(spec, sizeof(spec), "%s", g.spec);
        else
            snprintf(spec, sizeof(spec), "%s%sseed=%" PRIu64, g.spec,
                     g.spec[0] ? "," : "", g.seed * 1000003 + n);
        char err[200];
        if (UDP_SetFaults(fd, spec, err, sizeof(err)) != 0)
            violation("UDP_SetFaults: %s", err);
        return fd;
    }
    return -1;
}

/* What a tracked open does: opens something and returns 0 or -errno. */
typedef int (*open_fn)(void *arg);

/* Runs open(arg) and returns the socket it created (or -1) in *fd. */
static int tracked_open(open_fn open, void *arg, int *fd)
{
    static uint8_t before[MAX_FD];
    pthread_mutex_lock(&fd_lock);
    socket_fds(before, MAX_FD);
    int err = open(arg);
    *fd = err == 0 ? new_socket(before) : -1;
    pthread_mutex_unlock(&fd_lock);
    return err;
}

static void add_faults(struct udp_fault_stats *t,
                       const struct udp_fault_stats *s)
{
    t->sent += s->sent;
    t->dropped += s->dropped;
    t->duplicated += s->duplicated;
    t->reordered += s->reordered;
    t->corrupted += s->corrupted;
    t->delayed += s->delayed;
}

/* Adds fd's fault counters to the totals, then runs close(arg). */
static void tracked_close(int fd, void (*close_fn)(void *), void *arg)
{
    pthread_mutex_lock(&fd_lock);
    struct udp_fault_stats st;
    if (fd >= 0 && UDP_FaultStats(fd, &st) == 0) {
        pthread_mutex_lock(&g.lock);
        add_faults(&g.t.faults, &st);
        pthread_mutex_unlock(&g.lock);
    }
    close_fn(arg);
    pthread_mutex_unlock(&fd_lock);
}

/* ------------------------------------------------------------------------ */
/* rmsg: messages                                                            */
/* ------------------------------------------------------------------------ */

static void put32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24), p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8), p[3] = (uint8_t)v;
}

static uint32_t get32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
           (uint32_t)p[2] << 8 | p[3];
}

/* The body of message n of stream id: a function of both. */
static void fill_body(uint8_t *p, size_t len, uint32_t id, uint64_t n)
{
    uint64_t s = (uint64_t)id << 40 ^ n;
    for (size_t i = 0; i < len; i += 8) {
        uint64_t v = rnd(&s);
        size_t k = len - i < 8 ? len - i : 8;
        memcpy(p + i, &v, k);
    }
}

static uint32_t msg_crc(const uint8_t *m, size_t len)
{
    return crc32c(crc32c(0, m, 20), m + HDR, len - HDR);
}

/* Message n of stream id, of len >= HDR bytes, into m. */
static void build_msg(uint8_t *m, size_t len, uint32_t id, uint64_t n)
{
    put32(m, MAGIC);
    put32(m + 4, id);
    put32(m + 8, (uint32_t)(n >> 32));
    put32(m + 12, (uint32_t)n);
    put32(m + 16, (uint32_t)len);
    fill_body(m + HDR, len - HDR, id, n);
    put32(m + 20, msg_crc(m, len));
}

/* Sizes: mostly small, some of a few fragments, a few large. */
static size_t pick_size(uint64_t *s)
{
    uint64_t r = rnd(s) % 100;
    if (r < 50)
        return HDR + rnd(s) % 100;
    if (r < 80)
        return HDR + rnd(s) % 4096;
    if (r < 98)
        return HDR + rnd(s) % 65536;
    return HDR + rnd(s) % (256u << 10);
}

/* A message arrived at a receiver: checks it and marks its number.  The
 * body was already checked against its CRC and its contents. */
static void on_message(uint32_t id, uint64_t n, size_t len)
{
    pthread_mutex_lock(&g.lock);
    struct stream *s = &g.msg_streams[id % STREAMS];
    int bad = 0;
    if (s->id != id) {
        if (id > g.stream_ids || id == 0)
            bad = 1;
        else
            g.t.msgs_stale++; /* a stream forgotten long ago */
    } else if (n >= s->next) {
        bad = 2;
    } else if (s->last != 0 && n < s->last) {
        bad = 3;
    } else {
        s->last = n + 1;
        mark(s, n);
        g.t.msgs_delivered++;
        g.t.bytes_delivered += len;
    }
    uint64_t last = s->last;
    pthread_mutex_unlock(&g.lock);
    if (bad == 1)
        violation("message from stream %u, which never existed", id);
    else if (bad == 2)
        violation("stream %u: message %" PRIu64 " was never sent", id, n);
    else if (bad == 3)
        violation("stream %u: message %" PRIu64 " after %" PRIu64
                  " (duplicate or out of order)", id, n, last - 1);
}

/* Checks the bytes of a received message, then its number. */
static void check_message(const uint8_t *m, size_t len)
{
    if (len < HDR || get32(m) != MAGIC || get32(m + 16) != len ||
        get32(m + 20) != msg_crc(m, len)) {
        violation("a message of %zu bytes is not one that was sent", len);
        return;
    }
    uint32_t id = get32(m + 4);
    uint64_t n = (uint64_t)get32(m + 8) << 32 | get32(m + 12);
    uint8_t *want = malloc(len - HDR + 1);
    if (want) {
        fill_body(want, len - HDR, id, n);
        if (memcmp(want, m + HDR, len - HDR) != 0)
            violation("stream %u message %" PRIu64 ": wrong bytes", id, n);
        free(want);
    }
    on_message(id, n, len);
}

/* ------------------------------------------------------------------------ */
/* rmsg: receivers                                                           */
/* ------------------------------------------------------------------------ */

struct ep_open {
    int port;
    struct rmsg_endpoint *ep;
};

static int ep_open_fn(void *arg)
{
    struct ep_open *o = arg;
    return rmsg_open(o->port, NULL, &o->ep);
}

static void ep_close_fn(void *arg)
{
    rmsg_close(arg);
}

/* Opens an endpoint on *port, or, after 2 s of failures (another program
 * took the port meanwhile), on a new one, which *port then names. */
static struct rmsg_endpoint *open_on(int *port, int *fd)
{
    struct ep_open o = {.port = *port};
    for (int tries = 0;; tries++) {
        if (tracked_open(ep_open_fn, &o, fd) == 0)
            break;
        if (tries == 100)
            o.port = 0;
        if (tries > 200)
            return NULL;
        sleep_ms(20);
    }
    *port = rmsg_port(o.ep);
    return o.ep;
}

static void receive(struct rmsg_endpoint *ep, int timeout_ms)
{
    void *m;
    size_t len;
    while (rmsg_recv(ep, NULL, &m, &len, timeout_ms) == 0) {
        check_message(m, len);
        free(m);
        timeout_ms = 0;
    }
}

static void *receiver(void *arg)
{
    int i = (int)(intptr_t)arg;
    uint64_t rs = g.seed ^ (0x100u + (unsigned)i);
    int port;
    pthread_mutex_lock(&g.lock);
    port = g.rx_port[i];
    pthread_mutex_unlock(&g.lock);
    for (int first = 1; !stopping(); first = 0) {
        int fd;
        struct rmsg_endpoint *ep = open_on(&port, &fd);
        if (ep == NULL) {
            violation("receiver %d cannot open an endpoint", i);
            break;
        }
        pthread_mutex_lock(&g.lock);
        g.rx_port[i] = port;
        g.t.restart_recv += !first;
        pthread_mutex_unlock(&g.lock);
        int64_t until = now_ms() + around(&rs, 25000);
        while (!stopping() && now_ms() < until)
            receive(ep, 100);
        /* Everything acknowledged is taken before the restart: an
         * application that crashed would lose it, which is its business. */
        receive(ep, 0);
        tracked_close(fd, ep_close_fn, ep);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* rmsg: senders                                                             */
/* ------------------------------------------------------------------------ */

struct batch {
    int n;
    int64_t id[BATCH_MAX];
    uint64_t num[BATCH_MAX];
    int failed[BATCH_MAX];
};

/* Queues up to BATCH_MAX messages of stream s for `to`. */
static void queue_batch(struct rmsg_endpoint *ep, const struct udp_addr *to,
                        struct stream *s, uint32_t id, struct batch *b,
                        uint64_t *rs)
{
    int want = 1 + (int)(rnd(rs) % BATCH_MAX);
    size_t bytes = 0;
    b->n = 0;
    while (b->n < want && bytes < BATCH_BYTES) {
        size_t len = pick_size(rs);
        uint8_t *m = malloc(len);
        if (m == NULL)
            break;
        pthread_mutex_lock(&g.lock);
        uint64_t n = stream_take(s);
        pthread_mutex_unlock(&g.lock);
        build_msg(m, len, id, n);
        int64_t r = rmsg_send_async(ep, to, m, len, MSG_DEADLINE_MS);
        free(m);
        if (r < 0)
            break; /* -ENOBUFS: the queue is full enough */
        b->id[b->n] = r;
        b->num[b->n] = n;
        b->failed[b->n++] = 0;
        bytes += len;
    }
}

/* Waits until every acknowledged message of the batch was received. */
static void check_batch(uint32_t id, struct stream *s, const struct batch *b)
{
    int64_t until = now_ms() + SEEN_TIMEOUT_MS;
    for (int k = 0; k < b->n; k++) {
        if (b->failed[k])
            continue;
        for (;;) {
            pthread_mutex_lock(&g.lock);
            int ok = seen(s, b->num[k]);
            pthread_mutex_unlock(&g.lock);
            if (ok)
                break;
            if (now_ms() >= until) {
                violation("stream %u: message %" PRIu64 " acknowledged "
                          "and never received", id, b->num[k]);
                break;
            }
            sleep_ms(2);
        }
    }
}

/* Flushes a batch and accounts for each message. */
static void settle_batch(struct rmsg_endpoint *ep, uint32_t id,
                         struct stream *s, struct batch *b)
{
    int r = rmsg_flush(ep, MSG_DEADLINE_MS + 5000);
    if (r == -ETIMEDOUT)
        violation("stream %u: flush outlived every deadline", id);
    struct rmsg_event ev;
    int failed = 0;
    while (rmsg_failure(ep, &ev) == 0)
        for (int k = 0; k < b->n; k++)
            if (b->id[k] == (int64_t)ev.id && !b->failed[k])
                b->failed[k] = 1, failed++;
    pthread_mutex_lock(&g.lock);
    g.t.batches++;
    g.t.msgs_acked += (uint64_t)(b->n - failed);
    g.t.msgs_failed += (uint64_t)failed;
    pthread_mutex_unlock(&g.lock);
    if (r >= 0)
        check_batch(id, s, b);
}

/* One sender incarnation: batches to receiver i until it is time to
 * restart.  Returns 1 when it stopped in the middle of a batch. */
static int send_for_a_while(struct rmsg_endpoint *ep, int i, uint64_t *rs)
{
    struct batch b[1];
    pthread_mutex_lock(&g.lock);
    struct stream *s = stream_new(g.msg_streams);
    uint32_t id = s->id;
    pthread_mutex_unlock(&g.lock);
    int64_t until = now_ms() + around(rs, 18000);
    while (!stopping() && now_ms() < until) {
        struct udp_addr to;
        pthread_mutex_lock(&g.lock);
        int port = g.rx_port[i];
        pthread_mutex_unlock(&g.lock);
        if (UDP_Resolve("127.0.0.1", port, AF_INET, &to) != 0)
            break;
        queue_batch(ep, &to, s, id, b, rs);
        int abrupt = rnd(rs) % 400 == 0;
        pthread_mutex_lock(&g.lock);
        g.t.msgs_queued += (uint64_t)b->n;
        g.t.msgs_abandoned += abrupt ? (uint64_t)b->n : 0;
        pthread_mutex_unlock(&g.lock);
        if (abrupt)
            return 1;
        settle_batch(ep, id, s, b);
        sleep_ms(2);
    }
    return 0;
}

static void *sender(void *arg)
{
    int i = (int)(intptr_t)arg;
    uint64_t rs = g.seed ^ (0x200u + (unsigned)i);
    for (int first = 1; !stopping(); first = 0) {
        struct ep_open o = {.port = 0};
        int fd;
        if (tracked_open(ep_open_fn, &o, &fd) != 0) {
            violation("sender %d cannot open an endpoint", i);
            break;
        }
        int abrupt = send_for_a_while(o.ep, i, &rs);
        tracked_close(fd, ep_close_fn, o.ep);
        pthread_mutex_lock(&g.lock);
        g.t.restart_send += !first;
        g.t.restart_send_abrupt += (uint64_t)abrupt;
        pthread_mutex_unlock(&g.lock);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* rpc: the server                                                           */
/* ------------------------------------------------------------------------ */

/* incrementBy(i32) -> i64: adds to the counter, returns its new value. */
static int h_incr(void *arg, const void *req, size_t len,
                  struct rpc_enc *reply)
{
    (void)arg;
    struct rpc_dec d;
    int32_t by;
    rpc_dec_init(&d, req, len);
    rpc_get_i32(&d, &by);
    if (rpc_dec_end(&d) != 0)
        return 1;
    pthread_mutex_lock(&g.lock);
    int64_t v = g.counter += by;
    g.t.runs_incr++;
    pthread_mutex_unlock(&g.lock);
    rpc_put_i64(reply, v);
    return 0;
}

/* Marks call k of stream id as run.  Returns 1 if it had run already, -1
 * if it was never made. */
static int record_run(uint32_t id, uint64_t k)
{
    int twice = 0;
    pthread_mutex_lock(&g.lock);
    struct stream *s = &g.call_streams[id % STREAMS];
    g.t.runs_record++;
    if (s->id == id && k >= s->next) {
        twice = -1;
    } else if (s->id != id || k + RING <= s->next) {
        /* a client forgotten long ago, or a call too old to tell */
        g.t.record_unchecked++;
    } else if (seen(s, k)) {
        twice = 1;
    } else {
        mark(s, k);
    }
    pthread_mutex_unlock(&g.lock);
    return twice;
}

/* record(u32 stream, u64 k, u16 ms) -> u64 k: marks the call, then takes
 * ms milliseconds, long enough for copies to arrive while it runs. */
static int h_record(void *arg, const void *req, size_t len,
                    struct rpc_enc *reply)
{
    (void)arg;
    struct rpc_dec d;
    uint32_t id;
    uint64_t k;
    uint16_t ms;
    rpc_dec_init(&d, req, len);
    rpc_get_u32(&d, &id);
    rpc_get_u64(&d, &k);
    rpc_get_u16(&d, &ms);
    if (rpc_dec_end(&d) != 0)
        return 1;
    int twice = record_run(id, k);
    if (twice > 0)
        violation("client stream %u: call %" PRIu64 " ran twice", id, k);
    else if (twice < 0)
        violation("client stream %u: call %" PRIu64 " was never made", id,
                  k);
    if (ms)
        sleep_ms(ms);
    rpc_put_u64(reply, k);
    return 0;
}

struct srv_open {
    int port;
    struct rpc_server *s;
};

static int srv_open_fn(void *arg)
{
    struct srv_open *o = arg;
    return rpc_server_open(o->port, NULL, &o->s);
}

static void srv_close_fn(void *arg)
{
    rpc_server_close(arg);
}

static void *serve_thread(void *arg)
{
    if (rpc_serve(arg, 2) != 0)
        violation("rpc_serve failed");
    return NULL;
}

/* Opens the server on *port (a new one after 2 s of failures). */
static struct rpc_server *server_open(int *port, int *fd)
{
    struct srv_open o = {.port = *port};
    for (int tries = 0; tracked_open(srv_open_fn, &o, fd) != 0; tries++) {
        if (tries == 100)
            o.port = 0;
        if (tries > 200)
            return NULL;
        sleep_ms(20);
    }
    *port = rpc_server_port(o.s);
    if (rpc_register(o.s, PROC_INCR, h_incr, NULL, 0) != 0 ||
        rpc_register(o.s, PROC_RECORD, h_record, NULL, 0) != 0)
        violation("rpc_register failed");
    return o.s;
}

static void *server(void *arg)
{
    (void)arg;
    uint64_t rs = g.seed ^ 0x300u;
    pthread_mutex_lock(&g.lock);
    int port = g.rpc_port;
    pthread_mutex_unlock(&g.lock);
    for (int first = 1; !stopping(); first = 0) {
        int fd;
        struct rpc_server *s = server_open(&port, &fd);
        if (s == NULL) {
            violation("the rpc server cannot open");
            break;
        }
        pthread_mutex_lock(&g.lock);
        g.rpc_port = port;
        g.t.restart_server += !first;
        pthread_mutex_unlock(&g.lock);
        pthread_t th;
        if (pthread_create(&th, NULL, serve_thread, s) != 0) {
            violation("pthread_create failed");
            tracked_close(fd, srv_close_fn, s);
            break;
        }
        nap(around(&rs, 20000));
        rpc_stop(s);
        pthread_join(th, NULL);
        tracked_close(fd, srv_close_fn, s);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* rpc: clients                                                              */
/* ------------------------------------------------------------------------ */

struct cli_open {
    int port, retry_ms;
    struct rpc_client *c;
};

static int cli_open_fn(void *arg)
{
    struct cli_open *o = arg;
    struct rpc_config cfg;
    rpc_config_default(&cfg);
    cfg.retry_ms = (uint32_t)o->retry_ms;
    return rpc_client_open("127.0.0.1", o->port, &cfg, &o->c);
}

static void cli_close_fn(void *arg)
{
    rpc_client_close(arg);
}

/* Counts an outcome whose meaning does not depend on the procedure.
 * Returns 1 when the call may have run without our knowing. */
static int count_outcome(int r)
{
    int unknown = r == -ETIMEDOUT || r == -ESTALE || r == -ECONNABORTED;
    pthread_mutex_lock(&g.lock);
    if (r == 0)
        g.t.calls_ok++;
    else if (r == -ETIMEDOUT)
        g.t.calls_timeout++;
    else if (r == -ESTALE)
        g.t.calls_stale++;
    else if (r == -ECONNABORTED)
        g.t.calls_aborted++;
    else if (r == -EBUSY)
        g.t.calls_busy++;
    else
        g.t.calls_other++;
    pthread_mutex_unlock(&g.lock);
    if (r != 0 && !unknown && r != -EBUSY)
        violation("a call ended with %d (%s)", r, rpc_strerror(r));
    return unknown;
}

static void call_incr(struct rpc_client *c)
{
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    rpc_put_i32(&e, 1);
    void *rep = NULL;
    size_t len = 0;
    int r = rpc_call(c, PROC_INCR, e.buf, e.len, &rep, &len, RPC_TIMEOUT_MS);
    rpc_enc_free(&e);
    int unknown = count_outcome(r);
    if (r == 0) {
        struct rpc_dec d;
        int64_t v = 0;
        rpc_dec_init(&d, rep, len);
        rpc_get_i64(&d, &v);
        if (rpc_dec_end(&d) != 0 || v <= 0)
            violation("incrementBy replied %zu bytes, value %" PRId64, len,
                      v);
    }
    pthread_mutex_lock(&g.lock);
    g.t.incr_ok += r == 0;
    g.t.incr_unknown += (uint64_t)unknown;
    pthread_mutex_unlock(&g.lock);
    free(rep);
}

static void call_record(struct rpc_client *c, struct stream *s, uint32_t id,
                        uint64_t *rs)
{
    pthread_mutex_lock(&g.lock);
    uint64_t k = stream_take(s);
    pthread_mutex_unlock(&g.lock);
    uint16_t ms = rnd(rs) % 10 == 0 ? (uint16_t)(rnd(rs) % 80) : 0;
    struct rpc_enc e;
    rpc_enc_init(&e, 0);
    rpc_put_u32(&e, id);
    rpc_put_u64(&e, k);
    rpc_put_u16(&e, ms);
    void *rep = NULL;
    size_t len = 0;
    int r = rpc_call(c, PROC_RECORD, e.buf, e.len, &rep, &len,
                     RPC_TIMEOUT_MS);
    rpc_enc_free(&e);
    count_outcome(r);
    if (r == 0) {
        struct rpc_dec d;
        uint64_t got = 0;
        rpc_dec_init(&d, rep, len);
        rpc_get_u64(&d, &got);
        if (rpc_dec_end(&d) != 0 || got != k)
            violation("record(%u, %" PRIu64 ") got the reply of another "
                      "call", id, k);
    }
    free(rep);
}

/* One client incarnation, calling until it is time to restart. */
static void call_for_a_while(struct rpc_client *c, uint64_t *rs)
{
    pthread_mutex_lock(&g.lock);
    struct stream *s = stream_new(g.call_streams);
    uint32_t id = s->id;
    pthread_mutex_unlock(&g.lock);
    int64_t until = now_ms() + around(rs, 15000);
    while (!stopping() && now_ms() < until) {
        if (rnd(rs) % 2)
            call_incr(c);
        else
            call_record(c, s, id, rs);
    }
}

static void *client(void *arg)
{
    int i = (int)(intptr_t)arg;
    uint64_t rs = g.seed ^ (0x400u + (unsigned)i);
    for (int first = 1; !stopping(); first = 0) {
        struct cli_open o = {.retry_ms = i % 2 ? 30 : 0};
        pthread_mutex_lock(&g.lock);
        o.port = g.rpc_port;
        pthread_mutex_unlock(&g.lock);
        int fd;
        if (tracked_open(cli_open_fn, &o, &fd) != 0) {
            violation("client %d cannot open", i);
            break;
        }
        call_for_a_while(o.c, &rs);
        tracked_close(fd, cli_close_fn, o.c);
        pthread_mutex_lock(&g.lock);
        g.t.restart_client += !first;
        pthread_mutex_unlock(&g.lock);
    }
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Memory and progress                                                       */
/* ------------------------------------------------------------------------ */

/* The resident set in kB (VmRSS), or -1. */
static long rss_kb(void)
{
    FILE *f = fopen("/proc/self/status", "r");
    if (f == NULL)
        return -1;
    char line[256];
    long kb = -1;
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "VmRSS:", 6) == 0)
            kb = strtol(line + 6, NULL, 10);
    fclose(f);
    return kb;
}

static void progress(int64_t t)
{
    pthread_mutex_lock(&g.lock);
    struct totals x = g.t;
    long rss = g.rss_now_kb;
    uint64_t v = g.violations;
    pthread_mutex_unlock(&g.lock);
    fprintf(stderr, "soak: %4" PRId64 " s: %" PRIu64 " messages, %" PRIu64
            " calls ok, %" PRIu64 " restarts, RSS %ld kB, %" PRIu64
            " violations\n", t / 1000, x.msgs_delivered, x.calls_ok,
            x.restart_send + x.restart_recv + x.restart_server +
            x.restart_client, rss, v);
}

/* Samples the resident set every second until the end of the run. */
static void watch(void)
{
    int64_t next_report = 60000;
    while (!stopping()) {
        sleep_ms(1000);
        long kb = rss_kb();
        int64_t t = now_ms() - g.start_ms;
        pthread_mutex_lock(&g.lock);
        g.rss_now_kb = kb;
        int64_t half = (g.end_ms - g.start_ms) / 2;
        if (t <= g.window_ms && kb > g.rss_first_kb)
            g.rss_first_kb = kb;
        if (t >= half - g.window_ms / 2 && t <= half + g.window_ms / 2 &&
            kb > g.rss_mid_kb)
            g.rss_mid_kb = kb;
        if (t >= g.end_ms - g.start_ms - g.window_ms && kb > g.rss_last_kb)
            g.rss_last_kb = kb;
        pthread_mutex_unlock(&g.lock);
        if (!g.quiet && t >= next_report) {
            progress(t);
            next_report += 60000;
        }
    }
}

/* ------------------------------------------------------------------------ */
/* Summary                                                                   */
/* ------------------------------------------------------------------------ */

/* The memory rule: the last window's peak may exceed the first's by a
 * quarter or 16 MB, whichever is more (the allocator's arenas and caches
 * fill during the first minutes, a large message may be in flight at the
 * wrong moment), not by a trend; and in a run of 10 minutes or more, once
 * that warm-up is over, the last window's peak may exceed the peak half
 * way through by a tenth or 4 MB at most. */
static int memory_flat(void)
{
    long slack = g.rss_first_kb / 4 > 16384 ? g.rss_first_kb / 4 : 16384;
    long mid = g.rss_mid_kb / 10 > 4096 ? g.rss_mid_kb / 10 : 4096;
    int long_run = g.end_ms - g.start_ms >= 600000;
    return g.rss_last_kb <= g.rss_first_kb + slack &&
           (!long_run || g.rss_last_kb <= g.rss_mid_kb + mid);
}

static void summary(int64_t elapsed_ms)
{
    struct totals *t = &g.t;
    uint64_t unknown = t->incr_unknown;
    printf("soak: %.0f s over \"%s\" (%" PRIu64 " sockets)\n",
           (double)elapsed_ms / 1000, g.spec, g.sockets);
    printf("rmsg: %" PRIu64 " messages queued in %" PRIu64 " batches: %"
           PRIu64 " acknowledged, %" PRIu64 " failed (sent again), %" PRIu64
           " abandoned by a restart; %" PRIu64 " received once in order (%.1f"
           " MB), %" PRIu64 " from forgotten streams\n", t->msgs_queued,
           t->batches, t->msgs_acked, t->msgs_failed, t->msgs_abandoned,
           t->msgs_delivered, (double)t->bytes_delivered / 1e6,
           t->msgs_stale);
    printf("rpc:  %" PRIu64 " calls: %" PRIu64 " ok, %" PRIu64 " timed out, %"
           PRIu64 " stale, %" PRIu64 " aborted, %" PRIu64 " busy, %" PRIu64
           " other; handler runs %" PRIu64 " incrementBy, %" PRIu64
           " record (%" PRIu64 " too old to check)\n",
           t->calls_ok + t->calls_timeout + t->calls_stale +
               t->calls_aborted + t->calls_busy + t->calls_other,
           t->calls_ok, t->calls_timeout, t->calls_stale, t->calls_aborted,
           t->calls_busy, t->calls_other, t->runs_incr, t->runs_record,
           t->record_unchecked);
    printf("rpc:  counter %" PRId64 ", expected in [%" PRIu64 ", %" PRIu64
           "] (successful incrementBy, plus those of unknown outcome)\n",
           g.counter, t->incr_ok, t->incr_ok + unknown);
    printf("faults: %" PRIu64 " datagrams sent, %" PRIu64 " dropped, %" PRIu64
           " duplicated, %" PRIu64 " reordered, %" PRIu64 " corrupted, %"
           PRIu64 " delayed\n", t->faults.sent, t->faults.dropped,
           t->faults.duplicated, t->faults.reordered, t->faults.corrupted,
           t->faults.delayed);
    printf("restarts: %" PRIu64 " senders (%" PRIu64 " in mid-batch), %"
           PRIu64 " receivers, %" PRIu64 " rpc servers, %" PRIu64
           " rpc clients\n", t->restart_send, t->restart_send_abrupt,
           t->restart_recv, t->restart_server, t->restart_client);
    printf("memory: peak RSS %ld kB in the first %" PRId64 " s, %ld kB half "
           "way, %ld kB in the last %" PRId64 " s (%s)\n", g.rss_first_kb,
           g.window_ms / 1000, g.rss_mid_kb, g.rss_last_kb,
           g.window_ms / 1000, memory_flat() ? "flat" : "GROWING");
    printf("violations: %" PRIu64 "\n", g.violations);
}

/* ------------------------------------------------------------------------ */
/* Command line and main                                                     */
/* ------------------------------------------------------------------------ */

/* "90", "90s", "30m", "2h" -> milliseconds; -1 if malformed. */
static int64_t parse_duration(const char *s)
{
    char *end;
    double v = strtod(s, &end);
    double unit = 1000;
    if (end == s || v < 0)
        return -1;
    if (strcmp(end, "m") == 0)
        unit = 60000;
    else if (strcmp(end, "h") == 0)
        unit = 3600000;
    else if (*end != '\0' && strcmp(end, "s") != 0)
        return -1;
    return (int64_t)(v * unit);
}

static int usage(void)
{
    fprintf(stderr, "usage: soak [-d DURATION] [-f SPEC] [-s SEED] "
            "[-p PAIRS] [-c CLIENTS] [-q]\n"
            "  DURATION: seconds, or with unit s, m, h (default 60)\n");
    return 2;
}

/* Waits until the first `pairs` receivers (and the rpc server when rpc is
 * set) have published the ports they listen on. */
static void wait_for_ports(int pairs, int rpc)
{
    for (int ready = 0; !ready && !stopping(); sleep_ms(5)) {
        pthread_mutex_lock(&g.lock);
        ready = !rpc || g.rpc_port != 0;
        for (int i = 0; i < pairs; i++)
            ready &= g.rx_port[i] != 0;
        pthread_mutex_unlock(&g.lock);
    }
}

/* Checks the fault specification on a socket of our own. */
static int spec_ok(void)
{
    char err[200];
    int fd = UDP_Open(0);
    int ok = fd >= 0 && UDP_SetFaults(fd, g.spec, err, sizeof(err)) == 0;
    if (fd >= 0 && !ok)
        fprintf(stderr, "soak: bad fault specification: %s\n", err);
    if (fd >= 0)
        UDP_Close(fd);
    g.spec_has_seed = strstr(g.spec, "seed") != NULL;
    return ok;
}

int main(int argc, char **argv)
{
    int64_t duration = 60000;
    int pairs = 2, clients = 4, opt;
    const char *env = getenv("UDP_FAULTS");
    snprintf(g.spec, sizeof(g.spec), "%s", env && *env ? env : DEFAULT_FAULTS);
    g.seed = 1;
    while ((opt = getopt(argc, argv, "d:f:s:p:c:q")) != -1) {
        if (opt == 'd' && (duration = parse_duration(optarg)) < 0)
            return usage();
        else if (opt == 'f')
            snprintf(g.spec, sizeof(g.spec), "%s", optarg);
        else if (opt == 's')
            g.seed = strtoull(optarg, NULL, 10);
        else if (opt == 'p')
            pairs = atoi(optarg);
        else if (opt == 'c')
            clients = atoi(optarg);
        else if (opt == 'q')
            g.quiet = 1;
        else if (opt == '?')
            return usage();
    }
    if (optind != argc || pairs < 0 || pairs > MAX_PAIRS || clients < 0 ||
        clients > MAX_CLIENTS || !spec_ok())
        return usage();
    g.start_ms = now_ms();
    g.end_ms = g.start_ms + duration;
    g.window_ms = duration >= 240000 ? 60000 : duration / 4;

    pthread_t th[2 * MAX_PAIRS + MAX_CLIENTS + 1];
    int n = 0;
    for (int i = 0; i < pairs; i++)
        pthread_create(&th[n++], NULL, receiver, (void *)(intptr_t)i);
    wait_for_ports(pairs, 0); /* the receivers publish their ports */
    for (int i = 0; i < pairs; i++)
        pthread_create(&th[n++], NULL, sender, (void *)(intptr_t)i);
    pthread_create(&th[n++], NULL, server, NULL);
    wait_for_ports(0, 1);
    for (int i = 0; i < clients; i++)
        pthread_create(&th[n++], NULL, client, (void *)(intptr_t)i);
    watch();
    for (int i = 0; i < n; i++)
        pthread_join(th[i], NULL);

    int64_t lo = (int64_t)g.t.incr_ok;
    int64_t hi = lo + (int64_t)g.t.incr_unknown;
    if (g.counter < lo || g.counter > hi)
        violation("the counter is %" PRId64 ", outside [%" PRId64
                  ", %" PRId64 "]", g.counter, lo, hi);
    if (!memory_flat())
        violation("memory grew from %ld kB (first), %ld kB (half way) to "
                  "%ld kB", g.rss_first_kb, g.rss_mid_kb, g.rss_last_kb);
    summary(now_ms() - g.start_ms);
    printf("soak: %s\n", g.violations ? "FAIL" : "PASS");
    return g.violations ? 1 : 0;
}
