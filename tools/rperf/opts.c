/*
 * opts.c - rperf's command line: the help text, parsing every option with
 * a clear complaint (exit status 2) for what makes no sense, and the
 * defaults that depend on the test.
 */
#include "rperf.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

const char *const transport_names[T_COUNT] = {"udp", "rmsg", "rmsg-async",
                                              "tcp", "rpc"};

/* The help text, laid out as it prints. */
/* clang-format off */
static void usage(FILE *f)
{
    fprintf(f,
"usage: rperf -s [-p PORT] [--once]\n"
"       rperf -c HOST [-p PORT] [-T TRANSPORT] [--bw | --lat] [options]\n"
"\n"
"Measures rmsg (reliable messages over UDP) and rpc next to raw UDP and TCP\n"
"on the same path: one-way bulk goodput, or round-trip latency percentiles.\n"
"Data is verified end to end; a run that loses, duplicates, reorders or\n"
"corrupts a message of a reliable transport, or runs a call twice, fails.\n"
"\n"
"Server:\n"
"  -s, --server           serve tests, one client at a time, until killed;\n"
"                         prints \"rperf: listening on port N\" when ready\n"
"  -p, --port PORT        TCP and UDP port number (default %d; 0: any free)\n"
"      --once             exit after serving one client\n"
"\n"
"Client:\n"
"  -c, --client HOST      server name, IPv4 or IPv6 address\n"
"  -p, --port PORT        server port (default %d)\n"
"  -T, --transport NAME   udp         raw UDP, one sendto per datagram\n"
"                         rmsg        rmsg_send per message (waits for its\n"
"                                     acknowledgment: stop and wait)\n"
"                         rmsg-async  rmsg_send_async pipelined, rmsg_flush\n"
"                                     at the end (the default)\n"
"                         tcp         a plain TCP stream\n"
"                         rpc         rpc_call: --lat null calls (or -l SIZE\n"
"                                     echoed), --bw calls carrying SIZE\n"
"      --bw               one-way bulk transfer (default)\n"
"      --lat              ping-pong: round-trip percentiles from a histogram\n"
"  -l, --size SIZE        message size (bw: 1M, lat: 64, rpc lat: 0; 1 byte\n"
"                         to 1G; 0 only for rpc round trips)\n"
"  -n, --bytes TOTAL      bw: bytes to send (default 256M)\n"
"  -N, --count COUNT      lat: round trips (default 10000)\n"
"  -t, --time SECONDS     run this long (with -n/-N: whichever ends first);\n"
"                         with neither, a run stops after %.0f s at most\n"
"  -D, --datagram BYTES   UDP datagram size for udp and rmsg (default %d,\n"
"                         %d..%d; 65000 suits loopback); the client sends it\n"
"                         to the server with each test\n"
"  -P, --parallel N       rpc: N clients, a thread and an rpc_client each,\n"
"                         sharing the count or total (default 1, up to %d)\n"
"  -r, --repeats N        run N times; report medians and [min .. max]\n"
"      --batch            udp: send with UDP_SendMany (sendmmsg)\n"
"      --no-baseline      skip the raw UDP run on the same path that\n"
"                         otherwise comes first, for the ratio\n"
"      --json             one flat JSON object with every figure on stdout\n"
"  -q, --quiet            no progress line; one summary line\n"
"  -h, --help             this text\n"
"SIZE and TOTAL are bytes, with K, M or G for KiB, MiB, GiB.\n"
"\n"
"Examples:\n"
"  rperf -s &                                 server on port %d\n"
"  rperf -c 127.0.0.1                         256 MiB of rmsg-async vs UDP\n"
"  rperf -c ::1 -T rmsg --lat -N 100000       64-byte round trips\n"
"  rperf -c host -T tcp -l 64M -n 1G          TCP bulk baseline\n"
"  rperf -c host -T rpc --lat -N 50000        null calls vs raw UDP\n"
"  rperf -c host -T rpc --lat -P 8 -t 5       calls per second, 8 clients\n"
"  rperf -c host -T rpc -l 64K -n 256M -P 4   rpc bulk: 64 KiB per call\n"
"  rperf -c host -T udp --batch -D 65000 -t 5 raw UDP with sendmmsg\n"
"  UDP_FAULTS=drop=0.05 rperf -c host -T rmsg-async -D 65000 --json\n"
"\n"
"Exit status: 0 success, 1 failure (no server, data not intact), 2 usage.\n",
            PORT_DEFAULT, PORT_DEFAULT, TIME_CAP_S, RMSG_DATAGRAM_DEFAULT,
            DGRAM_MIN, DGRAM_MAX, CLIENTS_MAX, PORT_DEFAULT);
}
/* clang-format on */

static void bad_usage(const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "rperf: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n(rperf --help for usage)\n");
    exit(2);
}

/* Parses digits with an optional K, M or G (binary) suffix. */
static int parse_size(const char *s, uint64_t *out)
{
    char *end;
    if (*s < '0' || *s > '9')
        return -1;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno != 0)
        return -1;
    int shift = 0;
    switch (*end) {
    case 'k':
    case 'K':
        shift = 10;
        end++;
        break;
    case 'm':
    case 'M':
        shift = 20;
        end++;
        break;
    case 'g':
    case 'G':
        shift = 30;
        end++;
        break;
    default:
        break;
    }
    if (*end != '\0' || v > (UINT64_MAX >> shift))
        return -1;
    *out = (uint64_t)v << shift;
    return 0;
}

static uint64_t arg_size(const char *opt, const char *s, uint64_t lo,
                         uint64_t hi)
{
    uint64_t v;
    if (parse_size(s, &v) != 0 || v < lo || v > hi)
        bad_usage("%s: '%s' is not a size from %" PRIu64 " to %" PRIu64
                  " bytes (suffixes K, M, G)",
                  opt, s, lo, hi);
    return v;
}

static long arg_int(const char *opt, const char *s, long lo, long hi)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (*s == '\0' || *end != '\0' || errno != 0 || v < lo || v > hi)
        bad_usage("%s: '%s' is not a whole number from %ld to %ld", opt, s, lo,
                  hi);
    return v;
}

static double arg_seconds(const char *opt, const char *s)
{
    char *end;
    double v = strtod(s, &end);
    if (*s == '\0' || *end != '\0' || !(v > 0) || v > 86400)
        bad_usage("%s: '%s' is not a number of seconds (0 < t <= 86400)", opt,
                  s);
    return v;
}

static enum transport_id arg_transport(const char *s)
{
    for (int i = 0; i < T_COUNT; i++)
        if (strcmp(s, transport_names[i]) == 0)
            return (enum transport_id)i;
    bad_usage("unknown transport '%s': choose udp, rmsg, rmsg-async, tcp or"
              " rpc",
              s);
    return T_UDP;
}

enum opt_id {
    O_SERVER,
    O_CLIENT,
    O_PORT,
    O_ONCE,
    O_TRANSPORT,
    O_BW,
    O_LAT,
    O_SIZE,
    O_TOTAL,
    O_COUNT,
    O_TIME,
    O_DGRAM,
    O_REPEATS,
    O_PARALLEL,
    O_BATCH,
    O_NOBASE,
    O_JSON,
    O_QUIET,
    O_HELP
};

static const struct optdef {
    char letter;
    const char *name;
    int takes_value;
    int client_only;
    enum opt_id id;
} optdefs[] = {
    {'s', "server", 0, 0, O_SERVER},
    {'c', "client", 1, 1, O_CLIENT},
    {'p', "port", 1, 0, O_PORT},
    {0, "once", 0, 0, O_ONCE},
    {'T', "transport", 1, 1, O_TRANSPORT},
    {0, "bw", 0, 1, O_BW},
    {0, "lat", 0, 1, O_LAT},
    {'l', "size", 1, 1, O_SIZE},
    {'n', "bytes", 1, 1, O_TOTAL},
    {'N', "count", 1, 1, O_COUNT},
    {'t', "time", 1, 1, O_TIME},
    {'D', "datagram", 1, 1, O_DGRAM},
    {'r', "repeats", 1, 1, O_REPEATS},
    {'P', "parallel", 1, 1, O_PARALLEL},
    {0, "batch", 0, 1, O_BATCH},
    {0, "no-baseline", 0, 1, O_NOBASE},
    {0, "json", 0, 1, O_JSON},
    {'q', "quiet", 0, 0, O_QUIET},
    {'h', "help", 0, 0, O_HELP},
};

/* Finds the option an argument names: "-x", "--name" or "--name=value"
 * (then *inline_value points at the value). */
static const struct optdef *find_opt(const char *arg, const char **inline_value)
{
    *inline_value = NULL;
    for (size_t i = 0; i < sizeof(optdefs) / sizeof(optdefs[0]); i++) {
        const struct optdef *d = &optdefs[i];
        if (arg[1] != '-') {
            if (d->letter && arg[1] == d->letter && arg[2] == '\0')
                return d;
            continue;
        }
        size_t n = strlen(d->name);
        if (strncmp(arg + 2, d->name, n) != 0)
            continue;
        if (arg[2 + n] == '\0')
            return d;
        if (arg[2 + n] == '=' && d->takes_value) {
            *inline_value = arg + 3 + n;
            return d;
        }
    }
    return NULL;
}

static void apply_opt(struct opts *o, enum opt_id id, const char *opt,
                      const char *v)
{
    switch (id) {
    case O_SERVER:
        o->server = 1;
        break;
    case O_CLIENT:
        o->host = v;
        break;
    case O_PORT:
        o->port = (int)arg_int(opt, v, 0, 65535);
        break;
    case O_ONCE:
        o->once = 1;
        break;
    case O_TRANSPORT:
        o->tr = arg_transport(v);
        break;
    case O_BW:
        o->mode = M_BW;
        break;
    case O_LAT:
        o->mode = M_LAT;
        break;
    case O_SIZE:
        o->size = arg_size(opt, v, 0, SIZE_MAX_BYTES);
        o->size_set = 1;
        break;
    case O_TOTAL:
        o->total = arg_size(opt, v, 1, UINT64_MAX >> 2);
        o->total_set = 1;
        break;
    case O_COUNT:
        o->count = (uint64_t)arg_int(opt, v, 1, 1000000000L);
        o->count_set = 1;
        break;
    case O_TIME:
        o->seconds = arg_seconds(opt, v);
        o->seconds_set = 1;
        break;
    case O_DGRAM:
        o->datagram = (uint32_t)arg_int(opt, v, DGRAM_MIN, DGRAM_MAX);
        break;
    case O_PARALLEL:
        o->clients = (int)arg_int(opt, v, 1, CLIENTS_MAX);
        break;
    case O_REPEATS:
        o->repeats = (int)arg_int(opt, v, 1, REPEATS_MAX);
        break;
    case O_BATCH:
        o->batch = 1;
        break;
    case O_NOBASE:
        o->baseline = 0;
        break;
    case O_JSON:
        o->json = 1;
        break;
    case O_QUIET:
        o->quiet = 1;
        break;
    case O_HELP:
        usage(stdout);
        exit(0);
    }
}

/* Checks that the options make one coherent request. */
static void check_opts(struct opts *o)
{
    if (o->server && o->host)
        bad_usage("-s and -c exclude each other");
    if (!o->server && !o->host)
        bad_usage("say -s (server) or -c HOST (client)");
    if (o->server) {
        if (o->client_only)
            bad_usage("%s is a client option", o->client_only);
        return;
    }
    if (o->once)
        bad_usage("--once is a server option");
    if (o->port == 0)
        bad_usage("-p: the client needs the server's port (1..65535)");
    if (o->size == 0 && !(o->tr == T_RPC && o->mode == M_LAT))
        bad_usage("-l 0: only an rpc round trip may be empty (-T rpc --lat,"
                  " the null call); other messages have 1 byte or more");
    if (o->clients > 1 && o->tr != T_RPC)
        bad_usage("-P applies to -T rpc (parallel clients)");
    if (o->mode == M_LAT && o->total_set)
        bad_usage("-n counts bytes of a --bw test; --lat counts round trips"
                  " with -N");
    if (o->mode == M_BW && o->count_set)
        bad_usage("-N counts round trips of a --lat test; --bw takes -n");
    if (o->batch && o->tr != T_UDP)
        bad_usage("--batch applies to -T udp (rmsg always batches)");
}

void parse_args(int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    o->port = PORT_DEFAULT;
    o->tr = T_RMSG_ASYNC;
    o->mode = M_BW;
    o->datagram = RMSG_DATAGRAM_DEFAULT;
    o->repeats = 1;
    o->baseline = 1;
    o->clients = 1;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v;
        const struct optdef *d = arg[0] == '-' ? find_opt(arg, &v) : NULL;
        if (d == NULL)
            bad_usage("unknown argument '%s'", arg);
        if (d->takes_value && v == NULL) {
            if (i + 1 >= argc)
                bad_usage("%s needs a value", arg);
            v = argv[++i];
        }
        if (d->client_only && o->client_only == NULL)
            o->client_only = arg;
        apply_opt(o, d->id, arg, v);
    }
    if (!o->size_set)
        o->size = o->mode == M_BW  ? BW_SIZE_DEFAULT
                  : o->tr == T_RPC ? RPC_LAT_SIZE_DEFAULT
                                   : LAT_SIZE_DEFAULT;
    check_opts(o);
}
