/*
 * lb_client.c - finds the servers of a service through the discovery
 * service, spreads calls over the live ones, and fails over when one dies.
 *
 * Usage: lb_client [-p rr|loc] [-n calls] [-c concurrency] [-t timeout_ms]
 *                  [-r attempts] discovery_host discovery_port name
 *        lb_client -l discovery_host discovery_port name   (list, exit)
 *
 *   -p rr    round robin: each call goes to the next live server in turn
 *   -p loc   least outstanding calls: to the server with the fewest calls
 *            in progress, so a slow server (echo_service -d) gets fewer
 *   -n       calls to make (default 1000), -c how many at once (4)
 *   -t       how long one attempt may take (500 ms), -r attempts per call (5)
 *
 * Example, with discovery and three echo_service on loopback (discovery.c
 * says how to start them), then kill one of the servers while this runs:
 *   build/examples/lb_client -p loc -n 5000 127.0.0.1 D echo
 *
 * Routing.  A background thread asks the discovery service for the
 * service's servers every REFRESH_MS and keeps the routing table: one rpc
 * client per server, and how many calls each has in progress.  A call
 * that fails (the deadline passed: the server may be dead) marks its
 * server down for DOWN_MS and is sent to another server, after a pause
 * that doubles with each attempt and is jittered (between half and all of
 * it) so that many clients failing at once do not retry in lockstep.  A
 * call gets a bounded number of attempts; the discovery service drops a
 * dead server once its lease expires, and the table follows.
 *
 * Failover sends a call again to a different server without knowing
 * whether the first one ran it: at-least-once across servers.  That is
 * fine for echo, which changes nothing; an operation with effects would
 * need the servers to share the at-most-once bookkeeping.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rpc.h"

#define ECHO            1
#define LOOKUP          2
#define SERVERS_MAX     32
#define HOST_MAX_LEN    255
#define REFRESH_MS      200
#define DOWN_MS         1000
#define BACKOFF_BASE_MS 20
#define BACKOFF_MAX_MS  1000

struct server {
    char host[HOST_MAX_LEN + 1];
    int port;
    struct rpc_client *c;
    int listed;         /* in the latest lookup */
    int outstanding;    /* calls in progress */
    int64_t down_until; /* after a failure: not chosen before this (ms) */
    int served;         /* calls it answered */
};

struct lb {
    pthread_mutex_t lock;
    pthread_cond_t wake;
    struct server s[SERVERS_MAX];
    int n, rr_next, loc;
    struct rpc_client *discovery;
    const char *name;
    int calls, next_call, done, ok, failed, failovers, retries;
    int timeout_ms, attempts, stop;
};

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000};
    nanosleep(&ts, NULL);
}

/* ------------------------------------------------------------------------ */
/* Discovery: the routing table                                              */
/* ------------------------------------------------------------------------ */

/* Asks the discovery service for the servers of `name`: fills hosts and
 * ports (at most SERVERS_MAX) and returns how many, or an rpc outcome. */
static int lookup(struct rpc_client *d, const char *name,
                  char hosts[][HOST_MAX_LEN + 1], int *ports)
{
    struct rpc_enc e;
    struct rpc_dec dec;
    void *reply = NULL;
    size_t len = 0, n = 0;
    rpc_enc_init(&e, 0);
    rpc_put_string(&e, name);
    int rc =
        e.err ? e.err : rpc_call(d, LOOKUP, e.buf, e.len, &reply, &len, 1000);
    rpc_enc_free(&e);
    if (rc != 0) {
        free(reply);
        return rc > 0 ? -EPROTO : rc;
    }
    rpc_dec_init(&dec, reply, len);
    rpc_get_count(&dec, &n, SERVERS_MAX, 8);
    for (size_t i = 0; i < n; i++) {
        uint32_t port = 0;
        rpc_get_string_buf(&dec, hosts[i], HOST_MAX_LEN + 1);
        rpc_get_u32(&dec, &port);
        ports[i] = (int)port;
    }
    rc = rpc_dec_end(&dec) == 0 ? (int)n : -EPROTO;
    free(reply);
    return rc;
}

/* Marks a looked-up server listed, adding it (with its own rpc client)
 * if it is new.  Called locked. */
static void add_server(struct lb *lb, const char *host, int port)
{
    for (int i = 0; i < lb->n; i++) {
        struct server *s = &lb->s[i];
        if (s->port == port && strcmp(s->host, host) == 0) {
            s->listed = 1;
            return;
        }
    }
    if (lb->n == SERVERS_MAX)
        return;
    struct server *s = &lb->s[lb->n];
    memset(s, 0, sizeof(*s));
    snprintf(s->host, sizeof(s->host), "%s", host);
    s->port = port;
    if (rpc_client_open(host, port, NULL, &s->c) != 0)
        return;
    s->listed = 1;
    lb->n++;
}

/* One lookup, applied to the table.  Returns the servers found, or an rpc
 * outcome (the table is then left as it was). */
static int refresh(struct lb *lb)
{
    char hosts[SERVERS_MAX][HOST_MAX_LEN + 1];
    int ports[SERVERS_MAX];
    int n = lookup(lb->discovery, lb->name, hosts, ports);
    if (n < 0)
        return n;
    pthread_mutex_lock(&lb->lock);
    int was[SERVERS_MAX], known = lb->n;
    for (int i = 0; i < known; i++) {
        was[i] = lb->s[i].listed;
        lb->s[i].listed = 0;
    }
    for (int i = 0; i < n; i++)
        add_server(lb, hosts[i], ports[i]);
    for (int i = 0; i < lb->n; i++) {
        struct server *s = &lb->s[i];
        int before = i < known && was[i];
        if (before != s->listed)
            printf("server %s:%d %s\n", s->host, s->port,
                   s->listed ? "joined" : "left (no longer registered)");
    }
    fflush(stdout);
    pthread_mutex_unlock(&lb->lock);
    return n;
}

/* The background thread: refreshes the table every REFRESH_MS. */
static void *refresher(void *arg)
{
    struct lb *lb = arg;
    pthread_mutex_lock(&lb->lock);
    while (!lb->stop) {
        pthread_mutex_unlock(&lb->lock);
        refresh(lb);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += REFRESH_MS * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000;
        ts.tv_nsec %= 1000000000;
        pthread_mutex_lock(&lb->lock);
        if (!lb->stop)
            pthread_cond_timedwait(&lb->wake, &lb->lock, &ts);
    }
    pthread_mutex_unlock(&lb->lock);
    return NULL;
}

/* ------------------------------------------------------------------------ */
/* Routing: choosing a server, failing over                                  */
/* ------------------------------------------------------------------------ */

/* Chooses a live server that is not marked down, by the policy, and counts
 * the call as outstanding on it.  Returns its index, or -1.  Starting the
 * search after the last choice makes round robin, and breaks ties between
 * equally loaded servers fairly.  Called locked. */
static int pick(struct lb *lb)
{
    int best = -1;
    int64_t now = now_ms();
    for (int k = 0; k < lb->n; k++) {
        int i = (lb->rr_next + k) % lb->n;
        struct server *s = &lb->s[i];
        if (!s->listed || s->down_until > now)
            continue;
        if (!lb->loc) {
            best = i;
            break;
        }
        if (best < 0 || s->outstanding < lb->s[best].outstanding)
            best = i;
    }
    if (best >= 0) {
        lb->rr_next = best + 1;
        lb->s[best].outstanding++;
    }
    return best;
}

/* One attempt of call `id` on server i: sends "call ID" and checks the
 * echo.  Returns 0 or an rpc outcome. */
static int attempt(struct lb *lb, int i, int id)
{
    char text[32];
    struct rpc_enc e;
    void *reply = NULL;
    size_t len = 0, n = 0;
    const void *back = NULL;
    uint32_t port = 0;
    snprintf(text, sizeof(text), "call %d", id);
    rpc_enc_init(&e, 0);
    rpc_put_bytes(&e, text, strlen(text));
    int rc = e.err ? e.err
                   : rpc_call(lb->s[i].c, ECHO, e.buf, e.len, &reply, &len,
                              lb->timeout_ms);
    rpc_enc_free(&e);
    struct rpc_dec d;
    rpc_dec_init(&d, reply, len);
    if (rc == 0 &&
        (rpc_get_u32(&d, &port) != 0 || rpc_get_bytes(&d, &back, &n) != 0 ||
         rpc_dec_end(&d) != 0 || port != (uint32_t)lb->s[i].port ||
         n != strlen(text) || memcmp(back, text, n) != 0))
        rc = -EPROTO; /* not the echo we asked for */
    free(reply);
    return rc;
}

/* Makes call `id`, failing over to other servers with jittered
 * exponential backoff, at most lb->attempts times.  Returns 0 or the last
 * failure. */
static int one_call(struct lb *lb, int id, unsigned *seed)
{
    int rc = -EHOSTUNREACH;
    for (int a = 0; a < lb->attempts; a++) {
        if (a > 0) { /* a pause before trying again: backoff and jitter */
            int b = BACKOFF_BASE_MS << (a - 1 < 6 ? a - 1 : 6);
            b = b > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : b;
            sleep_ms(b / 2 + (int)(rand_r(seed) % (unsigned)(b / 2 + 1)));
        }
        pthread_mutex_lock(&lb->lock);
        lb->retries += a > 0;
        int i = pick(lb);
        pthread_mutex_unlock(&lb->lock);
        if (i < 0)
            continue; /* nobody to call now; perhaps after the pause */
        rc = attempt(lb, i, id);
        pthread_mutex_lock(&lb->lock);
        struct server *s = &lb->s[i];
        s->outstanding--;
        if (rc == 0) {
            s->served++;
        } else {
            s->down_until = now_ms() + DOWN_MS;
            lb->failovers++;
            printf("call %d: %s:%d failed (%s); failing over\n", id, s->host,
                   s->port, rpc_strerror(rc));
            fflush(stdout);
        }
        pthread_mutex_unlock(&lb->lock);
        if (rc == 0)
            return 0;
    }
    return rc;
}

/* A worker: takes call numbers until none is left. */
static void *worker(void *arg)
{
    struct lb *lb = arg;
    unsigned seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)&seed;
    int step = lb->calls >= 10 ? lb->calls / 10 : 1;
    for (;;) {
        pthread_mutex_lock(&lb->lock);
        int id = lb->next_call++;
        pthread_mutex_unlock(&lb->lock);
        if (id >= lb->calls)
            return NULL;
        int rc = one_call(lb, id, &seed);
        pthread_mutex_lock(&lb->lock);
        lb->done++;
        if (rc == 0)
            lb->ok++;
        else
            lb->failed++;
        if (rc != 0)
            printf("call %d: FAILED after %d attempts: %s\n", id, lb->attempts,
                   rpc_strerror(rc));
        if (lb->done % step == 0)
            printf("progress: %d/%d calls\n", lb->done, lb->calls);
        fflush(stdout);
        pthread_mutex_unlock(&lb->lock);
    }
}

/* ------------------------------------------------------------------------ */
/* Main                                                                      */
/* ------------------------------------------------------------------------ */

static void report(struct lb *lb)
{
    printf("%d calls: %d succeeded, %d failed; %d failovers, %d retries "
           "(policy %s)\n",
           lb->calls, lb->ok, lb->failed, lb->failovers, lb->retries,
           lb->loc ? "least outstanding calls" : "round robin");
    for (int i = 0; i < lb->n; i++)
        printf("  %s:%d served %d calls\n", lb->s[i].host, lb->s[i].port,
               lb->s[i].served);
}

/* -l: prints the servers the discovery service knows. */
static int list(struct rpc_client *d, const char *name)
{
    char hosts[SERVERS_MAX][HOST_MAX_LEN + 1];
    int ports[SERVERS_MAX];
    int n = lookup(d, name, hosts, ports);
    if (n < 0) {
        fprintf(stderr, "lb_client: lookup: %s\n", rpc_strerror(n));
        return 1;
    }
    printf("%d servers for %s\n", n, name);
    for (int i = 0; i < n; i++)
        printf("  %s:%d\n", hosts[i], ports[i]);
    return 0;
}

int main(int argc, char *argv[])
{
    static struct lb lb = {.calls = 1000, .timeout_ms = 500, .attempts = 5};
    int concurrency = 4, only_list = 0, opt;
    while ((opt = getopt(argc, argv, "p:n:c:t:r:l")) != -1) {
        if (opt == 'p')
            lb.loc = strcmp(optarg, "loc") == 0;
        else if (opt == 'n')
            lb.calls = atoi(optarg);
        else if (opt == 'c')
            concurrency = atoi(optarg);
        else if (opt == 't')
            lb.timeout_ms = atoi(optarg);
        else if (opt == 'r')
            lb.attempts = atoi(optarg);
        else if (opt == 'l')
            only_list = 1;
        else
            optind = argc + 1; /* unknown option: show the usage */
    }
    if (argc - optind != 3 || concurrency < 1 || concurrency > 64 ||
        lb.attempts < 1) {
        fprintf(stderr, "usage: lb_client [-p rr|loc] [-n calls] [-c "
                        "concurrency] [-t timeout_ms] [-r attempts] "
                        "discovery_host discovery_port name\n"
                        "       lb_client -l discovery_host discovery_port "
                        "name\n");
        return 2;
    }
    lb.name = argv[optind + 2];
    int rc = rpc_client_open(argv[optind], atoi(argv[optind + 1]), NULL,
                             &lb.discovery);
    if (rc < 0) {
        fprintf(stderr, "lb_client: %s\n", rpc_strerror(rc));
        return 1;
    }
    if (only_list) {
        rc = list(lb.discovery, lb.name);
        rpc_client_close(lb.discovery);
        return rc;
    }
    pthread_mutex_init(&lb.lock, NULL);
    pthread_cond_init(&lb.wake, NULL);
    refresh(&lb);
    pthread_t r, w[64];
    pthread_create(&r, NULL, refresher, &lb);
    for (int i = 0; i < concurrency; i++)
        pthread_create(&w[i], NULL, worker, &lb);
    for (int i = 0; i < concurrency; i++)
        pthread_join(w[i], NULL);
    pthread_mutex_lock(&lb.lock);
    lb.stop = 1;
    pthread_cond_signal(&lb.wake);
    pthread_mutex_unlock(&lb.lock);
    pthread_join(r, NULL);
    report(&lb);
    for (int i = 0; i < lb.n; i++)
        rpc_client_close(lb.s[i].c);
    rpc_client_close(lb.discovery);
    return lb.failed ? 1 : 0;
}
