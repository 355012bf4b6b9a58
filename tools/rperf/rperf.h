/*
 * rperf.h - bandwidth and latency of rmsg and rpc, next to raw UDP and TCP.
 *
 * One program with two roles, in the spirit of iperf and sockperf:
 *
 *   rperf -s [-p PORT] [--once]        serves tests, one client at a time
 *   rperf -c HOST [options]            runs tests against a server
 *
 * The server listens on one port number for both protocols: TCP for the
 * control channel (and the data connection of the tcp transport), UDP for
 * raw datagrams or for an rmsg endpoint or rpc server opened for the
 * duration of a test (between tests a plain UDP socket keeps the port).
 *
 * The parts, one file each:
 *
 *   util.c     time, CPU, the data pattern, the latency histogram,
 *              formatting figures, the progress line
 *   opts.c     the command line and --help
 *   net.c      TCP helpers, the control channel, shared rmsg settings
 *   server.c   the server: ports, sessions, every transport's test loop
 *   client.c   the client: running one test of udp, rmsg(-async) or tcp,
 *              and turning what both ends counted into figures
 *   rpc.c      the rpc transport, both ends (a server with a null/echo and
 *              a sink procedure; parallel clients, one thread each)
 *   report.c   repeats and medians, the human summary, JSON
 *   main.c     the client session (baseline, repeats) and main
 *
 * Control channel
 *   Text lines over TCP.  The server greets, then answers one request at a
 *   time; the client closes the connection when it is done:
 *
 *     S: RPERF/1 ready                       ("RPERF/1 busy": try later)
 *     C: test transport=rmsg mode=bw size=1048576 total=268435456
 *             datagram=1400 batch=0 clients=1 seed=8349...
 *     S: ok token=5f0c...                    (or "error why=TEXT")
 *        ... the test runs on its own socket ...
 *     C: done msgs=256 bytes=268435456 sum=1234...
 *     S: result msgs=256 bytes=... sum=... bad=0 cpu_us=... why=TEXT
 *
 *   Every request carries the client's -D, so the server needs no -D of its
 *   own.  The tcp transport opens a second TCP connection to the same port
 *   and first sends the token, so the server knows it is the test's.
 *   Fields a side does not know are ignored ("clients" is newer than the
 *   rest; a server that lacks it serves one client).
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
 *   checksum that is compared at the end (for rpc, whose parallel calls
 *   arrive in any order, a sum that does not depend on the order).
 *   Messages shorter than 8 bytes carry the low bytes of their stamp.
 *
 * What is measured
 *   bw: on the client, from the first send to the last acknowledgment
 *   (rmsg), the last reply (rpc) or the server closing its end of the
 *   stream (tcp); for raw UDP, whose loss is a figure and not a fault, the
 *   server's time from the first datagram to the last.  lat: every round
 *   trip on the client, from just before the send to the echo's arrival;
 *   checking the echo happens outside that window.  Unless --no-baseline,
 *   raw UDP runs first on the same path with the same sizes; the ratio is
 *   goodput over raw UDP's delivered rate (bw) or p50 over raw UDP's p50
 *   (lat).  rmsg-async bounds the messages it has in flight by count too
 *   (see async_room).  datagrams_per_msg counts what the client sent per
 *   message, except for rpc: the datagrams of a call in both directions,
 *   from the clients' counters.  --json prints one flat object, one key
 *   per line, the baseline's figures prefixed "baseline_", so that scripts
 *   can pick them with sed; a null call's baseline is 1-byte datagrams.
 *
 * Time is CLOCK_MONOTONIC, CPU time getrusage, latency a log-linear
 * histogram (HdrHistogram's layout, 128 sub-buckets per power of two: less
 * than 0.8% error, fixed memory).  The raw UDP paths allocate nothing per
 * datagram.
 *
 * Exit status: 0 success, 1 failure (no server, data not intact, transport
 * error), 2 bad arguments.
 */
#ifndef RPERF_H
#define RPERF_H

#include "rmsg.h"
#include "udp.h"

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <sys/socket.h>

/* ------------------------------------------------------------------------ */
/* Constants                                                                 */
/* ------------------------------------------------------------------------ */

#define PORT_DEFAULT         5201
#define DGRAM_MIN            110          /* rmsg's smallest datagram_max */
#define DGRAM_MAX            65507        /* largest IPv4 UDP payload */
#define SIZE_MAX_BYTES       (1ull << 30) /* rmsg's default msg_max: 1 GiB */
#define BW_SIZE_DEFAULT      (1ull << 20)
#define BW_TOTAL_DEFAULT     (256ull << 20)
#define LAT_SIZE_DEFAULT     64
#define RPC_LAT_SIZE_DEFAULT 0 /* a null call: empty request and reply */
#define LAT_COUNT_DEFAULT    10000
#define TIME_CAP_S           10.0 /* a run without -n/-N or -t stops here */
#define BASELINE_CAP_S       3.0  /* the raw UDP baseline never runs longer */
#define REPEATS_MAX          1000
#define CLIENTS_MAX          256 /* -P: rpc clients, one thread each */

#define CONNECT_MS      8000       /* reaching the server (control): TCP
                                      tries a connection at 0, 1 and 3 s,
                                      so a SYN or its answer may be lost
                                      twice (10% drop between namespaces
                                      made 3 s fail now and then) */
#define DATA_CONNECT_MS 20000      /* the data connection, server known up */
#define REPLY_MS        5000       /* the server's answer to a request */
#define HELLO_MS        20000      /* rmsg: the hello's acknowledgment */
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

/* Messages queued and not yet acknowledged: see async_room. */
#define ASYNC_MSGS_MAX         65536
#define ASYNC_TIMEOUT_MS(size) (msg_timeout_ms(size) + 10000)

enum mode { M_BW, M_LAT };
enum transport_id { T_UDP, T_RMSG, T_RMSG_ASYNC, T_TCP, T_RPC, T_COUNT };

extern const char *const transport_names[T_COUNT];

/* ------------------------------------------------------------------------ */
/* util.c: time, CPU, memory                                                 */
/* ------------------------------------------------------------------------ */

int64_t now_ns(void);
int ms_left(int64_t deadline);
double cpu_seconds(void);
void *xmalloc(size_t n);
uint64_t random64(void);
void set_why(char *why, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ------------------------------------------------------------------------ */
/* util.c: the data pattern (see "Verification" at the top)                  */
/* ------------------------------------------------------------------------ */

struct pattern {
    uint64_t base, step, key;
};

uint64_t mix64(uint64_t x);
void pattern_init(struct pattern *p, uint64_t seed);
int64_t message_index(const struct pattern *p, const uint8_t *m);
void pattern_fill(const struct pattern *p, uint8_t *buf, size_t len);
void pattern_stamp(const struct pattern *p, uint8_t *buf, size_t len,
                   uint64_t idx);
size_t pattern_check(const struct pattern *p, const uint8_t *buf, size_t len,
                     uint64_t idx);
uint64_t sum_fold(uint64_t sum, const uint8_t *msg, size_t len);
uint64_t sum_add(uint64_t sum, const uint8_t *msg, size_t len);
size_t msg_len(uint64_t size, uint64_t total, uint64_t i);
size_t raw_len(uint64_t size, uint32_t dgram, uint64_t g);

/* ------------------------------------------------------------------------ */
/* util.c: latency histogram                                                 */
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

void hist_record(struct hist *h, int64_t ns);
void hist_merge(struct hist *into, const struct hist *from);
double hist_quantile(const struct hist *h, double q);

/* ------------------------------------------------------------------------ */
/* util.c: formatting figures, the progress line                             */
/* ------------------------------------------------------------------------ */

/* A short text returned by value, so that several can appear in one printf
 * (a temporary lives until the end of the full expression, C11 6.2.4). */
struct text {
    char s[48];
};

struct text fmt_bytes(double b);
struct text fmt_rate(double bps);
struct text fmt_us(double us);
struct text fmt_per_s(double n);

struct progress {
    int on, shown;
    int64_t start, next;
    double limit_s; /* 0: none */
    uint64_t limit; /* bytes (bw) or round trips (lat); 0: none */
    const char *label;
};

void progress_start(struct progress *p, int on, const char *label,
                    double limit_s, uint64_t limit);
void progress_tick(struct progress *p, int64_t now, uint64_t done, int bytes,
                   double retransmitted);
void progress_end(struct progress *p);

/* ------------------------------------------------------------------------ */
/* opts.c: the command line                                                  */
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
    int repeats, baseline, json, quiet, batch, clients;
    const char *client_only; /* a client option seen, for -s's complaint */
};

/* Fills *o from the arguments; exits with status 2 and a message when they
 * make no sense, with 0 after --help. */
void parse_args(int argc, char **argv, struct opts *o);

/* ------------------------------------------------------------------------ */
/* net.c: sockets, the control channel, shared settings                      */
/* ------------------------------------------------------------------------ */

int set_blocking(int fd, int blocking);
void set_timeouts(int fd, int ms);
void set_nodelay(int fd);
int write_all(int fd, const void *buf, size_t n);
int read_all(int fd, void *buf, size_t n);
int tcp_connect_addr(const struct sockaddr *sa, socklen_t len,
                     int64_t deadline);
int tcp_connect(const char *host, int port, int timeout_ms, char *err,
                size_t cap);

/* The control channel: whole lines over a TCP connection. */
struct ctl {
    int fd;
    size_t len;
    char buf[4 * LINE_BYTES];
};

int ctl_send(struct ctl *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
int ctl_read(struct ctl *c, char *line, size_t cap, int timeout_ms);
int kv_get(const char *line, const char *key, char *out, size_t cap);
int kv_u64(const char *line, const char *key, uint64_t *out);

void udp_addr_of(struct udp_addr *out, const struct sockaddr_storage *ss,
                 socklen_t len, int port);
void rmsg_cfg_for(struct rmsg_config *cfg, uint64_t size, uint32_t dgram);
int msg_timeout_ms(uint64_t size);
int check_message(const struct pattern *p, const uint8_t *m, size_t len,
                  size_t want, uint64_t i, const char *what, char *why,
                  size_t cap);

/* ------------------------------------------------------------------------ */
/* server.c and rpc.c: the server                                            */
/* ------------------------------------------------------------------------ */

struct server {
    int listen_fd;
    int udp_fd; /* keeps the UDP port between tests; -1 while rmsg has it */
    int port, quiet;
    uint8_t *rx; /* BATCH datagrams of RX_BYTES, for raw UDP */
    struct udp_msg msgs[BATCH];
};

struct rpc_server;

/* One test being served. */
struct stest {
    struct server *srv;
    struct ctl *ctl;
    enum transport_id tr;
    enum mode mode;
    uint64_t size, total, seed;
    uint32_t datagram;
    int batch;
    uint32_t clients; /* rpc: parallel clients the test will use */
    int hello;        /* rmsg: an empty hello comes before the test */
    struct pattern pat;
    char token[TOKEN_LEN + 1];
    struct rmsg_endpoint *ep;
    struct rpc_server *rpc;
    int data_fd;
    /* The client's "done", or its disappearance. */
    int done, aborted;
    int64_t done_at;
    uint64_t done_msgs;
    /* What arrived. */
    uint64_t msgs, bytes, sum, bad, dup, late, unchecked;
    uint64_t cached; /* rpc: repeated calls answered from the reply cache */
    int64_t first_ns, last_ns;
    uint8_t *seen; /* raw UDP and rpc: one bit per message index */
    uint64_t seen_bits, top;
    char why[200];
};

int server_main(const struct opts *o);

/* What server.c offers the rpc server. */
int srv_check(struct stest *t);
int seen_before(struct stest *t, uint64_t idx);
void count_arrival(struct stest *t, size_t len, int64_t now);

/* rpc.c: opening, serving and closing the rpc server of a test. */
int rpc_setup(struct stest *t);
void serve_rpc(struct stest *t);
void rpc_teardown(struct stest *t);

/* ------------------------------------------------------------------------ */
/* client.c and rpc.c: the client                                            */
/* ------------------------------------------------------------------------ */

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
    int clients; /* rpc: parallel clients; 1 otherwise */
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
    double cached; /* rpc: repeated calls the server answered from its cache */
};

/* The server's account of a test. */
struct sresult {
    uint64_t msgs, bytes, sum, bad, dup, late, unchecked, span_ns, cpu_us,
        retrans, dgrams, cached;
    int has_retrans; /* the server could count its transport's datagrams */
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

void ct_start(struct ctest *t);
void ct_stop(struct ctest *t);
int run_test(struct client *cl, const struct plan *pl, struct figures *f);

/* rpc.c: the client side of an rpc test, bulk or ping-pong, and what it
 * adds to the figures. */
void client_rpc(struct ctest *t);
void rpc_figures(struct ctest *t, const struct sresult *r);

/* ------------------------------------------------------------------------ */
/* report.c: figures, repeats, the summary, JSON                             */
/* ------------------------------------------------------------------------ */

/* The figures by name, for JSON and for medians over repeats. */
struct figdef {
    const char *key;
    size_t off;
};
extern const struct figdef figdefs[];
extern const size_t nfigs;

void figures_clear(struct figures *f);

struct run {
    struct figures test, base;
    double ratio; /* to the baseline; NAN without one */
};

double ratio_of(enum mode mode, const struct figures *test,
                const struct figures *base);
void print_header(const struct opts *o, const struct client *cl,
                  const struct plan *pl);
void print_run_line(int i, int n, const struct plan *pl, const struct run *r,
                    int has_base);
void print_summary(const struct opts *o, const struct plan *pl,
                   const struct plan *bp, const struct run *runs, int n,
                   int has_base);
void print_json(const struct opts *o, const struct plan *pl,
                const struct plan *bp, const struct run *runs, int n,
                int has_base, const char *fatal);

#endif /* RPERF_H */
