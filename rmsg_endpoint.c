/*
 * rmsg_endpoint.c - the blocking API: the protocol core over one UDP socket.
 *
 * The driver loop is Redis's ae.c in miniature: compute the time to the
 * core's next deadline, sleep until then or until a datagram arrives, feed
 * what arrived to the core, send what the core produces, and check whether
 * the caller's condition (acknowledged, message arrived, queue empty) now
 * holds.  No thread of our own: the calling thread does the work, which
 * keeps a round trip close to raw UDP's.
 *
 * How it sleeps.  A wait of half a millisecond or more, for timers that
 * are there for when nothing comes back (retransmission, probes,
 * deadlines), is a blocking receive on the socket with the kernel's
 * receive timeout as the timer, the very system call a raw UDP program
 * makes, so waiting for a reply costs what it costs raw UDP.  The kernel
 * counts that timeout in scheduler ticks, so such a timer may fire up to
 * one tick (1 to 10 ms) late.  Waits for the timers that keep a transfer
 * moving (pacing, loss detection, acknowledgments: see
 * rmsg_core_next_strict) sleep in ppoll instead, to the microsecond; the
 * longer of those with a timerfd (on Linux) that stays set from one sleep
 * to the next, because setting a short timeout afresh for each sleep is
 * what costs when a datagram cuts it short (timer_by).
 *
 * Several threads may call at once.  One lock guards the core.  At most one
 * thread at a time sleeps on the socket (the "poller"); the others sleep on
 * a condition variable that is broadcast whenever anything changes, and one
 * of them takes over when the poller leaves.  A thread that gives the core
 * work due before the poller would wake wakes it with an empty datagram to
 * the socket itself (UDP_Wake).  Where that cannot work (no loopback
 * interface, as in a fresh network namespace) the poller always sleeps in
 * ppoll, on the socket and a pipe that other threads write to.
 */
#define _GNU_SOURCE /* ppoll: sub-millisecond sleeps on Linux */
#include "rmsg.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/timerfd.h>
#endif

#define BATCH 64 /* datagrams per sendmmsg / recvmmsg */
#define BLOCK_MIN_US 500 /* shorter waits sleep in ppoll, precisely */
#define TIMER_MIN_US 200 /* shorter ones, as a pacer's, set their timeout */
#define BLOCK_MAX_US 3600000000ll /* an hour: longer waits wake and wait on */
#define SLEPT_US 5 /* a receive that took longer had to sleep for it */
#define BLOCK_STRICT_US 20000 /* a timer that must not run late is this far
                                 off at least for a coarse sleep */
#define FAILURES_MAX 4096
#define RX_BYTES 65536 /* any datagram a peer may send */
#define SMALL_BODY 512 /* a payload this short is sent in one piece */
#define TX_SLOT (RMSG_HEAD_MAX + SMALL_BODY) /* bytes of txbuf a datagram */
#define OFFLOAD_BATCH 4 /* datagrams at once that show a bulk transfer */

struct waiter {
    struct waiter *next;
    uint64_t id;
    int done, error;
};

struct rmsg_endpoint {
    int fd;
    int port;       /* the local port, for rmsg_port and the trace */
    int self_wake;  /* UDP_Wake works: long waits block on the socket */
    int wake[2];    /* otherwise a pipe the poller also watches */
    int64_t block_us;      /* the socket's blocking timeout now (0: none) */
    int timer;             /* a timerfd that ends precise sleeps (-1: none) */
    rmsg_time timer_at;    /* when it fires; RMSG_NEVER: not set */
    rmsg_time now;         /* the latest clock reading (see clock_read) */
    rmsg_time sleep_until; /* while polling: the poller wakes by then */
    pthread_mutex_t lock;
    pthread_cond_t changed;
    int polling;
    atomic_int interrupted; /* see rmsg_interrupt; lock-free, so a signal
                               handler may set it too */
    struct rmsg_core *core;
    struct rmsg_config cfg;
    FILE *trace;
    struct waiter *waiters;
    struct rmsg_event *failures; /* ring of unreported async failures */
    unsigned nfail, fail_head;
    atomic_uint nfail_now; /* nfail, for a look without the lock */
    int failed_since_flush;
    int offload; /* receive offload asked for (see read_input) */
    uint8_t *txbuf, *rxbuf; /* BATCH headers; BATCH datagrams */
    struct udp_parts tx[BATCH];
    struct udp_addr tx_to[BATCH];
    struct udp_msg rx[BATCH];
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

/* Reading the clock costs a noticeable part of a round trip on a virtual
 * machine, so the endpoint keeps the time of its latest reading in ep->now
 * (under the lock): read when a call starts and when a sleep ends, and
 * used for everything in between, which takes microseconds. */
static rmsg_time clock_read(struct rmsg_endpoint *ep)
{
    return ep->now = now_us();
}

/* The absolute deadline of a timeout in milliseconds (negative: none),
 * from the endpoint's latest clock reading. */
static rmsg_time deadline_of(const struct rmsg_endpoint *ep, int timeout_ms)
{
    return timeout_ms < 0 ? RMSG_NEVER
                          : ep->now + (rmsg_time)timeout_ms * 1000;
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
        atomic_store_explicit(&ep->nfail_now, ep->nfail,
                              memory_order_relaxed);
    }
}

/* Sends everything the core has to send now, in batches.  Payloads are
 * not copied: each datagram goes out as the header the core wrote into
 * txbuf and the payload where it lies in the core's copy of the message,
 * which stays put until the next call into the core (see
 * rmsg_core_output_parts); a short payload is copied after its header
 * instead (SMALL_BODY), since a datagram in one piece costs the kernel
 * less (a 64-byte round trip 0.1 µs).  With `lead`, for a message just
 * queued, the first datagram leaves alone, at once: a request or a reply
 * is usually the only one, and its round trip waits for it, not for the
 * core to work out whether it has more (which it then does, before
 * batching whatever it has).  Without, as after input, batches are full
 * from the start. */
static void flush_output(struct rmsg_endpoint *ep, rmsg_time now, int lead)
{
    for (int round = 0;; round++) {
        int lone = lead && round == 0, n = 0;
        while (n < (lone ? 1 : BATCH)) {
            /* After the first datagram, asking the core when it next has
             * work is cheaper than asking it for a second datagram it
             * does not have. */
            if ((n == 1 || (lead && round == 1)) &&
                rmsg_core_next(ep->core) > now)
                break;
            uint8_t *h = ep->txbuf + (size_t)n * TX_SLOT;
            struct udp_parts *d = &ep->tx[n];
            int len = rmsg_core_output_parts(ep->core, now, &ep->tx_to[n], h,
                                             RMSG_HEAD_MAX, &d->body,
                                             &d->body_len);
            if (len <= 0)
                break;
            if (d->body_len > 0 && d->body_len <= SMALL_BODY) {
                /* One piece is cheaper for the kernel to take than two. */
                memcpy(h + len, d->body, d->body_len);
                len += (int)d->body_len;
                d->body = NULL;
                d->body_len = 0;
            }
            d->to = &ep->tx_to[n];
            d->head = h;
            d->head_len = (size_t)len;
            n++;
        }
        for (int sent = 0; sent < n;) {
            int k = UDP_SendParts(ep->fd, ep->tx + sent, n - sent);
            if (k < 0) {
                if (errno == EINTR)
                    continue;
                /* Lost like any datagram: the protocol sends it again. */
                sent++;
            } else {
                sent += k;
            }
        }
        if (lone ? n == 0 : n < BATCH)
            break;
    }
    collect_events(ep);
}

/* Gives the first n receive slots their full capacity again (a receive
 * sets each slot's length to what arrived).  Their buffers never move. */
static void rx_reset(struct rmsg_endpoint *ep, int n)
{
    for (int i = 0; i < n; i++) {
        ep->rx[i].buf = ep->rxbuf + (size_t)i * RX_BYTES;
        ep->rx[i].len = RX_BYTES;
    }
}

/* Hands n received datagrams to the core.  With receive offload one buffer
 * may hold several datagrams of one sender, each .seg bytes (the last
 * shorter).  Empty datagrams are wake-ups (see UDP_Wake) or junk: an empty
 * datagram is never rmsg's. */
static void feed(struct rmsg_endpoint *ep, int n)
{
    rmsg_time now = ep->now;
    for (int i = 0; i < n; i++) {
        const uint8_t *b = ep->rx[i].buf;
        size_t len = ep->rx[i].len, seg = ep->rx[i].seg;
        if (len == 0) {
            if (!UDP_IsWake(ep->fd, &ep->rx[i]))
                rmsg_core_input(ep->core, &ep->rx[i].addr, b, 0, now);
            continue;
        }
        if (seg == 0)
            seg = len;
        for (size_t off = 0; off < len; off += seg)
            rmsg_core_input(ep->core, &ep->rx[i].addr, b + off,
                            len - off < seg ? len - off : seg, now);
    }
}

/* Feeds the core a first batch of n datagrams already received, taken
 * with `slots` receive slots, then, while batches come back full, whatever
 * else is waiting on the socket (a bounded number of batches). */
static void read_input(struct rmsg_endpoint *ep, int n, int slots)
{
    /* Receive offload (the kernel handing over a run of datagrams from one
     * sender as one) makes bulk cheaper on both ends, but costs every
     * datagram of a request and its reply something too (0.25 µs of a
     * 7 µs round trip here).  So it is asked for only once datagrams come
     * several at a time, as they do in a bulk transfer. */
    for (int round = 0; n > 0 && round < 16; round++) {
        if (!ep->offload && n >= OFFLOAD_BATCH) {
            UDP_ReceiveOffload(ep->fd, 1); /* where the kernel can */
            ep->offload = 1;
        }
        feed(ep, n);
        rx_reset(ep, n);
        if (n < slots)
            break;
        slots = BATCH;
        n = UDP_RecvMany(ep->fd, ep->rx, BATCH, 0);
    }
}

/* ------------------------------------------------------------------------ */
/* The driver loop                                                           */
/* ------------------------------------------------------------------------ */

/* The socket's blocking timeout is the timer of a long wait.  Setting it
 * costs a system call, so one already set is kept while it is no longer
 * than the wait and at least a quarter of it: waking early only means
 * computing the wait again.  No deadline at all means no timeout. */
static void block_for(struct rmsg_endpoint *ep, rmsg_time wait)
{
    int64_t want = wait == RMSG_NEVER ? 0 : wait;
    if (want == 0 ? ep->block_us == 0
                  : ep->block_us > 0 && ep->block_us <= want &&
                        ep->block_us >= want / 4)
        return;
    if (want > BLOCK_MAX_US)
        want = BLOCK_MAX_US;
    if (UDP_SetBlockingTimeout(ep->fd, want) == 0)
        ep->block_us = want;
}

/* Makes the timerfd fire by `until` at the latest.  A precise sleep that
 * sets its own timeout pays for it on every wake, on a virtual machine
 * most of all: a timeout sooner than the kernel's next tick is written to
 * the (virtual) timer hardware when the sleep starts and taken out again
 * when a datagram ends the sleep early, as one usually does, and each of
 * the two costs an exit to the hypervisor (here they doubled a 7 µs round
 * trip).  The timerfd is left set instead and only ever moved earlier, or
 * set again once it has fired: it may then fire before it is needed,
 * which only means working out the wait again.  Returns 0 when the
 * timerfd is set by then, -1 when there is none to set. */
static int timer_by(struct rmsg_endpoint *ep, rmsg_time until)
{
#ifdef __linux__
    if (ep->timer < 0)
        return -1;
    if (ep->timer_at <= until)
        return 0;
    struct itimerspec it = {.it_value = {.tv_sec = until / 1000000,
                                         .tv_nsec = until % 1000000 * 1000}};
    if (timerfd_settime(ep->timer, TFD_TIMER_ABSTIME, &it, NULL) != 0)
        return -1;
    ep->timer_at = until;
    return 0;
#else
    (void)ep;
    (void)until;
    return -1;
#endif
}

/* Sleeps in ppoll, to the microsecond, until a datagram, a wake-up or
 * `until`, `wait` from now (RMSG_NEVER: no end).  A wait of TIMER_MIN_US
 * or more is ended by the timerfd (timer_by), since such a wait (for a
 * probe, an acknowledgment) is usually cut short by a datagram; a shorter
 * one, as between two datagrams a pacer spaces out, usually runs to its
 * end, which costs less as ppoll's own timeout than as two more system
 * calls for the timerfd.  Returns how many datagrams it then took from
 * the socket. */
static int sleep_precisely(struct rmsg_endpoint *ep, rmsg_time wait,
                           rmsg_time until)
{
    struct pollfd fds[3] = {{.fd = ep->fd, .events = POLLIN}};
    nfds_t nfds = 1, pipe_at = 0, timer_at = 0;
    if (!ep->self_wake) {
        pipe_at = nfds;
        fds[nfds++] = (struct pollfd){.fd = ep->wake[0], .events = POLLIN};
    }
    if (wait != RMSG_NEVER && wait >= TIMER_MIN_US &&
        timer_by(ep, until) == 0) {
        timer_at = nfds;
        fds[nfds++] = (struct pollfd){.fd = ep->timer, .events = POLLIN};
        wait = RMSG_NEVER; /* the timerfd ends the sleep */
    }
#ifdef __linux__
    struct timespec ts = {.tv_sec = wait / 1000000,
                          .tv_nsec = (wait % 1000000) * 1000};
    int r = ppoll(fds, nfds, wait == RMSG_NEVER ? NULL : &ts, NULL);
#else
    int r = poll(fds, nfds,
                 wait == RMSG_NEVER ? -1 : (int)((wait + 999) / 1000));
#endif
    char drain[64];
    if (r > 0 && pipe_at && (fds[pipe_at].revents & POLLIN))
        while (read(ep->wake[0], drain, sizeof(drain)) > 0)
            ;
    if (r > 0 && timer_at && (fds[timer_at].revents & POLLIN)) {
        uint64_t fired;
        if (read(ep->timer, &fired, sizeof(fired)) == sizeof(fired))
            ep->timer_at = RMSG_NEVER;
    }
    UDP_Pump(ep->fd);
    if (r <= 0 || !(fds[0].revents & POLLIN))
        return 0;
    int n = UDP_RecvMany(ep->fd, ep->rx, BATCH, 0);
    return n > 0 ? n : 0;
}

/* Sleeps until a datagram arrives, a wake-up, the core's next timer or the
 * deadline, whichever comes first; then feeds the core what arrived and
 * sends what it has to send.  Called with the lock held; drops it while
 * sleeping. */
static void wait_once(struct rmsg_endpoint *ep, rmsg_time deadline)
{
    rmsg_time now = ep->now;
    rmsg_time until = rmsg_core_next(ep->core);
    if (until <= now) {
        /* Work due now (timers, an acknowledgment) needs no system call
         * to find. */
        flush_output(ep, now, 0);
        until = rmsg_core_next(ep->core);
    }
    if (deadline < until)
        until = deadline;
    int fault_ms = UDP_FaultsNextMs(ep->fd);
    if (fault_ms >= 0 && now + (rmsg_time)fault_ms * 1000 < until)
        until = now + (rmsg_time)fault_ms * 1000;
    rmsg_time wait = until == RMSG_NEVER ? RMSG_NEVER
                     : until > now       ? until - now
                                         : 0;
    /* The kernel's timer may fire up to a tick late: fine for the timers
     * that are for when nothing comes back, not for those that keep a
     * transfer moving (rmsg_core_next_strict). */
    rmsg_time strict = rmsg_core_next_strict(ep->core);
    int n = 0, slots = BATCH;
    int block = ep->self_wake && wait >= BLOCK_MIN_US &&
                (strict == RMSG_NEVER || strict - now >= BLOCK_STRICT_US);
    if (block)
        block_for(ep, wait);
    if (wait > 0) {
        ep->polling = 1;
        ep->sleep_until = !block            ? until
                          : ep->block_us == 0 ? RMSG_NEVER
                                              : now + ep->block_us;
        pthread_mutex_unlock(&ep->lock);
        if (block) {
            /* One slot: a receive that had to sleep has most likely found
             * the one datagram there is (a reply), and a batch would cost
             * that round trip a second try in the kernel.  One that did
             * not have to sleep found a queue: read_input takes the rest. */
            rmsg_time t0 = now_us();
            n = UDP_RecvMany(ep->fd, ep->rx, 1, -1);
            rmsg_time t1 = now_us();
            slots = n == 1 && t1 - t0 < SLEPT_US ? 1 : BATCH;
            pthread_mutex_lock(&ep->lock);
            ep->now = t1;
        } else {
            n = sleep_precisely(ep, wait, until);
            pthread_mutex_lock(&ep->lock);
            clock_read(ep);
        }
        ep->polling = 0;
    } else {
        n = UDP_RecvMany(ep->fd, ep->rx, BATCH, 0);
        clock_read(ep);
    }
    read_input(ep, n > 0 ? n : 0, slots);
    if (rmsg_core_next(ep->core) <= ep->now)
        flush_output(ep, ep->now, 0);
    else
        collect_events(ep); /* nothing to send, but outcomes to record */
    pthread_cond_broadcast(&ep->changed);
}

/* Runs the protocol until done(ep, arg) is true or the deadline passes.
 * Returns 0 or -ETIMEDOUT.  Called with the lock held. */
static int drive(struct rmsg_endpoint *ep, rmsg_time deadline,
                 int (*done)(struct rmsg_endpoint *, void *), void *arg)
{
    int waited = 0;
    while (!done(ep, arg)) { /* done may take something: call it once */
        if (atomic_load(&ep->interrupted))
            return -EINTR;
        if (!ep->polling) {
            /* Once at least, even with the deadline past: a call that
             * does not wait still takes what is already there. */
            if (waited && ep->now >= deadline)
                return -ETIMEDOUT;
            wait_once(ep, deadline);
            waited = 1;
            continue;
        }
        if (ep->now >= deadline)
            return -ETIMEDOUT;
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
        clock_read(ep);
    }
    return 0;
}

/* Wakes the thread sleeping on the socket. */
static void wake_poller(struct rmsg_endpoint *ep)
{
    if (ep->self_wake) {
        UDP_Wake(ep->fd);
    } else {
        char b = 1;
        ssize_t r = write(ep->wake[1], &b, 1);
        (void)r; /* a full pipe already means "wake up" */
    }
}

/* After a caller gave the core work: a poller that would sleep past the
 * time the core now needs to run is told to look again. */
static void kick(struct rmsg_endpoint *ep)
{
    if (ep->polling && rmsg_core_next(ep->core) < ep->sleep_until)
        wake_poller(ep);
}

/* ------------------------------------------------------------------------ */
/* Life cycle                                                                */
/* ------------------------------------------------------------------------ */

static void trace_to_file(void *arg, const char *line)
{
    struct rmsg_endpoint *ep = arg;
    if (ep->trace) {
        /* local= tells endpoints that share one stderr apart. */
        fprintf(ep->trace, "rmsg %s local=%d\n", line, ep->port);
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
             ep->port, (long)getpid());
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
    if (ep->cfg.validate == RMSG_VALIDATE_AUTO)
        ep->cfg.validate = port != 0; /* a server's port is known to all */
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
    ep->txbuf = malloc((size_t)BATCH * TX_SLOT);
    ep->rxbuf = malloc((size_t)BATCH * RX_BYTES);
    ep->failures = calloc(FAILURES_MAX, sizeof(*ep->failures));
    if (!ep->txbuf || !ep->rxbuf || !ep->failures)
        goto fail;
    rx_reset(ep, BATCH);
    clock_read(ep);
    if ((err = pipe_nonblocking(ep->wake)) != 0)
        goto fail;
#ifdef __linux__
    /* None (no timerfd): sleeps set their own timeout (timer_by). */
    ep->timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
#endif
    if ((ep->fd = UDP_OpenDual(port, AF_UNSPEC)) < 0) {
        err = -errno;
        goto fail;
    }
    ep->port = UDP_Port(ep->fd);
    /* A wake-up that cannot be sent (no loopback) means sleeping in ppoll
     * with the pipe; one that can is received and ignored later. */
    ep->self_wake = UDP_Wake(ep->fd) == 0;
    /* Room for a full window of datagrams in flight (the kernel may grant
     * less: then the protocol's retransmissions cover the difference). */
    UDP_SetBuffers(ep->fd, 8 << 20, 4 << 20, NULL, NULL);
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
    flush_output(ep, now_us(), 0);
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
    return ep ? ep->port : -EINVAL;
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
                               q->deadline, ep->now);
    return q->result != -ENOBUFS;
}

/* Queues a message; with `wait`, waiting for room in the peer's queue
 * until the deadline, else giving -ENOBUFS when it is full. */
static int64_t queue_message(struct rmsg_endpoint *ep, struct queue_try *q,
                             int wait)
{
    if (!try_queue(ep, q) && wait) {
        int r = drive(ep, q->deadline, try_queue, q);
        if (r != 0)
            return r;
    }
    if (q->result > 0) {
        flush_output(ep, ep->now, 1);
        kick(ep);
    }
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
    pthread_mutex_lock(&ep->lock);
    clock_read(ep);
    rmsg_time deadline = deadline_of(ep, timeout_ms);
    struct queue_try q = {to, msg, len, RMSG_NOTIFY, deadline, 0};
    struct waiter w = {0};
    int64_t id = queue_message(ep, &q, 1);
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

/* rmsg_send_async (wait 1) and rmsg_send_nowait (wait 0). */
static int64_t send_queued(struct rmsg_endpoint *ep, const struct udp_addr *to,
                           const void *msg, size_t len, int timeout_ms,
                           int wait)
{
    if (ep == NULL || to == NULL)
        return -EINVAL;
    pthread_mutex_lock(&ep->lock);
    clock_read(ep);
    struct queue_try q = {to, msg, len, 0, deadline_of(ep, timeout_ms), 0};
    int64_t id = queue_message(ep, &q, wait);
    pthread_mutex_unlock(&ep->lock);
    return id;
}

int64_t rmsg_send_async(struct rmsg_endpoint *ep, const struct udp_addr *to,
                        const void *msg, size_t len, int timeout_ms)
{
    return send_queued(ep, to, msg, len, timeout_ms, 1);
}

int64_t rmsg_send_nowait(struct rmsg_endpoint *ep, const struct udp_addr *to,
                         const void *msg, size_t len, int timeout_ms)
{
    return send_queued(ep, to, msg, len, timeout_ms, 0);
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
    clock_read(ep);
    int r = drive(ep, deadline_of(ep, timeout_ms), nothing_pending, NULL);
    if (r == 0) {
        r = ep->failed_since_flush;
        ep->failed_since_flush = 0;
    }
    pthread_mutex_unlock(&ep->lock);
    return r;
}

void rmsg_interrupt(struct rmsg_endpoint *ep, int on)
{
    atomic_store(&ep->interrupted, on != 0);
    if (on)
        wake_poller(ep); /* async-signal-safe: sendto or write */
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
    clock_read(ep);
    int r = drive(ep, deadline_of(ep, timeout_ms), never, NULL);
    pthread_mutex_unlock(&ep->lock);
    return r == -EINTR ? r : 0; /* the time running out is the success */
}

int rmsg_failure(struct rmsg_endpoint *ep, struct rmsg_event *ev)
{
    if (ep == NULL || ev == NULL)
        return -EINVAL;
    /* Asked after every receive by rpc: the usual answer, none, is known
     * without the lock.  A failure recorded just now is seen next time,
     * as it would be had this call come a moment sooner. */
    if (atomic_load_explicit(&ep->nfail_now, memory_order_relaxed) == 0)
        return -EAGAIN;
    pthread_mutex_lock(&ep->lock);
    int r = -EAGAIN;
    if (ep->nfail > 0) {
        *ev = ep->failures[ep->fail_head];
        ep->fail_head = (ep->fail_head + 1) % FAILURES_MAX;
        ep->nfail--;
        atomic_store_explicit(&ep->nfail_now, ep->nfail,
                              memory_order_relaxed);
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
    if (rmsg_core_recv(ep->core, t->from, t->msg, t->len) != 0) {
        /* About to wait with nothing to send: acknowledge now rather than
         * hold the acknowledgment for a reply that is not coming. */
        rmsg_core_ack_now(ep->core);
        return 0;
    }
    return 1;
}

int rmsg_recv(struct rmsg_endpoint *ep, struct udp_addr *from, void **msg,
              size_t *len, int timeout_ms)
{
    if (ep == NULL || msg == NULL || len == NULL)
        return -EINVAL;
    struct recv_try t = {from, msg, len};
    pthread_mutex_lock(&ep->lock);
    int r = 0;
    if (!try_recv(ep, &t)) {
        clock_read(ep);
        r = drive(ep, deadline_of(ep, timeout_ms), try_recv, &t);
    }
    /* Taking a message may have reopened a window the peer waits on. */
    if (r == 0 && rmsg_core_next(ep->core) <= ep->now)
        flush_output(ep, ep->now, 0);
    pthread_mutex_unlock(&ep->lock);
    return r;
}

void rmsg_recycle(struct rmsg_endpoint *ep, void *msg, size_t len)
{
    if (ep == NULL) {
        free(msg);
        return;
    }
    pthread_mutex_lock(&ep->lock);
    rmsg_core_recycle(ep->core, msg, len);
    pthread_mutex_unlock(&ep->lock);
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
