/*
 * calc_server.c - the calculator of calc.x, served.
 *
 * rpcgen wrote everything between the network and the functions below:
 * calc_register (in the generated calc_svc.c) installs a dispatcher that
 * decodes each call's arguments, runs the matching calc_*_impl and encodes
 * what it returns.  This file is only the procedures and main.
 *
 * Usage: calc_server [port]  (0: any free port; it prints the port)
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "calc.h"

static struct rpc_server *server;

int calc_add_impl(void *ctx, int64_t a, int64_t b, int64_t *result)
{
    (void)ctx;
    *result = (int64_t)((uint64_t)a + (uint64_t)b); /* wraps, never UB */
    return 0;
}

int calc_divide_impl(void *ctx, double a, double b, double *result)
{
    (void)ctx;
    if (b == 0)
        return 1; /* our own error code: the caller's stub returns 1 */
    *result = a / b;
    return 0;
}

int calc_summarize_impl(void *ctx, const double *values, size_t values_len,
                        struct calc_stats *result)
{
    (void)ctx;
    double sum = 0;
    result->count = (uint32_t)values_len;
    for (size_t i = 0; i < values_len; i++) {
        sum += values[i];
        if (i == 0 || values[i] < result->min)
            result->min = values[i];
        if (i == 0 || values[i] > result->max)
            result->max = values[i];
    }
    result->mean = values_len ? sum / (double)values_len : 0;
    return 0;
}

/* The result string must come from malloc: the dispatcher frees it. */
int calc_greet_impl(void *ctx, const char *name, char **result)
{
    (void)ctx;
    size_t n = strlen("hello, ") + strlen(name) + 1;
    if ((*result = malloc(n)) == NULL)
        return 2;
    snprintf(*result, n, "hello, %s", name);
    return 0;
}

static void on_signal(int sig)
{
    (void)sig;
    rpc_stop(server); /* safe in a signal handler */
}

int main(int argc, char *argv[])
{
    int port = argc > 1 ? atoi(argv[1]) : 10002;
    int rc = rpc_server_open(port, NULL, &server);
    if (rc == 0)
        rc = calc_register(server, NULL, 0);
    if (rc < 0) {
        fprintf(stderr, "calc_server: %s\n", rpc_strerror(rc));
        rpc_server_close(server);
        return 1;
    }
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    printf("listening on port %d\n", rpc_server_port(server));
    fflush(stdout);
    rpc_serve(server, 0);
    rpc_server_close(server);
    return 0;
}
