/*
 * echo_service.c - an rpc server that registers itself with the discovery
 * service and keeps its registration alive.
 *
 * Usage: echo_service [-d delay_ms] [-a host] port discovery_host
 *                     discovery_port name
 *   port      0: any free port (prints "listening on port N")
 *   -d        each call takes this long (a slow server, for lb_client's
 *             least-outstanding-calls policy to notice)
 *   -a        the host name to register (default 127.0.0.1)
 *
 * Procedure 1 ECHO(bytes) -> u32 our port, bytes (the same ones back).
 * Echo changes nothing, so running a request twice is harmless: it is
 * registered RPC_IDEMPOTENT and skips the reply cache.  That is also what
 * makes failover safe: a client whose call to a dying server timed out
 * cannot know whether it ran, and may send it to another server.
 *
 * Staying registered.  The discovery service forgets a registration that
 * is not renewed in time (its lease, ttl ms, comes back in every REGISTER
 * reply), so a thread renews it every ttl/3: two renewals may be lost
 * before the lease runs out.  When the discovery service does not answer,
 * the thread tries again after an exponentially growing delay (50 ms,
 * 100, 200, ... at most 2 s), and waits a random part of it, between half
 * and all of it ("jitter"): a hundred servers that lost the service at the
 * same moment then do not all come back at the same moment and knock it
 * over again.  Each attempt may take up to a second: after a failure rmsg
 * starts a new relation, whose first retransmission waits for the 200 ms
 * initial timeout, so much shorter attempts could fail against a live
 * service.  SIGTERM unregisters and exits; a crash (kill -9) does not,
 * and the lease expires by itself.
 */
#define _POSIX_C_SOURCE 200809L
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rpc.h"

#define ECHO            1
#define REGISTER        1
#define UNREGISTER      3
#define CALL_TIMEOUT_MS 1000 /* see "Staying registered" */
#define BACKOFF_BASE_MS 50
#define BACKOFF_MAX_MS  2000

/* The registration thread's state. */
struct registration {
    struct rpc_client *discovery;
    const char *name, *host;
    int port;
    int stop;
    pthread_mutex_t lock;
    pthread_cond_t wake;
};

static struct rpc_server *server;

static void on_signal(int sig)
{
    (void)sig;
    rpc_stop(server);
}

static int echo(void *arg, const void *req, size_t len, struct rpc_enc *reply)
{
    int *me = arg; /* [0] our port, [1] the delay */
    struct rpc_dec d;
    const void *p;
    size_t n;
    rpc_dec_init(&d, req, len);
    rpc_get_bytes(&d, &p, &n);
    if (rpc_dec_end(&d) != 0)
        return 1;
    if (me[1] > 0) {
        struct timespec ts = {me[1] / 1000, (long)(me[1] % 1000) * 1000000};
        nanosleep(&ts, NULL);
    }
    rpc_put_u32(reply, (uint32_t)me[0]);
    rpc_put_bytes(reply, p, n);
    return 0;
}

/* Sleeps ms milliseconds, or less if we are told to stop.  Returns
 * whether to stop. */
static int pause_ms(struct registration *r, int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000;
    if (ts.tv_nsec >= 1000000000) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&r->lock);
    while (!r->stop && pthread_cond_timedwait(&r->wake, &r->lock, &ts) == 0)
        ;
    int stop = r->stop;
    pthread_mutex_unlock(&r->lock);
    return stop;
}

/* One REGISTER (or UNREGISTER) call.  Returns the lease in ms (> 0) for a
 * registration, 0 for an unregistration, or a negative rpc outcome. */
static int call_discovery(struct registration *r, uint32_t proc)
{
    struct rpc_enc e;
    void *reply = NULL;
    size_t len = 0;
    rpc_enc_init(&e, 0);
    rpc_put_string(&e, r->name);
    rpc_put_string(&e, r->host);
    rpc_put_u32(&e, (uint32_t)r->port);
    int rc = e.err ? e.err
                   : rpc_call(r->discovery, proc, e.buf, e.len, &reply, &len,
                              CALL_TIMEOUT_MS);
    rpc_enc_free(&e);
    uint32_t ttl = 0;
    struct rpc_dec d;
    rpc_dec_init(&d, reply, len);
    if (rc == 0 && proc == REGISTER && (rpc_get_u32(&d, &ttl) != 0 || ttl == 0))
        rc = -EPROTO;
    free(reply);
    return rc != 0 ? (rc > 0 ? -EPROTO : rc) : (int)ttl;
}

/* Registers, renews every ttl/3, and backs off with jitter on failure. */
static void *keep_registered(void *arg)
{
    struct registration *r = arg;
    int attempt = 0, registered = 0;
    unsigned seed = (unsigned)getpid();
    do {
        int ttl = call_discovery(r, REGISTER);
        if (ttl > 0) {
            if (!registered)
                printf("registered as %s at %s:%d (lease %d ms)\n", r->name,
                       r->host, r->port, ttl);
            fflush(stdout);
            registered = 1;
            attempt = 0;
            if (pause_ms(r, ttl / 3))
                break;
            continue;
        }
        registered = 0;
        int backoff = BACKOFF_BASE_MS << (attempt < 6 ? attempt : 6);
        if (backoff > BACKOFF_MAX_MS)
            backoff = BACKOFF_MAX_MS;
        int wait = backoff / 2 + rand_r(&seed) % (backoff / 2 + 1);
        attempt++;
        printf("register: %s; attempt %d, retry in %d ms (backoff %d ms)\n",
               rpc_strerror(ttl), attempt, wait, backoff);
        fflush(stdout);
        if (pause_ms(r, wait))
            break;
    } while (1);
    return NULL;
}

/* Reads the options; returns the index of the first positional argument,
 * or -1. */
static int options(int argc, char *argv[], int *delay, const char **host)
{
    int i = 1;
    for (; i + 1 < argc && argv[i][0] == '-'; i += 2) {
        if (strcmp(argv[i], "-d") == 0)
            *delay = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "-a") == 0)
            *host = argv[i + 1];
        else
            return -1;
    }
    return argc - i == 4 ? i : -1;
}

int main(int argc, char *argv[])
{
    int me[2] = {0, 0}; /* our port, the delay of each call */
    struct registration r = {.host = "127.0.0.1"};
    int a = options(argc, argv, &me[1], &r.host);
    if (a < 0) {
        fprintf(stderr, "usage: echo_service [-d delay_ms] [-a host] port "
                        "discovery_host discovery_port name\n");
        return 2;
    }
    int rc = rpc_server_open(atoi(argv[a]), NULL, &server);
    if (rc == 0)
        rc =
            rpc_client_open(argv[a + 1], atoi(argv[a + 2]), NULL, &r.discovery);
    if (rc < 0) {
        fprintf(stderr, "echo_service: %s\n", rpc_strerror(rc));
        return 1;
    }
    me[0] = r.port = rpc_server_port(server);
    r.name = argv[a + 3];
    rpc_register(server, ECHO, echo, me, RPC_IDEMPOTENT);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("listening on port %d\n", r.port);
    fflush(stdout);
    pthread_mutex_init(&r.lock, NULL);
    pthread_cond_init(&r.wake, NULL);
    pthread_t t;
    pthread_create(&t, NULL, keep_registered, &r);
    rpc_serve(server, 4); /* four workers: a slow call does not block all */
    pthread_mutex_lock(&r.lock);
    r.stop = 1;
    pthread_cond_signal(&r.wake);
    pthread_mutex_unlock(&r.lock);
    pthread_join(t, NULL);
    call_discovery(&r, UNREGISTER); /* leaving cleanly: say so at once */
    struct rpc_server_stats st;
    rpc_server_stats(server, &st);
    printf("served %llu calls\n", (unsigned long long)st.calls);
    rpc_client_close(r.discovery);
    rpc_server_close(server);
    pthread_mutex_destroy(&r.lock);
    pthread_cond_destroy(&r.wake);
    return 0;
}
