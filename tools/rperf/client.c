/*
 * client.c - rperf's client side of one test: raw UDP (one sendto per
 * datagram, or sendmmsg with --batch), rmsg with blocking or pipelined
 * sends, and TCP, each in bulk or ping-pong; then the control conversation
 * and the figures made of what both ends counted.  rpc is in rpc.c.
 */
#define _GNU_SOURCE /* recv flags and friends with -std=c11 */
#include "rperf.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* ======================================================================== */
/* Client: running one test                                                 */
/* ======================================================================== */

/* The timed part starts: clock, CPU, time limit, progress line. */
void ct_start(struct ctest *t)
{
    const struct plan *pl = t->pl;
    t->cpu0 = cpu_seconds();
    t->t0 = now_ns();
    t->deadline =
        pl->seconds > 0 ? t->t0 + (int64_t)(pl->seconds * NS_PER_S) : 0;
    progress_start(&t->prog, pl->progress, pl->label, pl->seconds,
                   pl->mode == M_BW ? pl->total : pl->count);
}

void ct_stop(struct ctest *t)
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
        progress_tick(&t->prog, now, t->bytes, 1, NAN);
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
        progress_tick(&t->prog, t0, t->msgs, 0, NAN);
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

/* The endpoint's retransmissions so far, for the progress line. */
static double retransmitted(struct rmsg_endpoint *ep)
{
    struct rmsg_stats st;
    return rmsg_stats(ep, NULL, &st) == 0 ? (double)st.retransmissions : NAN;
}

static struct rmsg_endpoint *open_rmsg(struct ctest *t)
{
    struct rmsg_config cfg;
    struct rmsg_endpoint *ep = NULL;
    rmsg_cfg_for(&cfg, t->pl->size, t->pl->datagram);
    int rc = rmsg_open(0, &cfg, &ep);
    if (rc < 0) {
        FAIL(t, "rmsg_open: %s", strerror(-rc));
        return NULL;
    }
    /* The hello: an empty message, acknowledged before the clock starts,
     * sets up the relation (address check, the peer's limits), as a TCP
     * test is timed from after its connect.  Its first datagrams lost
     * would otherwise cost a run the initial retransmission timeout. */
    rc = rmsg_send(ep, &t->cl->udp_peer, NULL, 0, HELLO_MS);
    if (rc < 0) {
        FAIL(t, "hello to the server's rmsg endpoint: %s", strerror(-rc));
        rmsg_close(ep);
        return NULL;
    }
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
        progress_tick(&t->prog, now, t->bytes, 1, retransmitted(ep));
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
        progress_tick(&t->prog, t0, t->msgs, 0, retransmitted(ep));
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
    /* The server is known to be there (the control connection is up), so
     * this may wait through lost SYNs: at 10% loss each way, two in a row
     * take TCP's retries past 3 s now and then. */
    int64_t deadline = now_ns() + (int64_t)DATA_CONNECT_MS * 1000000;
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
        progress_tick(&t->prog, now, t->bytes, 1, NAN);
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
        progress_tick(&t->prog, t0, t->msgs, 0, NAN);
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
    [T_RPC] = {client_rpc, client_rpc},
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
    kv_u64(line, "cached", &r->cached);
    uint64_t tstats;
    r->has_retrans = kv_u64(line, "tstats", &tstats) != 0 || tstats != 0;
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
    if (t->pl->tr == T_RPC)
        rpc_figures(t, r);
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
                     " datagram=%u batch=%d clients=%d seed=%" PRIu64
                     " hello=1",
                     transport_names[pl->tr], pl->mode == M_BW ? "bw" : "lat",
                     pl->size, pl->mode == M_BW ? pl->total : 0,
                     (unsigned)pl->datagram, pl->batch, pl->clients, t->seed);
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
int run_test(struct client *cl, const struct plan *pl, struct figures *f)
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
