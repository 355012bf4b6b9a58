/*
 * rperf.c - bandwidth and latency of rmsg, next to raw UDP and TCP.
 *
 * One program with two roles, in the spirit of iperf and sockperf:
 *
 *   rperf -s [-p PORT] [--once]        serves tests, one client at a time
 *   rperf -c HOST [options]            runs tests against a server
 *
 * The server listens on one port number for both protocols: TCP for the
 * control channel (and the data connection of the tcp transport), UDP for
 * raw datagrams or for an rmsg endpoint opened for the duration of a test
 * (between tests a plain UDP socket keeps the port).
 *
 * Control channel
 *   Text lines over TCP.  The server greets, then answers one request at a
 *   time; the client closes the connection when it is done:
 *
 *     S: RPERF/1 ready                       ("RPERF/1 busy": try later)
 *     C: test transport=rmsg mode=bw size=1048576 total=268435456
 *             datagram=1400 batch=0 seed=8349...
 *     S: ok token=5f0c...                    (or "error why=TEXT")
 *        ... the test runs on its own socket ...
 *     C: done msgs=256 bytes=268435456 sum=1234...
 *     S: result msgs=256 bytes=... sum=... bad=0 cpu_us=... why=TEXT
 *
 *   Every request carries the client's -D, so the server needs no -D of its
 *   own.  The tcp transport opens a second TCP connection to the same port
 *   and first sends the token, so the server knows it is the test's.
 *
 * Verification
 *   Every message (for raw UDP: every datagram) is a pattern of 64-bit
 *   little-endian words: word j holds base + j * step, and every 64th word
 *   is XORed with a stamp of the message's index (40 bits of index and a
 *   24-bit check).  base, step and the stamp key derive from a seed chosen
 *   per test, so a datagram left over from an earlier test never passes.
 *   The sender writes the template once and per message rewrites only the
 *   stamps (one store per 512 bytes); the receiver compares every word as
 *   it reads it, which costs about what reading the data costs.  Both ends
 *   also fold the first word and the length of every message into a
 *   checksum that is compared at the end.  Messages shorter than 8 bytes
 *   carry the low bytes of their stamp.
 *
 * What is measured
 *   bw: on the client, from the first send to the last acknowledgment
 *   (rmsg) or to the server closing its end of the stream (tcp); for raw
 *   UDP, whose loss is a figure and not a fault, the server's time from
 *   the first datagram to the last.  lat: every round trip on the client,
 *   from just before the send to the echo's arrival; checking the echo
 *   happens outside that window.  Unless --no-baseline, raw UDP runs first
 *   on the same path with the same sizes; the ratio is goodput over raw
 *   UDP's delivered rate (bw) or p50 over raw UDP's p50 (lat).  rmsg-async
 *   bounds the messages it has in flight by count too (see async_room).
 *   --json prints one flat object, one key per line, the baseline's
 *   figures prefixed "baseline_", so that scripts can pick them with sed.
 *
 * Time is CLOCK_MONOTONIC, CPU time getrusage, latency a log-linear
 * histogram (HdrHistogram's layout, 128 sub-buckets per power of two: less
 * than 0.8% error, fixed memory).  The raw UDP paths allocate nothing per
 * datagram.
 *
 * Exit status: 0 success, 1 failure (no server, data not intact, transport
 * error), 2 bad arguments.
 */
#define _GNU_SOURCE /* getrusage, getaddrinfo and friends with -std=c11 */
#include "rmsg.h"
#include "udp.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

/* ------------------------------------------------------------------------ */
/* Constants                                                                 */
/* ------------------------------------------------------------------------ */

#define PORT_DEFAULT      5201
#define DGRAM_MIN         96           /* rmsg's smallest datagram_max */
#define DGRAM_MAX         65507        /* largest IPv4 UDP payload */
#define SIZE_MAX_BYTES    (1ull << 30) /* rmsg's default msg_max: 1 GiB */
#define BW_SIZE_DEFAULT   (1ull << 20)
#define BW_TOTAL_DEFAULT  (256ull << 20)
#define LAT_SIZE_DEFAULT  64
#define LAT_COUNT_DEFAULT 10000
#define TIME_CAP_S        10.0 /* a run without -n/-N or -t stops here */
#define BASELINE_CAP_S    3.0  /* the raw UDP baseline never runs longer */
#define REPEATS_MAX       1000

#define CONNECT_MS      3000       /* reaching the server, control or data */
#define REPLY_MS        5000       /* the server's answer to a request */
#define RESULT_MS       30000      /* the server's result after "done" */
#define SESSION_IDLE_MS 120000     /* a silent client is dropped after this */
#define CHECK_NS        10000000   /* server: look at the control channel */
#define NO_REPLY_NS     2000000000 /* raw ping-pong gives up after this */
#define DRAIN_NS        50000000   /* raw bulk: quiet time that ends a test */

#define BATCH      64    /* datagrams per UDP_SendMany/RecvMany */
#define RX_BYTES   65536 /* room for any datagram */
#define LINE_BYTES 1024  /* one control line */
#define TOKEN_LEN  16

#define NS_PER_S 1000000000.0

enum mode { M_BW, M_LAT };
enum transport_id { T_UDP, T_RMSG, T_RMSG_ASYNC, T_TCP, T_RPC, T_COUNT };

/* ------------------------------------------------------------------------ */
/* Time, CPU, memory, messages                                               */
/* ------------------------------------------------------------------------ */

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Milliseconds from now until deadline (ns), rounded up; 0 once past. */
static int ms_left(int64_t deadline)
{
    int64_t left = deadline - now_ns();
    if (left <= 0)
        return 0;
    left = (left + 999999) / 1000000;
    return left > 1000000000 ? 1000000000 : (int)left;
}

/* User plus system CPU seconds this process has used. */
static double cpu_seconds(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return NAN;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

/* malloc that ends the program when memory runs out: a measurement tool
 * has nothing better to do then. */
static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (p == NULL) {
        fprintf(stderr, "rperf: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    return p;
}

/* 64 random bits: /dev/urandom, or the clock and pid without it. */
static uint64_t random64(void)
{
    uint64_t v = (uint64_t)now_ns() ^ ((uint64_t)getpid() << 40);
    FILE *f = fopen("/dev/urandom", "rb");
    if (f) {
        uint64_t r;
        if (fread(&r, sizeof(r), 1, f) == 1)
            v = r;
        fclose(f);
    }
    return v;
}

/* Writes the first problem of a test into why (cap bytes); later problems
 * keep the first one's text. */
static void set_why(char *why, size_t cap, const char *fmt, ...)
{
    if (why[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, cap, fmt, ap);
    va_end(ap);
    for (char *p = why; *p; p++)
        if (*p == '\n' || *p == '\r')
            *p = ' ';
}

/* ------------------------------------------------------------------------ */
/* The data pattern (see "Verification" at the top)                          */
/* ------------------------------------------------------------------------ */

#define STAMP_EVERY      64 /* words: one stamp per 512 bytes */
#define STAMP_CHECK_BITS 24

struct pattern {
    uint64_t base, step, key;
};

/* splitmix64's finaliser: a cheap, well-mixing bijection. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= 0xbf58476d1ce4e5b9ull;
    x ^= x >> 27;
    x *= 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static void pattern_init(struct pattern *p, uint64_t seed)
{
    p->base = mix64(seed + 0x9e3779b97f4a7c15ull);
    p->step = mix64(seed + 0x3c6ef372fe94f82aull) | 1;
    p->key = mix64(seed + 0xdaa66d2c7ddf743full);
}

/* The wire is little-endian whatever the host is. */
static uint64_t le64(uint64_t v)
{
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return __builtin_bswap64(v);
#else
    return v;
#endif
}

static uint64_t load64(const uint8_t *b)
{
    uint64_t v;
    memcpy(&v, b, 8);
    return le64(v);
}

/* The first n (<= 8) bytes at b as the low bytes of a little-endian word. */
static uint64_t load_part(const uint8_t *b, size_t n)
{
    if (n >= 8)
        return load64(b);
    uint64_t v = 0;
    for (size_t k = 0; k < n; k++)
        v |= (uint64_t)b[k] << (8 * k);
    return v;
}

static void store_part(uint8_t *b, uint64_t v, size_t n)
{
    if (n >= 8) {
        v = le64(v);
        memcpy(b, &v, 8);
        return;
    }
    for (size_t k = 0; k < n; k++)
        b[k] = (uint8_t)(v >> (8 * k));
}

/* The stamp of message idx: the index above a 24-bit check of it. */
static uint64_t stamp_of(const struct pattern *p, uint64_t idx)
{
    uint64_t check = mix64(idx ^ p->key) >> (64 - STAMP_CHECK_BITS);
    return ((idx << STAMP_CHECK_BITS) | check) ^ p->key;
}

/* The index a stamp carries, or -1 when it is no stamp of this test. */
static int64_t stamp_index(const struct pattern *p, uint64_t stamp)
{
    uint64_t idx = (stamp ^ p->key) >> STAMP_CHECK_BITS;
    return stamp_of(p, idx) == stamp ? (int64_t)idx : -1;
}

/* The index stamped into a message of at least 8 bytes, or -1. */
static int64_t message_index(const struct pattern *p, const uint8_t *m)
{
    return stamp_index(p, load64(m) ^ p->base);
}

/* Writes the unstamped template of a len-byte message. */
static void pattern_fill(const struct pattern *p, uint8_t *buf, size_t len)
{
    uint64_t v = p->base;
    for (size_t off = 0; off < len; off += 8, v += p->step)
        store_part(buf + off, v, len - off);
}

/* Turns a template (or a message stamped before) into message idx. */
static void pattern_stamp(const struct pattern *p, uint8_t *buf, size_t len,
                          uint64_t idx)
{
    uint64_t s = stamp_of(p, idx);
    uint64_t v = p->base, stride = p->step * STAMP_EVERY;
    for (size_t off = 0; off < len; off += 8 * STAMP_EVERY, v += stride)
        store_part(buf + off, v ^ s, len - off);
}

/* The slow path: the offset of the first wrong byte from word j on. */
static size_t first_wrong(const struct pattern *p, const uint8_t *buf,
                          size_t len, uint64_t s, size_t j)
{
    for (; j * 8 < len; j++) {
        uint64_t want = p->base + j * p->step;
        if (j % STAMP_EVERY == 0)
            want ^= s;
        size_t n = len - j * 8 < 8 ? len - j * 8 : 8;
        for (size_t k = 0; k < n; k++)
            if (buf[j * 8 + k] != (uint8_t)(want >> (8 * k)))
                return j * 8 + k;
    }
    return len;
}

/* Compares a received message with what message idx must hold.  Returns
 * the offset of the first wrong byte, or len when every byte is right.
 * The inner loop is branch-free so that the compiler can vectorise it. */
static size_t pattern_check(const struct pattern *p, const uint8_t *buf,
                            size_t len, uint64_t idx)
{
    uint64_t s = stamp_of(p, idx);
    size_t nw = len / 8;
    uint64_t v = p->base;
    for (size_t j0 = 0; j0 < nw; j0 += STAMP_EVERY) {
        size_t end = j0 + STAMP_EVERY < nw ? j0 + STAMP_EVERY : nw;
        uint64_t diff = load64(buf + 8 * j0) ^ v ^ s;
        uint64_t w = v;
        for (size_t j = j0 + 1; j < end; j++) {
            w += p->step;
            diff |= load64(buf + 8 * j) ^ w;
        }
        if (diff != 0)
            return first_wrong(p, buf, len, s, j0);
        v += p->step * STAMP_EVERY;
    }
    return first_wrong(p, buf, len, s, nw); /* the tail, if any */
}

/* Folds one message into a running checksum: its first word and length. */
static uint64_t sum_fold(uint64_t sum, const uint8_t *msg, size_t len)
{
    return mix64(sum + load_part(msg, len < 8 ? len : 8)) ^ (uint64_t)len;
}

/* Length of message i of a bulk test: size, except that the last message
 * of a byte total that size does not divide is shorter. */
static size_t msg_len(uint64_t size, uint64_t total, uint64_t i)
{
    if (total == 0)
        return (size_t)size;
    if (i >= total / size + 1 || i * size >= total)
        return 0;
    uint64_t left = total - i * size;
    return (size_t)(left < size ? left : size);
}

/* Raw UDP cuts each message of size bytes into datagrams of at most dgram
 * bytes; this is the length of the datagram with global index g. */
static size_t raw_len(uint64_t size, uint32_t dgram, uint64_t g)
{
    uint64_t nfrag = (size + dgram - 1) / dgram;
    uint64_t k = g % nfrag;
    return (size_t)(k + 1 < nfrag ? dgram : size - (nfrag - 1) * dgram);
}

/* ------------------------------------------------------------------------ */
/* Latency histogram: log-linear buckets, fixed memory                       */
/* ------------------------------------------------------------------------ */

/* Values below 2 * HIST_SUB nanoseconds get a bucket each; above, each
 * power of two is cut into HIST_SUB buckets, so a bucket is at most 1/128
 * of its values wide.  Values are capped at 2^40 ns (18 minutes). */
#define HIST_SUB_BITS 7
#define HIST_SUB      (1u << HIST_SUB_BITS)
#define HIST_TOP_BITS 40
#define HIST_BUCKETS  ((HIST_TOP_BITS - HIST_SUB_BITS + 1) * HIST_SUB)

struct hist {
    uint64_t n, min, max;
    double sum;
    uint64_t count[HIST_BUCKETS];
};

static int msb64(uint64_t v)
{
    int b = 0;
    while (v >>= 1)
        b++;
    return b;
}

static void hist_record(struct hist *h, int64_t ns)
{
    uint64_t v = ns < 0 ? 0 : (uint64_t)ns;
    if (v >= (1ull << HIST_TOP_BITS))
        v = (1ull << HIST_TOP_BITS) - 1;
    size_t idx = v;
    if (v >= 2 * HIST_SUB) {
        int shift = msb64(v) - HIST_SUB_BITS;
        idx = (size_t)shift * HIST_SUB + (size_t)(v >> shift);
    }
    h->count[idx]++;
    if (h->n == 0 || v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
    h->n++;
    h->sum += (double)v;
}

/* The middle of bucket idx, in nanoseconds. */
static double hist_value(size_t idx)
{
    if (idx < 2 * HIST_SUB)
        return (double)idx;
    int shift = (int)(idx / HIST_SUB) - 1;
    uint64_t lo = (uint64_t)(idx - (size_t)shift * HIST_SUB) << shift;
    return (double)lo + (double)((1ull << shift) - 1) / 2;
}

/* The q-quantile (0 < q <= 1) in nanoseconds, within the recorded range. */
static double hist_quantile(const struct hist *h, double q)
{
    if (h->n == 0)
        return NAN;
    uint64_t rank = (uint64_t)ceil(q * (double)h->n), seen = 0;
    if (rank < 1)
        rank = 1;
    for (size_t i = 0; i < HIST_BUCKETS; i++) {
        seen += h->count[i];
        if (seen >= rank) {
            double v = hist_value(i);
            v = v < (double)h->min ? (double)h->min : v;
            return v > (double)h->max ? (double)h->max : v;
        }
    }
    return (double)h->max;
}

/* ------------------------------------------------------------------------ */
/* Options                                                                   */
/* ------------------------------------------------------------------------ */

struct opts {
    int server, once, port;
    const char *host;
    enum transport_id tr;
    enum mode mode;
    uint64_t size, total, count;
    int size_set, total_set, count_set, seconds_set;
    double seconds;
    uint32_t datagram;
    int repeats, baseline, json, quiet, batch;
    const char *client_only; /* a client option seen, for -s's complaint */
};

static const char *const transport_names[T_COUNT] = {
    "udp", "rmsg", "rmsg-async", "tcp", "rpc"};

/* The help text, laid out as it prints. */
/* clang-format off */
static void usage(FILE *f)
{
    fprintf(f,
"usage: rperf -s [-p PORT] [--once]\n"
"       rperf -c HOST [-p PORT] [-T TRANSPORT] [--bw | --lat] [options]\n"
"\n"
"Measures rmsg (reliable messages over UDP) next to raw UDP and TCP on the\n"
"same path: one-way bulk goodput, or round-trip latency percentiles.  Data\n"
"is verified end to end; a run that loses, duplicates, reorders or corrupts\n"
"a message of a reliable transport fails.\n"
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
"                         (rpc is planned)\n"
"      --bw               one-way bulk transfer (default)\n"
"      --lat              ping-pong: round-trip percentiles from a histogram\n"
"  -l, --size SIZE        message size (bw: 1M, lat: 64; 1 byte to 1G)\n"
"  -n, --bytes TOTAL      bw: bytes to send (default 256M)\n"
"  -N, --count COUNT      lat: round trips (default 10000)\n"
"  -t, --time SECONDS     run this long (with -n/-N: whichever ends first);\n"
"                         with neither, a run stops after %.0f s at most\n"
"  -D, --datagram BYTES   UDP datagram size for udp and rmsg (default %d,\n"
"                         %d..%d; 65000 suits loopback); the client sends it\n"
"                         to the server with each test\n"
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
"  rperf -c host -T udp --batch -D 65000 -t 5 raw UDP with sendmmsg\n"
"  UDP_FAULTS=drop=0.05 rperf -c host -T rmsg-async -D 65000 --json\n"
"\n"
"Exit status: 0 success, 1 failure (no server, data not intact), 2 usage.\n",
            PORT_DEFAULT, PORT_DEFAULT, TIME_CAP_S, RMSG_DATAGRAM_DEFAULT,
            DGRAM_MIN, DGRAM_MAX, PORT_DEFAULT);
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
    bad_usage("unknown transport '%s': choose udp, rmsg, rmsg-async or tcp", s);
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
        o->size = arg_size(opt, v, 1, SIZE_MAX_BYTES);
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
    if (o->tr == T_RPC)
        bad_usage("transport 'rpc' is planned but not built yet: choose udp,"
                  " rmsg, rmsg-async or tcp");
    if (o->mode == M_LAT && o->total_set)
        bad_usage("-n counts bytes of a --bw test; --lat counts round trips"
                  " with -N");
    if (o->mode == M_BW && o->count_set)
        bad_usage("-N counts round trips of a --lat test; --bw takes -n");
    if (o->batch && o->tr != T_UDP)
        bad_usage("--batch applies to -T udp (rmsg always batches)");
}

static void parse_args(int argc, char **argv, struct opts *o)
{
    memset(o, 0, sizeof(*o));
    o->port = PORT_DEFAULT;
    o->tr = T_RMSG_ASYNC;
    o->mode = M_BW;
    o->datagram = RMSG_DATAGRAM_DEFAULT;
    o->repeats = 1;
    o->baseline = 1;
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
        o->size = o->mode == M_BW ? BW_SIZE_DEFAULT : LAT_SIZE_DEFAULT;
    check_opts(o);
}

/* ------------------------------------------------------------------------ */
/* Formatting figures                                                        */
/* ------------------------------------------------------------------------ */

/* A short text returned by value, so that several can appear in one printf
 * (a temporary lives until the end of the full expression, C11 6.2.4). */
struct text {
    char s[48];
};

static struct text fmt_bytes(double b)
{
    static const char *const unit[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    struct text t;
    int u = 0;
    while (b >= 1024 && u < 4) {
        b /= 1024;
        u++;
    }
    if (u == 0)
        snprintf(t.s, sizeof(t.s), "%.0f B", b);
    else
        snprintf(t.s, sizeof(t.s), "%.*f %s", b < 10 ? 2 : 1, b, unit[u]);
    return t;
}

/* Bytes per second as "176.6 MB/s (1.41 Gbit/s)": decimal units. */
static struct text fmt_rate(double bps)
{
    static const char *const unit[] = {"B/s", "KB/s", "MB/s", "GB/s"};
    struct text t;
    double v = bps, bits = bps * 8;
    int u = 0;
    while (v >= 1000 && u < 3) {
        v /= 1000;
        u++;
    }
    if (!isfinite(bps))
        snprintf(t.s, sizeof(t.s), "-");
    else if (bits >= 1e9)
        snprintf(t.s, sizeof(t.s), "%.1f %s (%.2f Gbit/s)", v, unit[u],
                 bits / 1e9);
    else
        snprintf(t.s, sizeof(t.s), "%.1f %s (%.1f Mbit/s)", v, unit[u],
                 bits / 1e6);
    return t;
}

/* Microseconds as "41.2 µs", "1.23 ms" or "2.50 s". */
static struct text fmt_us(double us)
{
    struct text t;
    if (!isfinite(us))
        snprintf(t.s, sizeof(t.s), "-");
    else if (us < 1000)
        snprintf(t.s, sizeof(t.s), "%.*f µs", us < 100 ? 1 : 0, us);
    else if (us < 1e6)
        snprintf(t.s, sizeof(t.s), "%.2f ms", us / 1e3);
    else
        snprintf(t.s, sizeof(t.s), "%.2f s", us / 1e6);
    return t;
}

/* A count per second as "22.2 k/s". */
static struct text fmt_per_s(double n)
{
    struct text t;
    if (!isfinite(n))
        snprintf(t.s, sizeof(t.s), "-");
    else if (n >= 1e6)
        snprintf(t.s, sizeof(t.s), "%.2f M/s", n / 1e6);
    else if (n >= 1e3)
        snprintf(t.s, sizeof(t.s), "%.1f k/s", n / 1e3);
    else
        snprintf(t.s, sizeof(t.s), "%.1f /s", n);
    return t;
}

/* ------------------------------------------------------------------------ */
/* The live progress line (stderr, only when it is a terminal)               */
/* ------------------------------------------------------------------------ */

struct progress {
    int on, shown;
    int64_t start, next;
    double limit_s; /* 0: none */
    uint64_t limit; /* bytes (bw) or round trips (lat); 0: none */
    const char *label;
};

static void progress_start(struct progress *p, int on, const char *label,
                           double limit_s, uint64_t limit)
{
    p->on = on;
    p->shown = 0;
    p->start = now_ns();
    p->next = p->start + 1000000000;
    p->label = label;
    p->limit_s = limit_s;
    p->limit = limit;
}

/* Once a second: what is done so far, the rate, what is left. */
static void progress_tick(struct progress *p, int64_t now, uint64_t done,
                          int bytes, struct rmsg_endpoint *ep)
{
    if (!p->on || now < p->next)
        return;
    p->next = now + 1000000000;
    double el = (double)(now - p->start) / NS_PER_S;
    char left[48] = "";
    if (p->limit_s > 0)
        snprintf(left, sizeof(left), " of %.0f s", p->limit_s);
    if (p->limit > 0)
        snprintf(left + strlen(left), sizeof(left) - strlen(left), ", %.0f%%",
                 100.0 * (double)done / (double)p->limit);
    char retx[40] = "";
    struct rmsg_stats st;
    if (ep && rmsg_stats(ep, NULL, &st) == 0)
        snprintf(retx, sizeof(retx), ", %" PRIu64 " retransmitted",
                 st.retransmissions);
    if (bytes)
        fprintf(stderr, "\r%s: %.0f s%s: %s, %s%s\033[K", p->label, el, left,
                fmt_bytes((double)done).s, fmt_rate((double)done / el).s, retx);
    else
        fprintf(stderr, "\r%s: %.0f s%s: %" PRIu64 " round trips, %s%s\033[K",
                p->label, el, left, done, fmt_per_s((double)done / el).s, retx);
    p->shown = 1;
}

static void progress_end(struct progress *p)
{
    if (p->shown)
        fprintf(stderr, "\r\033[K");
    p->shown = 0;
}

/* ------------------------------------------------------------------------ */
/* Sockets: TCP helpers and the control channel                              */
/* ------------------------------------------------------------------------ */

static int set_blocking(int fd, int blocking)
{
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0)
        return -1;
    fl = blocking ? fl & ~O_NONBLOCK : fl | O_NONBLOCK;
    return fcntl(fd, F_SETFL, fl);
}

/* Bounds every blocking read (and write) on fd, so that nothing hangs. */
static void set_timeouts(int fd, int ms)
{
    struct timeval tv = {.tv_sec = ms / 1000, .tv_usec = (ms % 1000) * 1000};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
}

static void set_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

static int write_all(int fd, const void *buf, size_t n)
{
    const uint8_t *p = buf;
    while (n > 0) {
        ssize_t r = write(fd, p, n);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                errno = ETIMEDOUT;
            return -1;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}

/* Reads exactly n bytes.  Returns 1, 0 at end of stream before the first
 * byte, or -1 with errno (EPROTO: the stream ended inside; ETIMEDOUT). */
static int read_all(int fd, void *buf, size_t n)
{
    uint8_t *p = buf;
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(fd, p + got, n - got);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                errno = ETIMEDOUT;
            return -1;
        }
        if (r == 0) {
            errno = EPROTO;
            return got == 0 ? 0 : -1;
        }
        got += (size_t)r;
    }
    return 1;
}

/* Connects to one address before the deadline.  Returns a blocking socket,
 * or -1 with errno (ETIMEDOUT, or the connect error). */
static int tcp_connect_addr(const struct sockaddr *sa, socklen_t len,
                            int64_t deadline)
{
    int fd = socket(sa->sa_family, SOCK_STREAM, 0), e;
    if (fd < 0)
        return -1;
    if (set_blocking(fd, 0) < 0)
        goto err;
    if (connect(fd, sa, len) < 0) {
        if (errno != EINPROGRESS)
            goto err;
        struct pollfd p = {.fd = fd, .events = POLLOUT};
        int r;
        while ((r = poll(&p, 1, ms_left(deadline))) < 0 && errno == EINTR)
            ;
        if (r == 0)
            errno = ETIMEDOUT;
        if (r <= 0)
            goto err;
        socklen_t el = sizeof(e);
        if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &el) < 0)
            goto err;
        if (e != 0) {
            errno = e;
            goto err;
        }
    }
    if (set_blocking(fd, 1) < 0)
        goto err;
    return fd;
err:
    e = errno;
    close(fd);
    errno = e;
    return -1;
}

/* Connects to host:port, trying every address the name has, all within
 * timeout_ms.  Returns the socket, or -1 with a reason in err. */
static int tcp_connect(const char *host, int port, int timeout_ms, char *err,
                       size_t cap)
{
    char service[8];
    snprintf(service, sizeof(service), "%d", port);
    struct addrinfo hints, *res = NULL;
    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(host, service, &hints, &res);
    if (rc != 0) {
        snprintf(err, cap, "cannot resolve %s: %s", host, gai_strerror(rc));
        return -1;
    }
    int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
    int fd = -1, e = ETIMEDOUT;
    for (struct addrinfo *ai = res; ai && fd < 0; ai = ai->ai_next) {
        if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
            continue;
        fd = tcp_connect_addr(ai->ai_addr, ai->ai_addrlen, deadline);
        if (fd < 0)
            e = errno;
        if (fd < 0 && now_ns() >= deadline)
            break;
    }
    freeaddrinfo(res);
    if (fd < 0)
        snprintf(err, cap, "cannot connect to %s port %d: %s%s", host, port,
                 strerror(e), e == ETIMEDOUT ? " (no answer in 3 s)" : "");
    return fd;
}

/* The control channel: whole lines over a TCP connection. */
struct ctl {
    int fd;
    size_t len;
    char buf[4 * LINE_BYTES];
};

static int ctl_send(struct ctl *c, const char *fmt, ...)
{
    char line[LINE_BYTES];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
    va_end(ap);
    if (n < 0)
        return -1;
    if ((size_t)n > sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';
    return write_all(c->fd, line, (size_t)n);
}

/* Moves the first complete line out of the buffer.  Returns 1, or 0 when
 * no line is complete yet. */
static int ctl_take(struct ctl *c, char *line, size_t cap)
{
    char *nl = memchr(c->buf, '\n', c->len);
    if (nl == NULL)
        return 0;
    size_t n = (size_t)(nl - c->buf), k = n < cap - 1 ? n : cap - 1;
    memcpy(line, c->buf, k);
    line[k] = '\0';
    if (k > 0 && line[k - 1] == '\r')
        line[k - 1] = '\0';
    memmove(c->buf, nl + 1, c->len - n - 1);
    c->len -= n + 1;
    return 1;
}

/* Waits up to timeout_ms (0: not at all) for the next line.  Returns 1
 * with the line, 0 at the end of the stream, or -1 with errno (ETIMEDOUT,
 * EPROTO for a line too long, or the read error). */
static int ctl_read(struct ctl *c, char *line, size_t cap, int timeout_ms)
{
    int64_t deadline = now_ns() + (int64_t)timeout_ms * 1000000;
    for (;;) {
        if (ctl_take(c, line, cap))
            return 1;
        if (c->len == sizeof(c->buf)) {
            errno = EPROTO;
            return -1;
        }
        struct pollfd p = {.fd = c->fd, .events = POLLIN};
        int r = poll(&p, 1, ms_left(deadline));
        if (r < 0 && errno == EINTR)
            continue;
        if (r == 0)
            errno = ETIMEDOUT;
        if (r <= 0)
            return -1;
        ssize_t n = read(c->fd, c->buf + c->len, sizeof(c->buf) - c->len);
        if (n == 0)
            return 0;
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return -1;
        c->len += (size_t)n;
    }
}

/* Finds the field "key=value" of a control line and copies the value into
 * out.  "why=" is always last and runs to the end of the line.  Returns 0,
 * or -1 when the field is absent or too long. */
static int kv_get(const char *line, const char *key, char *out, size_t cap)
{
    size_t kl = strlen(key);
    const char *p = line;
    while (*p) {
        while (*p == ' ')
            p++;
        int why = strncmp(p, "why=", 4) == 0;
        const char *end = why ? p + strlen(p) : strchr(p, ' ');
        if (end == NULL)
            end = p + strlen(p);
        if (strncmp(p, key, kl) == 0 && p[kl] == '=') {
            size_t n = (size_t)(end - p) - kl - 1;
            if (n >= cap)
                return -1;
            memcpy(out, p + kl + 1, n);
            out[n] = '\0';
            return 0;
        }
        p = end;
    }
    return -1;
}

static int kv_u64(const char *line, const char *key, uint64_t *out)
{
    char v[32], *end;
    if (kv_get(line, key, v, sizeof(v)) != 0 || v[0] < '0' || v[0] > '9')
        return -1;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = x;
    return 0;
}

/* Fills a udp_addr from a socket address and a port. */
static void udp_addr_of(struct udp_addr *out, const struct sockaddr_storage *ss,
                        socklen_t len, int port)
{
    memset(out, 0, sizeof(*out));
    memcpy(&out->ss, ss, len);
    out->len = len;
    if (ss->ss_family == AF_INET)
        ((struct sockaddr_in *)&out->ss)->sin_port = htons((uint16_t)port);
    else
        ((struct sockaddr_in6 *)&out->ss)->sin6_port = htons((uint16_t)port);
}

/* An rmsg configuration for messages of size bytes in datagrams of dgram:
 * room to reassemble one message while the previous one waits unread. */
static void rmsg_cfg_for(struct rmsg_config *cfg, uint64_t size, uint32_t dgram)
{
    rmsg_config_default(cfg);
    cfg->datagram_max = dgram;
    if (size > cfg->msg_max)
        cfg->msg_max = (uint32_t)size;
    size_t need = 2 * (size_t)size + cfg->recv_buffer;
    if (need > cfg->recv_total)
        cfg->recv_total = need;
}

/* How long one message may take to be acknowledged: 5 s, plus 10 MB/s. */
static int msg_timeout_ms(uint64_t size)
{
    return 5000 + (int)(size / 10000);
}

/* The same for a queued message, which may wait behind a full queue. */
/* Messages queued and not yet acknowledged: see async_room. */
#define ASYNC_MSGS_MAX         65536
#define ASYNC_TIMEOUT_MS(size) (msg_timeout_ms(size) + 10000)

/* Says what is wrong with message i of len bytes where want bytes were
 * expected: its length, another message in its place, or corrupt bytes.
 * Returns 0 when nothing is, else -1 with the first problem in why. */
static int check_message(const struct pattern *p, const uint8_t *m, size_t len,
                         size_t want, uint64_t i, const char *what, char *why,
                         size_t cap)
{
    if (len != want) {
        set_why(why, cap, "%s %" PRIu64 ": %zu bytes, expected %zu", what, i,
                len, want);
        return -1;
    }
    size_t off = pattern_check(p, m, len, i);
    if (off == len)
        return 0;
    int64_t other = len >= 8 && off < 8 ? message_index(p, m) : -1;
    if (other >= 0)
        set_why(why, cap,
                "%s %" PRIu64 ": got %s %" PRId64 " in its place "
                "(missing, duplicated or out of order)",
                what, i, what, other);
    else
        set_why(why, cap,
                "%s %" PRIu64 ": wrong content from byte %zu "
                "(corrupt, or another message)",
                what, i, off);
    return -1;
}

/* ======================================================================== */
/* Server                                                                   */
/* ======================================================================== */

struct server {
    int listen_fd;
    int udp_fd; /* keeps the UDP port between tests; -1 while rmsg has it */
    int port, quiet;
    uint8_t *rx; /* BATCH datagrams of RX_BYTES, for raw UDP */
    struct udp_msg msgs[BATCH];
};

/* One test being served. */
struct stest {
    struct server *srv;
    struct ctl *ctl;
    enum transport_id tr;
    enum mode mode;
    uint64_t size, total, seed;
    uint32_t datagram;
    int batch;
    struct pattern pat;
    char token[TOKEN_LEN + 1];
    struct rmsg_endpoint *ep;
    int data_fd;
    /* The client's "done", or its disappearance. */
    int done, aborted;
    int64_t done_at;
    uint64_t done_msgs;
    /* What arrived. */
    uint64_t msgs, bytes, sum, bad, dup, late, unchecked;
    int64_t first_ns, last_ns;
    uint8_t *seen; /* raw UDP: one bit per datagram index */
    uint64_t seen_bits, top;
    char why[200];
};

/* ------------------------------------------------------------------------ */
/* Server: ports and the control channel during a test                       */
/* ------------------------------------------------------------------------ */

/* A TCP listener on port (0: any free one): dual stack where the host has
 * IPv6, IPv4 otherwise.  Non-blocking, so that a vanished client never
 * blocks accept.  Returns it, or -1 with errno. */
static int tcp_listen(int port)
{
    int one = 1, off = 0, e;
    int fd = socket(AF_INET6, SOCK_STREAM, 0);
    if (fd >= 0) {
        struct sockaddr_in6 a;
        memset(&a, 0, sizeof(a));
        a.sin6_family = AF_INET6;
        a.sin6_port = htons((uint16_t)port);
        a.sin6_addr = in6addr_any;
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off));
        setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
        if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0)
            goto listen;
        e = errno;
        close(fd);
        if (e == EADDRINUSE || e == EACCES) {
            errno = e;
            return -1;
        }
    }
    struct sockaddr_in a4;
    memset(&a4, 0, sizeof(a4));
    a4.sin_family = AF_INET;
    a4.sin_port = htons((uint16_t)port);
    a4.sin_addr.s_addr = htonl(INADDR_ANY);
    if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0)
        return -1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, (struct sockaddr *)&a4, sizeof(a4)) != 0)
        goto err;
listen:
    if (listen(fd, 16) == 0 && set_blocking(fd, 0) == 0)
        return fd;
err:
    e = errno;
    close(fd);
    errno = e;
    return -1;
}

static int local_port(int fd)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
        return -1;
    if (ss.ss_family == AF_INET6)
        return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port);
}

/* Takes the UDP port with a plain socket (for raw tests, and so that no
 * other program takes it between tests). */
static int reserve_udp(struct server *s)
{
    s->udp_fd = UDP_OpenDual(s->port, AF_UNSPEC);
    if (s->udp_fd < 0)
        return -1;
    UDP_SetBuffers(s->udp_fd, 8 << 20, 4 << 20, NULL, NULL);
    return 0;
}

/* The TCP listener and the UDP socket on one port number.  With port 0,
 * tries ephemeral TCP ports until the same UDP port is free too. */
static int open_ports(struct server *s, int port)
{
    for (int tries = 0; tries < 64; tries++) {
        if ((s->listen_fd = tcp_listen(port)) < 0)
            return -1;
        s->port = local_port(s->listen_fd);
        if (s->port > 0 && reserve_udp(s) == 0)
            return 0;
        int e = errno;
        close(s->listen_fd);
        if (port != 0 || e != EADDRINUSE) {
            errno = e;
            return -1;
        }
    }
    errno = EADDRINUSE;
    return -1;
}

/* Answers a client that connects while another is served. */
static void turn_away(int listen_fd)
{
    static const char busy[] = "RPERF/1 busy\n";
    int fd = accept(listen_fd, NULL, NULL);
    if (fd < 0)
        return;
    ssize_t r = write(fd, busy, sizeof(busy) - 1);
    (void)r; /* it is told or it is not: either way we close */
    close(fd);
}

static void take_done(struct stest *t, const char *line)
{
    if (strncmp(line, "done", 4) != 0 || t->done)
        return;
    t->done = 1;
    t->done_at = now_ns();
    if (kv_u64(line, "msgs", &t->done_msgs) != 0)
        t->done_msgs = 0;
}

/* Looks at the control channel and the listener without waiting: takes
 * the client's "done" and turns other clients away.  Returns -1 once the
 * client has gone, which abandons the test, else 0. */
static int srv_check(struct stest *t)
{
    struct pollfd p[2] = {{.fd = t->ctl->fd, .events = POLLIN},
                          {.fd = t->srv->listen_fd, .events = POLLIN}};
    int r = poll(p, 2, 0);
    if (r > 0 && (p[1].revents & POLLIN))
        turn_away(t->srv->listen_fd);
    int pending = memchr(t->ctl->buf, '\n', t->ctl->len) != NULL;
    if (t->aborted || (!pending && !(r > 0 && p[0].revents)))
        return t->aborted ? -1 : 0;
    char line[LINE_BYTES];
    int n = ctl_read(t->ctl, line, sizeof(line), 0);
    if (n == 0 || (n < 0 && errno != ETIMEDOUT)) {
        t->aborted = 1;
        return -1;
    }
    if (n > 0)
        take_done(t, line);
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Server: accounting for what arrives                                       */
/* ------------------------------------------------------------------------ */

static void count_arrival(struct stest *t, size_t len, int64_t now)
{
    if (t->msgs == 0)
        t->first_ns = now;
    t->last_ns = now;
    t->msgs++;
    t->bytes += len;
}

/* Marks raw datagram idx seen.  Returns 1 when it had been seen before. */
static int seen_before(struct stest *t, uint64_t idx)
{
    if (idx >= t->seen_bits) {
        uint64_t bits = t->seen_bits ? t->seen_bits : 1u << 16;
        while (bits <= idx)
            bits *= 2;
        uint8_t *n = realloc(t->seen, bits / 8);
        if (n == NULL) {
            fprintf(stderr, "rperf: out of memory\n");
            exit(1);
        }
        memset(n + t->seen_bits / 8, 0, (bits - t->seen_bits) / 8);
        t->seen = n;
        t->seen_bits = bits;
    }
    uint8_t mask = (uint8_t)(1u << (idx & 7));
    int was = (t->seen[idx >> 3] & mask) != 0;
    t->seen[idx >> 3] |= mask;
    return was;
}

/* One raw datagram: its stamp, length and content are checked; loss,
 * duplicates and reordering are counted, as raw UDP allows them.
 * Datagrams under 8 bytes carry no index and are only counted. */
static void raw_account(struct stest *t, const uint8_t *d, size_t len,
                        int64_t now)
{
    if (len < 8) {
        t->unchecked++;
        count_arrival(t, len, now);
        return;
    }
    int64_t idx = message_index(&t->pat, d);
    if (idx < 0 || (uint64_t)idx > t->top + (1u << 24) ||
        len != raw_len(t->size, t->datagram, (uint64_t)idx) ||
        pattern_check(&t->pat, d, len, (uint64_t)idx) != len) {
        t->bad++;
        return;
    }
    if (seen_before(t, (uint64_t)idx)) {
        t->dup++;
        return;
    }
    if (t->msgs > 0 && (uint64_t)idx < t->top)
        t->late++;
    if ((uint64_t)idx > t->top)
        t->top = (uint64_t)idx;
    count_arrival(t, len, now);
}

/* One message of an ordered transport: it must be the next one, whole. */
static void ordered_account(struct stest *t, const uint8_t *m, size_t len)
{
    uint64_t i = t->msgs;
    size_t want = msg_len(t->size, t->total, i);
    if (check_message(&t->pat, m, len, want, i, "message", t->why,
                      sizeof(t->why)) != 0)
        t->bad++;
    t->sum = sum_fold(t->sum, m, len);
    count_arrival(t, len, now_ns());
}

/* ------------------------------------------------------------------------ */
/* Server: the test loops                                                    */
/* ------------------------------------------------------------------------ */

/* Receives up to BATCH raw datagrams, waiting at most 10 ms. */
static int raw_receive(struct server *s)
{
    for (int i = 0; i < BATCH; i++) {
        s->msgs[i].buf = s->rx + (size_t)i * RX_BYTES;
        s->msgs[i].len = RX_BYTES;
    }
    return UDP_RecvMany(s->udp_fd, s->msgs, BATCH, 10);
}

/* Raw bulk: count and check datagrams until the client is done and the
 * socket has been quiet for DRAIN_NS (or all it sent is in). */
static void serve_udp_bw(struct stest *t)
{
    struct server *s = t->srv;
    int64_t checked = now_ns(), heard = 0;
    for (;;) {
        int n = raw_receive(s);
        int64_t now = now_ns();
        for (int i = 0; i < n; i++)
            raw_account(t, s->msgs[i].buf, s->msgs[i].len, now);
        if (n > 0)
            heard = now;
        if (n <= 0 || now - checked >= CHECK_NS) {
            checked = now;
            if (srv_check(t) < 0)
                return;
        }
        int64_t quiet = now - (heard > t->done_at ? heard : t->done_at);
        if (t->done && (t->msgs >= t->done_msgs || quiet >= DRAIN_NS ||
                        now - t->done_at > 3 * (int64_t)NS_PER_S))
            return;
    }
}

/* Raw ping-pong: send every datagram straight back to its sender. */
/* The raw baseline of a round trip: a blocking recvfrom and a sendto per
 * datagram, as a plain UDP echo server is written, with the kernel's
 * receive timeout waking it every CHECK_NS to see whether the test ended. */
static void serve_udp_echo_blocking(struct stest *t)
{
    struct server *s = t->srv;
    int64_t checked = now_ns();
    UDP_SetBlockingTimeout(s->udp_fd, CHECK_NS / 1000);
    while (!t->done) {
        struct udp_addr from;
        int r = UDP_RecvFrom(s->udp_fd, s->rx, RX_BYTES, &from, -1);
        if (r >= 0) {
            UDP_SendTo(s->udp_fd, s->rx, (size_t)r, &from);
            count_arrival(t, (size_t)r, 0);
        }
        int64_t now = now_ns();
        if (r < 0 || now - checked >= CHECK_NS) {
            checked = now;
            if (srv_check(t) < 0)
                break;
        }
    }
    UDP_SetBlockingTimeout(s->udp_fd, 0);
}

static void serve_udp_echo(struct stest *t)
{
    struct server *s = t->srv;
    int64_t checked = now_ns();
    if (!t->batch) {
        serve_udp_echo_blocking(t);
        return;
    }
    while (!t->done) {
        int n = raw_receive(s);
        for (int i = 0; i < n && !t->batch; i++)
            UDP_SendTo(s->udp_fd, s->msgs[i].buf, s->msgs[i].len,
                       &s->msgs[i].addr);
        for (int sent = 0; t->batch && sent < n;) {
            int r = UDP_SendMany(s->udp_fd, s->msgs + sent, n - sent);
            sent += r > 0 ? r : 1; /* a failed one is lost, like on a wire */
        }
        for (int i = 0; i < n; i++)
            count_arrival(t, s->msgs[i].len, 0);
        int64_t now = now_ns();
        if (n <= 0 || now - checked >= CHECK_NS) {
            checked = now;
            if (srv_check(t) < 0)
                return;
        }
    }
}

/* rmsg bulk: receive, check and free every message until the client is
 * done and all it sent has arrived (or nothing more comes for 1 s). */
static void serve_rmsg_bw(struct stest *t)
{
    int64_t checked = now_ns(), heard = checked;
    for (;;) {
        void *m;
        size_t len;
        int r = rmsg_recv(t->ep, NULL, &m, &len, 10);
        int64_t now = now_ns();
        if (r == 0) {
            ordered_account(t, m, len);
            free(m);
            heard = now;
        }
        if (r != 0 || now - checked >= CHECK_NS) {
            checked = now;
            if (srv_check(t) < 0)
                return;
        }
        int64_t quiet = now - (heard > t->done_at ? heard : t->done_at);
        if (t->done && (t->msgs >= t->done_msgs || quiet > 1000000000))
            return;
    }
}

/* rmsg ping-pong: send every message back, blocking (rmsg) or queued
 * (rmsg-async) as the client does. */
static void serve_rmsg_echo(struct stest *t)
{
    int async = t->tr == T_RMSG_ASYNC, tmo = msg_timeout_ms(t->size);
    int64_t checked = now_ns();
    while (!t->done) {
        struct udp_addr from;
        void *m;
        size_t len;
        int r = rmsg_recv(t->ep, &from, &m, &len, 10);
        if (r == 0) {
            int64_t s = async ? rmsg_send_async(t->ep, &from, m, len, tmo)
                              : rmsg_send(t->ep, &from, m, len, tmo);
            free(m);
            if (s < 0) {
                t->bad++;
                set_why(t->why, sizeof(t->why), "reply %" PRIu64 ": %s",
                        t->msgs, strerror((int)-s));
            }
            count_arrival(t, len, 0);
        }
        int64_t now = now_ns();
        if (r != 0 || now - checked >= CHECK_NS) {
            checked = now;
            if (srv_check(t) < 0)
                return;
        }
    }
    int f = rmsg_flush(t->ep, 2000);
    if (f != 0)
        set_why(t->why, sizeof(t->why), "final replies: %s",
                f < 0 ? strerror(-f) : "not acknowledged");
}

/* Checks the complete messages at the front of buf and moves the rest of
 * a message to the front.  Returns how many bytes are kept. */
static size_t take_messages(struct stest *t, uint8_t *buf, size_t have)
{
    size_t pos = 0;
    while (pos < have) {
        size_t want = msg_len(t->size, t->total, t->msgs);
        if (want == 0) {
            t->bad++;
            set_why(t->why, sizeof(t->why), "more bytes than the client sent");
            return 0;
        }
        if (have - pos < want)
            break;
        ordered_account(t, buf + pos, want);
        pos += want;
    }
    memmove(buf, buf + pos, have - pos);
    return have - pos;
}

/* TCP bulk: read the stream in large pieces, check it message by message,
 * and close at its end, which tells the client that all has arrived. */
static void serve_tcp_bw(struct stest *t)
{
    size_t cap = t->size > (256u << 10) ? (size_t)t->size : 256u << 10;
    size_t have = 0;
    uint8_t *buf = xmalloc(cap);
    for (;;) {
        ssize_t r = read(t->data_fd, buf + have, cap - have);
        if (r > 0) {
            have = take_messages(t, buf, have + (size_t)r);
            continue;
        }
        if (r == 0)
            break;
        if (errno == EINTR ||
            ((errno == EAGAIN || errno == EWOULDBLOCK) && srv_check(t) == 0))
            continue;
        if (!t->aborted)
            set_why(t->why, sizeof(t->why), "data: %s", strerror(errno));
        break;
    }
    if (have > 0)
        set_why(t->why, sizeof(t->why),
                "the stream ended inside message %" PRIu64, t->msgs);
    free(buf);
    close(t->data_fd);
    t->data_fd = -1;
}

/* Reads exactly n bytes of the data connection, looking at the control
 * channel whenever the data pauses.  Returns 1, 0 at a clean end, -1. */
static int read_msg(struct stest *t, uint8_t *buf, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = read(t->data_fd, buf + got, n - got);
        if (r > 0) {
            got += (size_t)r;
            continue;
        }
        if (r == 0 && got == 0)
            return 0;
        if (r < 0 &&
            (errno == EINTR ||
             ((errno == EAGAIN || errno == EWOULDBLOCK) && srv_check(t) == 0)))
            continue;
        if (!t->aborted)
            set_why(t->why, sizeof(t->why), "data: %s",
                    r == 0 ? "the stream ended inside a message"
                           : strerror(errno));
        return -1;
    }
    return 1;
}

/* TCP ping-pong: read a whole message, write it back. */
static void serve_tcp_echo(struct stest *t)
{
    uint8_t *buf = xmalloc((size_t)t->size);
    while (read_msg(t, buf, (size_t)t->size) > 0) {
        if (write_all(t->data_fd, buf, (size_t)t->size) < 0) {
            set_why(t->why, sizeof(t->why), "data: %s", strerror(errno));
            break;
        }
        count_arrival(t, (size_t)t->size, 0);
    }
    free(buf);
    close(t->data_fd);
    t->data_fd = -1;
}

typedef void (*serve_fn)(struct stest *);

/* What serves each transport, by mode (M_BW, M_LAT).  rpc: not yet. */
static const serve_fn serve_fns[T_COUNT][2] = {
    [T_UDP] = {serve_udp_bw, serve_udp_echo},
    [T_RMSG] = {serve_rmsg_bw, serve_rmsg_echo},
    [T_RMSG_ASYNC] = {serve_rmsg_bw, serve_rmsg_echo},
    [T_TCP] = {serve_tcp_bw, serve_tcp_echo},
};

/* ------------------------------------------------------------------------ */
/* Server: one test, one session, the accept loop                            */
/* ------------------------------------------------------------------------ */

/* Reads a "test" request into t.  Returns 0, or -1 with the reason. */
static int parse_request(struct stest *t, const char *line)
{
    char tr[24], mode[8];
    uint64_t dgram, batch;
    if (kv_get(line, "transport", tr, sizeof(tr)) != 0 ||
        kv_get(line, "mode", mode, sizeof(mode)) != 0 ||
        kv_u64(line, "size", &t->size) != 0 ||
        kv_u64(line, "total", &t->total) != 0 ||
        kv_u64(line, "datagram", &dgram) != 0 ||
        kv_u64(line, "batch", &batch) != 0 ||
        kv_u64(line, "seed", &t->seed) != 0) {
        set_why(t->why, sizeof(t->why), "malformed request");
        return -1;
    }
    t->tr = T_COUNT;
    for (int i = 0; i < T_COUNT; i++)
        if (strcmp(tr, transport_names[i]) == 0 && serve_fns[i][0])
            t->tr = (enum transport_id)i;
    t->mode = strcmp(mode, "lat") == 0 ? M_LAT : M_BW;
    t->datagram = (uint32_t)dgram;
    t->batch = batch != 0;
    if (t->tr == T_COUNT)
        set_why(t->why, sizeof(t->why), "transport %s is not served here", tr);
    else if ((strcmp(mode, "bw") && strcmp(mode, "lat")) || t->size < 1 ||
             t->size > SIZE_MAX_BYTES || dgram < DGRAM_MIN || dgram > DGRAM_MAX)
        set_why(t->why, sizeof(t->why), "bad mode, size or datagram");
    pattern_init(&t->pat, t->seed);
    return t->why[0] ? -1 : 0;
}

/* Empties the raw socket of datagrams from before this test. */
static void drain_udp(struct server *s)
{
    for (int i = 0; i < BATCH; i++) {
        s->msgs[i].buf = s->rx + (size_t)i * RX_BYTES;
        s->msgs[i].len = RX_BYTES;
    }
    while (UDP_RecvMany(s->udp_fd, s->msgs, BATCH, 0) > 0)
        ;
}

/* Opens what the test runs on, before the server says "ok": the raw socket
 * is ready, or an rmsg endpoint takes the port, or a token is chosen for
 * the TCP data connection.  Returns 0, or -1 with the reason. */
static int setup_test(struct stest *t)
{
    struct server *s = t->srv;
    if (t->tr == T_TCP) {
        snprintf(t->token, sizeof(t->token), "%016" PRIx64, random64());
        return 0;
    }
    if (t->tr == T_UDP) {
        if (s->udp_fd < 0 && reserve_udp(s) < 0) {
            set_why(t->why, sizeof(t->why), "UDP port %d: %s", s->port,
                    strerror(errno));
            return -1;
        }
        drain_udp(s);
        return 0;
    }
    struct rmsg_config cfg;
    rmsg_cfg_for(&cfg, t->size, t->datagram);
    if (s->udp_fd >= 0)
        UDP_Close(s->udp_fd);
    s->udp_fd = -1;
    int rc = rmsg_open(s->port, &cfg, &t->ep);
    if (rc < 0) {
        set_why(t->why, sizeof(t->why), "rmsg_open on port %d: %s", s->port,
                strerror(-rc));
        return -1;
    }
    return 0;
}

/* Accepts the test's TCP data connection: the first one that presents the
 * token within CONNECT_MS.  Returns 0, or -1 with the reason. */
static int accept_data(struct stest *t)
{
    int64_t deadline = now_ns() + (int64_t)CONNECT_MS * 1000000;
    while (now_ns() < deadline) {
        struct pollfd p = {.fd = t->srv->listen_fd, .events = POLLIN};
        if (poll(&p, 1, ms_left(deadline)) <= 0)
            continue;
        int fd = accept(t->srv->listen_fd, NULL, NULL);
        if (fd < 0)
            continue;
        char tok[TOKEN_LEN];
        set_blocking(fd, 1);
        set_timeouts(fd, 1000);
        if (read_all(fd, tok, TOKEN_LEN) == 1 &&
            memcmp(tok, t->token, TOKEN_LEN) == 0) {
            /* Reads pause every 100 ms to look at the control channel. */
            set_timeouts(fd, 10000);
            struct timeval tv = {.tv_sec = 0, .tv_usec = 100000};
            setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
            if (t->mode == M_LAT)
                set_nodelay(fd);
            t->data_fd = fd;
            return 0;
        }
        close(fd);
    }
    set_why(t->why, sizeof(t->why), "no data connection with the token");
    return -1;
}

/* Waits for the client's "done" once the test loop has ended by itself. */
static void wait_done(struct stest *t)
{
    char line[LINE_BYTES];
    while (!t->done && !t->aborted) {
        if (ctl_read(t->ctl, line, sizeof(line), RESULT_MS) <= 0)
            t->aborted = 1;
        else
            take_done(t, line);
    }
}

static int send_result(struct stest *t, double cpu)
{
    struct rmsg_stats st;
    memset(&st, 0, sizeof(st));
    if (t->ep)
        rmsg_stats(t->ep, NULL, &st);
    uint64_t span = t->msgs > 1 ? (uint64_t)(t->last_ns - t->first_ns) : 0;
    return ctl_send(t->ctl,
                    "result msgs=%" PRIu64 " bytes=%" PRIu64 " sum=%" PRIu64
                    " bad=%" PRIu64 " dup=%" PRIu64 " late=%" PRIu64
                    " unchecked=%" PRIu64 " span_ns=%" PRIu64 " cpu_us=%.0f"
                    " retrans=%" PRIu64 " dgrams=%" PRIu64 " why=%s",
                    t->msgs, t->bytes, t->sum, t->bad, t->dup, t->late,
                    t->unchecked, span, isfinite(cpu) ? cpu * 1e6 : 0.0,
                    st.retransmissions, st.datagrams_sent, t->why);
}

/* Gives the port back to the plain UDP socket and frees the test. */
static void teardown_test(struct stest *t)
{
    rmsg_close(t->ep);
    t->ep = NULL;
    if (t->data_fd >= 0)
        close(t->data_fd);
    free(t->seen);
    if (t->srv->udp_fd < 0 && reserve_udp(t->srv) < 0)
        fprintf(stderr, "rperf: cannot take UDP port %d back: %s\n",
                t->srv->port, strerror(errno));
}

static void log_test(const struct stest *t, const char *who)
{
    if (t->srv->quiet)
        return;
    fprintf(stderr, "rperf: %s: %s %s of %s: %" PRIu64 " %s, %s%s%s\n", who,
            transport_names[t->tr], t->mode == M_BW ? "bw" : "lat",
            fmt_bytes((double)t->size).s, t->msgs,
            t->tr == T_UDP ? "datagrams" : "messages",
            fmt_bytes((double)t->bytes).s, t->aborted ? ", client gone" : "",
            t->why[0] ? ": " : "");
    if (t->why[0])
        fprintf(stderr, "rperf:   %s\n", t->why);
}

/* Serves one "test" request.  Returns -1 when the session is over. */
static int serve_test(struct server *s, struct ctl *c, const char *line,
                      const char *who)
{
    struct stest t;
    memset(&t, 0, sizeof(t));
    t.srv = s;
    t.ctl = c;
    t.data_fd = -1;
    if (parse_request(&t, line) < 0 || setup_test(&t) < 0) {
        int r = ctl_send(c, "error why=%s", t.why);
        teardown_test(&t);
        return r;
    }
    if (ctl_send(c, "ok token=%s", t.tr == T_TCP ? t.token : "-") < 0) {
        teardown_test(&t);
        return -1;
    }
    double cpu0 = cpu_seconds();
    if (t.tr != T_TCP || accept_data(&t) == 0)
        serve_fns[t.tr][t.mode](&t);
    wait_done(&t);
    double cpu = cpu_seconds() - cpu0;
    int r = t.aborted ? -1 : send_result(&t, cpu);
    log_test(&t, who);
    teardown_test(&t);
    return r;
}

/* Serves one client's requests until it closes the connection. */
static void serve_session(struct server *s, int fd, const char *who)
{
    struct ctl *c = xmalloc(sizeof(*c));
    c->fd = fd;
    c->len = 0;
    set_nodelay(fd);
    char line[LINE_BYTES];
    int r = ctl_send(c, "RPERF/1 ready");
    while (r >= 0 && ctl_read(c, line, sizeof(line), SESSION_IDLE_MS) > 0) {
        if (strncmp(line, "test ", 5) == 0)
            r = serve_test(s, c, line, who);
        else
            r = ctl_send(c, "error why=unknown request");
    }
    close(fd);
    free(c);
}

static int server_main(const struct opts *o)
{
    struct server s;
    memset(&s, 0, sizeof(s));
    s.quiet = o->quiet;
    if (open_ports(&s, o->port) < 0) {
        fprintf(stderr, "rperf: cannot listen on port %d: %s\n", o->port,
                strerror(errno));
        return 1;
    }
    s.rx = xmalloc((size_t)BATCH * RX_BYTES);
    printf("rperf: listening on port %d\n", s.port);
    fflush(stdout);
    for (;;) {
        struct pollfd p = {.fd = s.listen_fd, .events = POLLIN};
        struct udp_addr peer;
        peer.len = sizeof(peer.ss);
        if (poll(&p, 1, -1) <= 0)
            continue;
        int fd = accept(s.listen_fd, (struct sockaddr *)&peer.ss, &peer.len);
        if (fd < 0)
            continue;
        char who[INET6_ADDRSTRLEN + 16];
        UDP_AddrString(&peer, who, sizeof(who));
        set_blocking(fd, 1);
        serve_session(&s, fd, who);
        if (o->once)
            break;
    }
    close(s.listen_fd);
    UDP_Close(s.udp_fd);
    free(s.rx);
    return 0;
}

/* ======================================================================== */
/* Client: running one test                                                 */
/* ======================================================================== */

struct client {
    const struct opts *o;
    struct ctl ctl;
    struct sockaddr_storage peer; /* the server, as the control channel */
    socklen_t peer_len;           /* reached it */
    struct udp_addr udp_peer;     /* the same address for UDP */
    char peer_name[INET6_ADDRSTRLEN + 16];
};

/* One test to run: the user's, or the raw UDP baseline before it. */
struct plan {
    enum transport_id tr;
    enum mode mode;
    uint64_t size, total, count; /* total (bw) or count (lat); 0: none */
    double seconds;              /* 0: no time limit */
    int time_is_cap;             /* seconds is the default cap, not -t */
    uint32_t datagram;
    int batch, progress;
    const char *label;
};

/* Every figure of one run.  NAN marks what does not apply (JSON null). */
struct figures {
    int intact;    /* all that was checked arrived as it was sent */
    int capped;    /* the default time cap ended it before its total */
    char why[240]; /* the first problem; "" when the run succeeded */
    double msgs, bytes, seconds, rate, msg_rate;
    double p50, p90, p99, p999, max, min, mean; /* microseconds */
    double lost, dgrams_sent, dgrams_recv, dgrams_bad, dgrams_dup, dgrams_late,
        dgrams_unchecked, send_errors, sent_rate;
    double retrans, retrans_server, rto_timeouts, dgrams_per_msg;
    double cpu_client, cpu_server, cpu_per_gb, cpu_us_per_rtt;
};

/* The figures by name, for JSON and for medians over repeats. */
static const struct figdef {
    const char *key;
    size_t off;
} figdefs[] = {
    {"messages", offsetof(struct figures, msgs)},
    {"bytes", offsetof(struct figures, bytes)},
    {"seconds", offsetof(struct figures, seconds)},
    {"rate_bytes_per_s", offsetof(struct figures, rate)},
    {"msgs_per_s", offsetof(struct figures, msg_rate)},
    {"p50_us", offsetof(struct figures, p50)},
    {"p90_us", offsetof(struct figures, p90)},
    {"p99_us", offsetof(struct figures, p99)},
    {"p999_us", offsetof(struct figures, p999)},
    {"max_us", offsetof(struct figures, max)},
    {"min_us", offsetof(struct figures, min)},
    {"mean_us", offsetof(struct figures, mean)},
    {"lost", offsetof(struct figures, lost)},
    {"datagrams_sent", offsetof(struct figures, dgrams_sent)},
    {"datagrams_received", offsetof(struct figures, dgrams_recv)},
    {"datagrams_bad", offsetof(struct figures, dgrams_bad)},
    {"datagrams_duplicated", offsetof(struct figures, dgrams_dup)},
    {"datagrams_reordered", offsetof(struct figures, dgrams_late)},
    {"datagrams_unchecked", offsetof(struct figures, dgrams_unchecked)},
    {"send_errors", offsetof(struct figures, send_errors)},
    {"sent_rate_bytes_per_s", offsetof(struct figures, sent_rate)},
    {"retransmissions", offsetof(struct figures, retrans)},
    {"retransmissions_server", offsetof(struct figures, retrans_server)},
    {"rto_timeouts", offsetof(struct figures, rto_timeouts)},
    {"datagrams_per_msg", offsetof(struct figures, dgrams_per_msg)},
    {"cpu_client_s", offsetof(struct figures, cpu_client)},
    {"cpu_server_s", offsetof(struct figures, cpu_server)},
    {"cpu_s_per_gb", offsetof(struct figures, cpu_per_gb)},
    {"cpu_us_per_round_trip", offsetof(struct figures, cpu_us_per_rtt)},
};
#define NFIGS (sizeof(figdefs) / sizeof(figdefs[0]))

static double *fig(struct figures *f, size_t i)
{
    return (double *)((char *)f + figdefs[i].off);
}

static double fig_get(const struct figures *f, size_t i)
{
    return *(const double *)((const char *)f + figdefs[i].off);
}

static void figures_clear(struct figures *f)
{
    memset(f, 0, sizeof(*f));
    for (size_t i = 0; i < NFIGS; i++)
        *fig(f, i) = NAN;
}

/* The server's account of a test. */
struct sresult {
    uint64_t msgs, bytes, sum, bad, dup, late, unchecked, span_ns, cpu_us,
        retrans, dgrams;
    char why[200];
};

/* The client half of a test while it runs. */
struct ctest {
    struct client *cl;
    const struct plan *pl;
    struct figures *f;
    struct pattern pat;
    uint64_t seed;
    char token[TOKEN_LEN + 1];
    int64_t t0, t1, deadline;
    double cpu0, cpu1;
    struct progress prog;
    int failed;                /* stop: the transport broke */
    uint64_t msgs, bytes, sum; /* sent (bw) or round trips done (lat) */
    uint64_t attempted;        /* raw UDP: bytes handed to sendto */
    uint64_t send_errors, lost, bad;
    struct hist *hist; /* lat */
};

#define FAIL(t, ...)                                                           \
    do {                                                                       \
        set_why((t)->f->why, sizeof((t)->f->why), __VA_ARGS__);                \
        (t)->failed = 1;                                                       \
    } while (0)

/* The timed part starts: clock, CPU, time limit, progress line. */
static void ct_start(struct ctest *t)
{
    const struct plan *pl = t->pl;
    t->cpu0 = cpu_seconds();
    t->t0 = now_ns();
    t->deadline =
        pl->seconds > 0 ? t->t0 + (int64_t)(pl->seconds * NS_PER_S) : 0;
    progress_start(&t->prog, pl->progress, pl->label, pl->seconds,
                   pl->mode == M_BW ? pl->total : pl->count);
}

static void ct_stop(struct ctest *t)
{
    t->t1 = now_ns();
    t->cpu1 = cpu_seconds();
    progress_end(&t->prog);
}

/* True once the test has done what was asked (done counts bytes for bw,
 * round trips for lat), its time is up, or its transport broke. */
static int ct_finished(struct ctest *t, int64_t now, uint64_t done)
{
    uint64_t limit = t->pl->mode == M_BW ? t->pl->total : t->pl->count;
    if (t->failed || (limit && done >= limit))
        return 1;
    if (t->deadline && now >= t->deadline) {
        t->f->capped = limit && t->pl->time_is_cap;
        return 1;
    }
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Client: raw UDP                                                           */
/* ------------------------------------------------------------------------ */

static int open_udp(struct ctest *t)
{
    int fd = UDP_OpenDual(0, AF_UNSPEC);
    if (fd < 0) {
        FAIL(t, "UDP socket: %s", strerror(errno));
        return -1;
    }
    UDP_SetBuffers(fd, 8 << 20, 4 << 20, NULL, NULL);
    return fd;
}

/* A failed sendto: the kernel's "no room now" is counted like a loss;
 * anything else ends the test. */
static void send_failed(struct ctest *t, int e)
{
    t->send_errors++;
    if (e != ENOBUFS && e != EAGAIN && e != EWOULDBLOCK && e != EINTR &&
        e != ECONNREFUSED)
        FAIL(t, "sendto: %s", strerror(e));
}

/* Sends up to 32 datagrams, one UDP_SendTo each, from one buffer. */
static void udp_send_each(struct ctest *t, int fd, uint8_t *buf, uint64_t *g)
{
    const struct plan *pl = t->pl;
    for (int k = 0; k < 32 && !t->failed; k++) {
        if (pl->total && t->attempted >= pl->total)
            return;
        size_t len = raw_len(pl->size, pl->datagram, *g);
        pattern_stamp(&t->pat, buf, len, (*g)++);
        t->attempted += len;
        if (UDP_SendTo(fd, buf, len, &t->cl->udp_peer) < 0) {
            send_failed(t, errno);
            continue;
        }
        t->msgs++;
        t->bytes += len;
    }
}

/* Sends up to BATCH datagrams with UDP_SendMany, each from its own slot. */
static void udp_send_batch(struct ctest *t, int fd, uint8_t *slots, size_t slot,
                           struct udp_msg *mv, uint64_t *g)
{
    const struct plan *pl = t->pl;
    int n = 0;
    for (; n < BATCH && !(pl->total && t->attempted >= pl->total); n++) {
        size_t len = raw_len(pl->size, pl->datagram, *g);
        mv[n].buf = slots + (size_t)n * slot;
        mv[n].len = len;
        pattern_stamp(&t->pat, mv[n].buf, len, (*g)++);
        t->attempted += len;
    }
    for (int sent = 0; sent < n && !t->failed;) {
        int r = UDP_SendMany(fd, mv + sent, n - sent);
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) {
            send_failed(t, errno);
            sent++;
            continue;
        }
        for (int k = sent; k < sent + r; k++)
            t->bytes += mv[k].len;
        t->msgs += (uint64_t)r;
        sent += r;
    }
}

/* Raw bulk: datagrams as fast as one sendto (or sendmmsg) each allows. */
static void client_udp_bw(struct ctest *t)
{
    const struct plan *pl = t->pl;
    int fd = open_udp(t);
    if (fd < 0)
        return;
    size_t slot = pl->size < pl->datagram ? (size_t)pl->size : pl->datagram;
    int nslots = pl->batch ? BATCH : 1;
    uint8_t *slots = xmalloc((size_t)nslots * slot);
    struct udp_msg mv[BATCH];
    for (int k = 0; k < nslots; k++) {
        pattern_fill(&t->pat, slots + (size_t)k * slot, slot);
        mv[k].addr = t->cl->udp_peer;
    }
    uint64_t g = 0;
    ct_start(t);
    for (;;) {
        int64_t now = now_ns();
        if (ct_finished(t, now, t->attempted))
            break;
        progress_tick(&t->prog, now, t->bytes, 1, NULL);
        if (pl->batch)
            udp_send_batch(t, fd, slots, slot, mv, &g);
        else
            udp_send_each(t, fd, slots, &g);
    }
    ct_stop(t);
    UDP_Close(fd); /* sends what fault injection still holds */
    free(slots);
}

/* Which fragment of ping i an echoed datagram is, or -1 for a late echo
 * of an earlier ping or a bad one (counted).  A ping under 8 bytes has no
 * room for an index: its echo must equal what was sent. */
static int64_t echo_frag(struct ctest *t, const uint8_t *rx, size_t len,
                         const uint8_t *tx, uint64_t i, uint64_t nfrag)
{
    const struct plan *pl = t->pl;
    if (len < 8)
        return len == pl->size && memcmp(rx, tx, len) == 0 ? 0 : -1;
    int64_t g = message_index(&t->pat, rx);
    if (g < 0) {
        t->bad++;
        return -1;
    }
    if ((uint64_t)g / nfrag != i)
        return -1;
    if (len != raw_len(pl->size, pl->datagram, (uint64_t)g) ||
        pattern_check(&t->pat, rx, len, (uint64_t)g) != len) {
        t->bad++;
        return -1;
    }
    return (int64_t)((uint64_t)g % nfrag);
}

/* Waits until every fragment of ping i is back or the deadline passes.
 * Returns the arrival time of the last one, or -1. */
static int64_t echo_wait(struct ctest *t, int fd, uint8_t *rx,
                         const uint8_t *tx, uint8_t *got, uint64_t i,
                         uint64_t nfrag, int64_t deadline)
{
    uint64_t have = 0;
    memset(got, 0, (size_t)nfrag);
    while (have < nfrag) {
        /* A blocking recvfrom, as a plain UDP client waits for its
         * reply; the socket's blocking timeout (set in client_udp_lat)
         * lets it look at the deadline now and then. */
        int r = UDP_RecvFrom(fd, rx, RX_BYTES, NULL, -1);
        int64_t now = now_ns();
        if (r < 0 && (errno == EINTR || errno == ETIMEDOUT) && now < deadline)
            continue;
        if (r < 0 && errno != ETIMEDOUT)
            FAIL(t, "recvfrom: %s", strerror(errno));
        if (r < 0)
            return -1;
        int64_t k = echo_frag(t, rx, (size_t)r, tx, i, nfrag);
        if (k < 0 || got[k])
            continue;
        got[k] = 1;
        if (++have == nfrag)
            return now;
    }
    return -1;
}

/* Sends ping i: nfrag datagrams, one UDP_SendTo each. */
static void ping_send(struct ctest *t, int fd, uint8_t *tx, uint64_t i,
                      uint64_t nfrag)
{
    const struct plan *pl = t->pl;
    for (uint64_t k = 0; k < nfrag; k++) {
        uint64_t g = i * nfrag + k;
        size_t len = raw_len(pl->size, pl->datagram, g);
        pattern_stamp(&t->pat, tx, len, g);
        if (UDP_SendTo(fd, tx, len, &t->cl->udp_peer) < 0)
            send_failed(t, errno);
    }
}

/* Raw ping-pong.  A ping whose echo does not come back within four
 * smoothed round trips plus 1 ms counts as lost; 2 s without any echo
 * ends the test. */
static void client_udp_lat(struct ctest *t)
{
    const struct plan *pl = t->pl;
    int fd = open_udp(t);
    if (fd < 0)
        return;
    uint64_t nfrag = (pl->size + pl->datagram - 1) / pl->datagram;
    size_t slot = pl->size < pl->datagram ? (size_t)pl->size : pl->datagram;
    uint8_t *tx = xmalloc(slot), *rx = xmalloc(RX_BYTES);
    uint8_t *got = xmalloc((size_t)nfrag);
    pattern_fill(&t->pat, tx, slot);
    int64_t srtt = 0;
    UDP_SetBlockingTimeout(fd, 1000); /* a look at the deadline each ms */
    ct_start(t);
    int64_t heard = t->t0;
    for (uint64_t i = 0;; i++) {
        int64_t t0 = now_ns();
        if (ct_finished(t, t0, i))
            break;
        progress_tick(&t->prog, t0, t->msgs, 0, NULL);
        if (t0 - heard > NO_REPLY_NS) {
            FAIL(t, "no echo for 2 s (is UDP blocked on the way%s?)",
                 nfrag > 1 ? ", or a burst of that many datagrams more than"
                             " the socket buffers hold"
                           : "");
            break;
        }
        ping_send(t, fd, tx, i, nfrag);
        int64_t tmo = srtt ? 4 * srtt + 1000000 : 500000000;
        int64_t back = echo_wait(t, fd, rx, tx, got, i, nfrag,
                                 t0 + (tmo < 500000000 ? tmo : 500000000));
        if (back < 0) {
            t->lost++;
            continue;
        }
        hist_record(t->hist, back - t0);
        srtt = srtt ? (7 * srtt + (back - t0)) / 8 : back - t0;
        heard = back;
        t->msgs++;
    }
    ct_stop(t);
    UDP_Close(fd);
    free(tx);
    free(rx);
    free(got);
}

/* ------------------------------------------------------------------------ */
/* Client: rmsg                                                              */
/* ------------------------------------------------------------------------ */

static struct rmsg_endpoint *open_rmsg(struct ctest *t)
{
    struct rmsg_config cfg;
    struct rmsg_endpoint *ep = NULL;
    rmsg_cfg_for(&cfg, t->pl->size, t->pl->datagram);
    int rc = rmsg_open(0, &cfg, &ep);
    if (rc < 0)
        FAIL(t, "rmsg_open: %s", strerror(-rc));
    return ep;
}

/* Takes the sending endpoint's counters into the figures. */
static void rmsg_figures(struct ctest *t, struct rmsg_endpoint *ep)
{
    struct rmsg_stats st;
    if (rmsg_stats(ep, NULL, &st) != 0)
        return;
    t->f->retrans = (double)st.retransmissions;
    t->f->rto_timeouts = (double)st.timeouts;
    t->f->dgrams_sent = (double)st.datagrams_sent;
}

/* True when the server has closed the control connection (it died, or
 * gave up on us): then waiting for acknowledgments is pointless. */
static int server_gone(struct client *cl)
{
    struct pollfd p = {.fd = cl->ctl.fd, .events = POLLIN};
    char c;
    return poll(&p, 1, 0) > 0 &&
           recv(cl->ctl.fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

/* Reports what rmsg_flush returned when it is not 0. */
static void flush_failed(struct ctest *t, struct rmsg_endpoint *ep, int rc)
{
    struct rmsg_event ev;
    if (rc < 0)
        FAIL(t, "rmsg_flush: %s", strerror(-rc));
    else if (rmsg_failure(ep, &ev) == 0)
        FAIL(t, "%d messages failed, the first (id %" PRIu64 "): %s", rc, ev.id,
             strerror(-ev.error));
    else
        FAIL(t, "%d messages failed", rc);
}

/* Waits for every queued message, in slices of 200 ms between which it
 * looks whether the server is still there; reports the first failure. */
static void rmsg_finish_async(struct ctest *t, struct rmsg_endpoint *ep)
{
    int64_t deadline =
        now_ns() + (int64_t)ASYNC_TIMEOUT_MS(t->pl->size) * 2 * 1000000;
    for (;;) {
        int rc = rmsg_flush(ep, 200);
        if (rc != -ETIMEDOUT) {
            if (rc != 0)
                flush_failed(t, ep, rc);
            return;
        }
        if (now_ns() >= deadline || server_gone(t->cl)) {
            FAIL(t, "rmsg_flush: %s",
                 now_ns() >= deadline
                     ? "timed out"
                     : "the server closed the control connection");
            return;
        }
    }
}

/* rmsg_send_async takes messages until send_buffer bytes wait for their
 * acknowledgment.  For tiny messages that is millions of messages, faster
 * than they drain: a queue that takes minutes to empty and outlives any
 * deadline.  So rperf, like a sensible sender, also bounds the count:
 * past ASYNC_MSGS_MAX messages not yet acknowledged it lets the endpoint
 * run (rmsg_flush with a 1 ms limit) until acknowledgments make room.
 * *acked caches the last count seen.  Returns 0, or -1 after FAIL. */
static int async_room(struct ctest *t, struct rmsg_endpoint *ep,
                      uint64_t *acked)
{
    int64_t deadline =
        now_ns() + (int64_t)ASYNC_TIMEOUT_MS(t->pl->size) * 1000000;
    while (t->msgs - *acked >= ASYNC_MSGS_MAX) {
        struct rmsg_stats st;
        if (rmsg_stats(ep, NULL, &st) == 0)
            *acked = st.messages_sent;
        if (t->msgs - *acked < ASYNC_MSGS_MAX)
            break;
        int rc = rmsg_flush(ep, 1);
        if (rc == 0)
            *acked = t->msgs;
        else if (rc != -ETIMEDOUT)
            flush_failed(t, ep, rc);
        else if (now_ns() >= deadline)
            FAIL(t, "no acknowledgment for %d ms",
                 ASYNC_TIMEOUT_MS(t->pl->size));
        if (t->failed)
            return -1;
    }
    return 0;
}

/* rmsg bulk: rmsg_send per message (stop and wait), or rmsg_send_async
 * pipelined and one rmsg_flush at the end. */
static void client_rmsg_bw(struct ctest *t)
{
    const struct plan *pl = t->pl;
    int async = pl->tr == T_RMSG_ASYNC;
    int tmo = async ? ASYNC_TIMEOUT_MS(pl->size) : msg_timeout_ms(pl->size);
    uint64_t acked = 0;
    struct rmsg_endpoint *ep = open_rmsg(t);
    if (ep == NULL)
        return;
    uint8_t *buf = xmalloc((size_t)pl->size);
    pattern_fill(&t->pat, buf, (size_t)pl->size);
    ct_start(t);
    for (uint64_t i = 0;; i++) {
        int64_t now = now_ns();
        if (ct_finished(t, now, t->bytes))
            break;
        progress_tick(&t->prog, now, t->bytes, 1, ep);
        size_t len = msg_len(pl->size, pl->total, i);
        if (async && async_room(t, ep, &acked) < 0)
            break;
        pattern_stamp(&t->pat, buf, len, i);
        const struct udp_addr *to = &t->cl->udp_peer;
        int64_t r = async ? rmsg_send_async(ep, to, buf, len, tmo)
                          : rmsg_send(ep, to, buf, len, tmo);
        if (r < 0) {
            FAIL(t, "message %" PRIu64 ": %s: %s", i,
                 async ? "rmsg_send_async" : "rmsg_send", strerror((int)-r));
            break;
        }
        t->sum = sum_fold(t->sum, buf, len);
        t->msgs++;
        t->bytes += len;
    }
    if (async && !t->failed)
        rmsg_finish_async(t, ep);
    ct_stop(t);
    rmsg_figures(t, ep);
    rmsg_close(ep);
    free(buf);
}

/* rmsg ping-pong: send message i (blocking or queued), take the echo. */
static void client_rmsg_lat(struct ctest *t)
{
    const struct plan *pl = t->pl;
    int async = pl->tr == T_RMSG_ASYNC, tmo = msg_timeout_ms(pl->size);
    struct rmsg_endpoint *ep = open_rmsg(t);
    if (ep == NULL)
        return;
    uint8_t *buf = xmalloc((size_t)pl->size);
    pattern_fill(&t->pat, buf, (size_t)pl->size);
    const struct udp_addr *to = &t->cl->udp_peer;
    ct_start(t);
    for (uint64_t i = 0;; i++) {
        int64_t t0 = now_ns();
        if (ct_finished(t, t0, i))
            break;
        progress_tick(&t->prog, t0, t->msgs, 0, ep);
        pattern_stamp(&t->pat, buf, (size_t)pl->size, i);
        t0 = now_ns();
        int64_t r = async ? rmsg_send_async(ep, to, buf, (size_t)pl->size, tmo)
                          : rmsg_send(ep, to, buf, (size_t)pl->size, tmo);
        void *m = NULL;
        size_t len = 0;
        if (r >= 0)
            r = rmsg_recv(ep, NULL, &m, &len, tmo);
        int64_t t1 = now_ns();
        if (r < 0) {
            FAIL(t, "round trip %" PRIu64 ": %s", i, strerror((int)-r));
            break;
        }
        hist_record(t->hist, t1 - t0);
        t->msgs++;
        if (check_message(&t->pat, m, len, (size_t)pl->size, i, "reply",
                          t->f->why, sizeof(t->f->why)) != 0)
            t->bad++;
        free(m);
    }
    ct_stop(t);
    if (async && !t->failed)
        rmsg_finish_async(t, ep);
    /* A last short wait lets the acknowledgment of the last echo leave. */
    void *extra = NULL;
    size_t len;
    if (rmsg_recv(ep, NULL, &extra, &len, 20) == 0) {
        free(extra);
        FAIL(t, "an echo nobody asked for arrived");
    }
    rmsg_figures(t, ep);
    rmsg_close(ep);
    free(buf);
}

/* ------------------------------------------------------------------------ */
/* Client: TCP                                                               */
/* ------------------------------------------------------------------------ */

/* Opens the test's data connection and presents the token. */
static int data_connect(struct ctest *t)
{
    int64_t deadline = now_ns() + (int64_t)CONNECT_MS * 1000000;
    int fd = tcp_connect_addr((struct sockaddr *)&t->cl->peer, t->cl->peer_len,
                              deadline);
    if (fd < 0) {
        FAIL(t, "data connection: %s", strerror(errno));
        return -1;
    }
    set_timeouts(fd, 10000);
    if (t->pl->mode == M_LAT)
        set_nodelay(fd);
    if (write_all(fd, t->token, TOKEN_LEN) < 0) {
        FAIL(t, "data connection: %s", strerror(errno));
        close(fd);
        return -1;
    }
    return fd;
}

/* TCP bulk: write message after message; the server closing its end after
 * ours says that it has read everything. */
static void client_tcp_bw(struct ctest *t)
{
    const struct plan *pl = t->pl;
    int fd = data_connect(t);
    if (fd < 0)
        return;
    uint8_t *buf = xmalloc((size_t)pl->size);
    pattern_fill(&t->pat, buf, (size_t)pl->size);
    ct_start(t);
    for (uint64_t i = 0;; i++) {
        int64_t now = now_ns();
        if (ct_finished(t, now, t->bytes))
            break;
        progress_tick(&t->prog, now, t->bytes, 1, NULL);
        size_t len = msg_len(pl->size, pl->total, i);
        pattern_stamp(&t->pat, buf, len, i);
        if (write_all(fd, buf, len) < 0) {
            FAIL(t, "message %" PRIu64 ": write: %s", i, strerror(errno));
            break;
        }
        t->sum = sum_fold(t->sum, buf, len);
        t->msgs++;
        t->bytes += len;
    }
    shutdown(fd, SHUT_WR);
    char b[64];
    ssize_t r;
    while ((r = read(fd, b, sizeof(b))) != 0 && !t->failed)
        if (r < 0 && errno != EINTR)
            FAIL(t, "waiting for the server to read all: %s",
                 strerror(errno == EAGAIN ? ETIMEDOUT : errno));
    ct_stop(t);
    close(fd);
    free(buf);
}

/* TCP ping-pong: write message i, read its echo. */
static void client_tcp_lat(struct ctest *t)
{
    const struct plan *pl = t->pl;
    size_t size = (size_t)pl->size;
    int fd = data_connect(t);
    if (fd < 0)
        return;
    uint8_t *tx = xmalloc(size), *rx = xmalloc(size);
    pattern_fill(&t->pat, tx, size);
    ct_start(t);
    for (uint64_t i = 0;; i++) {
        int64_t t0 = now_ns();
        if (ct_finished(t, t0, i))
            break;
        progress_tick(&t->prog, t0, t->msgs, 0, NULL);
        pattern_stamp(&t->pat, tx, size, i);
        t0 = now_ns();
        int r = write_all(fd, tx, size) < 0 ? -1 : read_all(fd, rx, size);
        int64_t t1 = now_ns();
        if (r <= 0) {
            FAIL(t, "round trip %" PRIu64 ": %s", i,
                 r == 0 ? "the server closed" : strerror(errno));
            break;
        }
        hist_record(t->hist, t1 - t0);
        t->msgs++;
        if (check_message(&t->pat, rx, size, size, i, "reply", t->f->why,
                          sizeof(t->f->why)) != 0)
            t->bad++;
    }
    ct_stop(t);
    close(fd);
    free(tx);
    free(rx);
}

typedef void (*client_fn)(struct ctest *);

/* What runs each transport on the client, by mode (M_BW, M_LAT).  An rpc
 * row goes here once rpc exists (with a server row in serve_fns). */
static const client_fn client_fns[T_COUNT][2] = {
    [T_UDP] = {client_udp_bw, client_udp_lat},
    [T_RMSG] = {client_rmsg_bw, client_rmsg_lat},
    [T_RMSG_ASYNC] = {client_rmsg_bw, client_rmsg_lat},
    [T_TCP] = {client_tcp_bw, client_tcp_lat},
};

/* ------------------------------------------------------------------------ */
/* Client: the figures of a test                                             */
/* ------------------------------------------------------------------------ */

static void parse_result(const char *line, struct sresult *r)
{
    memset(r, 0, sizeof(*r));
    kv_u64(line, "msgs", &r->msgs);
    kv_u64(line, "bytes", &r->bytes);
    kv_u64(line, "sum", &r->sum);
    kv_u64(line, "bad", &r->bad);
    kv_u64(line, "dup", &r->dup);
    kv_u64(line, "late", &r->late);
    kv_u64(line, "unchecked", &r->unchecked);
    kv_u64(line, "span_ns", &r->span_ns);
    kv_u64(line, "cpu_us", &r->cpu_us);
    kv_u64(line, "retrans", &r->retrans);
    kv_u64(line, "dgrams", &r->dgrams);
    kv_get(line, "why", r->why, sizeof(r->why));
}

/* Bulk over rmsg or TCP: the server must have every message, in order. */
static void ordered_bw_figures(struct ctest *t, const struct sresult *r)
{
    struct figures *f = t->f;
    f->msgs = (double)r->msgs;
    f->bytes = (double)r->bytes;
    f->rate = f->bytes / f->seconds;
    f->msg_rate = f->msgs / f->seconds;
    if (t->msgs > 0 && isfinite(f->dgrams_sent))
        f->dgrams_per_msg = f->dgrams_sent / (double)t->msgs;
    f->intact = r->bad == 0 && r->msgs == t->msgs && r->bytes == t->bytes &&
                r->sum == t->sum;
    if (r->msgs != t->msgs || r->bytes != t->bytes)
        set_why(f->why, sizeof(f->why),
                "the server received %" PRIu64 " messages (%" PRIu64
                " bytes) of the %" PRIu64 " (%" PRIu64 " bytes) sent",
                r->msgs, r->bytes, t->msgs, t->bytes);
    else if (r->sum != t->sum && r->bad == 0)
        set_why(f->why, sizeof(f->why), "checksums differ");
}

/* Raw bulk: what arrived, at what rate; loss is a figure, not a fault. */
static void raw_bw_figures(struct ctest *t, const struct sresult *r)
{
    struct figures *f = t->f;
    const struct plan *pl = t->pl;
    double span = (double)r->span_ns / NS_PER_S;
    double secs = r->msgs > 1 && span > 0 ? span : f->seconds;
    f->msgs = f->dgrams_recv = (double)r->msgs;
    f->bytes = (double)r->bytes;
    f->rate = f->bytes / secs;
    f->msg_rate = f->msgs / secs;
    f->dgrams_sent = (double)t->msgs;
    f->sent_rate = (double)t->bytes / f->seconds;
    f->send_errors = (double)t->send_errors;
    f->lost = t->msgs > r->msgs ? (double)(t->msgs - r->msgs) : 0;
    f->dgrams_bad = (double)r->bad;
    f->dgrams_dup = (double)r->dup;
    f->dgrams_late = (double)r->late;
    f->dgrams_unchecked = (double)r->unchecked;
    f->dgrams_per_msg = (double)((pl->size + pl->datagram - 1) / pl->datagram);
    f->intact = r->bad == 0;
    if (r->msgs == 0)
        set_why(f->why, sizeof(f->why),
                "no datagram arrived (is UDP blocked"
                " on the way?)");
}

static void lat_figures(struct ctest *t, const struct sresult *r)
{
    struct figures *f = t->f;
    const struct hist *h = t->hist;
    f->msgs = (double)t->msgs;
    f->bytes = (double)t->msgs * (double)t->pl->size;
    f->msg_rate = f->msgs / f->seconds;
    f->rate = f->bytes / f->seconds;
    if (h->n > 0) {
        f->p50 = hist_quantile(h, 0.50) / 1e3;
        f->p90 = hist_quantile(h, 0.90) / 1e3;
        f->p99 = hist_quantile(h, 0.99) / 1e3;
        f->p999 = hist_quantile(h, 0.999) / 1e3;
        f->max = (double)h->max / 1e3;
        f->min = (double)h->min / 1e3;
        f->mean = h->sum / (double)h->n / 1e3;
    }
    if (t->pl->tr == T_UDP) {
        f->lost = (double)t->lost;
        f->dgrams_bad = (double)t->bad;
        f->send_errors = (double)t->send_errors;
    } else if (t->pl->tr != T_TCP) {
        f->retrans_server = (double)r->retrans;
        if (t->msgs > 0)
            f->dgrams_per_msg = f->dgrams_sent / (double)t->msgs;
    }
    f->intact =
        t->bad == 0 && (t->pl->tr == T_UDP || r->msgs == t->msgs || t->failed);
    if (!f->intact && t->pl->tr != T_UDP)
        set_why(f->why, sizeof(f->why),
                "the server echoed %" PRIu64 " messages, %" PRIu64 " came back",
                r->msgs, t->msgs);
    if (t->msgs == 0)
        set_why(f->why, sizeof(f->why), "no round trip completed");
}

static void compute_figures(struct ctest *t, const struct sresult *r)
{
    struct figures *f = t->f;
    f->seconds = (double)(t->t1 - t->t0) / NS_PER_S;
    f->cpu_client = t->cpu1 - t->cpu0;
    f->cpu_server = (double)r->cpu_us / 1e6;
    if (t->pl->mode == M_LAT)
        lat_figures(t, r);
    else if (t->pl->tr == T_UDP)
        raw_bw_figures(t, r);
    else
        ordered_bw_figures(t, r);
    double cpu = f->cpu_client + f->cpu_server;
    if (t->pl->mode == M_BW && f->bytes > 0)
        f->cpu_per_gb = cpu / (f->bytes / 1e9);
    if (t->pl->mode == M_LAT && f->msgs > 0)
        f->cpu_us_per_rtt = cpu * 1e6 / f->msgs;
    if (r->why[0])
        set_why(f->why, sizeof(f->why), "server: %s", r->why);
}

/* ------------------------------------------------------------------------ */
/* Client: the control conversation of one test                              */
/* ------------------------------------------------------------------------ */

/* Asks the server for the test.  Returns 0 once it said ok, else -1. */
static int request_test(struct ctest *t)
{
    const struct plan *pl = t->pl;
    struct ctl *c = &t->cl->ctl;
    char line[LINE_BYTES], why[200] = "";
    int r = ctl_send(c,
                     "test transport=%s mode=%s size=%" PRIu64 " total=%" PRIu64
                     " datagram=%u batch=%d seed=%" PRIu64,
                     transport_names[pl->tr], pl->mode == M_BW ? "bw" : "lat",
                     pl->size, pl->mode == M_BW ? pl->total : 0,
                     (unsigned)pl->datagram, pl->batch, t->seed);
    if (r == 0)
        r = ctl_read(c, line, sizeof(line), REPLY_MS);
    if (r <= 0) {
        FAIL(t, "control connection: %s",
             r == 0 ? "the server closed it" : strerror(errno));
        return -1;
    }
    if (strncmp(line, "ok", 2) == 0) {
        kv_get(line, "token", t->token, sizeof(t->token));
        return 0;
    }
    kv_get(line, "why", why, sizeof(why));
    FAIL(t, "the server refused the test: %s", why[0] ? why : line);
    return -1;
}

/* Tells the server the test is over and takes its result. */
static int finish_test(struct ctest *t)
{
    struct ctl *c = &t->cl->ctl;
    char line[LINE_BYTES];
    struct sresult r;
    int rc = ctl_send(c, "done msgs=%" PRIu64 " bytes=%" PRIu64 " sum=%" PRIu64,
                      t->msgs, t->bytes, t->sum);
    if (rc == 0)
        rc = ctl_read(c, line, sizeof(line), RESULT_MS);
    if (rc <= 0 || strncmp(line, "result ", 7) != 0) {
        set_why(t->f->why, sizeof(t->f->why), "no result from the server: %s",
                rc < 0    ? strerror(errno)
                : rc == 0 ? "it closed"
                          : line);
        return -1;
    }
    parse_result(line, &r);
    compute_figures(t, &r);
    return 0;
}

/* Runs one test.  Returns 0 when the conversation went through (the
 * figures say how the test went), -1 when the session cannot go on. */
static int run_test(struct client *cl, const struct plan *pl, struct figures *f)
{
    struct ctest t;
    memset(&t, 0, sizeof(t));
    figures_clear(f);
    t.cl = cl;
    t.pl = pl;
    t.f = f;
    t.seed = random64();
    pattern_init(&t.pat, t.seed);
    if (pl->mode == M_LAT) {
        t.hist = xmalloc(sizeof(*t.hist));
        memset(t.hist, 0, sizeof(*t.hist));
    }
    int rc = request_test(&t);
    if (rc == 0) {
        client_fns[pl->tr][pl->mode](&t);
        if (t.t1 == 0) { /* never started: time nothing */
            t.t0 = t.t1 = now_ns();
            t.cpu0 = t.cpu1 = cpu_seconds();
        }
        rc = finish_test(&t);
    }
    free(t.hist);
    return rc;
}

/* ======================================================================== */
/* Client: repeats, the summary, JSON                                       */
/* ======================================================================== */

struct run {
    struct figures test, base;
    double ratio; /* to the baseline; NAN without one */
};

static int is_rmsg(enum transport_id tr)
{
    return tr == T_RMSG || tr == T_RMSG_ASYNC;
}

/* The ratio to raw UDP: goodput over raw UDP's delivered rate (bw), or
 * median round trip over raw UDP's (lat). */
static double ratio_of(enum mode mode, const struct figures *test,
                       const struct figures *base)
{
    return mode == M_BW ? test->rate / base->rate : test->p50 / base->p50;
}

/* The library's promise for rmsg: RTT <= 1.10x raw UDP, bulk goodput >=
 * 1.0x the raw one-sendto rate.  Returns 1 kept, -1 missed, 0 n/a. */
static int promise_kept(const struct plan *pl, double ratio)
{
    if (!is_rmsg(pl->tr) || !isfinite(ratio))
        return 0;
    return (pl->mode == M_BW ? ratio >= 1.0 : ratio <= 1.10) ? 1 : -1;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

/* Sorts v[0..n) and returns its median. */
static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof(double), cmp_double);
    return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

/* Median, min and max of every figure over n runs (of the baselines when
 * base), skipping what does not apply. */
static void summarize(const struct run *runs, int n, int base,
                      struct figures *med, struct figures *lo,
                      struct figures *hi)
{
    double *v = xmalloc((size_t)n * sizeof(double));
    figures_clear(med);
    figures_clear(lo);
    figures_clear(hi);
    med->intact = 1;
    for (int r = 0; r < n; r++) {
        const struct figures *f = base ? &runs[r].base : &runs[r].test;
        med->intact &= f->intact;
        med->capped |= f->capped;
        if (f->why[0] && !med->why[0])
            snprintf(med->why, sizeof(med->why), "%s", f->why);
    }
    for (size_t i = 0; i < NFIGS; i++) {
        int k = 0;
        for (int r = 0; r < n; r++) {
            double x = fig_get(base ? &runs[r].base : &runs[r].test, i);
            if (!isnan(x))
                v[k++] = x;
        }
        if (k > 0) {
            *fig(med, i) = median(v, k);
            *fig(lo, i) = v[0];
            *fig(hi, i) = v[k - 1];
        }
    }
    free(v);
}

/* Median, min and max of the ratio over n runs, into r[0..2]. */
static void ratio_stats(const struct run *runs, int n, double r[3])
{
    double *v = xmalloc((size_t)n * sizeof(double));
    int k = 0;
    for (int i = 0; i < n; i++)
        if (isfinite(runs[i].ratio))
            v[k++] = runs[i].ratio;
    r[0] = k ? median(v, k) : NAN;
    r[1] = k ? v[0] : NAN;
    r[2] = k ? v[k - 1] : NAN;
    free(v);
}

/* ------------------------------------------------------------------------ */
/* The human summary                                                         */
/* ------------------------------------------------------------------------ */

/* A rate without the bit rate, for spreads: "176.6 MB/s". */
static struct text fmt_mbs(double bps)
{
    struct text t;
    snprintf(t.s, sizeof(t.s), "%.1f MB/s", bps / 1e6);
    return t;
}

/* " [min .. max]" when there were repeats, else "". */
static struct text spread(int on, struct text (*fmt)(double), double lo,
                          double hi)
{
    struct text t, a = fmt(lo), b = fmt(hi);
    t.s[0] = '\0';
    if (on && isfinite(lo))
        snprintf(t.s, sizeof(t.s), " [%.20s .. %.20s]", a.s, b.s);
    return t;
}

static void print_bw(const char *name, const struct plan *pl,
                     const struct figures *f, const struct figures *lo,
                     const struct figures *hi, int sp)
{
    if (pl->tr == T_UDP) {
        size_t dg = pl->size < pl->datagram ? (size_t)pl->size : pl->datagram;
        printf("  %-11s %s per %zu B datagram: sent %s, delivered %s%s, %s, "
               "%.2f%% lost\n",
               name, pl->batch ? "sendmmsg" : "one sendto", dg,
               fmt_mbs(f->sent_rate).s, fmt_rate(f->rate).s,
               spread(sp, fmt_mbs, lo->rate, hi->rate).s,
               fmt_per_s(f->msg_rate).s,
               f->dgrams_sent > 0 ? 100 * f->lost / f->dgrams_sent : 0.0);
        return;
    }
    printf("  %-11s %s in %.2f s: %s%s, %s messages", name,
           fmt_bytes(f->bytes).s, f->seconds, fmt_rate(f->rate).s,
           spread(sp, fmt_mbs, lo->rate, hi->rate).s, fmt_per_s(f->msg_rate).s);
    if (is_rmsg(pl->tr))
        printf(", %.1f datagrams/msg, %.0f retransmitted", f->dgrams_per_msg,
               f->retrans);
    printf("\n");
}

static void print_lat(const char *name, const struct plan *pl,
                      const struct figures *f, const struct figures *lo,
                      const struct figures *hi, int sp)
{
    printf("  %-11s %.0f round trips in %.2f s (%s): p50 %s%s, p90 %s, "
           "p99 %s%s, p99.9 %s, max %s",
           name, f->msgs, f->seconds, fmt_per_s(f->msg_rate).s,
           fmt_us(f->p50).s, spread(sp, fmt_us, lo->p50, hi->p50).s,
           fmt_us(f->p90).s, fmt_us(f->p99).s,
           spread(sp, fmt_us, lo->p99, hi->p99).s, fmt_us(f->p999).s,
           fmt_us(f->max).s);
    if (pl->tr == T_UDP)
        printf(", %.0f lost", f->lost);
    if (is_rmsg(pl->tr))
        printf(", %.0f+%.0f retransmitted", f->retrans, f->retrans_server);
    printf("\n");
}

static void print_ratio(const struct plan *pl, const double r[3], int sp)
{
    int bw = pl->mode == M_BW, kept = promise_kept(pl, r[0]);
    double promise = bw ? 1.0 : 1.10;
    if (!isfinite(r[0]))
        return;
    printf("  %-11s %.2fx raw udp (%s)", "ratio", r[0],
           bw ? "goodput / raw delivered rate" : "p50 / raw p50");
    if (sp)
        printf(" [%.2fx .. %.2fx]", r[1], r[2]);
    if (kept)
        printf(": %s the promise (%s %.2fx)", kept > 0 ? "within" : "misses",
               bw ? ">=" : "<=", promise);
    printf("\n");
    if (kept < 0 && bw)
        printf("  %-11s %s delivers %.2fx what raw UDP with one sendto per "
               "datagram delivers; rmsg promises at least %.2fx\n",
               "verdict", transport_names[pl->tr], r[0], promise);
    else if (kept < 0)
        printf("  %-11s %s round trips take %.2fx raw UDP's; rmsg promises "
               "at most %.2fx\n",
               "verdict", transport_names[pl->tr], r[0], promise);
}

static void print_cpu(const struct plan *pl, const struct figures *f)
{
    printf("  %-11s client %.2f s, server %.2f s: ", "cpu", f->cpu_client,
           f->cpu_server);
    if (pl->mode == M_BW)
        printf("%.2f CPU s per GB delivered, both ends\n", f->cpu_per_gb);
    else
        printf("%.1f µs CPU per round trip, both ends\n", f->cpu_us_per_rtt);
}

/* What the verification found. */
static void print_check(const char *name, const struct plan *pl,
                        const struct figures *f)
{
    if (f->why[0])
        printf("  %-11s %s: %s\n", "FAILED", name, f->why);
    else if (pl->tr == T_UDP && pl->mode == M_BW)
        printf("  %-11s %s: %.0f datagrams arrived, %.0f corrupt or foreign, "
               "%.0f duplicated, %.0f reordered, %.0f too short to check\n",
               "checked", name, f->dgrams_recv, f->dgrams_bad, f->dgrams_dup,
               f->dgrams_late, f->dgrams_unchecked);
    else if (pl->tr == T_UDP)
        printf("  %-11s %s: %.0f echoes intact, %.0f corrupt\n", "checked",
               name, f->msgs, f->dgrams_bad);
    else if (pl->mode == M_BW)
        printf("  %-11s %.0f messages, %s: none missing, duplicated, out of "
               "order or corrupt\n",
               "verified", f->msgs, fmt_bytes(f->bytes).s);
    else
        printf("  %-11s %.0f echoes: each whole, in order and intact\n",
               "verified", f->msgs);
    if (f->capped)
        printf("  %-11s %s stopped at the %.0f s cap before its total; -n, "
               "-N or -t set the length\n",
               "note", name, TIME_CAP_S);
}

static void print_figs(const char *name, const struct plan *pl,
                       const struct figures *f, const struct figures *lo,
                       const struct figures *hi, int sp)
{
    if (pl->mode == M_BW)
        print_bw(name, pl, f, lo, hi, sp);
    else
        print_lat(name, pl, f, lo, hi, sp);
}

static void print_header(const struct opts *o, const struct client *cl,
                         const struct plan *pl)
{
    char limit[64] = "";
    uint64_t n = pl->mode == M_BW ? pl->total : pl->count;
    if (n && pl->mode == M_BW)
        snprintf(limit, sizeof(limit), "%s", fmt_bytes((double)n).s);
    else if (n)
        snprintf(limit, sizeof(limit), "%" PRIu64 " round trips", n);
    if (pl->seconds > 0)
        snprintf(limit + strlen(limit), sizeof(limit) - strlen(limit), "%s%g s",
                 n ? " or " : "", pl->seconds);
    printf("rperf: %s %s %s (%s): messages of %s", transport_names[pl->tr],
           pl->mode == M_BW ? "bulk transfer to" : "round trips with", o->host,
           cl->peer_name, fmt_bytes((double)pl->size).s);
    if (pl->tr != T_TCP)
        printf(", datagrams of %u B", (unsigned)pl->datagram);
    printf(", %s\n", limit);
}

/* One line per run when there are several. */
static void print_run_line(int i, int n, const struct plan *pl,
                           const struct run *r, int has_base)
{
    const struct figures *f = &r->test, *b = &r->base;
    printf("run %d/%d: %s ", i + 1, n, transport_names[pl->tr]);
    if (pl->mode == M_BW)
        printf("%s", fmt_mbs(f->rate).s);
    else
        printf("p50 %s p99 %s", fmt_us(f->p50).s, fmt_us(f->p99).s);
    if (has_base && pl->mode == M_BW)
        printf(", udp %s, %.2fx", fmt_mbs(b->rate).s, r->ratio);
    else if (has_base)
        printf(", udp p50 %s, %.2fx", fmt_us(b->p50).s, r->ratio);
    printf("%s%s\n", f->why[0] ? ": FAILED: " : "", f->why);
}

static void print_quiet(const struct plan *pl, const struct figures *f,
                        double ratio)
{
    printf("%s %s %s: ", transport_names[pl->tr],
           pl->mode == M_BW ? "bw" : "lat", fmt_bytes((double)pl->size).s);
    if (pl->mode == M_BW)
        printf("%s", fmt_rate(f->rate).s);
    else
        printf("p50 %s p99 %s", fmt_us(f->p50).s, fmt_us(f->p99).s);
    if (isfinite(ratio))
        printf(", %.2fx raw udp", ratio);
    printf(", %s%s\n",
           f->why[0]   ? "FAILED: "
           : f->intact ? "intact"
                       : "",
           f->why);
}

static void print_summary(const struct opts *o, const struct plan *pl,
                          const struct plan *bp, const struct run *runs, int n,
                          int has_base)
{
    struct figures med, lo, hi, bmed, blo, bhi;
    double r[3];
    int sp = n > 1;
    summarize(runs, n, 0, &med, &lo, &hi);
    summarize(runs, n, 1, &bmed, &blo, &bhi);
    ratio_stats(runs, n, r);
    if (o->quiet) {
        print_quiet(pl, &med, r[0]);
        return;
    }
    if (sp)
        printf("median of %d runs, [min .. max]:\n", n);
    print_figs(transport_names[pl->tr], pl, &med, &lo, &hi, sp);
    if (has_base) {
        print_figs("udp", bp, &bmed, &blo, &bhi, sp);
        print_ratio(pl, r, sp);
    }
    print_cpu(pl, &med);
    print_check(transport_names[pl->tr], pl, &med);
    if (has_base && bmed.why[0])
        print_check("udp", bp, &bmed);
}

/* ------------------------------------------------------------------------ */
/* JSON: one flat object (one key per line), so that shell scripts can pick */
/* a figure with sed; the baseline's figures carry the prefix "baseline_"   */
/* ------------------------------------------------------------------------ */

struct jw {
    FILE *f;
    int n;
};

static void jw_key(struct jw *w, const char *pre, const char *key,
                   const char *post)
{
    fprintf(w->f, "%s\n  \"%s%s%s\": ", w->n++ ? "," : "{", pre, key, post);
}

static void jw_num(struct jw *w, const char *pre, const char *key,
                   const char *post, double v)
{
    jw_key(w, pre, key, post);
    if (!isfinite(v))
        fputs("null", w->f);
    else if ((v == floor(v) && fabs(v) < 1e15) || fabs(v) >= 1e6)
        fprintf(w->f, "%.0f", v); /* plain digits: kind to shell scripts */
    else
        fprintf(w->f, "%.9g", v);
}

static void jw_str(struct jw *w, const char *key, const char *s)
{
    jw_key(w, "", key, "");
    if (s == NULL) {
        fputs("null", w->f);
        return;
    }
    fputc('"', w->f);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p == '"' || *p == '\\')
            fprintf(w->f, "\\%c", *p);
        else if (*p < 0x20)
            fprintf(w->f, "\\u%04x", *p);
        else
            fputc(*p, w->f);
    }
    fputc('"', w->f);
}

static void jw_bool(struct jw *w, const char *key, int b)
{
    jw_key(w, "", key, "");
    fputs(b ? "true" : "false", w->f);
}

static void jw_figs(struct jw *w, const char *pre, const struct figures *f,
                    const char *post)
{
    for (size_t i = 0; i < NFIGS; i++)
        jw_num(w, pre, figdefs[i].key, post, fig_get(f, i));
}

/* What was asked for. */
static void json_request(struct jw *w, const struct opts *o,
                         const struct plan *pl)
{
    jw_str(w, "tool", "rperf");
    jw_num(w, "", "version", "", 1);
    jw_str(w, "host", o->host);
    jw_num(w, "", "port", "", o->port);
    jw_str(w, "transport", transport_names[pl->tr]);
    jw_str(w, "test", pl->mode == M_BW ? "bw" : "lat");
    jw_num(w, "", "size", "", (double)pl->size);
    jw_num(w, "", "datagram", "", pl->tr == T_TCP ? NAN : pl->datagram);
    jw_bool(w, "batch", pl->batch);
    jw_num(w, "", "repeats", "", o->repeats);
    jw_num(w, "", "limit_bytes", "", pl->total ? (double)pl->total : NAN);
    jw_num(w, "", "limit_count", "", pl->count ? (double)pl->count : NAN);
    jw_num(w, "", "limit_seconds", "", pl->seconds > 0 ? pl->seconds : NAN);
}

static void print_json(const struct opts *o, const struct plan *pl,
                       const struct run *runs, int n, int has_base,
                       const char *fatal)
{
    struct jw w = {stdout, 0};
    struct figures med, lo, hi, bmed, blo, bhi;
    double r[3] = {NAN, NAN, NAN};
    json_request(&w, o, pl);
    if (n > 0) {
        summarize(runs, n, 0, &med, &lo, &hi);
        summarize(runs, n, 1, &bmed, &blo, &bhi);
        ratio_stats(runs, n, r);
    }
    const char *err = fatal[0] ? fatal : n > 0 && med.why[0] ? med.why : NULL;
    jw_bool(&w, "ok", err == NULL);
    jw_bool(&w, "intact", n > 0 && med.intact);
    jw_bool(&w, "capped", n > 0 && med.capped);
    jw_str(&w, "error", err);
    if (n > 0) {
        jw_figs(&w, "", &med, "");
        jw_str(&w, "baseline_transport", has_base ? "udp" : NULL);
        if (has_base) {
            jw_figs(&w, "baseline_", &bmed, "");
            jw_str(&w, "baseline_error", bmed.why[0] ? bmed.why : NULL);
        }
        jw_num(&w, "", "ratio", "", r[0]);
        jw_str(&w, "ratio_basis",
               !has_base          ? NULL
               : pl->mode == M_BW ? "rate / baseline rate"
                                  : "p50 / baseline p50");
        jw_num(&w, "", "promise", "",
               !is_rmsg(pl->tr)   ? NAN
               : pl->mode == M_BW ? 1.0
                                  : 1.10);
        int kept = promise_kept(pl, r[0]);
        jw_key(&w, "", "meets_promise", "");
        fputs(kept ? (kept > 0 ? "true" : "false") : "null", stdout);
    }
    if (n > 1) {
        jw_figs(&w, "", &lo, "_min");
        jw_figs(&w, "", &hi, "_max");
        jw_num(&w, "", "ratio_min", "", r[1]);
        jw_num(&w, "", "ratio_max", "", r[2]);
    }
    fputs("\n}\n", stdout);
}

/* ======================================================================== */
/* Client: the session                                                      */
/* ======================================================================== */

/* Connects the control channel and waits for the server's greeting. */
static int client_connect(struct client *cl, const struct opts *o, char *why,
                          size_t cap)
{
    memset(cl, 0, sizeof(*cl));
    cl->o = o;
    int64_t start = now_ns();
    int fd = tcp_connect(o->host, o->port, CONNECT_MS, why, cap);
    if (fd < 0)
        return -1;
    set_nodelay(fd);
    cl->ctl.fd = fd;
    cl->peer_len = sizeof(cl->peer);
    getpeername(fd, (struct sockaddr *)&cl->peer, &cl->peer_len);
    udp_addr_of(&cl->udp_peer, &cl->peer, cl->peer_len, o->port);
    UDP_AddrString(&cl->udp_peer, cl->peer_name, sizeof(cl->peer_name));
    /* Connecting and the greeting share one budget (at least 1 s for
     * the greeting), so that a silent peer costs about CONNECT_MS. */
    char line[LINE_BYTES];
    int left = CONNECT_MS - (int)((now_ns() - start) / 1000000);
    int r = ctl_read(&cl->ctl, line, sizeof(line), left < 1000 ? 1000 : left);
    if (r > 0 && strcmp(line, "RPERF/1 ready") == 0)
        return 0;
    if (r > 0 && strcmp(line, "RPERF/1 busy") == 0)
        snprintf(why, cap, "%s is busy with another client", o->host);
    else if (r > 0 && strncmp(line, "RPERF/", 6) == 0)
        snprintf(why, cap, "%s speaks another rperf protocol (%.40s)", o->host,
                 line);
    else
        snprintf(why, cap, "%s port %d is no rperf server%s", o->host, o->port,
                 r < 0 && errno == ETIMEDOUT
                     ? " (no greeting within 3 s; or it is busy)"
                     : "");
    close(fd);
    return -1;
}

/* The user's test, and the raw UDP baseline on the same path. */
static void make_plans(const struct opts *o, struct plan *pl, struct plan *bp)
{
    memset(pl, 0, sizeof(*pl));
    pl->tr = o->tr;
    pl->mode = o->mode;
    pl->size = o->size;
    pl->datagram = o->datagram;
    pl->batch = o->batch;
    pl->progress = !o->quiet && isatty(STDERR_FILENO);
    pl->label = transport_names[o->tr];
    int limited = o->mode == M_BW ? o->total_set : o->count_set;
    if (o->mode == M_BW)
        pl->total = limited ? o->total : o->seconds_set ? 0 : BW_TOTAL_DEFAULT;
    else
        pl->count = limited ? o->count : o->seconds_set ? 0 : LAT_COUNT_DEFAULT;
    pl->seconds = o->seconds_set ? o->seconds : limited ? 0 : TIME_CAP_S;
    pl->time_is_cap = !o->seconds_set && !limited;
    *bp = *pl;
    bp->tr = T_UDP;
    bp->batch = 0;
    bp->label = "udp baseline";
    bp->time_is_cap = 0;
    if (bp->seconds == 0 || bp->seconds > BASELINE_CAP_S)
        bp->seconds = BASELINE_CAP_S;
}

static int client_main(const struct opts *o)
{
    struct client cl;
    struct plan pl, bp;
    char why[300] = "";
    int has_base = o->baseline && o->tr != T_UDP, n = 0, ok = 1;
    struct run *runs = xmalloc((size_t)o->repeats * sizeof(*runs));
    make_plans(o, &pl, &bp);
    if (client_connect(&cl, o, why, sizeof(why)) == 0) {
        if (!o->json && !o->quiet)
            print_header(o, &cl, &pl);
        for (; n < o->repeats; n++) {
            struct run *r = &runs[n];
            figures_clear(&r->base);
            if ((has_base && run_test(&cl, &bp, &r->base) < 0) ||
                run_test(&cl, &pl, &r->test) < 0) {
                snprintf(why, sizeof(why), "%s",
                         r->base.why[0] ? r->base.why : r->test.why);
                break;
            }
            r->ratio = has_base ? ratio_of(o->mode, &r->test, &r->base) : NAN;
            ok &= r->test.why[0] == '\0';
            if (o->repeats > 1 && !o->json && !o->quiet)
                print_run_line(n, o->repeats, &pl, r, has_base);
        }
        close(cl.ctl.fd);
    }
    if (why[0])
        fprintf(stderr, "rperf: %s\n", why);
    if (o->json)
        print_json(o, &pl, runs, n, has_base, why);
    else if (n > 0)
        print_summary(o, &pl, &bp, runs, n, has_base);
    fflush(stdout);
    free(runs);
    return ok && !why[0] ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct opts o;
    signal(SIGPIPE, SIG_IGN); /* a peer that vanishes is an error, not death */
    parse_args(argc, argv, &o);
    return o.server ? server_main(&o) : client_main(&o);
}
