/*
 * comm.c - question 4 (reference): messages of any size, by fragments sent
 * one at a time, over the textbook's udp layer.
 *
 * Fragments.  A message is cut into fragments of at most FRAGMENT bytes
 * (a datagram of that size fits a 1500-byte Ethernet frame, so the network
 * never has to cut it again).  Every fragment carries the length of its
 * whole message and its offset in it; a message of 0 bytes is one empty
 * fragment.
 *
 * Stop and wait, per fragment, as question 3 did per message: comm_send
 * sends a fragment, sleeps in UDP_ReadTimeout until its acknowledgment or
 * the retransmission timeout (50 ms at first, doubling to at most 1 s),
 * and goes on to the next fragment only once this one is acknowledged.
 * Fragments are numbered per destination (the sequence number counts
 * fragments, not messages), so the receiver takes exactly the fragment it
 * expects next and treats anything older as a copy: acknowledged again,
 * never used twice.  With one fragment in flight, nothing newer can come.
 *
 * Reassembly.  The receiver keeps, per sender instance, the message being
 * assembled: the fragment at offset 0 allocates it (at most COMM_MSG_MAX
 * bytes, whatever the datagram claims), each next fragment must continue
 * exactly where the last one ended, and the message is delivered once the
 * last byte is in.
 *
 * Damage.  A CRC-32 over the whole datagram (header and data, with the CRC
 * field taken as 0) is checked before anything else; a datagram that fails
 * it is dropped, unacknowledged, and its sender tries again.  This is the
 * end-to-end argument at small scale: UDP's own checksum is optional and
 * covers the path between two kernels, not between two libraries.
 *
 * Wire format: a 24-byte header in network byte order, then the data.
 *
 *     0      1      2      4          8          12         16         20
 *     +------+------+------+----------+----------+----------+----------+-------
 *     | kind | vers | rsvd | instance | sequence | msg len  |  offset  |  CRC
 *     +------+------+------+----------+----------+----------+----------+-------
 *
 * kind 1 is data; kind 2 an acknowledgment, which carries no data and
 * echoes the instance and sequence number of the fragment it acknowledges.
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

#define HEADER       24
#define FRAGMENT     1400
#define KIND_DATA    1
#define KIND_ACK     2
#define VERSION      2
#define RTO_FIRST_MS 50
#define RTO_MAX_MS   1000

/* ------------------------------------------------------------------------ */
/* State                                                                     */
/* ------------------------------------------------------------------------ */

/* What we send to one destination: the number of our next fragment. */
struct outbound {
    struct sockaddr_in addr;
    uint32_t next_seq;
    struct outbound *next;
};

/* What we receive from one sender instance. */
struct inbound {
    struct sockaddr_in addr;
    uint32_t instance;
    uint32_t expected;  /* the next fragment to take */
    unsigned char *msg; /* the message being assembled, or NULL */
    uint32_t msg_len, have;
    struct inbound *next;
};

/* A whole message received, not yet taken by comm_recv. */
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

/* One parsed datagram. */
struct dgram {
    int kind;
    uint32_t instance, seq, msg_len, offset;
    const unsigned char *data;
    size_t len;
};

/* ------------------------------------------------------------------------ */
/* Small helpers: time, byte order, CRC-32                                   */
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

/* The CRC-32 of Ethernet and zip (reflected polynomial 0xEDB88320), one
 * byte at a time through a table built on first use.  It catches every
 * single flipped bit, and every burst of up to 32. */
static uint32_t crc32(const unsigned char *p, size_t n)
{
    static uint32_t table[256];
    if (table[1] == 0) {
        for (uint32_t i = 0; i < 256; i++) {
            uint32_t r = i;
            for (int k = 0; k < 8; k++)
                r = r & 1 ? (r >> 1) ^ 0xEDB88320u : r >> 1;
            table[i] = r;
        }
    }
    uint32_t crc = 0xFFFFFFFFu;
    for (size_t i = 0; i < n; i++)
        crc = table[(crc ^ p[i]) & 0xff] ^ (crc >> 8);
    return crc ^ 0xFFFFFFFFu;
}

/* Writes a header (CRC 0 for now) into p. */
static void header(unsigned char *p, int kind, uint32_t instance, uint32_t seq,
                   uint32_t msg_len, uint32_t offset)
{
    p[0] = (unsigned char)kind;
    p[1] = VERSION;
    p[2] = p[3] = 0;
    put_u32(p + 4, instance);
    put_u32(p + 8, seq);
    put_u32(p + 12, msg_len);
    put_u32(p + 16, offset);
    put_u32(p + 20, 0);
}

/* Seals a datagram of n bytes: the CRC over all of it goes in its field. */
static void seal(unsigned char *p, size_t n)
{
    put_u32(p + 20, crc32(p, n));
}

/* Checks and parses a received datagram.  Returns 0, or -1 for anything
 * short, damaged or not ours. */
static int parse(unsigned char *p, size_t n, struct dgram *d)
{
    if (n < HEADER || p[1] != VERSION)
        return -1;
    uint32_t crc = get_u32(p + 20);
    put_u32(p + 20, 0);
    if (crc32(p, n) != crc)
        return -1;
    d->kind = p[0];
    d->instance = get_u32(p + 4);
    d->seq = get_u32(p + 8);
    d->msg_len = get_u32(p + 12);
    d->offset = get_u32(p + 16);
    d->data = p + HEADER;
    d->len = n - HEADER;
    return 0;
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

/* ------------------------------------------------------------------------ */
/* Receiving: acknowledge, reassemble, deliver each message once             */
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

/* Hands a whole message (buf, which the queue now owns) to comm_recv.
 * Returns 0 or -ENOMEM. */
static int deliver(struct comm *c, const struct sockaddr_in *from, void *buf,
                   size_t len)
{
    struct delivery *d = malloc(sizeof(*d));
    if (d == NULL)
        return -ENOMEM;
    d->from = *from;
    d->msg = buf;
    d->len = len;
    d->next = NULL;
    if (c->tail != NULL)
        c->tail->next = d;
    else
        c->head = d;
    c->tail = d;
    return 0;
}

/* Adds the expected fragment to the message being assembled, delivering
 * it when complete.  Returns 0 when the fragment was taken, -1 when it
 * cannot be (a sender that breaks the rules, or no memory): then it is
 * neither used nor acknowledged. */
static int take(struct comm *c, struct inbound *in, const struct dgram *d)
{
    if (d->offset == 0 && in->msg == NULL) {
        if (d->msg_len > COMM_MSG_MAX)
            return -1;
        in->msg = malloc(d->msg_len > 0 ? d->msg_len : 1);
        if (in->msg == NULL)
            return -1;
        in->msg_len = d->msg_len;
        in->have = 0;
    }
    if (in->msg == NULL || d->offset != in->have || d->msg_len != in->msg_len ||
        d->len > in->msg_len - in->have)
        return -1;
    memcpy(in->msg + in->have, d->data, d->len);
    in->have += (uint32_t)d->len;
    if (in->have == in->msg_len) {
        if (deliver(c, &in->addr, in->msg, in->msg_len) < 0) {
            in->have -= (uint32_t)d->len; /* try again on its copy */
            return -1;
        }
        in->msg = NULL;
    }
    return 0;
}

static void on_data(struct comm *c, struct sockaddr_in *from,
                    const struct dgram *d)
{
    struct inbound *in = find_inbound(c, from, d->instance);
    if (in == NULL)
        return;
    int32_t ahead = (int32_t)(d->seq - in->expected); /* wrap-safe */
    if (ahead > 0)
        return; /* cannot happen with one fragment in flight */
    if (ahead == 0) {
        if (take(c, in, d) < 0)
            return;
        in->expected++;
    }
    unsigned char ack[HEADER];
    header(ack, KIND_ACK, d->instance, d->seq, 0, 0);
    seal(ack, HEADER);
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
    struct dgram d;
    if (parse(c->buf, (size_t)n, &d) < 0)
        return 0; /* damaged or not ours: as if lost */
    if (d.kind == KIND_DATA)
        on_data(c, &from, &d);
    else if (d.kind == KIND_ACK && to != NULL && same_addr(&from, to) &&
             d.instance == c->instance && d.seq == seq)
        return 1;
    return 0;
}

/* ------------------------------------------------------------------------ */
/* Sending: one fragment at a time, each until acknowledged                  */
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

/* Sends the datagram in dg (n bytes, sequence number seq) until it is
 * acknowledged.  Returns 0 or -errno. */
static int send_acked(struct comm *c, const struct sockaddr_in *to,
                      unsigned char *dg, size_t n, uint32_t seq)
{
    struct sockaddr_in dst = *to;
    int rto = RTO_FIRST_MS, rc = 0;
    while (rc != 1) {
        UDP_Write(c->fd, &dst, (char *)dg, (int)n);
        int64_t deadline = now_ms() + rto;
        while ((rc = pump(c, deadline, to, seq)) == 0)
            ;
        if (rc < 0 && rc != -ETIMEDOUT)
            return rc;
        rto = rto * 2 < RTO_MAX_MS ? rto * 2 : RTO_MAX_MS;
    }
    return 0;
}

int comm_send(struct comm *c, const struct sockaddr_in *to, const void *msg,
              size_t len)
{
    if (c == NULL || to == NULL || (msg == NULL && len > 0))
        return -EINVAL;
    if (len > COMM_MSG_MAX)
        return -EMSGSIZE;
    struct outbound *o = find_outbound(c, to);
    if (o == NULL)
        return -ENOMEM;
    unsigned char dg[HEADER + FRAGMENT];
    size_t off = 0;
    do { /* a message of 0 bytes is one empty fragment */
        size_t n = len - off < FRAGMENT ? len - off : FRAGMENT;
        header(dg, KIND_DATA, c->instance, o->next_seq, (uint32_t)len,
               (uint32_t)off);
        if (n > 0)
            memcpy(dg + HEADER, (const unsigned char *)msg + off, n);
        seal(dg, HEADER + n);
        int rc = send_acked(c, to, dg, HEADER + n, o->next_seq);
        if (rc < 0)
            return rc;
        o->next_seq++;
        off += n;
    } while (off < len);
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
        free(in->msg);
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
