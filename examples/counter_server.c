/*
 * counter_server.c - the lecture's incrementBy counter as an rpc server.
 *
 * Two counters, one per semantics:
 *   procedure 1  incrementBy, at-most-once: a repeated request is answered
 *                from the reply cache and never runs twice
 *   procedure 2  incrementBy, registered RPC_IDEMPOTENT (at-least-once):
 *                every copy of a request that arrives runs
 *   procedure 3  get: both counters, then how many times each ran
 * Arguments and results use the marshalling helpers: incrementBy takes an
 * int32 and returns the new value as an int64.
 *
 * Usage: counter_server [port] (0: any free port; it prints the port).
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>

#include "rpc.h"

struct counter {
    int64_t value;
    uint64_t runs;
};

static struct counter amo, alo;
static struct rpc_server *server;

/* Procedures 1 and 2 share this code; `arg` says which counter. */
static int increment_by(void *arg, const void *req, size_t len,
                        struct rpc_enc *reply)
{
    struct counter *c = arg;
    struct rpc_dec d;
    int32_t by;
    rpc_dec_init(&d, req, len);
    rpc_get_i32(&d, &by);
    if (rpc_dec_end(&d) != 0)
        return 1; /* our own error code: a malformed request */
    c->value += by; /* handlers run one at a time: rpc_serve(s, 0) */
    c->runs++;
    rpc_put_i64(reply, c->value);
    return 0;
}

static int get(void *arg, const void *req, size_t len, struct rpc_enc *reply)
{
    (void)arg, (void)req, (void)len;
    rpc_put_i64(reply, amo.value);
    rpc_put_i64(reply, alo.value);
    rpc_put_u64(reply, amo.runs);
    rpc_put_u64(reply, alo.runs);
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    rpc_stop(server); /* safe in a signal handler */
}

int main(int argc, char *argv[])
{
    int port = argc > 1 ? atoi(argv[1]) : 10001;
    int rc = rpc_server_open(port, NULL, &server);
    if (rc < 0) {
        fprintf(stderr, "counter_server: %s\n", rpc_strerror(rc));
        return 1;
    }
    rpc_register(server, 1, increment_by, &amo, 0);
    rpc_register(server, 2, increment_by, &alo, RPC_IDEMPOTENT);
    rpc_register(server, 3, get, NULL, 0);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("listening on port %d\n", rpc_server_port(server));
    fflush(stdout);
    rpc_serve(server, 0);
    struct rpc_server_stats st;
    rpc_server_stats(server, &st);
    printf("handler runs %llu, duplicates answered from the cache %llu\n",
           (unsigned long long)st.calls,
           (unsigned long long)st.cached_replies);
    rpc_server_close(server);
    return 0;
}
