/*
 * rmsg_endpoint.c - the blocking API: the protocol core over one UDP socket.
 *
 * The driver loop is Redis's ae.c in miniature: compute the time to the
 * core's next deadline, sleep in poll until then or until a datagram
 * arrives, feed what arrived to the core, send what the core produces, and
 * check whether the caller's condition (acknowledged, message arrived, queue
 * empty) now holds.  No thread of our own: the calling thread does the work,
 * which keeps a round trip close to raw UDP's.
 *
 * Several threads may call at once.  One lock guards the core.  At most one
 * thread at a time sleeps in poll (the "poller"); the others sleep on a
 * condition variable that is broadcast whenever anything changes, and one of
 * them takes over polling when the poller leaves.  A thread that queues data
 * while another polls writes a byte to a pipe, so the poller wakes and
 * recomputes its deadline.
 */
#define _GNU_SOURCE /* ppoll: sub-millisecond sleeps on Linux */
#include "rmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/timerfd.h>
#endif

#define BATCH 64 /* datagrams per sendmmsg / recvmmsg */
#define FAILURES_MAX 4096
#define RX_BYTES 65536 /* any datagram a peer may send */

struct waiter {
    struct waiter *next;
    uint64_t id;
    int done, error;
};

struct rmsg_endpoint {
    int fd;
    int wake[2];
    int timer;           /* timerfd, or -1: sleep with a poll timeout */
    rmsg_time timer_at;  /* when it is set to fire; RMSG_NEVER: unset */
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int polling;
    volatile sig_atomic_t interrupted; /* see rmsg_interrupt */
    struct rmsg_core *core;
    struct rmsg_config cfg;
    FILE *trace;
    struct waiter *waiters;
    struct rmsg_event *failures; /* ring of unreported async failures */
    unsigned nfail, fail_head;
    int failed_since_flush;
    uint8_t *txbuf, *rxbuf;
    struct udp_msg tx[BATCH], rx[BATCH];
};

/* ------------------------------------------------------------------------ */
/* Time                                                                      */
/* ------------------------------------------------------------------------ */

static rmsg_time now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (rmsg_time)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/* The absolute deadline of a timeout in milliseconds (negative: none). */
static rmsg_time deadline_of(int timeout_ms)
{
    return timeout_ms < 0 ? RMSG_NEVER : now_us() + (rmsg_time)timeout_ms * 1000;
}

/* ------------------------------------------------------------------------ */
/* Moving datagrams (called with the lock held)                              */
/* ------------------------------------------------------------------------ */

/* Records what the core reports: outcomes for blocked senders, failures
 * of asynchronous sends for rmsg_failure. */
static void collect_events(struct rmsg_endpoint *ep)
{
    struct rmsg_event ev;
    while (rmsg_core_event(ep->core, &ev) == 0) {
        struct waiter *w = ep->waiters;
        while (w && w->id != ev.id)
            w = w->next;
        if (w) {
            w->done = 1;
            w->error = ev.error;
            continue;
        }
        if (ev.error == 0)
            continue;
        ep->failed_since_flush++;
        if (ep->nfail == FAILURES_MAX) { /* keep the newest */
            ep->fail_head = (ep->fail_head + 1) % FAILURES_MAX;
            ep->nfail--;
        }
        ep->failures[(ep->fail_head + ep->nfail++) % FAILURES_MAX] = ev;
    }
}

/* Sends everything the core has to send now, in batches. */
static void flush_output(struct rmsg_endpoint *ep, rmsg_time now)
{
    for (;;) {
        int n = 0;
        while (n < BATCH) {
            uint8_t *b = ep->txbuf + (size_t)n * ep->cfg.datagram_max;
            int len = rmsg_core_output(ep->core, now, &ep->tx[n].addr, b,
                                       ep->cfg.datagram_max);
            if (len <= 0)
                break;
            ep->tx[n].buf = b;
            ep->tx[n].len = (size_t)len;
            n++;
        }
        for (int sent = 0; sent < n;) {
            int k = UDP_SendMany(ep->fd, ep->tx + sent, n - sent);
            if (k < 0) {
                if (errno == EINTR)
                    continue;
                /* Lost like any datagram: the protocol sends it again. */
                sent++;
            } else {
                sent += k;
            }
        }
        if (n < BATCH)
            break;
    }
    collect_events(ep);
}

/* Feeds every datagram that is waiting on the socket to the core. */
static void read_input(struct rmsg_endpoint *ep)
{
    for (int round = 0; round < 16; round++) {
        for (int i = 0; i < BATCH; i++) {
            ep->rx[i].buf = ep->rxbuf + (size_t)i * RX_BYTES;
            ep->rx[i].len = RX_BYTES;
        }
        int n = UDP_RecvMany(ep->fd, ep->rx, BATCH, 0);
        if (n <= 0)
            break;
        rmsg_time now = now_us();
        for (int i = 0; i < n; i++) {
            /* With receive offload one buffer may hold several datagrams
             * of one sender, each ep->rx[i].seg bytes (the last shorter). */
            const uint8_t *b = ep->rx[i].buf;
            size_t len = ep->rx[i].len, seg = ep->rx[i].seg;
            if (seg == 0)
                seg = len;
            for (size_t off = 0; off < len || off == 0; off += seg) {
                size_t part = len - off < seg ? len - off : seg;
                rmsg_core_input(ep->core, &ep->rx[i].addr, b + off, part,
                                now);
                if (len == 0)
                    break;
            }
        }
        if (n < BATCH)
            break;
    }
}

/* ------------------------------------------------------------------------ */
/* The driver loop                                                           */
/* ------------------------------------------------------------------------ */

/* Sets the timerfd to fire no later than `until`.  Arming a timer costs
 * more than a round trip on loopback is worth (on a virtual machine, two
 * exits to the hypervisor per sleep), and the core's next deadline moves
 * with every message (the retransmission timer restarts), so the timer is
 * only moved earlier, never later: when it fires too early the loop just
 * computes the deadline again.  Returns 1 when the timer covers `until`,
 * 0 when the caller must use a poll timeout instead. */
static int arm_timer(struct rmsg_endpoint *ep, rmsg_time now, rmsg_time until)
{
#ifdef __linux__
    if (ep->timer < 0)
        return 0;
    if (ep->timer_at <= now)
        ep->timer_at = RMSG_NEVER; /* it fired (or is about to) */
    if (until == RMSG_NEVER || until >= ep->timer_at)
        return 1;
    struct itimerspec it = {.it_value = {.tv_sec = until / 1000000,
                                         .tv_nsec = until % 1000000 * 1000}};
    if (timerfd_settime(ep->timer, TFD_TIMER_ABSTIME, &it, NULL) != 0)
        return 0;
    ep->timer_at = until;
    return 1;
#else
    (void)ep, (void)now, (void)until;
    return 0;
#endif
}

/* Sleeps in poll until a datagram, a wake-up, the core's next timer or the
 * deadline, whichever comes first.  Called with the lock held; drops it
 * while sleeping. */
static void poll_once(struct rmsg_endpoint *ep, rmsg_time deadline)
{
    rmsg_time now = now_us();
    rmsg_time until = rmsg_core_next(ep->core);
    if (deadline < until)
        until = deadline;
    int fault_ms = UDP_FaultsNextMs(ep->fd);
    if (fault_ms >= 0 && now + (rmsg_time)fault_ms * 1000 < until)
        until = now + (rmsg_time)fault_ms * 1000;
    rmsg_time wait = until == RMSG_NEVER ? -1 : until - now;
    if (wait < 0 && until != RMSG_NEVER)
        wait = 0;
    if (wait > 0 && arm_timer(ep, now, until))
        wait = -1; /* the timer wakes us */
    ep->polling = 1;
    pthread_mutex_unlock(&ep->lock);
    struct pollfd fds[3] = {{.fd = ep->fd, .events = POLLIN},
                            {.fd = ep->wake[0], .events = POLLIN},
                            {.fd = ep->timer, .events = POLLIN}};
    nfds_t nfds = ep->timer >= 0 ? 3 : 2;
#ifdef __linux__
    struct timespec ts = {.tv_sec = wait / 1000000,
                          .tv_nsec = (wait % 1000000) * 1000};
    int r = ppoll(fds, nfds, wait < 0 ? NULL : &ts, NULL);
#else
    int r = poll(fds, nfds, wait < 0 ? -1 : (int)((wait + 999) / 1000));
#endif
    char drain[64];
    if (r > 0 && (fds[1].revents & POLLIN))
        while (read(ep->wake[0], drain, sizeof(drain)) > 0)
            ;
    if (r > 0 && nfds == 3 && (fds[2].revents & POLLIN))
        if (read(ep->timer, drain, sizeof(drain)) < 0)
            (void)0; /* nothing to do: the timer is rearmed as needed */
    UDP_Pump(ep->fd);
    pthread_mutex_lock(&ep->lock);
    ep->polling = 0;
    if (r > 0 && (fds[0].revents & POLLIN))
        read_input(ep);
    flush_output(ep, now_us());
    pthread_cond_broadcast(&ep->changed);
}

/* Runs the protocol until done(ep, arg) is true or the deadline passes.
 * Returns 0 or -ETIMEDOUT.  Called with the lock held. */
static int drive(struct rmsg_endpoint *ep, rmsg_time deadline,
                 int (*done)(struct rmsg_endpoint *, void *), void *arg)
{
    flush_output(ep, now_us());
    while (!done(ep, arg)) {
        if (ep->interrupted)
            return -EINTR;
        if (now_us() >= deadline)
            return -ETIMEDOUT;
        if (!ep->polling) {
            poll_once(ep, deadline);
            continue;
        }
        /* Someone else is polling: wait for news. */
        if (deadline == RMSG_NEVER) {
            pthread_cond_wait(&ep->changed, &ep->lock);
        } else {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            rmsg_time left = deadline - now_us();
            ts.tv_sec += left / 1000000;
            ts.tv_nsec += (left % 1000000) * 1000;
            if (ts.tv_nsec >= 1000000000) {
                ts.tv_sec++;
                ts.tv_nsec -= 1000000000;
            }
            pthread_cond_timedwait(&ep->changed, &ep->lock, &ts);
        }
    }
    return 0;
}

/* Tells a thread sleeping in poll that the core has new work. */
static void wake_poller(struct rmsg_endpoint *ep)
{
    if (ep->polling) {
        char b = 1;
        ssize_t r = write(ep->wake[1], &b, 1);
        (void)r; /* a full pipe already means "wake up" */
    }
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */
/* ------------------------------------------------------------------------ */

static void trace_to_file(void *arg, const char *line)
{
    struct rmsg_endpoint *ep = arg;
    if (ep->trace) {
        fprintf(ep->trace, "rmsg %s\n", line);
        fflush(ep->trace);
    }
}

/* The first trace line of an endpoint names its own port and process, so
 * that traces of several processes can be put side by side (the peer
 * addresses in their lines are each other's ports). */
static void trace_open(struct rmsg_endpoint *ep)
{
    if (ep->trace == NULL)
        return;
    rmsg_time t = now_us();
    char line[96];
    snprintf(line, sizeof(line), "%lld.%06lld - open port=%d pid=%ld",
             (long long)(t / 1000000), (long long)(t % 1000000),
             UDP_Port(ep->fd), (long)getpid());
    trace_to_file(ep, line);
}

static int pipe_nonblocking(int p[2])
{
    if (pipe(p) != 0)
        return -errno;
    for (int i = 0; i < 2; i++) {
        fcntl(p[i], F_SETFL, fcntl(p[i], F_GETFL) | O_NONBLOCK);
        fcntl(p[i], F_SETFD, FD_CLOEXEC);
    }
    return 0;
}

int rmsg_open(int port, const struct rmsg_config *cfg,
              struct rmsg_endpoint **out)
{
    if (out == NULL)
        return -EINVAL;
    struct rmsg_endpoint *ep = calloc(1, sizeof(*ep));
    if (ep == NULL)
        return -ENOMEM;
    ep->fd = ep->wake[0] = ep->wake[1] = ep->timer = -1;
    ep->timer_at = RMSG_NEVER;
    if (cfg)
        ep->cfg = *cfg;
    else
        rmsg_config_default(&ep->cfg);
    /* The caller's own trace callback, if any, is kept; otherwise
     * RMSG_TRACE or rmsg_trace send lines to a file. */
    const char *t = getenv("RMSG_TRACE");
    if (ep->cfg.trace == NULL && t && *t && strcmp(t, "0") != 0) {
        ep->trace = stderr;
        ep->cfg.trace = trace_to_file;
        ep->cfg.trace_arg = ep;
    }
    uint64_t seed = (uint64_t)now_us() ^ ((uint64_t)getpid() << 32);
    FILE *ur = fopen("/dev/urandom", "rb");
    if (ur) {
        if (fread(&seed, sizeof(seed), 1, ur) != 1)
            seed ^= (uint64_t)(uintptr_t)ep;
        fclose(ur);
    }
    int err = rmsg_core_new(&ep->cfg, seed, &ep->core);
    if (err)
        goto fail;
    err = -ENOMEM;
    ep->txbuf = malloc((size_t)BATCH * ep->cfg.datagram_max);
    ep->rxbuf = malloc((size_t)BATCH * RX_BYTES);
    ep->failures = calloc(FAILURES_MAX, sizeof(*ep->failures));
    if (!ep->txbuf || !ep->rxbuf || !ep->failures)
        goto fail;
    if ((err = pipe_nonblocking(ep->wake)) != 0)
        goto fail;
#ifdef __linux__
    /* Without a timerfd the loop sleeps with poll timeouts instead. */
    ep->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
#endif
    if ((ep->fd = UDP_OpenDual(port, AF_UNSPEC)) < 0) {
        err = -errno;
        goto fail;
    }
    /* Room for a full window of datagrams in flight (the kernel may grant
     * less: then the protocol's retransmissions cover the difference). */
    UDP_SetBuffers(ep->fd, 8 << 20, 4 << 20, NULL, NULL);
    UDP_ReceiveOffload(ep->fd, 1); /* where the kernel can: cheaper bulk */
    trace_open(ep);
    pthread_mutex_init(&ep->lock, NULL);
    pthread_cond_init(&ep->changed, NULL);
    *out = ep;
    return 0;
fail:
    if (ep->wake[0] >= 0) {
        close(ep->wake[0]);
        close(ep->wake[1]);
    }
    if (ep->timer >= 0)
        close(ep->timer);
    rmsg_core_free(ep->core);
    free(ep->txbuf);
    free(ep->rxbuf);
    free(ep->failures);
    free(ep);
    return err;
}

void rmsg_close(struct rmsg_endpoint *ep)
{
    if (ep == NULL)
        return;
    /* Acknowledgments still held back for data to ride on leave now:
     * peers waiting for them would otherwise retry until they time out. */
    pthread_mutex_lock(&ep->lock);
    rmsg_core_ack_now(ep->core);
    flush_output(ep, now_us());
    pthread_mutex_unlock(&ep->lock);
    UDP_Close(ep->fd);
    close(ep->wake[0]);
    close(ep->wake[1]);
    if (ep->timer >= 0)
        close(ep->timer);
    rmsg_core_free(ep->core);
    pthread_mutex_destroy(&ep->lock);
    pthread_cond_destroy(&ep->changed);
    free(ep->txbuf);
    free(ep->rxbuf);
    free(ep->failures);
    free(ep);
}

int rmsg_port(const struct rmsg_endpoint *ep)
{
    return ep ? UDP_Port(ep->fd) : -EINVAL;
}

void rmsg_trace(struct rmsg_endpoint *ep, FILE *f)
{
    pthread_mutex_lock(&ep->lock);
    ep->trace = f;
    rmsg_core_trace(ep->core, f ? trace_to_file : NULL, ep);
    trace_open(ep);
    pthread_mutex_unlock(&ep->lock);
}

/* ------------------------------------------------------------------------ */
/* Sending                                                                   */
/* ------------------------------------------------------------------------ */

struct queue_try {
    const struct udp_addr *to;
    const void *msg;
    size_t len;
    int flags;
    rmsg_time deadline;
    int64_t result;
};

/* Queues the message if the peer's queue has room (done), else waits. */
static int try_queue(struct rmsg_endpoint *ep, void *arg)
{
    struct queue_try *q = arg;
    q->result = rmsg_core_send(ep->core, q->to, q->msg, q->len, q->flags,
                               q->deadline, now_us());
    return q->result != -ENOBUFS;
}

/* Queues a message, waiting for room in the peer's queue until deadline. */
static int64_t queue_message(struct rmsg_endpoint *ep, struct queue_try *q)
{
    if (!try_queue(ep, q)) {
        int r = drive(ep, q->deadline, try_queue, q);
        if (r != 0)
            return r;
    }
    if (q->result > 0)
        wake_poller(ep);
    return q->result;
}

static int waiter_done(struct rmsg_endpoint *ep, void *arg)
{
    (void)ep;
    return ((struct waiter *)arg)->done;
}

int rmsg_send(struct rmsg_endpoint *ep, const struct udp_addr *to,
              const void *msg, size_t len, int timeout_ms)
{
    if (ep == NULL || to == NULL)
        return -EINVAL;
    rmsg_time deadline = deadline_of(timeout_ms);
    struct queue_try q = {to, msg, len, RMSG_NOTIFY, deadline, 0};
    struct waiter w = {0};
    pthread_mutex_lock(&ep->lock);
    int64_t id = queue_message(ep, &q);
    if (id <= 0) {
        pthread_mutex_unlock(&ep->lock);
        return (int)id;
    }
    w.id = (uint64_t)id;
    w.next = ep->waiters;
    ep->waiters = &w;
    /* The core fails the message itself at the deadline; the small grace
     * lets that verdict, rather than ours, decide. */
    int r = drive(ep, deadline == RMSG_NEVER ? deadline : deadline + 100000,
                  waiter_done, &w);
    struct waiter **pp = &ep->waiters;
    while (*pp != &w)
        pp = &(*pp)->next;
    *pp = w.next;
    pthread_mutex_unlock(&ep->lock);
    return r != 0 ? r : w.error;
}

int64_t rmsg_send_async(struct rmsg_endpoint *ep, const struct udp_addr *to,
                        const void *msg, size_t len, int timeout_ms)
{
    if (ep == NULL || to == NULL)
        return -EINVAL;
    struct queue_try q = {to, msg, len, 0, deadline_of(timeout_ms), 0};
    pthread_mutex_lock(&ep->lock);
    int64_t id = queue_message(ep, &q);
    if (id > 0)
        flush_output(ep, now_us());
    pthread_mutex_unlock(&ep->lock);
    return id;
}

static int nothing_pending(struct rmsg_endpoint *ep, void *arg)
{
    (void)arg;
    return rmsg_core_pending(ep->core) == 0;
}

int rmsg_flush(struct rmsg_endpoint *ep, int timeout_ms)
{
    if (ep == NULL)
        return -EINVAL;
    pthread_mutex_lock(&ep->lock);
    int r = drive(ep, deadline_of(timeout_ms), nothing_pending, NULL);
    if (r == 0) {
        r = ep->failed_since_flush;
        ep->failed_since_flush = 0;
    }
    pthread_mutex_unlock(&ep->lock);
    return r;
}

void rmsg_interrupt(struct rmsg_endpoint *ep, int on)
{
    ep->interrupted = on != 0;
    if (on) {
        char b = 1;
        ssize_t r = write(ep->wake[1], &b, 1);
        (void)r; /* a full pipe already means "wake up" */
    }
}

static int never(struct rmsg_endpoint *ep, void *arg)
{
    (void)ep, (void)arg;
    return 0;
}

int rmsg_poll(struct rmsg_endpoint *ep, int timeout_ms)
{
    if (ep == NULL || timeout_ms < 0)
        return -EINVAL;
    pthread_mutex_lock(&ep->lock);
    drive(ep, deadline_of(timeout_ms), never, NULL);
    pthread_mutex_unlock(&ep->lock);
    return 0;
}

int rmsg_failure(struct rmsg_endpoint *ep, struct rmsg_event *ev)
{
    if (ep == NULL || ev == NULL)
        return -EINVAL;
    pthread_mutex_lock(&ep->lock);
    int r = -EAGAIN;
    if (ep->nfail > 0) {
        *ev = ep->failures[ep->fail_head];
        ep->fail_head = (ep->fail_head + 1) % FAILURES_MAX;
        ep->nfail--;
        r = 0;
    }
    pthread_mutex_unlock(&ep->lock);
    return r;
}

/* ------------------------------------------------------------------------ */
/* Receiving and statistics                                                  */
/* ------------------------------------------------------------------------ */

struct recv_try {
    struct udp_addr *from;
    void **msg;
    size_t *len;
};

static int try_recv(struct rmsg_endpoint *ep, void *arg)
{
    struct recv_try *t = arg;
    struct udp_addr from;
    if (rmsg_core_recv(ep->core, &from, t->msg, t->len) != 0) {
        /* About to wait with nothing to send: acknowledge now rather than
         * hold the acknowledgment for a reply that is not coming. */
        rmsg_core_ack_now(ep->core);
        return 0;
    }
    if (t->from)
        *t->from = from;
    return 1;
}

int rmsg_recv(struct rmsg_endpoint *ep, struct udp_addr *from, void **msg,
              size_t *len, int timeout_ms)
{
    if (ep == NULL || msg == NULL || len == NULL)
        return -EINVAL;
    struct recv_try t = {from, msg, len};
    pthread_mutex_lock(&ep->lock);
    int r = drive(ep, deadline_of(timeout_ms), try_recv, &t);
    pthread_mutex_unlock(&ep->lock);
    return r;
}

int rmsg_stats(struct rmsg_endpoint *ep, const struct udp_addr *peer,
               struct rmsg_stats *st)
{
    if (ep == NULL || st == NULL)
        return -EINVAL;
    pthread_mutex_lock(&ep->lock);
    int r = rmsg_core_stats(ep->core, peer, st);
    pthread_mutex_unlock(&ep->lock);
    return r;
}
