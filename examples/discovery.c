/*
 * discovery.c - a discovery service: servers register a name and the
 * address they serve on, clients look a name up and get every live
 * address.
 *
 * Usage: discovery [port] [ttl_ms]
 *   port    0: any free port (prints "listening on port N")
 *   ttl_ms  how long a registration lives unless renewed (default 1000)
 *
 *   build/examples/discovery 0 1000                       # port D
 *   build/examples/echo_service 0 127.0.0.1 D echo        # a few of these
 *   build/examples/lb_client 127.0.0.1 D echo             # calls them
 *   build/examples/lb_client -l 127.0.0.1 D echo          # who is alive?
 *
 * Servers come and go, and one that crashes cannot say so.  So every
 * registration is a lease: it expires ttl_ms after it was last renewed,
 * and a live server renews it well before that (echo_service does so every
 * ttl/3).  A server that stops renewing, because it crashed, hangs, or
 * lost its network, drops out of the answers by itself.  A server that
 * leaves cleanly unregisters at once.
 *
 * Procedures (rpc_marshal.h encodings):
 *   1 REGISTER(string name, string host, u32 port) -> u32 ttl_ms
 *   2 LOOKUP(string name) -> u32 n, then n times (string host, u32 port)
 *   3 UNREGISTER(string name, string host, u32 port) -> bool was_there
 * A LOOKUP returns every live address and leaves the choice to the client
 * (see lb_client.c for round robin and least outstanding calls).
 *
 * Registering twice is harmless (it renews the lease), so REGISTER would
 * be safe at-least-once; the rpc layer gives at-most-once anyway.
 * Expired entries are removed when the next call arrives: with servers
 * renewing every ttl/3 there is always one soon.
 */
#define _POSIX_C_SOURCE 200809L
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "rpc.h"

#define REGISTER     1
#define LOOKUP       2
#define UNREGISTER   3
#define BAD_REQUEST  1 /* our error codes, positive: they reach the caller */
#define FULL         2
#define NAME_MAX_LEN 64
#define HOST_MAX_LEN 255
#define ENTRIES_MAX  1024

struct entry {
    char name[NAME_MAX_LEN + 1];
    char host[HOST_MAX_LEN + 1];
    uint32_t port;
    int64_t renewed_ms; /* when the lease was last renewed */
};

struct registry {
    struct entry e[ENTRIES_MAX];
    int n;
    uint32_t ttl_ms;
};

static struct rpc_server *server;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Removes every entry whose lease ran out.  Handlers run one at a time
 * (rpc_serve(s, 0)), so the registry needs no lock. */
static void expire(struct registry *r)
{
    int64_t now = now_ms();
    for (int i = 0; i < r->n;) {
        struct entry *e = &r->e[i];
        if (now - e->renewed_ms <= (int64_t)r->ttl_ms) {
            i++;
            continue;
        }
        printf("expired %s %s:%u (silent for %lld ms)\n", e->name, e->host,
               e->port, (long long)(now - e->renewed_ms));
        fflush(stdout);
        *e = r->e[--r->n]; /* order does not matter */
    }
}

/* Decodes (name, host, port) and finds that entry; -1 if it is absent. */
static int decode_entry(struct rpc_dec *d, struct entry *want,
                        const struct registry *r)
{
    rpc_get_string_buf(d, want->name, sizeof(want->name));
    rpc_get_string_buf(d, want->host, sizeof(want->host));
    rpc_get_u32(d, &want->port);
    for (int i = 0; i < r->n; i++)
        if (strcmp(r->e[i].name, want->name) == 0 &&
            strcmp(r->e[i].host, want->host) == 0 && r->e[i].port == want->port)
            return i;
    return -1;
}

static int do_register(void *arg, const void *req, size_t len,
                       struct rpc_enc *reply)
{
    struct registry *r = arg;
    struct rpc_dec d;
    struct entry want;
    expire(r);
    rpc_dec_init(&d, req, len);
    int i = decode_entry(&d, &want, r);
    if (rpc_dec_end(&d) != 0 || want.port == 0 || want.port > 65535)
        return BAD_REQUEST;
    if (i < 0) {
        if (r->n == ENTRIES_MAX)
            return FULL;
        i = r->n++;
        r->e[i] = want;
        printf("registered %s %s:%u\n", want.name, want.host, want.port);
        fflush(stdout);
    }
    r->e[i].renewed_ms = now_ms();
    rpc_put_u32(reply, r->ttl_ms);
    return 0;
}

static int do_lookup(void *arg, const void *req, size_t len,
                     struct rpc_enc *reply)
{
    struct registry *r = arg;
    struct rpc_dec d;
    char name[NAME_MAX_LEN + 1];
    expire(r);
    rpc_dec_init(&d, req, len);
    rpc_get_string_buf(&d, name, sizeof(name));
    if (rpc_dec_end(&d) != 0)
        return BAD_REQUEST;
    uint32_t n = 0;
    for (int i = 0; i < r->n; i++)
        n += strcmp(r->e[i].name, name) == 0;
    rpc_put_count(reply, n);
    for (int i = 0; i < r->n; i++) {
        if (strcmp(r->e[i].name, name) != 0)
            continue;
        rpc_put_string(reply, r->e[i].host);
        rpc_put_u32(reply, r->e[i].port);
    }
    return 0;
}

static int do_unregister(void *arg, const void *req, size_t len,
                         struct rpc_enc *reply)
{
    struct registry *r = arg;
    struct rpc_dec d;
    struct entry want;
    expire(r);
    rpc_dec_init(&d, req, len);
    int i = decode_entry(&d, &want, r);
    if (rpc_dec_end(&d) != 0)
        return BAD_REQUEST;
    rpc_put_bool(reply, i >= 0);
    if (i >= 0) {
        printf("unregistered %s %s:%u\n", want.name, want.host, want.port);
        fflush(stdout);
        r->e[i] = r->e[--r->n];
    }
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    rpc_stop(server);
}

int main(int argc, char *argv[])
{
    static struct registry reg; /* large: not on the stack */
    int port = argc > 1 ? atoi(argv[1]) : 10004;
    reg.ttl_ms = argc > 2 ? (uint32_t)atoi(argv[2]) : 1000;
    int rc = rpc_server_open(port, NULL, &server);
    if (rc < 0 || reg.ttl_ms == 0) {
        fprintf(stderr, "discovery: %s\n",
                rc < 0 ? rpc_strerror(rc) : "bad ttl");
        return 1;
    }
    rpc_register(server, REGISTER, do_register, &reg, 0);
    rpc_register(server, LOOKUP, do_lookup, &reg, 0);
    rpc_register(server, UNREGISTER, do_unregister, &reg, 0);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("listening on port %d\nleases last %u ms\n", rpc_server_port(server),
           reg.ttl_ms);
    fflush(stdout);
    rpc_serve(server, 0);
    rpc_server_close(server);
    return 0;
}
