/*
 * comm.c - question 3 (reference): messages that arrive, once each, by
 * timeout/retry over the textbook's udp layer.
 *
 * Stop and wait.  comm_send keeps a copy of the message as one datagram,
 * sends it, and sleeps in UDP_ReadTimeout until either the acknowledgment
 * comes or the retransmission timeout passes; then it sends the copy
 * again, with the timeout doubled (50 ms at first, at most 1 s).
 *
 * Duplicates.  A lost acknowledgment makes the sender send a message the
 * receiver already has, so every message carries a sequence number,
 * counted per destination from 0.  The receiver remembers, per sender,
 * the number it expects next: that one is delivered; an older one is a
 * copy, acknowledged again but not delivered.  Because a sender has one
 * message outstanding at a time, nothing newer than the expected one can
 * arrive.
 *
 * Restarts.  A sender is known by its address and an instance number that
 * comm_open draws at random; a program restarted on the same port is a
 * new sender that starts again from 0.  (State for senders that went away
 * is never freed: fine for a homework, not for a long-lived server.)
 *
 * Wire format: a 12-byte header in network byte order, then the message.
 *
 *     0      1      2             4             8            12
 *     +------+------+-------------+-------------+-------------+------...
 *     | kind | vers |  reserved   |  instance   |  sequence   | message
 *     +------+------+-------------+-------------+-------------+------...
 *
 * kind 1 is data, kind 2 an acknowledgment, which carries no message and
 * echoes the instance and sequence number of the data it acknowledges.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "comm.h"
#include "udp.h"

#define HEADER       12
#define KIND_DATA    1
#define KIND_ACK     2
#define VERSION      1
#define RTO_FIRST_MS 50
#define RTO_MAX_MS   1000

/* ------------------------------------------------------------------------ */
/* State                                                                     */
/* ------------------------------------------------------------------------ */

/* What we send to one destination: the number of our next message. */
struct outbound {
    struct sockaddr_in addr;
    uint32_t next_seq;
    struct outbound *next;
};

/* What we receive from one sender instance: the number expected next. */
struct inbound {
    struct sockaddr_in addr;
    uint32_t instance;
    uint32_t expected;
    struct inbound *next;
};

/* A message received and acknowledged, not yet taken by comm_recv. */
struct delivery {
    struct sockaddr_in from;
    void *msg;
    size_t len;
    struct delivery *next;
};

struct comm {
    int fd;
    uint32_t instance;
    struct outbound *outs;
    struct inbound *ins;
    struct delivery *head, *tail;
    unsigned char buf[65536]; /* one received datagram */
};

/* ------------------------------------------------------------------------ */
/* Small helpers                                                             */
/* ------------------------------------------------------------------------ */

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

static int same_addr(const struct sockaddr_in *a, const struct sockaddr_in *b)
{
    return a->sin_addr.s_addr == b->sin_addr.s_addr &&
           a->sin_port == b->sin_port;
}

/* A random instance number, so that a restarted program is a new sender. */
static uint32_t random_instance(void)
{
    uint32_t v = 0;
    FILE *f = fopen("/dev/urandom", "rb");
    if (f == NULL || fread(&v, sizeof(v), 1, f) != 1)
        v = (uint32_t)now_ms() * 2654435761u ^ (uint32_t)getpid();
    if (f != NULL)
        fclose(f);
    return v;
}

static void header(unsigned char *p, int kind, uint32_t instance, uint32_t seq)
{
    p[0] = (unsigned char)kind;
    p[1] = VERSION;
    p[2] = p[3] = 0;
    put_u32(p + 4, instance);
    put_u32(p + 8, seq);
}

/* ------------------------------------------------------------------------ */
/* Receiving: acknowledge everything, deliver each message once              */
/* ------------------------------------------------------------------------ */

static struct inbound *
find_inbound(struct comm *c, const struct sockaddr_in *from, uint32_t instance)
{
    for (struct inbound *in = c->ins; in != NULL; in = in->next)
        if (in->instance == instance && same_addr(&in->addr, from))
            return in;
    struct inbound *in = calloc(1, sizeof(*in));
    if (in == NULL)
        return NULL;
    in->addr = *from;
    in->instance = instance;
    in->next = c->ins;
    c->ins = in;
    return in;
}

/* Queues a copy of the message for comm_recv.  Returns 0 or -ENOMEM. */
static int deliver(struct comm *c, const struct sockaddr_in *from,
                   const unsigned char *msg, size_t len)
{
    struct delivery *d = malloc(sizeof(*d));
    void *copy = len > 0 ? malloc(len) : NULL;
    if (d == NULL || (len > 0 && copy == NULL)) {
        free(d);
        free(copy);
        return -ENOMEM;
    }
    if (len > 0)
        memcpy(copy, msg, len);
    d->from = *from;
    d->msg = copy;
    d->len = len;
    d->next = NULL;
    if (c->tail != NULL)
        c->tail->next = d;
    else
        c->head = d;
    c->tail = d;
    return 0;
}

/* A data datagram: deliver it if it is the one expected, acknowledge it
 * if we have it now.  Out of memory, we neither deliver nor acknowledge:
 * the sender will try again. */
static void on_data(struct comm *c, struct sockaddr_in *from, uint32_t inst,
                    uint32_t seq, const unsigned char *msg, size_t len)
{
    struct inbound *in = find_inbound(c, from, inst);
    if (in == NULL)
        return;
    int32_t ahead = (int32_t)(seq - in->expected); /* wrap-safe */
    if (ahead > 0)
        return; /* cannot happen with one message in flight */
    if (ahead == 0) {
        if (deliver(c, from, msg, len) < 0)
            return;
        in->expected++;
    }
    unsigned char ack[HEADER];
    header(ack, KIND_ACK, inst, seq);
    UDP_Write(c->fd, from, (char *)ack, HEADER);
}

/* Waits until the deadline (-1: none) for one datagram and handles it.
 * Returns 1 when it was the acknowledgment of (to, seq), 0 for anything
 * else, -ETIMEDOUT when the deadline passed, or another -errno. */
static int pump(struct comm *c, int64_t deadline, const struct sockaddr_in *to,
                uint32_t seq)
{
    int wait = -1;
    if (deadline >= 0) {
        int64_t left = deadline - now_ms();
        wait = left > 0 ? (int)left : 0;
    }
    struct sockaddr_in from;
    int n = UDP_ReadTimeout(c->fd, &from, (char *)c->buf, sizeof(c->buf), wait);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    if (n < HEADER || c->buf[1] != VERSION)
        return 0; /* not ours: ignore it */
    uint32_t inst = get_u32(c->buf + 4), s = get_u32(c->buf + 8);
    if (c->buf[0] == KIND_DATA)
        on_data(c, &from, inst, s, c->buf + HEADER, (size_t)n - HEADER);
    else if (c->buf[0] == KIND_ACK && to != NULL && same_addr(&from, to) &&
             inst == c->instance && s == seq)
        return 1;
    return 0; /* acknowledgments of earlier tries and copies: stale */
}

/* ------------------------------------------------------------------------ */
/* Sending: one message at a time, again and again until acknowledged        */
/* ------------------------------------------------------------------------ */

static struct outbound *find_outbound(struct comm *c,
                                      const struct sockaddr_in *to)
{
    for (struct outbound *o = c->outs; o != NULL; o = o->next)
        if (same_addr(&o->addr, to))
            return o;
    struct outbound *o = calloc(1, sizeof(*o));
    if (o == NULL)
        return NULL;
    o->addr = *to;
    o->next = c->outs;
    c->outs = o;
    return o;
}

int comm_send(struct comm *c, const struct sockaddr_in *to, const void *msg,
              size_t len)
{
    if (c == NULL || to == NULL || (msg == NULL && len > 0))
        return -EINVAL;
    if (len > COMM_MSG_MAX)
        return -EMSGSIZE;
    struct outbound *o = find_outbound(c, to);
    unsigned char *copy = malloc(HEADER + len); /* the copy we resend */
    if (o == NULL || copy == NULL) {
        free(copy);
        return -ENOMEM;
    }
    header(copy, KIND_DATA, c->instance, o->next_seq);
    if (len > 0)
        memcpy(copy + HEADER, msg, len);
    struct sockaddr_in dst = *to;
    int rto = RTO_FIRST_MS, rc = 0;
    while (rc != 1) {
        UDP_Write(c->fd, &dst, (char *)copy, (int)(HEADER + len));
        int64_t deadline = now_ms() + rto;
        while ((rc = pump(c, deadline, to, o->next_seq)) == 0)
            ;
        if (rc < 0 && rc != -ETIMEDOUT)
            break;
        rto = rto * 2 < RTO_MAX_MS ? rto * 2 : RTO_MAX_MS;
    }
    free(copy);
    if (rc != 1)
        return rc;
    o->next_seq++;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* The rest of the interface                                                 */
/* ------------------------------------------------------------------------ */

int comm_recv(struct comm *c, struct sockaddr_in *from, void **msg, size_t *len,
              int timeout_ms)
{
    if (c == NULL || msg == NULL || len == NULL)
        return -EINVAL;
    int64_t deadline = timeout_ms < 0 ? -1 : now_ms() + timeout_ms;
    while (c->head == NULL) {
        int rc = pump(c, deadline, NULL, 0);
        if (rc < 0)
            return rc;
    }
    struct delivery *d = c->head;
    c->head = d->next;
    if (c->head == NULL)
        c->tail = NULL;
    if (from != NULL)
        *from = d->from;
    *msg = d->msg;
    *len = d->len;
    free(d);
    return 0;
}

int comm_open(int port, struct comm **out)
{
    struct comm *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return -ENOMEM;
    c->fd = UDP_Open(port);
    if (c->fd < 0) {
        int err = errno;
        free(c);
        return -err;
    }
    c->instance = random_instance();
    *out = c;
    return 0;
}

void comm_close(struct comm *c)
{
    if (c == NULL)
        return;
    UDP_Close(c->fd);
    while (c->outs != NULL) {
        struct outbound *o = c->outs;
        c->outs = o->next;
        free(o);
    }
    while (c->ins != NULL) {
        struct inbound *in = c->ins;
        c->ins = in->next;
        free(in);
    }
    while (c->head != NULL) {
        struct delivery *d = c->head;
        c->head = d->next;
        free(d->msg);
        free(d);
    }
    free(c);
}

int comm_port(const struct comm *c)
{
    return UDP_Port(c->fd);
}

int comm_address(const char *host, int port, struct sockaddr_in *addr)
{
    if (host == NULL || addr == NULL)
        return -EINVAL;
    if (UDP_FillSockAddr(addr, (char *)host, port) < 0)
        return -errno;
    return 0;
}
