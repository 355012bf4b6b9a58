/*
 * counter_client.c - calls incrementBy(1) many times and compares the
 * server's counter with the number of calls that succeeded.
 *
 * Usage: counter_client host port calls [amo|alo] [retry_ms]
 *   amo  at-most-once (procedure 1, the default)
 *   alo  at-least-once (procedure 2, registered idempotent)
 *   retry_ms  send each request again this often until its reply arrives,
 *             as a classic RPC client over UDP does (default 20)
 *
 * Run it over a bad network to see the difference:
 *   UDP_FAULTS=drop=0.2,dup=0.1,reorder=0.1 counter_client 127.0.0.1 PORT 1000 alo
 * With amo the counter equals the successful calls (plus at most the ones
 * that timed out); with alo every retransmitted request that reached the
 * server ran again, and the counter runs ahead.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rpc.h"

int main(int argc, char *argv[])
{
    if (argc < 4) {
        fprintf(stderr, "usage: counter_client host port calls [amo|alo] "
                        "[retry_ms]\n");
        return 2;
    }
    int calls = atoi(argv[3]);
    int alo = argc > 4 && strcmp(argv[4], "alo") == 0;
    struct rpc_config cfg;
    rpc_config_default(&cfg);
    cfg.retry_ms = argc > 5 ? (uint32_t)atoi(argv[5]) : 20;
    struct rpc_client *c;
    int rc = rpc_client_open(argv[1], atoi(argv[2]), &cfg, &c);
    if (rc < 0) {
        fprintf(stderr, "counter_client: %s\n", rpc_strerror(rc));
        return 1;
    }
    int ok = 0, timed_out = 0, other = 0;
    uint8_t one[4] = {0, 0, 0, 1}; /* int32 1, big-endian */
    for (int i = 0; i < calls; i++) {
        rc = rpc_call(c, alo ? 2 : 1, one, sizeof(one), NULL, NULL, 5000);
        if (rc == 0)
            ok++;
        else if (rc == -ETIMEDOUT)
            timed_out++;
        else
            other++;
    }
    void *reply;
    size_t len;
    rc = rpc_call(c, 3, NULL, 0, &reply, &len, 5000);
    if (rc != 0) {
        fprintf(stderr, "counter_client: get: %s\n", rpc_strerror(rc));
        rpc_client_close(c);
        return 1;
    }
    struct rpc_dec d;
    int64_t amo_value, alo_value;
    uint64_t amo_runs, alo_runs;
    rpc_dec_init(&d, reply, len);
    rpc_get_i64(&d, &amo_value);
    rpc_get_i64(&d, &alo_value);
    rpc_get_u64(&d, &amo_runs);
    rpc_get_u64(&d, &alo_runs);
    free(reply);
    int64_t counter = alo ? alo_value : amo_value;
    printf("%s: %d calls succeeded, %d timed out, %d failed otherwise; "
           "counter = %lld (%lld more than the successful calls)\n",
           alo ? "at-least-once" : "at-most-once", ok, timed_out, other,
           (long long)counter, (long long)(counter - ok));
    struct rmsg_stats st;
    rpc_client_stats(c, &st);
    printf("datagrams sent %llu, retransmitted %llu, per call %.2f\n",
           (unsigned long long)st.datagrams_sent,
           (unsigned long long)st.retransmissions,
           calls ? (double)st.datagrams_sent / (calls + 1) : 0.0);
    rpc_client_close(c);
    return other ? 1 : 0;
}
