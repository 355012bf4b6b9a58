/*
 * server.c - rperf's server: one TCP listener and one UDP socket on the
 * same port number, one client session at a time, and for each test the
 * loop of its transport (raw UDP, rmsg, TCP; rpc is in rpc.c) that counts
 * and checks what arrives or echoes it back.
 */
#define _GNU_SOURCE /* accept and friends with -std=c11 */
#include "rperf.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <unistd.h>

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
int srv_check(struct stest *t)
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

void count_arrival(struct stest *t, size_t len, int64_t now)
{
    if (t->msgs == 0)
        t->first_ns = now;
    t->last_ns = now;
    t->msgs++;
    t->bytes += len;
}

/* Marks raw datagram idx seen.  Returns 1 when it had been seen before. */
int seen_before(struct stest *t, uint64_t idx)
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
/* The client's first rmsg message is its empty hello (see open_rmsg in
 * client.c), not part of the test: true when m was it (and is freed). */
static int take_hello(struct stest *t, void *m, size_t len)
{
    if (!t->hello)
        return 0;
    t->hello = 0;
    if (len != 0) {
        t->bad++;
        set_why(t->why, sizeof(t->why),
                "the first message (%zu bytes) is not the empty hello", len);
    }
    free(m);
    return 1;
}

static void serve_rmsg_bw(struct stest *t)
{
    int64_t checked = now_ns(), heard = checked;
    for (;;) {
        void *m;
        size_t len;
        int r = rmsg_recv(t->ep, NULL, &m, &len, 10);
        int64_t now = now_ns();
        if (r == 0 && take_hello(t, m, len)) {
            heard = now;
        } else if (r == 0) {
            ordered_account(t, m, len);
            rmsg_recycle(t->ep, m, len); /* the next large one goes in it */
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
        if (r == 0 && take_hello(t, m, len))
            continue;
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

/* What serves each transport, by mode (M_BW, M_LAT); rpc is in rpc.c. */
static const serve_fn serve_fns[T_COUNT][2] = {
    [T_UDP] = {serve_udp_bw, serve_udp_echo},
    [T_RMSG] = {serve_rmsg_bw, serve_rmsg_echo},
    [T_RMSG_ASYNC] = {serve_rmsg_bw, serve_rmsg_echo},
    [T_TCP] = {serve_tcp_bw, serve_tcp_echo},
    [T_RPC] = {serve_rpc, serve_rpc},
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
    uint64_t clients, hello;
    if (kv_u64(line, "clients", &clients) != 0)
        clients = 1; /* a client older than the field */
    if (kv_u64(line, "hello", &hello) != 0)
        hello = 0; /* likewise */
    t->tr = T_COUNT;
    for (int i = 0; i < T_COUNT; i++)
        if (strcmp(tr, transport_names[i]) == 0 && serve_fns[i][0])
            t->tr = (enum transport_id)i;
    t->mode = strcmp(mode, "lat") == 0 ? M_LAT : M_BW;
    t->hello = hello != 0 && (t->tr == T_RMSG || t->tr == T_RMSG_ASYNC);
    t->datagram = (uint32_t)dgram;
    t->batch = batch != 0;
    t->clients = clients < 1             ? 1
                 : clients > CLIENTS_MAX ? CLIENTS_MAX
                                         : (uint32_t)clients;
    /* Only an rpc round trip may be empty: the null call. */
    uint64_t smallest = t->tr == T_RPC && t->mode == M_LAT ? 0 : 1;
    if (t->tr == T_COUNT)
        set_why(t->why, sizeof(t->why), "transport %s is not served here", tr);
    else if ((strcmp(mode, "bw") && strcmp(mode, "lat")) ||
             t->size < smallest || t->size > SIZE_MAX_BYTES ||
             dgram < DGRAM_MIN || dgram > DGRAM_MAX)
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
 * is ready, or an rmsg endpoint or rpc server takes the port, or a token
 * is chosen for the TCP data connection.  Returns 0, or -1 with the
 * reason. */
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
    if (s->udp_fd >= 0)
        UDP_Close(s->udp_fd);
    s->udp_fd = -1;
    if (t->tr == T_RPC)
        return rpc_setup(t);
    struct rmsg_config cfg;
    rmsg_cfg_for(&cfg, t->size, t->datagram);
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

/* The server's account.  tstats=0 says that retrans and dgrams are not
 * known: the rpc server does not show its endpoint's counters. */
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
                    " retrans=%" PRIu64 " dgrams=%" PRIu64 " tstats=%d"
                    " cached=%" PRIu64 " why=%s",
                    t->msgs, t->bytes, t->sum, t->bad, t->dup, t->late,
                    t->unchecked, span, isfinite(cpu) ? cpu * 1e6 : 0.0,
                    st.retransmissions, st.datagrams_sent, t->tr != T_RPC,
                    t->cached, t->why);
}

/* Gives the port back to the plain UDP socket and frees the test. */
static void teardown_test(struct stest *t)
{
    rmsg_close(t->ep);
    t->ep = NULL;
    rpc_teardown(t);
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
            t->tr == T_UDP   ? "datagrams"
            : t->tr == T_RPC ? "calls"
                             : "messages",
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

int server_main(const struct opts *o)
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
