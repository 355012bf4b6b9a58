/*
 * comm.c - your communication library (question 4): messages of any size.
 *
 * Start from your question 3 library (opening, closing and addresses are
 * done here too) and let messages be larger than a datagram:
 *
 *   - comm_send cuts the message into fragments that each fit in one
 *     datagram, and sends them one after the other, each with question 3's
 *     timeout/retry (one fragment in flight at a time is fine here);
 *   - every fragment says where it belongs: which message (its length),
 *     where in it (its offset), and a sequence number, so that copies are
 *     recognised as in question 3;
 *   - comm_recv collects the fragments of a message in one buffer and
 *     delivers it when the last byte is in;
 *   - a checksum over each whole datagram (header included) lets the
 *     receiver, and the sender for acknowledgments, drop damaged ones: a
 *     dropped datagram is simply one the network lost.
 *
 * Replace this comment with one that says how your library works and what
 * your header looks like: whoever grades your work reads the code too.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "comm.h"
#include "udp.h"

/* Marks the helpers below, so that this file compiles without warnings
 * before you use them.  Delete it once you do. */
#define UNUSED __attribute__((unused))

/* Everything the library keeps for one endpoint. */
struct comm {
    int fd; /* the UDP socket */
    /* TODO(student): your question 3 state, and per sender the message
     * being put together (its buffer, its length, how much has arrived). */
};

/* Milliseconds on a clock that never jumps: for timeouts. */
UNUSED static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Writes v into p[0..3] in network byte order (most significant first). */
UNUSED static void put_u32(unsigned char *p, uint32_t v)
{
    p[0] = (unsigned char)(v >> 24);
    p[1] = (unsigned char)(v >> 16);
    p[2] = (unsigned char)(v >> 8);
    p[3] = (unsigned char)v;
}

/* Reads what put_u32 wrote. */
UNUSED static uint32_t get_u32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
           p[3];
}

/* The CRC-32 of Ethernet and zip over p[0..n-1]: a checksum that catches
 * any single flipped bit.  Compute it over the datagram with the checksum
 * field set to 0, then store it there; the receiver does the same and
 * compares. */
UNUSED static uint32_t crc32(const unsigned char *p, size_t n)
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

/* Is a the same address and port as b? */
UNUSED static int same_addr(const struct sockaddr_in *a,
                            const struct sockaddr_in *b)
{
    return a->sin_addr.s_addr == b->sin_addr.s_addr &&
           a->sin_port == b->sin_port;
}

int comm_send(struct comm *c, const struct sockaddr_in *to, const void *msg,
              size_t len)
{
    /* TODO(student): refuse len > COMM_MSG_MAX with -EMSGSIZE; then for
     * each fragment (a message of 0 bytes is still one fragment): build
     * the datagram (header with sequence number, message length, offset,
     * checksum; then the bytes), and send it until it is acknowledged, as
     * question 3 sent a whole message.  Ignore acknowledgments that fail
     * the checksum.  Never loop without sleeping. */
    (void)c;
    (void)to;
    (void)msg;
    (void)len;
    return -ENOSYS;
}

int comm_recv(struct comm *c, struct sockaddr_in *from, void **msg, size_t *len,
              int timeout_ms)
{
    /* TODO(student): until a whole new message is there or the timeout
     * passes, wait for datagrams.  Drop any that fails the checksum.  For
     * the fragment expected next from its sender: add it to that sender's
     * message (allocate the buffer at the first fragment, never more than
     * COMM_MSG_MAX bytes whatever the header says), acknowledge it, and
     * deliver the message once complete.  Copies of fragments already
     * taken: acknowledge again, do not use. */
    (void)c;
    (void)from;
    (void)msg;
    (void)len;
    (void)timeout_ms;
    return -ENOSYS;
}

/* ------------------------------------------------------------------------ */
/* From question 2                                                           */
/* ------------------------------------------------------------------------ */

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
    *out = c;
    return 0;
}

void comm_close(struct comm *c)
{
    if (c == NULL)
        return;
    UDP_Close(c->fd);
    /* TODO(student): free whatever else struct comm holds. */
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
